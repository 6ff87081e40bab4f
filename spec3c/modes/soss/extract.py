"""extract_1d of a NIRISS SOSS time series: every order of every integration.

What the reference does (``Extract1dStep._extract_soss`` and
``soss_extract.run_extract1d``, jwst 3.0.0), here with box extraction as the
product and ATOCA as an optional decontamination before it:

* only the CLEAR filter and the SUBSTRIP256/SUBSTRIP96 subarrays are
  extracted (otherwise the step is SKIPPED);
* orders 1, 2 and 3 (``soss_order_3``; SUBSTRIP96: 1 and 2), those the
  PASTASOSS file lacks dropped with a warning;
* the traces at the exposure's pupil-wheel position (:mod:`.traces`), a box
  of ``soss_width`` pixels along each (SUBSTRIP96: order 2's box is the
  whole array, as the reference has it);
* bad pixels of single integrations filled in time, pixels bad in every
  integration masked (:mod:`.box`);
* with ``soss_atoca`` (or ``soss_bad_pix="model"``), :func:`spec3c.modes.soss.atoca.trace_models`
  models each order of each integration; the other orders' models are
  subtracted before an order is box-extracted (whenever they are modelled,
  as in the reference) and with ``soss_bad_pix="model"`` an order's masked
  pixels take its own model;
* no background is subtracted unless ``subtract_background`` is true (the
  reference's SOSS background model is not implemented: an error says so).

Integrations are independent once ATOCA's grid and Tikhonov factors are
fitted: ``threads`` contiguous ranges of them are extracted in parallel
threads (the sparse solves and most numpy work release the GIL), with the
results of one pass in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...config import Extract1dParams
from ...errors import Spec3cError
from .box import InfilledCube, box_weights, extract_integration, infill
from .reffiles import SossReferences
from .traces import order_traces

__all__ = ["SossExtraction", "extract_soss", "skip_reason", "soss_orders"]

log = logging.getLogger("spec3c.step.extract_1d")

SUBARRAYS = ("SUBSTRIP256", "SUBSTRIP96")


@dataclass
class SossExtraction:
    """Every order's spectra: ``wavelength[order]`` ``(n,)``; ``flux``, ``flux_error``,
    ``npixels``, ``background`` ``[order]`` ``(nints, n)`` in DN/s (columns ``0 .. cutoff-1``);
    ``conversion[order]`` ``(n,)``: the photom factor applied to the order (MJy per DN/s), if any."""

    orders: list[int]
    wavelength: dict[int, np.ndarray]
    flux: dict[int, np.ndarray]
    flux_error: dict[int, np.ndarray]
    npixels: dict[int, np.ndarray]
    background: dict[int, np.ndarray] = field(default_factory=dict)
    conversion: dict[int, np.ndarray] = field(default_factory=dict)
    decontaminated: bool = False
    tikfac: float | None = None


def skip_reason(filter_name: str | None, subarray: str | None) -> str | None:
    """Why the reference skips SOSS extraction of these data, or None."""
    if str(filter_name or "").upper() != "CLEAR":
        return f"the SOSS extraction is implemented for the CLEAR filter only, not {filter_name}"
    if str(subarray or "").upper() not in SUBARRAYS:
        return f"the SOSS extraction is implemented for SUBSTRIP256 and SUBSTRIP96 only, not {subarray}"
    return None


def soss_orders(refs: SossReferences, subarray: str, order_3: bool) -> list[int]:
    """The orders extracted: 1, 2 (and 3 on SUBSTRIP256), those of the PASTASOSS file."""
    wanted = [1, 2, 3] if order_3 and subarray != "SUBSTRIP96" else [1, 2]
    have = [o for o in wanted if o in refs.order_numbers]
    if not have:
        raise Spec3cError(f"PASTASOSS file {refs.paths[0]} defines none of the orders {wanted} "
                          f"(it has {refs.order_numbers})")
    if len(have) < len(wanted):
        log.warning("PASTASOSS file %s lacks order(s) %s: extracting %s", refs.paths[0],
                    sorted(set(wanted) - set(have)), have)
    return have


def _atoca(cube: InfilledCube, refs: SossReferences, pwcpos: float, subarray: str, orders: list[int],
           params: Extract1dParams, weights: dict[int, np.ndarray], parallel_map: Callable) -> Any:
    """The fitted ATOCA models (a :class:`~.atoca.TraceModels`), or None when not asked for."""
    if not (params.soss_atoca or params.soss_bad_pix == "model"):
        return None
    from .atoca import trace_models  # noqa: PLC0415 - its scipy.sparse machinery only when asked for

    models = trace_models(cube, refs, pwcpos, subarray, orders, params.soss_params(), box_weights=weights,
                          parallel_map=parallel_map)
    models.fit()  # once, before the integrations are shared out
    return models


def _save_wave_grid(path: str, grid: np.ndarray) -> None:
    """``soss_wave_grid_out``: the ATOCA wavelength grid as a SossWaveGridModel file (float64)."""
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    with dm.SossWaveGridModel(wavegrid=np.asarray(grid, dtype=np.float64)) as model:
        model.save(path)
    log.info("SOSS: wavelength grid written to %s", path)


def extract_soss(cube: Mapping[str, np.ndarray], refs: SossReferences, pwcpos: float, subarray: str,
                 params: Extract1dParams, threads: int = 1, overwrite_input: bool = False) -> SossExtraction:
    """Box spectra of every order and integration of the ``cube`` planes ``sci`` (DN/s), ``err`` and
    ``dq`` (each ``(nints, ny, nx)``), the integrations shared among ``threads`` threads
    (``overwrite_input``: ``sci`` is infilled in place)."""
    sci, err, dq = cube["sci"], cube["err"], cube["dq"]
    if params.subtract_background:
        raise Spec3cError("--steps.extract_1d.subtract_background=true is not implemented for NIRISS SOSS yet "
                          "(the reference's background model of the SOSS detector)")
    orders = soss_orders(refs, subarray, params.soss_order_3)
    traces = order_traces(refs, pwcpos, subarray, orders)
    shape = sci.shape[1:]
    weights = {o: box_weights(t.y, params.soss_width, shape, t.x) for o, t in traces.items()}
    if subarray == "SUBSTRIP96" and 2 in weights:
        weights[2] = np.ones(shape)  # the reference's order-2 box on SUBSTRIP96: the whole array
    cutoffs = {o: len(t.x) for o, t in traces.items()}
    filled = infill(sci, err, dq, overwrite=overwrite_input)
    n = sci.shape[0]
    out = SossExtraction(orders, {o: traces[o].wavelength for o in orders},
                         {o: np.empty((n, cutoffs[o])) for o in orders},
                         {o: np.empty((n, cutoffs[o])) for o in orders},
                         {o: np.empty((n, cutoffs[o])) for o in orders})
    threads = max(1, min(threads, n))
    with ThreadPoolExecutor(threads, thread_name_prefix="spec3c-soss") as pool:
        atoca = _atoca(filled, refs, pwcpos, subarray, orders, params, weights,
                       pool.map if threads > 1 else map)
        stop = threading.Event()

        def extract_range(bounds: tuple[int, int]) -> None:
            models = atoca.between(*bounds) if atoca is not None else None
            for i in range(*bounds):
                if stop.is_set():
                    return
                _extract_one(out, i, filled, weights, cutoffs, None if models is None else next(models),
                             params.soss_bad_pix == "model")

        try:
            list(pool.map(extract_range, _ranges(n, threads)))
        finally:
            stop.set()  # an error or Ctrl-C: the other threads stop at their next integration
    out.background = {o: np.zeros_like(out.flux[o]) for o in orders}  # no background model subtracted
    out.decontaminated = bool(params.soss_atoca)
    if atoca is not None:
        out.tikfac = float(atoca.tikfac)
        if params.soss_wave_grid_out:
            _save_wave_grid(params.soss_wave_grid_out, atoca.wave_grid)
    return out


def _ranges(n: int, parts: int) -> Iterator[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``0 .. n-1``, sizes differing by at most one."""
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return ((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a)


def _extract_one(out: SossExtraction, i: int, cube: InfilledCube, weights: dict[int, np.ndarray],
                 cutoffs: dict[int, int], models: dict[int, np.ndarray] | None, model_bad_pixels: bool) -> None:
    """Integration ``i``'s spectra of every order into row ``i`` of ``out``."""
    spectra = extract_integration(cube.data[i], cube.error(i), cube.scimask, weights, cutoffs,
                                  models=models, model_bad_pixels=model_bad_pixels)
    for o, s in spectra.items():
        out.flux[o][i], out.flux_error[o][i], out.npixels[o][i] = s.flux, s.flux_error, s.npixels
