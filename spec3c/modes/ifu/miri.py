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
from ...ingest.shared_coords import fingerprint, load_or_make, sample_of
from ...store.records import Cutout
from .frames import (
    FRAME_CHUNK,
    corner_offsets,
    evaluate,
    footprint,
    frame_shape,
    input_wcs,
    instrument_table,
    label_map,
    mapped_pixels,
    marker_cutout,
    rotation_angle,
    s_region,
    scatter,
    science_planes,
)

#: half a pixel, as the reference steps to a pixel's edges
HALF = 0.4999


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


class _Chain:
    """The exposure's WCS cut where the pointing enters: ``detector -> alpha_beta -> pivot`` is the
    same for every exposure of a set-up, ``pivot -> world`` is not (pivot: ``v2v3``; ``alpha_beta``
    when the WCS has no ``v2v3`` frame)."""

    def __init__(self, wcs: Any) -> None:
        self.fast = FastWcs(wcs)
        self.detector = wcs.available_frames[0]
        self.pivot = "v2v3" if "v2v3" in wcs.available_frames else "alpha_beta"
        self.world = wcs.output_frame.name

    def to_alpha_beta(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.fast.transform(self.detector, "alpha_beta", x, y)

    def to_pivot(self, alpha: np.ndarray, beta: np.ndarray, lam: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.pivot == "alpha_beta":
            return alpha, beta, lam
        return self.fast.transform("alpha_beta", self.pivot, alpha, beta, lam)

    def to_world(self, *pivot: np.ndarray) -> tuple[np.ndarray, ...]:
        """``pivot -> world`` of 1-D arrays, in chunks."""
        return evaluate(lambda *a: self.fast.transform(self.pivot, self.world, *a), *pivot, chunk=FRAME_CHUNK)


def _lambda_passes_through(chain: _Chain, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether the world wavelength is the ``detector -> alpha_beta`` one (true of jwst's MRS WCS:
    the later transforms pass it through), checked on up to 1000 of the pixels."""
    pick = np.linspace(0, x.size - 1, min(x.size, 1000)).astype(np.intp)
    world = np.asarray(chain.fast(x[pick], y[pick])[2], dtype=np.float64)
    local = np.asarray(chain.to_alpha_beta(x[pick], y[pick])[2], dtype=np.float64)
    return bool(np.allclose(local, world, rtol=1e-13, atol=0, equal_nan=True))


def _local(chain: _Chain, x: np.ndarray, y: np.ndarray, full_chain_lambda: bool) -> tuple[np.ndarray, ...]:
    """α at ``x ∓ 0.4999``, the slice's β and ``dwave = |λ(y - 0.4999) - λ(y + 0.4999)|``."""

    def one(xc: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, ...]:
        alpha1, beta, _ = chain.to_alpha_beta(xc - HALF, yc)
        alpha2 = chain.to_alpha_beta(xc + HALF, yc)[0]
        if full_chain_lambda:
            lam_lo, lam_hi = chain.fast(xc, yc - HALF)[2], chain.fast(xc, yc + HALF)[2]
        else:
            lam_lo = chain.to_alpha_beta(xc, yc - HALF)[2]
            lam_hi = chain.to_alpha_beta(xc, yc + HALF)[2]
        return alpha1, alpha2, beta, np.abs(lam_lo - lam_hi)

    return evaluate(one, x, y, chunk=FRAME_CHUNK)


def _pointing_free(chain: _Chain, shape: tuple[int, int], owner: np.ndarray,
                   n_channels: int) -> tuple[dict[str, np.ndarray], bool]:
    """Everything but ``pivot -> world``, of the pixels mapped in a channel's columns (``mapped``,
    flat indices): their centres at the pivot (``p1, p2, p3``), ``finite`` (of ``mapped``: finite
    there; their pixels are ``index``), and of those ``dwave``, the four corners at the pivot
    (``c<k>_1, c<k>_2``; ``c<k>_3`` unless it is the centre λ) and the channels' slice widths.
    The flag: whether the arrays are free of the pointing (not when ``dwave`` needs the world λ)."""
    mapped = mapped_pixels(chain.to_alpha_beta, chain.fast.wcs, shape)
    mapped = mapped[owner.ravel()[mapped] > 0]
    y, x = (v.astype(np.float64) for v in np.divmod(mapped, shape[1]))
    centre = evaluate(lambda xc, yc: chain.to_pivot(*chain.to_alpha_beta(xc, yc)), x, y, chunk=FRAME_CHUNK)
    finite = np.isfinite(centre[0]) & np.isfinite(centre[1])
    index, x, y = mapped[finite], x[finite], y[finite]
    full_chain_lambda = not _lambda_passes_through(chain, x, y)
    alpha1, alpha2, beta, dwave = _local(chain, x, y, full_chain_lambda)
    del x, y
    owners = owner.ravel()[index]
    widths = np.array([_slice_width(beta[owners == k]) for k in range(1, n_channels + 1)], dtype=np.float64)
    dbeta = np.concatenate(([np.nan], widths))[owners]
    lo, hi = beta - dbeta / 2.0, beta + dbeta / 2.0
    del beta, dbeta, owners
    lam = centre[2][finite]
    arrays = {"mapped": mapped, "p1": centre[0], "p2": centre[1], "p3": centre[2], "finite": finite,
              "dwave": dwave, "widths": widths}
    for k, (a, b) in enumerate(((alpha1, lo), (alpha1, hi), (alpha2, hi), (alpha2, lo)), start=1):
        corner = evaluate(chain.to_pivot, a, b, lam, chunk=FRAME_CHUNK)
        arrays.update({f"c{k}_1": corner[0], f"c{k}_2": corner[1]})
        if not np.array_equal(corner[2], lam, equal_nan=True):  # (jwst's WCS passes λ through)
            arrays[f"c{k}_3"] = corner[2]
    return arrays, not full_chain_lambda


def _set_up_key(chain: _Chain, shape: tuple[int, int], owner: np.ndarray, slices: np.ndarray) -> str:
    """What makes two exposures' :func:`_pointing_free` arrays the same (see :mod:`spec3c.ingest.shared_coords`):
    the slice map, the channels' columns, and the pointing-independent transforms on a sample of
    pixels of every slice, at the pixel centres and at the half-pixel steps the arrays use."""
    sample = sample_of(np.flatnonzero((slices.ravel() > 0) & (owner.ravel() > 0)))
    y, x = (v.astype(np.float64) for v in np.divmod(sample, shape[1]))
    values = []
    for dx, dy in ((0.0, 0.0), (-HALF, 0.0), (HALF, 0.0), (0.0, -HALF), (0.0, HALF)):
        at = chain.to_alpha_beta(x + dx, y + dy)
        values += [*at, *chain.to_pivot(*at)]
    return fingerprint("miri", chain.pivot, repr(shape), slices, owner, *values)


def _corner_frames(chain: _Chain, shape: tuple[int, int], free: dict[str, np.ndarray], index: np.ndarray,
                   centre: tuple[np.ndarray, np.ndarray], lam: np.ndarray) -> dict[str, np.ndarray]:
    """The corner offset planes (float32, NaN off the pixels ``index``), one corner mapped to the sky
    at a time, its arrays dropped from ``free`` once used (``centre``: RA, Dec of the pixels
    ``index``; ``lam``: their λ at the pivot)."""
    frames = {}
    for k in range(1, 5):
        pivot = (free.pop(f"c{k}_1"), free.pop(f"c{k}_2"), free.pop(f"c{k}_3", lam))
        cra, cdec = chain.to_world(*pivot)[:2]
        del pivot
        offsets = corner_offsets(*centre, [cra, cdec] * 4)
        for axis in ("dra", "ddec"):
            frames[f"corner{k}_{axis}"] = scatter(shape, index, offsets[f"corner{k}_{axis}"], dtype=np.float32)
    return frames


def read_miri_frames(model: Any, name: str, path: Path) -> tuple[list[Cutout], dict[str, np.ndarray]]:
    """The exposure's marker cutout and full-frame planes (science + coordinates)."""
    wcs = input_wcs(model, path, "alpha_beta")
    shape = frame_shape(model, path)  # the science planes are read after the coordinates: not held while they are made
    channels, band = _channels(model, path)
    limits = {c: channel_limits(wcs, c) for c in channels}
    slices = label_map(model, wcs, shape, path)
    owner = np.broadcast_to(_channel_of_column(shape, limits), shape)
    chain = _Chain(wcs)
    free = load_or_make(_set_up_key(chain, shape, owner, slices),
                        lambda: _pointing_free(chain, shape, owner, len(channels)))
    world = chain.to_world(free["p1"], free["p2"], free["p3"])
    if not np.array_equal(world[2], free["p3"], equal_nan=True):
        # this exposure's pivot -> world changes λ: dwave, from the detector λ, may not be its own
        free = _pointing_free(chain, shape, owner, len(channels))[0]
        world = chain.to_world(free["p1"], free["p2"], free["p3"])

    mapped, finite = free.pop("mapped"), free.pop("finite")
    centre_pivot = (free.pop("p1"), free.pop("p2"), free.pop("p3"))
    ra, dec, lam = (scatter(shape, mapped, v) for v in world)
    del world
    index = mapped[finite]
    lam_valid = centre_pivot[2][finite]
    del centre_pivot, mapped
    corners = _corner_frames(chain, shape, free, index, (ra.ravel()[index], dec.ravel()[index]), lam_valid)
    dwave_frame = scatter(shape, index, free.pop("dwave"))
    widths = {c: float(free["widths"][k]) for k, c in enumerate(channels)}
    del free, lam_valid, index
    text, spectral = s_region(model)
    ifu = {
        "instrument": "MIRI",
        "bands": [[c, band] for c in channels],
        "shape": list(shape),
        "x_limits": {c: list(v) for c, v in limits.items()},
        "slice_width": widths,
        "footprint": {c: footprint(ra[:, s:e], dec[:, s:e], modulo=True) for c, (s, e) in limits.items()},
        "rotation": {c: _rotation(wcs, lam, slice(s, e)) for c, (s, e) in limits.items()},
        "s_region": text,
        "spectral_region": spectral,
    }
    planes = science_planes(model, path)
    planes.update({"wavelength": lam, "ra": ra, "dec": dec, "slice": slices.astype(np.int16), "dwave": dwave_frame})
    planes.update(corners)
    return [marker_cutout(model, name, path, ifu)], planes
