"""Datamodels for writing, made without building their class's schema for every model.

``SlitModel(tree)`` loads the class's schema with its references resolved
(a deep copy of asdf's cached one) and merges its property trees: 3-4 ms a
model, ~15 ms for a MultiExposureModel (whose class also builds a schema of
its own), about a tenth of exporting a MOS source's four products.
:func:`new_model` makes the same model around the class's schema built once
per process and shared (read-only, as :func:`~spec3c.products.blend.attach_hdrtab`'s
extended schemas are).  tests/products/test_models.py checks that the models
equal the classes' own and write the same files.

Building a class's schema reads and resolves its YAML files: ~80 ms for the
first class in a process, 5-15 ms for each next one, ~0.1 s of a small
association's run.  :func:`class_schema` keeps what it builds in a cache
folder (``$SPEC3C_CACHE_DIR``, else ``$XDG_CACHE_HOME/spec3c`` or
``~/.cache/spec3c``; ``SPEC3C_CACHE_DIR=`` turns it off), one marshal file
per class (~0.5 ms to read), under a key made of the stdatamodels, asdf and
Python versions and the size and time of every schema file stdatamodels
ships: a changed schema builds again.  A cache that cannot be read or written
is rebuilt or skipped, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import marshal
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from stdatamodels import DataModel

__all__ = ["class_schema", "new_model", "schema_cache_folder", "schema_model"]

_log = logging.getLogger(__name__)

#: the schema a model is first made with (replaced at once): merging it costs nothing, and it has
#: the ``meta`` that ``on_init`` sets
_PLACEHOLDER: dict[str, Any] = {"type": "object", "properties": {"meta": {"type": "object"}}}


@functools.cache
def class_schema(cls: Any) -> dict[str, Any]:
    """The merged schema of a model of class ``cls``, built once per process (or read from the
    schema cache); do not modify it."""
    path, key = _cache_entry(cls)
    cached = _read_cached(path, key) if path is not None else None
    if cached is not None:
        return cached
    schema = cls(validate_on_assignment=False).schema
    if path is not None:
        _write_cached(path, key, schema)
    return schema


def schema_model(cls: Any, tree: Any = None, **kwargs: Any) -> Any:
    """``cls(tree, validate_on_assignment=False, **kwargs)`` around :func:`class_schema`'s schema:
    the class's own initialiser runs (ImageModel, IFUImageModel, IFUCubeModel, MultiSlitModel...).
    Not for SlitModel, whose initialiser sets its keyword arguments as attributes: :func:`new_model`."""
    return cls(tree, schema=class_schema(cls), validate_on_assignment=False, **kwargs)


def schema_cache_folder() -> Path | None:
    """Where built schemas are kept (None: ``SPEC3C_CACHE_DIR`` is set empty, no cache)."""
    folder = os.environ.get("SPEC3C_CACHE_DIR")
    if folder == "":
        return None
    if folder is None:
        folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spec3c")
    return Path(folder) / "schemas"


@functools.cache
def _schema_files_key() -> str:
    """What a built schema depends on: library versions and stdatamodels's schema files."""
    import asdf
    import stdatamodels

    digest = hashlib.sha256(f"{stdatamodels.__version__} {asdf.__version__} {sys.version_info[:2]}".encode())
    root = Path(stdatamodels.__file__).parent
    for folder, _dirs, files in sorted(os.walk(root)):
        for name in sorted(f for f in files if f.endswith(".yaml")):
            stat = os.stat(os.path.join(folder, name))
            digest.update(f"{os.path.relpath(os.path.join(folder, name), root)} {stat.st_size} "
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cache_entry(cls: Any) -> tuple[Path | None, str]:
    """The cache file of ``cls``'s schema and the key it must hold."""
    folder = schema_cache_folder()
    if folder is None:
        return None, ""
    key = f"{cls.__module__}.{cls.__qualname__} {getattr(cls, 'schema_url', '')} {_schema_files_key()}"
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.marshal", key


def _read_cached(path: Path, key: str) -> dict[str, Any] | None:
    try:
        stored_key, schema = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):  # none yet, or unreadable: built again
        return None
    return schema if stored_key == key and isinstance(schema, dict) else None


def _write_cached(path: Path, key: str, schema: dict[str, Any]) -> None:
    """Keep ``schema`` under ``key`` (written whole, then renamed: a reader sees all or nothing)."""
    try:
        data = marshal.dumps((key, schema))
    except ValueError:  # something marshal cannot write: not kept
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".schema-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        _log.debug("schema cache %s not written: %s", path.parent, exc)


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
