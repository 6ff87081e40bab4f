"""The SOSS reference files of extract_1d, read once into plain arrays.

PASTASOSS (trace points at the commanded pupil-wheel position, rotation
pivots, wavelength polynomials, throughputs, the wavelength-map grid),
SPECPROFILE (a spatial profile per order) and SPECKERNEL (spectral resolution
kernels), in the jwst formats (stdatamodels ``PastasossModel``,
``SpecProfileModel``, ``SpecKernelModel``).  Orders are listed in the
PASTASOSS file's order, and SPECPROFILE profiles are matched to them by
position, as the reference matches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError

__all__ = ["PastasossOrder", "SossReferences", "read_soss_references"]


@dataclass(frozen=True)
class PastasossOrder:
    """One order of a PASTASOSS file.

    ``trace``: ``(n, 2)`` reference points (x, y) at the commanded position,
    SUBSTRIP256 rows; ``pivot``: the rotation centre; ``cutoff``: the order
    covers columns ``0 .. cutoff-1``; ``wave_coefficients``/``scale_extents``:
    the wavelength polynomial of (scaled column, scaled pupil-wheel offset);
    ``throughput_wave``/``throughput``: the order's throughput curve.
    """

    order: int
    trace: np.ndarray
    pivot: tuple[float, float]
    cutoff: int
    short_cutoff: float | None
    wave_coefficients: np.ndarray
    scale_extents: np.ndarray
    throughput_wave: np.ndarray
    throughput: np.ndarray


@dataclass(frozen=True)
class SossReferences:
    """The three SOSS reference files of extract_1d (see the module docstring)."""

    orders: tuple[PastasossOrder, ...]
    pwcpos_cmd: float
    pwcpos_bounds: tuple[float, float] | None
    wave_grid: tuple[float, float, int]
    soss_dims: tuple[int, int]
    subarray_ymin: int
    order2_separation_cutoff: tuple[float, float]
    profiles: tuple[np.ndarray, ...]
    kernel_wavelengths: np.ndarray
    kernels: np.ndarray
    kernel_halfwidth: int
    paths: tuple[str, str, str]

    def order_index(self, order: int) -> int:
        """Position of ``order`` in the PASTASOSS lists (and the SPECPROFILE list)."""
        for i, o in enumerate(self.orders):
            if o.order == order:
                return i
        raise KeyError(order)

    def order(self, order: int) -> PastasossOrder:
        return self.orders[self.order_index(order)]

    @property
    def order_numbers(self) -> list[int]:
        return [o.order for o in self.orders]


def _by_order(entries: Any) -> dict[int, Any]:
    return {int(e.spectral_order): e for e in entries}


def _read_pastasoss(path: str) -> dict[str, Any]:
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415 - stdatamodels is slow to import

    try:
        model = dm.PastasossModel(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's problem
        raise InputError(path, f"not a readable PASTASOSS reference file: {exc}") from exc
    with model:
        wavecal, thru = _by_order(model.wavecal_models), _by_order(model.throughputs)
        orders = []
        for t in model.traces:
            n = int(t.spectral_order)
            if n not in wavecal or n not in thru:
                raise InputError(path, f"order {n} has a trace but no wavecal model or throughput")
            orders.append(PastasossOrder(
                n, np.array(t.trace, dtype=np.float64), (float(t.pivot_x), float(t.pivot_y)), int(t.cutoff),
                None if getattr(t, "short_cutoff", None) is None else float(t.short_cutoff),
                np.array(wavecal[n].coefficients, dtype=np.float64),
                np.array(wavecal[n].scale_extents, dtype=np.float64),
                np.array(thru[n].wavelength, dtype=np.float64), np.array(thru[n].throughput, dtype=np.float64)))
        m = model.meta
        bounds = m.pwcpos_bounds
        return {
            "orders": tuple(orders), "pwcpos_cmd": float(m.pwcpos_cmd),
            "pwcpos_bounds": None if bounds is None or len(bounds) != 2 else (float(bounds[0]), float(bounds[1])),
            "wave_grid": (float(m.wavemap_wlmin), float(m.wavemap_wlmax), int(m.wavemap_nwl)),
            "soss_dims": (int(m.soss_xdim), int(m.soss_ydim)), "subarray_ymin": int(m.subarray_ymin),
            "order2_separation_cutoff": tuple(float(v) for v in (m.order2_separation_cutoff or (0.77, 0.95))),
        }


def _read_specprofile(path: str) -> tuple[np.ndarray, ...]:
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    try:
        with dm.SpecProfileModel(path) as model:
            return tuple(np.array(p.data, dtype=np.float64) for p in model.profile)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"not a readable SPECPROFILE reference file: {exc}") from exc


def _read_speckernel(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    try:
        with dm.SpecKernelModel(path) as model:
            return (np.array(model.wavelengths, dtype=np.float64), np.array(model.kernels, dtype=np.float64),
                    int(model.meta.halfwidth))
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"not a readable SPECKERNEL reference file: {exc}") from exc


def read_soss_references(pastasoss: str | Path, specprofile: str | Path, speckernel: str | Path) -> SossReferences:
    """Read the three files; an :class:`InputError` naming the file when one is unreadable or incomplete."""
    paths = (str(pastasoss), str(specprofile), str(speckernel))
    past = _read_pastasoss(paths[0])
    profiles = _read_specprofile(paths[1])
    if len(profiles) < len(past["orders"]):
        raise InputError(paths[1], f"{len(profiles)} profile(s) for the {len(past['orders'])} orders of "
                                   f"{Path(paths[0]).name}")
    wavelengths, kernels, halfwidth = _read_speckernel(paths[2])
    return SossReferences(profiles=profiles, kernel_wavelengths=wavelengths, kernels=kernels,
                          kernel_halfwidth=halfwidth, paths=paths, **past)
