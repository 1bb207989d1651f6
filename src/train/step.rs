//! One training step — forward, the loss with the constraints' terms,
//! backward, the fault check, clipping, the optimizer, the projections — and
//! the evaluation of a network on a data set.

use std::path::PathBuf;

use candle_core::{Device, Tensor};

use super::optim::Optimizer;
use super::{Evaluation, TrainError};
use crate::data::{Dataset, Targets};
use crate::language::ir::{Loss, TrainSpec};
use crate::model::constraints::Enforced;
use crate::model::{Net, Pass, ops};
use crate::rng::Rng;

/// A batch of examples as tensors.
pub(super) fn batch(set: &Dataset, indices: &[usize], device: &Device) -> candle_core::Result<(Tensor, BatchTargets)> {
    let per = set.per_example();
    let mut x = Vec::with_capacity(indices.len() * per);
    set.gather_inputs(indices, &mut x).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut shape = vec![indices.len()];
    shape.extend(&set.shape);
    let x = Tensor::from_vec(x, shape.clone(), device)?;
    let y = match &set.targets {
        Targets::Signals(clean) => {
            let mut y = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                y.extend_from_slice(&clean[i * per..(i + 1) * per]);
            }
            BatchTargets::Signals(Tensor::from_vec(y, shape, device)?)
        }
        Targets::Regression { values, shape: target } => {
            let per: usize = target.iter().product();
            let mut y = Vec::with_capacity(indices.len() * per);
            for &i in indices {
                y.extend_from_slice(&values[i * per..(i + 1) * per]);
            }
            let mut shape = vec![indices.len()];
            shape.extend(target);
            BatchTargets::Signals(Tensor::from_vec(y, shape, device)?)
        }
        Targets::Classes(c) => BatchTargets::Classes(indices.iter().map(|&i| c[i]).collect()),
    };
    Ok((x, y))
}

pub(super) enum BatchTargets {
    Signals(Tensor),
    Classes(Vec<usize>),
}

fn task_loss(loss: Loss, out: &Tensor, y: &BatchTargets) -> candle_core::Result<Tensor> {
    match (loss, y) {
        (Loss::Mse, BatchTargets::Signals(t)) => ops::mse(out, &shaped_like(t, out)?),
        (Loss::Mae, BatchTargets::Signals(t)) => ops::mae(out, &shaped_like(t, out)?),
        (Loss::CrossEntropy, BatchTargets::Classes(c)) => ops::cross_entropy(out, c),
        (Loss::Bce, BatchTargets::Classes(c)) => ops::bce_with_logits(out, c),
        (Loss::Mse | Loss::Mae, BatchTargets::Classes(_)) | (Loss::CrossEntropy | Loss::Bce, BatchTargets::Signals(_)) => {
            candle_core::bail!("loss {loss:?} does not fit the data (the checker should have said so)")
        }
    }
}

/// Targets laid out in the output's shape: regression targets given flat (a
/// `pairs` row) hold as many values as the output, as the checker made sure
/// (E0146); a reshape keeps their order (C order).
fn shaped_like(target: &Tensor, out: &Tensor) -> candle_core::Result<Tensor> {
    if target.dims() == out.dims() { Ok(target.clone()) } else { target.reshape(out.shape()) }
}

/// Correct predictions in a batch (classification only).
fn correct(loss: Loss, out: &Tensor, y: &BatchTargets) -> candle_core::Result<Option<usize>> {
    let BatchTargets::Classes(classes) = y else { return Ok(None) };
    let predicted: Vec<usize> = if loss == Loss::Bce {
        out.flatten_all()?.to_vec1::<f32>()?.iter().map(|&x| usize::from(x > 0.0)).collect()
    } else {
        out.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|x| x as usize).collect()
    };
    Ok(Some(predicted.iter().zip(classes).filter(|(a, b)| a == b).count()))
}

/// Loss (and accuracy for classification) of `net` on a whole data set, on
/// one of rayon's threads as a training step is (`ops::on_rayon_thread`).
pub fn evaluate(net: &Net, loss: Loss, set: &Dataset, batch_size: usize) -> Result<Evaluation, TrainError> {
    crate::model::ops::on_rayon_thread(|| evaluate_here(net, loss, set, batch_size))
}

fn evaluate_here(net: &Net, loss: Loss, set: &Dataset, batch_size: usize) -> Result<Evaluation, TrainError> {
    let mut total = 0.0;
    let mut right = 0;
    let mut classify = false;
    let order: Vec<usize> = (0..set.len).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let (x, y) = batch(set, chunk, &net.device)?;
        let out = net.forward(&x, &mut Pass::Eval)?;
        total += task_loss(loss, &out, &y)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        if let Some(c) = correct(loss, &out, &y)? {
            right += c;
            classify = true;
        }
    }
    let n = set.len.max(1) as f64;
    Ok(Evaluation { loss: total / n, accuracy: classify.then(|| right as f64 / n) })
}

/// Scales all gradients together (their global L2 norm is `norm`) so that the
/// norm is at most `max_norm`.
fn clip_gradients(grads: &mut [Option<Tensor>], norm: f64, max_norm: f64) -> candle_core::Result<()> {
    if norm > max_norm {
        let scale = max_norm / norm;
        for g in grads.iter_mut().flatten() {
            *g = (&*g * scale)?;
        }
    }
    Ok(())
}

/// Where a step is, to name it when it fails.
pub(super) struct At {
    pub epoch: usize,
    /// From 1.
    pub step: usize,
    /// Where the last good weights are (the last checkpoint's), if anywhere.
    pub saved: Option<PathBuf>,
}

impl At {
    fn not_finite(&self, culprit: Option<String>) -> TrainError {
        TrainError::NotFinite { epoch: self.epoch, step: self.step, culprit, saved: self.saved.clone() }
    }
}

/// One training step on the batch `x`, `y`: forward, the loss with the
/// constraints' terms, backward, clipping, the gradients' projections, the
/// optimizer's update and what the constraints do after it. Returns the
/// batch's task loss (its mean over the examples).
pub(super) fn train_step(
    net: &Net,
    enforced: &[Enforced],
    optimizer: &mut Optimizer,
    dropout: &mut Rng,
    spec: &TrainSpec,
    (x, y): (&Tensor, &BatchTargets),
    at: &At,
) -> Result<f64, TrainError> {
    let out = net.forward(x, &mut Pass::Train { dropout })?;
    let task = task_loss(spec.loss, &out, y)?;
    let loss = with_constraint_terms(enforced, net, task.clone())?;
    let value = loss.to_scalar::<f32>()? as f64;
    if !value.is_finite() {
        let culprit = net.first_non_finite(x)?.map(|layer| format!("the output of `{layer}`"));
        return Err(at.not_finite(culprit));
    }
    let task_value = task.to_scalar::<f32>()? as f64;
    let (mut grads, norm_sq) = gradients(net, &loss, at)?;
    if let Some(max_norm) = spec.clip {
        clip_gradients(&mut grads, norm_sq.sqrt(), max_norm)?;
    }
    project_gradients(enforced, net, &mut grads)?;
    optimizer.step(&net.params, &grads)?;
    after_update(enforced, net)?;
    Ok(task_value)
}

/// Each parameter's gradient of `loss` and their global squared L2 norm; a
/// gradient that is not finite is a fault, named after its tensor.
fn gradients(net: &Net, loss: &Tensor, at: &At) -> Result<(Vec<Option<Tensor>>, f64), TrainError> {
    let grads = loss.backward()?;
    let per_param: Vec<Option<Tensor>> = net.params.iter().map(|p| grads.get(p.var.as_tensor()).cloned()).collect();
    // One sum of squares per gradient serves both the fault check and clipping.
    let mut norm_sq = 0.0;
    for (p, g) in net.params.iter().zip(&per_param) {
        let Some(g) = g else { continue };
        let s = g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        if !s.is_finite() && !crate::model::finite(g)? {
            return Err(at.not_finite(Some(format!("the gradient of `{}`", p.name))));
        }
        norm_sq += s;
    }
    Ok((per_param, norm_sq))
}

// The constraints' hooks in a step, one function each.

/// The task loss plus each constraint's term (penalty and lagrangian modes).
fn with_constraint_terms(enforced: &[Enforced], net: &Net, task: Tensor) -> candle_core::Result<Tensor> {
    let mut loss = task;
    for e in enforced {
        if let Some(p) = e.loss_term(net)? {
            loss = (loss + p)?;
        }
    }
    Ok(loss)
}

/// Gradients projected onto what each constraint allows (project mode).
fn project_gradients(enforced: &[Enforced], net: &Net, grads: &mut [Option<Tensor>]) -> candle_core::Result<()> {
    for e in enforced {
        if let Some(g) = &grads[e.param] {
            grads[e.param] = Some(e.project_gradient(net, g)?);
        }
    }
    Ok(())
}

/// After the optimizer's update: projected weights back into their sets,
/// lagrangian multipliers moved by the violation.
fn after_update(enforced: &[Enforced], net: &Net) -> candle_core::Result<()> {
    Enforced::project_all(enforced, net)?;
    for e in enforced {
        e.dual_update(net)?;
    }
    Ok(())
}
