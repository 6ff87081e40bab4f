"""combine_1d algorithm: known answers, edge cases and grid properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec3c.algorithms.combine1d import (
    CombinedSpectrum,
    Combiner,
    InputSpectrum,
    combine,
    is_strictly_monotonic,
    output_wavelengths,
    rejection_reason,
)
from spec3c.config import Combine1dParams
from spec3c.results import COMPLETE, SKIPPED, Spectrum1D
from spec3c.steps import combine_1d


def make(wl, flux=1.0, error=0.1, sb=2.0, sb_error=0.2, dq=0, weight=1.0, order=1):
    wl = np.asarray(wl, dtype=float)
    n = wl.size

    def full(v, dtype=float):
        return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

    return InputSpectrum(wl, full(flux), full(error), full(sb), full(sb_error), full(dq, np.uint32), weight, order)


GRID = 1.0 + 0.01 * np.arange(20)


def test_identical_spectra_give_the_same_values():
    rng = np.random.default_rng(0)
    flux = 1.0 + rng.random(20)
    out = combine([make(GRID, flux=flux, weight=w) for w in (1.0, 2.0, 3.0)])
    c = out[1]
    np.testing.assert_allclose(c.wavelength, GRID, rtol=0, atol=1e-15)
    np.testing.assert_allclose(c.flux, flux, rtol=1e-14)
    np.testing.assert_allclose(c.surf_bright, 2.0, rtol=1e-14)
    np.testing.assert_array_equal(c.weight, 6.0)
    np.testing.assert_array_equal(c.n_input, 3.0)
    # errors: sqrt(Σ (e w)²) / Σ w
    np.testing.assert_allclose(c.error, 0.1 * np.sqrt(1 + 4 + 9) / 6, rtol=1e-14)
    np.testing.assert_allclose(c.sb_error, 0.2 * np.sqrt(1 + 4 + 9) / 6, rtol=1e-14)


def test_weighted_mean_of_two_spectra():
    c = combine([make(GRID, flux=1.0, error=0.3, weight=100.0), make(GRID, flux=4.0, error=0.4, weight=300.0)])[1]
    np.testing.assert_allclose(c.flux, (1.0 * 100 + 4.0 * 300) / 400, rtol=1e-14)
    np.testing.assert_allclose(c.error, np.hypot(0.3 * 100, 0.4 * 300) / 400, rtol=1e-14)
    np.testing.assert_array_equal(c.weight, 400.0)
    np.testing.assert_array_equal(c.n_input, 2.0)


def test_dq_is_or_ed_and_do_not_use_or_nan_flux_skipped():
    dq_a = np.zeros(20, np.uint32)
    dq_b = np.zeros(20, np.uint32)
    dq_a[3], dq_b[3] = 4, 16  # both kept, flags OR-ed
    dq_a[5] = 1 | 4  # DO_NOT_USE: pixel ignored, flags not propagated
    flux_b = np.full(20, 3.0)
    flux_b[8] = np.nan
    c = combine([make(GRID, flux=1.0, dq=dq_a), make(GRID, flux=flux_b, dq=dq_b)])[1]
    assert c.dq[3] == 20
    assert c.dq[5] == 0 and c.flux[5] == 3.0 and c.n_input[5] == 1
    assert c.flux[8] == 1.0 and c.n_input[8] == 1
    np.testing.assert_array_equal(np.delete(c.n_input, [5, 8]), 2.0)


def test_element_reached_by_no_input_is_dropped():
    flux = np.ones(20)
    flux[10] = np.nan
    c = combine([make(GRID, flux=flux)])[1]
    assert len(c) == 19
    assert GRID[10] not in c.wavelength


def test_non_monotonic_and_empty_spectra_are_dropped():
    bad = GRID.copy()
    bad[4] = bad[3]
    assert not is_strictly_monotonic(bad)
    assert is_strictly_monotonic(GRID[::-1]) and is_strictly_monotonic(GRID[:1])
    assert rejection_reason(make(bad)) == "wavelengths are not strictly monotonic"
    assert rejection_reason(make(GRID, flux=np.nan)) == "no valid flux values"
    c = combine([make(GRID, flux=1.0), make(bad, flux=100.0), make(GRID, flux=np.nan)])[1]
    np.testing.assert_array_equal(c.flux, 1.0)
    np.testing.assert_array_equal(c.n_input, 1.0)
    assert combine([make(bad)]) == {}


def test_orders_are_grouped():
    out = combine([make(GRID, flux=1.0, order=1), make(GRID + 1, flux=5.0, order=2), make(GRID, flux=3.0, order=1)])
    assert list(out) == [1, 2]
    np.testing.assert_allclose(out[1].flux, 2.0)
    np.testing.assert_allclose(out[2].flux, 5.0)
    np.testing.assert_allclose(out[2].wavelength, GRID + 1, atol=1e-15)


def test_descending_spectrum_combines_like_ascending():
    rng = np.random.default_rng(3)
    flux = rng.random(20)
    up = combine([make(GRID, flux=flux), make(GRID, flux=2 * flux)])[1]
    down = combine([make(GRID, flux=flux), make(GRID[::-1], flux=2 * flux[::-1])])[1]
    np.testing.assert_allclose(up.flux, down.flux, rtol=1e-14)


def test_sigma_clip_removes_a_spike():
    rng = np.random.default_rng(1)
    spectra = [make(GRID, flux=1.0 + 0.01 * rng.normal(size=20)) for _ in range(5)]
    spiked = spectra[2].flux.copy()
    spiked[7] = 100.0
    spectra[2] = make(GRID, flux=spiked)
    plain = combine(spectra)[1]
    clipped = combine(spectra, sigma_clip=3.0)[1]
    assert plain.flux[7] > 10
    assert abs(clipped.flux[7] - 1.0) < 0.05
    assert clipped.n_input[7] == 4 and clipped.weight[7] == 4.0
    assert np.all(clipped.flux < 1.1)


def test_later_pixel_mapping_to_the_same_element_overwrites():
    # input twice as fine as the output grid: pairs of pixels land on one element
    comb = Combiner(np.array([1.0, 2.0, 3.0]), 1)
    comb.add(make([1.0, 1.4, 2.0, 2.4], flux=[1.0, 2.0, 3.0, 4.0], dq=[2, 4, 0, 8]))
    c = comb.finalize()
    np.testing.assert_array_equal(c.flux, [2.0, 4.0])
    np.testing.assert_array_equal(c.dq, [6, 8])
    np.testing.assert_array_equal(c.n_input, [1.0, 1.0])


def test_output_pixel_rounds_half_to_even_and_skips_out_of_range():
    comb = Combiner(np.array([1.0, 2.0, 3.0, 4.0]), 1)
    comb.add(make([0.9, 1.5, 2.5, 4.1], flux=[1.0, 2.0, 3.0, 4.0]))  # 1.5 -> 0, 2.5 -> 2
    c = comb.finalize()
    np.testing.assert_array_equal(c.wavelength, [1.0, 3.0])
    np.testing.assert_array_equal(c.flux, [2.0, 3.0])
    assert comb.n_unmapped == 2


def test_combiner_validates_its_arguments():
    with pytest.raises(ValueError, match="strictly increasing"):
        Combiner(np.array([1.0, 1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="n_inputs"):
        Combiner(GRID, 0)
    comb = Combiner(GRID, 1)
    comb.add(make(GRID))
    with pytest.raises(ValueError, match="already holds"):
        comb.add(make(GRID))
    with pytest.raises(ValueError, match="length"):
        InputSpectrum(GRID, GRID[:5], GRID, GRID, GRID, np.zeros(20, np.uint32), 1.0)


def test_input_arrays_are_coerced_to_native_float64():
    s = make(GRID.astype(">f8"), flux=np.ones(20, dtype=">f4"))
    assert s.wavelength.dtype == np.float64 and s.wavelength.dtype.isnative
    assert s.flux.dtype == np.float64 and s.dq.dtype == np.uint32


def test_combined_spectrum_table_layout():
    c = combine([make(GRID)])[1]
    assert isinstance(c, CombinedSpectrum)
    t = c.table()
    assert t.dtype.names == ("WAVELENGTH", "FLUX", "ERROR", "SURF_BRIGHT", "SB_ERROR", "DQ", "WEIGHT", "N_INPUT")
    assert t["DQ"].dtype == np.uint32
    np.testing.assert_array_equal(t["FLUX"], c.column("FLUX"))


def test_single_element_spectra_are_accumulated_but_not_gridded():
    out = combine([make(GRID, flux=1.0), make(GRID[5:6], flux=3.0)])[1]
    np.testing.assert_allclose(out.wavelength, GRID, atol=1e-15)
    assert out.flux[5] == 2.0 and out.n_input[5] == 2
    assert combine([make(GRID[5:6])]) == {}
    with pytest.raises(ValueError, match="more than one element"):
        output_wavelengths([make(GRID[5:6])])


# ---- output grid: against a plain loop transcription of the reference's description ----


def loop_grid(spectra):
    """count_input + compute_output_wl written as straightforward loops (ALGORITHMS.md §14.3)."""
    wl = np.sort(np.concatenate([s.wavelength for s in spectra if len(s) > 1]))
    nwl = wl.size
    n = np.zeros(nwl, dtype=np.int64)
    for s in spectra:
        w = s.wavelength
        if len(w) < 2:
            continue
        a, b = (w, np.diff(w)) if w[1] > w[0] else (w[::-1], -np.diff(w)[::-1])
        lo, hi = a[0] - 0.5 * b[0], a[-1] + 0.5 * b[-1]
        n += np.array([lo <= x < hi for x in wl])
    sigma, mean, out = np.full(nwl, 9999.0), np.full(nwl, -99.0), np.full(nwl, -99.0)
    for k in range(nwl):
        if n[k] == 1:
            sigma[k], mean[k], out[k] = 0.0, wl[k], wl[k]
            continue
        stop = k + n[k] // 2 + 1
        start = stop - n[k]
        if start >= 0 and stop <= nwl:
            sigma[k], mean[k] = wl[start:stop].std(), wl[start:stop].mean()
            if sigma[k] == 0.0:
                out[k] = mean[k]
    for k in range(nwl):
        left = sigma[k - 1] if k > 0 else sigma[1]
        right = sigma[k + 1] if k < nwl - 1 else sigma[nwl - 2]
        ref = 0.8 * sigma[1] if k == 0 else 0.8 * sigma[nwl - 2] if k == nwl - 1 else 0.8 * (left + right) / 2.0
        if sigma[k] > 0.0 and sigma[k] < ref:
            out[k] = mean[k]
    i = 0
    while i < nwl:
        m = n[i]
        if i + m // 2 < nwl:
            m = n[i + m // 2]
            if i + m < nwl and out[max(i - 1, 0) : min(i + m + 1, nwl - 1)].max() <= 0.0:
                out[i] = wl[i : i + m].mean()
        i += m
    return np.sort(out[out > 0.0])


@st.composite
def spectrum_sets(draw):
    count = draw(st.integers(1, 5))
    spectra = []
    for _ in range(count):
        n = draw(st.integers(2, 40))
        start = draw(st.floats(0.5, 1.5))
        step = draw(st.floats(1e-4, 5e-3))
        jitter = draw(st.lists(st.floats(0.0, 0.4), min_size=n, max_size=n))
        wl = start + step * (np.arange(n) + np.asarray(jitter))
        if draw(st.booleans()):
            wl = wl[::-1]
        spectra.append(make(wl))
    return spectra


@settings(max_examples=60, deadline=None)
@given(spectrum_sets())
def test_output_grid_sorted_within_range_and_as_the_loop(spectra):
    grid = output_wavelengths(spectra)
    lo = min(s.wavelength.min() for s in spectra)
    hi = max(s.wavelength.max() for s in spectra)
    assert grid.size > 0
    assert np.all(np.diff(grid) >= 0)
    assert grid[0] >= lo and grid[-1] <= hi
    np.testing.assert_array_equal(grid, loop_grid(spectra))


@settings(max_examples=30, deadline=None)
@given(spectrum_sets())
def test_combination_of_constant_spectra_is_constant(spectra):
    c = combine(spectra)[1]
    np.testing.assert_allclose(c.flux, 1.0, rtol=1e-14)
    assert np.all(c.n_input >= 1) and np.all(c.n_input <= len(spectra))


# ---- step layer ----


def x1d(wl, flux, order=1):
    n = len(wl)
    cols = {"WAVELENGTH": np.asarray(wl, float), "FLUX": np.full(n, float(flux)), "FLUX_ERROR": np.full(n, 0.1),
            "SURF_BRIGHT": np.full(n, 2.0), "SB_ERROR": np.full(n, 0.2), "DQ": np.zeros(n, np.uint32)}  # fmt: skip
    return Spectrum1D(cols, {"spectral_order": order, "source_id": 4, "source_type": "POINT", "flux_unit": "Jy"})


@pytest.mark.parametrize(
    ("key", "kind", "expected"),
    [("exposure_time", "exposure_time", 2.5), ("EFFEXPTM", "exposure_time", 2.5),
     ("integration_time", "integration_time", 2.5), ("unit weight", "unit_weight", 2.0),
     ("bogus", "unit_weight", 2.0)],
)  # fmt: skip
def test_step_weights(key, kind, expected):
    outcome, out, spec_meta = combine_1d.combine_spectra([x1d(GRID, 1.0), x1d(GRID, 3.0)], [100.0, 300.0],
                                                         Combine1dParams(exptime_key=key))
    assert outcome.status == COMPLETE and outcome.details.exptime_key == kind
    assert out is not None
    np.testing.assert_allclose(out[1].flux, expected)
    assert spec_meta[1]["source_id"] == 4
    assert ("not understood" in outcome.message) == (key == "bogus")


def test_step_skips_without_valid_spectra():
    outcome, out, _ = combine_1d.combine_spectra([x1d(GRID, np.nan)], [1.0], Combine1dParams())
    assert outcome.status == SKIPPED and out is None
    assert outcome.details.rejected == {0: "no valid flux values"}
    with pytest.raises(ValueError, match="exposure times"):
        combine_1d.combine_spectra([x1d(GRID, 1.0)], [], Combine1dParams())


def test_output_grid_is_the_same_in_blocks_of_windows(monkeypatch):
    """_window_stats reduces its windows a block at a time: blocks of any size give the loop's grid."""
    from spec3c.algorithms import combine1d as module  # noqa: PLC0415

    rng = np.random.default_rng(8)
    spectra = [make(1.0 + 2e-3 * (np.arange(60) + rng.uniform(0.0, 0.4, 60))) for _ in range(4)]
    spectra += [make(1.0 + 2e-3 * np.arange(60)) for _ in range(3)]  # identical grids (SOSS integrations)
    want = loop_grid(spectra)
    for block in (1, 7, 64, 1 << 20):
        monkeypatch.setattr(module, "_WINDOW_CHUNK", block)
        np.testing.assert_array_equal(output_wavelengths(spectra), want)
