//! What a run reports: the figures of each epoch and of each constraint, the
//! test evaluation, why the run stopped; how they are assembled from the
//! network and written to report.json, and the end table for people.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::language::ir::{Keep, Model, Monitor, TrainSpec};
use crate::language::schema::Band;
use crate::model::Net;
use crate::model::constraints::{Enforced, Measure};

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    /// The phase of a staged training.
    pub phase: Option<String>,
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
    /// Of `seconds`, the training steps alone: without the validation pass
    /// and the constraints' end-of-epoch figures.
    #[serde(default)]
    pub step_seconds: f64,
    /// The learning rate in force at the epoch's last step (the schedule's;
    /// 0 in a checkpoint written before schedules existed).
    #[serde(default)]
    pub lr: f64,
    /// Each constraint's figures at the end of the epoch, in report order.
    pub constraints: Vec<Measure>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ConstraintReport {
    pub layer: String,
    /// Its name in model.safetensors.
    pub tensor: String,
    pub kind: String,
    pub mode: String,
    pub params: serde_json::Value,
    /// How well it holds at the end: ρ, violation, multiplier, response
    /// figures, satisfied (flattened into this object in report.json).
    #[serde(flatten)]
    pub measure: Measure,
    /// When the layer's weights were given (`@init`): how far fitting them into
    /// the constraint set moved them, ‖Δw‖/‖w‖.
    pub init_residual: Option<f64>,
    /// The lowest ρ any kernel of this length can reach.
    pub lambda_min: Option<f64>,
    pub tol: f64,
}

impl std::ops::Deref for ConstraintReport {
    type Target = Measure;
    fn deref(&self) -> &Measure {
        &self.measure
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Report {
    pub model: String,
    pub seed: u64,
    pub parameters: usize,
    pub epochs: Vec<EpochReport>,
    pub constraints: Vec<ConstraintReport>,
    /// On the kept weights (`kept_epoch`).
    pub test: Option<Evaluation>,
    /// Which weights the run ends with, `last` or `best` by `monitor`.
    #[serde(default)]
    pub keep: Keep,
    #[serde(default)]
    pub monitor: Monitor,
    /// The epoch whose weights model.safetensors holds at the end; null while
    /// the run goes on (report.json is rewritten after every epoch).
    #[serde(default)]
    pub kept_epoch: Option<usize>,
    /// Why the run ended; null while it goes on.
    #[serde(default)]
    pub stopped: Option<Stopped>,
    /// The `lpnc train --set KEY=VALUE` overrides of the run, as written.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// For classification, the label of each class, class 0 first (the
    /// training data's distinct labels in sorted order, `data::Label`).
    #[serde(default)]
    pub class_labels: Option<Vec<String>>,
    /// How many examples each part of the data holds.
    #[serde(default)]
    pub examples: Option<ExampleCounts>,
}

/// Examples in the training, validation and test parts (`test` null without test data).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExampleCounts {
    pub train: usize,
    pub val: usize,
    pub test: Option<usize>,
}

impl Report {
    /// The report of a run about to begin: no epoch yet.
    pub(super) fn new(model: &Model, seed: u64, spec: &TrainSpec) -> Report {
        Report {
            model: model.name.clone(),
            seed,
            parameters: model.parameter_count(),
            epochs: Vec::new(),
            constraints: Vec::new(),
            test: None,
            keep: spec.keep,
            monitor: spec.monitor,
            kept_epoch: None,
            stopped: None,
            overrides: Vec::new(),
            class_labels: None,
            examples: None,
        }
    }
}

/// Why a run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// Every planned epoch ran.
    Epochs,
    /// `early_stop`: the watched figure stopped improving.
    EarlyStop,
}

fn constraint_params(c: &crate::language::ir::Constraint) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(b) = &c.band() {
        let nyquist = b.fs.map(|fs| fs / 2.0).unwrap_or(1.0);
        match c.family.band() {
            Some(Band::Bandpass | Band::Bandstop) => {
                m.insert("low".into(), (b.low * nyquist).into());
                m.insert("high".into(), (b.high * nyquist).into());
            }
            Some(Band::Lowpass | Band::Highpass) | None => {
                m.insert("cutoff".into(), (b.low * nyquist).into());
            }
        }
        if let Some(fs) = b.fs {
            m.insert("fs".into(), fs.into());
        }
        if let Some(t) = b.transition {
            m.insert("transition".into(), (t * nyquist).into());
        }
    }
    // Where the band really acts (the stopband starts half a transition past the cutoff).
    if let Some(edges) = c.edges().first() {
        m.insert("band_edges".into(), edges.to_json(c.band().and_then(|b| b.fs)));
    }
    // A quadratic family's own number under its own name (`@smooth`'s
    // `order`); the others' keep the key report.json has always used.
    if let Some((name, v)) = c.set.value() {
        let key = if c.set.quadratic().is_some() { name } else { "value" };
        m.insert(key.into(), v.into());
    }
    if c.mode == crate::language::schema::Mode::Penalty {
        m.insert("weight".into(), c.weight.into());
    }
    serde_json::Value::Object(m)
}

/// The epoch (from 1) with the best `monitor` so far: the first of equals, as
/// Keras and Lightning count only a strict improvement. `None` without
/// validation figures.
pub fn best_epoch(reports: &[EpochReport], monitor: Monitor) -> Option<usize> {
    let figure = |r: &EpochReport| match monitor {
        Monitor::ValLoss => r.val_loss.map(|l| -l),
        Monitor::ValAccuracy => r.val_accuracy,
    };
    let mut best: Option<(usize, f64)> = None;
    for r in reports {
        if let Some(v) = figure(r).filter(|v| !v.is_nan())
            && best.is_none_or(|(_, b)| v > b)
        {
            best = Some((r.epoch, v));
        }
    }
    best.map(|(e, _)| e)
}

/// Whether `early_stop = N` ends the run now: the best epoch is N or more
/// epochs behind the last one (Keras EarlyStopping(patience=N)).
pub(super) fn early_stop_due(reports: &[EpochReport], spec: &TrainSpec) -> Option<Stopped> {
    let patience = spec.early_stop?;
    let best = best_epoch(reports, spec.monitor)?;
    let last = reports.last()?.epoch;
    (last - best >= patience).then_some(Stopped::EarlyStop)
}

pub(super) fn constraint_reports(
    enforced: &[Enforced],
    net: &Net,
    measures: Vec<Measure>,
    init_residuals: &[Option<f64>],
) -> Vec<ConstraintReport> {
    enforced
        .iter()
        .zip(measures)
        .zip(init_residuals)
        .map(|((e, measure), init_residual)| ConstraintReport {
            init_residual: *init_residual,
            layer: e.layer.clone(),
            tensor: net.params[e.param].name.to_string(),
            kind: e.spec.family.name().into(),
            mode: e.spec.mode.name().into(),
            params: constraint_params(&e.spec),
            measure,
            lambda_min: e.spec.lambda_min(),
            tol: e.spec.tol,
        })
        .collect()
}

pub(super) fn write_report(dir: &Path, report: &Report) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(report).expect("reports serialize");
    super::checkpoint::write_durably(&dir.join("report.json"), &json)
}

/// The end-of-run table of constraints, for people.
pub fn constraint_table(report: &Report) -> String {
    let mut rows = vec![[
        "layer".to_string(),
        "kind".into(),
        "mode".into(),
        "stopband".into(),
        "ρ (max)".into(),
        "violation".into(),
        "tol".into(),
        "held".into(),
    ]];
    for c in &report.constraints {
        let stopband = c.params.get("band_edges").and_then(|e| e.get("stopband_words")).and_then(|w| w.as_str());
        rows.push([
            c.layer.clone(),
            c.kind.clone(),
            c.mode.clone(),
            stopband.unwrap_or("-").to_string(),
            c.stopband_ratio.map(|r| format!("{r:.3e}")).unwrap_or_else(|| "-".into()),
            c.violation.map(|v| format!("{v:.3e}")).unwrap_or_else(|| "-".into()),
            format!("{}", c.tol),
            if c.satisfied { "yes".into() } else { "no".into() },
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().enumerate().map(|(i, cell)| format!("{cell:<w$}", w = widths[i])).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epochs(val: &[(Option<f64>, Option<f64>)]) -> Vec<EpochReport> {
        val.iter()
            .enumerate()
            .map(|(i, &(val_loss, val_accuracy))| EpochReport {
                epoch: i + 1,
                phase: None,
                train_loss: 1.0,
                val_loss,
                val_accuracy,
                seconds: 0.0,
                step_seconds: 0.0,
                lr: 1e-3,
                constraints: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn the_best_epoch_is_the_first_of_equals_by_the_monitored_figure() {
        let r = epochs(&[(Some(0.5), Some(0.6)), (Some(0.3), Some(0.9)), (Some(0.3), Some(0.9)), (Some(0.4), Some(0.95))]);
        assert_eq!(best_epoch(&r, Monitor::ValLoss), Some(2));
        assert_eq!(best_epoch(&r, Monitor::ValAccuracy), Some(4));
        // NaN never improves; no validation figures, no best epoch.
        let r = epochs(&[(Some(0.5), None), (Some(f64::NAN), None), (Some(0.6), None)]);
        assert_eq!(best_epoch(&r, Monitor::ValLoss), Some(1));
        assert_eq!(best_epoch(&epochs(&[(None, None), (None, None)]), Monitor::ValLoss), None);
    }

    #[test]
    fn early_stop_is_due_when_the_best_epoch_is_patience_epochs_behind() {
        let (_, checked) =
            crate::check_source("model m {\n input [1, 16]\n conv(out=1, k=3)\n}\ndata sines\ntrain { early_stop = 2 }\n", Path::new("."));
        let mut spec = checked.program.map(|p| p.train).unwrap_or_else(|| panic!("{:?}", checked.problems));
        assert_eq!(spec.early_stop, Some(2));
        let losses = [0.5, 0.4, 0.45, 0.41, 0.3];
        let due =
            |n: usize, spec: &TrainSpec| early_stop_due(&epochs(&losses[..n].iter().map(|&l| (Some(l), None)).collect::<Vec<_>>()), spec);
        assert_eq!(due(3, &spec), None, "one epoch without improvement");
        assert_eq!(due(4, &spec), Some(Stopped::EarlyStop), "two epochs without improvement");
        spec.early_stop = None;
        assert_eq!(due(4, &spec), None);
    }
}
