"""ATOCA: NIRISS SOSS order decontamination, as jwst 3.0.0's ``soss_extract`` does it.

The Tikhonov factor and the wavelength grid are fitted once, on the mean
integration with noise added back (seed 42, as the reference), then reused:

1. a rough order-1 spectrum from pixels where order 2 is faint gives a flux
   estimate (a cubic spline);
2. the decontamination grid: order 2's native grid where it overlaps order 1,
   then order 1's, then order 2's blue end, each oversampled by ``soss_n_os``
   and refined until the estimate integrates to ``soss_rtol``, at most
   ``soss_max_grid_size`` points;
3. orders 1 and 2 are modelled together (profiles from SPECPROFILE, kernels
   from SPECKERNEL, PASTASOSS throughputs) with a first-derivative Tikhonov
   term; ``soss_tikfac`` or the reference's d(chi2) search fixes its weight;
4. each order's model image is rebuilt from the joint solution convolved to
   that order's resolution; the blue part of order 2 (< 0.95 um) and order 3
   are then fitted alone (no kernel, unit throughput) where not yet modelled.

Per integration only step 3's solve (a sparse LU factorisation made once, the
error being the median error of the exposure as in the reference) and the
single-order fits (per-integration errors) are repeated, so the cost grows
linearly and slowly with integrations.  Contiguous ranges of integrations can
be modelled in parallel threads (:meth:`TraceModels.between`): each range has
its own copy of the masks, advanced to its first integration, so the models
are those of one pass in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.interpolate import UnivariateSpline
from scipy.sparse import csc_array, csr_array
from scipy.sparse.linalg import splu

from ...errors import InputError, Spec3cError
from .atoca_engine import Engine, MaskOverlapError, OrderInputs
from .atoca_grid import (
    Throughput,
    adaptive_combined_grid,
    oversample,
    pixel_edges,
    profile_weighted_grid,
)
from .atoca_kernel import ResolutionKernel
from .atoca_tikho import Mapper, NormalSystem, guess_factor, search_factor

if TYPE_CHECKING:
    from .box import InfilledCube
    from .reffiles import SossReferences

log = logging.getLogger("spec3c.step.extract_1d")

__all__ = ["AtocaFit", "AtocaOrder", "AtocaParams", "SpecKernel", "TraceModels",
           "other_orders", "trace_models"]

#: oversampling of the single-order grids (the reference's fixed value)
SINGLE_ORDER_OS = 3


@dataclass(frozen=True)
class SpecKernel:
    """SPECKERNEL content: (n_sub, n_kernels) ``wavelengths`` and ``kernels``, and ``halfwidth``."""

    wavelengths: np.ndarray
    kernels: np.ndarray
    halfwidth: int


@dataclass
class AtocaOrder:
    """One spectral order's detector model, arrays (ny, nx) unless stated.

    ``trace_wave`` is the trace wavelength per column 0..cutoff-1 (jwst
    ``DetectorModelOrder.trace``); ``box_weights`` the ``soss_width`` aperture.
    ``profile`` may be modified in place as the reference does (see
    :func:`~spec3c.modes.soss.atoca_grid.profile_weighted_grid`).
    """

    order: int
    wavemap: np.ndarray
    profile: np.ndarray
    throughput: Callable[[np.ndarray], np.ndarray]
    trace_wave: np.ndarray
    box_weights: np.ndarray
    kernel: ResolutionKernel | None = None

    def native_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Trace wavelengths (sorted) and their columns, finite values only."""
        cols = np.arange(self.trace_wave.size)
        ok = np.isfinite(self.trace_wave)
        wave, cols = self.trace_wave[ok], cols[ok]
        order = np.argsort(wave)
        return wave[order], cols[order]

    def grid_from_trace(self, n_os: int) -> np.ndarray:
        """Pixel-edge grid of the trace, oversampled ``n_os`` times."""
        wave, _ = self.native_grid()
        upper, lower = (np.sort(e[0]) for e in pixel_edges(wave[None, :]))
        return oversample(np.append(lower, upper[-1]), n_os)


@dataclass(frozen=True)
class AtocaParams:
    """The reference's ``soss_*`` modelling parameters."""

    n_os: int = 2
    rtol: float = 1e-4
    max_grid_size: int = 20000
    tikfac: float | None = None
    threshold: float = 1e-2
    wave_grid: np.ndarray | None = None
    estimate: Callable[[np.ndarray], np.ndarray] | None = None
    separation: tuple[float, float] = (0.77, 0.95)
    substrip96: bool = False


def order_kernel(kernel: SpecKernel, trace_wave: np.ndarray, nx: int) -> ResolutionKernel:
    """The order's resolution kernel from SPECKERNEL and its trace wavelengths."""
    centre = np.zeros(nx)
    centre[:trace_wave.size] = trace_wave
    centre[~np.isfinite(centre)] = 0.0
    return ResolutionKernel(kernel.wavelengths, kernel.kernels, centre, 2 * kernel.halfwidth + 1)


def other_orders(models: Mapping[int, np.ndarray], order: int) -> np.ndarray:
    """Sum of the finite models of every order but ``order`` (the contamination to subtract)."""
    shape = next(iter(models.values())).shape
    total = np.zeros(shape)
    for other, model in models.items():
        if other != order:
            total += np.where(np.isfinite(model), model, 0.0)
    return total


def _ones(wave: np.ndarray) -> np.ndarray:
    return np.ones_like(wave)


@dataclass
class _Masks:
    """The reference's masks, updated per integration as its Integration class does."""

    scimask: np.ndarray
    refmask: np.ndarray
    refmask_version: int = 0  # counts the updates that changed refmask

    def update(self, data: np.ndarray, error: np.ndarray) -> np.ndarray:
        """Fold non-finite pixels in (persistently, as jwst); return this image's mask."""
        bad = ~(np.isfinite(data) & np.isfinite(error))
        self.scimask |= bad
        if (self.refmask & bad).any():
            self.refmask &= ~bad
            self.refmask_version += 1
        with np.errstate(invalid="ignore"):
            return self.scimask | ~(error > 0)


@dataclass
class _SingleOrderCache:
    """Engines of a single-order fit, rebuilt only when the masks change."""

    masks: tuple[np.ndarray, np.ndarray] | None = None
    fit: Engine | None = None
    rebuild: Engine | None = None


@dataclass
class AtocaFit:
    """ATOCA state of one exposure: grid, Tikhonov factors and cached solvers.

    Build with :meth:`prepare`, then call :meth:`models` per integration.
    """

    orders: list[AtocaOrder]
    params: AtocaParams
    masks: _Masks
    mederr: np.ndarray
    wave_grid: np.ndarray = field(default_factory=lambda: np.empty(0))
    tikfacs: dict[int, float] = field(default_factory=dict)
    joint: Engine | None = None
    _solver: Callable[[np.ndarray], np.ndarray] | None = None
    _b_t: csr_array | None = None
    _rebuild: dict[int, Engine] = field(default_factory=dict)
    _single: dict[int, _SingleOrderCache] = field(default_factory=dict)
    _map: Mapper = map  # solves the Tikhonov factors of a search round (a thread pool's map)
    _traces: tuple[int, list[np.ndarray], np.ndarray] | None = None  # refmask version, trace masks, all

    @property
    def tikfac(self) -> float:
        """The order 1+2 Tikhonov factor (the product's ``tikhonov_factor``)."""
        return self.tikfacs[1]

    @classmethod
    def prepare(cls, scidata: np.ndarray, mederr: np.ndarray, scimask: np.ndarray,
                refmask: np.ndarray, orders: Sequence[AtocaOrder], params: AtocaParams,
                parallel_map: Mapper = map) -> AtocaFit:
        """Fit grid and Tikhonov factors on the mean integration plus noise (seed 42).

        Parameters
        ----------
        scidata : ndarray, (nint, ny, nx)
            Infilled science data (background subtracted when requested).
        mederr : ndarray, (ny, nx)
            Median error over integrations, inf at all-bad and reference pixels.
        scimask, refmask : ndarray of bool, (ny, nx)
            Pixels bad in every integration; reference pixels.
        orders : sequence of AtocaOrder
            Orders 1 and 2 first, then 3 if modelled.
        parallel_map : callable
            ``map`` for the independent solves of a Tikhonov search round.
        """
        nint = scidata.shape[0]
        # in the input's dtype (float32 for calints), as the reference averages and scales
        typical = np.mean(scidata, axis=0)
        rng = np.random.default_rng(seed=42)
        with np.errstate(invalid="ignore"):
            typical = typical + rng.normal(0, mederr * np.sqrt((nint - 1) / nint))
        fit = cls(list(orders), params, _Masks(scimask.copy(), refmask.copy()),
                  np.asarray(mederr, dtype=np.float64), _map=parallel_map)
        fit._fit_typical(typical)
        return fit

    def copy(self) -> AtocaFit:
        """A copy whose masks and single-order caches change independently of this fit's (the fitted
        grid, factors, joint factorisation and rebuild engines are shared, read only)."""
        return replace(self, masks=_Masks(self.masks.scimask.copy(), self.masks.refmask.copy(),
                                          self.masks.refmask_version),
                       tikfacs=dict(self.tikfacs), _rebuild=dict(self._rebuild),
                       _single={k: replace(v) for k, v in self._single.items()})

    def _trace_masks(self) -> list[np.ndarray]:
        """Each order's trace mask (outside its box, or a reference pixel), as the last refmask
        gave them: remade only when refmask changed (read only)."""
        return self._trace_state()[1]

    def _rebuild_mask(self) -> np.ndarray:
        """Pixels outside every order's trace (read only)."""
        return self._trace_state()[2]

    def _trace_state(self) -> tuple[int, list[np.ndarray], np.ndarray]:
        version = self.masks.refmask_version
        if self._traces is None or self._traces[0] != version:
            masks = [~(o.box_weights > 0) | self.masks.refmask for o in self.orders]
            self._traces = (version, masks, np.all(masks, axis=0))
        return self._traces

    def _fit_typical(self, typical: np.ndarray) -> None:
        image_mask = self.masks.update(typical, self.mederr)
        trace_masks = self._trace_masks()
        params = self.params
        estimate = params.estimate
        need_estimate = params.tikfac is None or params.wave_grid is None
        if need_estimate and estimate is None:
            estimate = self._estimate_order1(typical, image_mask, trace_masks[0])
        if params.wave_grid is None:
            assert estimate is not None
            self.wave_grid = self._decontamination_grid(estimate)
            log.info("ATOCA: wavelength grid %.4f-%.4f um, %d points", self.wave_grid.min(),
                     self.wave_grid.max(), self.wave_grid.size)
        else:
            self.wave_grid = np.asarray(params.wave_grid, dtype=np.float64)
        self.joint = Engine([self._inputs(o, m) for o, m in zip(self.orders[:2], trace_masks, strict=False)],
                            self.wave_grid, global_mask=image_mask, threshold=params.threshold,
                            parallel_map=self._map)
        system = NormalSystem(self.joint, typical, self.mederr, self._map)  # the search's and the factorisation's
        if params.tikfac is None:
            assert estimate is not None
            guess = guess_factor(self.joint, estimate)
            self.tikfacs[1] = search_factor(self.joint, typical, self.mederr, guess, (-4.0, 4.0), system=system,
                                            parallel_map=self._map)
        else:
            self.tikfacs[1] = params.tikfac
        self._factorise(system)
        # the single-order factors are searched even when soss_tikfac is given (as jwst)
        self._model(typical, self.mederr, image_mask, search=True)

    def _inputs(self, order: AtocaOrder, trace_mask: np.ndarray) -> OrderInputs:
        return OrderInputs(order.wavemap, order.profile, order.throughput, order.kernel, trace_mask)

    def _estimate_order1(self, data: np.ndarray, image_mask: np.ndarray,
                         trace_mask: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Spline of order 1 extracted where order 2's profile is below 1e-4 (no kernel)."""
        first, second = self.orders[0], self.orders[1]
        grid = oversample(profile_weighted_grid(first.wavemap, first.profile), 1)
        mask = (second.profile >= 1e-4) | trace_mask
        inputs = OrderInputs(first.wavemap, first.profile, first.throughput, None, mask)
        engine = Engine([inputs], grid, global_mask=image_mask)
        spectrum = engine.solve(data, self.mederr, None)
        ok = np.isfinite(spectrum)
        return UnivariateSpline(engine.wave_grid[ok], spectrum[ok], k=3, s=0, ext=0)

    def _decontamination_grid(self, estimate: Callable) -> np.ndarray:
        """Order 2 where shared with order 1, then order 1, then order 2's blue end."""
        grid2 = self.orders[1].grid_from_trace(self.params.n_os)
        grid1 = self.orders[0].grid_from_trace(self.params.n_os)
        shared = grid2 >= grid1.min()
        grid1 = grid1[grid1 > grid2[shared].min()]
        grids = [grid2[shared], grid1, grid2[~shared]]
        wave_range = (self.params.separation[0], float(grid1.max()))
        return adaptive_combined_grid(grids, [estimate, estimate, _ones], wave_range,
                                      self.params.rtol, self.params.max_grid_size)

    def _factorise(self, system: NormalSystem) -> None:
        """Factor (B'B + t^2 D'D) with the median error once, for every integration.

        The reference inverts this matrix densely; a sparse LU factor gives the
        same solution with two sparse triangular solves per integration.
        """
        self._b_t = csr_array(system.b_mat.T)  # B' by rows: the same sums as B'.x by columns, faster
        normal = csr_array(system.normal + self.tikfacs[1] ** 2 * system.t_sq)
        self._solver = splu(csc_array(normal)).solve

    def models(self, data: np.ndarray, error: np.ndarray) -> dict[int, np.ndarray]:
        """Model image of each order for one integration (NaN where not modelled).

        Parameters
        ----------
        data, error : ndarray, (ny, nx)
            The integration's infilled data and its errors (bad pixels 10x mederr).
        """
        image_mask = self.masks.update(data, error)
        return self._model(data, error, image_mask, search=False)

    def _model(self, data: np.ndarray, error: np.ndarray, image_mask: np.ndarray,
               search: bool) -> dict[int, np.ndarray]:
        trace_masks, rebuild_mask = self._trace_masks(), self._rebuild_mask()
        models = self._joint_models(data, rebuild_mask)
        if self.params.substrip96:
            return {**models, **{o.order: np.full(data.shape, np.nan) for o in self.orders[2:]}}
        for index, order in enumerate(self.orders[1:], start=1):
            fit_mask = trace_masks[index] | image_mask
            single = self._single_order(order, data, error, (fit_mask, rebuild_mask), search)
            models[order.order] = _merge(models.get(order.order), single)
        return models

    def _joint_models(self, data: np.ndarray, rebuild_mask: np.ndarray) -> dict[int, np.ndarray]:
        """Orders 1 and 2 from the joint solution, each at its own resolution."""
        joint = self.joint
        assert joint is not None and self._b_t is not None and self._solver is not None
        pixels = joint.pixels(data, self.mederr)
        flux = self._solver(self._b_t @ pixels)
        models: dict[int, np.ndarray] = {}
        for index, order in enumerate(self.orders[:2]):
            convolved = joint.kernels[index] @ flux
            if order.order not in self._rebuild:
                grid = joint.wave_grid_c(index)[np.isfinite(convolved)]
                inputs = OrderInputs(order.wavemap, order.profile, order.throughput, None,
                                     rebuild_mask)
                self._rebuild[order.order] = Engine([inputs], grid)
            engine = self._rebuild[order.order]
            models[order.order] = engine.rebuild(convolved[np.isfinite(convolved)], np.nan)
        return models  # orders past 2 have no joint model (NaN): see _merge(None, ...)

    def _single_order(self, order: AtocaOrder, data: np.ndarray, error: np.ndarray,
                      masks: tuple[np.ndarray, np.ndarray], search: bool) -> np.ndarray:
        """Order 2's blue end or order 3 alone: no kernel, unit throughput."""
        fit_mask, rebuild_mask = masks
        cache = self._single.setdefault(order.order, _SingleOrderCache())
        try:
            if cache.masks is None or not all(
                    np.array_equal(a, b) for a, b in zip(cache.masks, masks, strict=True)):
                grid = self._single_grid(order)
                cache.fit = Engine([OrderInputs(order.wavemap, order.profile, _ones, None,
                                                fit_mask)], grid)
                cache.masks = (fit_mask.copy(), rebuild_mask.copy())
                cache.rebuild = Engine([OrderInputs(order.wavemap, order.profile, _ones, None,
                                                    rebuild_mask)], grid)
        except MaskOverlapError:
            log.error("ATOCA: not enough unmasked pixels to model order %d alone; its model "
                      "is NaN there", order.order)
            return np.full(data.shape, np.nan)
        assert cache.fit is not None
        if search:
            self.tikfacs[order.order] = search_factor(cache.fit, data, error, self.tikfacs[1],
                                                      (-2.0, 8.0), parallel_map=self._map)
        assert cache.fit is not None and cache.rebuild is not None
        factor = self.tikfacs.get(order.order, self.tikfacs[1])
        flux = cache.fit.solve(data, error, factor)
        return cache.rebuild.rebuild(flux, np.nan)

    def _single_grid(self, order: AtocaOrder) -> np.ndarray:
        wave, _ = order.native_grid()
        if order.order == 2:
            wave = wave[wave < self.params.separation[1]]
        return oversample(wave, SINGLE_ORDER_OS)


def _merge(joint: np.ndarray | None, single: np.ndarray) -> np.ndarray:
    """The single-order model where the joint model is NaN, the joint model elsewhere (the nansum
    of the two where the joint model is infinite).  No joint model (None) is an all-NaN one:
    ``single`` itself is returned, made the nansum in place."""
    if joint is None:
        single += 0.0  # the sign of zero the nansum with NaN gives
        return single
    merged = joint + 0.0  # + 0.0: the sign of zero a nansum gives
    joint_nan = np.isnan(joint)
    merged[joint_nan] = single[joint_nan] + 0.0  # NaN where both are
    joint_inf = np.isinf(joint)
    if joint_inf.any():
        rest = single[joint_inf]
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, as the nansum gives it
            merged[joint_inf] += np.where(np.isnan(rest), 0.0, rest)
    return merged


def _read_wave_grid(path: str | None) -> np.ndarray | None:
    """``soss_wave_grid_in``: a SossWaveGridModel file's ``wavegrid``."""
    if path is None:
        return None
    from stdatamodels.jwst import datamodels  # noqa: PLC0415 - only when a file is given

    try:
        with datamodels.SossWaveGridModel(path) as model:
            return np.array(model.wavegrid, dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not a readable SOSS wavelength grid (soss_wave_grid_in): {exc}") from exc


def _read_estimate(path: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """``soss_estimate``: cubic spline through a SpecModel's finite FLUX against WAVELENGTH."""
    if path is None:
        return None
    from stdatamodels.jwst import datamodels  # noqa: PLC0415 - only when a file is given

    try:
        with datamodels.SpecModel(path) as model:
            wave = np.array(model.spec_table["WAVELENGTH"], dtype=np.float64)
            flux = np.array(model.spec_table["FLUX"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not a readable spectrum (soss_estimate): {exc}") from exc
    ok = np.isfinite(flux)
    return UnivariateSpline(wave[ok], flux[ok], k=3, s=0, ext=0)


def atoca_params(params: Mapping[str, Any], separation: Sequence[float], subarray: str) -> AtocaParams:
    """AtocaParams from the step's ``soss_*`` parameters (file parameters read here)."""
    tikfac = params.get("soss_tikfac")
    return AtocaParams(n_os=int(params.get("soss_n_os", 2)), rtol=float(params.get("soss_rtol", 1e-4)),
                       max_grid_size=int(params.get("soss_max_grid_size", 20000)),
                       tikfac=None if tikfac is None else float(tikfac),
                       threshold=float(params.get("soss_threshold", 1e-2)),
                       wave_grid=_read_wave_grid(params.get("soss_wave_grid_in")),
                       estimate=_read_estimate(params.get("soss_estimate")),
                       separation=(float(separation[0]), float(separation[1])),
                       substrip96=subarray == "SUBSTRIP96")


def atoca_orders(refs: SossReferences, pwcpos: float, subarray: str, orders: list[int],
                 shape: tuple[int, int], weights: Mapping[int, np.ndarray]) -> list[AtocaOrder]:
    """Each order's detector model from the PASTASOSS, SPECPROFILE and SPECKERNEL files."""
    from .traces import order_traces, profiles, wavemaps  # noqa: PLC0415 - avoid an import cycle

    traces = order_traces(refs, pwcpos, subarray, orders)
    maps = wavemaps(refs, pwcpos, subarray, orders, shape)
    profs = profiles(refs, orders, shape)
    kernel = SpecKernel(refs.kernel_wavelengths, refs.kernels, refs.kernel_halfwidth)
    out = []
    for order in orders:
        table = refs.order(order)
        trace_wave = np.asarray(traces[order].wavelength, dtype=np.float64)
        out.append(AtocaOrder(order, np.asarray(maps[order], dtype=np.float64),
                              np.array(profs[order], dtype=np.float64),
                              Throughput(table.throughput_wave, table.throughput), trace_wave,
                              np.asarray(weights[order], dtype=np.float64),
                              order_kernel(kernel, trace_wave, shape[1])))
    return out


class TraceModels:
    """Each integration's ``{order: model image}``; fits on first use.

    ``tikfac`` (order 1+2 Tikhonov factor) and ``wave_grid`` are available after
    :meth:`fit`.  Iterating gives every integration in order; :meth:`between`
    gives a range of them, and ranges may be modelled in parallel threads.
    """

    def __init__(self, scidata: np.ndarray, scierr: Sequence[Any], mederr: np.ndarray,
                 masks: tuple[np.ndarray, np.ndarray], orders: list[AtocaOrder],
                 params: AtocaParams, parallel_map: Mapper = map) -> None:
        self._scidata, self._scierr, self._mederr = scidata, scierr, mederr
        self._masks, self._orders, self._params = masks, orders, params
        self._map = parallel_map
        self._fit: AtocaFit | None = None

    def fit(self) -> AtocaFit:
        """The fitted state (grid, Tikhonov factors), computed once."""
        if self._fit is None:
            self._fit = AtocaFit.prepare(self._scidata, self._mederr, self._masks[0], self._masks[1],
                                         self._orders, self._params, self._map)
        return self._fit

    @property
    def tikfac(self) -> float:
        return self.fit().tikfac

    @property
    def wave_grid(self) -> np.ndarray:
        return self.fit().wave_grid

    def __len__(self) -> int:
        return len(self._scidata)

    def __iter__(self) -> Iterator[dict[int, np.ndarray]]:
        return self.between(0, len(self))

    def between(self, start: int, stop: int) -> Iterator[dict[int, np.ndarray]]:
        """The models of integrations ``start .. stop-1``, as one pass over every integration gives them.

        The masks persist from one integration to the next (as the reference's),
        so a copy of the fit first folds in the bad pixels of the integrations
        before ``start``; :meth:`fit` must have been called (it is not thread-safe).
        """
        fit = self.fit().copy()
        for i in range(start):
            fit.masks.update(*self._integration(i))
        for i in range(start, stop):
            yield fit.models(*self._integration(i))

    def _integration(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self._scidata[i], dtype=np.float64),
                np.asarray(self._scierr[i], dtype=np.float64))


def trace_models(cube: InfilledCube, refs: SossReferences, pwcpos: float, subarray: str,
                 orders: list[int], params: Mapping[str, Any],
                 box_weights: Mapping[int, np.ndarray] | None = None, parallel_map: Mapper = map) -> TraceModels:
    """ATOCA model of every order, per integration (the SOSS extract_1d hook).

    Parameters
    ----------
    cube : InfilledCube
        The exposure as the reference extracts it: infilled ``data`` (nint, ny, nx),
        ``error(i)`` (bad pixels at 10x ``mederr``), ``mederr`` (inf at all-bad and
        reference pixels), ``scimask`` and ``refmask`` (ny, nx).
    orders : list of int
        Orders to model: 1 and 2, and 3 when requested.
    params : mapping
        The step's ``soss_*`` parameters.
    box_weights : mapping of order to ndarray, optional
        The ``soss_width`` apertures (default: from the traces; on SUBSTRIP96
        order 2's is the whole array, as the reference's).
    parallel_map : callable
        ``map`` for the independent solves of the Tikhonov searches (e.g. a thread pool's).
    """
    if orders[:2] != [1, 2]:
        raise Spec3cError(f"ATOCA models orders 1 and 2 together; the PASTASOSS file {refs.paths[0]} "
                          f"gives orders {orders}")
    data = cube.data
    shape = (int(data.shape[1]), int(data.shape[2]))
    weights = dict(box_weights) if box_weights is not None else \
        _default_weights(refs, pwcpos, subarray, orders, float(params.get("soss_width", 40.0)), shape)
    models = atoca_orders(refs, pwcpos, subarray, orders, shape, weights)
    settings = atoca_params(params, refs.order2_separation_cutoff, subarray)
    errors = [_LazyError(cube, i) for i in range(data.shape[0])]
    return TraceModels(data, errors, cube.mederr, (np.array(cube.scimask, dtype=bool),
                                                   np.array(cube.refmask, dtype=bool)), models, settings,
                       parallel_map)


class _LazyError:
    """Integration i's errors, built when read."""

    def __init__(self, cube: InfilledCube, index: int) -> None:
        self.cube, self.index = cube, index

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.cube.error(self.index), dtype=dtype)


def _default_weights(refs: SossReferences, pwcpos: float, subarray: str, orders: list[int],
                     width: float, shape: tuple[int, int]) -> dict[int, np.ndarray]:
    from .box import box_weights  # noqa: PLC0415
    from .traces import order_traces  # noqa: PLC0415

    traces = order_traces(refs, pwcpos, subarray, orders)
    weights = {o: box_weights(t.y, width, shape, t.x) for o, t in traces.items()}
    if subarray == "SUBSTRIP96" and 2 in weights:
        weights[2] = np.ones(shape)
    return weights
