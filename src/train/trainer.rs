//! The trainer: a run's state (network, constraints, optimizer, generators,
//! schedule, report so far) and its life in small steps — open the run folder,
//! build or resume, run epoch after epoch, finish with the kept weights and
//! report.json. What it does is told to an [`Observer`]; it prints nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use candle_core::{Device, Tensor};

use super::checkpoint::{self, Checkpoint, RunDigest};
use super::lr::{InRun, LrPlan};
use super::optim::Optimizer;
use super::provenance::Provenance;
use super::report::{EpochReport, Report, Stopped, best_epoch, constraint_reports, early_stop_due, write_report};
use super::schedule::{Schedule, optimizer_in_force};
use super::step::{At, batch, evaluate, train_step};
use super::{ConstraintLabel, Event, Live, Observer, Options, TrainError, run_dir, save_weights};
use crate::data::{self, Splits};
use crate::language::ir::{Keep, Model, Monitor, Program};
use crate::language::schema::Mode;
use crate::model::constraints::{Enforced, Measure};
use crate::model::{Net, ParamName, ops};
use crate::rng::Rng;

/// Where a checkpoint keeps the best epoch's state (`keep = best`).
const BEST_PREFIX: &str = "best/";

/// Whether a run goes on after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Every epoch ran, or the run stopped early.
    Stop,
}

/// A run under way: [`Trainer::new`], then [`Trainer::run_epoch`] until it
/// says [`Flow::Stop`], then [`Trainer::finish`]; each event goes to the
/// observer. It trains on the CPU with lpn's kernels; the weights it keeps
/// (`model.safetensors` in the run folder) load on any device with
/// [`Model::load`](crate::Model::load).
pub struct Trainer<'a> {
    program: &'a Program,
    opts: &'a Options,
    observer: &'a mut dyn Observer,
    /// The run folder's lock, held until the trainer is dropped.
    _lock: run_dir::Lock,
    run_digest: RunDigest,
    /// What model.safetensors says of its model (`provenance`).
    provenance: Provenance,
    seed: u64,
    splits: Splits,
    net: Net,
    enforced: Vec<Enforced>,
    /// Per constraint: how far fitting a given initial weight moved it.
    init_residuals: Vec<Option<f64>>,
    labels: Vec<ConstraintLabel>,
    optimizer: Optimizer,
    shuffle: Rng,
    dropout: Rng,
    batch_size: usize,
    steps_per_epoch: usize,
    schedule: Schedule,
    /// The learning rate of each step.
    lr_plan: LrPlan,
    report: Report,
    /// The index (from 0) of the next epoch to run.
    next_epoch: usize,
    /// Of a run resumed inside an epoch: where in that epoch.
    within: Option<Within>,
    /// The epoch of the last checkpoint written (or resumed from).
    last_checkpoint: Option<usize>,
    /// The state (`Net::state_tensors`) of the best epoch so far, for `keep = best`.
    best_state: Option<Vec<(String, Tensor)>>,
    /// Epoch and step (from 1) a resumed run starts at.
    resumed_at: Option<(usize, usize)>,
}

/// Where an epoch stands: its order of examples, the steps already done,
/// the running sum of its task loss (per example) and its seconds so far.
struct Within {
    order: Vec<usize>,
    steps_done: usize,
    loss_sum: f64,
    seconds: f64,
}

/// An epoch under way.
struct EpochRun {
    index: usize,
    phase: Option<String>,
    within: Within,
    started: Instant,
}

impl EpochRun {
    fn epoch(&self) -> usize {
        self.index + 1
    }

    fn seconds(&self) -> f64 {
        self.within.seconds + self.started.elapsed().as_secs_f64()
    }
}

/// A checkpoint's place in the run.
struct Progress<'o> {
    epochs_done: usize,
    steps_done: usize,
    order: &'o [usize],
    loss_sum: f64,
    seconds: f64,
}

impl Progress<'_> {
    fn epoch_end(epochs_done: usize) -> Self {
        Progress { epochs_done, steps_done: 0, order: &[], loss_sum: 0.0, seconds: 0.0 }
    }
}

impl<'a> Trainer<'a> {
    /// Opens the run folder (locked while the trainer lives), builds the
    /// network with its constraints, and resumes the checkpoint when
    /// `opts.resume` asks to.
    pub fn new(program: &'a Program, opts: &'a Options, observer: &'a mut dyn Observer) -> Result<Self, TrainError> {
        let OpenRun { lock, run_digest, resumed } = open_run_dir(program, opts, observer)?;
        let spec = &program.train;
        // A resumed run takes its seed and length from the checkpoint.
        let seed = resumed.as_ref().map(|c| c.state.seed).unwrap_or(opts.seed.unwrap_or(spec.seed));
        let epochs = opts.epochs.or(resumed.as_ref().map(|c| c.state.epochs)).unwrap_or(spec.epochs);
        let splits = data::load(&program.data, &program.model.input.0)?;
        let Built { net, enforced, init_residuals } = build_net(&program.model, seed, &Device::Cpu)?;
        // `--epochs` caps a staged run's total.
        let schedule = Schedule::new(spec, epochs, opts.epochs.is_some() || resumed.is_some(), &net, &enforced);
        let batch_size = spec.batch.min(splits.train.len.max(1));
        let steps_per_epoch = splits.train.len.div_ceil(batch_size);
        let optimizer = Optimizer::new(&spec.optimizer, net.params.len());
        let mut trainer = Trainer {
            labels: labels(&enforced),
            lr_plan: LrPlan::new(steps_per_epoch, None),
            optimizer,
            shuffle: Rng::derive(seed, "shuffle"),
            dropout: Rng::derive(seed, "dropout"),
            steps_per_epoch,
            batch_size,
            report: Report::new(&program.model, seed, spec),
            program,
            opts,
            observer,
            _lock: lock,
            run_digest,
            provenance: Provenance::of(program, opts.source.as_ref())?,
            seed,
            splits,
            net,
            enforced,
            init_residuals,
            schedule,
            next_epoch: 0,
            within: None,
            last_checkpoint: None,
            best_state: None,
            resumed_at: None,
        };
        trainer.report.overrides = opts.overrides.clone();
        trainer.report.class_labels = trainer.provenance.class_labels.clone();
        trainer.provenance.normalization = trainer.splits.normalization.clone();
        trainer.report.examples = Some(super::report::ExampleCounts {
            train: trainer.splits.train.len,
            val: trainer.splits.val.len,
            test: trainer.splits.test.as_ref().map(|t| t.len),
        });
        if let Some(ck) = resumed {
            trainer.resume(ck)?;
        }
        trainer.announce();
        Ok(trainer)
    }

    /// Continues where the checkpoint left the run: the phase then in
    /// force, weights and statistics, optimizer, multipliers, generators,
    /// epochs reported.
    fn resume(&mut self, ck: Checkpoint) -> Result<(), TrainError> {
        let st = ck.state;
        let spec = &self.program.train;
        if let Some(phase) = self.schedule.in_force_at(st.epochs_done, st.steps_done) {
            self.schedule.apply(&spec.phases[phase], &mut self.net, &mut self.enforced)?;
            if let Some(o) = optimizer_in_force(spec, phase) {
                self.optimizer = Optimizer::new(o, self.net.params.len());
            }
        }
        self.net.load_state(&ck.tensors)?;
        self.restore_optimizer(&st.optimizer_steps, &ck.tensors);
        restore_multipliers(&self.enforced, &st.multipliers);
        self.lr_plan = LrPlan::new(self.steps_per_epoch, st.lr_plateau);
        if spec.keep == Keep::Best && best_epoch(&st.reports, spec.monitor).is_some() {
            self.best_state = Some(stored_best(&ck.tensors, &self.net)?);
        }
        self.shuffle = st.shuffle;
        self.dropout = st.dropout;
        self.report.epochs = st.reports;
        self.next_epoch = st.epochs_done;
        if st.steps_done > 0 {
            self.within =
                Some(Within { order: st.order, steps_done: st.steps_done, loss_sum: st.epoch_loss_sum, seconds: st.epoch_seconds });
        }
        self.last_checkpoint = Some(st.epochs_done);
        self.resumed_at = Some((st.epochs_done + 1, st.steps_done + 1));
        Ok(())
    }

    fn restore_optimizer(&mut self, steps: &std::collections::BTreeMap<String, i32>, tensors: &HashMap<String, Tensor>) {
        let params = &self.net.params;
        let moments = (0..params.len())
            .flat_map(|i| ["first", "second"].map(|w| (i, w)))
            .filter_map(|(i, which)| tensors.get(&moment_name(which, &params[i].name)).map(|t| (i, which, t.clone())))
            .collect();
        let steps: Vec<i32> = params.iter().map(|p| steps.get(&p.name.to_string()).copied().unwrap_or(0)).collect();
        self.optimizer.restore(&steps, moments);
    }

    /// Tells the observer the run begins, and which given weights were fitted
    /// into their constraints (on a fresh run only).
    fn announce(&mut self) {
        let model = &self.program.model;
        self.observer.event(&Event::Started {
            model: &model.name,
            parameters: model.parameter_count(),
            dir: &self.opts.out_dir,
            epochs: self.schedule.len(),
            steps_per_epoch: self.steps_per_epoch,
            constraints: &self.labels,
            resumed_at: self.resumed_at,
        });
        if self.resumed_at.is_some() {
            return;
        }
        for (e, r) in self.enforced.iter().zip(&self.init_residuals) {
            if let Some(r) = r.filter(|r| *r > 1e-6) {
                self.observer.event(&Event::InitFitted { layer: &e.layer, constraint: e.spec.family.name(), relative_change: r });
            }
        }
    }

    /// Runs the next epoch; [`Flow::Stop`] once there is none to run (every
    /// epoch ran, or early stopping ended the run).
    pub fn run_epoch(&mut self) -> Result<Flow, TrainError> {
        let index = self.next_epoch;
        if index >= self.schedule.len() {
            return Ok(Flow::Stop);
        }
        // A resumed run whose patience had already run out stops here again.
        if let Some(stop) = early_stop_due(&self.report.epochs, &self.program.train) {
            self.report.stopped = Some(stop);
            return Ok(Flow::Stop);
        }
        self.next_epoch += 1;
        let mut run = self.begin_epoch(index)?;
        let order = std::mem::take(&mut run.within.order);
        for (step, chunk) in order.chunks(self.batch_size).enumerate().skip(run.within.steps_done) {
            run.within.loss_sum += self.step(run.epoch(), step, chunk)? * chunk.len() as f64;
            let mean_loss = run.within.loss_sum / ((step * self.batch_size + chunk.len()) as f64);
            self.observer.event(&Event::StepDone {
                epoch: run.epoch(),
                step: step + 1,
                steps: self.steps_per_epoch,
                mean_loss,
                live: Live { enforced: &self.enforced, net: &self.net },
            });
            if self.stop_requested() {
                return Err(self.interrupt_within(&run, &order, step + 1));
            }
        }
        self.end_epoch(run)
    }

    /// Enters the phase that begins with this epoch, if one does (not when
    /// resuming inside the epoch: its phase is already in force), and draws
    /// the epoch's order of examples.
    fn begin_epoch(&mut self, index: usize) -> Result<EpochRun, TrainError> {
        let spec = &self.program.train;
        let within = self.within.take();
        if within.is_none()
            && let Some(phase) = self.schedule.entering(index)
        {
            self.enter_phase(phase)?;
        }
        let phase = self.schedule.phase_of(index).map(|i| spec.phases[i].name.clone());
        let started = Instant::now();
        let within = match within {
            Some(w) => w,
            None => Within { order: self.epoch_order(), steps_done: 0, loss_sum: 0.0, seconds: 0.0 },
        };
        self.observer.event(&Event::EpochStarted {
            epoch: index + 1,
            epochs: self.schedule.len(),
            steps: self.steps_per_epoch,
            done: within.steps_done,
        });
        Ok(EpochRun { index, phase, within, started })
    }

    fn enter_phase(&mut self, index: usize) -> Result<(), TrainError> {
        let phase = &self.program.train.phases[index];
        self.schedule.enter(phase, &mut self.net, &mut self.enforced)?;
        if let Some(o) = &phase.optimizer {
            self.optimizer = Optimizer::new(o, self.net.params.len());
        }
        self.observer.event(&Event::PhaseEntered { name: &phase.name, epochs: phase.epochs });
        Ok(())
    }

    /// The order of the training examples in a new epoch.
    fn epoch_order(&mut self) -> Vec<usize> {
        let n = self.splits.train.len;
        if self.program.train.shuffle { self.shuffle.permutation(n) } else { (0..n).collect() }
    }

    /// One training step on the examples `chunk` (step `step` from 0 of
    /// epoch `epoch` from 1); the batch's task loss.
    pub fn step(&mut self, epoch: usize, step: usize, chunk: &[usize]) -> Result<f64, TrainError> {
        let (x, y) = batch(&self.splits.train, chunk, &self.net.device)?;
        let base = self.optimizer.base_lr();
        let lr = self.lr_plan.lr(&self.program.train, self.in_run(epoch - 1), epoch - 1, step, base);
        self.optimizer.set_lr(lr);
        let at = At { epoch, step: step + 1, saved: self.last_checkpoint.map(|_| self.weights_path()) };
        crate::model::ops::on_rayon_thread(|| {
            train_step(&self.net, &self.enforced, &mut self.optimizer, &mut self.dropout, &self.program.train, (&x, &y), &at)
        })
    }

    /// Stops inside an epoch on request, with a checkpoint of where it is.
    fn interrupt_within(&mut self, run: &EpochRun, order: &[usize], steps_done: usize) -> TrainError {
        self.observer.event(&Event::Interrupted);
        let progress = Progress { epochs_done: run.index, steps_done, order, loss_sum: run.within.loss_sum, seconds: run.seconds() };
        if let Err(e) = self.save_checkpoint(progress) {
            return e;
        }
        TrainError::Interrupted { epoch: run.epoch(), step: steps_done, steps: self.steps_per_epoch, dir: self.opts.out_dir.clone() }
    }

    /// The end of an epoch: its figures, a checkpoint when one is due,
    /// report.json, and whether the run goes on.
    fn end_epoch(&mut self, run: EpochRun) -> Result<Flow, TrainError> {
        let spec = &self.program.train;
        let epoch = run.epoch();
        let (measures, best) = self.record_epoch(run)?;
        let early_stop = early_stop_due(&self.report.epochs, spec);
        // A checkpoint every `checkpoint_every` epochs and at the end: a later
        // fault or kill leaves the last good state on disk.
        if epoch.is_multiple_of(spec.checkpoint_every.max(1))
            || epoch == self.schedule.len()
            || self.stop_requested()
            || early_stop.is_some()
        {
            self.save_checkpoint(Progress::epoch_end(epoch))?;
            self.last_checkpoint = Some(epoch);
        }
        // report.json follows the run epoch by epoch (final figures at the end).
        self.report.constraints = constraint_reports(&self.enforced, &self.net, measures, &self.init_residuals);
        write_report(&self.opts.out_dir, &self.report)?;
        if let (Some(stop), Some(best_epoch)) = (early_stop, best) {
            self.report.stopped = Some(stop);
            let patience = spec.early_stop.unwrap_or(0);
            self.observer.event(&Event::EarlyStop { epoch, best_epoch, patience, monitor: spec.monitor.name() });
            return Ok(Flow::Stop);
        }
        if self.stop_requested() && epoch < self.schedule.len() {
            self.observer.event(&Event::Interrupted);
            let dir = self.opts.out_dir.clone();
            return Err(TrainError::Interrupted { epoch: epoch + 1, step: 0, steps: self.steps_per_epoch, dir });
        }
        Ok(Flow::Continue)
    }

    /// Adds the epoch's figures to the report (keeping its state when it is
    /// the best so far under `keep = best`) and tells the observer; the
    /// constraints' measures and the best epoch so far.
    fn record_epoch(&mut self, run: EpochRun) -> Result<(Vec<Measure>, Option<usize>), TrainError> {
        let spec = &self.program.train;
        let epoch = run.epoch();
        let step_seconds = run.seconds();
        let train_loss = run.within.loss_sum / self.splits.train.len.max(1) as f64;
        let val = if self.splits.val.len > 0 { Some(evaluate(&self.net, spec.loss, &self.splits.val, self.batch_size)?) } else { None };
        let measures = measure_all(&self.enforced, &self.net)?;
        let figure = val.as_ref().and_then(|v| match spec.monitor {
            Monitor::ValLoss => Some(v.loss),
            Monitor::ValAccuracy => v.accuracy,
        });
        // The lr of the epoch's last step, before the plateau takes the figure
        // (recomputed: a run resumed at the epoch's end took no step in it).
        let (in_run, base) = (self.in_run(run.index), self.optimizer.base_lr());
        let lr = self.lr_plan.lr(spec, in_run, run.index, self.steps_per_epoch - 1, base);
        self.lr_plan.end_epoch(spec, in_run, run.index, base, figure);
        self.report.epochs.push(EpochReport {
            epoch,
            phase: run.phase.clone(),
            train_loss,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().and_then(|v| v.accuracy),
            seconds: run.seconds(),
            step_seconds,
            lr,
            constraints: measures.clone(),
        });
        let best = best_epoch(&self.report.epochs, spec.monitor);
        if spec.keep == Keep::Best && best == Some(epoch) {
            self.best_state = Some(copied(self.net.state_tensors()?)?);
        }
        let this_epoch = self.report.epochs.last().expect("just pushed");
        let epochs = self.schedule.len();
        self.observer.event(&Event::EpochDone { report: this_epoch, epochs, constraints: &self.labels, best_epoch: best });
        Ok((measures, best))
    }

    /// The run's end: the kept weights (the last epoch's or the best one's),
    /// the test evaluation, model.safetensors and the final report.json.
    pub fn finish(mut self) -> Result<Report, TrainError> {
        let spec = &self.program.train;
        let last_epoch = self.report.epochs.last().map(|e| e.epoch);
        self.report.kept_epoch = match (spec.keep, best_epoch(&self.report.epochs, spec.monitor), &self.best_state) {
            (Keep::Best, Some(best), Some(state)) => {
                let state: HashMap<String, Tensor> = state.iter().cloned().collect();
                self.net.load_state(&state)?;
                Some(best)
            }
            (Keep::Best, _, _) | (Keep::Last, _, _) => last_epoch,
        };
        self.report.stopped = self.report.stopped.or(Some(Stopped::Epochs));
        if let Some(test) = &self.splits.test {
            self.report.test = Some(evaluate(&self.net, spec.loss, test, self.batch_size)?);
        }
        let measures = measure_all(&self.enforced, &self.net)?;
        self.report.constraints = constraint_reports(&self.enforced, &self.net, measures, &self.init_residuals);
        save_weights(&self.net, &self.weights_path(), &self.provenance)?;
        write_report(&self.opts.out_dir, &self.report)?;
        Ok(self.report)
    }

    /// Writes model.safetensors and the checkpoint of everything needed to
    /// go on from `progress`.
    fn save_checkpoint(&self, progress: Progress) -> Result<(), TrainError> {
        let (steps, moments) = self.optimizer.state();
        let params = &self.net.params;
        let optimizer_steps = params.iter().zip(steps).map(|(p, n)| (p.name.to_string(), n)).collect();
        let mut tensors = self.net.state_tensors()?;
        for (i, which, t) in moments {
            tensors.push((moment_name(which, &params[i].name), t));
        }
        for (name, t) in self.best_state.iter().flatten() {
            tensors.push((format!("{BEST_PREFIX}{name}"), t.clone()));
        }
        let state = checkpoint::State {
            format: checkpoint::FORMAT_VERSION,
            model: self.program.model.name.clone(),
            run_digest: self.run_digest.clone(),
            seed: self.seed,
            epochs: self.schedule.len(),
            epochs_done: progress.epochs_done,
            steps_done: progress.steps_done,
            order: progress.order.to_vec(),
            epoch_loss_sum: progress.loss_sum,
            epoch_seconds: progress.seconds,
            shuffle: self.shuffle.clone(),
            dropout: self.dropout.clone(),
            optimizer_steps,
            multipliers: self.enforced.iter().map(|e| e.multiplier()).collect(),
            reports: self.report.epochs.clone(),
            lr_plateau: self.lr_plan.plateau().cloned(),
        };
        // Weights first: a checkpoint never points at weights older than itself.
        save_weights(&self.net, &self.weights_path(), &self.provenance)?;
        checkpoint::save(&self.opts.out_dir, &state, tensors)?;
        Ok(())
    }

    /// Epoch `index`'s place in the run, for its learning rate.
    fn in_run(&self, index: usize) -> InRun {
        InRun { phase: self.schedule.phase_of(index), run_epochs: self.schedule.len() }
    }

    fn weights_path(&self) -> PathBuf {
        self.opts.out_dir.join("model.safetensors")
    }

    /// Whether a stop was asked for (Ctrl-C, SIGTERM) since the last look.
    fn stop_requested(&self) -> bool {
        self.opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }
}

/// The run folder, locked, with what determines the run and the checkpoint to resume.
struct OpenRun {
    lock: run_dir::Lock,
    run_digest: RunDigest,
    resumed: Option<Checkpoint>,
}

/// Creates and locks the run folder; reads the checkpoint to resume (and
/// checks that it continues this run), or claims the folder for a new run.
fn open_run_dir(program: &Program, opts: &Options, observer: &mut dyn Observer) -> Result<OpenRun, TrainError> {
    let dir = &opts.out_dir;
    if opts.resume && !dir.is_dir() {
        return Err(TrainError::Resume(format!("no checkpoint in {}: the folder does not exist", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Io(dir.clone(), e))?;
    let lock = run_dir::Lock::acquire(dir)?;
    if let Some(holder) = &lock.took_over {
        observer.event(&Event::StaleLockTakenOver { pid: holder.pid, command: &holder.command });
    }
    let run_digest = RunDigest::of(program)?;
    let resumed = if opts.resume { Some(checkpoint::load(dir, &Device::Cpu)?) } else { None };
    if let Some(ck) = &resumed {
        check_resumable(&ck.state, program, &run_digest, opts)?;
    } else {
        let replaced = run_dir::claim_for_new_run(dir, opts.force)?;
        if !replaced.is_empty() {
            observer.event(&Event::Replaced { files: &replaced });
        }
    }
    Ok(OpenRun { lock, run_digest, resumed })
}

/// A network with its constraints, and how far fitting given initial
/// weights into them moved those.
pub(crate) struct Built {
    pub(crate) net: Net,
    pub(crate) enforced: Vec<Enforced>,
    init_residuals: Vec<Option<f64>>,
}

/// The network with its constraints attached and projected modes inside
/// their sets; per constraint, how far that moved a given initial weight.
pub(crate) fn build_net(model: &Model, seed: u64, device: &Device) -> Result<Built, crate::model::LowerError> {
    let mut net = Net::new_on(model, seed, ops::TRAIN_DTYPE, device)?;
    // Weights as initialised, to tell how far the constraints moved given ones.
    let initial: Vec<Tensor> =
        (0..net.params.len()).map(|i| net.effective(i).and_then(|w| w.detach().copy())).collect::<candle_core::Result<_>>()?;
    let enforced = Enforced::attach_all(&mut net, &model.walk())?;
    // Projected modes start inside their set; a given initial weight that was
    // outside is fitted in, and how far it moved is reported.
    Enforced::project_all(&enforced, &net)?;
    let residuals = enforced.iter().map(|e| init_residual(model, e, &net, &initial[e.param])).collect();
    Ok(Built { net, enforced, init_residuals: residuals })
}

/// ‖Δw‖/‖w‖ of a layer's given initial weight (`@init`) from `before` to
/// where its constraint put it; `None` for a layer without `@init`, in freeze
/// mode, or where the figure cannot be had.
fn init_residual(model: &Model, e: &Enforced, net: &Net, before: &Tensor) -> Option<f64> {
    let layer = model.walk().into_iter().find(|l| l.name == e.layer)?;
    layer.init.as_ref()?;
    if e.spec.mode == Mode::Freeze {
        return None;
    }
    let after = net.effective(e.param).ok()?;
    let moved = (&after - before).ok()?.sqr().ok()?.sum_all().ok()?.to_scalar::<f32>().ok()? as f64;
    let size = before.sqr().ok()?.sum_all().ok()?.to_scalar::<f32>().ok()? as f64;
    Some((moved / size.max(1e-30)).sqrt())
}

fn labels(enforced: &[Enforced]) -> Vec<ConstraintLabel> {
    enforced
        .iter()
        .map(|e| ConstraintLabel { layer: e.layer.clone(), kind: e.spec.family.name().into(), has_ratio: e.spec.set.quadratic().is_some() })
        .collect()
}

/// Each constraint's figures now.
fn measure_all(enforced: &[Enforced], net: &Net) -> candle_core::Result<Vec<Measure>> {
    enforced.iter().map(|e| e.measure(net)).collect()
}

/// The lagrangian multipliers as a checkpoint stored them.
fn restore_multipliers(enforced: &[Enforced], multipliers: &[f64]) {
    for (e, m) in enforced.iter().zip(multipliers) {
        e.set_multiplier(*m);
    }
}

/// A checkpoint's name for an optimizer moment of a parameter.
fn moment_name(which: &str, param: &ParamName) -> String {
    format!("optimizer/{which}/{param}")
}

fn copied(state: Vec<(String, Tensor)>) -> candle_core::Result<Vec<(String, Tensor)>> {
    state.into_iter().map(|(n, t)| Ok((n, t.copy()?))).collect()
}

/// The best epoch's state stored in a checkpoint.
fn stored_best(tensors: &HashMap<String, Tensor>, net: &Net) -> Result<Vec<(String, Tensor)>, TrainError> {
    net.state_tensors()?
        .into_iter()
        .map(|(name, _)| match tensors.get(&format!("{BEST_PREFIX}{name}")) {
            Some(t) => Ok((name, t.clone())),
            None => Err(TrainError::Resume(format!("the checkpoint keeps no best-epoch tensor `{name}` (`keep = best`)"))),
        })
        .collect()
}

/// Refuses a checkpoint that would not continue this run: another model,
/// another program or data, another seed.
fn check_resumable(state: &checkpoint::State, program: &Program, now: &RunDigest, opts: &Options) -> Result<(), TrainError> {
    let dir = opts.out_dir.display();
    if state.model != program.model.name {
        return Err(TrainError::Resume(format!(
            "the checkpoint in {dir} is of model `{}`, this file's model is `{}`",
            state.model, program.model.name
        )));
    }
    let changes = state.run_digest.changes(now);
    if !changes.is_empty() {
        return Err(TrainError::Resume(format!(
            "since the checkpoint in {dir} was written, {}, so the run would not continue the same training; \
             restore them, or start a new run (another --out)",
            changes.join("; ")
        )));
    }
    if let Some(seed) = opts.seed
        && seed != state.seed
    {
        return Err(TrainError::Resume(format!("the checkpoint in {dir} was trained with seed {}, not {seed}", state.seed)));
    }
    if opts.epochs.is_some_and(|e| e < state.epochs_done) {
        return Err(TrainError::Resume(format!(
            "the checkpoint in {dir} has already finished {} epochs, more than --epochs asks for",
            state.epochs_done
        )));
    }
    Ok(())
}
