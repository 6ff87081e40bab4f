"""A cheaper ASDF set-up in spec3c's own processes: only the plugins JWST files use, parsed with libyaml.

The first time asdf reads or writes anything it loads every installed
plugin (``asdf.extensions`` and ``asdf.resource_mappings`` entry points) and
parses the YAML manifest of each extension.  Two costs are avoidable:

* plugins JWST data never need: specutils's imports ndcube, dask and
  matplotlib (1-2 s per process).  :func:`load_only_jwst_plugins` makes asdf
  list only the plugins of the packages whose tags and schemas JWST files use
  (core ASDF, astropy, transforms, coordinates, gwcs, stdatamodels);
* the ~50 manifests parsed by PyYAML's pure-Python parser (~1 s): they are
  parsed by libyaml instead (the same safe loader's objects, as asdf already
  parses its schemas and files), when PyYAML has it.

It is called by the ``spec3c`` command and its worker processes, not on
import of spec3c: a program that uses spec3c as a library keeps asdf as it
is.  It costs nothing until asdf is imported: asdf is adjusted when it
imports its ``_entry_points`` module, before any plugin is loaded.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .import_hooks import AfterImportLoader

#: distributions whose ASDF plugins JWST files need (normalised names)
JWST_ASDF_PACKAGES = frozenset({
    "asdf", "asdf-standard", "asdf-astropy", "asdf-coordinates-schemas", "asdf-transform-schemas",
    "asdf-wcs-schemas", "gwcs", "stdatamodels",
})

#: the asdf module that lists the installed plugins (through its ``entry_points`` function)
_ENTRY_POINTS_MODULE = "asdf._entry_points"
#: the asdf module that parses extension manifests (with its ``yaml.safe_load``)
_MANIFEST_MODULE = "asdf.extension._manifest"

__all__ = ["JWST_ASDF_PACKAGES", "config_context", "load_only_jwst_plugins"]


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _LibyamlSafeLoad:
    """PyYAML (``yaml``) as asdf's manifest module uses it, whose ``safe_load`` parses with libyaml."""

    def __init__(self, yaml: ModuleType) -> None:
        self._yaml = yaml

    def __getattr__(self, name: str) -> Any:
        return getattr(self._yaml, name)

    def safe_load(self, stream: Any) -> Any:
        return self._yaml.load(stream, Loader=self._yaml.CSafeLoader)  # the safe loader, in C


def _adjust(module: ModuleType) -> None:
    """Adjust asdf once its entry-point module (``module``) is loaded: by then its manifest module is too."""
    _keep_jwst_plugins(module)
    manifests = sys.modules.get(_MANIFEST_MODULE)
    yaml = getattr(manifests, "yaml", None)
    if isinstance(yaml, ModuleType) and getattr(yaml, "__with_libyaml__", False):
        manifests.yaml = _LibyamlSafeLoad(yaml)  # type: ignore[union-attr]


def _keep_jwst_plugins(module: ModuleType) -> None:
    """Make ``module.entry_points`` (asdf's plugin listing) drop the plugins JWST files do not use."""
    listing = getattr(module, "entry_points", None)
    if listing is None or getattr(listing, "jwst_only", False):
        return

    def entry_points(**selection: Any) -> list[Any]:
        return [point for point in listing(**selection) if _normalised(point.dist.name) in JWST_ASDF_PACKAGES]

    entry_points.jwst_only = True  # type: ignore[attr-defined]
    module.entry_points = entry_points  # type: ignore[attr-defined]


class _OnAsdfImport(importlib.abc.MetaPathFinder):
    """Finds asdf's entry-point module with the ordinary path finder and wraps its loader (once)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _ENTRY_POINTS_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = AfterImportLoader(spec.loader, _adjust)  # asdf's module runs, then is adjusted
        return spec


def load_only_jwst_plugins() -> None:
    """From now on asdf loads only :data:`JWST_ASDF_PACKAGES`' plugins in this process and parses their
    manifests with libyaml (no effect if asdf has already loaded its plugins)."""
    module = sys.modules.get(_ENTRY_POINTS_MODULE)
    if module is not None:
        _adjust(module)
    elif not any(isinstance(finder, _OnAsdfImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OnAsdfImport())


def config_context() -> Any:
    """``asdf.config_context()``, without listing the installed plugins again.

    The context works on a copy of the current configuration, which has a
    resource manager and an extension list only if that configuration had
    built them; otherwise the copy lists every plugin's entry points and
    builds its own, ~90 ms for the resource manager and ~300 ms for the
    extensions per context (one context per slit WCS read: a 50-source MOS
    run makes hundreds).  The current configuration's are built first, once,
    and shared.
    """
    import asdf

    config = asdf.get_config()  # built and kept by the configuration the copy is made of:
    config.resource_manager  # noqa: B018
    config.extensions  # noqa: B018
    return asdf.config_context()
