"""Datamodels for writing, made without building their class's schema for every model.

``SlitModel(tree)`` loads the class's schema with its references resolved
(a deep copy of asdf's cached one) and merges its property trees: 3-4 ms a
model, ~15 ms for a MultiExposureModel (whose class also builds a schema of
its own), about a tenth of exporting a MOS source's four products.
:func:`new_model` makes the same model around the class's schema built once
per process and shared (read-only, as :func:`~spec3c.products.blend.attach_hdrtab`'s
extended schemas are).  tests/products/test_models.py checks that the models
equal the classes' own and write the same files.
"""

from __future__ import annotations

import functools
from typing import Any

from stdatamodels import DataModel

__all__ = ["class_schema", "new_model"]

#: the schema a model is first made with (replaced at once): merging it costs nothing, and it has
#: the ``meta`` that ``on_init`` sets
_PLACEHOLDER: dict[str, Any] = {"type": "object", "properties": {"meta": {"type": "object"}}}


@functools.cache
def class_schema(cls: Any) -> dict[str, Any]:
    """The merged schema of a model of class ``cls``, built once per process; do not modify it."""
    return cls(validate_on_assignment=False).schema


def new_model(cls: Any, tree: dict[str, Any]) -> Any:
    """``cls(tree, validate_on_assignment=False)`` with :func:`class_schema`'s shared schema.

    Only for classes whose ``__init__`` adds nothing to a model made from a
    dict but its schema (JWST's SlitModel, MultiSpecModel, MultiExposureModel,
    MultiCombinedSpecModel: no default-array mixins).  The base initialiser
    runs as for any dict (``on_init`` sets ``meta.date`` and
    ``meta.model_type``), then the model takes the class's schema.
    """
    model = cls.__new__(cls)
    DataModel.__init__(model, tree, schema=_PLACEHOLDER, validate_on_assignment=False)
    model._schema = class_schema(cls)
    return model
