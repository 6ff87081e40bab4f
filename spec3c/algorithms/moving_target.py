"""Moving-target alignment (assign_mtwcs, ALGORITHMS.md §5): arrays and gwcs only.

A moving-target observation tracks the target, so in every exposure the
target sits at its planned place in the slit while its sky coordinates follow
the ephemeris (``MT_RA``/``MT_DEC`` at the exposure mid-point).  To stack the
exposures, every exposure's sky coordinates are moved to the mean ephemeris
position by a pure additive shift in (RA, Dec)::

    RA'  = RA  + (mt_avra  - mt_ra)
    Dec' = Dec + (mt_avdec - mt_dec)

with no cos(Dec) factor, as the reference.  Two details differ from a literal
reading of the reference only when the ephemeris straddles RA = 0°: the mean RA
is taken on RA unwrapped about the first value, and RA differences are taken
in (-180°, 180°].  Otherwise the numbers are the same.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
from astropy.modeling.models import Identity, Shift
from gwcs import WCS
from gwcs import coordinate_frames as cf

__all__ = ["FRAME", "add_moving_target_frame", "frame_offset", "mean_position", "ra_difference",
           "shift_coordinates"]

#: name of the frame appended after ``world`` (resample_spec looks it up by name)
FRAME = "moving_target"


def ra_difference(ra_to: float, ra_from: float) -> float:
    """``ra_to - ra_from`` in degrees, wrapped to [-180, 180)."""
    return (float(ra_to) - float(ra_from) + 180.0) % 360.0 - 180.0


def mean_position(
    mt_ra: Sequence[float | None], mt_dec: Sequence[float | None]
) -> tuple[float, float] | None:
    """Mean ephemeris position (``mt_avra``, ``mt_avdec``) in degrees.

    Parameters
    ----------
    mt_ra, mt_dec : sequences of float or None, same length >= 1
        ``MT_RA``/``MT_DEC`` of each science exposure (degrees).

    Returns
    -------
    (float, float) or None
        The means, RA in [0, 360); None when a value is missing (None or NaN)
        or the sequences are empty.
    """
    if len(mt_ra) != len(mt_dec):
        raise ValueError(f"mt_ra and mt_dec differ in length ({len(mt_ra)} != {len(mt_dec)})")
    if not mt_ra or any(_missing(v) for v in (*mt_ra, *mt_dec)):
        return None
    ra0 = float(mt_ra[0])  # type: ignore[arg-type]
    dra = [ra_difference(float(r), ra0) for r in mt_ra]  # type: ignore[arg-type]
    avra = (ra0 + math.fsum(dra) / len(dra)) % 360.0
    avdec = math.fsum(float(d) for d in mt_dec) / len(mt_dec)  # type: ignore[arg-type]
    return avra, avdec


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def shift_coordinates(
    ra: np.ndarray, dec: np.ndarray, mt_ra: float, mt_dec: float, avra: float, avdec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sky coordinates of one exposure moved to the mean ephemeris position.

    Parameters
    ----------
    ra, dec : float64 arrays, any (same) shape
        Degrees; NaN stays NaN.
    mt_ra, mt_dec : float
        The exposure's ephemeris position (degrees).
    avra, avdec : float
        The mean ephemeris position (:func:`mean_position`).

    Returns
    -------
    (ra', dec') : float64 arrays of the input shape
        ``ra + (avra - mt_ra)`` wrapped to [0, 360), ``dec + (avdec - mt_dec)``.
    """
    dra, ddec = ra_difference(avra, mt_ra), float(avdec) - float(mt_dec)
    ra_out = np.mod(np.asarray(ra, dtype=np.float64) + dra, 360.0)
    dec_out = np.asarray(dec, dtype=np.float64) + ddec
    return ra_out, dec_out


def frame_offset(wcs: WCS) -> tuple[float, float]:
    """(dRA, dDec) degrees that ``wcs``'s ``world -> moving_target`` step adds ((0, 0) without one)."""
    if FRAME not in wcs.available_frames:
        return 0.0, 0.0
    transform = wcs.get_transform(wcs.available_frames[-2], FRAME)
    n = transform.n_inputs
    out = transform(*([0.0] * n))
    return float(out[0]), float(out[1])


def add_moving_target_frame(wcs: WCS, mt_ra: float, mt_dec: float, avra: float, avdec: float) -> WCS:
    """A copy of ``wcs`` with a ``moving_target`` frame appended after its output frame.

    As the reference's ``add_mt_frame``: the new frame is a copy of the output
    frame (``world``) renamed ``moving_target``; the transform is
    ``Shift(avra - mt_ra) & Shift(avdec - mt_dec)`` for a celestial frame and
    ``... & Identity(1)`` (wavelength unchanged) for a composite (spectral)
    frame.  A ``moving_target`` frame already present is replaced.

    Parameters
    ----------
    wcs : gwcs.WCS
        ``detector -> ... -> world`` (not modified).
    mt_ra, mt_dec : float
        Ephemeris position of this exposure (degrees).
    avra, avdec : float
        Mean ephemeris position over the association (degrees).

    Returns
    -------
    gwcs.WCS
        ``detector -> ... -> world -> moving_target``.
    """
    steps = [(s.frame, s.transform) for s in copy.deepcopy(wcs).pipeline]
    if steps[-1][0].name == FRAME:
        steps = steps[:-1]
        steps[-1] = (steps[-1][0], None)
    world = steps[-1][0]
    shift = Shift(ra_difference(avra, mt_ra)) & Shift(float(avdec) - float(mt_dec))
    if isinstance(world, cf.CelestialFrame):
        transform = shift
    elif isinstance(world, cf.CompositeFrame):
        transform = shift & Identity(1)
    else:
        raise TypeError(f"add_moving_target_frame: output frame {world.name!r} is a "
                        f"{type(world).__name__}; expected a CelestialFrame or CompositeFrame")
    moving = copy.deepcopy(world)
    moving.name = FRAME
    steps[-1] = (world, transform)
    steps.append((moving, None))
    return WCS(steps)
