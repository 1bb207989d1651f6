//! The phase schedule of a staged training: which phase each epoch belongs
//! to, entering a phase, and applying its settings (layers frozen or scaled,
//! constraints enforced in another mode) on top of the model's own.

use crate::language::ir::{Constraint, Optimizer as OptimizerSpec, Phase, TrainSpec};
use crate::model::Net;
use crate::model::constraints::Enforced;

pub(super) struct Schedule {
    /// The phase (index into the train section's phases) of each epoch;
    /// `None` throughout for an unstaged run.
    epochs: Vec<Option<usize>>,
    /// Each parameter's own `frozen` and `lr_scale`, which every phase starts from.
    base_params: Vec<(bool, f64)>,
    /// Each constraint as the model declares it, which every phase starts from.
    base_specs: Vec<Constraint>,
}

impl Schedule {
    /// The schedule of `epochs` epochs; `capped` (`--epochs`, or a resumed
    /// run's planned length) cuts a staged run's total at `epochs`.
    pub fn new(spec: &TrainSpec, epochs: usize, capped: bool, net: &Net, enforced: &[Enforced]) -> Schedule {
        let epochs = if spec.phases.is_empty() {
            vec![None; epochs]
        } else {
            let all = spec.phases.iter().enumerate().flat_map(|(i, p)| std::iter::repeat_n(Some(i), p.epochs));
            all.take(if capped { epochs } else { usize::MAX }).collect()
        };
        Schedule {
            epochs,
            base_params: net.params.iter().map(|p| (p.frozen, p.lr_scale)).collect(),
            base_specs: enforced.iter().map(|e| e.spec.clone()).collect(),
        }
    }

    /// Epochs in the run.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// The phase of epoch `index` (from 0).
    pub fn phase_of(&self, index: usize) -> Option<usize> {
        self.epochs.get(index).copied().flatten()
    }

    /// The phase that begins with epoch `index`, if one does.
    pub fn entering(&self, index: usize) -> Option<usize> {
        let phase = self.phase_of(index)?;
        (index == 0 || self.epochs[index - 1] != Some(phase)).then_some(phase)
    }

    /// The phase in force at a checkpoint: that of the epoch it is inside of,
    /// or of the last finished one at an epoch's end.
    pub fn in_force_at(&self, epochs_done: usize, steps_done: usize) -> Option<usize> {
        let current = if steps_done > 0 { Some(epochs_done) } else { epochs_done.checked_sub(1) };
        current.and_then(|e| self.phase_of(e))
    }

    /// Applies a phase's changes on top of the model's own settings. Weights
    /// entering a projected mode are projected at once.
    pub fn enter(&self, phase: &Phase, net: &mut Net, enforced: &mut [Enforced]) -> candle_core::Result<()> {
        self.apply(phase, net, enforced)?;
        Enforced::project_all(enforced, net)
    }

    /// A phase's settings without the projection that entering it does (a
    /// resumed run's weights are already where the projection left them).
    pub fn apply(&self, phase: &Phase, net: &mut Net, enforced: &mut [Enforced]) -> candle_core::Result<()> {
        for (p, &(frozen, lr)) in net.params.iter_mut().zip(&self.base_params) {
            p.frozen = frozen;
            p.lr_scale = lr;
        }
        for (e, s) in enforced.iter_mut().zip(&self.base_specs) {
            e.set_spec(s.clone())?;
        }
        for change in &phase.layers {
            for p in net.params.iter_mut().filter(|p| p.name.layer == change.layer) {
                p.frozen |= change.frozen;
                if let Some(s) = change.lr_scale {
                    p.lr_scale = s;
                }
            }
            for c in &change.constraints {
                set_phase_mode(enforced, &change.layer, c)?;
            }
        }
        Ok(())
    }
}

/// Enforces the layer's constraint of `c`'s family as `c` says. The phase
/// changes how the constraint is enforced, never its set (the checker
/// refuses that, E0060): `set_spec` keeps the model's.
fn set_phase_mode(enforced: &mut [Enforced], layer: &str, c: &Constraint) -> candle_core::Result<()> {
    for e in enforced.iter_mut().filter(|e| e.layer == layer && e.spec.family == c.family) {
        e.set_spec(c.clone())?;
    }
    Ok(())
}

/// The optimizer in force in phase `phase`: the last one a phase up to it set.
pub(super) fn optimizer_in_force(spec: &TrainSpec, phase: usize) -> Option<&OptimizerSpec> {
    spec.phases[..=phase].iter().rev().find_map(|p| p.optimizer.as_ref())
}
