"""Products are validated against their schema as they are written only when SPEC3C_VALIDATE_PRODUCTS
is set: the suite sets it (tests/conftest.py), so every product any test writes is validated; a run
does not pay for it."""

from __future__ import annotations

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.products import fits_io


def _image() -> dm.ImageModel:
    return dm.ImageModel(data=np.arange(4, dtype=np.float32).reshape(2, 2))


@pytest.mark.parametrize(("setting", "validated"), [("1", True), ("0", False), (None, False)])
def test_products_are_validated_only_when_asked(tmp_path, monkeypatch, setting, validated):
    calls = []
    monkeypatch.setattr(fits_io, "validate_strict", calls.append)
    if setting is None:
        monkeypatch.delenv(fits_io.VALIDATE_ENV, raising=False)
    else:
        monkeypatch.setenv(fits_io.VALIDATE_ENV, setting)
    path = fits_io.atomic_save(_image(), tmp_path / "a_cal.fits")
    assert len(calls) == int(validated)
    with dm.open(path) as model:  # written and readable either way
        assert model.data[1, 1] == 3


def test_the_suite_validates_every_product():
    assert fits_io.validating()
