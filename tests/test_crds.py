"""Reference files chosen by the crds client from a small local CRDS cache the tests build
(ORACLE.md: a ``config/jwst/server_config`` and checksummed mappings; no server, no network)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.config import resolve_config
from spec3c.errors import Spec3cError
from spec3c.products.meta import read_provenance
from spec3c.reffiles import reference_header, select_references
from spec3c.simulate import SimOptions, simulate
from spec3c.store import ExposureRecord

pytest.importorskip("crds")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
APERTURES = EXAMPLES / "extract1d_nirspec_fs.json"
#: a crds:// "server" address crds never contacts (it contains "serverless")
SERVERLESS = "https://jwst-serverless-mode.invalid"
FS = {"meta.instrument.name": "NIRSPEC", "meta.exposure.type": "NRS_FIXEDSLIT", "meta.instrument.grating": "G395H",
      "meta.instrument.filter": "F290LP", "meta.observation.date": "2024-01-01", "meta.observation.time": "06:00:00"}
MOS = {**FS, "meta.exposure.type": "NRS_MSASPEC"}
MRS = {"meta.instrument.name": "MIRI", "meta.exposure.type": "MIR_MRS", "meta.observation.date": "2024-01-01",
       "meta.observation.time": "06:00:00"}

# -- the cache ------------------------------------------------------------------------

_SERVER_CONFIG = {
    "observatory": "jwst", "operational_context": "jwst_0001.pmap", "edit_context": "jwst_0001.pmap",
    "bad_files": "", "bad_files_list": [], "force_remote_mode": False, "crds_version": {"str": "14.0.3"},
    "download_metadata": "", "last_synced": "2026-01-01 00:00:00",
    "reference_url": {"checked": {"jwst": "file:///dev/null"}, "unchecked": {"jwst": "file:///dev/null"}},
    "mapping_url": {"checked": {"jwst": "file:///dev/null"}, "unchecked": {"jwst": "file:///dev/null"}},
}


def _header(**fields: str) -> str:
    lines = [f"    {key!r} : {value},\n" for key, value in sorted({**fields, "derived_from": "'spec3c test'",
                                                                  "observatory": "'JWST'", "sha1sum": "'@SHA1@'"}.items())]
    return "header = {\n" + "".join(lines) + "}\n"


def _write_mapping(folder: Path, name: str, text: str) -> None:
    """A mapping with its sha1sum (over the text without the sha1sum line, as crds checks it)."""
    digest = hashlib.sha1("".join(line for line in text.splitlines(True) if "sha1sum" not in line).encode()).hexdigest()
    (folder / name).write_text(text.replace("@SHA1@", digest))


def _rmap(folder: Path, name: str, instrument: str, reftype: str, parkeys: tuple[str, ...],
          rules: dict[tuple[str, ...], str]) -> None:
    """A Match/UseAfter rmap: each rule's values -> a file used after 2000 (or N/A)."""
    header = _header(classes="('Match', 'UseAfter')", filekind=repr(reftype.upper()), instrument=repr(instrument),
                     mapping="'REFERENCE'", name=repr(name),
                     parkey=f"({parkeys!r}, ('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))")
    body = "".join(f"    {values!r} : " + ("'N/A'" if file == "N/A" else
                                            f"UseAfter({{\n        '2000-01-01 00:00:00' : {file!r},\n    }})") + ",\n"
                   for values, file in rules.items())
    _write_mapping(folder, name, header + "\nselector = Match({\n" + body + "})\n")


def _context(folder: Path, serial: str, imaps: dict[str, dict[str, str]]) -> None:
    """``jwst_<serial>.pmap`` and one ``.imap`` per instrument (reftype -> rmap or N/A)."""
    pmap = _header(mapping="'PIPELINE'", name=repr(f"jwst_{serial}.pmap"), parkey="('META.INSTRUMENT.NAME',)")
    selector = "".join(f"    {inst.upper()!r} : 'jwst_{inst}_{serial}.imap',\n" for inst in sorted(imaps))
    _write_mapping(folder, f"jwst_{serial}.pmap", pmap + "\nselector = {\n" + selector + "}\n")
    for inst, types in imaps.items():
        head = _header(instrument=repr(inst.upper()), mapping="'INSTRUMENT'", name=repr(f"jwst_{inst}_{serial}.imap"),
                       parkey="('REFTYPE',)")
        body = "".join(f"    {t!r} : {rmap!r},\n" for t, rmap in sorted(types.items()))
        _write_mapping(folder, f"jwst_{inst}_{serial}.imap", head + "\nselector = {\n" + body + "}\n")


def build_cache(root: Path) -> Path:
    """Two contexts: jwst_0001.pmap (the cache's latest) and jwst_0002.pmap (another EXTRACT1D file)."""
    maps, refs = root / "mappings" / "jwst", root / "references" / "jwst"
    for folder in (root / "config" / "jwst", maps, refs / "nirspec", refs / "miri"):
        folder.mkdir(parents=True)
    (root / "config" / "jwst" / "server_config").write_text(repr(_SERVER_CONFIG))
    for serial in ("0001", "0002"):
        _rmap(maps, f"jwst_nirspec_extract1d_{serial}.rmap", "NIRSPEC", "extract1d", ("META.EXPOSURE.TYPE",),
              {("NRS_FIXEDSLIT",): f"jwst_nirspec_extract1d_{serial}.json",
               ("NRS_MSASPEC",): f"jwst_nirspec_extract1d_{serial}.json"})
        shutil.copy(APERTURES, refs / "nirspec" / f"jwst_nirspec_extract1d_{serial}.json")
    _rmap(maps, "jwst_nirspec_apcorr_0001.rmap", "NIRSPEC", "apcorr", ("META.EXPOSURE.TYPE", "META.INSTRUMENT.GRATING"),
          {("NRS_FIXEDSLIT", "G395H"): "N/A", ("NRS_MSASPEC", "G395H"): "jwst_nirspec_apcorr_0001.fits"})
    _rmap(maps, "jwst_miri_cubepar_0001.rmap", "MIRI", "cubepar", ("META.EXPOSURE.TYPE",),
          {("MIR_MRS",): "jwst_miri_cubepar_0001.fits"})
    # only the selection is tested with these two: their content is not read
    (refs / "nirspec" / "jwst_nirspec_apcorr_0001.fits").write_bytes(b"apcorr")
    (refs / "miri" / "jwst_miri_cubepar_0001.fits").write_bytes(b"cubepar")
    nirspec = {"apcorr": "jwst_nirspec_apcorr_0001.rmap"}
    _context(maps, "0001", {"nirspec": {**nirspec, "extract1d": "jwst_nirspec_extract1d_0001.rmap"},
                            "miri": {"cubepar": "jwst_miri_cubepar_0001.rmap", "apcorr": "N/A", "extract1d": "N/A"}})
    _context(maps, "0002", {"nirspec": {**nirspec, "extract1d": "jwst_nirspec_extract1d_0002.rmap"}})
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_cache(tmp_path_factory.mktemp("crds_cache"))


@pytest.fixture
def crds_env(cache, monkeypatch):
    """The cache configured as a user would, with every name lookup (so every connection to a
    server) refused; local Unix sockets (the worker log forwarding) still work."""
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)  # (not the CRDS_* variables crds itself sets when imported)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_SERVER_URL", SERVERLESS)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return cache


@pytest.fixture
def no_crds(monkeypatch):
    for name in ("CRDS_PATH", "CRDS_CONTEXT", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def messages():
    """What ``spec3c.crds`` logs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    log = logging.getLogger("spec3c.crds")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield records
    log.removeHandler(handler)
    log.setLevel(level)


def _ref(cache: Path, name: str) -> str:
    return str(cache / "references" / "jwst" / name.split("_")[1] / name)


def _lines(records) -> str:
    return "\n".join(r.getMessage() for r in records)


# -- selection ----------------------------------------------------------------------


def test_crds_chooses_offline(crds_env, messages):
    sel = select_references(resolve_config(), ["resample_spec", "extract_1d"], MOS)
    assert sel.config.extract_1d.override_extract1d == _ref(crds_env, "jwst_nirspec_extract1d_0001.json")
    assert sel.config.extract_1d.override_apcorr == _ref(crds_env, "jwst_nirspec_apcorr_0001.fits")
    assert sel.names == {"extract_1d.override_extract1d": "crds://jwst_nirspec_extract1d_0001.json",
                         "extract_1d.override_apcorr": "crds://jwst_nirspec_apcorr_0001.fits"}
    assert sel.crds_context == "jwst_0001.pmap" and sel.crds_version
    text = _lines(messages)
    assert "EXTRACT1D: " + _ref(crds_env, "jwst_nirspec_extract1d_0001.json") in text
    assert "CRDS context jwst_0001.pmap" in text


def test_rule_not_applicable_is_no_file(crds_env, messages):
    sel = select_references(resolve_config(), ["extract_1d"], FS)
    assert sel.config.extract_1d.override_apcorr is None
    assert sel.names["extract_1d.override_apcorr"] == "N/A"
    assert "APCORR: none (N/A in the rules)" in _lines(messages)


def test_context_from_the_environment(crds_env, monkeypatch):
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_0002.pmap")
    sel = select_references(resolve_config(), ["extract_1d"], FS)
    assert sel.config.extract_1d.override_extract1d == _ref(crds_env, "jwst_nirspec_extract1d_0002.json")
    assert sel.crds_context == "jwst_0002.pmap"


def test_cube_build_gets_cubepar(crds_env):
    sel = select_references(resolve_config(), ["cube_build", "extract_1d"], MRS)
    assert sel.config.cube_build.override_cubepar == _ref(crds_env, "jwst_miri_cubepar_0001.fits")
    assert sel.config.extract_1d.override_extract1d is None and sel.config.extract_1d.override_apcorr is None
    assert sel.names["extract_1d.override_extract1d"] == "N/A"


def test_override_wins(crds_env, tmp_path, messages):
    mine = tmp_path / "mine.json"
    mine.write_text(APERTURES.read_text())
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(mine)}})
    sel = select_references(config, ["extract_1d"], MOS)
    assert sel.config.extract_1d.override_extract1d == str(mine)
    assert "extract_1d.override_extract1d" not in sel.names  # products name the override's path
    assert sel.config.extract_1d.override_apcorr == _ref(crds_env, "jwst_nirspec_apcorr_0001.fits")
    assert f"EXTRACT1D: {mine} (--steps.extract_1d.override_extract1d)" in _lines(messages)


def test_not_applicable_override(crds_env, monkeypatch):
    import spec3c.reffiles as reffiles

    def never(*args):
        raise AssertionError("CRDS asked although every file was given")

    monkeypatch.setattr(reffiles, "_crds_choice", never)
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": "N/A", "override_apcorr": "n/a"}})
    sel = select_references(config, ["extract_1d"], FS)
    assert sel.config.extract_1d.override_extract1d is None and sel.config.extract_1d.override_apcorr is None
    assert sel.names == {"extract_1d.override_extract1d": "N/A", "extract_1d.override_apcorr": "N/A"}
    assert sel.crds_context is None


@pytest.mark.parametrize(("overrides", "plan", "asked"), [
    ({"extract_1d": {"apply_apcorr": "false"}}, ["extract_1d"], ["extract1d"]),
    ({}, ["extract_1d", "combine_1d"], ["apcorr", "extract1d"]),
    ({"extract_1d": {"skip": "true"}}, ["extract_1d"], []),
    ({}, ["resample_spec"], []),
])
def test_only_the_files_the_run_reads(crds_env, monkeypatch, overrides, plan, asked):
    import spec3c.reffiles as reffiles

    seen: list[list[str]] = []
    monkeypatch.setattr(reffiles, "_crds_choice", lambda header, reftypes, wanted: seen.append(reftypes))
    select_references(resolve_config(overrides=overrides), plan, FS)
    assert seen == ([asked] if asked else [])


def test_without_crds_the_defaults(no_crds, messages):
    config = resolve_config()
    sel = select_references(config, ["extract_1d"], FS)
    assert sel.config == config and sel.record() == {}
    assert "no CRDS cache (CRDS_PATH is unset): APCORR, EXTRACT1D" in _lines(messages)


def test_crds_not_installed(crds_env, monkeypatch, messages):
    monkeypatch.setitem(sys.modules, "crds", None)  # import crds -> ImportError
    sel = select_references(resolve_config(), ["extract_1d"], FS)
    assert sel.config.extract_1d.override_extract1d is None
    warnings = [r for r in messages if r.levelno == logging.WARNING]
    assert warnings and "pip install 'spec3c[crds]'" in warnings[0].getMessage()


def test_no_rule_is_a_clear_error(crds_env):
    with pytest.raises(Spec3cError, match=r"could not choose the APCORR, EXTRACT1D .*--steps\.extract_1d\."
                                          r"override_extract1d=FILE .*unset CRDS_PATH"):
        select_references(resolve_config(), ["extract_1d"], {**FS, "meta.exposure.type": "NRS_BRIGHTOBJ"})


def test_cache_without_configuration_is_a_clear_error(crds_env, tmp_path, monkeypatch):
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "empty"))
    with pytest.raises(Spec3cError, match="could not choose"):
        select_references(resolve_config(), ["extract_1d"], FS)


def test_header_is_the_first_science_exposure():
    def record(name, role, exp_type):
        return ExposureRecord(name, name, "0", role, exp_type, "MultiSlitModel",
                              {"meta.exposure.type": exp_type, "meta.wcs": None, "meta.x": [1]})

    header = reference_header([record("a", "background", "NRS_MSASPEC"), record("b", "science", "NRS_FIXEDSLIT")])
    assert header == {"meta.exposure.type": "NRS_FIXEDSLIT"}


# -- a run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fs_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("crds_run")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=3, n_exposures=2, n_columns=120))
    store = root / "fs.store"
    res = CliRunner().invoke(main, ["ingest", str(sim.asn_path), "--store", str(store)])
    assert res.exit_code == 0, res.output
    return store


def _run(store: Path, out: Path, *args: str) -> dict[str, tuple]:
    """process (forced) then export the x1d products; {name: (primary header, FLUX, provenance, path)}."""
    runner = CliRunner()
    res = runner.invoke(main, ["process", str(store), "--workers", "1", "--force", *args])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["export", str(store), "-o", str(out), "--suffix", "x1d", "--workers", "1"])
    assert res.exit_code == 0, res.output
    products = {}
    for path in sorted(out.glob("*_x1d.fits")):
        with fits.open(path) as hdul:
            prov = read_provenance(hdul)
            products[path.name] = (hdul[0].header.copy(), np.array(hdul["EXTRACT1D"].data["FLUX"]),
                                   prov, path)
    assert products
    return products


def _same_flux(a, b) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k][1], b[k][1], equal_nan=True) for k in a)


def test_run_with_crds(fs_store, crds_env, monkeypatch, tmp_path):
    chosen = _ref(crds_env, "jwst_nirspec_extract1d_0001.json")
    with_crds = _run(fs_store, tmp_path / "crds")
    for header, _, prov, _ in with_crds.values():
        assert header["R_EXTR1D"] == "crds://jwst_nirspec_extract1d_0001.json"
        assert "extract_1d.override_apcorr" in prov.reference_selection()["names"]  # no R_APCORR keyword
        assert prov.reference_selection()["names"]["extract_1d.override_apcorr"] == "N/A"
        assert header["CRDS_CTX"] == "jwst_0001.pmap" and header["CRDS_VER"]
        assert ("extract_1d.override_extract1d", chosen) in [(n, v) for n, v, _ in prov.of_kind("reference")]
        assert prov.parameters()["extract_1d"]["override_extract1d"] == chosen
    # the same choice again: the sources' keys (the chosen files' sha256 among them) are unchanged
    res = CliRunner().invoke(main, ["process", str(fs_store), "--workers", "1"])
    assert res.exit_code == 0 and "processed 0 sources" in res.output, res.output

    # the same file given explicitly, without CRDS: the same spectra, named by their path
    for name in ("CRDS_PATH", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name)
    explicit = _run(fs_store, tmp_path / "explicit", f"--steps.extract_1d.override_extract1d={chosen}")
    assert _same_flux(with_crds, explicit)
    assert all(h["R_EXTR1D"] == chosen and "CRDS_CTX" not in h for h, *_ in explicit.values())

    # without CRDS and without a file: the default (the whole slit), as before
    default = _run(fs_store, tmp_path / "default")
    assert not _same_flux(with_crds, default)
    assert all("R_EXTR1D" not in h and "CRDS_CTX" not in h for h, *_ in default.values())


def test_override_wins_over_crds(fs_store, crds_env, tmp_path):
    narrow = tmp_path / "narrow.json"
    data = json.loads(APERTURES.read_text())
    data["apertures"][0]["extract_width"] = 3
    narrow.write_text(json.dumps(data))
    with_crds = _run(fs_store, tmp_path / "crds")
    mine = _run(fs_store, tmp_path / "mine", f"--steps.extract_1d.override_extract1d={narrow}")
    assert not _same_flux(with_crds, mine)
    for header, _, prov, _ in mine.values():
        assert header["R_EXTR1D"] == str(narrow)
        assert prov.parameters()["extract_1d"]["override_extract1d"] == str(narrow)


def test_verify_a_crds_product(fs_store, crds_env, tmp_path):
    from spec3c.verify import verify_product

    products = _run(fs_store, tmp_path / "crds")
    product = next(iter(products.values()))[3]
    result = verify_product(product, fs_store)
    assert result.identical, result.differences
    assert result.key_changes == []


def test_single_step_extract_1d_asks_crds(fs_store, crds_env, tmp_path):
    """``spec3c step extract_1d`` on s2d files chooses its EXTRACT1D as ``spec3c process`` does."""
    with_crds = _run(fs_store, tmp_path / "crds")
    res = CliRunner().invoke(main, ["export", str(fs_store), "-o", str(tmp_path / "s2d"), "--suffix", "s2d",
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    for s2d in sorted((tmp_path / "s2d").glob("*_s2d.fits")):
        out = tmp_path / "step" / s2d.stem
        res = CliRunner().invoke(main, ["step", "extract_1d", str(s2d), "--output-dir", str(out)])
        assert res.exit_code == 0, res.output
        (x1d,) = out.glob("*.fits")
        with fits.open(x1d) as hdul:
            flux = np.array(hdul["EXTRACT1D"].data["FLUX"])
        expected = with_crds[s2d.name.replace("_s2d", "_x1d")][1]
        np.testing.assert_array_equal(flux, expected)
