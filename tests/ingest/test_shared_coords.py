"""Pointing-independent coordinates shared by the exposures of a dither pattern.

An exposure that loads what an earlier one of its set-up saved must get the
frames it would have computed alone, bit for bit; an exposure of another
set-up must not load them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ifu_inputs import MIRI_CHANNELS, Scene, miri_file, nirspec_file

import spec3c.modes.ifu.miri as miri_reader
import spec3c.modes.ifu.nirspec as nirspec_reader
from spec3c.ingest import _Planned, _reading_order
from spec3c.ingest.reader import read_exposure
from spec3c.ingest.shared_coords import chunks_of, load_or_make, shared_in

SCENE = Scene(flat=1.0, point_flux=2.0)
DITHERS = [(0.0, 0.0), (0.51, 0.37), (-0.44, 0.62)]


def _counting(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _assert_same_frames(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype, name
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def _not_shared(tmp_path, monkeypatch, first, other) -> dict[str, np.ndarray]:
    """``other`` read after ``first`` with sharing on, checked to have made its own arrays and to
    get the frames of a read alone; its frames."""
    alone = read_exposure(other, "science").images
    made = _counting(monkeypatch, miri_reader, "_pointing_free")
    with shared_in(tmp_path / "shared"):
        read_exposure(first, "science")
        got = read_exposure(other, "science").images
    assert len(made) == 2
    _assert_same_frames(got, alone)
    return got


def test_mrs_dithers_share_their_coordinates_and_get_the_frames_of_a_read_alone(tmp_path, monkeypatch):
    files = [miri_file(tmp_path / f"d{k}_mirifushort_cal.fits", SCENE, ny=24, dither=d, pa=20.0)
             for k, d in enumerate(DITHERS)]
    alone = [read_exposure(f, "science").images for f in files]
    made = _counting(monkeypatch, miri_reader, "_pointing_free")
    with shared_in(tmp_path / "shared"):
        shared = [read_exposure(f, "science").images for f in files]
    assert len(made) == 1  # the first dither made them, the others loaded them
    for got, want in zip(shared, alone, strict=True):
        _assert_same_frames(got, want)
    assert not np.array_equal(shared[0]["ra"], shared[1]["ra"], equal_nan=True)  # the pointing still differs


def test_nirspec_dithers_share_their_coordinates_and_get_the_frames_of_a_read_alone(tmp_path, monkeypatch):
    files = [nirspec_file(tmp_path / f"d{k}_nrs1_cal.fits", SCENE, nx=40, dither=d, pa=20.0)
             for k, d in enumerate(DITHERS[:2])]
    alone = [read_exposure(f, "science").images for f in files]
    made = _counting(monkeypatch, nirspec_reader, "_pointing_free")
    with shared_in(tmp_path / "shared"):
        shared = [read_exposure(f, "science").images for f in files]
    n_chunks = len(made)
    assert n_chunks >= 1
    with shared_in(tmp_path / "shared"):
        again = read_exposure(files[0], "science").images
    assert len(made) == n_chunks  # the second dither and a re-read made nothing
    for got, want in zip([*shared, again], [*alone, alone[0]], strict=True):
        _assert_same_frames(got, want)


def test_another_distortion_is_not_shared(tmp_path, monkeypatch):
    """Same header set-up, same shape, a wavelength solution 1e-9 micron off: its own arrays."""
    first = miri_file(tmp_path / "a_mirifushort_cal.fits", SCENE, ny=24)
    ascale, width, lam0, dlam = MIRI_CHANNELS["1"]
    monkeypatch.setitem(MIRI_CHANNELS, "1", (ascale, width, lam0 + 1e-9, dlam))
    other = miri_file(tmp_path / "b_mirifushort_cal.fits", SCENE, ny=24, dither=DITHERS[1])
    monkeypatch.undo()
    _not_shared(tmp_path, monkeypatch, first, other)
    assert len(list((tmp_path / "shared").iterdir())) == 2


def test_arrays_that_depend_on_the_pointing_are_not_saved(tmp_path):
    calls = []

    def make(shareable: bool):
        def run(*_):
            calls.append(1)
            return {"v": np.arange(4.0)}, shareable
        return run

    with shared_in(tmp_path):
        for _ in range(2):
            np.testing.assert_array_equal(load_or_make("k1", make(False))["v"], np.arange(4.0))
            assert [c["v"].sum() for c in chunks_of("k2", 3, make(False))] == [6.0] * 3
        assert calls == [1] * 8 and list(tmp_path.iterdir()) == []
        for _ in range(2):
            load_or_make("k3", make(True))
            assert len(list(chunks_of("k4", 3, make(True)))) == 3
        assert len(calls) == 8 + 1 + 3  # made once each, then loaded
        assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks-k4", "coords-k3"]


def test_a_failed_chunk_leaves_nothing_saved(tmp_path):
    def make(k):
        if k == 1:
            raise RuntimeError("broken")
        return {"v": np.zeros(2)}, True

    with shared_in(tmp_path), pytest.raises(RuntimeError, match="broken"):
        list(chunks_of("k", 3, make))
    assert list(tmp_path.iterdir()) == []


def test_the_first_exposure_of_each_set_up_is_read_first(tmp_path):
    files = [miri_file(tmp_path / f"{band}{k}_mirifushort_cal.fits", SCENE, ny=8, band=band.upper(), dither=d)
             for band in ("short", "long") for k, d in enumerate(DITHERS)]
    plans = [_Planned(path=f, role="science", name=f.stem, sha256="", action="new") for f in files]
    order = [p.name for p in _reading_order(plans)]
    assert order == [files[0].stem, files[3].stem, files[1].stem, files[2].stem, files[4].stem, files[5].stem]


def test_a_disk_that_refuses_the_arrays_shares_nothing_and_reads_all_the_same(tmp_path, monkeypatch):
    """A full temporary disk must not fail an ingest: each exposure makes its own arrays."""
    import spec3c.ingest.shared_coords as shared

    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shared.np, "save", full)
    calls = []

    def make(*_):
        calls.append(1)
        return {"v": np.arange(3.0)}, True

    with shared_in(tmp_path / "shared"):
        for _ in range(2):
            np.testing.assert_array_equal(load_or_make("k", make)["v"], np.arange(3.0))
            assert [c["v"].sum() for c in chunks_of("c", 2, make)] == [3.0, 3.0]
    assert len(calls) == 2 * (1 + 2)
    assert not (tmp_path / "shared").exists() or list((tmp_path / "shared").iterdir()) == []


def test_a_pointing_part_that_changes_wavelengths_gets_its_own_arrays(tmp_path, monkeypatch):
    """An exposure whose v2v3 -> world scales λ: the detector λ the saved ``dwave`` came from is not
    its own, so it makes its arrays as if read alone."""
    from astropy.modeling import models as am
    from stdatamodels.jwst import datamodels as dm

    first = miri_file(tmp_path / "a_mirifushort_cal.fits", SCENE, ny=24)
    other = miri_file(tmp_path / "b_mirifushort_cal.fits", SCENE, ny=24, dither=DITHERS[1])
    with dm.open(other) as model:
        wcs = model.meta.wcs
        wcs.set_transform("v2v3", "world", wcs.get_transform("v2v3", "world") | (am.Identity(2) & am.Scale(1.000001)))
        model.meta.wcs = wcs
        model.save(other)
    got = _not_shared(tmp_path, monkeypatch, first, other)
    first_alone = read_exposure(first, "science").images
    assert not np.array_equal(got["dwave"], first_alone["dwave"], equal_nan=True)


def test_members_of_other_modes_keep_the_association_order(tmp_path, monkeypatch):
    """Only a mode read as full frames is reordered, and the others' headers are read once, not per member."""
    import spec3c.ingest as ingest_module

    calls: list[Path] = []
    monkeypatch.setattr(ingest_module, "set_up_of", lambda path, role: calls.append(path))
    plans = [_Planned(path=tmp_path / f"{k}_cal.fits", role="science", name=str(k), sha256="", action="new")
             for k in range(5)]
    assert _reading_order(plans) == plans
    assert calls == [plans[0].path]
