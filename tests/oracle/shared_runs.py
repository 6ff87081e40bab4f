"""Reference runs that several oracle test modules compare against, made once per test session.

A jwst run takes 10-60 s; the modules that look at the same dataset from
different sides (products, headers, outlier flags, x1d) share one run.  Under
pytest-xdist the workers share it too: the first to need it builds it under a
file lock in the session's common temporary folder, the others wait and load
it (:func:`shared`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared_cache import shared

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import load_association
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

# -- slit modes: master_background, moving targets, MIRI LRS (test_modes_reference, test_headers_reference) --

_LRS_FS = [{"id": "MIR_LRS-FIXEDSLIT", "disp_axis": 2, "extract_width": 9, "use_source_posn": True}]
SLIT_CASES = {
    # name: (mode, simulate kwargs, apertures, instrument, exp_type, jwst steps, spec3c overrides)
    "fs-background": ("nirspec-fs", {"n_exposures": 3, "n_columns": 400, "with_background": 2},
                      [{"id": "ANY", "extract_width": 9, "use_source_posn": True}], "NIRSPEC", "NRS_FIXEDSLIT",
                      {"master_background": {"save_background": True}},
                      {"master_background": {"save_background": True}}),
    "mos-moving": ("nirspec-mos", {"n_exposures": 3, "n_columns": 300, "n_sources": 5, "moving_target": True},
                   [{"id": "NRS_MSASPEC", "extract_width": 5, "use_source_posn": True}], "NIRSPEC", "NRS_MSASPEC",
                   {}, {}),
    "lrs-fs-background": ("miri-lrs-fs", {"n_exposures": 2, "with_background": 2}, _LRS_FS, "MIRI",
                          "MIR_LRS-FIXEDSLIT", {}, {}),
    "lrs-slitless": ("miri-lrs-slitless", {"n_exposures": 3},
                     [{"id": "MIR_LRS-SLITLESS", "disp_axis": 2, "xstart": 33, "xstop": 41,
                       "bkg_coeff": [[11.5], [26.5], [47.5], [62.5]], "bkg_order": 0}],
                     "MIRI", "MIR_LRS-SLITLESS", {"resample_spec": {"skip": True}}, {}),
}


def slit_case(name: str, tmp_path_factory: Any, oracle: Any, jwst_py: Path) -> tuple[Path, Path]:
    """(reference products folder, spec3c products folder) of one :data:`SLIT_CASES` entry."""

    def build(root: Path) -> tuple[Path, Path, int, str]:
        mode, sim_kw, apertures, instrument, exp_type, ref_steps, ours_steps = SLIT_CASES[name]
        sim = simulate(mode, root / "input", SimOptions(seed=5, **sim_kw))
        ap = oracle.write_extract1d_json(root / "extract1d.json", [{"disp_axis": 1, **a} for a in apertures],
                                         instrument=instrument, exp_type=exp_type)
        ref = oracle.run_reference(sim.asn_path, root / "reference", extract1d=ap, steps=ref_steps,
                                   timeout=900, python=jwst_py)
        if ref.returncode != 0:
            return root / "reference", root / "ours", ref.returncode, ref.log_path.read_text()[-3000:]
        ingest(sim.asn_path, root / "store")
        config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(ap)}, **ours_steps})
        report = process_store(root / "store", config=config, workers=1)
        assert not report.failed, [r.error for r in report.failed]
        with open_store(root / "store") as store:
            asn = load_association(store)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
        export_store(root / "store", root / "ours", naming, workers=1)
        return root / "reference", root / "ours", 0, ""

    ref_dir, ours_dir, returncode, log_tail = shared(tmp_path_factory, f"slit-{name}", build)
    assert returncode == 0, log_tail
    return ref_dir, ours_dir


# -- IFU: one calwebb_spec3 run per instrument (products/truth, outlier flags, x1d end to end) --

#: MIRI MRS: 4 dithers of channels 1 and 2, SHORT (MIRIFUSHORT)
MRS_OPTIONS = SimOptions(seed=3, n_exposures=4, channels=(1, 2), bands=("SHORT",))
#: NIRSpec IFU: 4 dithers of one point source, 128 columns per slice
NIRSPEC_IFU_OPTIONS = SimOptions(seed=21, n_exposures=4, n_sources=1, n_columns=128)


def ifu_reference(mode: str, tmp_path_factory: Any, oracle: Any, jwst_py: Path) -> tuple[Any, Any, dict]:
    """(simulation result, jwst ReferenceRun, jwst step parameters) of calwebb_spec3 on the IFU dataset of ``mode``.

    The simulator's CUBEPAR/EXTRACT1D/APCORR (and for MRS MRSPTCORR) files,
    aperture correction on and no residual-fringe correction (spec3c has none).
    """
    if mode == "miri-mrs":
        from spec3c.simulate.miri.mrs import reference_file_paths
        options = MRS_OPTIONS
    else:
        from spec3c.simulate.nirspec.ifu import reference_file_paths
        options = NIRSPEC_IFU_OPTIONS

    def build(root: Path) -> tuple[Any, Any, dict]:
        res = simulate(mode, root / "input", options)
        steps = reference_file_paths(res.asn_path).jwst_overrides()
        steps["extract_1d"].update(apply_apcorr=True, ifu_rfcorr=False)
        run = oracle.run_reference(res.asn_path, root / "jwst", steps=steps, timeout=1800, python=jwst_py)
        return res, run, steps

    return shared(tmp_path_factory, f"ifu-{mode}", build)


def ifu_spec3c_run(mode: str, tmp_path_factory: Any, reference: tuple) -> Path:
    """The folder of ``spec3c run`` products (``_crf``, ``_s3d``, ``_x1d``) on the IFU dataset of ``mode``,
    with the jwst run's cube_build and extract_1d parameters; once per session, shared by the
    outlier and x1d comparisons."""
    from click.testing import CliRunner

    from spec3c.cli import main

    res, _, steps = reference

    def build(root: Path) -> tuple[Path, int, str]:
        args = ["run", str(res.asn_path), "--output-dir", str(root / "spec3c"), "--workers", "1"]
        for step in ("cube_build", "extract_1d"):
            args += [f"--steps.{step}.{k}={v}" for k, v in steps[step].items()]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        return root / "spec3c", result.exit_code, result.output[-3000:]

    folder, exit_code, output = shared(tmp_path_factory, f"spec3c-ifu-{mode}", build)
    assert exit_code == 0, output
    return folder


#: MIRI MRS master background: 2 dithers of channels 1+2 SHORT keeping their sky, 1 blank-sky background member
MRS_BACKGROUND_OPTIONS = SimOptions(seed=3, n_exposures=2, channels=(1,), bands=("SHORT",), n_sources=1,
                                    with_background=1)


def mrs_background_case(tmp_path_factory: Any, oracle: Any, jwst_py: Path) -> tuple[Any, Path, Path]:
    """(simulation, jwst products folder, spec3c products folder) of calwebb_spec3 and spec3c on
    :data:`MRS_BACKGROUND_OPTIONS`, both with ``master_background.save_background``."""
    from spec3c.simulate.miri.mrs import reference_file_paths

    def build(root: Path) -> tuple[Any, Path, Path, int, str]:
        res = simulate("miri-mrs", root / "input", MRS_BACKGROUND_OPTIONS)
        steps = reference_file_paths(res.asn_path).jwst_overrides()
        steps["extract_1d"].update(apply_apcorr=True, ifu_rfcorr=False)
        steps["master_background"] = {"save_background": True}
        run = oracle.run_reference(res.asn_path, root / "jwst", steps=steps, timeout=1800, python=jwst_py)
        if run.returncode != 0:
            return res, root / "jwst", root / "ours", run.returncode, run.log_path.read_text()[-3000:]
        ingest(res.asn_path, root / "store")
        report = process_store(root / "store", config=resolve_config(overrides=steps), workers=1)
        assert not report.failed, [r.error for r in report.failed]
        with open_store(root / "store") as store:
            asn = load_association(store)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
        export_store(root / "store", root / "ours", naming, workers=1)
        return res, root / "jwst", root / "ours", 0, ""

    res, ref_dir, ours_dir, returncode, log_tail = shared(tmp_path_factory, "ifu-mrs-background", build)
    assert returncode == 0, log_tail
    return res, ref_dir, ours_dir
