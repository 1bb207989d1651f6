//! The admissible sets on tensors: each hook (penalty violation, projection,
//! gradient projection, reparametrization, designed weight, measurement) is
//! one match over the set's geometry (`constraint::Geometry`), never over
//! the family, with no catch-all arm: a new geometry is a compile error in
//! every hook until it says what it does there.
#![deny(clippy::wildcard_enum_match_arm)]

use candle_core::{DType, Device, Result, Tensor};
use nalgebra::DMatrix;

use crate::constraint::quadratic::{self, Source};
use crate::constraint::{Geometry, bands, subspace};
use crate::language::ir::Constraint;
use crate::model::{Reparam, ops};

/// A constraint's set with its operators as tensors, made once at attach.
pub(super) enum Set {
    /// `ρ = hᵀQh/hᵀh ≤ tol` per kernel; `projector` is onto the admissible
    /// subspace at the tol in force (rebuilt from `q_matrix` when it changes).
    Quadratic {
        source: Source,
        q: Tensor,
        q_matrix: DMatrix<f64>,
        projector: Tensor,
    },
    Subspace {
        projector: Tensor,
    },
    Affine {
        gain: f64,
    },
    Nonneg,
    RowNormBall {
        max: f64,
    },
    RowNormSphere,
    Orthonormal,
    SpectralBall {
        max: f64,
    },
}

/// The figures of a measurement, before the mode adds its multiplier.
pub(super) struct Figures {
    pub stopband_ratio: Option<f64>,
    pub stopband_ratio_mean: Option<f64>,
    pub violation: Option<f64>,
    pub stopband_gain_db: Option<f64>,
    pub passband_ripple_db: Option<f64>,
    pub dc_gain: Option<f64>,
    pub satisfied: bool,
}

pub(super) fn to_tensor(m: &DMatrix<f64>, device: &Device, dtype: DType) -> Result<Tensor> {
    let (r, c) = m.shape();
    let data: Vec<f64> = (0..r).flat_map(|i| (0..c).map(move |j| m[(i, j)])).collect();
    // Converted on the host: some devices (Metal) have no f64.
    Tensor::from_vec(data, (r, c), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)
}

/// Kernels are the rows of the weight reshaped to `[kernels, taps]`.
fn kernels(w: &Tensor, taps: usize) -> Result<Tensor> {
    w.reshape(((), taps))
}

/// Rows per output unit, for norms (Keras' convention).
fn units(w: &Tensor) -> Result<Tensor> {
    w.reshape((w.dim(0)?, ()))
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)?.to_scalar::<f64>()
}

impl Set {
    pub fn new(geometry: Geometry, tol: f64, device: &Device, dtype: DType) -> Result<Set> {
        Ok(match geometry {
            Geometry::Quadratic { source, q } => {
                let projector = to_tensor(&quadratic::admissible_projector(&q, tol).0, device, dtype)?;
                Set::Quadratic { source, q: to_tensor(&q, device, dtype)?, q_matrix: q, projector }
            }
            Geometry::Subspace { projector } => Set::Subspace { projector: to_tensor(&projector, device, dtype)? },
            Geometry::Affine { gain } => Set::Affine { gain },
            Geometry::Nonneg => Set::Nonneg,
            Geometry::RowNormBall { max } => Set::RowNormBall { max },
            Geometry::RowNormSphere => Set::RowNormSphere,
            Geometry::Orthonormal => Set::Orthonormal,
            Geometry::SpectralBall { max } => Set::SpectralBall { max },
        })
    }

    /// A phase's tol: a quadratic set's projector is rebuilt, so the tol
    /// reported is the one projected onto.
    pub fn retol(&mut self, tol: f64) -> Result<()> {
        // Only a quadratic set's projector depends on tol.
        if let Set::Quadratic { q_matrix, projector, .. } = self {
            *projector = to_tensor(&quadratic::admissible_projector(q_matrix, tol).0, projector.device(), projector.dtype())?;
        }
        Ok(())
    }

    /// The quadratic set's source and operator, for the hooks where every
    /// other set is measured by its violation.
    fn as_quadratic(&self) -> Option<(&Source, &Tensor)> {
        match self {
            Set::Quadratic { source, q, .. } => Some((source, q)),
            Set::Subspace { .. }
            | Set::Affine { .. }
            | Set::Nonneg
            | Set::RowNormBall { .. }
            | Set::RowNormSphere
            | Set::Orthonormal
            | Set::SpectralBall { .. } => None,
        }
    }

    /// The projector onto the set's linear subspace, for the sets that are one.
    fn linear_projector(&self) -> Option<&Tensor> {
        match self {
            Set::Quadratic { projector, .. } | Set::Subspace { projector } => Some(projector),
            Set::Affine { .. }
            | Set::Nonneg
            | Set::RowNormBall { .. }
            | Set::RowNormSphere
            | Set::Orthonormal
            | Set::SpectralBall { .. } => None,
        }
    }

    /// The violation the penalty (and the report) measures, as a
    /// differentiable scalar: mean ρ for quadratic sets, the notes' formulas
    /// for the others.
    pub fn violation(&self, w: &Tensor, taps: usize) -> Result<Tensor> {
        match self {
            Set::Quadratic { q, .. } => ops::mean_quadratic_ratio(w, q, None),
            Set::Subspace { projector } => {
                // The squared distance from each kernel to its reflection
                // through the subspace, ‖h − Rh‖² = ‖2(I − P)h‖² (R = 2P − I),
                // averaged: for a mirror set R = ±J, the notes' ‖h ∓ Jh‖².
                let h = kernels(w, taps)?;
                // The report measures in f64, the step in the model's dtype.
                let off = (&h - h.matmul(&projector.to_dtype(h.dtype())?)?)?;
                off.sqr()?.sum(1)?.mean_all()? * 4.0
            }
            Set::Affine { gain } => (kernels(w, taps)?.sum(1)? - *gain)?.sqr()?.mean_all(),
            Set::Nonneg => w.neg()?.relu()?.sqr()?.sum_all(),
            Set::RowNormBall { max } => (units(w)?.sqr()?.sum(1)?.sqrt()? - *max)?.relu()?.sqr()?.sum_all(),
            Set::RowNormSphere => (units(w)?.sqr()?.sum(1)?.sqrt()? - 1.0)?.sqr()?.sum_all(),
            Set::Orthonormal => {
                // ‖W Wᵀ − I‖²_F on the smaller side: orthonormal rows if out ≤ in, else columns.
                let (out, inp) = w.dims2()?;
                let gram = if out <= inp { w.matmul(&w.t()?.contiguous()?)? } else { w.t()?.contiguous()?.matmul(w)? };
                let eye = Tensor::eye(out.min(inp), w.dtype(), w.device())?;
                (gram - eye)?.sqr()?.sum_all()
            }
            Set::SpectralBall { max } => {
                // σ_max = uᵀWv with the top singular pair of the current W held fixed
                // (the spectral-norm trick: its gradient is u vᵀ).
                let (u, _, v) = top_singular(w)?;
                let sigma = u.unsqueeze(0)?.matmul(w)?.matmul(&v.unsqueeze(1)?)?.flatten_all()?.sum_all()?;
                (sigma - *max)?.relu()?.sqr()
            }
        }
    }

    /// Lagrangian mode's term before the multiplier: the mean over kernels
    /// of `max(0, ρ − tol)` for a quadratic set, the violation otherwise.
    pub fn lagrangian_term(&self, w: &Tensor, taps: usize, tol: f64) -> Result<Tensor> {
        match self.as_quadratic() {
            Some((_, q)) => ops::mean_quadratic_ratio(w, q, Some(tol)),
            None => self.violation(w, taps),
        }
    }

    /// The headline figure: the largest ρ over kernels, else the violation.
    pub fn headline(&self, w: &Tensor, taps: usize) -> Result<f64> {
        match self.as_quadratic() {
            Some((_, q)) => scalar(&ops::quadratic_ratios(w, q)?.max_all()?),
            None => scalar(&self.violation(w, taps)?),
        }
    }

    /// The nearest point of the set to `w`.
    pub fn project(&self, w: &Tensor, taps: usize) -> Result<Tensor> {
        match self {
            Set::Quadratic { projector, .. } | Set::Subspace { projector } => kernels(w, taps)?.matmul(projector)?.reshape(w.dims()),
            Set::Affine { gain } => {
                let h = kernels(w, taps)?;
                let shift = ((h.sum_keepdim(1)? * -1.0)? + *gain)? / taps as f64;
                h.broadcast_add(&shift?)?.reshape(w.dims())
            }
            Set::Nonneg => w.relu(),
            Set::RowNormBall { max } => rescale_rows(w, |norms| norms.clamp(0.0, *max)),
            Set::RowNormSphere => rescale_rows(w, |norms| norms.ones_like()),
            Set::Orthonormal => {
                // The nearest matrix with orthonormal rows (or columns): the polar factor U Vᵀ.
                let svd = to_matrix(w)?.svd(true, true);
                let polar = svd.u.expect("u requested") * svd.v_t.expect("v requested");
                to_tensor(&polar, w.device(), w.dtype())
            }
            Set::SpectralBall { max } => {
                let (_, sigma, _) = top_singular(w)?;
                w / (sigma / *max).max(1.0)
            }
        }
    }

    /// A gradient projected onto the set's linear directions (subspaces
    /// only: the steps then stay in them); unchanged for the other sets.
    pub fn project_gradient(&self, grad: &Tensor, taps: usize) -> Result<Tensor> {
        match self.linear_projector() {
            Some(projector) => kernels(grad, taps)?.matmul(projector)?.reshape(grad.dims()),
            None => Ok(grad.clone()),
        }
    }

    /// `mode=reparam`: softplus for the orthant; for the linear sets, one
    /// basis (and offset) for every reparametrized constraint of the layer
    /// together. Err(why) for the sets that have none.
    pub fn reparametrization(
        &self,
        together: &[&Constraint],
        kernel: &[usize],
        dims: &[usize],
        device: &Device,
        dtype: DType,
    ) -> Result<std::result::Result<Reparam, String>> {
        match self {
            Set::Nonneg => Ok(Ok(Reparam::Softplus)),
            Set::Quadratic { .. } | Set::Subspace { .. } | Set::Affine { .. } => {
                let (basis, offset) = match subspace::composed_subspace(together, kernel) {
                    Ok(found) => found,
                    Err(why) => return Ok(Err(why)),
                };
                let taps: usize = kernel.iter().product();
                let offset = offset
                    .map(|h0| Tensor::from_vec(h0, taps, &Device::Cpu).and_then(|t| t.to_dtype(dtype)?.to_device(device)))
                    .transpose()?;
                Ok(Ok(Reparam::Subspace { basis: to_tensor(&basis, device, dtype)?, offset, shape: dims.to_vec() }))
            }
            Set::RowNormBall { .. } | Set::RowNormSphere | Set::Orthonormal | Set::SpectralBall { .. } => {
                Ok(Err("has no reparametrization".into()))
            }
        }
    }

    /// `mode=freeze`: the kernel the weights are fixed to, or why there is none.
    pub fn designed_kernel(&self, kernel: &[usize]) -> std::result::Result<Vec<f64>, String> {
        match self.as_quadratic() {
            Some((source, _)) => source.designed_kernel(kernel).map_err(|no| no.reason),
            None => Err("has no designed weight".into()),
        }
    }

    /// Every figure of the report (`w` in f64): ρ (max and mean) and, for a
    /// band on 1-D kernels, the response figures; the violation otherwise.
    pub fn measure(&self, w: &Tensor, taps: usize, tol: f64) -> Result<Figures> {
        match self.as_quadratic() {
            Some((source, q)) => {
                let rho = ops::quadratic_ratios(w, &q.to_dtype(DType::F64)?)?.to_vec1::<f64>()?;
                let max = rho.iter().cloned().fold(0.0, f64::max);
                let mean = rho.iter().sum::<f64>() / rho.len().max(1) as f64;
                // Response figures for 1-D kernels (a 2-D kernel has no single axis).
                let figures: Vec<bands::ResponseFigures> = match (source.band(), w.rank() == 3) {
                    (Some(band), true) => {
                        let all: Vec<f64> = w.flatten_all()?.to_vec1()?;
                        all.chunks(taps).map(|h| band.figures(h)).collect()
                    }
                    _ => Vec::new(),
                };
                // The worst kernel's figure, over the kernels that have one.
                let worst = |f: fn(&bands::ResponseFigures) -> Option<f64>| figures.iter().filter_map(f).reduce(f64::max);
                Ok(Figures {
                    stopband_ratio: Some(max),
                    stopband_ratio_mean: Some(mean),
                    violation: None,
                    stopband_gain_db: worst(|f| f.stopband_gain_db),
                    passband_ripple_db: worst(|f| f.passband_ripple_db),
                    dc_gain: (!figures.is_empty()).then(|| figures.iter().map(|f| f.dc_gain).sum::<f64>() / figures.len() as f64),
                    satisfied: max <= tol + 1e-9,
                })
            }
            None => {
                let v = scalar(&self.violation(w, taps)?)?;
                Ok(Figures {
                    stopband_ratio: None,
                    stopband_ratio_mean: None,
                    violation: Some(v),
                    stopband_gain_db: None,
                    passband_ripple_db: None,
                    dc_gain: None,
                    satisfied: v <= tol.max(1e-10),
                })
            }
        }
    }
}

/// Each row (output unit) scaled to the norm `target(norms)`.
fn rescale_rows(w: &Tensor, target: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let rows = units(w)?;
    let norms = (rows.sqr()?.sum_keepdim(1)?.sqrt()? + 1e-12)?;
    rows.broadcast_mul(&(target(&norms)? / norms)?)?.reshape(w.dims())
}

fn to_matrix(w: &Tensor) -> Result<DMatrix<f64>> {
    let (r, c) = w.dims2()?;
    let data: Vec<f64> = w.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    Ok(DMatrix::from_row_slice(r, c, &data))
}

/// The top singular vectors (as tensors, no gradient) and value of a matrix.
fn top_singular(w: &Tensor) -> Result<(Tensor, f64, Tensor)> {
    let m = to_matrix(&w.detach())?;
    let svd = m.svd(true, true);
    let (u, vt) = (svd.u.expect("u requested"), svd.v_t.expect("v requested"));
    let best = svd.singular_values.iter().enumerate().fold((0, f64::MIN), |b, (i, &s)| if s > b.1 { (i, s) } else { b });
    let u: Vec<f64> = u.column(best.0).iter().cloned().collect();
    let v: Vec<f64> = vt.row(best.0).iter().cloned().collect();
    let (n_u, n_v) = (u.len(), v.len());
    Ok((Tensor::from_vec(u, n_u, w.device())?.to_dtype(w.dtype())?, best.1, Tensor::from_vec(v, n_v, w.device())?.to_dtype(w.dtype())?))
}
