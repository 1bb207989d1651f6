//! Optimizers written on Candle tensors, so that a per-layer learning-rate
//! scale multiplies the *update* (Adam would normalise a scaled gradient away),
//! frozen tensors are never touched (not even by decoupled weight decay), and
//! the state can be inspected.

use candle_core::{Result, Tensor};

use crate::ir::Optimizer as Spec;
use crate::lower::Param;

pub struct Optimizer {
    spec: Spec,
    /// First and second moments (or the momentum buffer in `first`), per parameter.
    first: Vec<Option<Tensor>>,
    second: Vec<Option<Tensor>>,
    step: i32,
}

impl Optimizer {
    pub fn new(spec: &Spec, params: usize) -> Self {
        Optimizer { spec: spec.clone(), first: vec![None; params], second: vec![None; params], step: 0 }
    }

    pub fn lr(&self) -> f64 {
        match self.spec {
            Spec::Sgd { lr, .. } | Spec::Adam { lr, .. } | Spec::AdamW { lr, .. } => lr,
        }
    }

    /// One update of every trainable parameter that has a gradient. Weight decay
    /// applies to the tensors marked `decay` (conv and linear weights).
    pub fn step(&mut self, params: &[Param], grads: &[Option<Tensor>]) -> Result<()> {
        self.step += 1;
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            if p.frozen {
                continue;
            }
            let w = p.var.as_tensor();
            let updated = match self.spec {
                Spec::Sgd { lr, momentum, nesterov, weight_decay } => {
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
                Spec::Adam { lr, beta1, beta2, eps, weight_decay } => {
                    let g = if p.decay && weight_decay > 0.0 { (g + (w * weight_decay)?)? } else { g.clone() };
                    let step = self.adam_direction(i, &g, beta1, beta2, eps)?;
                    (w - (step * (lr * p.lr_scale))?)?
                }
                Spec::AdamW { lr, beta1, beta2, eps, weight_decay } => {
                    let step = self.adam_direction(i, g, beta1, beta2, eps)?;
                    let decayed = if p.decay && weight_decay > 0.0 { (w * (1.0 - lr * p.lr_scale * weight_decay))? } else { w.clone() };
                    (decayed - (step * (lr * p.lr_scale))?)?
                }
            };
            p.var.set(&updated)?;
        }
        Ok(())
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
        let mhat = (m / (1.0 - beta1.powi(self.step)))?;
        let vhat = (v / (1.0 - beta2.powi(self.step)))?;
        mhat / (vhat.sqrt()? + eps)?
    }
}
