//! Constraints attached to tensors, one definition for every mode
//! (docs/constraints.md): the same operator Q gives the penalty `weight·ρ`,
//! the projector `P = V Vᵀ` applied after each step (and to the gradient), and
//! the designed filter of `mode=freeze`.
//!
//! Kernels are the rows of the weight reshaped to `[kernels, taps]`; norms are
//! per output unit (Keras' convention): the rows of `[out, in·taps]`.

use candle_core::{DType, Device, Result, Tensor};
use nalgebra::DMatrix;

use crate::constraint::bands::{self, BandSpec};
use crate::language::ir::{Constraint, Layer, Op};
use crate::language::schema::{Family, Mode};
use crate::model::{LowerError, Net, Reparam, ops};

/// A constraint bound to one parameter of the network.
pub struct Enforced {
    pub layer: String,
    /// Index of the constrained tensor in `Net::params`.
    pub param: usize,
    pub spec: Constraint,
    /// Taps per kernel (k, or kh·kw).
    taps: usize,
    /// Stopband operator (band families), `[taps, taps]`.
    q: Option<Tensor>,
    /// The same in f64, to rebuild the projector for a phase's tol.
    q_matrix: Option<DMatrix<f64>>,
    /// Projector onto the admissible subspace (linear families in project mode).
    projector: Option<Tensor>,
    /// Lagrangian mode: the multiplier λ ≥ 0, updated by dual ascent.
    multiplier: std::cell::Cell<f64>,
}

/// How well a constraint holds right now.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Measure {
    /// Band families: the largest ρ over kernels (each kernel must meet tol).
    pub stopband_ratio: Option<f64>,
    /// Band families: the mean ρ over kernels (what the penalty sees).
    pub stopband_ratio_mean: Option<f64>,
    /// Other families: the largest violation (0 when it holds exactly).
    pub violation: Option<f64>,
    /// Lagrangian mode: the multiplier.
    pub multiplier: Option<f64>,
    /// 1-D band families, read off each kernel's |H| on 1024 points over
    /// [0, 1] Nyquist (`bands::ResponseFigures` defines them exactly): the
    /// worst (largest) over kernels of `20·log10(max |H| in the stopband /
    /// max |H| in the passband as written, before any trimming)`, in dB.
    /// `None` for 2-D kernels, or when every kernel is zero.
    pub stopband_gain_db: Option<f64>,
    /// The worst kernel's passband ripple, `20·log10(max |H| / min |H|)` over
    /// the passband trimmed by half a transition at each inner edge; `None`
    /// when the kernel is too short for anything to be left of it (a
    /// low-pass with cutoff ≤ Δ/2: k = 15 at cutoff 0.2 with the default
    /// Δ = 6.6/k), and for 2-D kernels.
    pub passband_ripple_db: Option<f64>,
    /// The mean over kernels of `Σ h`, the gain at frequency 0 (1-D).
    pub dc_gain: Option<f64>,
    pub satisfied: bool,
}

fn to_tensor(m: &DMatrix<f64>, device: &Device, dtype: DType) -> Result<Tensor> {
    let (r, c) = m.shape();
    let data: Vec<f64> = (0..r).flat_map(|i| (0..c).map(move |j| m[(i, j)])).collect();
    Tensor::from_vec(data, (r, c), device)?.to_dtype(dtype)
}

/// The mirror-image projector `(I ± J)/2` on `taps` (J flips the kernel, in
/// 2-D both axes).
fn mirror_projector(taps: usize, sign: f64) -> DMatrix<f64> {
    DMatrix::from_fn(taps, taps, |i, j| 0.5 * (if i == j { 1.0 } else { 0.0 } + if i + j == taps - 1 { sign } else { 0.0 }))
}

/// The designed filter for every kernel of a conv weight `shape`: each of a
/// layer's `in/groups` input kernels gets `h / (in/groups)`, so every output
/// channel is the filtered mean of its inputs (unit gain at DC for a low-pass).
pub fn designed_weight(spec: &BandSpec, shape: &[usize], device: &Device) -> Result<Tensor> {
    let kernel = &shape[2..];
    if !(1..=2).contains(&kernel.len()) {
        candle_core::bail!("designed filters are 1-D or 2-D");
    }
    let h = bands::design_kernel(spec, kernel);
    let inputs = shape[1] as f64;
    let kernels = shape[0] * shape[1];
    let data: Vec<f64> = (0..kernels).flat_map(|_| h.iter().map(|x| x / inputs)).collect();
    Tensor::from_vec(data, shape, device)
}

impl Enforced {
    /// Attaches every constraint of the model to its tensor; `mode=freeze`
    /// sets the weight to the designed filter and freezes it here.
    pub fn attach_all(net: &mut Net, layers: &[&Layer]) -> std::result::Result<Vec<Enforced>, LowerError> {
        let mut out = Vec::new();
        for layer in layers {
            for c in &layer.constraints {
                out.push(Enforced::attach(net, layer, c)?);
            }
        }
        Ok(out)
    }

    fn attach(net: &mut Net, layer: &Layer, c: &Constraint) -> std::result::Result<Enforced, LowerError> {
        let name = format!("{}.weight", layer.name);
        let param = net.param_index(&name).expect("constrained layers have a weight");
        let dims = net.params[param].var.dims().to_vec();
        let kernel: Vec<usize> = match &layer.op {
            Op::Conv(conv) => conv.kernel.clone(),
            _ => vec![dims[1]],
        };
        let taps: usize = kernel.iter().product();
        let unsupported =
            |what: &str| LowerError::Unsupported(format!("{}: `@{}` with mode={} {what}", layer.name, c.family.name(), c.mode));
        let (device, dtype) = (net.device.clone(), net.dtype);
        let mut q = None;
        let mut q_matrix = None;
        let mut projector = None;
        if let Some(band) = &c.band {
            let qm = band.stopband_operator(&kernel);
            // Made for every mode: a phase may switch this constraint to project.
            if c.mode != Mode::Freeze {
                let (p, _) = bands::admissible_projector(&qm, c.tol);
                projector = Some(to_tensor(&p, &device, dtype)?);
            }
            if c.mode == Mode::Freeze {
                let w = designed_weight(band, &dims, &device)?;
                net.params[param].var.set(&w.to_dtype(dtype)?)?;
                net.params[param].frozen = true;
            }
            q = Some(to_tensor(&qm, &device, dtype)?);
            q_matrix = Some(qm);
        } else {
            projector = match c.family {
                Family::Symmetric => Some(to_tensor(&mirror_projector(taps, 1.0), &device, dtype)?),
                Family::Antisymmetric => Some(to_tensor(&mirror_projector(taps, -1.0), &device, dtype)?),
                _ => None,
            };
        }
        // Every reparametrized constraint of the layer is served by one
        // reparametrization, made when the first of them is attached.
        if c.mode == Mode::Reparam && net.params[param].reparam.is_none() {
            let together: Vec<&Constraint> = layer.constraints.iter().filter(|x| x.mode == Mode::Reparam).collect();
            let reparam = if c.family == Family::Nonneg {
                Reparam::Softplus
            } else {
                let (basis, offset) = composed_subspace(&together, &kernel).map_err(|why| unsupported(&why))?;
                let offset = offset.map(|h0| Tensor::from_vec(h0, taps, &device).and_then(|t| t.to_dtype(dtype))).transpose()?;
                Reparam::Subspace { basis: to_tensor(&basis, &device, dtype)?, offset, shape: dims.clone() }
            };
            net.reparametrize(param, reparam)?;
        }
        Ok(Enforced {
            layer: layer.name.clone(),
            param,
            spec: c.clone(),
            taps,
            q,
            q_matrix,
            projector,
            multiplier: std::cell::Cell::new(0.0),
        })
    }

    /// Enforces `spec` from now on (a phase's mode, weight and tol; the band
    /// is the model's). A band's projector is rebuilt when the tol changes,
    /// so a phase's `tol` is the one projected onto, not only the one reported.
    pub fn set_spec(&mut self, spec: Constraint) -> Result<()> {
        if let (Some(qm), Some(old)) = (&self.q_matrix, &self.projector)
            && spec.tol != self.spec.tol
        {
            let (p, _) = bands::admissible_projector(qm, spec.tol);
            self.projector = Some(to_tensor(&p, old.device(), old.dtype())?);
        }
        self.spec = spec;
        Ok(())
    }

    fn kernels(&self, w: &Tensor) -> Result<Tensor> {
        w.reshape(((), self.taps))
    }

    /// Rows per output unit, for norms.
    fn units(w: &Tensor) -> Result<Tensor> {
        w.reshape((w.dim(0)?, ()))
    }

    /// The violation the penalty (and the report) measures, as a differentiable
    /// scalar: mean ρ for bands, and the notes' formulas for the others.
    pub fn violation(&self, w: &Tensor) -> Result<Tensor> {
        match self.spec.family {
            _ if self.q.is_some() => ops::mean_stopband_ratio(w, self.q.as_ref().unwrap(), None),
            Family::Symmetric | Family::Antisymmetric => {
                let h = self.kernels(w)?;
                let flipped = h.flip_last()?;
                let diff = if self.spec.family == Family::Symmetric { (&h - flipped)? } else { (&h + flipped)? };
                diff.sqr()?.sum(1)?.mean_all()
            }
            Family::DcGain => {
                let g = self.spec.value.unwrap_or(1.0);
                (self.kernels(w)?.sum(1)? - g)?.sqr()?.mean_all()
            }
            Family::Nonneg => w.neg()?.relu()?.sqr()?.sum_all(),
            Family::MaxNorm => {
                let c = self.spec.value.unwrap_or(1.0);
                (Self::units(w)?.sqr()?.sum(1)?.sqrt()? - c)?.relu()?.sqr()?.sum_all()
            }
            Family::UnitNorm => (Self::units(w)?.sqr()?.sum(1)?.sqrt()? - 1.0)?.sqr()?.sum_all(),
            Family::Orthogonal => {
                // ‖W Wᵀ − I‖²_F on the smaller side: orthonormal rows if out ≤ in, else columns.
                let (out, inp) = w.dims2()?;
                let gram = if out <= inp { w.matmul(&w.t()?.contiguous()?)? } else { w.t()?.contiguous()?.matmul(w)? };
                let n = out.min(inp);
                let eye = Tensor::eye(n, w.dtype(), w.device())?;
                (gram - eye)?.sqr()?.sum_all()
            }
            Family::Lipschitz => {
                // σ_max = uᵀWv with the top singular pair of the current W held fixed
                // (the spectral-norm trick: its gradient is u vᵀ).
                let (u, _, v) = top_singular(w)?;
                let sigma = u.unsqueeze(0)?.matmul(w)?.matmul(&v.unsqueeze(1)?)?.flatten_all()?.sum_all()?;
                (sigma - self.spec.value.unwrap_or(1.0))?.relu()?.sqr()
            }
            _ => unreachable!("rejected in attach"),
        }
    }

    /// The loss term: `weight · violation` in penalty mode; in lagrangian mode
    /// `λ · mean over kernels of max(0, ρ − tol)` for bands (λ · violation for
    /// the others), with λ held fixed during the step.
    pub fn loss_term(&self, net: &Net) -> Result<Option<Tensor>> {
        match self.spec.mode {
            Mode::Penalty if self.spec.weight != 0.0 => {
                let w = net.effective(self.param)?;
                Ok(Some((self.violation(&w)? * self.spec.weight)?))
            }
            Mode::Lagrangian if self.multiplier.get() > 0.0 => {
                let w = net.effective(self.param)?;
                let term = match &self.q {
                    Some(q) => ops::mean_stopband_ratio(&w, q, Some(self.spec.tol))?,
                    None => self.violation(&w)?,
                };
                Ok(Some((term * self.multiplier.get())?))
            }
            _ => Ok(None),
        }
    }

    /// The current lagrangian multiplier.
    pub fn multiplier(&self) -> f64 {
        self.multiplier.get()
    }

    /// Restores a multiplier from a checkpoint.
    pub fn set_multiplier(&self, value: f64) {
        self.multiplier.set(value);
    }

    /// Lagrangian mode, after a step: `λ ← max(0, λ + η·(g − tol))` with g the
    /// largest ρ over kernels (bands) or the violation, so λ rises while the
    /// constraint is broken and falls back once it holds with room to spare.
    pub fn dual_update(&self, net: &Net) -> Result<()> {
        if self.spec.mode != Mode::Lagrangian {
            return Ok(());
        }
        let g = self.headline(net)?;
        self.multiplier.set((self.multiplier.get() + self.spec.dual_lr * (g - self.spec.tol)).max(0.0));
        Ok(())
    }

    /// Projects a gradient onto the admissible subspace (linear projections of
    /// a plain weight only; coordinates of a reparametrized one are free).
    pub fn project_gradient(&self, net: &Net, grad: &Tensor) -> Result<Tensor> {
        match (&self.projector, self.spec.mode) {
            (Some(p), Mode::Project) if net.params[self.param].reparam.is_none() => self.kernels(grad)?.matmul(p)?.reshape(grad.dims()),
            _ => Ok(grad.clone()),
        }
    }

    /// After an optimizer step: puts the weight back into the admissible set.
    pub fn project(&self, net: &Net) -> Result<()> {
        if self.spec.mode != Mode::Project {
            return Ok(());
        }
        let w = net.effective(self.param)?.detach();
        net.set_effective(self.param, &self.project_value(&w)?)
    }

    /// The nearest point of this constraint's set to `w` (project mode).
    pub fn project_value(&self, w: &Tensor) -> Result<Tensor> {
        let w = w.clone();
        let projected = match (&self.projector, self.spec.family) {
            (Some(p), _) => self.kernels(&w)?.matmul(p)?.reshape(w.dims())?,
            (None, Family::DcGain) => {
                let g = self.spec.value.unwrap_or(1.0);
                let h = self.kernels(&w)?;
                let shift = ((h.sum_keepdim(1)? * -1.0)? + g)? / self.taps as f64;
                h.broadcast_add(&shift?)?.reshape(w.dims())?
            }
            (None, Family::Nonneg) => w.relu()?,
            (None, Family::Orthogonal) => {
                // The nearest matrix with orthonormal rows (or columns): the polar factor U Vᵀ.
                let m = to_matrix(&w)?;
                let svd = m.svd(true, true);
                let polar = svd.u.expect("u requested") * svd.v_t.expect("v requested");
                to_tensor(&polar, w.device(), w.dtype())?
            }
            (None, Family::Lipschitz) => {
                let (_, sigma, _) = top_singular(&w)?;
                let c = self.spec.value.unwrap_or(1.0);
                (w / (sigma / c).max(1.0))?
            }
            (None, Family::MaxNorm | Family::UnitNorm) => {
                let rows = Self::units(&w)?;
                let norms = (rows.sqr()?.sum_keepdim(1)?.sqrt()? + 1e-12)?;
                let target = if self.spec.family == Family::MaxNorm {
                    norms.clamp(0.0, self.spec.value.unwrap_or(1.0))?
                } else {
                    norms.ones_like()?
                };
                rows.broadcast_mul(&(target / norms)?)?.reshape(w.dims())?
            }
            _ => w,
        };
        Ok(projected)
    }

    /// After an optimizer step, puts every constrained weight back into its
    /// set. A weight with several projected constraints gets the projection
    /// onto their intersection by Dykstra's alternating projections (exact for
    /// convex sets; subspaces that commute, such as a band and symmetry, meet
    /// in one sweep).
    pub fn project_all(enforced: &[Enforced], net: &Net) -> Result<()> {
        let mut params: Vec<usize> = enforced.iter().filter(|e| e.spec.mode == Mode::Project).map(|e| e.param).collect();
        params.dedup();
        for param in params {
            let group: Vec<&Enforced> = enforced.iter().filter(|e| e.param == param && e.spec.mode == Mode::Project).collect();
            if let [only] = group.as_slice() {
                only.project(net)?;
                continue;
            }
            let start = net.effective(param)?.detach();
            net.set_effective(param, &dykstra(&group, &start)?)?;
        }
        Ok(())
    }

    /// The headline figure alone, cheaply, for every step (the live bar and
    /// the dual update): the largest ρ for bands, else the violation.
    pub fn headline(&self, net: &Net) -> Result<f64> {
        let w = net.effective(self.param)?.detach();
        match &self.q {
            Some(q) => ops::stopband_ratios(&w, q)?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>(),
            None => self.violation(&w)?.to_dtype(DType::F64)?.to_scalar::<f64>(),
        }
    }

    /// Every figure of the report (once per epoch: the response figures
    /// evaluate each kernel's spectrum).
    pub fn measure(&self, net: &Net) -> Result<Measure> {
        let w = net.effective(self.param)?.detach().to_dtype(DType::F64)?;
        let multiplier = (self.spec.mode == Mode::Lagrangian).then(|| self.multiplier.get());
        let q64 = self.q.as_ref().map(|q| q.to_dtype(DType::F64)).transpose()?;
        Ok(match q64 {
            Some(q) => {
                let rho = ops::stopband_ratios(&w, &q)?.to_vec1::<f64>()?;
                let max = rho.iter().cloned().fold(0.0, f64::max);
                let mean = rho.iter().sum::<f64>() / rho.len().max(1) as f64;
                // Response figures for 1-D kernels (a 2-D kernel has no single axis).
                let one_d = w.rank() == 3;
                let figures: Vec<bands::ResponseFigures> = match (&self.spec.band, one_d) {
                    (Some(band), true) => {
                        let all: Vec<f64> = w.flatten_all()?.to_vec1()?;
                        all.chunks(self.taps).map(|h| band.figures(h)).collect()
                    }
                    _ => Vec::new(),
                };
                // The worst kernel's figure, over the kernels that have one.
                let worst = |f: fn(&bands::ResponseFigures) -> Option<f64>| figures.iter().filter_map(f).reduce(f64::max);
                let stopband_gain_db = worst(|f| f.stopband_gain_db);
                let passband_ripple_db = worst(|f| f.passband_ripple_db);
                let dc_gain = (!figures.is_empty()).then(|| figures.iter().map(|f| f.dc_gain).sum::<f64>() / figures.len() as f64);
                Measure {
                    stopband_ratio: Some(max),
                    stopband_ratio_mean: Some(mean),
                    violation: None,
                    multiplier,
                    stopband_gain_db,
                    passband_ripple_db,
                    dc_gain,
                    satisfied: max <= self.spec.tol + 1e-9,
                }
            }
            None => {
                let v = self.violation(&w)?.to_scalar::<f64>()?;
                Measure {
                    stopband_ratio: None,
                    stopband_ratio_mean: None,
                    violation: Some(v),
                    multiplier,
                    stopband_gain_db: None,
                    passband_ripple_db: None,
                    dc_gain: None,
                    satisfied: v <= self.spec.tol.max(1e-10),
                }
            }
        })
    }
}

/// The linear part of a subspace constraint (its projector) and, for
/// `dc_gain`, the value the taps must sum to.
fn linear_part(c: &Constraint, kernel: &[usize]) -> std::result::Result<(DMatrix<f64>, Option<f64>), String> {
    let taps: usize = kernel.iter().product();
    Ok(match (&c.band, c.family) {
        (Some(band), _) => (bands::admissible_projector(&band.stopband_operator(kernel), c.tol).0, None),
        (None, Family::Symmetric) => (mirror_projector(taps, 1.0), None),
        (None, Family::Antisymmetric) => (mirror_projector(taps, -1.0), None),
        (None, Family::DcGain) => {
            (DMatrix::identity(taps, taps) - DMatrix::from_element(taps, taps, 1.0 / taps as f64), c.value.or(Some(1.0)))
        }
        _ => return Err("has no reparametrization".into()),
    })
}

/// One reparametrization for several constraints: an orthonormal basis of the
/// intersection of their subspaces (the null space of Σ(I − Pᵢ)) and, with a
/// `dc_gain`, the point of that intersection's span with unit direction
/// summing to the gain. Computed once, when the model is compiled.
///
/// The basis is the documented one (`bands::ordered_basis`): the
/// intersection's basis rotated by the eigenvectors of `VᵀQV`, `Q` the sum of
/// the band constraints' stopband operators (for one band alone: Q's
/// eigenvectors with eigenvalue ≤ tol), smallest eigenvalue first, repeated
/// eigenvalues and signs by the canonical rule; without a band (`Q = 0`) the
/// canonical basis of the whole intersection. Adam's steps are per
/// coordinate, so the basis shapes the trajectory.
pub fn composed_subspace(constraints: &[&Constraint], kernel: &[usize]) -> std::result::Result<(DMatrix<f64>, Option<Vec<f64>>), String> {
    let taps: usize = kernel.iter().product();
    let eye = DMatrix::<f64>::identity(taps, taps);
    let mut directions = DMatrix::zeros(taps, taps);
    let mut without_dc = DMatrix::zeros(taps, taps);
    let mut gain = None;
    let mut stopband = DMatrix::zeros(taps, taps);
    for c in constraints {
        let (p, dc) = linear_part(c, kernel)?;
        if let Some(band) = &c.band {
            stopband += band.stopband_operator(kernel);
        }
        directions += &eye - &p;
        if dc.is_some() {
            gain = dc;
        } else {
            without_dc += &eye - &p;
        }
    }
    let basis = bands::ordered_basis(&bands::admissible_basis(&directions, 1e-9), &stopband);
    let offset = match gain {
        None => None,
        Some(g) => {
            // The subspace the other constraints allow, and its kernel closest to
            // a constant one, scaled to sum to g.
            let allowed = bands::admissible_basis(&without_dc, 1e-9);
            let ones = nalgebra::DVector::from_element(taps, 1.0);
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

/// Dykstra's algorithm: alternating projections with correction terms, which
/// converge to the projection of `x0` onto the intersection of convex sets.
pub fn dykstra(sets: &[&Enforced], x0: &Tensor) -> Result<Tensor> {
    const SWEEPS: usize = 200;
    let mut x = x0.clone();
    let mut corrections: Vec<Tensor> = sets.iter().map(|_| x0.zeros_like()).collect::<Result<_>>()?;
    for _ in 0..SWEEPS {
        let before = x.clone();
        for (set, p) in sets.iter().zip(corrections.iter_mut()) {
            let y = set.project_value(&(&x + &*p)?)?;
            *p = ((&x + &*p)? - &y)?;
            x = y;
        }
        let change = (&x - before)?.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if change < 1e-9 {
            break;
        }
    }
    Ok(x)
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

trait FlipLast {
    fn flip_last(&self) -> Result<Tensor>;
}

impl FlipLast for Tensor {
    /// Reverses the last axis (a kernel's taps; a flattened 2-D kernel reversed
    /// is the kernel flipped along both axes).
    fn flip_last(&self) -> Result<Tensor> {
        let n = self.dim(candle_core::D::Minus1)?;
        let idx: Vec<u32> = (0..n as u32).rev().collect();
        let idx = Tensor::from_vec(idx, n, self.device())?;
        self.index_select(&idx, self.rank() - 1)
    }
}
