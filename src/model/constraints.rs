//! Constraints attached to tensors, one definition for every mode
//! (docs/constraints.md). What each **mode** does is here, one exhaustive
//! match over `Mode` per hook: at attach ([`Enforced::attach`]), in the loss
//! ([`Enforced::loss_term`]), to the gradient ([`Enforced::project_gradient`]),
//! after the step ([`projects_after_step`], [`Enforced::project_all`]) and in
//! the dual update ([`Enforced::dual_update`]). What each **set** does (its
//! violation, projection, reparametrization, designed weight, figures) is in
//! `sets`, one match over the geometry per hook; no code here names a family.
//!
//! Kernels are the rows of the weight reshaped to `[kernels, taps]`; norms are
//! per output unit (Keras' convention): the rows of `[out, in·taps]`.
#![deny(clippy::wildcard_enum_match_arm)]

mod sets;

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Result, Tensor};

use crate::constraint::bands::BandSpec;
use crate::language::ir::{Constraint, Layer, Op};
use crate::language::schema::Mode;
use crate::model::params::{Kind, ParamName};
use crate::model::{LowerError, Net};
use sets::Set;

pub use crate::constraint::subspace::composed_subspace;

/// A constraint bound to one parameter of the network.
pub struct Enforced {
    pub layer: String,
    /// Index of the constrained tensor in `Net::params`.
    pub param: usize,
    pub spec: Constraint,
    /// Taps per kernel (k, or kh·kw).
    taps: usize,
    /// The admissible set, with its operators as tensors.
    set: Set,
    /// Lagrangian mode: the multiplier λ ≥ 0, updated by dual ascent; its
    /// bits, so that a step can run on another thread (`ops::on_rayon_thread`).
    multiplier: AtomicU64,
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

/// Whether a mode puts the weight back into its set after every optimizer step.
pub fn projects_after_step(mode: Mode) -> bool {
    match mode {
        Mode::Project => true,
        Mode::Penalty | Mode::Reparam | Mode::Freeze | Mode::Lagrangian => false,
    }
}

/// Every kernel of a conv weight `shape` set to `h / (in/groups)`, so every
/// output channel is the filtered mean of its inputs (unit gain at DC for a
/// low-pass design).
fn spread_kernel(h: &[f64], shape: &[usize], device: &Device) -> Result<Tensor> {
    let inputs = shape[1] as f64;
    let kernels = shape[0] * shape[1];
    let data: Vec<f64> = (0..kernels).flat_map(|_| h.iter().map(|x| x / inputs)).collect();
    Tensor::from_vec(data, shape, device)
}

/// The designed filter for every kernel of a conv weight `shape` (`@init`
/// with a designed scheme).
pub fn designed_weight(spec: &BandSpec, shape: &[usize], device: &Device) -> Result<Tensor> {
    let kernel = &shape[2..];
    if !(1..=2).contains(&kernel.len()) {
        candle_core::bail!("designed filters are 1-D or 2-D");
    }
    spread_kernel(&crate::constraint::bands::design_kernel(spec, kernel), shape, device)
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

    /// What each mode does when the model is built.
    fn attach(net: &mut Net, layer: &Layer, c: &Constraint) -> std::result::Result<Enforced, LowerError> {
        let name = ParamName::new(&layer.name, Kind::Weight).to_string();
        let param = net.param_index(&name).expect("constrained layers have a weight");
        let dims = net.params[param].var.dims().to_vec();
        // A linear layer's rows are its kernels.
        let kernel: Vec<usize> = if let Op::Conv(conv) = &layer.op { conv.kernel.clone() } else { vec![dims[1]] };
        let taps: usize = kernel.iter().product();
        let unsupported =
            |what: &str| LowerError::Unsupported(format!("{}: `@{}` with mode={} {what}", layer.name, c.family.name(), c.mode));
        let (device, dtype) = (net.device.clone(), net.dtype);
        let set = Set::new(c.set.geometry(&kernel), c.tol, &device, dtype)?;
        match c.mode {
            Mode::Penalty | Mode::Project | Mode::Lagrangian => {}
            Mode::Freeze => {
                if !(1..=2).contains(&kernel.len()) || dims.len() != kernel.len() + 2 {
                    return Err(unsupported("needs a 1-D or 2-D convolution kernel"));
                }
                let h = set.designed_kernel(&kernel).map_err(|why| unsupported(&why))?;
                let w = spread_kernel(&h, &dims, &Device::Cpu)?;
                net.params[param].var.set(&w.to_dtype(dtype)?.to_device(&device)?)?;
                net.params[param].frozen = true;
            }
            // Every reparametrized constraint of the layer is served by one
            // reparametrization, made when the first of them is attached.
            Mode::Reparam if net.params[param].reparam.is_none() => {
                let together: Vec<&Constraint> = layer.constraints.iter().filter(|x| x.mode == Mode::Reparam).collect();
                let reparam = set.reparametrization(&together, &kernel, &dims, &device, dtype)?.map_err(|why| unsupported(&why))?;
                net.reparametrize(param, reparam)?;
            }
            Mode::Reparam => {}
        }
        Ok(Enforced { layer: layer.name.clone(), param, spec: c.clone(), taps, set, multiplier: AtomicU64::new(0f64.to_bits()) })
    }

    /// Enforces `spec` from now on: a phase's mode, weight, tol and dual_lr;
    /// the set stays the model's (a phase cannot redefine it, E0060). A
    /// quadratic set's projector is rebuilt when the tol changes, so a
    /// phase's `tol` is the one projected onto, not only the one reported.
    pub fn set_spec(&mut self, spec: Constraint) -> Result<()> {
        if spec.tol != self.spec.tol {
            self.set.retol(spec.tol)?;
        }
        let model = std::mem::replace(&mut self.spec, spec);
        self.spec.set = model.set;
        self.spec.span = model.span;
        Ok(())
    }

    /// The violation the penalty (and the report) measures, as a differentiable
    /// scalar: mean ρ for quadratic families, and the notes' formulas for the others.
    pub fn violation(&self, w: &Tensor) -> Result<Tensor> {
        self.set.violation(w, self.taps)
    }

    /// What each mode adds to the loss: `weight · violation` in penalty mode;
    /// in lagrangian mode `λ · mean over kernels of max(0, ρ − tol)` for
    /// quadratic families (λ · violation for the others), with λ held fixed
    /// during the step.
    pub fn loss_term(&self, net: &Net) -> Result<Option<Tensor>> {
        match self.spec.mode {
            Mode::Penalty if self.spec.weight != 0.0 => {
                let w = net.effective(self.param)?;
                Ok(Some((self.violation(&w)? * self.spec.weight)?))
            }
            Mode::Lagrangian if self.multiplier() > 0.0 => {
                let w = net.effective(self.param)?;
                Ok(Some((self.set.lagrangian_term(&w, self.taps, self.spec.tol)? * self.multiplier())?))
            }
            Mode::Penalty | Mode::Lagrangian | Mode::Project | Mode::Reparam | Mode::Freeze => Ok(None),
        }
    }

    /// The current lagrangian multiplier.
    pub fn multiplier(&self) -> f64 {
        f64::from_bits(self.multiplier.load(Ordering::Relaxed))
    }

    /// Restores a multiplier from a checkpoint.
    pub fn set_multiplier(&self, value: f64) {
        self.multiplier.store(value.to_bits(), Ordering::Relaxed);
    }

    /// What each mode does after a step to its dual variable: lagrangian
    /// mode's `λ ← max(0, λ + η·(g − tol))` with g the largest ρ over
    /// kernels (quadratic families) or the violation, so λ rises while the
    /// constraint is broken and falls back once it holds with room to spare.
    pub fn dual_update(&self, net: &Net) -> Result<()> {
        match self.spec.mode {
            Mode::Lagrangian => {
                let g = self.headline(net)?;
                self.set_multiplier((self.multiplier() + self.spec.dual_lr * (g - self.spec.tol)).max(0.0));
            }
            Mode::Penalty | Mode::Project | Mode::Reparam | Mode::Freeze => {}
        }
        Ok(())
    }

    /// What each mode does to the gradient: project mode keeps the step in
    /// the set's subspace (a plain weight only; the coordinates of a
    /// reparametrized one are free).
    pub fn project_gradient(&self, net: &Net, grad: &Tensor) -> Result<Tensor> {
        match self.spec.mode {
            Mode::Project if net.params[self.param].reparam.is_none() => self.set.project_gradient(grad, self.taps),
            Mode::Project | Mode::Penalty | Mode::Reparam | Mode::Freeze | Mode::Lagrangian => Ok(grad.clone()),
        }
    }

    /// After an optimizer step: puts the weight back into the admissible set
    /// (in the modes that do, [`projects_after_step`]).
    pub fn project(&self, net: &Net) -> Result<()> {
        if !projects_after_step(self.spec.mode) {
            return Ok(());
        }
        let w = net.effective(self.param)?.detach();
        net.set_effective(self.param, &self.project_value(&w)?)
    }

    /// The nearest point of this constraint's set to `w`.
    pub fn project_value(&self, w: &Tensor) -> Result<Tensor> {
        self.set.project(w, self.taps)
    }

    /// After an optimizer step, puts every constrained weight back into its
    /// set. A weight with several projected constraints gets the projection
    /// onto their intersection by Dykstra's alternating projections (exact for
    /// convex sets; subspaces that commute, such as a band and symmetry, meet
    /// in one sweep).
    pub fn project_all(enforced: &[Enforced], net: &Net) -> Result<()> {
        let projected = |e: &&Enforced| projects_after_step(e.spec.mode);
        let mut params: Vec<usize> = enforced.iter().filter(projected).map(|e| e.param).collect();
        params.dedup();
        for param in params {
            let group: Vec<&Enforced> = enforced.iter().filter(projected).filter(|e| e.param == param).collect();
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
    /// the dual update): the largest ρ for quadratic families, else the violation.
    pub fn headline(&self, net: &Net) -> Result<f64> {
        let w = net.effective(self.param)?.detach();
        self.set.headline(&w, self.taps)
    }

    /// Every figure of the report (once per epoch: the response figures
    /// evaluate each kernel's spectrum).
    pub fn measure(&self, net: &Net) -> Result<Measure> {
        let w = net.effective(self.param)?.detach().to_dtype(DType::F64)?;
        let multiplier = match self.spec.mode {
            Mode::Lagrangian => Some(self.multiplier()),
            Mode::Penalty | Mode::Project | Mode::Reparam | Mode::Freeze => None,
        };
        let f = self.set.measure(&w, self.taps, self.spec.tol)?;
        Ok(Measure {
            stopband_ratio: f.stopband_ratio,
            stopband_ratio_mean: f.stopband_ratio_mean,
            violation: f.violation,
            multiplier,
            stopband_gain_db: f.stopband_gain_db,
            passband_ripple_db: f.passband_ripple_db,
            dc_gain: f.dc_gain,
            satisfied: f.satisfied,
        })
    }
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
