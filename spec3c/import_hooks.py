"""Start-up of spec3c's own processes: imports deferred until used, and set-up run after an import.

Deferred (:data:`DEFERRED`): modules that gwcs, astropy.modeling and scipy
import at every start for what few runs call: astropy.modeling's fitters
(with astropy.nddata and scipy.sparse), scipy.optimize and scipy.linalg
(gwcs's iterative inverse and SIP fits; with scipy.fft and scipy.special),
numpy.f2py and numpy.testing (scipy's array-API layer asks numpy for every
name it has).  After :func:`defer_unused_imports`, importing one gives a
module that has its name, file, path and spec but runs its code the first
time any other attribute is asked of it: ``from scipy.optimize import root``
or ``fitting.LinearLSQFitter`` then import it as usual.  A module whose code
has not run answers ``__file__`` and ``__spec__`` without running it, so
astropy's configuration (which asks every loaded module for its file) does
not set it off.

After an import (:data:`_AFTER_IMPORT`): when astropy.modeling.tabular is
imported, its linear 1-D tables are given an evaluation that needs no
scipy.interpolate (:mod:`spec3c.tabular_eval`).

Called by the ``spec3c`` command and its worker processes, not on import of
spec3c: a program that uses spec3c as a library keeps its imports as they are.
Together they take ~0.2 s off a MIRI LRS run (1.5 -> 1.3 s).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: imported at start-up by gwcs, astropy.modeling and scipy, used by few runs
DEFERRED = frozenset({"astropy.modeling.fitting", "astropy.nddata", "scipy.optimize", "scipy.linalg",
                      "numpy.f2py", "numpy.testing"})

__all__ = ["DEFERRED", "AfterImportLoader", "defer_unused_imports"]

_LOCK = threading.RLock()  # one thread runs a deferred module's code; another waits for it


def _set_up_tables(module: ModuleType) -> None:
    from .tabular_eval import evaluate_tables_without_scipy

    evaluate_tables_without_scipy()


#: module name -> what runs once the module has been imported
_AFTER_IMPORT: dict[str, Callable[[ModuleType], None]] = {"astropy.modeling.tabular": _set_up_tables}


class _DeferredLoader(importlib.abc.Loader):
    """Creates the module as ``inner`` would and leaves its code to the first attribute asked of it."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__["__getattr__"] = _runs_on_first_use(module, self._inner)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader...: the inner loader's
        return getattr(self._inner, name)


def _runs_on_first_use(module: ModuleType, inner: importlib.abc.Loader) -> Any:
    """The module-level ``__getattr__`` (PEP 562) that runs ``module``'s code, then answers."""

    def first_use(name: str) -> Any:
        with _LOCK:
            if module.__dict__.get("__getattr__") is first_use:
                del module.__dict__["__getattr__"]
                module.__loader__ = inner
                if module.__spec__ is not None:
                    module.__spec__.loader = inner
                inner.exec_module(module)
        if name in module.__dict__:
            return module.__dict__[name]
        own = module.__dict__.get("__getattr__")  # the module's own PEP 562 hook, if it has one
        if own is not None:
            return own(name)
        raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

    return first_use


class AfterImportLoader(importlib.abc.Loader):
    """Runs the module as ``inner`` would, then ``after(module)``."""

    def __init__(self, inner: importlib.abc.Loader, after: Callable[[ModuleType], None]) -> None:
        self._inner = inner
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        self._after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader...: the inner loader's
        return getattr(self._inner, name)


class _StartupFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of ``deferred`` and :data:`_AFTER_IMPORT` with the ordinary path finder
    and wraps their loaders."""

    def __init__(self, deferred: frozenset[str]) -> None:
        self.deferred = deferred

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        after = _AFTER_IMPORT.get(fullname)
        if fullname not in self.deferred and after is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        inner: Any = spec.loader
        if fullname in self.deferred:
            spec.loader = _DeferredLoader(inner)
        elif after is not None:
            spec.loader = AfterImportLoader(inner, after)
        return spec


def defer_unused_imports(deferred: frozenset[str] = DEFERRED) -> None:
    """From now on the modules of ``deferred`` not loaded yet run their code on first use, and
    :data:`_AFTER_IMPORT`'s set-up follows its module's import (at once if it is loaded)."""
    if any(isinstance(finder, _StartupFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _StartupFinder(frozenset(n for n in deferred if n not in sys.modules)))
    for name, after in _AFTER_IMPORT.items():
        if name in sys.modules:
            after(sys.modules[name])
