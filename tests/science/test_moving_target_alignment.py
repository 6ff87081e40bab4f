"""Moving targets: after assign_mtwcs every exposure's trace lands on one s2d position.

Each exposure of a tracked moving target sees the target at its planned slit
position while the sky coordinates follow the ephemeris (0.5-0.6 arcsec per
exposure in the simulator, several pixels).  Each exposure is drizzled alone
onto the source's output grid; the peak of its cross-dispersion profile must
be the same within 0.2 pixel with assign_mtwcs, and must not be without it
(control).
"""

from __future__ import annotations

import numpy as np
import pytest

from spec3c._core import Drizzle, DrizzleParams
from spec3c.algorithms.slit_grid import GridOptions
from spec3c.ingest import ingest
from spec3c.simulate import SimOptions, simulate
from spec3c.steps import assign_mtwcs
from spec3c.steps.common import RESAMPLE_BAD_BITS, input_weight
from spec3c.steps.context import science_inputs
from spec3c.store import open_store


def _peak(profile: np.ndarray) -> float:
    """Sub-pixel peak: parabola through the maximum and its neighbours."""
    i = int(np.nanargmax(profile))
    if 0 < i < len(profile) - 1:
        a, b, c = profile[i - 1], profile[i], profile[i + 1]
        return i + 0.5 * (a - c) / (a - 2 * b + c)
    return float(i)


def _exposure_peaks(store, source: str, align: bool) -> list[float]:
    inputs = science_inputs(store, source)
    if align:
        positions = assign_mtwcs.association_positions(store.list_cutouts(), inputs.exposures)
        assert assign_mtwcs.align(inputs, positions).status == "COMPLETE"
    grid = _grid(inputs, GridOptions(bad_bits=RESAMPLE_BAD_BITS))
    spatial_axis = 0 if grid.dispersion_axis == 1 else 1
    peaks = []
    for k, cutout in enumerate(inputs.cutouts):
        driz = Drizzle(grid.shape, DrizzleParams(kernel="square", pixfrac=1.0))
        sci = np.nan_to_num(cutout.planes["sci"]).astype(np.float32)
        driz.add(sci, inputs.pixmap(grid, k), input_weight(inputs, k, "ivm", RESAMPLE_BAD_BITS))
        image, _ = driz.finalize()
        peaks.append(_peak(np.nansum(image, axis=1 - spatial_axis)))
    return peaks


@pytest.fixture(scope="module", params=["nirspec-fs", "miri-lrs-fs"])
def moving(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    kwargs = {"n_sources": 1} if request.param == "nirspec-fs" else {}
    sim = simulate(
        request.param,
        root / "in",
        SimOptions(seed=31, n_exposures=3, moving_target=True, nod_subtracted=False, **kwargs),
    )
    ingest(sim.asn_path, root / "store")
    return open_store(root / "store")


def test_traces_align_with_assign_mtwcs(moving):
    source = moving.sources()[0]
    peaks = _exposure_peaks(moving, source, align=True)
    assert np.ptp(peaks) < 0.2, f"per-exposure s2d peaks {np.round(peaks, 3)}"


def test_traces_do_not_align_without_it(moving):
    source = moving.sources()[0]
    peaks = _exposure_peaks(moving, source, align=False)
    assert np.ptp(peaks) > 1.0, f"per-exposure s2d peaks {np.round(peaks, 3)}"


def _grid(inputs, options):  # type: ignore[no-untyped-def]
    """The output grid of the inputs' mode."""
    from spec3c.modes.registry import mode_for

    return mode_for(inputs.exp_type()).build_grid(inputs, options)
