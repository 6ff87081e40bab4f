"""MIRI MRS exposures as full frames (jwst 3.0.0 ``map_miri_pixel_to_sky``, ``find_corners_miri``).

A MIRIFUSHORT/MIRIFULONG cal file holds two channels side by side; each
channel owns a range of detector columns (``instrument.json``).  Per pixel:
RA/Dec/wavelength from ``detector -> world``; ``dwave = |λ(y - 0.4999) -
λ(y + 0.4999)|``; along-slice α at ``x ∓ 0.4999`` and the slice's β from
``detector -> alpha_beta``; the four corners ``(α1, β ∓ Δβ/2)``, ``(α2, β ±
Δβ/2)`` mapped ``alpha_beta -> world`` at the pixel's wavelength, with ``Δβ``
the spacing of the channel's slice β values.  Columns outside every channel
of the file keep NaN coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...fast_transform import FastWcs
from ...store.records import Cutout
from .frames import (
    CORNER_PLANES,
    FRAME_CHUNK,
    corner_offsets,
    evaluate,
    footprint,
    frame_shape,
    input_wcs,
    instrument_table,
    label_map,
    marker_cutout,
    rotation_angle,
    s_region,
    scatter,
    science_planes,
    world_centres,
)

#: half a pixel, as the reference steps to a pixel's edges
HALF = 0.4999
#: pixels whose corners are mapped at a time: the reader holds the most while it maps them
_CORNER_CHUNK = FRAME_CHUNK // 2


def channel_limits(wcs: Any, channel: str) -> tuple[int, int]:
    """Image columns ``[start, end)`` of a channel (``miri_slice_limit_coords``: through the
    ``detector -> coordinates`` transform when the data were oversampled)."""
    info = instrument_table()["miri"]["channels"][channel]
    xs, xe = float(info["xstart"]), float(info["xend"])
    if "coordinates" in wcs.available_frames:
        xc, _ = wcs.get_transform("detector", "coordinates")(np.array([xs, xe]), np.array([0.0, 0.0]))
        return int(np.floor(xc[0])), int(np.ceil(xc[1]))
    return int(xs), int(xe)


def _channels(model: Any, path: Path) -> tuple[list[str], str]:
    channel = str(model.meta.instrument.channel or "")
    band = str(model.meta.instrument.band or "").lower()
    known = instrument_table()["miri"]
    if not channel or any(c not in known["channels"] for c in channel):
        raise InputError(path, f"CHANNEL (meta.instrument.channel) is {channel!r}, expected channels 1-4 (e.g. '12')")
    if band not in known["subchannels"]:
        raise InputError(path, f"BAND (meta.instrument.band) is {band!r}, expected one of {known['subchannels']}")
    return list(channel), band


def _channel_of_column(shape: tuple[int, int], limits: dict[str, tuple[int, int]]) -> np.ndarray:
    """Per column: the index + 1 of the channel whose range holds it (0: none)."""
    owner = np.zeros(shape[1], dtype=np.int8)
    for k, (start, end) in enumerate(limits.values(), start=1):
        owner[max(start, 0):max(end, 0)] = k
    return owner


def _slice_width(beta: np.ndarray) -> float:
    """Spacing of the two smallest distinct β values of a channel (NaN if fewer than 2)."""
    values = np.unique(beta[np.isfinite(beta)])
    return float(abs(values[1] - values[0])) if values.size > 1 else float("nan")


def _rotation(wcs: Any, lam: np.ndarray, columns: slice) -> float:
    """ifualign angle of a channel: α = 0 and 2 arcsec at β = 0 and the channel's median λ."""
    lam_med = float(np.nanmedian(lam[:, columns])) if np.isfinite(lam[:, columns]).any() else float("nan")
    ab2world = wcs.get_transform("alpha_beta", wcs.output_frame.name)
    step = float(instrument_table()["miri"]["ifualign_alpha_step_arcsec"])
    ra1, dec1, _ = ab2world(0.0, 0.0, lam_med)
    ra2, dec2, _ = ab2world(step, 0.0, lam_med)
    return rotation_angle(float(ra1), float(dec1), float(ra2), float(dec2))


def _lambda_passes_through(wcs: FastWcs, x: np.ndarray, y: np.ndarray, lam: np.ndarray) -> bool:
    """Whether the world wavelength is the ``detector -> alpha_beta`` one (true of jwst's MRS WCS:
    the later transforms pass it through), checked on up to 1000 of the pixels."""
    pick = np.linspace(0, x.size - 1, min(x.size, 1000)).astype(np.intp)
    local = np.asarray(wcs.transform(wcs.wcs.available_frames[0], "alpha_beta", x[pick], y[pick])[2],
                       dtype=np.float64)
    return bool(np.allclose(local, lam[pick], rtol=1e-13, atol=0, equal_nan=True))


def _local(wcs: FastWcs, x: np.ndarray, y: np.ndarray, full_chain_lambda: bool) -> tuple[np.ndarray, ...]:
    """α at ``x ∓ 0.4999``, the slice's β and ``dwave = |λ(y - 0.4999) - λ(y + 0.4999)|``."""
    det = wcs.wcs.available_frames[0]

    def one(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, ...]:
        alpha1, beta, _ = wcs.transform(det, "alpha_beta", xc - HALF, yc)
        alpha2 = wcs.transform(det, "alpha_beta", xc + HALF, yc)[0]
        if full_chain_lambda:
            lam_lo, lam_hi = wcs(xc, yc - HALF)[2], wcs(xc, yc + HALF)[2]
        else:
            lam_lo = wcs.transform(det, "alpha_beta", xc, yc - HALF)[2]
            lam_hi = wcs.transform(det, "alpha_beta", xc, yc + HALF)[2]
        return alpha1, alpha2, beta, np.abs(lam_lo - lam_hi)

    return evaluate(one, x, y, chunk=FRAME_CHUNK)


def _corners_world(wcs: FastWcs, a1: np.ndarray, a2: np.ndarray, b: np.ndarray, db: np.ndarray,
                   lam: np.ndarray) -> list[np.ndarray]:
    """The corners ``(α1, β ∓ Δβ/2)``, ``(α2, β ± Δβ/2)`` mapped ``alpha_beta -> world`` at the pixel's λ
    (ra1, dec1 ... ra4, dec4)."""
    out = wcs.wcs.output_frame.name
    lo, hi = b - db / 2.0, b + db / 2.0
    ra1, dec1, _ = wcs.transform("alpha_beta", out, a1, lo, lam)
    ra2, dec2, _ = wcs.transform("alpha_beta", out, a1, hi, lam)
    ra3, dec3, _ = wcs.transform("alpha_beta", out, a2, hi, lam)
    ra4, dec4, _ = wcs.transform("alpha_beta", out, a2, lo, lam)
    return [np.asarray(v, dtype=np.float64).reshape(-1) for v in (ra1, dec1, ra2, dec2, ra3, dec3, ra4, dec4)]


def _corner_frames(wcs: FastWcs, shape: tuple[int, int], index: np.ndarray, centre: tuple[np.ndarray, np.ndarray],
                   local: tuple[np.ndarray, ...], lam: np.ndarray) -> dict[str, np.ndarray]:
    """The corner offset planes (float32, NaN off the mapped pixels ``index``), made a chunk at a
    time: the eight float64 corner arrays of every mapped pixel are never held at once.
    ``centre``: RA, Dec and ``local``: α1, α2, β, Δβ of the mapped pixels."""
    frames = {name: np.full(int(np.prod(shape)), np.nan, dtype=np.float32) for name in CORNER_PLANES}
    for start in range(0, index.size, _CORNER_CHUNK):
        part = slice(start, start + _CORNER_CHUNK)
        a1, a2, b, db = (v[part] for v in local)
        corners = _corners_world(wcs, a1, a2, b, db, lam[part])
        for name, value in corner_offsets(centre[0][part], centre[1][part], corners).items():
            frames[name][index[part]] = value
    return {name: value.reshape(shape) for name, value in frames.items()}


def read_miri_frames(model: Any, name: str, path: Path) -> tuple[list[Cutout], dict[str, np.ndarray]]:
    """The exposure's marker cutout and full-frame planes (science + coordinates)."""
    wcs = input_wcs(model, path, "alpha_beta")
    shape = frame_shape(model, path)  # the science planes are read after the coordinates: not held while they are made
    channels, band = _channels(model, path)
    limits = {c: channel_limits(wcs, c) for c in channels}
    slices = label_map(model, wcs, shape, path)

    fast = FastWcs(wcs)
    ra, dec, lam = world_centres(fast, wcs, shape)
    owner = np.broadcast_to(_channel_of_column(shape, limits), shape)
    index = np.flatnonzero((owner > 0) & np.isfinite(ra))
    y, x = (v.astype(np.float64) for v in np.divmod(index, shape[1]))
    lam_valid = lam.ravel()[index]
    alpha1, alpha2, beta, dwave = _local(fast, x, y, not _lambda_passes_through(fast, x, y, lam_valid))
    del x, y
    widths = {k: _slice_width(beta[owner.ravel()[index] == k]) for k in range(1, len(channels) + 1)}
    width_of_owner = np.array([np.nan, *(widths[k] for k in range(1, len(channels) + 1))], dtype=np.float64)
    dbeta = width_of_owner[owner.ravel()[index]]
    corners = _corner_frames(fast, shape, index, (ra.ravel()[index], dec.ravel()[index]),
                             (alpha1, alpha2, beta, dbeta), lam_valid)
    del alpha1, alpha2, beta, dbeta, lam_valid

    dwave_frame = scatter(shape, index, dwave)
    del dwave
    text, spectral = s_region(model)
    ifu = {
        "instrument": "MIRI",
        "bands": [[c, band] for c in channels],
        "shape": list(shape),
        "x_limits": {c: list(v) for c, v in limits.items()},
        "slice_width": {c: widths[k] for k, c in enumerate(channels, start=1)},
        "footprint": {c: footprint(ra[:, s:e], dec[:, s:e], modulo=True) for c, (s, e) in limits.items()},
        "rotation": {c: _rotation(wcs, lam, slice(s, e)) for c, (s, e) in limits.items()},
        "s_region": text,
        "spectral_region": spectral,
    }
    outside = owner == 0  # columns of no channel of the file: NaN (in place, the frames are not copied)
    for plane in (lam, ra, dec):
        plane[outside] = np.nan
    planes = science_planes(model, path)
    planes.update({"wavelength": lam, "ra": ra, "dec": dec, "slice": slices.astype(np.int16), "dwave": dwave_frame})
    planes.update(corners)
    return [marker_cutout(model, name, path, ifu)], planes
