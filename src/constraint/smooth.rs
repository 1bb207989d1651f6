//! `@smooth(order=n)`: each kernel's order-n finite differences are small
//! next to the kernel itself. A quadratic family (docs/constraints.md,
//! "Smoothness"): with `D` the order-n difference of the kernel taken as
//! zero outside its taps (the full convolution with the binomial filter
//! `(−1)^(n−j)·C(n, j)`, `k + n` rows),
//!
//! ```text
//! ρ(h) = ‖D h‖² / (4ⁿ · ‖h‖²) = hᵀQh / hᵀh,   Q = DᵀD / 4ⁿ
//! ```
//!
//! By Parseval `‖Dh‖²` is the kernel's energy weighted by
//! `|2·sin(πν/2)|^(2n)`, whose largest value is 4ⁿ (at Nyquist): ρ is the
//! share of the energy in the high frequencies under that smooth mask, in
//! `[0, 1]` like a band's stopband ratio, 0 only in the limit of a constant
//! infinitely long kernel. `DᵀD` is the symmetric Toeplitz matrix of the
//! filter's autocorrelation, `(−1)^m·C(2n, n+m)` at lag `m`. A 2-D kernel
//! sums the two axes' differences, `Q₂ = (Q_h ⊗ I + I ⊗ Q_w) / 2`, so ρ
//! stays in `[0, 1]`; its eigenvalues are `(λᵢ + μⱼ)/2`.
//!
//! Everything else (feasibility `λ_min(Q) ≤ tol`, penalty, projection,
//! reparametrization, lagrangian) is the quadratic families' shared code.

use crate::language::diagnostic::RatioWords;
use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::constraint::quadratic::{NoDesign, Operator};

/// Orders the schema accepts: `order` in 1..=4.
pub const MAX_ORDER: usize = 4;

/// A smoothness constraint of one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smooth {
    pub order: usize,
}

/// `C(n, r)`.
fn binomial(n: usize, r: usize) -> f64 {
    (0..r).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

impl Smooth {
    /// `Q = DᵀD / 4ⁿ` along one axis of `k` taps.
    pub fn operator_1d(&self, k: usize) -> DMatrix<f64> {
        let n = self.order;
        let scale = 4f64.powi(n as i32);
        DMatrix::from_fn(k, k, |i, j| {
            let lag = i.abs_diff(j);
            if lag > n {
                0.0
            } else {
                let sign = if lag % 2 == 0 { 1.0 } else { -1.0 };
                sign * binomial(2 * n, n + lag) / scale
            }
        })
    }

    /// Q for a kernel of shape `[k]` or `[kh, kw]` (flattened row-major).
    pub fn operator(&self, dims: &[usize]) -> DMatrix<f64> {
        match dims {
            [k] => self.operator_1d(*k),
            [kh, kw] => {
                let along_h = self.operator_1d(*kh).kronecker(&DMatrix::identity(*kw, *kw));
                let along_w = DMatrix::identity(*kh, *kh).kronecker(&self.operator_1d(*kw));
                (along_h + along_w) * 0.5
            }
            _ => panic!("smoothness acts on 1-D or 2-D kernels, not {dims:?}"),
        }
    }

    /// One axis' eigenvalues, ascending.
    fn axis_spectrum(&self, k: usize) -> Vec<f64> {
        let mut all: Vec<f64> = SymmetricEigen::new(self.operator_1d(k)).eigenvalues.iter().copied().collect();
        all.sort_by(f64::total_cmp);
        all
    }

    /// Every eigenvalue of Q, ascending (2-D: `(λᵢ + μⱼ)/2` over the axes').
    pub fn spectrum(&self, dims: &[usize]) -> Vec<f64> {
        let mut all = match dims {
            [k] => self.axis_spectrum(*k),
            [kh, kw] => {
                let (a, b) = (self.axis_spectrum(*kh), self.axis_spectrum(*kw));
                a.iter().flat_map(|x| b.iter().map(move |y| (x + y) / 2.0)).collect()
            }
            _ => panic!("smoothness acts on 1-D or 2-D kernels, not {dims:?}"),
        };
        all.sort_by(f64::total_cmp);
        all
    }

    /// `λ_min(Q)`: the smallest ρ a kernel of this shape can have (two
    /// small eigen-solves in 2-D).
    pub fn lambda_min(&self, dims: &[usize]) -> f64 {
        let axis = |k: usize| self.axis_spectrum(k).first().copied().unwrap_or(0.0).max(0.0);
        match dims {
            [kh, kw] => (axis(*kh) + axis(*kw)) / 2.0,
            _ => axis(dims.iter().product()),
        }
    }

    /// The smoothest kernel of unit DC gain along one axis: Q's eigenvector
    /// of the smallest eigenvalue, scaled to sum to 1.
    fn smoothest_1d(&self, k: usize) -> Result<Vec<f64>, NoDesign> {
        let eig = SymmetricEigen::new(self.operator_1d(k));
        let smallest = (0..k).min_by(|&a, &b| eig.eigenvalues[a].total_cmp(&eig.eigenvalues[b])).expect("a kernel has taps");
        let v: DVector<f64> = eig.eigenvectors.column(smallest).into_owned();
        let sum = v.sum();
        if sum.abs() < 1e-9 {
            return Err(NoDesign {
                reason: format!("the smoothest kernel of {k} taps sums to 0, so no smoothest kernel has a DC gain of 1"),
                help: "use mode=project to learn a kernel that meets tol".into(),
            });
        }
        Ok(v.iter().map(|x| x / sum).collect())
    }

    /// The kernel `mode=freeze` sets: the smoothest unit-DC kernel (in 2-D
    /// the outer product of the axes' ones, Q₂'s eigenvector of its
    /// smallest eigenvalue), whose ρ is `λ_min`.
    pub fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign> {
        match dims {
            [k] => self.smoothest_1d(*k),
            [kh, kw] => {
                let (a, b) = (self.smoothest_1d(*kh)?, self.smoothest_1d(*kw)?);
                Ok(a.iter().flat_map(|x| b.iter().map(move |y| x * y)).collect())
            }
            _ => panic!("smoothness acts on 1-D or 2-D kernels, not {dims:?}"),
        }
    }
}

/// Smoothness as a quadratic family: everything but the operator is shared.
impl Operator for Smooth {
    fn operator(&self, dims: &[usize]) -> DMatrix<f64> {
        Smooth::operator(self, dims)
    }

    fn lambda_min(&self, dims: &[usize]) -> f64 {
        Smooth::lambda_min(self, dims)
    }

    fn spectrum(&self, dims: &[usize]) -> Vec<f64> {
        Smooth::spectrum(self, dims)
    }

    fn designed_kernel(&self, dims: &[usize]) -> Result<Vec<f64>, NoDesign> {
        Smooth::designed_kernel(self, dims)
    }

    fn ratio_words(&self, _dims: &[usize]) -> RatioWords {
        RatioWords {
            region: format!("its high frequencies (weighted by sin(πν/2)^{}, its order-{} differences)", 2 * self.order, self.order),
            measure: "roughness",
            operator: "Q = DᵀD/4ⁿ",
            // λ_min falls with the order: sin(πν/2)^2n is smaller below Nyquist for larger n.
            relax: "raise the order",
            design: "the design is the smoothest kernel of this length, so no kernel does better",
        }
    }

    fn loosen_words(&self) -> &'static str {
        // sin(πν/2)^2n shrinks with n below Nyquist: a higher order asks less of the low frequencies.
        "a higher order (a mask that spares more of the low frequencies) raises it too"
    }

    fn value(&self) -> Option<(&'static str, f64)> {
        Some(("order", self.order as f64))
    }

    fn key(&self) -> Vec<u64> {
        vec![1, self.order as u64]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q's first row and λ_min from numpy (tests/reference/smooth_operator.py).
    #[test]
    fn operator_and_lambda_min_match_numpy() {
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string("tests/fixtures/smooth_operator.json").unwrap()).unwrap();
        for case in fixture["cases"].as_array().unwrap() {
            let order = case["order"].as_u64().unwrap() as usize;
            let dims: Vec<usize> = case["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            let smooth = Smooth { order };
            let q = smooth.operator(&dims);
            let row: Vec<f64> = case["q_row0"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            for (j, want) in row.iter().enumerate() {
                assert!((q[(0, j)] - want).abs() < 1e-12, "order {order} {dims:?} Q[0, {j}] = {} ≠ {want}", q[(0, j)]);
            }
            let want = case["lambda_min"].as_f64().unwrap();
            let got = smooth.lambda_min(&dims);
            assert!((got - want).abs() < 1e-10 * want.max(1e-3), "order {order} {dims:?}: λ_min {got} ≠ numpy {want}");
            let spectrum = smooth.spectrum(&dims);
            assert!((spectrum[0] - want).abs() < 1e-10 * want.max(1e-3));
            let dim = case["admissible_dimension_at_0.01"].as_u64().unwrap() as usize;
            assert_eq!(crate::constraint::quadratic::admissible_dimension(&spectrum, 0.01), dim, "order {order} {dims:?}");
            // The designed kernel sums to 1 and reaches λ_min.
            let h = smooth.designed_kernel(&dims).unwrap();
            assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let rho = crate::constraint::quadratic::ratio(&q, &h);
            assert!((rho - want).abs() < 1e-9 * want.max(1e-3), "designed ρ {rho} vs λ_min {want}");
        }
    }

    #[test]
    fn rho_lies_in_the_unit_interval() {
        // ρ of the alternating kernel tends to 1 (all energy at Nyquist);
        // of a constant kernel of k taps, order 1: 2/(4k) (only its two ends differ).
        for order in 1..=MAX_ORDER {
            for spectrum in [Smooth { order }.spectrum(&[9]), Smooth { order }.spectrum(&[4, 5])] {
                assert!(spectrum.iter().all(|&l| (-1e-12..=1.0 + 1e-12).contains(&l)), "{order}: {spectrum:?}");
            }
        }
        let q = Smooth { order: 1 }.operator(&[7]);
        let rho = crate::constraint::quadratic::ratio(&q, &[1.0; 7]);
        assert!((rho - 2.0 / 28.0).abs() < 1e-12, "{rho}");
    }
}
