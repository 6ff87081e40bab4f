"""Tests for spec3c._core.normaleq: scipy's B'B and B'x of a row-scaled matrix, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_array, diags_array, random_array

from spec3c._core.normaleq import ScaledNormalEquations, gram, product


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


# -- gram: B'B of one matrix ----------------------------------------------------------------------

def _scipy_gram(matrix: csr_array) -> csr_array:
    normal = csr_array(matrix.T @ matrix)
    normal.sort_indices()
    return normal


def _assert_same_matrix(got: csr_array, want: csr_array) -> None:
    assert got.has_canonical_format
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(_bits(got.data), _bits(want.data))


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_gram_is_scipys_product_bit_for_bit(seed, workers):
    rng = np.random.default_rng(seed)
    matrix = _banded(rng, 2000, 300)  # stored zeros, an all-zero row
    wide = csr_array(random_array((2000, 300), density=0.02, rng=rng))  # rows far apart: joint orders
    matrix = csr_array(matrix + wide)
    matrix.data[rng.random(matrix.nnz) < 0.01] = 0.0
    _assert_same_matrix(gram(matrix, workers), _scipy_gram(matrix))


def test_gram_keeps_nan_and_inf_products_and_drops_cancelled_sums():
    rows = [0, 0, 1, 1, 2, 2, 2, 3, 3]
    cols = [0, 1, 0, 1, 1, 2, 3, 2, 3]
    vals = [1.0, 1.0, 1.0, -1.0, 2.0, np.inf, 0.0, 3.0, np.nan]  # (2, 3): a stored zero beside inf
    matrix = csr_array((vals, (rows, cols)), shape=(4, 4))
    assert matrix.nnz == 9
    with np.errstate(invalid="ignore"):
        want = _scipy_gram(matrix)
    got = gram(matrix, 2)
    assert (0, 1) not in set(zip(*got.nonzero(), strict=True))  # 1 - 1 = 0: dropped, as scipy drops it
    assert np.isnan(got[2, 3])  # inf * 0 + 3 * nan
    _assert_same_matrix(got, want)


def test_gram_of_unsorted_empty_and_other_formats():
    rng = np.random.default_rng(9)
    dense = random_array((400, 60), density=0.05, rng=rng).toarray()
    dense[:, 7] = 0.0  # an empty column
    matrix = csr_array(dense)
    reordered = matrix.copy()
    for r in range(matrix.shape[0]):  # each row listed backwards, as scipy's products list them
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        reordered.indices[a:b] = matrix.indices[a:b][::-1]
        reordered.data[a:b] = matrix.data[a:b][::-1]
    reordered.has_sorted_indices = False
    want = _scipy_gram(matrix)
    _assert_same_matrix(gram(reordered, 2), want)
    _assert_same_matrix(gram(matrix.tocsc(), 1), want)
    assert gram(csr_array((5, 4)), 2).shape == (4, 4)
    assert gram(csr_array((5, 4)), 2).nnz == 0


def test_gram_rejects_negative_workers():
    with pytest.raises(ValueError):
        gram(csr_array(np.eye(3)), -1)


# -- product: scipy's A @ B, array for array -------------------------------------------------------

def _assert_same_arrays(got: csr_array, want: csr_array) -> None:
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)  # scipy's unsorted order too
    np.testing.assert_array_equal(_bits(got.data), _bits(want.data))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_product_is_scipys_arrays_bit_for_bit(workers):
    rng = np.random.default_rng(workers)
    weights = _banded(rng, 1500, 200)  # stored zeros, an all-zero row
    kernel = csr_array(random_array((200, 260), density=0.1, rng=rng))
    kernel.data[rng.random(kernel.nnz) < 0.02] = np.nan
    scaled = diags_array(rng.uniform(0.5, 2.0, 200)) @ kernel  # rows in scipy's product order
    for right in (kernel, scaled, scaled.tocsc()):
        with np.errstate(invalid="ignore"):
            want = weights @ right
        _assert_same_arrays(product(weights, right, workers), csr_array(want))


def test_product_of_unsorted_rows_cancellations_and_empty():
    left = csr_array((np.array([1.0, 1.0, 2.0]), np.array([1, 0, 0]), np.array([0, 2, 3])), shape=(2, 2))
    right = csr_array(np.array([[1.0, 2.0, 0.0], [-1.0, 0.0, 3.0]]))
    _assert_same_arrays(product(left, right, 2), csr_array(left @ right))  # (0, 0): 1 - 1, dropped
    assert product(left, csr_array((2, 3)), 1).nnz == 0
    with pytest.raises(ValueError, match="align"):
        product(left, csr_array((3, 3)), 1)
    with pytest.raises(TypeError, match="csr_array"):
        product(left.tocsc(), right, 1)
