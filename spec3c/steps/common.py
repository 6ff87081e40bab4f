"""Pieces several steps share: DQ masks, drizzle weights and data scaling of one input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import dqflags
from .context import SourceInputs

#: resample_spec's hard-coded good bits: everything but DO_NOT_USE and NON_SCIENCE
RESAMPLE_BAD_BITS = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


def good_pixels(dq: np.ndarray, bad_bits: int) -> np.ndarray:
    return (dq & np.uint32(bad_bits)) == 0


def parse_bad_bits(good_bits: str) -> int:
    """DQ bits excluded by a ``~NAME+NAME`` good-bits string (only the inverted form is used)."""
    text = good_bits.strip()
    if not text.startswith("~"):
        raise ValueError(f"good_bits {good_bits!r}: only the '~FLAG+FLAG' form is supported")
    bits = 0
    for name in text[1:].split("+"):
        value = getattr(dqflags, name.strip().upper(), None)
        if value is None:
            raise ValueError(f"good_bits {good_bits!r}: unknown flag {name!r}")
        bits |= value
    return bits


def input_weight(inputs: SourceInputs, k: int, weight_type: str | None, bad_bits: int) -> np.ndarray:
    """Drizzle weight of input ``k``: DQ mask x (1/VAR_RNOISE | exposure time | 1)."""
    planes = inputs.cutouts[k].planes
    mask = good_pixels(planes["dq"], bad_bits).astype(np.float32)
    kind = (weight_type or "none").lower()
    if kind == "ivm":
        with np.errstate(divide="ignore", invalid="ignore"):
            ivm = 1.0 / planes["var_rnoise"].astype(np.float32)
        ivm[~np.isfinite(ivm)] = 0.0
        return mask * ivm
    if kind == "exptime":
        return mask * np.float32(inputs.exposure_time(k))
    return mask


def data_scale(inputs: SourceInputs, k: int, pixel_scale_ratio: float) -> float:
    """``iscale``: 1/psr for flux-density data (NIRSpec point sources in MJy), else 1."""
    nominal_area = inputs.cutouts[k].meta.get("meta.photometry.pixelarea_steradians") or \
        inputs.exposure_meta(k).get("meta.photometry.pixelarea_steradians")
    unit = inputs.bunit(k).replace(" ", "").lower()
    if nominal_area and unit in ("mjy", "jy", "ujy") and pixel_scale_ratio != 1.0:
        return 1.0 / pixel_scale_ratio
    return 1.0


def background_level(inputs: SourceInputs, k: int, backg: float) -> float:
    """The level to subtract before flagging: a recorded, unsubtracted background, else ``backg``."""
    meta = inputs.exposure_meta(k)
    if meta.get("meta.background.subtracted") is False and meta.get("meta.background.level") is not None:
        return float(meta["meta.background.level"])
    return backg


def apcorr_keys(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What an APCORR row is matched on (filter, grating, pupil, subarray), from an exposure's flat metadata."""
    return {"filter": meta.get("meta.instrument.filter"), "grating": meta.get("meta.instrument.grating"),
            "pupil": meta.get("meta.instrument.pupil"), "subarray": meta.get("meta.subarray.name")}
