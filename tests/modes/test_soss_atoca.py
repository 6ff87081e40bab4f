"""ATOCA (SOSS order decontamination): its pieces, and the order-1 flux where orders 1 and 2 overlap.

The truth test renders orders 1 and 2 of the simulator's star on SUBSTRIP256,
writes the jwst-format reference files, and runs the extract_1d hook
(:func:`spec3c.modes.soss.atoca.trace_models`) end to end.
"""

from __future__ import annotations

import numpy as np
import pytest
from soss_runs import orders_scene

from spec3c.modes.soss import atoca, atoca_engine
from spec3c.modes.soss.atoca_engine import Engine, OrderInputs, solve_normal
from spec3c.modes.soss.atoca_grid import Throughput, adaptive_combined_grid, oversample, pixel_edges
from spec3c.modes.soss.atoca_kernel import convolution_matrix
from spec3c.modes.soss.atoca_tikho import search_factor
from spec3c.modes.soss.box import box_weights
from spec3c.simulate.niriss import soss as sim

PWCPOS = 245.79
N_INT = 2
#: soss_tikfac for the truth scene (the d_chi2 search takes ~1 min on the full frame; it is
#: tested below on a small scene)
TIKFAC = 1e-18


def _linear_scene(nx=160, ny=16):
    """One order: wavelength linear in x, Gaussian profile, smooth spectrum."""
    x = np.arange(nx)
    wavemap = np.tile(1.0 + 0.004 * x, (ny, 1))
    rows = np.arange(ny)[:, None]
    profile = np.exp(-0.5 * ((rows - 7.5) / 2.0) ** 2) * np.ones((1, nx))
    profile /= profile.sum(axis=0)
    lam = np.linspace(0.9, 1.8, 200)
    inputs = OrderInputs(wavemap, profile, Throughput(lam, np.full(lam.size, 0.5)), None,
                         np.zeros((ny, nx), bool))
    return wavemap, profile, inputs


def _spectrum(wave):
    return 1e6 * (1.0 + 0.3 * np.sin(wave * 12.0))


def test_pixel_edges_follow_dispersion():
    wavemap = np.tile(np.array([np.nan, 1.0, 1.1, 1.3, 1.4]), (2, 1))
    plus, minus = pixel_edges(wavemap)
    np.testing.assert_allclose(plus[0, 1:], [1.05, 1.2, 1.35, 1.45])
    np.testing.assert_allclose(minus[0, 1:], [0.95, 1.05, 1.2, 1.35])
    assert plus[0, 0] == minus[0, 0] == 0.0
    plus_r, minus_r = pixel_edges(wavemap[:, ::-1])  # dispersion towards -x
    np.testing.assert_allclose(plus_r[:, ::-1], plus)
    with pytest.raises(ValueError, match="dispersion"):
        pixel_edges(np.array([[1.0, 1.1, 1.2], [1.2, 1.1, 1.0]]))  # rows dispersing both ways


def test_forward_model_integrates_the_flux():
    """Each pixel: profile x integral of f T lambda over the pixel, to the grid's precision.

    The reference's pixel weights are first-order accurate in the grid step (they
    lean one node to the blue), hence 1e-3 at ~5 grid nodes per pixel here.
    """
    wavemap, profile, inputs = _linear_scene()
    grid = oversample(np.linspace(0.99, 1.65, 200), 4)
    engine = Engine([inputs], grid)
    model = engine.rebuild(_spectrum(grid), np.nan)
    plus, minus = pixel_edges(wavemap)
    fine = np.linspace(minus[0], plus[0], 401)  # (401, nx)
    column = np.trapezoid(_spectrum(fine) * 0.5 * fine, fine, axis=0)
    expected = profile * column[None, :]
    ok = np.isfinite(model)
    assert ok[:, 2:-2].all()
    np.testing.assert_allclose(model[ok], expected[ok], rtol=1e-3)


def test_convolution_matrix_rows_are_normalised():
    grid = np.linspace(1.0, 2.0, 301)
    kernel = convolution_matrix(lambda w, c: np.exp(-0.5 * ((w - c) / 0.01) ** 2), grid, (20, 280))
    assert kernel.shape == (260, 301)
    np.testing.assert_allclose(kernel.sum(axis=1), 1.0)
    flat = kernel @ np.full(301, 3.0)
    np.testing.assert_allclose(flat, 3.0)
    identity = convolution_matrix(None, grid, (20, 280)).toarray()
    np.testing.assert_array_equal(identity, np.eye(301)[20:280])


def test_adaptive_grid_reaches_rtol_within_its_budget():
    def peaky(w):
        return 1.0 + 5.0 * np.exp(-0.5 * ((w - 1.5) / 0.01) ** 2)

    coarse = np.linspace(1.0, 2.0, 51)
    fine = adaptive_combined_grid([coarse], [peaky], (1.0, 2.0), rtol=1e-6, max_size=5000)
    assert fine.size > coarse.size and np.all(np.diff(fine) > 0)
    near = np.abs(fine - 1.5) < 0.05
    assert np.diff(fine[near]).max() < np.diff(coarse).max() / 4  # refined where the flux bends
    capped = adaptive_combined_grid([coarse], [peaky], (1.0, 2.0), rtol=1e-12, max_size=120)
    assert capped.size <= 121


def test_tikhonov_search_recovers_the_spectrum():
    """The reference's d_chi2 search picks a factor whose solution matches the truth within the noise."""
    _, _, inputs = _linear_scene()
    grid = oversample(np.linspace(0.998, 1.638, 161), 2)
    engine = Engine([inputs], grid)
    clean = engine.rebuild(_spectrum(grid), 0.0)
    rng = np.random.default_rng(3)
    error = np.full(clean.shape, 0.002 * clean.max())
    data = clean + rng.normal(0.0, 1.0, clean.shape) * error
    factor = search_factor(engine, data, error, guess=1e-6, log_range=(-4.0, 4.0))
    assert 1e-10 < factor < 1e-2
    solution = engine.solve(data, error, factor)
    inner = (grid > 1.05) & (grid < 1.58)
    np.testing.assert_allclose(solution[inner], _spectrum(grid)[inner], rtol=0.02)


def test_one_order_normal_equations_are_those_of_the_design_matrix():
    """A one-order engine's compiled B'B and B'x give the scipy path's solution bit for bit."""
    _, _, inputs = _linear_scene()
    grid = oversample(np.linspace(0.998, 1.638, 161), 2)
    engine = Engine([inputs], grid)
    rng = np.random.default_rng(4)
    clean = engine.rebuild(_spectrum(grid), 0.0)
    error = rng.uniform(0.5, 2.0, clean.shape) * 1e-3
    error[rng.random(clean.shape) < 0.05] = np.inf
    data = clean + rng.normal(0.0, 1.0, clean.shape) * error
    b_mat = engine.design(error)
    scipy_normal, scipy_rhs = b_mat.T @ b_mat, b_mat.T @ engine.pixels(data, error)
    normal, rhs = engine._normal_equations(data, error)
    np.testing.assert_array_equal(rhs.view(np.int64), scipy_rhs.view(np.int64))
    assert (normal != scipy_normal).nnz == 0 and normal.nnz == scipy_normal.nnz
    regularised = 1e-6**2 * engine.tikho_sq
    np.testing.assert_array_equal(engine.solve(data, error, 1e-6),
                                  solve_normal(scipy_normal + regularised, scipy_rhs))


@pytest.fixture(scope="module")
def overlap_scene(tmp_path_factory):
    """Orders 1 and 2 of the simulated star, noisy, with the reference files of the simulator."""
    refs, images, cube = orders_scene(tmp_path_factory.mktemp("atoca"), PWCPOS, N_INT, seed=7)
    params = {"soss_tikfac": TIKFAC, "soss_width": 40.0}
    fitted = atoca.trace_models(cube, refs, PWCPOS, "SUBSTRIP256", [1, 2], params)
    models = list(fitted)
    return cube, images, models, fitted


def test_order1_flux_recovered_where_orders_overlap(overlap_scene):
    cube, images, models, fitted = overlap_scene
    trace = sim.trace_model(1, PWCPOS)
    weights = box_weights(trace.y, 40.0, images[1].shape, trace.x)
    truth = sim.order_flux(1, PWCPOS)
    contamination = (weights * images[2]).sum(axis=0) / truth
    # overlapping columns; the reference leaves order 2 unmodelled in its two reddest columns
    # next to the reference pixels (x < 6), so those are left out
    overlap = (contamination > 1e-3) & (np.arange(truth.size) >= 6)
    assert overlap.sum() > 100 and contamination[overlap].max() > 0.05
    fluxes = []
    for data, model in zip(cube.data, models, strict=True):
        decontaminated = data - atoca.other_orders(model, 1)
        fluxes.append((weights * decontaminated).sum(axis=0))
    flux = np.mean(fluxes, axis=0)
    raw = (weights * cube.data.mean(axis=0)).sum(axis=0)
    error = np.abs(flux / truth - 1)[overlap]
    assert np.median(np.abs(raw / truth - 1)[overlap]) > 0.02  # what decontamination removes
    exact = np.mean([(weights * (data - images[2])).sum(axis=0) for data in cube.data], axis=0)
    alone = np.abs((flux - exact) / truth)[overlap]  # vs removing the true contamination
    print(f"ATOCA order 1 where contaminated: |flux/truth - 1| median {np.median(error):.2e} max "
          f"{error.max():.2e}; decontamination alone median {np.median(alone):.2e} max {alone.max():.2e}")
    assert np.median(error) < 3e-3
    assert error.max() < 0.01
    assert alone.max() < 2e-3
    assert fitted.tikfac == TIKFAC and fitted.wave_grid.size > 2000


def test_models_are_finite_on_the_traces(overlap_scene):
    _, images, models, _ = overlap_scene
    for order in (1, 2):
        core = images[order] > 0.2 * images[order].max(axis=0, keepdims=True)
        core[:, :6] = core[:, -6:] = False
        assert np.isfinite(models[0][order][core]).mean() > 0.99
    np.testing.assert_allclose(atoca.other_orders(models[0], 1), np.nan_to_num(models[0][2]))


def test_column_ordering_reused_gives_colamds_solutions_bit_for_bit(monkeypatch):
    """Systems of one pattern reuse the first one's COLAMD order (factored with NATURAL on the
    reordered matrix): each solution equals a COLAMD factorisation's, bit for bit."""
    from scipy.sparse import csc_array, diags_array, random_array  # noqa: PLC0415
    from scipy.sparse.linalg import splu  # noqa: PLC0415

    from spec3c.modes.soss.atoca_engine import ColumnOrdering  # noqa: PLC0415

    rng = np.random.default_rng(6)
    design = random_array((900, 300), density=0.02, rng=rng) + diags_array(np.ones(300), shape=(900, 300))
    normal = csc_array(design.T @ design)
    tikho = csc_array(diags_array([np.full(299, -1.0), np.full(300, 2.0), np.full(299, -1.0)], offsets=[-1, 0, 1]))
    rhs = rng.normal(size=300)
    ordering = ColumnOrdering()
    specs: list[str] = []
    monkeypatch.setattr(atoca_engine, "splu", lambda a, permc_spec: specs.append(permc_spec) or splu(a, permc_spec=permc_spec))
    for factor in (1e-3, 1e-1, 10.0, 1e3):
        matrix = csc_array(normal + factor**2 * tikho)
        want = splu(matrix, permc_spec="COLAMD").solve(rhs)
        got = ordering.solve(matrix.copy(), rhs)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    assert specs == ["COLAMD", "NATURAL", "NATURAL", "NATURAL"]  # the order computed once
    other = csc_array(normal + diags_array(np.ones(300)) + csc_array((np.ones(1), ([0], [299])), shape=(300, 300)))
    np.testing.assert_array_equal(ordering.solve(other.copy(), rhs), splu(other, permc_spec="COLAMD").solve(rhs))
    assert specs[-1] == "COLAMD"  # another pattern: ordered afresh


def test_trace_masks_follow_the_reference_pixel_mask(overlap_scene):
    """The trace masks are kept between integrations and remade when a bad pixel leaves refmask."""
    cube, _, _, fitted = overlap_scene
    fit = fitted.fit().copy()
    border = np.zeros_like(fit.masks.refmask)
    border[:, :4] = border[:, -4:] = True  # reference pixels (the scene has none)
    fit.masks = atoca._Masks(fit.masks.scimask, border, refmask_version=-1)

    def expected():
        return [~(o.box_weights > 0) | fit.masks.refmask for o in fit.orders]

    kept = fit._trace_masks()
    np.testing.assert_array_equal(kept[0], expected()[0])
    data, error = np.array(cube.data[0], dtype=np.float64), np.array(cube.error(0), dtype=np.float64)
    fit.masks.update(data, error)
    assert fit._trace_masks() is kept  # nothing new at a reference pixel: the same masks
    rows, cols = np.nonzero(fit.masks.refmask)
    data[rows[0], cols[0]] = np.nan  # a reference pixel goes bad: it leaves refmask
    fit.masks.update(data, error)
    assert not fit.masks.refmask[rows[0], cols[0]]
    for got, want in zip(fit._trace_masks(), expected(), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(fit._rebuild_mask(), np.all(expected(), axis=0))
    other = fitted.fit().copy()  # another copy keeps its own masks
    np.testing.assert_array_equal(other._trace_masks()[0], ~(other.orders[0].box_weights > 0) | other.masks.refmask)
    assert not other._trace_masks()[0][:, :4].all()
