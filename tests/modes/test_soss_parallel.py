"""NIRISS SOSS in parallel and read without a datamodel: the same results as one pass through stdatamodels.

* integrations modelled in contiguous ranges (threads) give the models of one
  pass in order: ATOCA's masks persist from integration to integration, so
  each range first folds in the bad pixels of the integrations before it;
* the Tikhonov searches' solves give the values of the serial computation
  (``B'B`` in threads: tests/core/test_core_normaleq.py);
* a calints file read memory-mapped (:func:`spec3c.modes.soss.reader.read_soss_file`)
  gives the datamodel reader's metadata and planes, and any file it does not
  take goes to the datamodel reader.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from astropy.io import fits
from scipy.sparse import csr_array
from soss_runs import orders_scene
from stdatamodels.jwst import datamodels as dm

from spec3c.errors import InputError
from spec3c.ingest.asdftree import NotFast
from spec3c.modes.soss import atoca
from spec3c.modes.soss import reader as soss_reader
from spec3c.modes.soss.atoca_engine import solve_normal
from spec3c.simulate import SimOptions, simulate
from spec3c.simulate.niriss import soss as sim

PWCPOS = 245.79
N_INT = 4


@pytest.fixture(scope="module")
def time_series(tmp_path_factory):
    """Orders 1 and 2, four noisy integrations; errors NaN at some pixels of the first integration only,
    so the later integrations' masks depend on it."""
    refs, _, cube = orders_scene(tmp_path_factory.mktemp("soss-parallel"), PWCPOS, N_INT, seed=5,
                                 dtype=np.float32)
    # errors that are not finite in the first integration only, where order 2's blue end is modelled
    # alone: ATOCA's masks take them in for every later integration (as the reference's do)
    order2 = sim.trace_model(2, PWCPOS)
    nan_pixels = [(int(round(y)), int(x)) for x, y, w in zip(order2.x, order2.y, order2.wavelength, strict=True)
                  if w < 0.93 and 10 < y < 240][::7][:12]
    assert len(nan_pixels) >= 6
    for row, col in nan_pixels:
        cube.err[0, row, col] = np.nan
    params = {"soss_tikfac": 1e-18, "soss_width": 40.0}
    return atoca.trace_models(cube, refs, PWCPOS, "SUBSTRIP256", [1, 2], params), nan_pixels


def _same(a, b):
    return all(np.array_equal(a[o], b[o], equal_nan=True) for o in a) and a.keys() == b.keys()


def test_ranges_of_integrations_equal_one_pass(time_series):
    models, _ = time_series
    one_pass = list(models)
    assert len(one_pass) == N_INT
    with ThreadPoolExecutor(2) as pool:
        ranges = list(pool.map(lambda bounds: list(models.between(*bounds)), [(0, 2), (2, N_INT)]))
    assert all(_same(a, b) for a, b in zip(one_pass, ranges[0] + ranges[1], strict=True))
    # the test can fail: without the first integration's bad pixels, integration 1 is modelled otherwise
    fresh = models.fit().copy()
    data, error = models._integration(1)
    assert not _same(fresh.models(data, error), one_pass[1])


def test_copies_of_a_fit_leave_it_unchanged(time_series):
    models, nan_pixels = time_series
    fit = models.fit()
    before = fit.masks.scimask.copy()
    copy = fit.copy()
    copy.masks.update(*models._integration(0))
    assert all(copy.masks.scimask[row, col] for row, col in nan_pixels)
    np.testing.assert_array_equal(fit.masks.scimask, before)


def test_singular_normal_equations_fall_back_to_least_squares():
    matrix = csr_array(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    solution = solve_normal(matrix, np.array([2.0, 2.0, 4.0]))
    np.testing.assert_allclose(matrix @ solution, [2.0, 2.0, 4.0])
    assert np.isnan(solve_normal(matrix, np.array([0.0, 1.0, 1.0]))[0])  # rows with rhs 0: NaN


@pytest.fixture(scope="module")
def calints(tmp_path_factory):
    made = simulate("niriss-soss", tmp_path_factory.mktemp("soss-read") / "input",
                    SimOptions(seed=3, n_integrations=3))
    return next(made.asn_path.parent.glob("*_calints.fits"))


def _equal_files(a, b):
    assert a.model_type == b.model_type == "CubeModel"
    assert a.meta == b.meta and a.meta["int_times"] and len(a.meta["int_times"]) == 3
    assert list(a.images) == list(b.images) == ["sci", "err", "dq"]  # (nints, ny, nx) each
    assert a.images["sci"].shape[0] == 3
    for name, image in a.images.items():
        assert image.dtype == b.images[name].dtype and image.dtype.isnative
        np.testing.assert_array_equal(image, b.images[name])


def test_mapped_read_equals_the_datamodel_read(calints):
    _equal_files(soss_reader._read_mapped(calints), soss_reader._read_datamodel(calints))


def test_a_file_changed_outside_stdatamodels_is_read_as_a_datamodel(calints, tmp_path):
    changed = tmp_path / calints.name
    with fits.open(calints) as hdul:
        hdul[0].header["TARGNAME"] = "EDITED"  # the ASDF tree's _fits_hash no longer matches
        hdul.writeto(changed)
    with pytest.raises(NotFast, match="headers changed"):
        soss_reader._read_mapped(changed)
    read = soss_reader.read_soss_file(changed, "x")
    assert "EDITED" in read.meta.values()
    _equal_files(read, soss_reader._read_datamodel(changed))


def test_bad_files_are_named_by_either_reader(calints, tmp_path):
    broken = tmp_path / calints.name
    with dm.open(calints) as model:
        model.meta.instrument.pupil_position = None
        model.save(broken)
    with pytest.raises(NotFast, match="PWCPOS"):
        soss_reader._read_mapped(broken)  # its checks send the file to the datamodel reader ...
    with pytest.raises(InputError, match="PWCPOS") as raised:
        soss_reader.read_soss_file(broken, "x")  # ... whose error names the file
    assert str(broken) in str(raised.value)
