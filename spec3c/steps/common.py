"""What every slit-mode step shares: one source's inputs, weights, pixmaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dqflags
from ..algorithms.lrs_grid import LrsGrid, build_lrs_grid
from ..algorithms.slit_grid import GridInput, GridOptions, SlitGrid, build_slit_grid
from ..ingest.coords import wcs_from_asdf
from ..results import COMPLETE
from ..store import Cutout, ExposureRecord

#: MIRI LRS: dispersion along detector y, interpolated output grid
LRS_EXP_TYPES = ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS")

#: resample_spec's hard-coded good bits: everything but DO_NOT_USE and NON_SCIENCE
RESAMPLE_BAD_BITS = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


@dataclass(frozen=True)
class StepOutcome:
    """Status of one step for one source (S_<STEP> keyword values)."""

    status: str = COMPLETE
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceInputs:
    """One source's science cutouts (planes are updated in place by the steps)."""

    source: str
    cutouts: list[Cutout]
    exposures: dict[str, ExposureRecord]
    _wcs: dict[int, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.cutouts)

    def wcs(self, k: int):  # type: ignore[no-untyped-def]
        """gwcs of input ``k`` (deserialised once, only when needed)."""
        if k not in self._wcs:
            self._wcs[k] = wcs_from_asdf(self.cutouts[k].wcs_asdf)
        return self._wcs[k]

    def exposure_meta(self, k: int) -> dict[str, Any]:
        return self.exposures[self.cutouts[k].exposure].meta

    def group_ids(self) -> list[str]:
        """Exposure group of each input (``meta.group_id``, else the exposure name)."""
        return [str(self.exposure_meta(k).get("meta.group_id") or c.exposure) for k, c in enumerate(self.cutouts)]

    def grid_inputs(self) -> list[GridInput]:
        return [
            GridInput(c.planes["sci"], c.planes["dq"], c.planes["wavelength"], c.planes["ra"],
                      c.planes["dec"], c.planes["slit_y"])
            for c in self.cutouts
        ]

    def exp_type(self, k: int = 0) -> str:
        return self.exposures[self.cutouts[k].exposure].exp_type

    def build_grid(self, options: GridOptions) -> SlitGrid | LrsGrid:
        """The output grid: NIRSpec slit builder, or the interpolated builder for MIRI LRS."""
        exp_type = self.exp_type()
        if exp_type in LRS_EXP_TYPES:
            return build_lrs_grid(self.grid_inputs(), options, self.wcs, exp_type=exp_type)
        return build_slit_grid(self.grid_inputs(), self.wcs, options)

    def pixmap(self, grid: SlitGrid | LrsGrid, k: int) -> np.ndarray:
        p = self.cutouts[k].planes
        return grid.pixmap(p["ra"], p["dec"], p["wavelength"])

    def exposure_time(self, k: int) -> float:
        meta = self.exposure_meta(k)
        for key in ("meta.exposure.measurement_time", "meta.exposure.exposure_time"):
            if meta.get(key):
                return float(meta[key])
        return 1.0

    def bunit(self, k: int) -> str:
        c = self.cutouts[k]
        return str(c.meta.get("meta.bunit_data") or self.exposure_meta(k).get("meta.bunit_data") or "")


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
