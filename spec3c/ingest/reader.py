"""Read one stage-2 exposure into store records (no store access here)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, Spec3cError
from ..log import logger
from ..store.records import Cutout, ExposureRecord, WrittenFrames
from .cutouts import model_meta

if TYPE_CHECKING:
    from .fastread import CutoutSink

_log = logger("ingest")


@dataclass
class ExposureData:
    """What ingest writes for one exposure."""

    record: ExposureRecord
    cutouts: Sequence[Cutout]  # a staged exposure's are loaded one at a time (LazyCutouts)
    images: dict[str, np.ndarray]
    written: WrittenFrames | None = None  # its full frames, written into the new store by the worker that read it


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def exposure_name(path: Path) -> str:
    """Store key of an input file: its basename without ``.fits``."""
    name = path.name
    return name[: -len(".fits")] if name.lower().endswith(".fits") else name


def read_spectra_tables(model) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Columns of every spectrum of an x1d model, keyed ``spec<i>.<column>``."""
    images = {}
    for i, spec in enumerate(model.spec):
        for column in spec.spec_table.dtype.names:
            images[f"spec{i}.{column.lower()}"] = np.asarray(spec.spec_table[column])
    return images


def _science_data(model: Any, name: str, path: Path, exp_type: str) -> tuple[list[Cutout], dict[str, np.ndarray]]:
    """The cutouts (and full-frame images, for modes ingested as frames) of a science
    exposure, read as its mode reads them."""
    from ..modes.registry import mode_for  # the modes import the layout readers beside this module

    mode = mode_for(exp_type, where=str(path), model_type=type(model).__name__)  # SlitModel files: their own mode
    try:
        if mode.read_frames is not None:
            return mode.read_frames(model, name, path)
        return mode.read_cutouts(model, name, path), {}
    except AttributeError as exc:  # a model of another layout than the mode's (e.g. no .slits)
        raise InputError(path, f"a {type(model).__name__} is not a {mode.name} cal file ({exc})") from exc


def read_exposure(path: Path, role: str, sha256: str | None = None, sink: CutoutSink | None = None) -> ExposureData:
    """Read one ASN member into an :class:`ExposureData` (no store access).

    The member is checked first (:func:`spec3c.ingest.validate.check_model`):
    a broken file is an :class:`InputError` naming it and the problem.  A
    slit-mode science file is read without a datamodel (:mod:`.fastread`)
    when it can be, with the same result; with ``sink``, its slits' cutouts
    go there one at a time instead of into the result (others' stay in it).
    Without ``sha256`` the file's digest is computed in a thread while it is
    read (hashlib releases the GIL).
    """
    if sha256:
        return _read_exposure(path, role, sha256, sink)
    with ThreadPoolExecutor(1, thread_name_prefix="spec3c-sha256") as pool:
        return _read_exposure(path, role, pool.submit(sha256_of, path), sink)


def _read_exposure(path: Path, role: str, sha256: str | Future[str], sink: CutoutSink | None) -> ExposureData:
    from .fastread import NotFast, read_fast, read_fast_spectra
    from .validate import check_model, open_model

    name = exposure_name(path)
    own = _own_reader(path) if role == "science" else None
    if own is not None:  # the mode reads (and checks) its files itself
        read = own(path, name)
        return ExposureData(_record(path, name, role, sha256, read.model_type, read.meta), read.cutouts, read.images)
    if role == "science":
        try:
            fast_type, fast_meta, fast_cutouts = read_fast(path, name, sink)
            return ExposureData(_record(path, name, role, sha256, fast_type, fast_meta), fast_cutouts, {})
        except NotFast as why:
            _log.debug("%s: read as a datamodel (%s)", path, why)
    else:
        try:
            spectra_type, spectra_meta, spectra = read_fast_spectra(path)
            return ExposureData(_record(path, name, role, sha256, spectra_type, spectra_meta), [], spectra)
        except NotFast as why:
            _log.debug("%s: read as a datamodel (%s)", path, why)
    model = open_model(path)
    with model:
        check_model(model, path, role)
        model_type = type(model).__name__
        meta = model_meta(model)
        cutouts: list[Cutout] = []
        images: dict[str, np.ndarray] = {}
        if role == "science":
            cutouts, images = _science_data(model, name, path, str(meta.get("meta.exposure.type") or ""))
        elif hasattr(model, "spec"):
            images = read_spectra_tables(model)
        record = _record(path, name, role, sha256, model_type, meta)
    return ExposureData(record, cutouts, images)


def _record(path: Path, name: str, role: str, sha256: str | Future[str], model_type: str,
            meta: dict[str, Any]) -> ExposureRecord:
    """The exposure's record; ``sha256``: its digest, or the future one of the thread hashing it."""
    digest = sha256 if isinstance(sha256, str) else sha256.result()
    return ExposureRecord(name=name, filename=str(path.resolve()), sha256=digest, role=role,
                          exp_type=str(meta.get("meta.exposure.type", "")), model_type=model_type, meta=meta)


def _own_reader(path: Path) -> Any:
    """The file reader of the mode serving the file's EXP_TYPE (``Mode.read_file``), if it has one."""
    mode = file_mode(path)
    return None if mode is None else mode.read_file


#: primary-header keywords that tell an IFU exposure's detector set-up (see :func:`set_up_of`)
SET_UP_KEYWORDS = ("EXP_TYPE", "DETECTOR", "CHANNEL", "BAND", "GRATING", "FILTER")


def set_up_of(path: Path, role: str) -> tuple[str, ...] | None:
    """The detector set-up of a science file of a mode read as full frames (the primary header's
    :data:`SET_UP_KEYWORDS`); None for other files.  Only a reading order depends on it: whether two
    exposures share their coordinates is decided from their WCS (:mod:`.shared_coords`)."""
    from astropy.io import fits

    mode = file_mode(path) if role == "science" else None
    if mode is None or mode.read_frames is None:
        return None
    try:
        header = fits.getheader(path, ext=0)
    except OSError:
        return None
    return tuple(str(header.get(k, "")) for k in SET_UP_KEYWORDS)


def file_mode(path: Path) -> Any:
    """The mode serving the file's EXP_TYPE (primary header), None if the header or the mode is not
    found (the generic reader then says what is wrong with the file)."""
    from astropy.io import fits

    from ..modes.registry import mode_for

    try:
        return mode_for(str(fits.getval(path, "EXP_TYPE", ext=0) or ""))
    except (OSError, KeyError, Spec3cError):
        return None
