"""Exact incremental re-processing and provenance: a source is recomputed exactly when what it is
computed from changed; export rewrites exactly the products that changed; products say what made them
and ``spec3c verify`` recomputes them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from stdatamodels.jwst import datamodels as dm

from spec3c.asn import read_association
from spec3c.cli import main
from spec3c.ingest import ingest
from spec3c.parallel import shared_executor
from spec3c.process import NEW, process_store
from spec3c.products import ProductNaming, export_store
from spec3c.provenance import REASONS, file_sha256
from spec3c.results import STATUS
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store
from spec3c.verify import compare_products

ROOT = Path(__file__).resolve().parents[1]
FS_APERTURES = ROOT / "examples" / "extract1d_nirspec_fs.json"


def _run(args: list[str]) -> str:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res.output


# -- parameters, reference files, tampered products: spec3c run into one folder ---------------------


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=3, n_exposures=2, n_columns=120))
    apertures = root / "apertures.json"
    shutil.copy(FS_APERTURES, apertures)
    args = ["run", str(sim.asn_path), "-o", str(root / "out"), "--workers", "1",
            f"--steps.extract_1d.override_extract1d={apertures}"]
    first = _run(args)
    return {"root": root, "sim": sim, "args": args, "apertures": apertures, "first": first}


def _pixfrac(path: Path) -> float:
    with fits.open(path) as hdul:
        return float(hdul[0].header["PIXFRAC"])


@pytest.mark.slow
def test_rerun_with_new_pixfrac_recomputes_and_rewrites(fs):
    """The issue's bug: a re-run with another pixfrac kept the old products (PIXFRAC=1.0)."""
    out = fs["root"] / "out"
    s2d = sorted(out.glob("*_s2d.fits"))
    assert len(s2d) == 3 and all(_pixfrac(p) == 1.0 for p in s2d)
    again = _run([*fs["args"], "--steps.resample_spec.pixfrac=0.5"])
    assert "processed 3 sources (0 failed), 0 already complete" in again
    assert f"recomputed 3: {REASONS['parameters']}" in again
    assert all(_pixfrac(p) == 0.5 for p in s2d)
    assert "wrote 12 products" in again  # every product of a recomputed source is written again
    # the same command once more: nothing to recompute, nothing to write
    same = _run([*fs["args"], "--steps.resample_spec.pixfrac=0.5"])
    assert "processed 0 sources" in same and "3 already complete" in same
    assert "wrote 0 products" in same and "(12 unchanged)" in same
    # a product changed (or removed) behind spec3c's back is written again, and only that one
    x1d = sorted(out.glob("*_x1d.fits"))
    with fits.open(x1d[0], mode="update") as hdul:
        hdul["EXTRACT1D"].data["FLUX"][5] += 1.0
    x1d[1].unlink()
    store = str(out / "spec3c.store")
    exported = _run(["export", store, "-o", str(out), "--workers", "1"])
    assert "wrote 2 products" in exported and "(10 unchanged)" in exported
    assert x1d[1].exists()
    res = CliRunner().invoke(main, ["verify", str(x1d[0]), "--store", store])
    assert res.exit_code == 0 and "identical" in res.output


@pytest.mark.slow
def test_changed_reference_file_recomputes(fs):
    args = [*fs["args"], "--steps.resample_spec.pixfrac=0.5"]  # what the folder was last made with (test above)
    aperture = json.loads(fs["apertures"].read_text())
    aperture["apertures"][0]["extract_width"] = 7  # same file name, other content
    fs["apertures"].write_text(json.dumps(aperture))
    res = _run(args)
    assert f"recomputed 3: {REASONS['references']}" in res
    assert "wrote 12 products" in res  # the x1d changed, and every product records the file's sha256
    assert "processed 0 sources" in _run(args)


def test_products_carry_provenance(fs):
    out = fs["root"] / "out"
    files = {Path(p).name: file_sha256(p) for p in fs["sim"].cal_paths}
    for path in sorted(out.glob("*.fits")):
        with fits.open(path) as hdul:
            header = hdul[0].header
            assert header["CAL_VER"] and header["CAL_VCS"].startswith("spec3c")
            if path.name.endswith("_x1d.fits"):
                assert header["R_EXTR1D"] == str(fs["apertures"].resolve())
            prov = hdul["PROVENANCE"]
            assert prov.header["S3CSRC"] and len(prov.header["S3CKEY"]) == 64
            rows = {(r["KIND"], r["NAME"]): (r["VALUE"], r["SHA256"]) for r in prov.data}
        inputs = {name: sha for (kind, name), (_, sha) in rows.items() if kind == "input"}
        assert inputs and all(files[name] == sha for name, sha in inputs.items())
        assert rows[("reference", "extract_1d.override_extract1d")][1] == file_sha256(fs["apertures"])
        assert ("software", "spec3c") in rows and ("software", "stdatamodels") in rows
        assert ("parameter", "resample_spec.pixfrac") in rows and ("key", "digest") in rows


def test_verify_confirms_and_detects_altered_data(fs, tmp_path):
    out = fs["root"] / "out"
    store = str(out / "spec3c.store")
    s2d = sorted(out.glob("*_s2d.fits"))[0]
    res = CliRunner().invoke(main, ["verify", str(s2d), "--store", store])
    assert res.exit_code == 0, res.output
    assert "identical" in res.output
    altered = tmp_path / s2d.name
    shutil.copy(s2d, altered)
    with fits.open(altered, mode="update") as hdul:
        sci = hdul["SCI"].data
        sci[np.unravel_index(np.nanargmax(sci), sci.shape)] *= 1.0001
    res = CliRunner().invoke(main, ["verify", str(altered), "--store", store])
    assert res.exit_code == 1
    assert "DIFFERS" in res.output and "SCI): data differ" in res.output
    bad = tmp_path / "plain.fits"
    fits.PrimaryHDU().writeto(bad)
    res = CliRunner().invoke(main, ["verify", str(bad), "--store", store])
    assert res.exit_code != 0 and "no PROVENANCE extension" in res.output


# -- a new exposure holding 5 of 20 sources ---------------------------------------------------------------


def _write_asn(template: Path, members: list[Path], dest: Path) -> Path:
    doc = json.loads(template.read_text())
    doc["products"][0]["members"] = [{"expname": p.name, "exptype": "science"} for p in members]
    dest.write_text(json.dumps(doc))
    return dest


@pytest.fixture(scope="module")
def mos(tmp_path_factory):
    """20 sources in 3 exposures, and a 4th exposure that holds only 5 of them."""
    root = tmp_path_factory.mktemp("mos")
    sim = simulate("nirspec-mos", root / "in", SimOptions(seed=5, n_sources=20, n_exposures=4, n_columns=100))
    cals = sorted(Path(p) for p in sim.cal_paths)
    with dm.open(cals[3]) as model:
        while len(model.slits) > 5:
            model.slits.pop()
        kept = [str(s.source_name) for s in model.slits]
        model.save(cals[3])
    return {"root": root, "template": sim.asn_path, "cals": cals, "kept": kept,
            "naming": ProductNaming.from_association(read_association(sim.asn_path))}


#: the science products compared (cal and crf add ~2 s of serialisation per source and test nothing more here)
SUFFIXES = ("s2d", "x1d")


@pytest.mark.slow
def test_new_exposure_recomputes_exactly_its_sources(mos):
    root, naming = mos["root"], mos["naming"]
    store, scratch, asn = root / "store", root / "scratch", mos["template"]
    with shared_executor(None, 2, warm=("spec3c.process", "spec3c.products.export")):
        _write_asn(mos["template"], mos["cals"][:3], asn)  # the association before the last exposure
        ingest(asn, store)
        first = process_store(store)
        assert len(first.processed) == 20 and not first.failed
        export_store(store, root / "out", naming, SUFFIXES)

        _write_asn(mos["template"], mos["cals"], asn)  # the same association, one exposure more
        ingest(asn, store)
        again = process_store(store)
        assert sorted(r.source for r in again.processed) == sorted(mos["kept"])
        assert len(again.already_done) == 15 and not again.failed
        assert again.reasons() == {REASONS["inputs"]: 5}
        written = export_store(store, root / "out", naming, SUFFIXES)
        assert len(written.written) == 5 * 2 and len(written.unchanged) == 15 * 2

        ingest(asn, scratch)  # the same data from scratch
        process_store(scratch)
        export_store(scratch, root / "scratch_out", naming, SUFFIXES)
    ours = sorted((root / "out").glob("*.fits"))
    theirs = sorted((root / "scratch_out").glob("*.fits"))
    assert [p.name for p in ours] == [p.name for p in theirs] and len(ours) == 20 * 2
    for a, b in zip(ours, theirs, strict=True):
        assert compare_products(a, b) == [], a.name


@pytest.mark.slow
def test_interrupted_source_is_recomputed_and_not_exported_half_done(mos, tmp_path):
    """A source whose status is missing (a run that died before writing it) is not complete."""
    store = tmp_path / "store"
    shutil.copytree(mos["root"] / "store", store)
    with open_store(store, mode="a") as s:
        source = s.sources()[0]
        s.delete_result(source, STATUS)
    out = tmp_path / "out"
    paths = export_store(store, out, mos["naming"], sources=[source], workers=1)
    assert [p.name.rsplit("_", 1)[1] for p in paths] == ["cal.fits"]  # its results are not shown
    report = process_store(store, workers=1)
    assert [r.source for r in report.processed] == [source] and report.reasons() == {NEW: 1}
    paths = export_store(store, out, mos["naming"], sources=[source], workers=1)
    assert sorted(p.name.rsplit("_", 1)[1] for p in paths) == ["cal.fits", "crf.fits", "s2d.fits", "x1d.fits"]
    with fits.open(next(p for p in paths if p.name.endswith("_s2d.fits"))) as hdul:
        assert np.isfinite(hdul["SCI"].data).any()


# -- keys, without a store ---------------------------------------------------------------------------


def _key(config):
    from spec3c.provenance import InputFile, RunProvenance, plan_parameters, reference_files

    plan = ("master_background", "outlier_detection", "pixel_replace", "resample_spec", "extract_1d")
    run = RunProvenance(plan_parameters(config, plan), reference_files(config, plan), {})
    return run.key([InputFile("exp1", "S200A1", "exp1_cal.fits", "ab" * 32)])


def test_key_counts_only_what_shapes_the_results(tmp_path):
    from spec3c.config import resolve_config

    base = _key(resolve_config())
    # a skipped step's parameters do not matter; running it does
    assert _key(resolve_config(overrides={"pixel_replace": {"algorithm": "fit_profile"}})) == base
    unskipped = _key(resolve_config(overrides={"pixel_replace": {"skip": "false"}}))
    assert unskipped.changes(base) == ["parameters"]
    # a reference file counts by its content, wherever it is
    one, two = tmp_path / "a.json", tmp_path / "b.json"
    one.write_text("{}")
    two.write_text("{}")
    first = _key(resolve_config(overrides={"extract_1d": {"override_extract1d": str(one)}}))
    assert first.changes(base) == ["references"]
    assert _key(resolve_config(overrides={"extract_1d": {"override_extract1d": str(two)}})) == first
    two.write_text('{"apertures": []}')
    assert _key(resolve_config(overrides={"extract_1d": {"override_extract1d": str(two)}})).changes(first) == [
        "references"]


def test_missing_reference_file_is_a_clear_error(tmp_path):
    from spec3c.config import resolve_config
    from spec3c.errors import InputError

    missing = tmp_path / "nope.json"
    with pytest.raises(InputError, match="nope.json.*override_extract1d"):
        _key(resolve_config(overrides={"extract_1d": {"override_extract1d": str(missing)}}))
