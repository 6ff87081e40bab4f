"""The mode registry: one mode per EXP_TYPE, every plan and product resolvable."""

from __future__ import annotations

import pickle

import pytest

from spec3c.errors import Spec3cError
from spec3c.modes.base import ASSOCIATION
from spec3c.modes.registry import MODES, mode_for, mode_named, mode_of_store, supported_exp_types
from spec3c.products.export import _ASSOCIATION_WRITERS, _WRITERS
from spec3c.steps import STEPS
from spec3c.store import ExposureRecord, create_store


def test_every_exp_type_has_exactly_one_mode():
    served = [t for m in MODES for t in m.exp_types]
    assert len(served) == len(set(served)) == len(supported_exp_types())
    for mode in MODES:
        for exp_type in mode.exp_types:
            assert mode_for(exp_type) is mode
            assert mode_for(f" {exp_type.lower()} ") is mode  # as header values come
        assert mode_named(mode.name) is mode


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_plans_and_products_resolve(mode):
    assert set(mode.plan) <= set(STEPS)
    if "outlier_detection" in mode.plan:
        assert mode.plan.index("outlier_detection") < mode.plan.index("extract_1d")
    for suffix, layout in mode.products.items():
        assert (suffix, layout) in _WRITERS or (layout == ASSOCIATION and suffix in _ASSOCIATION_WRITERS)
    assert mode.resampled == ("s2d" in mode.products)
    assert pickle.loads(pickle.dumps(mode)).name == mode.name  # workers receive it


def test_unsupported_and_missing_exp_types_are_named():
    with pytest.raises(Spec3cError, match=r"a\.fits: EXP_TYPE NRS_BRIGHTOBJ is not supported .*NRS_MSASPEC"):
        mode_for("NRS_BRIGHTOBJ", where="a.fits")  # time series: calwebb_tso3, not spec3
    with pytest.raises(Spec3cError, match=r"\(no EXP_TYPE\)"):
        mode_for("")
    with pytest.raises(Spec3cError, match="unknown mode"):
        mode_named("nirspec-bots")


def _record(name: str, exp_type: str, role: str = "science") -> ExposureRecord:
    return ExposureRecord(name, f"/data/{name}.fits", "0" * 64, role, exp_type, "MultiSlitModel", {})


def test_mode_of_store(tmp_path):
    with create_store(tmp_path / "a.store") as store:
        with pytest.raises(Spec3cError, match="no science exposures"):
            mode_of_store(store)
        store.commit_exposure(_record("e1", "NRS_FIXEDSLIT"), [])
        store.commit_exposure(_record("b1", "NRS_BRIGHTOBJ", role="background"), [])
        assert mode_of_store(store).name == "nirspec-fs"  # background members do not count
        store.commit_exposure(_record("e2", "NRS_MSASPEC"), [])
        with pytest.raises(Spec3cError, match="mixes EXP_TYPEs NRS_FIXEDSLIT, NRS_MSASPEC"):
            mode_of_store(store)
