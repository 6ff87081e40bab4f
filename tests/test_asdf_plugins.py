"""spec3c's processes load only the ASDF plugins JWST files use, and parse their manifests with libyaml."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from spec3c.simulate import SimOptions, simulate

#: in a fresh interpreter: the spec3c command's set-up, then a JWST file's gwcs read and evaluated
_CHECK = """
import sys
from spec3c.asdf_plugins import JWST_ASDF_PACKAGES, _normalised, load_only_jwst_plugins
load_only_jwst_plugins()
import asdf
from asdf.extension import _manifest
from stdatamodels.jwst import datamodels
packages = {_normalised(e.package_name) for e in asdf.get_config().extensions}
assert packages <= JWST_ASDF_PACKAGES and {"gwcs", "stdatamodels", "asdf-astropy"} <= packages, packages
assert not [m for m in sys.modules if m.split(".")[0] in ("specutils", "ndcube", "matplotlib")]
assert _manifest.yaml.safe_load("a: [1, 2]") == {"a": [1, 2]} and type(_manifest.yaml).__name__ == "_LibyamlSafeLoad"
import json
with datamodels.open(sys.argv[1]) as model:
    print(json.dumps([float(v) for v in model.slits[0].meta.wcs(10.0, 3.0)]))
"""


def test_jwst_files_read_the_same_with_only_their_plugins(tmp_path):
    simulate("nirspec-fs", tmp_path, SimOptions(seed=3, n_exposures=1, n_columns=120))
    cal = sorted(tmp_path.glob("*_cal.fits"))[0]
    out = subprocess.run([sys.executable, "-c", _CHECK, str(cal)], capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    with datamodels.open(cal) as model:  # this process: asdf with every installed plugin
        expected = model.slits[0].meta.wcs(10.0, 3.0)
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(json.loads(out.stdout), np.asarray(expected, dtype=float))


@pytest.mark.parametrize(("built", "reset"), [("resource_manager", "reset_resources"),
                                              ("extensions", "reset_extensions")])
def test_config_contexts_share_what_the_configuration_built(built, reset):
    """asdf.config_context() copies the current configuration; a copy made before that configuration
    built its resource manager or its extension list lists every plugin's entry points again
    (~90 ms and ~300 ms per WCS read)."""
    import asdf

    from spec3c.asdf_plugins import config_context

    getattr(asdf.get_config(), reset)()  # as in a fresh process
    with config_context() as first:
        shared = getattr(first, built)
    with config_context() as second:
        assert getattr(second, built) is shared
    assert getattr(asdf.get_config(), built) is shared
