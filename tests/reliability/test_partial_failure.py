"""When some sources fail, the others are still processed and exported; the failures are listed
with their reasons and the exit status is 1."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from harness import asn_of, data_differences, product_data

from spec3c.check import check_store
from spec3c.cli import main

#: the simulated slit whose aperture the user got wrong
BAD_SLIT = "S400A1"


def _apertures_with_one_mistake(path: Path) -> Path:
    """The example apertures, with an entry for one slit whose src_coeff has no upper limit."""
    good = {"id": "ANY", "region_type": "target", "disp_axis": 1, "extract_width": 9, "use_source_posn": True}
    bad = {"id": BAD_SLIT, "region_type": "target", "disp_axis": 1, "src_coeff": [[10.0]]}
    path.write_text(json.dumps({"reftype": "EXTRACT1D", "instrument": "NIRSPEC", "exp_type": "NRS_FIXEDSLIT",
                                "apertures": [bad, good]}))
    return path


def test_run_exports_the_good_sources(fs_input, fs_output, tmp_path):
    apertures = _apertures_with_one_mistake(tmp_path / "extract1d.json")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(asn_of(fs_input)), "-o", str(out), "--workers", "1",
                                    f"--steps.extract_1d.override_extract1d={apertures}"])
    print(res.output)
    assert res.exit_code == 1, res.output
    assert "1 source(s) failed and have no products:" in res.output
    assert "src_coeff/bkg_coeff must alternate lower and upper limit polynomials" in res.output
    assert "Traceback" not in res.output
    products = product_data(out)
    assert len(products) == 8 and not [n for n in products if BAD_SLIT.lower() in n]
    reference = {n: d for n, d in product_data(fs_output).items() if BAD_SLIT.lower() not in n}
    # the good sources' products are the usual ones (but for the aperture file they record)
    assert data_differences(products, reference, ignore=("ASDF", "PROVENANCE")) == []
    report = check_store(out / "spec3c.store")
    assert report.ok and report.sources_failed == 1 and report.sources_complete == 2
