//! The verdict on a finished run, as data for the CLI to show: the hard
//! constraints that do not hold, the constrained weights that collapsed to
//! zero, and advice for penalties that missed their tolerance by far.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use crate::language::schema::Mode;
use crate::train::{ConstraintReport, Report};

/// A weight has collapsed when its largest |w| is at most this fraction of
/// `1/√fan_in`, the bound of its default initialisation (U(±1/√fan_in),
/// fan_in = inputs per group × taps): a millionth of the size a freshly
/// initialised layer has, below what float32 training noise leaves in a
/// layer that still does anything. A weight that is exactly zero (a
/// projection onto sets that meet only at 0) always counts.
pub const COLLAPSE_FRACTION: f64 = 1e-6;

/// A penalty misses its tolerance "by far" when its figure (largest ρ, or the
/// violation) ends above this many times `tol`: a near miss is what a penalty
/// trades by design, ten times over is a penalty that barely acts.
pub const FAR_FACTOR: f64 = 10.0;

/// What went wrong with a constraint a hard mode should have kept.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// A constraint in a hard mode (project, reparam, freeze) that does not
    /// hold at the end: its figure (largest ρ, or the violation) is above tol.
    NotHeld { layer: String, kind: String, mode: Mode, figure: f64, tol: f64 },
    /// A constrained layer's weight is numerically zero ([`COLLAPSE_FRACTION`]).
    Collapsed {
        layer: String,
        tensor: String,
        /// The constraints on it, `@nonneg`, `@highpass`, …
        kinds: Vec<String>,
        max_abs: f64,
        threshold: f64,
    },
}

/// A penalty whose constraint ended far from its tolerance, and a weight the
/// run suggests.
#[derive(Clone, Debug, PartialEq)]
pub struct PenaltyAdvice {
    pub layer: String,
    pub kind: String,
    /// Whether `figure` is a quadratic constraint's ρ (else a violation).
    pub has_ratio: bool,
    /// Largest ρ (bands) or the violation at the end.
    pub figure: f64,
    pub tol: f64,
    pub weight: f64,
    /// The figure after the first epoch, and the number of epochs: how far
    /// the run moved it (a penalty acts through the gradient, so under Adam
    /// a kernel moves about `lr` per step whatever the weight: a short run
    /// may need more epochs as much as a larger weight).
    pub first_figure: Option<f64>,
    pub epochs: usize,
    /// The last epoch's training loss, without the penalty terms.
    pub task_loss: f64,
    /// `max(task_loss / tol, 10·weight)`: the weight at which a kernel that
    /// just meets tol would add as much to the loss as the whole task loss
    /// is now, so that leaking into the stopband no longer pays for itself
    /// (and at least ten times the weight that did not work).
    pub suggested_weight: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub failures: Vec<Failure>,
    pub advice: Vec<PenaltyAdvice>,
}

/// Whether a mode promises that its constraint holds: `Mode::is_hard`.
pub fn is_hard(mode: Mode) -> bool {
    mode.is_hard()
}

/// The figure a constraint is judged by: its largest ρ, or its violation.
fn figure(c: &ConstraintReport) -> f64 {
    c.stopband_ratio.or(c.violation).unwrap_or(0.0)
}

/// Whether a weight has collapsed to zero, by [`COLLAPSE_FRACTION`]: its
/// largest |w| and the threshold it is at or below.
pub fn collapsed(w: &Tensor) -> candle_core::Result<Option<(f64, f64)>> {
    let fan_in: usize = w.dims().iter().skip(1).product::<usize>().max(1);
    let threshold = COLLAPSE_FRACTION / (fan_in as f64).sqrt();
    let max_abs = w.to_dtype(DType::F64)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
    Ok((max_abs <= threshold).then_some((max_abs, threshold)))
}

/// The verdict on a run from its report and the weights it saved.
pub fn judge(report: &Report, tensors: &HashMap<String, Tensor>) -> candle_core::Result<Verdict> {
    let mut verdict = Verdict::default();
    for c in &report.constraints {
        let Some(mode) = Mode::from_name(&c.mode) else { continue };
        if is_hard(mode) && !c.satisfied {
            verdict.failures.push(Failure::NotHeld { layer: c.layer.clone(), kind: c.kind.clone(), mode, figure: figure(c), tol: c.tol });
        }
    }
    let mut tensors_seen: Vec<&str> = Vec::new();
    for c in &report.constraints {
        if tensors_seen.contains(&c.tensor.as_str()) {
            continue;
        }
        tensors_seen.push(&c.tensor);
        let Some(w) = tensors.get(&c.tensor) else { continue };
        if let Some((max_abs, threshold)) = collapsed(w)? {
            let kinds = report.constraints.iter().filter(|o| o.tensor == c.tensor).map(|o| format!("@{}", o.kind)).collect();
            verdict.failures.push(Failure::Collapsed { layer: c.layer.clone(), tensor: c.tensor.clone(), kinds, max_abs, threshold });
        }
    }
    verdict.advice = penalty_advice(report);
    Ok(verdict)
}

/// [`judge`] on the weights file a run wrote.
pub fn judge_run(report: &Report, weights: &Path) -> Result<Verdict, String> {
    let tensors = candle_core::safetensors::load(weights, &candle_core::Device::Cpu)
        .map_err(|e| format!("cannot read {}: {e}", weights.display()))?;
    judge(report, &tensors).map_err(|e| e.to_string())
}

/// Advice for each penalty constraint whose figure ends above
/// [`FAR_FACTOR`]·tol.
pub fn penalty_advice(report: &Report) -> Vec<PenaltyAdvice> {
    let task_loss = report.epochs.last().map(|e| e.train_loss).unwrap_or(0.0);
    report
        .constraints
        .iter()
        .enumerate()
        .filter(|(_, c)| c.mode == Mode::Penalty.name() && figure(c) > FAR_FACTOR * c.tol)
        .map(|(i, c)| {
            let first_figure = report.epochs.first().and_then(|e| e.constraints.get(i)).and_then(|m| m.stopband_ratio.or(m.violation));
            let weight = c.params.get("weight").and_then(|w| w.as_f64()).unwrap_or(0.0);
            PenaltyAdvice {
                layer: c.layer.clone(),
                kind: c.kind.clone(),
                has_ratio: c.stopband_ratio.is_some(),
                figure: figure(c),
                tol: c.tol,
                weight,
                first_figure,
                epochs: report.epochs.len(),
                task_loss,
                suggested_weight: (task_loss / c.tol).max(10.0 * weight),
            }
        })
        .collect()
}
