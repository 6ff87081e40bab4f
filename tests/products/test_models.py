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


# -- the schema cache -------------------------------------------------------------------------


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    """An empty schema cache in ``tmp_path`` and no class schema built in this process yet."""
    from spec3c.products import models

    monkeypatch.setenv("SPEC3C_CACHE_DIR", str(tmp_path / "cache"))
    models.class_schema.cache_clear()
    yield tmp_path / "cache" / "schemas"
    models.class_schema.cache_clear()


def test_schemas_are_kept_and_read_back(cache_folder):
    from spec3c.products import models

    built = class_schema(dm.SlitModel)
    assert built == dm.SlitModel().schema
    kept = list(cache_folder.glob("*.marshal"))
    assert len(kept) == 1
    models.class_schema.cache_clear()
    read = class_schema(dm.SlitModel)
    assert read == built and read is not built
    assert list(cache_folder.glob("*.marshal")) == kept and not list(cache_folder.glob(".schema-*"))


def test_a_changed_schema_or_a_damaged_file_builds_again(cache_folder, monkeypatch):
    from spec3c.products import models

    built = class_schema(dm.MultiSpecModel)
    (kept,) = cache_folder.glob("*.marshal")
    kept.write_bytes(b"\x00 not marshal")
    models.class_schema.cache_clear()
    assert class_schema(dm.MultiSpecModel) == built  # damaged: built and kept again
    assert models._read_cached(kept, models._cache_entry(dm.MultiSpecModel)[1]) == built
    # another key (stdatamodels's schema files changed): the entry is another file, built afresh
    monkeypatch.setattr(models, "_schema_files_key", lambda: "another version")
    models.class_schema.cache_clear()
    assert class_schema(dm.MultiSpecModel) == built
    assert len(list(cache_folder.glob("*.marshal"))) == 2
    # a file holding another key is not taken
    path, key = models._cache_entry(dm.MultiSpecModel)
    assert models._read_cached(path, key + " x") is None


def test_no_cache_or_an_unwritable_one_still_gives_the_schema(cache_folder, monkeypatch):
    from spec3c.products import models

    monkeypatch.setenv("SPEC3C_CACHE_DIR", "")
    assert models.schema_cache_folder() is None
    assert class_schema(dm.SpecModel) == dm.SpecModel().schema
    models.class_schema.cache_clear()
    blocker = cache_folder.parent.parent / "file"
    blocker.write_text("a file where the folder would be")
    monkeypatch.setenv("SPEC3C_CACHE_DIR", str(blocker))
    assert class_schema(dm.SpecModel) == dm.SpecModel().schema


def test_schema_model_is_the_classes_model():
    """schema_model runs the class's own initialiser (ImageModel's default arrays) around the shared schema."""
    from spec3c.products.models import schema_model

    data = np.ones((3, 4), np.float32)
    tree = {"data": data, "dq": np.zeros((3, 4), np.uint32), "meta": {"filename": "x.fits"}}
    ours, theirs = schema_model(dm.ImageModel, dict(tree)), dm.ImageModel(dict(tree))
    assert type(ours) is dm.ImageModel and ours.schema == theirs.schema
    assert set(_without_date(ours.instance)) == set(_without_date(theirs.instance))
    assert ours.meta.model_type == theirs.meta.model_type == "ImageModel"
    assert ours.err is None and theirs.err is None and (ours.data == theirs.data).all()


def test_exposure_crfs_of_slit_and_image_inputs_are_written(tmp_path):
    """The crf writer makes SlitModel exposures with new_model (SlitModel takes no schema argument)."""
    from spec3c.products.models import new_model, schema_model

    node = {"data": np.ones((3, 4), np.float32), "name": "S200A1", "meta": {"filename": "x.fits"}}
    with new_model(dm.SlitModel, dict(node)) as slit, schema_model(dm.ImageModel, {"data": node["data"]}) as image:
        assert slit.name == "S200A1" and image.data.shape == (3, 4)
    with pytest.raises(AttributeError):
        schema_model(dm.SlitModel, dict(node))
