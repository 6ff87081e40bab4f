"""The ATOCA linear model of the detector (jwst ``atoca.ExtractionEngine``).

Pixel i of order n sees ``P_i / sigma_i * sum_k w_ik (T lambda C_n f)_k``:
the spatial profile P, the pixel's integration weights w over the wavelength
grid, the throughput T, the wavelength, the convolution matrix C_n of the
order's resolution kernel and the flux f on the grid.  The sum over orders is
one sparse matrix B; f solves ``(B'B + t^2 D'D) f = B' d`` with the
first-derivative Tikhonov operator D.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csc_array, csr_array, diags_array
from scipy.sparse.linalg import lsqr, splu

from ..._core.normaleq import ScaledNormalEquations, product
from .atoca_grid import first_derivative, pixel_edges
from .atoca_kernel import convolution_matrix

log = logging.getLogger("spec3c.step.extract_1d")

__all__ = ["ColumnOrdering", "Engine", "MaskOverlapError", "OrderInputs", "openmp_threads", "solve_normal"]

#: an order with fewer unmasked pixels cannot be modelled (the reference's value)
MIN_GOOD_PIXELS = 25


class MaskOverlapError(ValueError):
    """Too few valid pixels to model a spectral order."""


@dataclass(frozen=True)
class OrderInputs:
    """What the engine needs of one order; arrays are (ny, nx)."""

    wavemap: np.ndarray
    profile: np.ndarray
    throughput: Callable[[np.ndarray], np.ndarray]
    kernel: Callable | None
    trace_mask: np.ndarray


def openmp_threads(parallel_map: Callable) -> int:
    """OpenMP threads for a compiled kernel run where ``parallel_map`` may run work: one beside plain
    ``map``, OpenMP's default (``OMP_NUM_THREADS``) beside a thread pool's."""
    return 1 if parallel_map is map else 0


def _restrict(matrix: csr_array | csc_array, idx: np.ndarray) -> csc_array:
    """Rows and columns ``idx`` of a square matrix (row slicing in CSR, columns in CSC)."""
    if idx.size == matrix.shape[0]:
        return csc_array(matrix)
    return csc_array(csr_array(matrix)[idx]).tocsc()[:, idx]


class ColumnOrdering:
    """COLAMD's column order of one sparsity pattern, kept for the next matrices of that pattern.

    COLAMD depends on the pattern only, and SuperLU's final column order (COLAMD's,
    postordered) is its own fixed point: a matrix whose columns are already in it,
    factored with the NATURAL ordering, goes through the same operations, so the
    solution is the same bit for bit (tested), without the ordering's cost (~25 %
    of a factorisation of the benchmark's 8304-point systems).  Matrices of another
    pattern are factored with COLAMD.  Safe to share between threads.
    """

    def __init__(self) -> None:
        # indptr, indices, the order and its inverse (the column of the original at each position)
        self._known: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def solve(self, sub: csc_array, rhs: np.ndarray) -> np.ndarray:
        """``sub x = rhs`` by SuperLU's LU with COLAMD ordering (RuntimeError if singular)."""
        sub.sort_indices()  # as splu does: the pattern compared in canonical form
        known = self._known
        if known is not None and np.array_equal(known[0], sub.indptr) and np.array_equal(known[1], sub.indices):
            order, inverse = known[2], known[3]
            solution = splu(csc_array(sub[:, inverse]), permc_spec="NATURAL").solve(rhs)
            return solution[order]
        lu = splu(sub, permc_spec="COLAMD")
        order = lu.perm_c.copy()
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.size)
        self._known = (sub.indptr.copy(), sub.indices.copy(), order, inverse)
        return lu.solve(rhs)


def solve_normal(matrix: csr_array | csc_array, rhs: np.ndarray, ordering: ColumnOrdering | None = None) -> np.ndarray:
    """Solve the normal equations ``matrix x = rhs`` on the rows where rhs != 0 (NaN elsewhere).

    Sparse LU, least squares if singular (the reference's spsolve then lsqr).
    SuperLU's factorisation and solve are spsolve's own (COLAMD ordering, the
    same drivers: bit-identical solutions), but a singular factor raises here
    instead of warning, so no process-wide warning filter is touched and
    threads may solve at the same time.  ``ordering``: the column order of
    earlier systems of the same pattern, reused (:class:`ColumnOrdering`).
    """
    solution = np.full(rhs.shape[-1], np.nan)
    idx = np.nonzero(rhs)[0]
    sub = _restrict(matrix, idx)
    try:
        solution[idx] = (ordering or ColumnOrdering()).solve(sub, rhs[idx])
    except RuntimeError as exc:
        if "singular" not in str(exc):
            raise
        log.warning("ATOCA: singular system, solved by least squares instead")
        solution[idx] = lsqr(sub, rhs[idx])[0]
    return solution


def _weights_arrays(grid: np.ndarray, wm: np.ndarray, wp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integration weights of pixels [wm, wp] on ``grid`` as the reference computes them.

    The reference's node range starts one node below the pixel's first node
    (``lo - 1``); its weights sum to the pixel width (constants integrate
    exactly) but lean to the blue, so a linear flux is integrated to first order
    in the grid step.  Kept as is: model and fit use the same weights, and the
    products are the reference's.

    Returns weights and grid indices, (n_pix, max_nodes), index -1 = unused.
    """
    dg = np.diff(grid)
    lo = np.searchsorted(grid, wm, side="right") - 1
    hi = np.searchsorted(grid, wp) - 1
    first = np.where(grid[lo] == wm, lo, lo - 1)
    slots = hi - first + 1  # the last node is hi whether or not wp falls on it
    cols = np.arange(max(int(slots.max()), 2))
    k = np.where(cols[None, :] < slots[:, None], first[:, None] + cols[None, :], -1)
    # the reference counts only valid nodes but indexes by slot (node -1 keeps its slot)
    n_k = slots - (first < 0)
    kc = k  # index -1 reads the last node, as the reference's arrays do (weight dropped)
    rows = np.arange(wm.size)
    last, before = kc[rows, n_k - 1], kc[rows, np.maximum(n_k - 2, 0)]
    w = np.zeros(k.shape)
    w[:, 0] = grid[kc[:, 1]] - wm
    w[rows, n_k - 1] = wp - grid[before]
    _two_nodes(w, grid, dg, kc, n_k == 2, (lo, hi, wm, wp))
    _edge_nodes(w, grid, dg, kc, n_k, (lo, hi, wm, wp, last, before))
    _inner_nodes(w, grid, dg, kc, n_k)
    w /= 2.0
    return w, k


#: pixels spanning at most this many grid nodes get their weights in one batch, the rest in another
_FEW_NODES = 16


def _node_count_groups(grid: np.ndarray, wm: np.ndarray, wp: np.ndarray) -> list[np.ndarray]:
    """Pixel indices in batches of similar node counts for :func:`_weights_arrays`.

    Its arrays are (pixels, most nodes of any pixel) wide; a few pixels span
    tens of nodes where the grid is fine, and would widen those of all the
    others (99 % of the benchmark's pixels span at most 18).  Each pixel's
    weights do not depend on the others', so the batches give the same values.
    """
    lo = np.searchsorted(grid, wm, side="right") - 1
    slots = np.searchsorted(grid, wp) - lo + 1  # at least _weights_arrays' count (it may start at lo - 1)
    few = slots <= _FEW_NODES
    if few.all() or not few.any():
        return [np.arange(wm.size)]
    return [np.nonzero(few)[0], np.nonzero(~few)[0]]


def _two_nodes(w: np.ndarray, grid: np.ndarray, dg: np.ndarray, kc: np.ndarray, case: np.ndarray,
               ends: tuple) -> None:
    """Pixels touching two grid nodes."""
    lo, hi, wm, wp = ends
    fix = case & (kc[:, 0] != lo)
    w[fix, 1] += wm[fix] - grid[kc[fix, 0]]
    fix = case & (kc[:, 1] != hi)
    w[fix, 0] += grid[kc[fix, 1]] - wp[fix]
    w[case, :2] *= ((wp[case] - wm[case]) / dg[kc[case, 0]])[:, None]


def _edge_nodes(w: np.ndarray, grid: np.ndarray, dg: np.ndarray, kc: np.ndarray,
                n_k: np.ndarray, ends: tuple) -> None:
    """First and last two weights of pixels touching three nodes or more."""
    lo, hi, wm, wp, last, before = ends
    case = n_k >= 3
    rows = np.nonzero(case)[0]
    nk = n_k[rows]
    w[rows, 1] = grid[kc[rows, 1]] - wm[rows]
    w[rows, nk - 2] += wp[rows] - grid[before[rows]]
    fix = case & (kc[:, 0] != lo)
    up = grid[kc[fix, 1]] - wm[fix]
    down = wm[fix] - grid[kc[fix, 0]]
    step = dg[kc[fix, 0]]
    w[fix, 0] *= up / step
    w[fix, 1] += up * down / step
    rows = np.nonzero(case & (last != hi))[0]
    nk = n_k[rows]
    up = wp[rows] - grid[before[rows]]
    down = grid[last[rows]] - wp[rows]
    step = dg[before[rows]]
    w[rows, nk - 1] *= up / step
    w[rows, nk - 2] += up * down / step


def _inner_nodes(w: np.ndarray, grid: np.ndarray, dg: np.ndarray, kc: np.ndarray,
                 n_k: np.ndarray) -> None:
    """Interior weights of pixels touching four nodes or more."""
    rows = np.nonzero(n_k >= 4)[0]
    nk = n_k[rows]
    w[rows, 1] += grid[kc[rows, 2]] - grid[kc[rows, 1]]
    w[rows, nk - 2] += grid[kc[rows, nk - 2]] - grid[kc[rows, nk - 3]]
    cols = np.arange(w.shape[1])[None, :]
    inner = (n_k[:, None] > 4) & (cols >= 2) & (cols < n_k[:, None] - 2)
    r, c = np.nonzero(inner)
    w[r, c] = dg[kc[r, c] - 1] + dg[kc[r, c]]


class Engine:
    """Sparse linear model of the detector for a set of orders on one wavelength grid.

    Parameters
    ----------
    orders : sequence of OrderInputs
        One entry per modelled order.
    wave_grid : ndarray, (n_k,)
        Strictly increasing wavelength grid, microns.
    global_mask : ndarray of bool, (ny, nx), optional
        Pixels excluded from every order.
    threshold : float
        A pixel where every order's profile exceeds this but one order's
        wavelengths fall off the grid is masked (the reference's rule).
    parallel_map : callable
        ``map`` for the orders' matrices (independent: e.g. a thread pool's).  Given one,
        each order's product ``w (T lambda C)`` also runs in OpenMP's default threads.
    """

    def __init__(self, orders: Sequence[OrderInputs], wave_grid: np.ndarray,
                 global_mask: np.ndarray | None = None, threshold: float = 1e-3,
                 parallel_map: Callable = map) -> None:
        if not (np.diff(wave_grid) > 0).all():
            wave_grid = np.unique(wave_grid)
        self.wave_grid = np.asarray(wave_grid, dtype=np.float64)
        self.profiles = np.array([o.profile for o in orders], dtype=np.float64)
        self.shape = self.profiles.shape[1:]
        self.threshold = threshold
        edges = [pixel_edges(o.wavemap) for o in orders]
        self.wave_plus = np.array([e[0] for e in edges])
        self.wave_minus = np.array([e[1] for e in edges])
        self.wavemaps = np.array([o.wavemap for o in orders], dtype=np.float64)
        trace_masks = np.array([o.trace_mask for o in orders], dtype=bool)
        self.i_bounds = [(0, self.wave_grid.size) for _ in orders]
        self.mask, self.mask_ord = self._masks(trace_masks, global_mask)
        if np.any((~self.mask_ord).sum(axis=(1, 2)) < MIN_GOOD_PIXELS):
            raise MaskOverlapError(f"ATOCA: an order has fewer than {MIN_GOOD_PIXELS} valid pixels")
        self.i_bounds = self._grid_bounds()
        self.throughput = np.array([o.throughput(self.wave_grid) for o in orders])
        self.mask, self.mask_ord = self._masks(trace_masks, global_mask)
        self._product_threads = openmp_threads(parallel_map)
        matrices = list(parallel_map(self._order_matrices, range(len(orders)), [o.kernel for o in orders]))
        self.kernels = [kernel for kernel, _, _ in matrices]
        self.weights = [weights for _, weights, _ in matrices]
        self._right = [right for _, _, right in matrices]
        self.tikho_mat = first_derivative(self.wave_grid)
        self._tikho_sq: csr_array | None = None  # D'D, built on the first regularised solve
        self._unweighted: csr_array | None = None  # design() without errors, built on first rebuild
        self._scaled: ScaledNormalEquations | None = None  # one order's normal equations, on first solve
        self._ordering = ColumnOrdering()  # solve()'s systems share a pattern while the masks do

    def _mask_wave(self, i: int) -> np.ndarray:
        a, b = self.i_bounds[i]
        return (self.wave_minus[i] < self.wave_grid[a]) | (self.wave_plus[i] > self.wave_grid[b - 1])

    def _masks(self, trace_masks: np.ndarray, global_mask: np.ndarray | None) -> tuple:
        mask_wave = np.array([self._mask_wave(i) for i in range(len(trace_masks))])
        mask_ord = trace_masks | mask_wave
        if global_mask is not None:
            mask_ord |= global_mask[None]
        general = np.all(mask_ord, axis=0)
        contaminated = np.all(self.profiles > self.threshold, axis=0)
        general |= np.any(mask_wave, axis=0) & contaminated
        return general, mask_wave | general[None]

    def _grid_bounds(self) -> list[tuple[int, int]]:
        bounds = []
        for i, (a0, b0) in enumerate(self.i_bounds):
            wave = self.wavemaps[i][~self.mask_ord[i]]
            a = int(np.min(np.nonzero(self.wave_grid >= wave.min())[0]))
            b = int(np.max(np.nonzero(self.wave_grid <= wave.max())[0])) + 1
            bounds.append((max(a, a0), min(b, b0)))
        return bounds

    def _kernel_matrix(self, kernel: Callable | None, i: int) -> csr_array:
        thresh = getattr(kernel, "min_value", 1e-5)
        return convolution_matrix(kernel, self.wave_grid, self.i_bounds[i], thresh)

    def _weights(self, i: int) -> csr_array:
        """(n_valid_pixels, n_kc) integration weights of order i on its grid range."""
        a, b = self.i_bounds[i]
        grid = self.wave_grid[a:b]
        valid = ~self.mask
        masked = self.mask_ord[i][valid]
        use = np.nonzero(~masked)[0]
        wm, wp = self.wave_minus[i][valid][use], self.wave_plus[i][valid][use]
        data, rows, cols = [], [], []
        for group in _node_count_groups(grid, wm, wp):
            w, k = _weights_arrays(grid, wm[group], wp[group])
            keep = k >= 0
            data.append(w[keep])
            rows.append(np.broadcast_to(use[group][:, None], k.shape)[keep])
            cols.append(k[keep])
        # each pixel's entries in node order, as one array of every pixel lists them
        return csr_array((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(valid.sum(), b - a))

    def _order_matrices(self, i: int, kernel: Callable | None) -> tuple[csr_array, csr_array, csr_array]:
        """Order i's convolution matrix C_i, integration weights w and ``w T lambda C_i`` (flux on the
        grid -> pixel integral before the profile)."""
        kernel_matrix = self._kernel_matrix(kernel, i)
        weights = self._weights(i)
        a, b = self.i_bounds[i]
        scale = (self.throughput[i] * self.wave_grid)[a:b]
        return kernel_matrix, weights, product(weights, diags_array(scale) @ kernel_matrix, self._product_threads)

    def wave_grid_c(self, i: int) -> np.ndarray:
        """The grid points of order i's convolved range."""
        return self.wave_grid[slice(*self.i_bounds[i])]

    def design(self, error: np.ndarray | None = None) -> csr_array:
        """B: (n_valid_pixels, n_k) model matrix, each pixel row divided by its error."""
        total = csr_array((int((~self.mask).sum()), self.wave_grid.size))
        for i, right in enumerate(self._right):
            total = total + diags_array(self._row_scale(i, error)) @ right
        return csr_array(total)

    def _row_scale(self, i: int, error: np.ndarray | None) -> np.ndarray:
        """Order i's profile over the error (1 if None) at each modelled pixel: B's row scale."""
        valid = ~self.mask
        return self.profiles[i][valid] / (np.ones(int(valid.sum())) if error is None else error[valid])

    def pixels(self, image: np.ndarray, error: np.ndarray) -> np.ndarray:
        """The modelled pixels of ``image / error`` as a vector."""
        valid = ~self.mask
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(image[valid] / error[valid])

    def solve(self, data: np.ndarray, error: np.ndarray, factor: float | None) -> np.ndarray:
        """Flux on the grid: Tikhonov-regularised when ``factor`` is given, else plain."""
        normal, rhs = self._normal_equations(data, error)
        if factor is not None:
            normal = normal + factor**2 * self.tikho_sq
        return solve_normal(normal, rhs, self._ordering)

    def _normal_equations(self, data: np.ndarray, error: np.ndarray) -> tuple[csr_array, np.ndarray]:
        """B'B and B'x of this image; one order's (B = diag(profile / error) R, R fixed) in one pass
        with scipy's sums, the orders' sum through scipy."""
        pixels = self.pixels(data, error)
        if len(self._right) != 1:
            b_mat = self.design(error)
            return b_mat.T @ b_mat, b_mat.T @ pixels
        if self._scaled is None:
            self._scaled = ScaledNormalEquations(self._right[0])
        return self._scaled(self._row_scale(0, error), pixels)

    @property
    def tikho_sq(self) -> csr_array:
        """D'D of the first-derivative Tikhonov operator (made once: it depends on the grid only)."""
        if self._tikho_sq is None:
            self._tikho_sq = self.tikho_mat.T @ self.tikho_mat
        return self._tikho_sq

    def rebuild(self, spectrum: np.ndarray, fill_value: float = 0.0) -> np.ndarray:
        """Model image of every order for ``spectrum`` on the grid; ``fill_value`` where masked."""
        if self._unweighted is None:
            self._unweighted = self.design()
        model = np.zeros(self.shape)
        model[~self.mask] = self._unweighted @ spectrum
        model[self.mask] = fill_value
        return model
