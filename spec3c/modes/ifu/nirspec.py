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
from ...ingest.shared_coords import SAMPLE_PIXELS, chunks_of, fingerprint, sample_of
from ...store.records import Cutout
from .frames import (
    CORNER_PLANES,
    FRAME_CHUNK,
    box_pixels,
    corner_offsets,
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
        # where the pointing enters: slicer -> pivot is the same for every exposure of a set-up
        self.pivot = "v2v3" if not self.legacy and "v2v3" in wcs.available_frames else "slicer"
        if not self.legacy:  # called as models (no bounding box), compiled
            self._det2slicer = _compiled(self.det2slicer)
            self._slicer2world = _compiled(self.slicer2world)
        if self.pivot != "slicer":
            self._slicer2pivot = _compiled(wcs.get_transform("slicer", self.pivot))
            self._pivot2world = _compiled(wcs.get_transform(self.pivot, wcs.output_frame.name))
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

    def to_pivot(self, across: np.ndarray, along: np.ndarray, lam: np.ndarray,
                 k: int | None = None) -> tuple[np.ndarray, ...]:
        """slicer -> pivot (the first part of :meth:`to_world`)."""
        if self.pivot == "slicer":
            return across, along, lam
        return self._slicer2pivot(across, along, lam)

    def pivot_to_world(self, p1: np.ndarray, p2: np.ndarray, p3: np.ndarray,
                       k: int | None = None) -> tuple[np.ndarray, ...]:
        """pivot -> world (the rest of :meth:`to_world`: ``to_world = pivot_to_world . to_pivot``)."""
        if self.pivot == "slicer":
            return self.to_world(p1, p2, p3, k)
        return self._pivot2world(p1, p2, p3)


def _compiled(model: Any) -> FastTransform:
    return FastTransform(model, model, with_bounding_box=False)


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
    scale = _metres_or_microns(slam[ok])
    return scale if np.array_equal(slam[ok] * scale, lam[ok]) else None


def _metres_or_microns(slam: np.ndarray) -> float:
    """1e6 if the finite slicer wavelengths ``slam`` are in metres, else 1."""
    return 1.0e6 if slam.size and np.nanmax(np.abs(slam)) < 1.0e-4 else 1.0


def _dwave(t: SliceTransforms, k: int | None, x: np.ndarray, y: np.ndarray, scale: float | None) -> np.ndarray:
    """``|λ(x - 0.4999) - λ(x + 0.4999)|``: slicer wavelengths times ``scale``, or through the whole
    WCS (``scale`` None)."""
    lo = t.to_slicer(x - HALF, y, k)
    hi = t.to_slicer(x + HALF, y, k)
    if scale is not None:  # the world wavelength is the slicer one scaled: skip two sky mappings
        return np.abs(lo[2] * scale - hi[2] * scale)
    return np.abs(t.to_world(lo[0], lo[1], lo[2], k)[2] - t.to_world(hi[0], hi[1], hi[2], k)[2])


def _pointing_free(t: SliceTransforms, k: int | None, x: np.ndarray, y: np.ndarray,
                   pitch: float) -> tuple[dict[str, np.ndarray], bool]:
    """Everything but pivot -> world of the pixels ``(x, y)``: the centres and the four corners at the
    pivot (``p1, p2, p3``, ``c<k>_1 .. c<k>_3``), the slicer coordinates, and ``dwave`` from the
    slicer wavelengths times ``scale`` (valid where the world λ is the slicer one times it: the
    caller checks)."""
    dy = float(instrument_table()["nirspec"]["corner_dy"])
    across, along, slam = t.to_slicer(x, y, k)
    p1, p2, p3 = t.to_pivot(across, along, slam, k)
    scale = _metres_or_microns(slam[np.isfinite(slam) & np.isfinite(p3)])
    arrays = {"p1": p1, "p2": p2, "p3": p3, "dwave": _dwave(t, k, x, y, scale), "scale": np.array([scale]),
              "across": across, "slicer_along": along, "slicer_lam": slam}
    a1, b1, l1 = t.to_slicer(x, y - dy, k)
    a2, b2, l2 = t.to_slicer(x, y + dy, k)
    half = pitch / 2.0
    for c, (a, b, lam) in enumerate(((a1 - half, b1, l1), (a1 + half, b1, l1), (a2 + half, b2, l2),
                                     (a2 - half, b2, l2)), start=1):
        arrays.update(zip((f"c{c}_1", f"c{c}_2", f"c{c}_3"), t.to_pivot(a, b, lam, k), strict=True))
    return arrays, True


def _to_sky(t: SliceTransforms, k: int | None, free: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Centre RA, Dec, λ and the corners' RA, Dec (ra1, dec1 ... ra4, dec4) from the pivot."""
    ra, dec, lam = t.pivot_to_world(free["p1"], free["p2"], free["p3"], k)
    corners: list[np.ndarray] = []
    for c in range(1, 5):
        corners += t.pivot_to_world(free[f"c{c}_1"], free[f"c{c}_2"], free[f"c{c}_3"], k)[:2]
    return (ra, dec, lam, *corners)


def _set_up_key(t: SliceTransforms, regions: np.ndarray, boxes: list, shape: tuple[int, int], pitch: float,
                groups: list[tuple[int | None, np.ndarray]]) -> str:
    """What makes two exposures' :func:`_pointing_free` arrays the same (see
    :mod:`spec3c.ingest.shared_coords`): the slice map and boxes, the pitch, and the slicer and pivot
    coordinates of a sample of every group's pixels at the centres and at the steps the arrays use."""
    dy = float(instrument_table()["nirspec"]["corner_dy"])
    values: list[np.ndarray] = []
    for k, group in groups:
        sample = sample_of(group, SAMPLE_PIXELS // len(groups))
        y, x = (v.astype(np.float64) for v in np.divmod(sample, shape[1]))
        for dx, ddy in ((0.0, 0.0), (-HALF, 0.0), (HALF, 0.0), (0.0, -dy), (0.0, dy)):
            across, along, lam = t.to_slicer(x + dx, y + ddy, k)
            values += [across, along, lam, *t.to_pivot(across, along, lam, k)]
    return fingerprint("nirspec", t.pivot, repr(shape), regions, np.array(boxes, dtype=np.float64), repr(pitch),
                       *values)


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


#: centre planes (float64), then the corners
_CENTRE_PLANES = ("ra", "dec", "wavelength", "dwave", "across", "slicer_along", "slicer_lam")


def _frames(t: SliceTransforms, regions: np.ndarray, boxes: list, shape: tuple[int, int],
            pitch: float) -> dict[str, np.ndarray]:
    """Full-frame coordinate planes (NaN where a pixel has no finite wavelength)."""
    n = int(np.prod(shape))
    out = {name: np.full(n, np.nan) for name in _CENTRE_PLANES}
    out.update({name: np.full(n, np.nan, dtype=np.float32) for name in CORNER_PLANES})
    groups = _groups(t, regions, boxes, shape)
    key = _set_up_key(t, regions, boxes, shape, pitch, groups)
    # a chunk at a time into the frames: the 15 coordinate arrays of a whole group (every labelled
    # pixel of a 2048^2 detector) were ~600 MB more per reading process; astropy.modeling's
    # intermediates of a chunk are ~150 MB at CHUNK pixels, half that at FRAME_CHUNK
    chunks = [(k, group[start:start + FRAME_CHUNK]) for k, group in groups for start in range(0, group.size, FRAME_CHUNK)]

    def pixels(c: int) -> tuple[np.ndarray, np.ndarray]:
        y, x = np.divmod(chunks[c][1], shape[1])
        return x.astype(np.float64), y.astype(np.float64)

    def make(c: int) -> tuple[dict[str, np.ndarray], bool]:
        return _pointing_free(t, chunks[c][0], *pixels(c), pitch)

    for c, free in enumerate(chunks_of(key, len(chunks), make)):
        k, index = chunks[c]
        ra, dec, lam, *corners = _to_sky(t, k, free)
        dwave = free["dwave"]
        scale = _slicer_lambda_scale(free["slicer_lam"], lam)
        if scale is None or scale != float(free["scale"][0]):  # the world λ is not the slicer one scaled
            dwave = _dwave(t, k, *pixels(c), scale)
        keep = np.isfinite(lam)
        where = index[keep]
        for name, value in zip(_CENTRE_PLANES, (ra, dec, lam, dwave, free["across"], free["slicer_along"],
                                                 free["slicer_lam"]), strict=True):
            out[name][where] = value[keep]
        offsets = corner_offsets(ra[keep], dec[keep], [v[keep] for v in corners])
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
