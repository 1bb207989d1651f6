"""Reference bases of `mode=reparam` (tests/fixtures/reparam_basis.json),
computed with numpy as docs/constraints.md states the rule:

- the admissible subspace: for one band, Q's eigenvectors with eigenvalue
  <= tol; for several constraints, the intersection of their subspaces;
- rotated by the eigenvectors of V^T Q V (Q: the sum of the band operators,
  0 without a band), smallest eigenvalue first;
- consecutive sorted eigenvalues within 1e-9 of each other are one cluster,
  whose basis is Gram-Schmidt, in order, of the projections of e_1, e_2, ...
  onto the cluster's eigenspace, skipping remainders of norm <= 1e-8 (this
  also fixes signs: each vector's component at its own e_j is positive).

Run from the repository root: python3 tests/reference/make_reparam_fixtures.py
"""

import json
import os

import numpy as np

from make_op_fixtures import stopband_q, tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "fixtures", "reparam_basis.json")
TIE = 1e-9
PIVOT = 1e-8


def canonical(S):
    n, m = S.shape
    out = []
    for j in range(n):
        if len(out) == m:
            break
        # In S's coordinates: the projection of e_j is S @ S[j, :].
        r = S[j, :].copy()
        for _ in range(2):
            for u in out:
                r = r - u * (u @ r)
        norm = np.linalg.norm(r)
        if norm > PIVOT:
            out.append(r / norm)
    assert len(out) == m
    return S @ np.stack(out, axis=1)


def documented(V, Q):
    """The documented basis of span(V) (orthonormal columns)."""
    M = V.T @ Q @ V
    lam, W = np.linalg.eigh((M + M.T) / 2)  # ascending
    cols, start, clusters = [], 0, []
    while start < len(lam):
        end = start + 1
        while end < len(lam) and lam[end] - lam[end - 1] <= TIE:
            end += 1
        clusters.append(end - start)
        cols.append(canonical(V @ W[:, start:end]))
        start = end
    return np.concatenate(cols, axis=1), clusters


def null_space(A, tol=1e-9):
    lam, U = np.linalg.eigh(A)
    return U[:, lam <= tol]


def mirror(n, sign):
    return 0.5 * (np.eye(n) + sign * np.fliplr(np.eye(n)))


def band_q(dims, family, cutoff, transition=None):
    if len(dims) == 1:
        return stopband_q(dims[0], family, cutoff, transition)[1]
    ph = np.eye(dims[0]) - stopband_q(dims[0], family, cutoff, transition)[1]
    pw = np.eye(dims[1]) - stopband_q(dims[1], family, cutoff, transition)[1]
    return np.eye(dims[0] * dims[1]) - np.kron(ph, pw)


def admissible(Q, tol):
    lam, U = np.linalg.eigh(Q)
    return U[:, lam <= tol]


def case(name, dims, constraints):
    """constraints: ("lowpass"|"highpass", cutoff, transition, tol) or
    ("symmetric",) / ("antisymmetric",) / ("dc_gain", g)."""
    n = int(np.prod(dims))
    directions = np.zeros((n, n))
    Q = np.zeros((n, n))
    for c in constraints:
        if c[0] in ("lowpass", "highpass"):
            q = band_q(dims, c[0], c[1], c[2])
            V = admissible(q, c[3])
            P = V @ V.T
            Q += q
        elif c[0] == "symmetric":
            P = mirror(n, 1.0)
        elif c[0] == "antisymmetric":
            P = mirror(n, -1.0)
        elif c[0] == "dc_gain":
            P = np.eye(n) - np.full((n, n), 1.0 / n)
        else:
            raise ValueError(c)
        directions += np.eye(n) - P
    basis, clusters = documented(null_space(directions), Q)
    D = basis.T @ Q @ basis
    assert np.allclose(D, np.diag(np.diag(D)), atol=1e-9), name
    print(f"{name}: dims {dims}, rank {basis.shape[1]}, clusters {clusters}")
    return {"name": name, "dims": list(dims), "constraints": [list(c) for c in constraints],
            "basis": tensor(basis), "clusters": clusters}


def main():
    cases = [
        case("lowpass_15", [15], [("lowpass", 0.2, 0.1, 0.01)]),
        case("lowpass_31", [31], [("lowpass", 0.1, None, 0.01)]),
        case("lowpass_9_loose", [9], [("lowpass", 0.3, None, 0.2)]),
        # Three eigenvalues below 1e-9 (1e-15 .. 8e-11): one cluster.
        case("highpass_15", [15], [("highpass", 0.4, 0.1, 0.01)]),
        # The 2-D Kronecker Q: eigenvalues 1 - (1 - a_i)(1 - a_j) repeat.
        case("lowpass_2d_5x5", [5, 5], [("lowpass", 0.5, 0.4, 0.05)]),
        case("lowpass_2d_3x5", [3, 5], [("lowpass", 0.4, 0.5, 0.2)]),
        # No band: Q = 0, one cluster, the canonical basis.
        case("symmetric_7", [7], [("symmetric",)]),
        case("antisymmetric_6", [6], [("antisymmetric",)]),
        case("dc_gain_5", [5], [("dc_gain", 1.0)]),
        # Intersections: rotated by the eigenvectors of V^T Q V.
        case("lowpass_symmetric_15", [15], [("lowpass", 0.3, None, 0.05), ("symmetric",)]),
        case("lowpass_dc_gain_15", [15], [("lowpass", 0.3, None, 0.05), ("dc_gain", 1.0)]),
    ]
    with open(PATH, "w") as fh:
        json.dump({"tie": TIE, "pivot": PIVOT, "cases": cases}, fh)


if __name__ == "__main__":
    main()
