"""SlitModel cal files (one slit per file) for NIRSpec FS/MOS, as jwst 3.0.0 processes them.

The reference runs no exp_to_source on SlitModel inputs: the association is
one source; it writes one ``_crf`` per input file (``<input>_<asn_id>_crf``)
and one ``_s2d``/``_x1d`` named with the association's product name as it is
(its ``{source_id}``/``{slit_name}`` fields unfilled), no source-based
``_cal``.  Without jwst, the same slit given as SlitModel files must give the
spectrum the MultiSlitModel exposures give; with jwst, the products (names,
data, DQ) must be the reference's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from single_step_helpers import run_pipeline, split_slits, write_asn

from spec3c.asn import read_association
from spec3c.cli import main
from spec3c.compare import Tolerances, compare_dirs
from spec3c.config import resolve_config
from spec3c.errors import Spec3cError
from spec3c.modes.registry import mode_of_store
from spec3c.simulate import SimOptions, simulate
from spec3c.single_step.exposures import load_store

APERTURES = Path(__file__).resolve().parents[2] / "examples" / "extract1d_nirspec_fs.json"
TEMPLATE = "jw01309-o022_t001-{source_id}_nirspec_f290lp-g395h-{slit_name}"
SLIT = "S200A1"


@pytest.fixture(scope="module")
def slit_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("slitmodel")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=4, n_exposures=2, n_columns=200))
    files = split_slits(sim.cal_paths, root / "slits", slits=[SLIT])
    asn = write_asn(root / "slits" / "slits_asn.json", files, TEMPLATE)
    return root, sim, files, asn


def _run(asn: Path, out: Path) -> None:
    res = CliRunner().invoke(main, ["run", str(asn), "-o", str(out), "--workers", "1",
                                    f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output


def test_slitmodel_files_give_the_reference_products_and_the_multislit_spectrum(slit_files):
    root, sim, files, asn = slit_files
    store = load_store(read_association(asn))
    assert mode_of_store(store).name == "nirspec-fs-slitmodel" and store.sources() == ["1"]
    _run(asn, root / "spec3c")
    names = sorted(p.name for p in (root / "spec3c").glob("*.fits"))
    assert names == sorted([f"{TEMPLATE}_s2d.fits", f"{TEMPLATE}_x1d.fits",
                            *(f.name.replace("_cal.fits", "_o022_crf.fits") for f in files)])
    with fits.open(root / "spec3c" / files[0].name.replace("_cal.fits", "_o022_crf.fits")) as crf:
        assert crf[0].header["DATAMODL"] == "SlitModel" and crf["SCI"].header["SLTNAME"] == SLIT
    # the same slit from the MultiSlitModel exposures: the same spectrum
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(APERTURES)}})
    multislit = run_pipeline(read_association(sim.asn_path), config, root / "multislit", ("x1d",))
    x1d = next(p for p in multislit if f"-{SLIT.lower()}_x1d" in p.name)
    with fits.open(x1d) as ref, fits.open(root / "spec3c" / f"{TEMPLATE}_x1d.fits") as ours:
        a, b = ours["EXTRACT1D"].data, ref["EXTRACT1D"].data
        np.testing.assert_allclose(a["WAVELENGTH"], b["WAVELENGTH"], rtol=1e-12)
        np.testing.assert_allclose(a["FLUX"], b["FLUX"], rtol=1e-6, equal_nan=True)


def test_slitmodel_and_multislit_files_do_not_mix(slit_files):
    root, sim, files, _ = slit_files
    multislit = root / "slits" / sim.cal_paths[1].name
    multislit.write_bytes(sim.cal_paths[1].read_bytes())
    mixed = write_asn(root / "slits" / "mixed_asn.json", [files[0], multislit], TEMPLATE)
    store = load_store(read_association(mixed))
    with pytest.raises(Spec3cError, match="mixes MultiSlitModel and SlitModel files"):
        mode_of_store(store)


@pytest.mark.oracle
@pytest.mark.slow
def test_slitmodel_products_match_jwst(slit_files, oracle, jwst_py):
    root, _, _, asn = slit_files
    if not (root / "spec3c").is_dir():
        _run(asn, root / "spec3c")
    run = oracle.run_reference(asn, root / "jwst", extract1d=APERTURES, timeout=900)
    assert run.ok, run.log_path.read_text()[-3000:]
    report = compare_dirs(root / "spec3c", root / "jwst",
                          Tolerances(median_rel=1e-4, ignore_hdus=("PROVENANCE", "WCS-TABLE", "HDRTAB")))
    print(report.render())
    assert not report.only_a and not report.only_b  # the same names
    assert report.ok, report.failures()
