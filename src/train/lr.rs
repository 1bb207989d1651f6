//! The learning rate in force at each optimizer step: the run's schedule, or
//! a phase's in place of it for that phase (`ir::LrSchedule`), each part
//! PyTorch's scheduler of the same role (`schema::SCHEDULES` says which).
//!
//! Every part but `plateau` is a closed form of where the step stands in the
//! schedule's scope (epoch and step), so a resumed run recomputes it; the
//! plateau's state (best figure, bad epochs, cooldown, its learning rate) is
//! the one thing a checkpoint must keep ([`PlateauState`]).

use serde::{Deserialize, Serialize};

use crate::language::ir::{LrPart, LrSchedule, Monitor, TrainSpec};

/// PyTorch ReduceLROnPlateau's `eps`: a decay smaller than this is ignored.
const PLATEAU_EPS: f64 = 1e-8;

/// Which schedule is in force: the run's, or phase `i`'s.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ScopeId {
    Run,
    Phase(usize),
}

/// ReduceLROnPlateau's state (`best`, `num_bad_epochs`, `cooldown_counter`,
/// the learning rate) for the schedule of `scope`; a schedule entered anew
/// starts a fresh one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PlateauState {
    pub scope: ScopeId,
    /// The best figure so far; `None` before the first (PyTorch's ±inf).
    pub best: Option<f64>,
    pub bad_epochs: usize,
    pub cooldown_left: usize,
    pub lr: f64,
}

/// Where an epoch is in the run: its phase (`None` unstaged) and the run's
/// length in epochs.
#[derive(Clone, Copy, Debug)]
pub struct InRun {
    pub phase: Option<usize>,
    pub run_epochs: usize,
}

/// A schedule with the epochs it spans.
struct Scope<'s> {
    id: ScopeId,
    schedule: &'s LrSchedule,
    first_epoch: usize,
    epochs: usize,
}

/// Where a step stands in its scope's schedule: the part in force, the steps
/// since that part began, its epoch (from 0) and its length in epochs.
struct Position<'s> {
    part: &'s LrPart,
    steps_in: usize,
    epoch_in: usize,
    epochs: usize,
}

/// The learning rate of every step of a run.
pub struct LrPlan {
    steps_per_epoch: usize,
    plateau: Option<PlateauState>,
}

impl LrPlan {
    pub fn new(steps_per_epoch: usize, plateau: Option<PlateauState>) -> LrPlan {
        LrPlan { steps_per_epoch: steps_per_epoch.max(1), plateau }
    }

    /// The plateau's state, for a checkpoint.
    pub fn plateau(&self) -> Option<&PlateauState> {
        self.plateau.as_ref()
    }

    /// The learning rate of step `step` (from 0) of epoch `epoch` (from 0),
    /// the optimizer's declared rate being `base`.
    pub fn lr(&mut self, spec: &TrainSpec, in_run: InRun, epoch: usize, step: usize, base: f64) -> f64 {
        let Some(scope) = scope(spec, in_run) else { return base };
        let at = position(&scope, epoch, step, self.steps_per_epoch);
        match *at.part {
            LrPart::Step { every, gamma } => base * gamma.powi((at.epoch_in / every) as i32),
            LrPart::Cosine { min_lr } => {
                let t = at.epoch_in as f64 / at.epochs.max(1) as f64;
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0
            }
            LrPart::Warmup { steps, start_factor } => {
                base * (start_factor + (1.0 - start_factor) * at.steps_in.min(steps) as f64 / steps as f64)
            }
            LrPart::Plateau { .. } => self.plateau_state(scope.id, base).lr,
        }
    }

    /// At the end of epoch `epoch` (from 0): a plateau in force takes the
    /// monitored figure (`None` without validation data: nothing to watch).
    pub fn end_epoch(&mut self, spec: &TrainSpec, in_run: InRun, epoch: usize, base: f64, figure: Option<f64>) {
        let Some(scope) = scope(spec, in_run) else { return };
        let at = position(&scope, epoch, self.steps_per_epoch - 1, self.steps_per_epoch);
        let (LrPart::Plateau { patience, factor, min_lr, threshold, cooldown }, Some(figure)) = (*at.part, figure) else { return };
        let state = self.plateau_state(scope.id, base);
        let better = match (state.best, spec.monitor) {
            (None, _) => !figure.is_nan(),
            (Some(best), Monitor::ValLoss) => figure < best * (1.0 - threshold),
            (Some(best), Monitor::ValAccuracy) => figure > best * (1.0 + threshold),
        };
        if better {
            state.best = Some(figure);
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        if state.cooldown_left > 0 {
            state.cooldown_left -= 1;
            state.bad_epochs = 0;
        }
        if state.bad_epochs > patience {
            let decayed = (state.lr * factor).max(min_lr);
            if state.lr - decayed > PLATEAU_EPS {
                state.lr = decayed;
            }
            state.cooldown_left = cooldown;
            state.bad_epochs = 0;
        }
    }

    /// The plateau's state for `scope`, fresh (at `base`) when it is another's.
    fn plateau_state(&mut self, scope: ScopeId, base: f64) -> &mut PlateauState {
        if self.plateau.as_ref().is_none_or(|s| s.scope != scope) {
            self.plateau = Some(PlateauState { scope, best: None, bad_epochs: 0, cooldown_left: 0, lr: base });
        }
        self.plateau.as_mut().expect("just set")
    }
}

/// The schedule in force in an epoch: its phase's, else the run's.
fn scope(spec: &TrainSpec, in_run: InRun) -> Option<Scope<'_>> {
    if let Some(i) = in_run.phase
        && let Some(schedule) = &spec.phases[i].schedule
    {
        let first_epoch = spec.phases[..i].iter().map(|p| p.epochs).sum();
        return Some(Scope { id: ScopeId::Phase(i), schedule, first_epoch, epochs: spec.phases[i].epochs });
    }
    let schedule = spec.schedule.as_ref()?;
    Some(Scope { id: ScopeId::Run, schedule, first_epoch: 0, epochs: in_run.run_epochs })
}

/// Where step `step` of epoch `epoch` stands in `scope`: a warm-up holds its
/// first `steps` steps, and the next part starts counting its epochs from the
/// epoch in which the warm-up ended (PyTorch SequentialLR's hand-over).
fn position<'s>(scope: &Scope<'s>, epoch: usize, step: usize, steps_per_epoch: usize) -> Position<'s> {
    let local_step = (epoch - scope.first_epoch) * steps_per_epoch + step;
    let mut start = 0;
    let parts = &scope.schedule.parts;
    for (i, part) in parts.iter().enumerate() {
        let length = match *part {
            LrPart::Warmup { steps, .. } if i + 1 < parts.len() => steps,
            LrPart::Warmup { .. } | LrPart::Step { .. } | LrPart::Cosine { .. } | LrPart::Plateau { .. } => usize::MAX,
        };
        if local_step - start < length {
            let first_epoch = start / steps_per_epoch;
            return Position {
                part,
                steps_in: local_step - start,
                epoch_in: local_step / steps_per_epoch - first_epoch,
                epochs: scope.epochs.saturating_sub(first_epoch),
            };
        }
        start += length;
    }
    unreachable!("the last part of a schedule never ends")
}
