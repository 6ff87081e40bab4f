"""cube_build against jwst 3.0.0's ``CubeBuildStep`` on the same synthetic IFU cal files.

MIRI MRS (4 dithers, channels 1 and 2, drizzle band cubes and a non-linear
multi cube) and NIRSpec IFU (4 dithers, drizzle; one exposure in
``internal_cal``), with a flat scene plus a point source, a 20 degree position
angle and the same CUBEPAR.  The reference runs offline in its own venv; spec3c
ingests the files, builds the cubes and writes the ``_s3d`` products.  The
products must have the same names and shapes, and the same SCI/ERR/WMAP/DQ
(to float32 rounding: jwst clips drizzle polygons with a single-precision
slope).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from ifu_inputs import DEC0, RA0, Scene, ingested_set

from spec3c.config import resolve_config
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products.s3d import write_s3d
from spec3c.results import load_association
from spec3c.steps import cube_build
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

SCENE = Scene(flat=1.0, point_flux=50.0, point_ra=RA0 + 0.3 / 3600, point_dec=DEC0 - 0.2 / 3600)

# Runs in the jwst venv: argv = association, output folder, CubeBuildStep parameters (JSON)
SCRIPT = """
import json, sys
from jwst.cube_build import CubeBuildStep
CubeBuildStep.call(sys.argv[1], output_dir=sys.argv[2], save_results=True, **json.loads(sys.argv[3]))
"""


def _reference(oracle, jwst_py: Path, asn: Path, out: Path, params: dict) -> list[Path]:
    out.mkdir(parents=True)
    script = out / "run_cube_build.py"
    script.write_text(SCRIPT)
    env = oracle.offline_env(oracle.make_crds_cache(out / "crds"))
    done = subprocess.run([str(jwst_py), str(script), str(asn), str(out), json.dumps(params)], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return sorted(out.glob("*_s3d.fits"))


def _spec3c(ingested, out: Path, params: dict) -> list[Path]:
    store_path = out / "store"
    shutil.copytree(ingested.store, store_path)
    with open_store(store_path, mode="a") as store:
        config = resolve_config(overrides={"cube_build": {k: str(v) for k, v in params.items()}})
        ctx = StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"), config)
        assert cube_build.run(ctx).status == "COMPLETE"
        asn = load_association(store)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], None, asn["table_name"])
        return sorted(write_s3d(store, "1", naming, out / "products"))


def _compare(reference: list[Path], ours: list[Path]) -> None:
    assert [p.name for p in ours] == [p.name for p in reference]
    for ref, mine in zip(reference, ours, strict=True):
        with fits.open(ref) as a, fits.open(mine) as b:
            assert a["SCI"].data.shape == b["SCI"].data.shape, ref.name
            assert a["SCI"].header.get("CTYPE3") == b["SCI"].header.get("CTYPE3")
            for key in ("CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT3", "PC1_1", "PC1_2"):
                if key in a["SCI"].header or key in b["SCI"].header:
                    assert a["SCI"].header[key] == pytest.approx(b["SCI"].header[key], rel=1e-12), key
            sci_a, sci_b = a["SCI"].data.astype(float), b["SCI"].data.astype(float)
            np.testing.assert_array_equal(np.isnan(sci_a), np.isnan(sci_b))
            covered = a["WMAP"].data > 0
            rel = np.abs(sci_a - sci_b)[covered] / np.abs(sci_a[covered])
            assert np.median(rel) <= 1e-3 and rel.max() < 1e-6, (ref.name, rel.max())
            np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
            agree = np.mean(a["WMAP"].data == b["WMAP"].data)
            assert agree > 0.9999, agree
            np.testing.assert_allclose(b["WCS-TABLE"].data["wavelength"], a["WCS-TABLE"].data["wavelength"], rtol=1e-7)


@pytest.mark.parametrize(
    ("kind", "n_dithers", "params"),
    [
        ("miri", 4, {}),
        ("miri", 4, {"output_type": "multi", "weighting": "emsm"}),
        ("nirspec", 4, {}),
        ("nirspec", 1, {"coord_system": "internal_cal"}),
    ],
    ids=["miri-band-drizzle", "miri-multi-emsm", "nirspec-drizzle", "nirspec-internal_cal"],
)
def test_cubes_match_the_reference(tmp_path_factory, tmp_path, oracle, jwst_py, kind, n_dithers, params):
    ingested = ingested_set(tmp_path_factory, kind, SCENE, n_dithers=n_dithers)
    full = {"override_cubepar": str(ingested.cubepar), **params}
    reference = _reference(oracle, jwst_py, ingested.files.asn, tmp_path / "ref", full)
    assert reference, "the reference wrote no cube"
    _compare(reference, _spec3c(ingested, tmp_path / "spec3c", full))
