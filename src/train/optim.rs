//! Optimizers written on Candle tensors, so that a per-layer learning-rate
//! scale multiplies the *update* (Adam would normalise a scaled gradient away),
//! frozen tensors are never touched (not even by decoupled weight decay), and
//! the state can be inspected.

use candle_core::{DType, Result, Tensor};

use crate::language::ir::Optimizer as Spec;
use crate::model::Param;

pub struct Optimizer {
    spec: Spec,
    /// First and second moments (or the momentum buffer in `first`), per parameter.
    first: Vec<Option<Tensor>>,
    second: Vec<Option<Tensor>>,
    /// Updates made to each parameter, PyTorch's `state['step']`: Adam's
    /// bias correction for a parameter counts its own updates, so one frozen
    /// in an earlier phase takes its first step as a first step (1 − β¹)
    /// when it joins a carried-on optimizer, not at the run's step count.
    steps: Vec<i32>,
    /// The learning rate in force: the spec's, or what a schedule set.
    lr: f64,
}

impl Optimizer {
    pub fn new(spec: &Spec, params: usize) -> Self {
        let lr = match *spec {
            Spec::Sgd { lr, .. } | Spec::Adam { lr, .. } | Spec::AdamW { lr, .. } => lr,
        };
        Optimizer { spec: spec.clone(), first: vec![None; params], second: vec![None; params], steps: vec![0; params], lr }
    }

    /// The learning rate in force.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The learning rate the optimizer was declared with (a schedule's base).
    pub fn base_lr(&self) -> f64 {
        match self.spec {
            Spec::Sgd { lr, .. } | Spec::Adam { lr, .. } | Spec::AdamW { lr, .. } => lr,
        }
    }

    /// Sets the learning rate of the next steps (a schedule's).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update of every trainable parameter that has a gradient; only
    /// those count a step. Weight decay applies to the tensors marked `decay`
    /// (conv and linear weights).
    pub fn step(&mut self, params: &[Param], grads: &[Option<Tensor>]) -> Result<()> {
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            if p.frozen {
                continue;
            }
            self.steps[i] += 1;
            let w = p.var.as_tensor();
            if let Some(updated) = self.fused_adam(i, p, w, g)? {
                p.var.set(&updated)?;
                continue;
            }
            let lr = self.lr;
            let updated = match self.spec {
                Spec::Sgd { lr: _, momentum, nesterov, weight_decay } => {
                    let g = if p.decay && weight_decay > 0.0 { (g + (w * weight_decay)?)? } else { g.clone() };
                    let update = if momentum > 0.0 {
                        let buf = match &self.first[i] {
                            Some(b) => ((b * momentum)? + &g)?,
                            None => g.clone(),
                        };
                        self.first[i] = Some(buf.clone());
                        if nesterov { (&g + (buf * momentum)?)? } else { buf }
                    } else {
                        g
                    };
                    (w - (update * (lr * p.lr_scale))?)?
                }
                Spec::Adam { lr: _, beta1, beta2, eps, weight_decay } => {
                    let g = if p.decay && weight_decay > 0.0 { (g + (w * weight_decay)?)? } else { g.clone() };
                    let step = self.adam_direction(i, &g, beta1, beta2, eps)?;
                    (w - (step * (lr * p.lr_scale))?)?
                }
                Spec::AdamW { lr: _, beta1, beta2, eps, weight_decay } => {
                    let step = self.adam_direction(i, g, beta1, beta2, eps)?;
                    let decayed = if p.decay && weight_decay > 0.0 { (w * (1.0 - lr * p.lr_scale * weight_decay))? } else { w.clone() };
                    (decayed - (step * (lr * p.lr_scale))?)?
                }
            };
            p.var.set(&updated)?;
        }
        Ok(())
    }

    /// Adam and AdamW on f32 tensors in one pass over the values: the same
    /// f32 arithmetic, in the same order, as the tensor code below (which
    /// remains for other dtypes), without its dozen intermediate tensors per
    /// parameter, whose allocations and passes cost more than the maths.
    /// `None` when it does not apply.
    fn fused_adam(&mut self, i: usize, p: &Param, w: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let lr = self.lr;
        let (beta1, beta2, eps, weight_decay, decoupled) = match self.spec {
            Spec::Adam { lr: _, beta1, beta2, eps, weight_decay } => (beta1, beta2, eps, weight_decay, false),
            Spec::AdamW { lr: _, beta1, beta2, eps, weight_decay } => (beta1, beta2, eps, weight_decay, true),
            Spec::Sgd { .. } => return Ok(None),
        };
        let f32s = |t: &Option<Tensor>| t.as_ref().is_none_or(|t| t.dtype() == DType::F32);
        if w.dtype() != DType::F32 || g.dtype() != DType::F32 || !f32s(&self.first[i]) || !f32s(&self.second[i]) {
            return Ok(None);
        }
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let mut wv = values(w)?;
        let gv = values(g)?;
        let n = wv.len();
        // A missing moment is zero: 0·β + x is x, as the tensor code's first step.
        let mut m = match &self.first[i] {
            Some(m) => values(m)?,
            None => vec![0.0; n],
        };
        let mut v = match &self.second[i] {
            Some(v) => values(v)?,
            None => vec![0.0; n],
        };
        let decay = p.decay && weight_decay > 0.0;
        let (b1, c1) = (beta1 as f32, (1.0 - beta1) as f32);
        let (b2, c2) = (beta2 as f32, (1.0 - beta2) as f32);
        let inv1 = (1.0 / (1.0 - beta1.powi(self.steps[i]))) as f32;
        let inv2 = (1.0 / (1.0 - beta2.powi(self.steps[i]))) as f32;
        let (eps, rate, wd) = (eps as f32, (lr * p.lr_scale) as f32, weight_decay as f32);
        let shrink = (1.0 - lr * p.lr_scale * weight_decay) as f32;
        for k in 0..n {
            let g = if decay && !decoupled { gv[k] + wv[k] * wd } else { gv[k] };
            m[k] = m[k] * b1 + g * c1;
            v[k] = v[k] * b2 + (g * g) * c2;
            let step = (m[k] * inv1) / ((v[k] * inv2).sqrt() + eps);
            let base = if decay && decoupled { wv[k] * shrink } else { wv[k] };
            wv[k] = base - step * rate;
        }
        let (shape, dev) = (w.shape().clone(), w.device().clone());
        self.first[i] = Some(Tensor::from_vec(m, shape.clone(), &dev)?);
        self.second[i] = Some(Tensor::from_vec(v, shape.clone(), &dev)?);
        Ok(Some(Tensor::from_vec(wv, shape, &dev)?))
    }

    /// Bias-corrected `m̂ / (√v̂ + ε)`.
    fn adam_direction(&mut self, i: usize, g: &Tensor, beta1: f64, beta2: f64, eps: f64) -> Result<Tensor> {
        let m = match &self.first[i] {
            Some(m) => ((m * beta1)? + (g * (1.0 - beta1))?)?,
            None => (g * (1.0 - beta1))?,
        };
        let v = match &self.second[i] {
            Some(v) => ((v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?,
            None => (g.sqr()? * (1.0 - beta2))?,
        };
        self.first[i] = Some(m.clone());
        self.second[i] = Some(v.clone());
        let mhat = (m / (1.0 - beta1.powi(self.steps[i])))?;
        let vhat = (v / (1.0 - beta2.powi(self.steps[i])))?;
        mhat / (vhat.sqrt()? + eps)?
    }
}

/// What a checkpoint keeps of an optimizer: each parameter's step count and
/// its moments.
impl Optimizer {
    /// `(steps per parameter, [(i, "first" | "second", tensor)])` for every
    /// moment that exists.
    pub fn state(&self) -> (Vec<i32>, Vec<(usize, &'static str, Tensor)>) {
        let mut out = Vec::new();
        for (i, m) in self.first.iter().enumerate() {
            if let Some(m) = m {
                out.push((i, "first", m.clone()));
            }
        }
        for (i, v) in self.second.iter().enumerate() {
            if let Some(v) = v {
                out.push((i, "second", v.clone()));
            }
        }
        (self.steps.clone(), out)
    }

    /// Restores what `state` gave (a missing count is 0).
    pub fn restore(&mut self, steps: &[i32], moments: Vec<(usize, &'static str, Tensor)>) {
        for (slot, &n) in self.steps.iter_mut().zip(steps) {
            *slot = n;
        }
        for (i, which, t) in moments {
            let slot = if which == "first" { &mut self.first } else { &mut self.second };
            if i < slot.len() {
                slot[i] = Some(t);
            }
        }
    }
}
