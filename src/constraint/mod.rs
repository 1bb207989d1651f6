//! The constraint families in plain `f64` (no tensors): what each family is
//! ([`SetSpec`], its parameters as the checker resolved them), what the
//! checker needs of it (feasibility, band edges, admissible dimension: in
//! [`quadratic`] and [`bands`]), and the admissible set it describes
//! ([`Geometry`]), which `model::constraints` enforces in every mode with one
//! match per hook over the geometry, never over the family.
//!
//! A family is one arm of [`SetSpec::read`] (from the annotation's
//! arguments) and one of [`SetSpec::geometry`]; a quadratic family (a new
//! operator `Q`, ρ = hᵀQh/hᵀh) is instead a [`quadratic::Source`] in its own
//! file, and shares feasibility, penalty, projection, reparametrization and
//! measurement with the bands.
#![deny(clippy::wildcard_enum_match_arm)]

pub mod bands;
pub mod quadratic;
pub mod smooth;
pub mod subspace;

use nalgebra::DMatrix;

use crate::constraint::bands::{BandEdges, BandSpec};
use crate::constraint::quadratic::{QuadraticSpec, Source};
use crate::language::schema::Family;

/// A constraint's admissible set, by family, with the parameters the user
/// wrote (resolved: frequencies in Nyquist units, bounds filled in).
#[derive(Clone, Debug, PartialEq)]
pub enum SetSpec {
    /// `ρ(h) = hᵀQh/hᵀh ≤ tol` on every kernel: the bands, smoothness.
    Quadratic(QuadraticSpec),
    /// `h = sign · flip(h)`: `symmetric` (+1) and `antisymmetric` (−1).
    Mirror { sign: f64 },
    /// `Σh = gain` on every kernel.
    DcGain { gain: f64 },
    /// Every weight ≥ 0.
    Nonneg,
    /// Each output unit's weights have norm ≤ max.
    MaxNorm { max: f64 },
    /// Each output unit's weights have norm 1.
    UnitNorm,
    /// Orthonormal rows or columns.
    Orthogonal,
    /// Spectral norm ≤ max.
    Lipschitz { max: f64 },
}

/// The admissible set as the model enforces it, for one kernel shape:
/// penalty, projection, gradient projection, reparametrization, the designed
/// weight of `mode=freeze` and the measurement are one match over this.
#[derive(Clone, Debug)]
pub enum Geometry {
    /// `ρ(h) = hᵀQh/hᵀh ≤ tol` per kernel; its admissible subspace is the
    /// span of Q's eigenvectors with eigenvalue ≤ tol.
    Quadratic { source: Source, q: DMatrix<f64> },
    /// A linear subspace of each kernel, by its orthogonal projector.
    Subspace { projector: DMatrix<f64> },
    /// The hyperplane `Σh = gain` of each kernel.
    Affine { gain: f64 },
    /// The non-negative orthant of the whole weight.
    Nonneg,
    /// Rows (output units) of norm ≤ max.
    RowNormBall { max: f64 },
    /// Rows of norm 1.
    RowNormSphere,
    /// Orthonormal rows (out ≤ in) or columns.
    Orthonormal,
    /// Spectral norm ≤ max.
    SpectralBall { max: f64 },
}

impl SetSpec {
    /// A family's set from its annotation's numbers (`number("max")`); bands
    /// come from `band()`, which reads their frequencies with the checker's
    /// diagnostics. None when a required number was rejected (already
    /// reported).
    pub fn read(family: Family, number: impl Fn(&str) -> Option<f64>, band: impl FnOnce() -> Option<BandSpec>) -> Option<SetSpec> {
        Some(match family {
            Family::Lowpass | Family::Highpass | Family::Bandpass | Family::Bandstop => {
                SetSpec::Quadratic(QuadraticSpec::new(Source::Band(band()?)))
            }
            Family::Smooth => SetSpec::Quadratic(QuadraticSpec::new(Source::Smooth(smooth::Smooth { order: number("order")? as usize }))),
            Family::Symmetric => SetSpec::Mirror { sign: 1.0 },
            Family::Antisymmetric => SetSpec::Mirror { sign: -1.0 },
            Family::DcGain => SetSpec::DcGain { gain: number("value")? },
            Family::Nonneg => SetSpec::Nonneg,
            Family::MaxNorm => SetSpec::MaxNorm { max: number("max")? },
            Family::UnitNorm => SetSpec::UnitNorm,
            Family::Orthogonal => SetSpec::Orthogonal,
            Family::Lipschitz => SetSpec::Lipschitz { max: number("max")? },
        })
    }

    /// The set for a weight whose kernels have shape `kernel` (`[k]`,
    /// `[kh, kw]`; a linear layer's rows: `[in]`).
    pub fn geometry(&self, kernel: &[usize]) -> Geometry {
        let taps: usize = kernel.iter().product();
        match self {
            SetSpec::Quadratic(spec) => Geometry::Quadratic { source: spec.source, q: spec.source.operator(kernel) },
            SetSpec::Mirror { sign } => Geometry::Subspace { projector: subspace::mirror_projector(taps, *sign) },
            SetSpec::DcGain { gain } => Geometry::Affine { gain: *gain },
            SetSpec::Nonneg => Geometry::Nonneg,
            SetSpec::MaxNorm { max } => Geometry::RowNormBall { max: *max },
            SetSpec::UnitNorm => Geometry::RowNormSphere,
            SetSpec::Orthogonal => Geometry::Orthonormal,
            SetSpec::Lipschitz { max } => Geometry::SpectralBall { max: *max },
        }
    }

    pub fn quadratic(&self) -> Option<&QuadraticSpec> {
        match self {
            SetSpec::Quadratic(spec) => Some(spec),
            SetSpec::Mirror { .. }
            | SetSpec::DcGain { .. }
            | SetSpec::Nonneg
            | SetSpec::MaxNorm { .. }
            | SetSpec::UnitNorm
            | SetSpec::Orthogonal
            | SetSpec::Lipschitz { .. } => None,
        }
    }

    /// The band, for band families.
    pub fn band(&self) -> Option<BandSpec> {
        self.quadratic().and_then(|q| q.source.band().copied())
    }

    /// The family's one number besides a band, with the name the user gives
    /// it: `dc_gain`'s `value`, `maxnorm`'s and `lipschitz`'s `max`.
    pub fn value(&self) -> Option<(&'static str, f64)> {
        match self {
            SetSpec::Quadratic(spec) => spec.source.value(),
            SetSpec::DcGain { gain } => Some(("value", *gain)),
            SetSpec::MaxNorm { max } | SetSpec::Lipschitz { max } => Some(("max", *max)),
            SetSpec::Mirror { .. } | SetSpec::Nonneg | SetSpec::UnitNorm | SetSpec::Orthogonal => None,
        }
    }

    /// This (the model's) set as a phase enforces it: what the set is stays
    /// the model's, the admissible dimension (which depends on the phase's
    /// tol and mode) is the phase's.
    pub fn in_phase(&self, phase: &SetSpec) -> SetSpec {
        let mut set = self.clone();
        if let SetSpec::Quadratic(q) = &mut set {
            q.admissible_dimension = phase.admissible_dimension();
        }
        set
    }

    /// The lowest ρ a kernel of the layer can reach (quadratic families).
    pub fn lambda_min(&self) -> Option<f64> {
        self.quadratic().and_then(|q| q.lambda_min)
    }

    /// The band edges in force on each kernel axis (band families).
    pub fn edges(&self) -> &[BandEdges] {
        self.quadratic().map(|q| q.edges.as_slice()).unwrap_or(&[])
    }

    /// The dimension of the admissible subspace (quadratic families, hard modes).
    pub fn admissible_dimension(&self) -> Option<usize> {
        self.quadratic().and_then(|q| q.admissible_dimension)
    }
}

impl Geometry {
    /// The linear part of a set that is a subspace or an affine set of each
    /// kernel of `taps` values, as reparametrization and the checker's
    /// feasibility test compose them: the projector onto the subspace (for
    /// a quadratic set, its admissible subspace at `tol`) and, for `Σh = g`,
    /// the gain. None for the other sets (cones, balls, spheres).
    pub fn linear_part(&self, taps: usize, tol: f64) -> Option<(DMatrix<f64>, Option<f64>)> {
        match self {
            Geometry::Quadratic { q, .. } => Some((quadratic::admissible_projector(q, tol).0, None)),
            Geometry::Subspace { projector } => Some((projector.clone(), None)),
            Geometry::Affine { gain } => Some((subspace::zero_sum_projector(taps), Some(*gain))),
            Geometry::Nonneg
            | Geometry::RowNormBall { .. }
            | Geometry::RowNormSphere
            | Geometry::Orthonormal
            | Geometry::SpectralBall { .. } => None,
        }
    }
}
