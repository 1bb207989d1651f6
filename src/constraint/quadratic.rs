//! The quadratic-operator families: a constraint `ρ(h) = hᵀQh / hᵀh ≤ tol`
//! on every kernel, for a symmetric `Q` with eigenvalues in `[0, 1]`
//! (docs/constraints.md). The four bands (Q the stopband's energy operator)
//! and smoothness (Q the normalised squared finite difference) are sources
//! of one such `Q`; everything else is shared and lives here: feasibility
//! (`λ_min(Q) ≤ tol`), the admissible subspace (eigenvectors with
//! eigenvalue ≤ tol) that `mode=project` projects onto and `mode=reparam`
//! parametrizes, its dimension, and the documented order of its basis.
//!
//! Plain `f64` linear algebra (nalgebra), no tensors.
#![deny(clippy::wildcard_enum_match_arm)]

use crate::language::diagnostic::RatioWords;
use nalgebra::{DMatrix, SymmetricEigen};

use crate::constraint::bands::{BandEdges, BandSpec};

/// What a quadratic family provides: its operator `Q` for a kernel shape
/// (symmetric, eigenvalues in `[0, 1]`) and what follows from it. The
/// defaults are the dense eigen-solves; a family with structure (the
/// bands' and smoothness' 2-D Kronecker forms) overrides them.
pub trait Operator {
    /// `Q` for a kernel of shape `[k]` or `[kh, kw]` (flattened row-major).
    fn operator(&self, dims: &[usize]) -> DMatrix<f64>;

    /// `λ_min(Q)`: the smallest ρ any kernel of this shape can have.
    fn lambda_min(&self, dims: &[usize]) -> f64 {
        smallest_eigenvalue(self.operator(dims))
    }

    /// Every eigenvalue of `Q`, ascending: the ρ of each direction.
    fn spectrum(&self, dims: &[usize]) -> Vec<f64> {
        let mut all: Vec<f64> = SymmetricEigen::new(self.operator(dims)).eigenvalues.iter().copied().collect();
        all.sort_by(f64::total_cmp);
        all
    }

    /// The kernel `mode=freeze` fixes the weights to (before the share
    /// among a layer's inputs), or why there is none for this shape.
    fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign>;

    /// What ρ measures and how to relax it, in the words of E0028, W0032
    /// and W0034 ("… of its energy in {region}").
    fn ratio_words(&self, dims: &[usize]) -> RatioWords;

    /// How to enlarge the admissible subspace besides tol and the kernel
    /// length, for the help of W0063.
    fn loosen_words(&self) -> &'static str;

    /// The family's own number as the user wrote it (name, value), besides a band.
    fn value(&self) -> Option<(&'static str, f64)> {
        None
    }

    /// A cache key: equal keys have equal operators for equal shapes.
    fn key(&self) -> Vec<u64>;

    /// The band, for what only a band has (edges, response figures).
    fn band(&self) -> Option<&BandSpec> {
        None
    }
}

/// Where a quadratic constraint's operator comes from: one variant per
/// quadratic family, each in its own module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Source {
    /// A frequency band: Q is its stopband's energy operator.
    Band(BandSpec),
    /// Smoothness: Q is the normalised squared finite difference.
    Smooth(crate::constraint::smooth::Smooth),
}

impl Source {
    /// The family's operator (the only match over the sources).
    pub fn family(&self) -> &dyn Operator {
        match self {
            Source::Band(band) => band,
            Source::Smooth(smooth) => smooth,
        }
    }

    pub fn operator(&self, dims: &[usize]) -> DMatrix<f64> {
        self.family().operator(dims)
    }

    pub fn lambda_min(&self, dims: &[usize]) -> f64 {
        self.family().lambda_min(dims)
    }

    pub fn spectrum(&self, dims: &[usize]) -> Vec<f64> {
        self.family().spectrum(dims)
    }

    pub fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign> {
        self.family().designed_kernel(dims)
    }

    pub fn ratio_words(&self, dims: &[usize]) -> RatioWords {
        self.family().ratio_words(dims)
    }

    pub fn loosen_words(&self) -> &'static str {
        self.family().loosen_words()
    }

    pub fn band(&self) -> Option<&BandSpec> {
        self.family().band()
    }

    pub fn value(&self) -> Option<(&'static str, f64)> {
        self.family().value()
    }

    pub fn key(&self) -> Vec<u64> {
        self.family().key()
    }
}

/// Why `mode=freeze` has no designed kernel for a shape, in the words of a
/// diagnostic.
#[derive(Clone, Debug, PartialEq)]
pub struct NoDesign {
    pub reason: String,
    pub help: String,
}

/// A quadratic constraint as the checker resolved it for its layer.
#[derive(Clone, Debug, PartialEq)]
pub struct QuadraticSpec {
    pub source: Source,
    /// `λ_min(Q)` for the layer's kernel: the lowest ρ it can reach.
    pub lambda_min: Option<f64>,
    /// Band sources: the edges in force on each kernel axis (stopband and
    /// passband after the transition), computed once by the checker.
    pub edges: Vec<BandEdges>,
    /// How many independent kernels have ρ ≤ tol (the subspace that
    /// mode=project and mode=reparam keep the kernels in).
    pub admissible_dimension: Option<usize>,
}

impl QuadraticSpec {
    /// Not yet resolved against a kernel.
    pub fn new(source: Source) -> QuadraticSpec {
        QuadraticSpec { source, lambda_min: None, edges: Vec::new(), admissible_dimension: None }
    }
}

/// How many eigenvalues of a spectrum are at most `tol`: the dimension of
/// the admissible subspace.
pub fn admissible_dimension(spectrum: &[f64], tol: f64) -> usize {
    spectrum.iter().filter(|&&l| l <= tol).count()
}

/// `ρ = hᵀQh / hᵀh` of one kernel (0 for the zero kernel).
pub fn ratio(q: &DMatrix<f64>, h: &[f64]) -> f64 {
    let h = nalgebra::DVector::from_column_slice(h);
    (h.transpose() * q * &h)[0] / h.norm_squared().max(1e-300)
}

/// `BandSpec::min_taps` over any `λ_min(k)`, so a caller that caches the
/// eigen-solves (the checker, which sees the same layer many times in a
/// `repeat`) can use its cache.
pub fn min_taps_with(mut lambda_min: impl FnMut(usize) -> f64, tol: f64, from: usize, limit: usize) -> Option<usize> {
    let mut feasible = |k: usize| lambda_min(k) <= tol;
    // λ_min falls with k; grow geometrically, then bisect.
    let mut lo = from;
    let mut hi = from.max(2);
    while !feasible(hi) {
        if hi >= limit {
            return None;
        }
        lo = hi;
        hi = (hi * 2).min(limit);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if feasible(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

pub fn smallest_eigenvalue(q: DMatrix<f64>) -> f64 {
    let eig = SymmetricEigen::new(q);
    eig.eigenvalues.iter().cloned().fold(f64::INFINITY, f64::min).max(0.0)
}

/// An orthonormal basis `V` (`[n, r]`) of the eigenvectors of `Q` whose
/// eigenvalue is at most `tol`: the coordinates of `mode=reparam` for one
/// band. In the order and with the signs of [`ordered_basis`]: by eigenvalue
/// from the smallest, ties by the canonical rule, first significant
/// component positive.
pub fn admissible_basis(q: &DMatrix<f64>, tol: f64) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(q.clone());
    let columns: Vec<_> =
        eig.eigenvalues.iter().enumerate().filter(|(_, l)| **l <= tol).map(|(i, _)| eig.eigenvectors.column(i).into_owned()).collect();
    if columns.is_empty() { DMatrix::zeros(q.nrows(), 0) } else { ordered_basis(&DMatrix::from_columns(&columns), q) }
}

/// Eigenvalues (of `VᵀQV`, in `[0, 1]` for a stopband operator) that differ
/// by at most this, consecutive in sorted order, count as one repeated
/// eigenvalue: their eigenvectors are one eigenspace, whose basis is then
/// the canonical one of [`canonical_basis`], not whatever the eigen-solver
/// returned. Catches the exact repeats of the 2-D Kronecker `Q` (equal up to
/// rounding) and of symmetric structure.
pub const EIGENVALUE_TIE: f64 = 1e-9;

/// A component (or a projection's remainder) of norm at most this counts as
/// zero in [`canonical_basis`].
pub const PIVOT_TOL: f64 = 1e-8;

/// The documented basis of span(`v`) (orthonormal columns `[n, r]`),
/// whatever basis `v` itself is: the eigenvectors of `VᵀQV` mapped back by
/// `V`, ordered by eigenvalue from the smallest. Within a cluster of
/// repeated eigenvalues (consecutive sorted eigenvalues within
/// [`EIGENVALUE_TIE`]) the basis is [`canonical_basis`] of the cluster's
/// eigenspace; a cluster of one is the eigenvector with its first component
/// of magnitude above [`PIVOT_TOL`] positive (the same rule). With `Q = 0`
/// (no band) the whole span is one cluster. Deterministic and independent of
/// the solver's choices, so Adam's per-coordinate steps follow a stated
/// basis.
pub fn ordered_basis(v: &DMatrix<f64>, q: &DMatrix<f64>) -> DMatrix<f64> {
    let (n, r) = v.shape();
    if r == 0 {
        return v.clone();
    }
    let m = v.transpose() * q * v;
    let m = (&m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..r).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b]).then(a.cmp(&b)));
    let mut columns = Vec::with_capacity(r);
    let mut start = 0;
    while start < r {
        let mut end = start + 1;
        while end < r && eig.eigenvalues[order[end]] - eig.eigenvalues[order[end - 1]] <= EIGENVALUE_TIE {
            end += 1;
        }
        let vectors: Vec<_> = order[start..end].iter().map(|&i| v * eig.eigenvectors.column(i)).collect();
        let cluster = canonical_basis(&DMatrix::from_columns(&vectors));
        columns.extend(cluster.column_iter().map(|c| c.into_owned()));
        start = end;
    }
    let basis = DMatrix::from_columns(&columns);
    debug_assert_eq!(basis.shape(), (n, r));
    basis
}

/// The canonical orthonormal basis of span(`s`) (orthonormal columns
/// `[n, m]`): Gram–Schmidt, in order, of the projections of the unit vectors
/// e₁, e₂, … onto the span, skipping those whose remainder has norm at most
/// [`PIVOT_TOL`]. It depends on the span alone, and each vector's component
/// at its own unit vector is positive (for m = 1: the first component above
/// the tolerance).
pub fn canonical_basis(s: &DMatrix<f64>) -> DMatrix<f64> {
    let (n, m) = s.shape();
    if m == 0 {
        return s.clone();
    }
    // Gram–Schmidt in the coordinates of `s` (orthonormal columns): the
    // projection of e_j is `s · aⱼ` with `aⱼ = sᵀ e_j`, row j of `s`, so the
    // results lie in the span and stay orthonormal even when a remainder is
    // small (its rounding cannot leave the span).
    let mut out: Vec<nalgebra::DVector<f64>> = Vec::with_capacity(m);
    let remainder = |out: &[nalgebra::DVector<f64>], j: usize| {
        let mut r: nalgebra::DVector<f64> = s.row(j).transpose();
        // Twice, for orthogonality to rounding.
        for _ in 0..2 {
            for u in out {
                let along = u.dot(&r);
                r.axpy(-along, u, 1.0);
            }
        }
        r
    };
    for j in 0..n {
        if out.len() == m {
            break;
        }
        let r = remainder(&out, j);
        let norm = r.norm();
        if norm > PIVOT_TOL {
            out.push(r / norm);
        }
    }
    // Only if rounding hid a direction: the largest remainder, first of equals.
    while out.len() < m {
        let (r, norm) = (0..n)
            .map(|j| remainder(&out, j))
            .map(|r| (r.clone(), r.norm()))
            .fold((nalgebra::DVector::zeros(m), 0.0), |best, (r, norm)| if norm > best.1 { (r, norm) } else { best });
        out.push(r / norm);
    }
    let coordinates = DMatrix::from_columns(&out);
    s * coordinates
}

/// The orthogonal projector `P = V Vᵀ` onto the eigenvectors of `Q` whose
/// eigenvalue is at most `tol`: every kernel in its range has `ρ ≤ tol`.
pub fn admissible_projector(q: &DMatrix<f64>, tol: f64) -> (DMatrix<f64>, usize) {
    let eig = SymmetricEigen::new(q.clone());
    let n = q.nrows();
    let mut p = DMatrix::zeros(n, n);
    let mut rank = 0;
    for (i, &l) in eig.eigenvalues.iter().enumerate() {
        if l <= tol {
            let v = eig.eigenvectors.column(i);
            p += v * v.transpose();
            rank += 1;
        }
    }
    (p, rank)
}
