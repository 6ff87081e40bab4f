"""The NIRISS SOSS simulator: files jwst reads, reference files that describe the scene, truth."""

from __future__ import annotations

import asdf
import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.modes.soss.reffiles import read_soss_references
from spec3c.modes.soss.traces import order_traces, profiles
from spec3c.simulate import SimOptions, simulate
from spec3c.simulate.niriss import soss


@pytest.fixture(scope="module")
def sim96(tmp_path_factory):
    return simulate("niriss-soss", tmp_path_factory.mktemp("soss96"),
                    SimOptions(seed=2, n_integrations=3, subarray="SUBSTRIP96"))


def test_calints_file(sim96):
    with dm.open(sim96.cal_paths[0]) as m:
        assert isinstance(m, dm.CubeModel)
        assert m.data.shape == (3, 96, 2048)
        assert m.meta.exposure.type == "NIS_SOSS" and m.meta.subarray.name == "SUBSTRIP96"
        assert m.meta.instrument.pupil_position == pytest.approx(245.79)
        assert len(m.int_times) == 3
        assert np.isnan(m.data[:, :, :4]).all()  # reference columns
        assert np.all(np.isnan(m.data) == ((m.dq & 1) != 0))
    assert sim96.asn_path.exists() and set(sim96.reference_files) == {"pastasoss", "specprofile", "speckernel", "photom"}


def test_reference_files_describe_the_scene(sim96):
    refs = read_soss_references(*(sim96.reference_files[k] for k in ("pastasoss", "specprofile", "speckernel")))
    traces = order_traces(refs, 245.79, "SUBSTRIP96", [1, 2])
    for order, t in traces.items():
        truth = soss.trace_model(order, 245.79, "SUBSTRIP96")
        assert np.abs(t.y - truth.y).max() < 0.01
        assert np.abs(t.wavelength - truth.wavelength).max() < 1e-6
    prof = profiles(refs, [1], (96, 2048))[1]
    assert np.allclose(prof, soss.order_profile(1, 245.79, "SUBSTRIP96"), atol=1e-6)


def test_truth(sim96):
    with asdf.open(sim96.truth_path) as af:
        orders = af["orders"]
        assert sorted(orders) == [1, 2]
        flux = np.asarray(orders[1]["flux"])
        lc = np.asarray(af["light_curve"])
    assert flux.shape == (3, 2048)
    assert np.allclose(flux / flux[0], lc[:, None])
    assert lc.min() == pytest.approx(1 - 0.01)


def test_geometry():
    for order in (1, 2, 3):
        t = soss.trace_model(order)
        assert np.all(np.diff(t.wavelength) < 0)  # blue towards larger columns
        prof = soss.order_profile(order, rows=np.arange(-100, 400))
        assert np.allclose(prof.sum(0)[: len(t.x)], 1.0)
    gap = soss.trace_model(2).y[0] - soss.trace_model(1).y[0]
    assert 20 < gap < 40  # order 2 overlaps order 1's box at the red end of order 1
    assert soss.trace_model(3).y[0] - soss.trace_model(2).y[0] > 40  # order 3 stays out of order 2's box
    with pytest.raises(ValueError, match="order"):
        soss.trace_model(4)
