"""The direct FITS writer (spec3c.products.direct_fits) writes what stdatamodels' ``to_fits`` writes.

For every product of every slit mode, the same export is written twice, by the direct
writer (the default) and by stdatamodels (``SPEC3C_PRODUCT_WRITER=stdatamodels``), and the
files are compared: the same HDUs in the same order, every header card (keyword, value,
comment; only ``DATE``, the write time, is left out), the same array and table bytes,
and the same ASDF extension: the YAML tree byte for byte, but for ``meta.date``, the
FITS hash, which covers DATE, the order of the list of asdf extensions used, which
varies from one process to the next, and where long flow sequences wrap; and blocks holding the same bytes (the direct writer
copies the stored slit WCSs' blocks as the store keeps them, zlib-compressed, see
spec3c.gwcs_asdf.splice_stored_wcs).  The direct file opens with stdatamodels, validates,
and its gwcs evaluates as the other's.
"""

from __future__ import annotations

import hashlib
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm
from stdatamodels.validate import ValidationWarning

from spec3c.ingest import ingest
from spec3c.ingest.fitsraw import read_fits
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store, fits_io
from spec3c.products.direct_fits import iter_plan_keywords, plan_of, write_fits_direct
from spec3c.products.fits_io import WRITER_ENV
from spec3c.results import load_association
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

#: cards that change from one write to the next
PER_WRITE_CARDS = {"DATE"}

#: mode -> (simulation, the product suffixes it exports)
MODES = {
    "nirspec-fs": (SimOptions(seed=5, n_exposures=2, n_columns=80), {"cal", "crf", "s2d", "x1d"}),
    "nirspec-mos": (SimOptions(seed=5, n_sources=1, n_exposures=2, n_columns=80), {"cal", "crf", "s2d", "x1d"}),
    "miri-lrs-fs": (SimOptions(seed=5, n_exposures=2), {"crf", "s2d", "x1d"}),  # crf: one per exposure
    "miri-lrs-slitless": (SimOptions(seed=5, n_exposures=2), {"crf", "x1d", "c1d"}),  # x1d: one per exposure
}


@pytest.fixture(scope="module", params=sorted(MODES))
def both_writers(request, tmp_path_factory):
    """(direct folder, stdatamodels folder, suffixes expected) of one mode's export."""
    mode = request.param
    root = tmp_path_factory.mktemp(mode)
    sim = simulate(mode, root / "sim", MODES[mode][0])
    ingest(sim.asn_path, root / "store")
    with open_store(root / "store") as store:
        asn = load_association(store)
        first = store.sources()[:1]  # one source: every product type, in a fraction of the time
    report = process_store(root / "store", sources=first, workers=1)
    assert not report.failed, [r.error for r in report.failed]
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    direct_written: list[bool] = []

    def recorded(model, fileobj):  # type: ignore[no-untyped-def]
        direct_written.append(write_fits_direct(model, fileobj))
        return direct_written[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(WRITER_ENV, raising=False)
        patch.setattr(fits_io, "write_fits_direct", recorded)
        export_store(root / "store", root / "direct", naming, sources=first, workers=1)
        patch.setenv(WRITER_ENV, "stdatamodels")
        export_store(root / "store", root / "stdatamodels", naming, sources=first, workers=1)
    # every product the direct writer was given was written by it, none left to stdatamodels
    assert direct_written and all(direct_written), direct_written
    return root / "direct", root / "stdatamodels", MODES[mode][1]


def _cards(header: fits.Header) -> list[tuple[str, str, str]]:
    return [(c.keyword, repr(c.value), c.comment) for c in header.cards if c.keyword not in PER_WRITE_CARDS]


def _images(header: fits.Header) -> list[str]:
    """The cards as written (80-column images, CONTINUE cards included), DATE aside."""
    return [c.image for c in header.cards if c.keyword not in PER_WRITE_CARDS]


def _sorted_extensions(text: str) -> str:
    """The YAML with the entries of ``history: extensions:`` sorted: asdf lists the extensions a
    file uses in the order of a set of objects hashed by address, which varies between processes."""
    lines = text.split("\n")
    try:
        start = lines.index("  extensions:") + 1
    except ValueError:
        return text
    end = start
    while end < len(lines) and lines[end].startswith(("  - ", "    ")):
        end += 1
    entries: list[list[str]] = []
    for line in lines[start:end]:
        if line.startswith("  - "):
            entries.append([])
        entries[-1].append(line)
    ordered = [line for entry in sorted(entries) for line in entry]
    return "\n".join([*lines[:start], *ordered, *lines[end:]])


def _asdf_yaml(hdu: fits.BinTableHDU) -> str:
    """The ASDF extension's YAML, the write time, the FITS hash and the order of the
    extension list left out, and flow collections unwrapped (pyyaml wraps them at 80 columns
    from where they start: a stored WCS written at another depth wraps elsewhere)."""
    raw = hdu.data["ASDF_METADATA"][0].tobytes()
    text = re.sub(r",\n +", ", ", raw[:raw.index(b"\n...\n")].decode("utf-8"))
    text = re.sub(r"\n(\s*)date: [^\n]*", r"\n\1date: <per write>", text)
    return _sorted_extensions(re.sub(r"_fits_hash: [^\n]*", "_fits_hash: <per write>", text))


def _asdf_block_payloads(hdu: fits.BinTableHDU) -> list[bytes]:
    """The data of each block of the ASDF extension, decompressed (ASDF standard block layout)."""
    raw = hdu.data["ASDF_METADATA"][0].tobytes()
    at, payloads = raw.index(b"\n...\n") + 5, []
    while raw.startswith(b"\xd3BLK", at):
        (header_size,) = struct.unpack(">H", raw[at + 4:at + 6])
        compression = raw[at + 10:at + 14]
        allocated, used = struct.unpack(">QQ", raw[at + 14:at + 30])
        data = raw[at + 6 + header_size:at + 6 + header_size + used]
        payloads.append(zlib.decompress(data) if compression == b"zlib" else data)
        at += 6 + header_size + allocated
    assert raw[at:].strip() == b"" or raw.startswith(b"#ASDF BLOCK INDEX", at)
    return payloads


def _assert_hash_of_headers(path: Path) -> None:
    """The ASDF tree's ``_fits_hash`` is the sha256 of the header blocks as written (stdatamodels
    then trusts the tree, and spec3c's fast ingest reads it)."""
    hdus = read_fits(path)
    digest = hashlib.sha256(b"".join(h.header_bytes for h in hdus if h.name != "ASDF")).hexdigest()
    asdf_bytes = bytes(next(h for h in hdus if h.name == "ASDF").table_bytes)
    assert re.search(rb"\n_fits_hash: ([0-9a-f]{64})\n", asdf_bytes)[1].decode() == digest, path.name


def _suffix(path: Path) -> str:
    return path.stem.rsplit("_", 1)[1]


def _assert_same_file(direct: Path, reference: Path) -> None:
    with fits.open(direct) as a, fits.open(reference) as b:
        assert [(h.name, h.ver, type(h)) for h in a] == [(h.name, h.ver, type(h)) for h in b], direct.name
        for ha, hb in zip(a, b, strict=True):
            if ha.name == "ASDF":
                assert _asdf_yaml(ha) == _asdf_yaml(hb), direct.name
                assert _asdf_block_payloads(ha) == _asdf_block_payloads(hb), direct.name
                continue
            assert _cards(ha.header) == _cards(hb.header), (direct.name, ha.name, ha.ver)
            assert _images(ha.header) == _images(hb.header), (direct.name, ha.name, ha.ver)
            if hb.data is not None:
                assert ha.data.dtype == hb.data.dtype, (direct.name, ha.name)
                assert ha.data.tobytes() == hb.data.tobytes(), (direct.name, ha.name, ha.ver)


def _wcs_nodes(model):
    """(node, gwcs) of every gwcs in a product: the model's, each exposure's, each spectrum's."""
    nodes = (model, *getattr(model, "exposures", []), *getattr(model, "spec", []))
    metas = [getattr(node, "meta", None) for node in nodes]
    return [wcs for meta in metas if (wcs := getattr(meta, "wcs", None)) is not None]


def _assert_same_model(direct: Path, reference: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        with dm.open(direct) as a, dm.open(reference) as b:
            a.validate()
            assert type(a) is type(b)
            per_write = ("date", "wcs")  # the write time; gwcs objects compare by evaluation, below
            meta_a = {k: v for k, v in a.meta.instance.items() if k not in per_write}
            assert meta_a == {k: v for k, v in b.meta.instance.items() if k not in per_write}, direct.name
            wcs_a, wcs_b = _wcs_nodes(a), _wcs_nodes(b)
            assert len(wcs_a) == len(wcs_b), direct.name
            for wa, wb in zip(wcs_a, wcs_b, strict=True):
                # two pixels of any slit, and a diagonal across a full frame (an IFU's slices)
                pixel = [np.r_[1.0, 5.0, np.linspace(0.0, 1000.0, 101)]] * wa.forward_transform.n_inputs
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    warnings.simplefilter("ignore", UserWarning)  # pixels outside every IFU slice
                    world_a, world_b = wa(*pixel), wb(*pixel)
                    assert np.isfinite(np.asarray(world_a, dtype=float)).any(), direct.name
                    np.testing.assert_array_equal(world_a, world_b)


def test_direct_files_equal_stdatamodels_files(both_writers):
    direct, reference, expected = both_writers
    names = sorted(p.name for p in reference.glob("*.fits"))
    assert names == sorted(p.name for p in direct.glob("*.fits"))
    assert {_suffix(Path(n)) for n in names} == expected
    for name in names:
        _assert_same_file(direct / name, reference / name)
        _assert_hash_of_headers(direct / name)
        _assert_same_model(direct / name, reference / name)


def _model_with(schema):
    """A stand-in model of a class of its own (plans are kept per class)."""
    return type("SchemaOnly", (), {"schema": schema})()


def test_unmodelled_schema_constructs_fall_back_to_stdatamodels():
    writing = {"type": "object", "properties": {"x": {"fits_keyword": "X"}}}
    assert plan_of(_model_with({"allOf": [writing]})) is None
    assert plan_of(_model_with({"anyOf": [writing, {"enum": [1]}]})) is None
    enums_only = {"type": "object", "properties": {"x": {"fits_keyword": "X", "anyOf": [{"enum": ["A"]}]}}}
    assert list(iter_plan_keywords(plan_of(_model_with(enums_only)))) == ["X"]


def test_ifu_crf_direct_equals_stdatamodels(tmp_path, monkeypatch):
    """The IFU modes' exposure crf (IFUImageModel, its WCS with the slice map spliced in as
    stored): the same file as stdatamodels writes from the gwcs object.  The WCS is stored as
    serialised from the objects here: one copied from the input file (what ingest does) is the
    input's YAML, the same transforms in the input writer's layout (``tests/ingest/test_file_wcs.py``)."""
    from spec3c.config import CubeBuildParams, Extract1dParams, PipelineConfig
    from spec3c.ingest import file_wcs
    from spec3c.simulate.miri.reffiles import reference_file_paths

    sim = simulate("miri-mrs", tmp_path / "sim", SimOptions(seed=3, n_exposures=2, channels=(1,), bands=("SHORT",)))
    monkeypatch.setattr(file_wcs, "file_wcs_bytes", lambda path: None)
    ingest(sim.asn_path, tmp_path / "store", workers=1)
    monkeypatch.undo()
    overrides = reference_file_paths(sim.asn_path).jwst_overrides()
    config = PipelineConfig(cube_build=CubeBuildParams(**overrides["cube_build"]),
                            extract_1d=Extract1dParams(**overrides["extract_1d"]))
    report = process_store(tmp_path / "store", config=config, workers=1)
    assert not report.failed, [r.error for r in report.failed]
    with open_store(tmp_path / "store") as store:
        asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(WRITER_ENV, raising=False)
        export_store(tmp_path / "store", tmp_path / "direct", naming, suffixes=("crf",), workers=1)
        patch.setenv(WRITER_ENV, "stdatamodels")
        export_store(tmp_path / "store", tmp_path / "stdatamodels", naming, suffixes=("crf",), workers=1)
    names = sorted(p.name for p in (tmp_path / "stdatamodels").glob("*_crf.fits"))
    assert len(names) == 2 and names == sorted(p.name for p in (tmp_path / "direct").glob("*.fits"))
    for name in names:
        with fits.open(tmp_path / "direct" / name) as hdus:
            assert b"zlib" in hdus["ASDF"].data["ASDF_METADATA"][0].tobytes()  # the stored blocks
        _assert_same_file(tmp_path / "direct" / name, tmp_path / "stdatamodels" / name)
        _assert_same_model(tmp_path / "direct" / name, tmp_path / "stdatamodels" / name)
