"""Tests for spec3c._core.normaleq: scipy's B'B and B'x of a row-scaled matrix, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_array, diags_array, random_array

from spec3c._core.normaleq import ScaledNormalEquations


def _scipy(matrix: csr_array, scale: np.ndarray, pixels: np.ndarray) -> tuple[csr_array, np.ndarray]:
    """What the ATOCA engine computed before: B built by scipy, then B.T @ B and B.T @ x."""
    total = csr_array(matrix.shape)
    b_mat = csr_array(total + diags_array(scale) @ matrix)
    normal = csr_array(b_mat.T @ b_mat)
    normal.sort_indices()
    return normal, b_mat.T @ pixels


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def _assert_identical(got: tuple[csr_array, np.ndarray], want: tuple[csr_array, np.ndarray]) -> None:
    (normal, rhs), (normal_want, rhs_want) = got, want
    np.testing.assert_array_equal(normal.indptr, normal_want.indptr)
    np.testing.assert_array_equal(normal.indices, normal_want.indices)
    np.testing.assert_array_equal(_bits(normal.data), _bits(normal_want.data))
    np.testing.assert_array_equal(_bits(rhs), _bits(rhs_want))


def _banded(rng: np.random.Generator, n_rows: int, n_cols: int) -> csr_array:
    """A design-like matrix: each row a few neighbouring columns, with explicit zeros and an empty row."""
    rows, cols, vals = [], [], []
    for p in range(n_rows):
        start = int(rng.integers(0, n_cols - 6))
        for k in range(int(rng.integers(1, 6))):
            rows.append(p)
            cols.append(start + k)
            vals.append(rng.normal() if rng.random() > 0.05 else 0.0)
    matrix = csr_array((vals, (rows, cols)), shape=(n_rows, n_cols))
    matrix.data[matrix.indptr[3]:matrix.indptr[4]] = 0.0  # a row of stored zeros
    return matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_equations_are_scipys_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    matrix = _banded(rng, 500, 80)
    scale = rng.uniform(0.1, 3.0, 500)
    scale[rng.random(500) < 0.05] = 0.0  # a zero profile or an infinite error
    pixels = rng.normal(size=500)
    pixels[rng.random(500) < 0.02] = np.inf
    equations = ScaledNormalEquations(matrix)
    _assert_identical(equations(scale, pixels), _scipy(matrix, scale, pixels))
    scale[7] = np.nan  # a NaN row: its products are kept, as scipy keeps them
    _assert_identical(equations(scale, pixels), _scipy(matrix, scale, pixels))


def test_sums_that_cancel_are_dropped_as_scipy_drops_them():
    matrix = csr_array(np.array([[1.0, 1.0], [1.0, -1.0], [0.0, 2.0]]))
    scale = np.ones(3)
    got = ScaledNormalEquations(matrix)(scale, np.zeros(3))
    assert got[0].nnz == 2  # B'B[0, 1] = 1 - 1 + 0 = 0: no entry, only the diagonal
    _assert_identical(got, _scipy(matrix, scale, np.zeros(3)))


def test_unsorted_and_random_inputs():
    rng = np.random.default_rng(5)
    matrix = csr_array(random_array((300, 40), density=0.1, rng=rng))
    reordered = matrix.copy()  # the same entries, each row listed backwards (as scipy's products list them)
    for r in range(matrix.shape[0]):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        reordered.indices[a:b] = matrix.indices[a:b][::-1]
        reordered.data[a:b] = matrix.data[a:b][::-1]
    scale, pixels = rng.uniform(0.5, 2.0, 300), rng.normal(size=300)
    _assert_identical(ScaledNormalEquations(reordered)(scale, pixels), _scipy(matrix, scale, pixels))


def test_wrong_lengths_are_named():
    equations = ScaledNormalEquations(csr_array(np.eye(4)))
    with pytest.raises(ValueError, match=r"scale must have shape \(4,\)"):
        equations(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"pixels must have shape \(4,\)"):
        equations(np.ones(4), np.ones((4, 1)))
