"""Products of a few rows of a sparse matrix, in numpy: the same numbers as scipy's."""
import numpy as np
from scipy import sparse

from recommender.index import sparserows
from recommender.index.live import Stacked


def random_rows(seed, n=40, terms=300, density=0.05):
    matrix = sparse.random(n, terms, density=density, format="csr", dtype=np.float32, random_state=seed)
    return matrix, matrix[np.random.default_rng(seed).integers(n)]


def test_similarities_and_gram_equal_scipys_products():
    matrix, query = random_rows(3)
    rows = np.array([5, 1, 30, 5, 12])
    np.testing.assert_allclose(sparserows.similarities_to(matrix, rows, query),
                               (matrix[rows] @ query.T).toarray().ravel(), rtol=1e-5)
    both = sparse.vstack([query, matrix[rows]])
    np.testing.assert_allclose(sparserows.gram(matrix, rows, query), (both @ both.T).toarray(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sparserows.gram(matrix, rows), (matrix[rows] @ matrix[rows].T).toarray(), rtol=1e-5)


def test_a_row_as_sparse_row_reads_like_the_csr_row():
    matrix, _ = random_rows(4)
    row = sparserows.row(matrix, 7)
    np.testing.assert_array_equal(row.toarray(), matrix[7].toarray())
    rows = np.arange(10)
    np.testing.assert_allclose(sparserows.similarities_to(matrix, rows, row),
                               (matrix[rows] @ matrix[7].T).toarray().ravel(), rtol=1e-5)


def test_rows_of_a_stacked_view_and_empty_queries():
    matrix, query = random_rows(5)
    extra, _ = random_rows(6, n=3)
    stacked = Stacked(matrix, extra)
    rows = np.array([41, 2, 40])
    want = (sparse.vstack([matrix, extra])[rows] @ query.T).toarray().ravel()
    np.testing.assert_allclose(sparserows.similarities_to(stacked, rows, query), want, rtol=1e-5)
    empty = sparse.csr_matrix((1, matrix.shape[1]), dtype=np.float32)
    assert sparserows.similarities_to(matrix, rows[1:2], empty).tolist() == [0.0]
