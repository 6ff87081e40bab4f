"""The inputs of a cube: which exposures and bands, and their stored pixels (cube_build).

Shared by the sky cubes of :mod:`.cube_build` and the slicer-plane cubes of
:mod:`.cube_internal`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dqflags
from .._core import match_nans_and_flags
from ..algorithms.cube_setup import offset_radec
from ..errors import InputError, Spec3cError
from ..modes.ifu.cubepar import BandKey
from ..modes.ifu.traits import IfuTraits
from ..results import crf_key
from .assign_mtwcs import applied_shift
from .context import StepContext
from .master_background import subtract_in_run

#: the corner offset planes of the stored frames (reference corner order)
CORNERS = tuple(f"corner{k}_{axis}" for k in range(1, 5) for axis in ("dra", "ddec"))


@dataclass(frozen=True)
class CubeSpec:
    """One cube to build: its product name, bands and (band, exposure) inputs in the reference's order."""

    name: str
    bands: tuple[BandKey, ...]
    files: tuple[tuple[BandKey, str], ...]

    @property
    def exposures(self) -> list[str]:
        return list(dict.fromkeys(exposure for _, exposure in self.files))


def ifu_meta(ctx: StepContext, exposure: str) -> dict[str, Any]:
    for cutout in ctx.inputs.cutouts:
        if cutout.exposure == exposure:
            return dict(cutout.meta["ifu"])
    raise KeyError(exposure)


class Offsets:
    """Per-file RA/Dec offsets of an ``offset_file`` (ASDF: filename, raoffset, decoffset in arcsec)."""

    def __init__(self, path: str | None, filenames: Sequence[str]) -> None:
        self.path = path
        self.table: dict[str, tuple[float, float]] = {}
        if path is not None:
            self.table = self._read(path)
            missing = [f for f in filenames if f not in self.table]
            if missing:
                raise InputError(path, f"offset_file has no entry for {', '.join(missing)}")

    @staticmethod
    def _read(path: str) -> dict[str, tuple[float, float]]:
        """The reference's ``ifuoffset`` schema: ``units`` 'arcsec', lists ``filename``, ``raoffset``,
        ``decoffset`` of one length."""
        import asdf

        try:
            with asdf.open(path, lazy_load=False, memmap=False) as af:
                tree = {k: af.tree.get(k) for k in ("units", "filename", "raoffset", "decoffset")}
        except Exception as exc:  # asdf raises many types for a file that is not ASDF
            raise InputError(path, f"unreadable offset_file: {exc}") from exc
        missing = [k for k, v in tree.items() if v is None]
        if missing:
            raise InputError(path, f"offset_file lacks {', '.join(missing)}")
        if str(tree["units"]) != "arcsec":
            raise InputError(path, f"offset_file units are {tree['units']!r}; only 'arcsec' is allowed")
        names = [str(n) for n in tree["filename"]]
        try:
            ra = [float(v) for v in tree["raoffset"]]
            dec = [float(v) for v in tree["decoffset"]]
        except (TypeError, ValueError) as exc:
            raise InputError(path, f"offset_file offsets must be numbers: {exc}") from exc
        if not (len(names) == len(ra) == len(dec)):
            raise InputError(path, "offset_file: filename, raoffset and decoffset differ in length")
        return {n: (a, d) for n, a, d in zip(names, ra, dec, strict=True)}

    def of(self, filename: str) -> tuple[float, float] | None:
        return self.table.get(filename) if self.path is not None else None


def exposure_filename(ctx: StepContext, exposure: str) -> str:
    record = ctx.inputs.exposures[exposure]
    return str(record.meta.get("meta.filename") or record.filename.rsplit("/", 1)[-1])


@dataclass
class Pixels:
    """One exposure's detector pixels of one band, as the kernel takes them (1-D)."""

    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    dwave: np.ndarray
    slice_no: np.ndarray
    corners: list[np.ndarray]  # ra1, dec1, ..., ra4, dec4 (absolute, deg), or:
    corner_offsets: list[np.ndarray] = field(default_factory=list)  # the stored corner planes (whole frame)
    index: np.ndarray | None = None  # the pixels' flat indices in the frame


#: planes of the stored frames every cube reads (the variances only to find invalid pixels)
SCIENCE = ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat")
SKY = ("wavelength", "ra", "dec", "dwave", "slice")
SLICER = ("wavelength", "slicer_along", "slicer_lam")


def read_frames(ctx: StepContext, exposure: str, planes: Sequence[str]) -> dict[str, np.ndarray]:
    """``planes`` of an exposure's stored frames (with the science planes): the master background
    subtracted if this run's master_background did, RA/Dec in the moving target's frame if this
    run's assign_mtwcs aligned the exposure, the outlier flags of a previous outlier_detection
    (``crf/<exposure>/<slit>``) when there are some, NaN/DO_NOT_USE made consistent."""
    slit = next(c.slit for c in ctx.inputs.cutouts if c.exposure == exposure)
    key = crf_key(exposure, slit)
    flagged = (ctx.source, key) in ctx.store.list_results(ctx.source)  # (the flags hold the stored DQ's bits)
    wanted = tuple(p for p in (*SCIENCE, *planes) if not (flagged and p == "dq"))
    frames = ctx.store.read_images(exposure, planes=wanted)
    missing = [p for p in wanted if p not in frames]
    if missing:
        raise Spec3cError(f"exposure {exposure}: no stored {', '.join(missing)} frames: re-ingest the association")
    if flagged:
        frames["dq"] = np.asarray(ctx.store.get_result(ctx.source, key)[0]["dq"], dtype=np.uint32)
    subtract_in_run(ctx, exposure, frames)
    if "ra" in frames:
        to_moving_target(ctx, exposure, frames)
    match_nans_and_flags(frames["sci"], frames["dq"], frames["err"], frames["var_poisson"],
                         frames["var_rnoise"], frames["var_flat"], do_not_use=dqflags.DO_NOT_USE)
    for name in ("var_poisson", "var_rnoise", "var_flat"):
        del frames[name]
    return frames


def moving_target_shift(ctx: StepContext, exposure: str) -> tuple[float, float] | None:
    """``(dRA, dDec)`` deg of this run's assign_mtwcs for ``exposure`` (None: not aligned)."""
    cutout = next(c for c in ctx.inputs.cutouts if c.exposure == exposure)
    return applied_shift(cutout.meta, ctx.inputs.exposures[exposure].meta)


def to_moving_target(ctx: StepContext, exposure: str, frames: dict[str, np.ndarray]) -> None:
    """Pixel centres in the ``moving_target`` frame (the corner planes are offsets from them)."""
    shift = moving_target_shift(ctx, exposure)
    if shift is not None:
        frames["ra"] = np.mod(frames["ra"] + shift[0], 360.0)
        frames["dec"] = frames["dec"] + shift[1]


def band_pixels(frames: dict[str, np.ndarray], ifu: dict[str, Any], band: BandKey, traits: IfuTraits,
                drizzle: bool, shift: tuple[float, float] | None) -> Pixels:
    """The pixels of ``band`` the reference maps to a cube (``map_*_pixel_to_sky``)."""
    shape = frames["sci"].shape
    region = np.ones(shape, dtype=bool)
    if traits.per_channel:
        start, end = ifu["x_limits"][band[0]]
        region[:, :max(start, 0)] = False
        region[:, max(end, 0):] = False
    ok = region & np.isfinite(frames["ra"]) & np.isfinite(frames["wavelength"])
    if drizzle:
        for name in CORNERS:
            ok &= np.isfinite(frames[name])
    index = np.flatnonzero(ok)
    take = {name: frames[name].reshape(-1)[index] for name in
            ("wavelength", "sci", "err", "dq", "ra", "dec", "dwave", "slice")}
    ra, dec = take["ra"], take["dec"]
    corners: list[np.ndarray] = []
    offsets = [frames[name] for name in CORNERS] if drizzle else []
    if offsets and (shift is not None or any(o.dtype != np.float32 for o in offsets)):
        for k in range(0, 8, 2):
            corners.append(ra + offsets[k].reshape(-1)[index].astype(np.float64) / 3600.0)
            corners.append(dec + offsets[k + 1].reshape(-1)[index].astype(np.float64) / 3600.0)
        offsets = []
    # (else the corners are projected straight from the stored offsets: cube_build._project)
    if shift is not None:
        ra, dec = offset_radec(ra, dec, *shift)
        for k in range(0, len(corners), 2):
            corners[k], corners[k + 1] = offset_radec(corners[k], corners[k + 1], *shift)
    return Pixels(take["wavelength"], take["sci"], take["err"], take["dq"], ra, dec, take["dwave"],
                  take["slice"], corners, offsets, index)
