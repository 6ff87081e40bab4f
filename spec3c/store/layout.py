"""The store manifest: a small JSON file naming the backend and schema version.

Every on-disk store is a folder holding ``spec3c-store.json``; the backend
that owns the rest of the folder is read from it, so ``open_store`` needs
no ``--backend`` flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .base import SCHEMA_VERSION

MANIFEST = "spec3c-store.json"
#: writers hold a shared flock on this file (spec3c.check.store_writer); not store content
LOCK = ".spec3c-lock"


def write_manifest(path: Path, backend: str) -> None:
    """Create the store folder and its manifest (refuse to clobber another store)."""
    path.mkdir(parents=True, exist_ok=True)
    manifest = path / MANIFEST
    if manifest.exists():
        found = read_manifest(path)
        if found["backend"] != backend:
            raise StoreError(
                f"{path}: already a {found['backend']} store; cannot create a {backend} store there"
            )
        return
    tmp = manifest.with_suffix(".tmp")  # a leftover of a creation killed before its rename is ours
    if any(p.name not in (tmp.name, LOCK) for p in path.iterdir()):
        raise StoreError(f"{path}: folder exists, is not empty and is not a spec3c store")
    tmp.write_text(json.dumps({"backend": backend, "schema_version": SCHEMA_VERSION}) + "\n")
    os.replace(tmp, manifest)


def read_manifest(path: Path, expected_backend: str | None = None) -> dict[str, Any]:
    """Manifest of the store at ``path``; StoreError if absent, foreign or too new."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise StoreError(f"{path}: not a spec3c store (no {MANIFEST}); run `spec3c ingest` first")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{manifest}: unreadable store manifest ({exc})") from exc
    version = int(data.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: store schema version {version}, this spec3c reads version {SCHEMA_VERSION}; "
            "re-ingest the association into a new store"
        )
    if expected_backend is not None and data.get("backend") != expected_backend:
        raise StoreError(f"{path}: a {data.get('backend')} store, not {expected_backend}")
    return data


def detect_backend(path: Path) -> str:
    return str(read_manifest(path)["backend"])
