//! What a run tells while it goes. The library prints nothing: `train_observed`
//! hands each event to an [`Observer`], and the caller decides what to show
//! (the CLI: progress bars on a terminal, one line per epoch elsewhere,
//! nothing with `--quiet`).

use std::path::Path;

use super::EpochReport;
use crate::language::schema::Mode;
use crate::model::Net;
use crate::model::constraints::Enforced;

/// Receives a run's events in order: how a caller shows progress (the CLI's
/// bars and lines are observers) or records figures.
pub trait Observer {
    fn event(&mut self, event: &Event<'_>);
}

/// Shows nothing.
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _: &Event<'_>) {}
}

/// A constraint as the live figures name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintLabel {
    pub layer: String,
    /// `lowpass`, `nonneg`, …
    pub kind: String,
    /// Quadratic families (bands, smoothness) report ρ, the others a violation.
    pub has_ratio: bool,
}

/// One constraint's figure after a step: ρ (largest over kernels) or the
/// violation, and the multiplier in lagrangian mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveFigure {
    pub value: f64,
    pub multiplier: Option<f64>,
}

/// The constraints' figures after a step, computed only when asked for (an
/// observer that shows none costs nothing).
#[derive(Clone, Copy)]
pub struct Live<'a> {
    pub(super) enforced: &'a [Enforced],
    pub(super) net: &'a Net,
}

impl Live<'_> {
    /// One per constraint, in the order of `Event::Started`'s labels; `None`
    /// where a figure cannot be computed.
    pub fn figures(&self) -> Vec<Option<LiveFigure>> {
        self.enforced
            .iter()
            .map(|e| {
                let value = e.headline(self.net).ok()?;
                let multiplier = (e.spec.mode == Mode::Lagrangian).then(|| e.multiplier());
                Some(LiveFigure { value, multiplier })
            })
            .collect()
    }
}

pub enum Event<'a> {
    /// The run begins: from scratch, or (`resumed_at`: epoch and step, both
    /// from 1) from a checkpoint.
    Started {
        model: &'a str,
        parameters: usize,
        dir: &'a Path,
        epochs: usize,
        steps_per_epoch: usize,
        constraints: &'a [ConstraintLabel],
        resumed_at: Option<(usize, usize)>,
    },
    /// The folder's lock was left by a process that is gone (killed, or a
    /// power cut); this run took it over.
    StaleLockTakenOver { pid: u32, command: &'a str },
    /// The files of an earlier run in the folder were removed (`force`).
    Replaced { files: &'a [String] },
    /// A given initial weight (`@init`) was outside its constraint set and was
    /// fitted into it; `relative_change` is ‖Δw‖/‖w‖.
    InitFitted { layer: &'a str, constraint: &'a str, relative_change: f64 },
    /// A phase of a staged training begins.
    PhaseEntered { name: &'a str, epochs: usize },
    /// An epoch begins (`done` of its steps already done, on resuming).
    EpochStarted { epoch: usize, epochs: usize, steps: usize, done: usize },
    /// A training step is done; `mean_loss` is the epoch's mean task loss so far.
    StepDone { epoch: usize, step: usize, steps: usize, mean_loss: f64, live: Live<'a> },
    /// An epoch is done: its figures (report.json is rewritten with them).
    EpochDone { report: &'a EpochReport, epochs: usize, constraints: &'a [ConstraintLabel], best_epoch: Option<usize> },
    /// Stopped early: `monitor` has not improved for `patience` epochs.
    EarlyStop { epoch: usize, best_epoch: usize, patience: usize, monitor: &'a str },
    /// The run was stopped on request after a step; a checkpoint holds it.
    Interrupted,
}

/// Keeps every event as a line of text (tests).
#[derive(Default)]
pub struct Recorder {
    pub lines: Vec<String>,
}

impl Observer for Recorder {
    fn event(&mut self, event: &Event<'_>) {
        let line = match event {
            Event::Started { model, epochs, resumed_at, .. } => format!("started {model} epochs={epochs} resumed_at={resumed_at:?}"),
            Event::StaleLockTakenOver { pid, .. } => format!("stale lock {pid}"),
            Event::Replaced { files } => format!("replaced {}", files.join(",")),
            Event::InitFitted { layer, constraint, .. } => format!("init fitted {layer} {constraint}"),
            Event::PhaseEntered { name, epochs } => format!("phase {name} {epochs}"),
            Event::EpochStarted { epoch, done, .. } => format!("epoch started {epoch} done={done}"),
            Event::StepDone { epoch, step, live, .. } => format!("step {epoch}.{step} figures={}", live.figures().len()),
            Event::EpochDone { report, best_epoch, .. } => format!("epoch done {} best={best_epoch:?}", report.epoch),
            Event::EarlyStop { epoch, best_epoch, .. } => format!("early stop {epoch} best={best_epoch}"),
            Event::Interrupted => "interrupted".into(),
        };
        self.lines.push(line);
    }
}
