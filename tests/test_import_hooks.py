"""Start-up of spec3c's processes (spec3c.import_hooks, spec3c.tabular_eval): modules deferred until
used still work when used, and tables evaluated without scipy give scipy's values bit for bit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.modeling import models as am
from astropy.modeling.tabular import _Tabular
from scipy.interpolate import interpn

from spec3c.tabular_eval import evaluate_linear_table, evaluate_tables_without_scipy

_DEFERRED_THEN_USED = r'''
import sys
from spec3c.import_hooks import DEFERRED, defer_unused_imports
defer_unused_imports()
import gwcs, astropy.modeling.models, numpy
waiting = sorted(n for n in DEFERRED if n in sys.modules
                 and getattr(vars(sys.modules[n]).get("__getattr__"), "__name__", "") == "first_use")
print("waiting", ",".join(waiting))
from astropy.modeling import fitting
fitter = fitting.LinearLSQFitter()                      # runs the module on first use
line = fitter(astropy.modeling.models.Linear1D(), numpy.arange(5.0), 2 * numpy.arange(5.0) + 1)
from scipy.optimize import brentq
from scipy import linalg
root = brentq(lambda x: x * x - 2, 0, 2)
print("used", round(line.slope.value, 6), round(line.intercept.value, 6), round(root, 6),
      float(linalg.det(numpy.eye(2))), numpy.testing.assert_equal(1, 1))
'''


def test_deferred_modules_wait_and_then_work():
    """gwcs and astropy.modeling import with the fitters and solvers still waiting; using them runs them."""
    out = subprocess.run([sys.executable, "-c", _DEFERRED_THEN_USED], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert {"astropy.modeling.fitting", "scipy.linalg", "scipy.optimize"} <= set(out[0].split()[1].split(","))
    assert out[1] == "used 2.0 1.0 1.414214 1.0 None"


def test_a_deferred_module_gives_its_file_without_running():
    """astropy's configuration asks every loaded module for ``__file__``: that must not run it."""
    code = ("from spec3c.import_hooks import defer_unused_imports; defer_unused_imports()\n"
            "import numpy.f2py as f, sys\n"
            "print(f.__file__.endswith('__init__.py'), '__getattr__' in vars(f), hasattr(f, 'no_such_name'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "False"]


def _cases():
    rng = np.random.default_rng(5)
    up = np.cumsum(rng.uniform(0.1, 1.0, 40))
    table = rng.normal(size=40) * 1e3
    x = np.concatenate([rng.uniform(up[0] - 2, up[-1] + 2, 500), up, [np.nan, up[0], up[-1]]])
    yield up, table, x, False, np.nan  # inside, outside (NaN), on the nodes, NaN input
    yield up[::-1], table, x, False, np.nan  # a descending grid
    yield up, table, x, False, None  # extrapolated
    yield up, table.astype(np.float32), x, False, -1.0  # float32 table, a fill value
    yield up, table, np.clip(x[:500], up[0], up[-1]), True, np.nan  # bounds checked, all inside


@pytest.mark.parametrize("case", list(_cases()), ids=["inside", "descending", "extrapolated", "float32", "bounded"])
def test_linear_tables_are_scipys_bit_for_bit(case):
    points, table, x, bounds_error, fill = case
    ours = evaluate_linear_table(points, table, x, bounds_error, fill)
    theirs = interpn((points,), table, x[:, None], method="linear", bounds_error=bounds_error, fill_value=fill)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)  # NaN where NaN
    assert np.array_equal(ours.view(np.uint64 if ours.itemsize == 8 else np.uint32),
                          theirs.view(np.uint64 if theirs.itemsize == 8 else np.uint32))


def test_out_of_bounds_raises_as_scipy_does():
    points = np.arange(5.0)
    with pytest.raises(ValueError, match="out of bounds"):
        evaluate_linear_table(points, points, np.array([1.0, 7.0]), True, np.nan)
    with pytest.raises(ValueError, match="out of bounds"):
        interpn((points,), points, np.array([[1.0], [7.0]]), bounds_error=True)


def test_models_evaluate_as_before(monkeypatch):
    """A Tabular1D (as in MIRI LRS gwcs) gives the same values with its evaluation replaced; others fall back."""
    monkeypatch.setattr(_Tabular, "evaluate", _Tabular.evaluate)  # restored after the test
    one = am.Tabular1D(points=np.linspace(0, 9, 10), lookup_table=np.linspace(5, 14, 10) ** 2,
                       bounds_error=False)
    two = am.Tabular2D(points=(np.arange(4.0), np.arange(5.0)), lookup_table=np.arange(20.0).reshape(4, 5),
                       bounds_error=False)
    x = np.linspace(-1, 10, 57).reshape(3, 19)
    before = one(x), two(x[:, :4] / 3, x[:, :4] / 2)
    evaluate_tables_without_scipy()
    assert getattr(_Tabular.evaluate, "scipy_free", False)
    after = one(x), two(x[:, :4] / 3, x[:, :4] / 2)
    for b, a in zip(before, after, strict=True):
        assert b.shape == a.shape
        np.testing.assert_array_equal(a, b)
