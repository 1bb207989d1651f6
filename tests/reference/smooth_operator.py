"""Reference values for `@smooth(order=n)` (src/constraint/smooth.rs).

Q is built from its definition, independently of the Rust code's Toeplitz
formula: D is the full order-n difference (the kernel zero outside its taps,
np.diff of the zero-padded kernel), Q = DᵀD / 4ⁿ; in 2-D the two axes'
operators are summed and halved. λ_min and the admissible dimension at
tol = 0.01 come from numpy.linalg.eigvalsh.

    python3 tests/reference/smooth_operator.py > tests/fixtures/smooth_operator.json
"""
import json

import numpy as np


def difference(k, n):
    # Row i of D applied to h: the n-th difference of h zero-padded by n on each side, valid part.
    d = np.zeros((k + n, k))
    for j in range(k):
        e = np.zeros(k + 2 * n)
        e[n + j] = 1.0
        d[:, j] = np.diff(e, n=n)[: k + n] if n > 0 else e
    return d


def operator(dims, n):
    q1 = lambda k: difference(k, n).T @ difference(k, n) / 4.0**n
    if len(dims) == 1:
        return q1(dims[0])
    kh, kw = dims
    return (np.kron(q1(kh), np.eye(kw)) + np.kron(np.eye(kh), q1(kw))) / 2.0


cases = []
for order, dims in [(1, [7]), (2, [15]), (2, [5]), (3, [9]), (4, [21]), (2, [3, 5]), (1, [4, 4])]:
    q = operator(dims, order)
    eig = np.linalg.eigvalsh(q)
    cases.append(
        {
            "order": order,
            "dims": dims,
            "q_row0": list(q[0]),
            "lambda_min": float(eig.min()),
            "admissible_dimension_at_0.01": int((eig <= 0.01).sum()),
        }
    )
print(json.dumps({"cases": cases}, indent=1))
