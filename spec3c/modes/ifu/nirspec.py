"""NIRSpec IFU exposures as full frames (jwst 3.0.0 ``map_nirspec_pixel_to_sky``,
``find_corners_nirspec``), all 30 slices in one vectorised pass.

Two WCS layouts are read:

* jwst 3.x cal files carry a *coordinate-based* WCS: ``coordinates ->
  detector -> slicer -> ... -> world`` where the detector-to-slicer transform
  selects each pixel's slice transform from a slice map (``regions``).  The
  transforms are evaluated once on every pixel of every slice at once;
* older files carry the *slice-based* WCS (a ``gwa`` frame and a slice-name
  input): each slice's pixels (from its bounding box) are evaluated with that
  slice fixed.

Per pixel: RA/Dec/wavelength; ``dwave = |λ(x - 0.4999) - λ(x + 0.4999)|``;
corners: detector->slicer at ``(x, y ∓ 0.49)`` then ∓ half the slice pitch in
the across-slice slicer coordinate (pitch = distance between slices 0 and 2
at their bounding-box centres), mapped slicer->world; the slicer along-slice
coordinate and wavelength at pixel centres (``internal_cal`` cubes).  The
``slice`` plane is the reference's slice number of a pixel: the last slice
(1-30) whose bounding box holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...fast_transform import FastTransform
from ...store.records import Cutout
from .frames import (
    CORNER_PLANES,
    FRAME_CHUNK,
    box_pixels,
    corner_offsets,
    evaluate,
    footprint,
    input_wcs,
    instrument_table,
    label_map,
    marker_cutout,
    rotation_angle,
    s_region,
    science_planes,
)

HALF = 0.4999
Transform = Callable[..., tuple[np.ndarray, ...]]


class SliceTransforms:
    """detector->slicer and slicer->world of one exposure, for all slices or one slice."""

    def __init__(self, wcs: Any, path: Path) -> None:
        self.wcs = wcs
        self.legacy = "gwa" in wcs.available_frames
        self.det2slicer = wcs.get_transform(wcs.available_frames[0], "slicer")
        self.slicer2world = wcs.get_transform("slicer", wcs.output_frame.name)
        if not self.legacy:  # called as models (no bounding box), compiled
            self._det2slicer = FastTransform(self.det2slicer, self.det2slicer, with_bounding_box=False)
            self._slicer2world = FastTransform(self.slicer2world, self.slicer2world, with_bounding_box=False)
        self.nslices = int(instrument_table()["nirspec"]["nslices"])
        self.path = path

    def boxes(self, regions: np.ndarray) -> list[tuple[float, ...]]:
        """Bounding box ``(x0, x1, y0, y1)`` of each slice: from the WCS when it has them, else
        from the slice map (as ``apply_slicemap`` derives them)."""
        out = []
        for k in range(self.nslices):
            box = self._wcs_box(k)
            if box is None:
                yk, xk = np.nonzero(regions == k + 1)
                if xk.size == 0:
                    box = (np.nan, np.nan, np.nan, np.nan)
                else:
                    box = (xk.min() - 0.5, xk.max() + 0.5, yk.min() - 0.5, yk.max() + 0.5)
            out.append(tuple(float(v) for v in box))
        return out

    def _wcs_box(self, k: int) -> tuple[float, ...] | None:
        try:
            if self.legacy:
                bbox = self.wcs.bounding_box[k]
            else:
                bbox = self.wcs.pipeline[1].transform.selector[k + 1].bounding_box
            (x0, x1), (y0, y1) = (tuple(map(float, interval)) for interval in bbox)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, NotImplementedError):
            return None
        return (x0, x1, y0, y1)

    def to_slicer(self, x: np.ndarray, y: np.ndarray, k: int | None = None) -> tuple[np.ndarray, ...]:
        if not self.legacy:
            return self._det2slicer(x, y)
        return _call_named(self.det2slicer, k, x, y)

    def to_world(self, across: np.ndarray, along: np.ndarray, lam: np.ndarray,
                 k: int | None = None) -> tuple[np.ndarray, ...]:
        if not self.legacy:
            return self._slicer2world(across, along, lam)
        return _call_named(self.slicer2world, k, across, along, lam)


def _call_named(transform: Any, name: int | None, *args: np.ndarray) -> tuple[np.ndarray, ...]:
    """Evaluate a slice-based transform with its ``name`` input fixed to ``name``; the
    ``name`` output is dropped."""
    inputs = list(args)
    if "name" in transform.inputs:
        inputs.insert(list(transform.inputs).index("name"), name)  # type: ignore[arg-type]
    out = transform(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return tuple(np.asarray(v) for v, o in zip(out, transform.outputs, strict=True) if o != "name")


def _pitch(t: SliceTransforms, boxes: list[tuple[float, ...]]) -> float:
    """Across-slice distance between the bounding-box centres of two physically adjacent slices."""
    first, second = instrument_table()["nirspec"]["across_pitch_slices"]
    locs = []
    for k in (first, second):
        x0, x1, y0, y1 = boxes[k]
        across = t.to_slicer(np.array([(x0 + x1) / 2.0]), np.array([(y0 + y1) / 2.0]), k)[0]
        locs.append(float(across[0]))
    return abs(locs[0] - locs[1])


def _reference_slices(boxes: list[tuple[float, ...]], shape: tuple[int, int]) -> np.ndarray:
    """Per pixel, the number (1-30) of the last slice whose bounding box holds it (0: none)."""
    out = np.zeros(shape, dtype=np.int16)
    for k, box in enumerate(boxes):
        gy, gx = box_pixels(box, shape)
        out[gy, gx] = k + 1
    return out


def _groups(t: SliceTransforms, regions: np.ndarray, boxes: list, shape: tuple[int, int]) -> list[tuple[int | None, np.ndarray]]:
    """(slice fixed for the transforms, flat pixel indices) to evaluate: one group of every
    labelled pixel (coordinate-based WCS), or one per slice box (slice-based WCS)."""
    if not t.legacy:
        return [(None, np.flatnonzero(regions.ravel() > 0))]
    groups: list[tuple[int | None, np.ndarray]] = []
    for k, box in enumerate(boxes):
        gy, gx = box_pixels(box, shape)
        groups.append((k, gy * shape[1] + gx))
    return groups


def _slicer_lambda_scale(slam: np.ndarray, lam: np.ndarray) -> float | None:
    """The factor (1e6 for metres, else 1) turning slicer-frame wavelengths into the world ones
    (micron), when that is all the slicer-to-world transform does to them (jwst's IFU WCS);
    None otherwise."""
    ok = np.isfinite(slam) & np.isfinite(lam)
    if not ok.any():
        return None
    scale = 1.0e6 if np.nanmax(np.abs(slam[ok])) < 1.0e-4 else 1.0
    return scale if np.array_equal(slam[ok] * scale, lam[ok]) else None


def _evaluate_group(t: SliceTransforms, k: int | None, x: np.ndarray, y: np.ndarray,
                    pitch: float) -> tuple[np.ndarray, ...]:
    """Centre coordinates, dwave and corner RA/Dec of the pixels ``(x, y)``."""
    dy = float(instrument_table()["nirspec"]["corner_dy"])

    def one(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, ...]:
        across, along, slam = t.to_slicer(xc, yc, k)
        ra, dec, lam = t.to_world(across, along, slam, k)
        lo = t.to_slicer(xc - HALF, yc, k)
        hi = t.to_slicer(xc + HALF, yc, k)
        scale = _slicer_lambda_scale(slam, lam)
        if scale is not None:  # the world wavelength is the slicer one scaled: skip two sky mappings
            lam_lo, lam_hi = lo[2] * scale, hi[2] * scale
        else:
            lam_lo = t.to_world(lo[0], lo[1], lo[2], k)[2]
            lam_hi = t.to_world(hi[0], hi[1], hi[2], k)[2]
        a1, b1, l1 = t.to_slicer(xc, yc - dy, k)
        a2, b2, l2 = t.to_slicer(xc, yc + dy, k)
        half = pitch / 2.0
        ra1, dec1, _ = t.to_world(a1 - half, b1, l1, k)
        ra2, dec2, _ = t.to_world(a1 + half, b1, l1, k)
        ra3, dec3, _ = t.to_world(a2 + half, b2, l2, k)
        ra4, dec4, _ = t.to_world(a2 - half, b2, l2, k)
        return (ra, dec, lam, np.abs(lam_lo - lam_hi), across, along, slam,
                ra1, dec1, ra2, dec2, ra3, dec3, ra4, dec4)

    return evaluate(one, x, y)


def _rotation(t: SliceTransforms, boxes: list) -> float:
    """ifualign angle: two points 5 mm apart along slice 0 in the slicer plane, at its median λ."""
    gy, gx = box_pixels(boxes[0], (10**9, 10**9))
    lam = t.to_slicer(gx.astype(np.float64), gy.astype(np.float64), 0)[2]
    lam_med = float(np.nanmedian(lam)) if np.isfinite(lam).any() else float("nan")
    step = float(instrument_table()["nirspec"]["ifualign_along_step_m"])
    ra1, dec1, _ = t.to_world(np.array([0.0]), np.array([0.0]), np.array([lam_med]), 0)
    ra2, dec2, _ = t.to_world(np.array([0.0]), np.array([step]), np.array([lam_med]), 0)
    return rotation_angle(float(ra1[0]), float(dec1[0]), float(ra2[0]), float(dec2[0]))


def _internal_footprint(across: np.ndarray, along: np.ndarray) -> list[float]:
    """``find_corners_nirspec`` in the slicer plane: coord 1 along slice, coord 2 across."""
    ok = np.isfinite(across) & np.isfinite(along)
    a, b = along[ok], across[ok]
    if a.size == 0:
        return [float("nan")] * 8
    ia0, ia1, ib0, ib1 = int(np.argmin(a)), int(np.argmax(a)), int(np.argmin(b)), int(np.argmax(b))
    return [float(v) for v in (a[ia0], b[ia0], a[ia1], b[ia1], a[ib0], b[ib0], a[ib1], b[ib1])]


#: centre planes (float64) in the order :func:`_evaluate_group` returns them, then the corners
_CENTRE_PLANES = ("ra", "dec", "wavelength", "dwave", "across", "slicer_along", "slicer_lam")


def _frames(t: SliceTransforms, regions: np.ndarray, boxes: list, shape: tuple[int, int],
            pitch: float) -> dict[str, np.ndarray]:
    """Full-frame coordinate planes (NaN where a pixel has no finite wavelength)."""
    n = int(np.prod(shape))
    out = {name: np.full(n, np.nan) for name in _CENTRE_PLANES}
    out.update({name: np.full(n, np.nan, dtype=np.float32) for name in CORNER_PLANES})
    for k, group in _groups(t, regions, boxes, shape):
        # a chunk at a time into the frames: the 15 coordinate arrays of a whole group (every labelled
        # pixel of a 2048^2 detector) were ~600 MB more per reading process; astropy.modeling's
        # intermediates of a chunk are ~150 MB at CHUNK pixels, half that at FRAME_CHUNK
        for index in (group[start:start + FRAME_CHUNK] for start in range(0, group.size, FRAME_CHUNK)):
            y, x = np.divmod(index, shape[1])
            values = _evaluate_group(t, k, x.astype(np.float64), y.astype(np.float64), pitch)
            keep = np.isfinite(values[2])
            where = index[keep]
            for name, value in zip(_CENTRE_PLANES, values, strict=False):
                out[name][where] = value[keep]
            ra, dec = values[0][keep], values[1][keep]
            offsets = corner_offsets(ra, dec, [v[keep] for v in values[len(_CENTRE_PLANES):]])
            for name, value in offsets.items():
                out[name][where] = value
    return {name: value.reshape(shape) for name, value in out.items()}


def read_nirspec_frames(model: Any, name: str, path: Path) -> tuple[list[Cutout], dict[str, np.ndarray]]:
    """The exposure's marker cutout and full-frame planes (science + coordinates)."""
    wcs = input_wcs(model, path, "slicer")
    shape = np.shape(model.data)  # the other planes are read after the coordinates: not held while they are made
    t = SliceTransforms(wcs, path)
    regions = label_map(model, wcs, shape, path) if not t.legacy else np.zeros(shape, np.int32)
    boxes = t.boxes(regions)
    if not any(np.isfinite(b[0]) for b in boxes):
        raise InputError(path, "no IFU slice has a bounding box or a pixel in the slice map")
    pitch = _pitch(t, boxes)

    frames = _frames(t, regions, boxes, shape, pitch)
    internal = _internal_footprint(frames.pop("across"), frames["slicer_along"])
    planes = science_planes(model, path)
    slices = np.where(np.isfinite(frames["wavelength"]), _reference_slices(boxes, shape), 0).astype(np.int16)
    planes.update(frames)
    planes["slice"] = slices

    grating = str(model.meta.instrument.grating or "").lower()
    filt = str(model.meta.instrument.filter or "").lower()
    if not grating or not filt:
        raise InputError(path, "GRATING and FILTER (meta.instrument.grating/filter) must be set")
    text, spectral = s_region(model)
    ifu = {
        "instrument": "NIRSPEC",
        "bands": [[grating, filt]],
        "shape": list(shape),
        "slice_boxes": [list(b) for b in boxes],
        "slice_pitch": pitch,
        "footprint": {"all": footprint(planes["ra"], planes["dec"], modulo=False)},
        "footprint_internal": internal,
        "rotation": {"all": _rotation(t, boxes)},
        "s_region": text,
        "spectral_region": spectral,
    }
    return [marker_cutout(model, name, path, ifu)], planes
