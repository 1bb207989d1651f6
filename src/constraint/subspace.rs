//! The linear families (`symmetric`, `antisymmetric`, `dc_gain`) and how
//! several linear constraints on one weight compose into the one subspace
//! (or affine set) that `mode=reparam` parametrizes.

use nalgebra::{DMatrix, DVector};

use crate::constraint::quadratic;
use crate::language::ir::Constraint;

/// The mirror-image projector `(I ± J)/2` on `taps` (J flips the kernel, in
/// 2-D both axes).
pub fn mirror_projector(taps: usize, sign: f64) -> DMatrix<f64> {
    DMatrix::from_fn(taps, taps, |i, j| 0.5 * (if i == j { 1.0 } else { 0.0 } + if i + j == taps - 1 { sign } else { 0.0 }))
}

/// The projector onto the kernels whose taps sum to 0: `I − 11ᵀ/taps`.
pub fn zero_sum_projector(taps: usize) -> DMatrix<f64> {
    DMatrix::identity(taps, taps) - DMatrix::from_element(taps, taps, 1.0 / taps as f64)
}

/// One reparametrization for several constraints: an orthonormal basis of the
/// intersection of their subspaces (the null space of Σ(I − Pᵢ)) and, with a
/// `dc_gain`, the point of that intersection's span with unit direction
/// summing to the gain. Computed once, when the model is compiled.
///
/// The basis is the documented one (`quadratic::ordered_basis`): the
/// intersection's basis rotated by the eigenvectors of `VᵀQV`, `Q` the sum of
/// the quadratic constraints' operators (for one band alone: Q's
/// eigenvectors with eigenvalue ≤ tol), smallest eigenvalue first, repeated
/// eigenvalues and signs by the canonical rule; without one (`Q = 0`) the
/// canonical basis of the whole intersection. Adam's steps are per
/// coordinate, so the basis shapes the trajectory.
pub fn composed_subspace(constraints: &[&Constraint], kernel: &[usize]) -> Result<(DMatrix<f64>, Option<Vec<f64>>), String> {
    let taps: usize = kernel.iter().product();
    let eye = DMatrix::<f64>::identity(taps, taps);
    let mut directions = DMatrix::zeros(taps, taps);
    let mut without_dc = DMatrix::zeros(taps, taps);
    let mut gain = None;
    let mut operators = DMatrix::zeros(taps, taps);
    for c in constraints {
        let geometry = c.set.geometry(kernel);
        let (p, dc) = geometry.linear_part(taps, c.tol).ok_or_else(|| "has no reparametrization".to_string())?;
        if let crate::constraint::Geometry::Quadratic { q, .. } = &geometry {
            operators += q;
        }
        directions += &eye - &p;
        if dc.is_some() {
            gain = dc;
        } else {
            without_dc += &eye - &p;
        }
    }
    let basis = quadratic::ordered_basis(&quadratic::admissible_basis(&directions, 1e-9), &operators);
    let offset = match gain {
        None => None,
        Some(g) => {
            // The subspace the other constraints allow, and its kernel closest to
            // a constant one, scaled to sum to g.
            let allowed = quadratic::admissible_basis(&without_dc, 1e-9);
            let ones = DVector::from_element(taps, 1.0);
            let along = &allowed * (allowed.transpose() * &ones);
            let sum: f64 = along.sum();
            if sum.abs() < 1e-9 {
                return Err(format!("no kernel of the other constraints' set has a DC gain of {g}"));
            }
            Some((along * (g / sum)).iter().cloned().collect())
        }
    };
    if basis.ncols() == 0 && offset.is_none() {
        return Err("leaves no kernel but zero: the constraints' subspaces meet only at 0".into());
    }
    Ok((basis, offset))
}
