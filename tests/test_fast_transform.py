"""spec3c.fast_transform: gwcs transforms evaluated without astropy's per-call machinery must give
astropy's values bit for bit, and fall back to astropy whenever they would not."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.modeling import models as am
from stdatamodels.jwst import datamodels as dm

from spec3c.fast_transform import CHECK_SAMPLE, FastTransform, FastWcs
from spec3c.simulate import SimOptions, simulate


def _same(got, want) -> bool:
    want = want if isinstance(want, (tuple, list)) else (want,)
    return len(got) == len(want) and all(
        np.shape(g) == np.shape(w) and np.array_equal(g, w, equal_nan=True) for g, w in zip(got, want, strict=True))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One MIRI MRS and one NIRSpec IFU cal file of the simulators (jwst 3.x WCS layouts)."""
    root = tmp_path_factory.mktemp("fast-transform")
    mrs = simulate("miri-mrs", root / "mrs", SimOptions(seed=5, n_exposures=1, channels=(1,), bands=("SHORT",)))
    nrs = simulate("nirspec-ifu", root / "nrs", SimOptions(seed=6, n_exposures=1, n_sources=1, n_columns=128))
    return {"mrs": sorted(mrs.cal_paths)[0], "nrs": sorted(nrs.cal_paths)[0]}


def _pixels(shape, shift=(0.0, 0.0)):
    yy, xx = np.indices(shape, dtype=np.float64)
    return xx.ravel() + shift[0], yy.ravel() + shift[1]


@pytest.mark.parametrize("shift", [(0.0, 0.0), (-0.4999, 0.0), (0.4999, 0.0), (0.0, -0.4999), (0.0, 0.4999)])
def test_mrs_transforms_match_gwcs_on_every_pixel(simulated, shift):
    with dm.open(simulated["mrs"]) as model:
        wcs = model.meta.wcs
        fast = FastWcs(wcs)
        x, y = _pixels(model.data.shape, shift)
        assert _same(fast(x, y), wcs(x, y))
        det = wcs.available_frames[0]
        alpha, beta, lam = fast.transform(det, "alpha_beta", x, y)
        assert _same((alpha, beta, lam), wcs.transform(det, "alpha_beta", x, y))
        out = wcs.output_frame.name
        assert _same(fast.transform("alpha_beta", out, alpha, beta + 0.1, lam),
                     wcs.transform("alpha_beta", out, alpha, beta + 0.1, lam))
        assert all(t.fast for t in fast._transforms.values())


def test_nirspec_transforms_match_the_models_on_every_pixel(simulated):
    with dm.open(simulated["nrs"]) as model:
        wcs = model.meta.wcs
        det2slicer = wcs.get_transform(wcs.available_frames[0], "slicer")
        slicer2world = wcs.get_transform("slicer", wcs.output_frame.name)
        to_slicer = FastTransform(det2slicer, det2slicer, with_bounding_box=False)
        to_world = FastTransform(slicer2world, slicer2world, with_bounding_box=False)
        x, y = _pixels(model.data.shape, (0.0, -0.49))
        across, along, lam = to_slicer(x, y)
        assert _same((across, along, lam), det2slicer(x, y))
        assert np.isfinite(lam).sum() > 1000
        assert _same(to_world(across + 1e-4, along, lam), slicer2world(across + 1e-4, along, lam))
        assert to_slicer.fast and to_world.fast


def test_operators_mappings_and_bounding_box_as_astropy():
    poly = am.Polynomial2D(2, c0_0=1.0, c1_0=0.5, c0_1=-0.25, c1_1=1e-3, c2_0=2e-4)
    model = (am.Mapping((0, 1, 0)) | (poly & am.Shift(3.0)) | am.Mapping((1, 0))
             | ((am.Scale(2.0) + am.Const1D(0.5)) ** am.Const1D(1.5)) & (am.Multiply(3.0) / am.Shift(1.0)))
    model.bounding_box = ((0.0, 50.0), (-1.0, 20.0))  # (y, x) in astropy's order
    x = np.linspace(-5.0, 60.0, 997)
    y = np.linspace(-3.0, 25.0, 997)
    x[10] = np.nan
    fast = FastTransform(model, lambda *a: model(*a, with_bounding_box=True, fill_value=np.nan))
    got = fast(x, y)
    assert fast.fast
    assert _same(got, model(x, y, with_bounding_box=True, fill_value=np.nan))
    assert np.isnan(got[0][0]) and np.isfinite(got[0][200])


def test_nodes_with_units_or_fixed_inputs_go_to_astropy():
    with_units = am.Shift(3.0 * u.um) & am.Scale(2.0)
    fixed = am.fix_inputs(am.Polynomial2D(1, c0_0=1.0, c1_0=2.0, c0_1=3.0), {"y": 2.0})
    x = np.linspace(0.0, 1.0, 50)
    fast = FastTransform(with_units, lambda a, b: with_units(a, b))
    assert _same(fast(x * u.um, x), with_units(x * u.um, x))  # quantities: the reference
    fast_fixed = FastTransform(fixed, fixed)
    assert _same(fast_fixed(x), fixed(x)) and fast_fixed.fast


def test_a_transform_that_differs_on_its_check_is_left_to_astropy(caplog):
    model = am.Shift(1.0) | am.Scale(3.0)
    fast = FastTransform(model, model)
    fast._fast = lambda v: (v * 3.0 + 1.0,)  # a wrong compiled tree
    x = np.linspace(0.0, 10.0, CHECK_SAMPLE * 3)
    assert _same(fast(x), model(x))
    assert not fast.fast and fast.checked
    assert _same(fast(x[:7]), model(x[:7]))


def test_a_compiled_tree_that_raises_is_left_to_astropy():
    model = am.Shift(1.0) | am.Scale(3.0)
    fast = FastTransform(model, model)

    def broken(v):
        raise FloatingPointError("boom")

    fast._fast = broken
    assert _same(fast(np.arange(5.0)), model(np.arange(5.0))) and not fast.fast


def test_scalars_and_mixed_sizes_go_to_the_reference():
    model = am.Shift(1.0) & am.Scale(3.0)
    fast = FastTransform(model, model)
    assert _same(fast(2.0, 4.0), model(2.0, 4.0))
    assert _same(fast(np.arange(3.0), np.float64(4.0)), model(np.arange(3.0), 4.0))
    assert not fast.checked  # nothing compiled was used yet


def test_regions_selector_undefined_labels(simulated):
    """Pixels of no slice, and of a label the selector has no transform for, are undefined (NaN)."""
    with dm.open(simulated["mrs"]) as model:
        wcs = model.meta.wcs
        selector = wcs.get_transform(wcs.available_frames[0], "alpha_beta")
        mapper = selector.label_mapper.mapper
        dropped = sorted(selector.selector)[0]
        del selector.selector[dropped]  # a label of the map without a transform
        fast = FastTransform(selector, lambda *a: selector(*a))
        x, y = _pixels(model.data.shape)
        got = fast(x, y)
        assert fast.fast
        assert _same(got, selector(x, y))
        assert np.all(np.isnan(got[0][mapper.ravel() == dropped]))
