"""apcorr: APCORR reading, interpolation and application (ALGORITHMS.md §12.5)."""

from __future__ import annotations

import numpy as np
import pytest
from apcorr_files import apcorr_spec, write_apcorr
from stdatamodels.jwst.datamodels import MirLrsApcorrModel, NrsFsApcorrModel, NrsMosApcorrModel

from spec3c.algorithms.apcorr import (
    DEFAULT_PIXEL_PHASE,
    aperture_correction,
    apply_correction,
    nirspec_pixel_phase,
    read_apcorr,
)
from spec3c.errors import InputError, Spec3cError, Spec3cWarning

WL = np.linspace(1.0, 5.0, 9)  # micron
PHASE = np.array([0.0, 0.25, 0.5])
NSIZE = 4


def size_grid(wl):
    """Tabulated aperture sizes (pixels) at wavelength ``wl``: s_j = 2 + 2j + 0.5 wl."""
    return 2.0 + 2.0 * np.arange(NSIZE)[:, None] + 0.5 * np.atleast_1d(wl)[None, :]


def analytic(wl, size, phase):
    """Correction linear in every variable, so the reference interpolation is exact."""
    return 1.0 + 0.1 * wl + 0.05 * size + 0.2 * phase


def phase_rows(names, *, slit=True, apcorr=None, size=None, wavelength=WL):
    nw = wavelength.size
    dt = [("filter", "S12"), ("grating", "S15")]
    if slit:
        dt.append(("slit", "S15"))
    dt += [
        ("wavelength", "f4", (nw,)),
        ("nelem_wl", "i2"),
        ("size", "f4", (NSIZE, nw)),
        ("nelem_size", "i2"),
        ("pixphase", "f4", (PHASE.size,)),
        ("apcorr", "f4", (NSIZE, nw, PHASE.size)),
        ("apcorr_err", "f4", (NSIZE, nw, PHASE.size)),
    ]
    rows = np.zeros(len(names), dtype=dt)
    sg = size_grid(wavelength) if size is None else size
    if apcorr is None:
        apcorr = analytic(wavelength[None, :, None], sg[:, :, None], PHASE[None, None, :])
    for r, name in zip(rows, names, strict=True):
        r["filter"], r["grating"] = name[0], name[1]
        if slit:
            r["slit"] = name[2]
        r["wavelength"], r["nelem_wl"] = wavelength, nw
        r["size"], r["nelem_size"] = sg, NSIZE
        r["pixphase"], r["apcorr"] = PHASE, apcorr
    return rows


@pytest.fixture
def fs_file(tmp_path):
    rows = phase_rows(
        [("CLEAR", "PRISM", "S200A1"), ("CLEAR", "PRISM", "S400A1"), ("F070LP", "G140M", "S200A1")]
    )
    rows["apcorr"][1] *= 2.0  # S400A1 differs
    return write_apcorr(NrsFsApcorrModel, rows, tmp_path / "fs_apcorr.fits")


@pytest.fixture
def fs_table(fs_file):
    return read_apcorr(fs_file, apcorr_spec("NRS_FIXEDSLIT"), filter="CLEAR", grating="PRISM", slit="S200A1")


# --------------------------------------------------------------------------- NIRSpec (phase)


def test_phase_interior_is_exact(fs_table):
    rng = np.random.default_rng(1)
    wl = rng.uniform(1.0, 5.0, 200)
    sg = size_grid(wl)
    size = rng.uniform(sg[0], sg[-1])
    for phase in (0.0, 0.1, 0.25, 0.37, 0.5):
        c = aperture_correction(fs_table, wl, size, pixel_phase=phase)
        assert c.shape == (200,) and c.dtype == np.float64
        np.testing.assert_allclose(c, analytic(wl, size, phase), rtol=1e-6)


def test_phase_default_and_helper(fs_table):
    assert nirspec_pixel_phase() == DEFAULT_PIXEL_PHASE == 0.5
    wl = np.array([1.5, 2.5, 4.0])
    np.testing.assert_array_equal(
        aperture_correction(fs_table, wl, 6.0),
        aperture_correction(fs_table, wl, 6.0, pixel_phase=0.5),
    )


def test_phase_row_selection(fs_file):
    other = read_apcorr(fs_file, apcorr_spec("NRS_FIXEDSLIT"), filter="clear", grating="prism", slit="s400a1")
    wl = np.array([2.0, 3.0])
    c = aperture_correction(other, wl, 7.0, pixel_phase=0.25)
    np.testing.assert_allclose(c, 2 * analytic(wl, 7.0, 0.25), rtol=1e-6)


def test_phase_size_clamped_at_grid_edges(fs_table):
    wl = np.array([2.0, 3.0, 4.0])
    sg = size_grid(wl)
    lo = aperture_correction(fs_table, wl, np.full(3, 0.1))
    hi = aperture_correction(fs_table, wl, np.full(3, 100.0))
    np.testing.assert_allclose(lo, analytic(wl, sg[0], 0.5), rtol=1e-6)
    np.testing.assert_allclose(hi, analytic(wl, sg[-1], 0.5), rtol=1e-6)


def test_phase_out_of_range_gives_one(fs_table):
    wl = np.array([0.5, 1.0, 3.0, 5.0, 5.5, np.nan])
    c = aperture_correction(fs_table, wl, 6.0)
    assert c[0] == 1.0 and c[4] == 1.0 and c[5] == 1.0
    np.testing.assert_allclose(c[[1, 2, 3]], analytic(wl[[1, 2, 3]], 6.0, 0.5), rtol=1e-6)
    # NaN size -> NaN (the reference multiplies by it)
    assert np.isnan(aperture_correction(fs_table, np.array([3.0]), np.nan)[0])
    # phase outside PIXPHASE -> no correction at all
    np.testing.assert_array_equal(aperture_correction(fs_table, wl[1:4], 6.0, pixel_phase=0.6), 1.0)
    with pytest.raises(ValueError, match="finite"):
        aperture_correction(fs_table, wl, 6.0, pixel_phase=np.nan)


def test_phase_zero_and_bad_size_grid_give_one(tmp_path):
    sg = size_grid(WL)
    sg[:, 4] = sg[::-1, 4]  # sizes decreasing at one wavelength -> grid invalid nearby
    ac = np.ones((NSIZE, WL.size, PHASE.size))
    ac[:, 0, :] = 0.0  # zero correction at the first wavelength
    rows = phase_rows([("CLEAR", "PRISM")], slit=False, apcorr=ac, size=sg)
    path = write_apcorr(NrsMosApcorrModel, rows, tmp_path / "mos.fits")
    tab = read_apcorr(path, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    c = aperture_correction(tab, np.array([WL[0], WL[4], WL[8]]), 6.0)
    np.testing.assert_array_equal(c, [1.0, 1.0, 1.0])


def test_phase_unsorted_wavelengths(tmp_path):
    order = np.array([3, 0, 8, 1, 5, 2, 7, 4, 6])
    wl = WL[order]
    rows = phase_rows([("CLEAR", "PRISM")], slit=False, wavelength=wl)
    tab = read_apcorr(
        write_apcorr(NrsMosApcorrModel, rows, tmp_path / "m.fits"),
        apcorr_spec("NRS_MSASPEC"),
        filter="CLEAR",
        grating="PRISM",
    )
    x = np.array([1.2, 2.9, 4.7])
    np.testing.assert_allclose(
        aperture_correction(tab, x, 7.5, pixel_phase=0.3), analytic(x, 7.5, 0.3), rtol=1e-6
    )


def test_phase_inconsistent_layout_warns_and_gives_one(tmp_path):
    rows = np.zeros(
        1,
        dtype=[
            ("filter", "S12"),
            ("grating", "S15"),
            ("wavelength", "f4", (9,)),
            ("nelem_wl", "i2"),
            ("size", "f4", (4, 9)),
            ("nelem_size", "i2"),
            ("pixphase", "f4", (3,)),
            ("apcorr", "f4", (4, 3, 9)),
            ("apcorr_err", "f4", (4, 3, 9)),
        ],
    )
    rows["filter"], rows["grating"], rows["wavelength"] = "CLEAR", "PRISM", WL
    rows["size"], rows["pixphase"], rows["apcorr"] = size_grid(WL), PHASE, 2.0
    path = write_apcorr(NrsMosApcorrModel, rows, tmp_path / "bad_layout.fits")
    with pytest.warns(Spec3cWarning, match="no aperture correction"):
        tab = read_apcorr(path, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    np.testing.assert_array_equal(aperture_correction(tab, WL, 6.0), 1.0)


def test_arcsec_sizes_need_pixel_scale(tmp_path):
    scale = 0.1  # arcsec / pixel
    rows = phase_rows([("CLEAR", "PRISM")], slit=False, size=size_grid(WL) * scale)
    rows["apcorr"] = analytic(WL[None, :, None], size_grid(WL)[:, :, None], PHASE[None, None, :])
    path = write_apcorr(NrsMosApcorrModel, rows, tmp_path / "arcsec.fits", sizeunit="arcsec")
    tab = read_apcorr(path, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    assert tab.size_in_arcsec
    with pytest.raises(ValueError, match="pixel_scale"):
        aperture_correction(tab, WL, 6.0)
    x = np.array([1.5, 3.3])
    np.testing.assert_allclose(
        aperture_correction(tab, x, 7.0, pixel_scale=scale), analytic(x, 7.0, 0.5), rtol=1e-6
    )


# --------------------------------------------------------------------------- errors


def test_read_errors(tmp_path, fs_file):
    with pytest.raises(InputError, match="0 APCORR rows") as e:
        read_apcorr(fs_file, apcorr_spec("NRS_FIXEDSLIT"), filter="CLEAR", grating="G395H", slit="S200A1")
    assert e.value.path == str(fs_file)
    with pytest.raises(InputError, match="0 APCORR rows"):  # FS needs the slit name
        read_apcorr(fs_file, apcorr_spec("NRS_FIXEDSLIT"), filter="CLEAR", grating="PRISM")
    dup = write_apcorr(
        NrsMosApcorrModel, phase_rows([("CLEAR", "PRISM")] * 2, slit=False), tmp_path / "dup.fits"
    )
    with pytest.raises(InputError, match="2 APCORR rows"):
        read_apcorr(dup, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    with pytest.raises(InputError, match="cannot read"):  # FS file is not a MOS model
        read_apcorr(fs_file, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    with pytest.raises(Spec3cError, match="not supported"):
        apcorr_spec("NRS_LAMP")  # a calibration exposure type no stage-3 mode serves
    with pytest.raises(InputError, match="cannot read"):
        read_apcorr(tmp_path / "missing.fits", apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(InputError, match="cannot read"):
        read_apcorr(junk, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    with pytest.raises(InputError, match="cannot read"):  # NIRSpec file read as MIRI LRS
        read_apcorr(fs_file, apcorr_spec("MIR_LRS-FIXEDSLIT"), subarray="FULL")


# --------------------------------------------------------------------------- MIRI LRS


def lrs_file(tmp_path, *, sizeunit="pixels"):
    nw, ns = 6, 4
    wl = np.array([5.0, 7.0, 6.0, 9.0, 8.0])  # unsorted, padded to 6
    size = np.array([2, 4, 6])  # padded to 4
    rows = np.zeros(
        2,
        dtype=[
            ("subarray", "S17"),
            ("wavelength", "f4", (nw,)),
            ("nelem_wl", "i2"),
            ("size", "u1", (ns,)),
            ("nelem_size", "i2"),
            ("apcorr", "f4", (nw, ns)),
            ("apcorr_err", "f4", (nw, ns)),
        ],
    )
    rows["subarray"] = ["FULL", "SLITLESSPRISM"]
    for k, r in enumerate(rows):
        r["wavelength"][:5], r["nelem_wl"] = wl, 5
        r["size"][:3], r["nelem_size"] = size, 3
        r["apcorr"][:5, :3] = (k + 1) * analytic(wl[:, None], size[None, :].astype(float), 0.0)
        r["apcorr"][5, :] = r["apcorr"][:, 3] = 99.0  # padding must be ignored
    return write_apcorr(MirLrsApcorrModel, rows, tmp_path / "lrs.fits", sizeunit=sizeunit)


def test_lrs_bilinear_clamped_and_nan(tmp_path):
    path = lrs_file(tmp_path)
    tab = read_apcorr(path, apcorr_spec("MIR_LRS-FIXEDSLIT"), subarray="full")
    assert tab.kind == "lrs" and tab.pixphase is None
    wl = np.array([5.0, 6.3, 7.7, 9.0, 4.0, 10.0, 6.0, np.nan])
    size = np.array([2.0, 3.1, 5.5, 6.0, 3.0, 3.0, 10.0, 3.0])
    c = aperture_correction(tab, wl, size, pixel_phase=0.1)  # phase ignored
    expect = analytic(np.clip(wl, 5, 9), np.clip(size, 2, 6), 0.0)
    np.testing.assert_allclose(c[:7], expect[:7], rtol=1e-6)
    assert np.isnan(c[7])
    slitless = read_apcorr(path, apcorr_spec("MIR_LRS-SLITLESS"), subarray="SLITLESSPRISM")
    np.testing.assert_allclose(
        aperture_correction(slitless, wl[:4], size[:4]), 2 * expect[:4], rtol=1e-6
    )
    with pytest.raises(InputError, match="0 APCORR rows"):
        read_apcorr(path, apcorr_spec("MIR_LRS-FIXEDSLIT"), subarray="SUB64")
    with pytest.raises(InputError, match="0 APCORR rows"):
        read_apcorr(path, apcorr_spec("MIR_LRS-FIXEDSLIT"))


# --------------------------------------------------------------------------- apply


def test_apply_correction_columns():
    n = 5
    c = np.linspace(1.1, 1.5, n)
    names = [
        "FLUX",
        "FLUX_ERROR",
        "SURF_BRIGHT",
        "SB_ERROR",
        "FLUX_VAR_POISSON",
        "FLUX_VAR_RNOISE",
        "FLUX_VAR_FLAT",
        "SB_VAR_POISSON",
        "SB_VAR_RNOISE",
        "SB_VAR_FLAT",
        "BACKGROUND",
        "BKGD_ERROR",
        "BKGD_VAR_POISSON",
        "NPIXELS",
        "WAVELENGTH",
    ]
    cols = {k: np.full(n, 2.0) for k in names}
    cols["flux"] = cols.pop("FLUX")  # names are matched case-insensitively
    apply_correction(cols, c)
    for k in ("flux", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR"):
        np.testing.assert_allclose(cols[k], 2.0 * c)
    for k in names[4:10]:
        np.testing.assert_allclose(cols[k], 2.0 * c * c)
    for k in names[10:]:
        np.testing.assert_array_equal(cols[k], 2.0)
    partial = {"FLUX": np.ones(n)}  # absent columns are skipped
    apply_correction(partial, 3.0)
    np.testing.assert_array_equal(partial["FLUX"], 3.0)
