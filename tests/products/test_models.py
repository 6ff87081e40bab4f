"""new_model (spec3c.products.models) makes the model the class makes from a dict, around the class's
schema built once: same schema, same tree, same file."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3c.products.models import class_schema, new_model


def _trees() -> dict[type, dict]:
    rng = np.random.default_rng(3)
    sci = rng.normal(size=(4, 6)).astype(np.float32)
    table = np.zeros(3, dtype=dm.SpecModel().get_default("spec_table").dtype)
    table["WAVELENGTH"] = [1.0, 1.1, 1.2]
    combined = np.zeros(3, dtype=dm.CombinedSpecModel().get_default("spec_table").dtype)
    combined["WAVELENGTH"] = [1.0, 1.1, 1.2]
    meta = {"instrument": {"name": "NIRSPEC", "detector": "NRS1"}, "exposure": {"type": "NRS_MSASPEC"},
            "filename": "x.fits"}
    return {
        dm.SlitModel: {"data": sci, "dq": np.zeros((4, 6), np.uint32), "name": "S200A1", "source_id": 7,
                       "meta": copy.deepcopy(meta)},
        dm.MultiSpecModel: {"spec": [{"spec_table": table, "source_id": 7}], "meta": copy.deepcopy(meta)},
        dm.MultiExposureModel: {"exposures": [{"data": sci, "meta": copy.deepcopy(meta)}],
                                "meta": copy.deepcopy(meta)},
        dm.MultiCombinedSpecModel: {"spec": [{"spec_table": combined}], "meta": copy.deepcopy(meta)},
    }


def _without_date(tree: dict) -> dict:
    tree = dict(tree)
    tree["meta"] = {k: v for k, v in tree["meta"].items() if k != "date"}
    return tree


@pytest.mark.parametrize("cls", list(_trees()), ids=lambda c: c.__name__)
def test_new_model_is_the_classes_model(cls: type, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ours = new_model(cls, _trees()[cls])
    theirs = cls(_trees()[cls])
    assert ours.schema == theirs.schema
    assert type(ours) is cls and ours.meta.model_type == theirs.meta.model_type == cls.__name__
    assert ours.meta.date  # on_init ran
    assert set(_without_date(ours.instance)) == set(_without_date(theirs.instance))
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ours.save(tmp_path / "ours" / "x.fits")
    theirs.save(tmp_path / "theirs" / "x.fits")
    with fits.open(tmp_path / "ours" / "x.fits") as a, fits.open(tmp_path / "theirs" / "x.fits") as b:
        assert [h.name for h in a] == [h.name for h in b]
        for x, y in zip(a, b, strict=True):
            skip = {"DATE", "CHECKSUM", "DATASUM"}
            assert ([tuple(c) for c in x.header.cards if c.keyword not in skip]
                    == [tuple(c) for c in y.header.cards if c.keyword not in skip])
            if x.name not in ("ASDF", "PRIMARY"):
                assert x.data.tobytes() == y.data.tobytes()


def test_the_schema_is_built_once_and_shared() -> None:
    first = new_model(dm.SlitModel, {})
    second = new_model(dm.SlitModel, {})
    assert first.schema is second.schema is class_schema(dm.SlitModel)
    assert first.instance is not second.instance
