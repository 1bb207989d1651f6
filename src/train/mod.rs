//! Training: data → batches → forward (with penalty terms) → backward →
//! (projected) gradients → optimizer step → projections; then the weights file
//! and `report.json`.

pub mod checkpoint;
pub mod observe;
pub mod optim;
pub mod response;
pub mod run_dir;
pub mod verdict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::{self, Dataset, Targets};
use crate::language::ir::{Keep, Loss, Monitor, Program};
use crate::model::constraints::{Enforced, Measure};
use crate::model::{LowerError, Net, Pass, ops};
use crate::rng::Rng;
pub use observe::{ConstraintLabel, Event, Live, LiveFigure, Observer, Recorder, Silent};

#[derive(Default)]
pub struct Options {
    pub out_dir: PathBuf,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    /// Continue the run whose checkpoint is in `out_dir`.
    pub resume: bool,
    /// Start a new run in a folder that holds another one, removing its files.
    pub force: bool,
    /// Set from elsewhere (a signal handler) to stop after the current step
    /// with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Options {
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Options { out_dir: out_dir.into(), ..Default::default() }
    }
}

#[derive(Debug)]
pub enum TrainError {
    Data(data::DataError),
    Lower(LowerError),
    Io(PathBuf, std::io::Error),
    /// A loss or gradient stopped being a finite number.
    NotFinite {
        epoch: usize,
        step: usize,
        /// What went first: a layer's output, a tensor's gradient, the data.
        culprit: Option<String>,
        /// Where the last good weights are (the last checkpoint).
        saved: Option<PathBuf>,
    },
    /// Stopped on request (Ctrl-C, SIGTERM) after a step; a checkpoint holds
    /// everything needed to continue.
    Interrupted {
        epoch: usize,
        step: usize,
        steps: usize,
        dir: PathBuf,
    },
    /// A checkpoint that cannot be resumed, and why.
    Resume(String),
    /// A new run into a folder that holds another run's files.
    RunExists {
        dir: PathBuf,
        files: Vec<String>,
    },
    /// Another run is writing into the folder (`holder`: who, if its lock
    /// file can be read).
    Locked {
        dir: PathBuf,
        holder: Option<run_dir::Holder>,
    },
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Data(e) => write!(f, "{e}"),
            TrainError::Lower(e) => write!(f, "{e}"),
            TrainError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            TrainError::NotFinite { epoch, step, culprit, saved } => {
                write!(f, "the loss or its gradient became NaN or infinite at epoch {epoch}, step {step}")?;
                if let Some(c) = culprit {
                    write!(f, ", first in {c}")?;
                }
                write!(f, "; lower the learning rate, set `clip = …` in the train section, or check the data")?;
                if let Some(p) = saved {
                    write!(f, " (the last checkpoint's weights are in {})", p.display())?;
                }
                Ok(())
            }
            TrainError::Interrupted { epoch, step, steps, dir } => {
                write!(f, "interrupted at epoch {epoch}, step {step}/{steps}; checkpoint saved in {}", dir.display())
            }
            TrainError::Resume(m) => write!(f, "cannot resume: {m}"),
            TrainError::RunExists { dir, files } => write!(
                f,
                "{} already holds a run ({}); continue it with --resume {0}, train into another folder with --out DIR, \
                 or replace it with --force",
                dir.display(),
                files.join(", ")
            ),
            TrainError::Locked { dir, holder: Some(h) } => write!(
                f,
                "{} is in use by another run: process {} (`{}`), started {} s ago; wait for it to end or train into another folder \
                 (if process {1} is no longer that run, delete {})",
                dir.display(),
                h.pid,
                h.command,
                h.age(),
                dir.join(run_dir::LOCK_FILE).display()
            ),
            TrainError::Locked { dir, holder: None } => write!(
                f,
                "{} is in use by another run (its {} cannot be read); wait for it to end or train into another folder",
                dir.display(),
                run_dir::LOCK_FILE
            ),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<data::DataError> for TrainError {
    fn from(e: data::DataError) -> Self {
        TrainError::Data(e)
    }
}
impl From<LowerError> for TrainError {
    fn from(e: LowerError) -> Self {
        TrainError::Lower(e)
    }
}
impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Lower(LowerError::Candle(e))
    }
}

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

/// A batch of examples as tensors.
fn batch(set: &Dataset, indices: &[usize], device: &Device) -> candle_core::Result<(Tensor, BatchTargets)> {
    let per = set.per_example();
    let mut x = Vec::with_capacity(indices.len() * per);
    for &i in indices {
        x.extend_from_slice(&set.inputs[i * per..(i + 1) * per]);
    }
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
        Targets::Classes(c) => BatchTargets::Classes(indices.iter().map(|&i| c[i]).collect()),
    };
    Ok((x, y))
}

enum BatchTargets {
    Signals(Tensor),
    Classes(Vec<usize>),
}

fn task_loss(loss: Loss, out: &Tensor, y: &BatchTargets) -> candle_core::Result<Tensor> {
    match (loss, y) {
        (Loss::Mse, BatchTargets::Signals(t)) => ops::mse(out, t),
        (Loss::Mae, BatchTargets::Signals(t)) => ops::mae(out, t),
        (Loss::CrossEntropy, BatchTargets::Classes(c)) => ops::cross_entropy(out, c),
        (Loss::Bce, BatchTargets::Classes(c)) => ops::bce_with_logits(out, c),
        _ => candle_core::bail!("loss {loss:?} does not fit the data (the checker should have said so)"),
    }
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

/// Loss (and accuracy for classification) of `net` on a whole data set.
pub fn evaluate(net: &Net, loss: Loss, set: &Dataset, batch_size: usize) -> Result<Evaluation, TrainError> {
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

fn constraint_params(c: &crate::language::ir::Constraint) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(b) = &c.band {
        let nyquist = b.fs.map(|fs| fs / 2.0).unwrap_or(1.0);
        match c.family {
            crate::language::schema::Family::Bandpass | crate::language::schema::Family::Bandstop => {
                m.insert("low".into(), (b.low * nyquist).into());
                m.insert("high".into(), (b.high * nyquist).into());
            }
            _ => {
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
    if let Some(edges) = c.edges.first() {
        m.insert("band_edges".into(), edges.to_json(c.band.and_then(|b| b.fs)));
    }
    if let Some(v) = c.value {
        m.insert("value".into(), v.into());
    }
    if c.mode == crate::language::schema::Mode::Penalty {
        m.insert("weight".into(), c.weight.into());
    }
    serde_json::Value::Object(m)
}

/// Writes a file through a temporary name, fsync and a rename, so a reader
/// never sees half of it, whenever the process dies.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    checkpoint::write_durably(path, bytes)
}

pub fn save_weights(net: &Net, path: &Path) -> Result<(), TrainError> {
    let mut tensors: Vec<(String, Tensor)> = net.tensors()?.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = safetensors::serialize(tensors, None)
        .map_err(|e| TrainError::Io(path.to_path_buf(), std::io::Error::other(format!("cannot encode the weights: {e}"))))?;
    write_atomic(path, &bytes)
}

/// Trains without telling anything as it goes (tests, scripts): see
/// [`train_observed`].
pub fn train(program: &Program, base: &Path, opts: &Options) -> Result<Report, TrainError> {
    train_observed(program, base, opts, &mut Silent)
}

/// Trains `program` into `opts.out_dir`, handing every event to `observer`.
///
/// The folder holds one run: it is locked while the run writes there, a new
/// run refuses a folder with another run's files unless `opts.force`, and
/// report.json is rewritten after every epoch.
pub fn train_observed(program: &Program, base: &Path, opts: &Options, observer: &mut dyn Observer) -> Result<Report, TrainError> {
    let model = &program.model;
    let spec = &program.train;
    let dir = &opts.out_dir;
    if opts.resume && !dir.is_dir() {
        return Err(TrainError::Resume(format!("no checkpoint in {}: the folder does not exist", dir.display())));
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Io(dir.clone(), e))?;
    let lock = run_dir::Lock::acquire(dir)?;
    if let Some(holder) = &lock.took_over {
        observer.event(&Event::StaleLockTakenOver { pid: holder.pid, command: &holder.command });
    }
    let run_digest = checkpoint::RunDigest::of(program)?;
    // A resumed run takes its seed and length from the checkpoint.
    let resumed = if opts.resume { Some(checkpoint::load(dir, &Device::Cpu)?) } else { None };
    if let Some(ck) = &resumed {
        check_resumable(&ck.state, program, &run_digest, opts)?;
    } else {
        let replaced = run_dir::claim_for_new_run(dir, opts.force)?;
        if !replaced.is_empty() {
            observer.event(&Event::Replaced { files: &replaced });
        }
    }
    let seed = resumed.as_ref().map(|c| c.state.seed).unwrap_or(opts.seed.unwrap_or(spec.seed));
    let epochs = opts.epochs.or(resumed.as_ref().map(|c| c.state.epochs)).unwrap_or(spec.epochs);
    let splits = data::load(&program.data, &model.input.0)?;
    let mut net = Net::new(model, seed, ops::TRAIN_DTYPE)?;
    // Weights as initialised, to tell how far the constraints moved given ones.
    let initial: Vec<Tensor> =
        (0..net.params.len()).map(|i| net.effective(i).and_then(|w| w.detach().copy())).collect::<candle_core::Result<_>>()?;
    let mut enforced = Enforced::attach_all(&mut net, &model.walk())?;
    // Projected modes start inside their set; a given initial weight that was
    // outside is fitted in, and how far it moved is reported.
    Enforced::project_all(&enforced, &net)?;
    let init_residuals: Vec<Option<f64>> = enforced
        .iter()
        .map(|e| {
            let layer = model.walk().into_iter().find(|l| l.name == e.layer)?;
            layer.init.as_ref()?;
            if e.spec.mode == crate::language::schema::Mode::Freeze {
                return None;
            }
            let b = &initial[e.param];
            let after = net.effective(e.param).ok()?;
            let moved = (&after - b).ok()?.sqr().ok()?.sum_all().ok()?.to_scalar::<f32>().ok()? as f64;
            let size = b.sqr().ok()?.sum_all().ok()?.to_scalar::<f32>().ok()? as f64;
            Some((moved / size.max(1e-30)).sqrt())
        })
        .collect();
    let labels: Vec<ConstraintLabel> = enforced
        .iter()
        .map(|e| ConstraintLabel { layer: e.layer.clone(), kind: e.spec.family.name().into(), band: e.spec.band.is_some() })
        .collect();
    let mut optimizer = optim::Optimizer::new(&spec.optimizer, net.params.len());
    let mut shuffle = Rng::derive(seed, "shuffle");
    let mut dropout = Rng::derive(seed, "dropout");
    let train_set = &splits.train;
    let batch_size = spec.batch.min(train_set.len.max(1));
    let steps_per_epoch = train_set.len.div_ceil(batch_size);
    let weights_path = dir.join("model.safetensors");

    let mut report = Report {
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
    };
    // Which phase each epoch belongs to (`--epochs` caps a staged run's total).
    let schedule: Vec<Option<usize>> = if spec.phases.is_empty() {
        vec![None; epochs]
    } else {
        let all = spec.phases.iter().enumerate().flat_map(|(i, p)| std::iter::repeat_n(Some(i), p.epochs));
        all.take(if opts.epochs.is_some() || resumed.is_some() { epochs } else { usize::MAX }).collect()
    };
    let epochs = schedule.len();
    let base_frozen: Vec<(bool, f64)> = net.params.iter().map(|p| (p.frozen, p.lr_scale)).collect();
    let base_specs: Vec<crate::language::ir::Constraint> = enforced.iter().map(|e| e.spec.clone()).collect();

    // Where the run starts: the beginning, or where the checkpoint left it.
    let mut first_epoch = 0;
    let mut resume_within: Option<(Vec<usize>, usize, f64, f64)> = None;
    let mut last_checkpoint: Option<usize> = None;
    // The state (`Net::state_tensors`) of the best epoch so far, for `keep = best`.
    let mut best_state: Option<Vec<(String, Tensor)>> = None;
    let mut resumed_at = None;
    if let Some(ck) = resumed {
        let st = ck.state;
        // The phase in force at the checkpoint: that of the epoch it is
        // inside of, or of the last finished one at an epoch's end.
        let current = if st.steps_done > 0 { Some(st.epochs_done) } else { st.epochs_done.checked_sub(1) };
        if let Some(phase) = current.and_then(|e| schedule.get(e).copied().flatten()) {
            apply_phase_settings(&spec.phases[phase], &mut net, &mut enforced, &base_frozen, &base_specs)?;
            if let Some(o) = spec.phases[..=phase].iter().rev().find_map(|p| p.optimizer.as_ref()) {
                optimizer = optim::Optimizer::new(o, net.params.len());
            }
        }
        net.load_state(&ck.tensors)?;
        let moments = (0..net.params.len())
            .flat_map(|i| ["first", "second"].map(|w| (i, w)))
            .filter_map(|(i, which)| ck.tensors.get(&format!("optimizer/{which}/{}", net.params[i].name)).map(|t| (i, which, t.clone())))
            .collect();
        let steps: Vec<i32> = net.params.iter().map(|p| st.optimizer_steps.get(&p.name).copied().unwrap_or(0)).collect();
        optimizer.restore(&steps, moments);
        for (e, m) in enforced.iter().zip(&st.multipliers) {
            e.set_multiplier(*m);
        }
        if spec.keep == Keep::Best && best_epoch(&st.reports, spec.monitor).is_some() {
            best_state = Some(stored_best(&ck.tensors, &net)?);
        }
        shuffle = st.shuffle;
        dropout = st.dropout;
        report.epochs = st.reports;
        first_epoch = st.epochs_done;
        if st.steps_done > 0 {
            resume_within = Some((st.order, st.steps_done, st.epoch_loss_sum, st.epoch_seconds));
        }
        last_checkpoint = Some(st.epochs_done);
        resumed_at = Some((st.epochs_done + 1, st.steps_done + 1));
    }
    observer.event(&Event::Started {
        model: &model.name,
        parameters: model.parameter_count(),
        dir,
        epochs,
        steps_per_epoch,
        constraints: &labels,
        resumed_at,
    });
    if resumed_at.is_none() {
        for (e, r) in enforced.iter().zip(&init_residuals) {
            if let Some(r) = r.filter(|r| *r > 1e-6) {
                observer.event(&Event::InitFitted { layer: &e.layer, constraint: e.spec.family.name(), relative_change: r });
            }
        }
    }
    let write_checkpoint = |net: &Net,
                            optimizer: &optim::Optimizer,
                            enforced: &[Enforced],
                            progress: (usize, usize, &[usize], f64, f64),
                            rngs: (&Rng, &Rng),
                            reports: &[EpochReport],
                            best: Option<&Vec<(String, Tensor)>>|
     -> Result<(), TrainError> {
        let (epochs_done, steps_done, order, epoch_loss_sum, epoch_seconds) = progress;
        let (steps, moments) = optimizer.state();
        let optimizer_steps = net.params.iter().zip(steps).map(|(p, n)| (p.name.clone(), n)).collect();
        let mut tensors = net.state_tensors()?;
        for (i, which, t) in moments {
            tensors.push((format!("optimizer/{which}/{}", net.params[i].name), t));
        }
        for (name, t) in best.into_iter().flatten() {
            tensors.push((format!("{BEST_PREFIX}{name}"), t.clone()));
        }
        let state = checkpoint::State {
            format: checkpoint::FORMAT_VERSION,
            model: model.name.clone(),
            run_digest: run_digest.clone(),
            seed,
            epochs,
            epochs_done,
            steps_done,
            order: order.to_vec(),
            epoch_loss_sum,
            epoch_seconds,
            shuffle: rngs.0.clone(),
            dropout: rngs.1.clone(),
            optimizer_steps,
            multipliers: enforced.iter().map(|e| e.multiplier()).collect(),
            reports: reports.to_vec(),
        };
        // Weights first: a checkpoint never points at weights older than itself.
        save_weights(net, &weights_path)?;
        checkpoint::save(dir, &state, tensors)?;
        Ok(())
    };
    let stop_requested = || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst));

    for index in first_epoch..epochs {
        // A resumed run whose patience had already run out stops here again.
        if let Some(stop) = early_stop_due(&report.epochs, spec) {
            report.stopped = Some(stop);
            break;
        }
        let phase_index = schedule[index];
        let epoch = index + 1;
        let within = if index == first_epoch { resume_within.take() } else { None };
        if let Some(i) = phase_index
            && within.is_none()
            && (index == 0 || schedule[index - 1] != phase_index)
        {
            let phase = &spec.phases[i];
            enter_phase(phase, &mut net, &mut enforced, &base_frozen, &base_specs)?;
            if let Some(o) = &phase.optimizer {
                optimizer = optim::Optimizer::new(o, net.params.len());
            }
            observer.event(&Event::PhaseEntered { name: &phase.name, epochs: phase.epochs });
        }
        let phase_name = phase_index.map(|i| spec.phases[i].name.clone());
        let started = Instant::now();
        let (order, skip, mut total, earlier_seconds) = match within {
            Some(w) => w,
            None => (if spec.shuffle { shuffle.permutation(train_set.len) } else { (0..train_set.len).collect() }, 0, 0.0, 0.0),
        };
        observer.event(&Event::EpochStarted { epoch, epochs, steps: steps_per_epoch, done: skip });
        for (step, chunk) in order.chunks(batch_size).enumerate().skip(skip) {
            let (x, y) = batch(train_set, chunk, &net.device)?;
            let out = net.forward(&x, &mut Pass::Train { dropout: &mut dropout })?;
            let task = task_loss(spec.loss, &out, &y)?;
            let mut loss = task.clone();
            for e in &enforced {
                if let Some(p) = e.loss_term(&net)? {
                    loss = (loss + p)?;
                }
            }
            let value = loss.to_scalar::<f32>()? as f64;
            let saved = last_checkpoint.map(|_| weights_path.clone());
            if !value.is_finite() {
                let culprit = net.first_non_finite(&x)?.map(|layer| format!("the output of `{layer}`"));
                return Err(TrainError::NotFinite { epoch, step: step + 1, culprit, saved });
            }
            total += task.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            let grads = loss.backward()?;
            let mut per_param: Vec<Option<Tensor>> = net.params.iter().map(|p| grads.get(p.var.as_tensor()).cloned()).collect();
            // One sum of squares per gradient serves both the fault check and clipping.
            let mut norm_sq = 0.0;
            for (p, g) in net.params.iter().zip(&per_param) {
                let Some(g) = g else { continue };
                let s = g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                if !s.is_finite() && !crate::model::finite(g)? {
                    return Err(TrainError::NotFinite {
                        epoch,
                        step: step + 1,
                        culprit: Some(format!("the gradient of `{}`", p.name)),
                        saved,
                    });
                }
                norm_sq += s;
            }
            if let Some(max_norm) = spec.clip {
                clip_gradients(&mut per_param, norm_sq.sqrt(), max_norm)?;
            }
            for e in &enforced {
                if let Some(g) = &per_param[e.param] {
                    per_param[e.param] = Some(e.project_gradient(&net, g)?);
                }
            }
            optimizer.step(&net.params, &per_param)?;
            Enforced::project_all(&enforced, &net)?;
            for e in &enforced {
                e.dual_update(&net)?;
            }
            let mean_loss = total / ((step * batch_size + chunk.len()) as f64);
            observer.event(&Event::StepDone {
                epoch,
                step: step + 1,
                steps: steps_per_epoch,
                mean_loss,
                live: Live { enforced: &enforced, net: &net },
            });
            if stop_requested() {
                observer.event(&Event::Interrupted);
                let seconds = earlier_seconds + started.elapsed().as_secs_f64();
                let progress = (index, step + 1, order.as_slice(), total, seconds);
                write_checkpoint(&net, &optimizer, &enforced, progress, (&shuffle, &dropout), &report.epochs, best_state.as_ref())?;
                return Err(TrainError::Interrupted { epoch, step: step + 1, steps: steps_per_epoch, dir: dir.clone() });
            }
        }
        let step_seconds = earlier_seconds + started.elapsed().as_secs_f64();
        let train_loss = total / train_set.len.max(1) as f64;
        let val = if splits.val.len > 0 { Some(evaluate(&net, spec.loss, &splits.val, batch_size)?) } else { None };
        let measures = enforced.iter().map(|e| e.measure(&net)).collect::<candle_core::Result<Vec<_>>>()?;
        let seconds = earlier_seconds + started.elapsed().as_secs_f64();
        report.epochs.push(EpochReport {
            epoch,
            phase: phase_name,
            train_loss,
            val_loss: val.as_ref().map(|v| v.loss),
            val_accuracy: val.as_ref().and_then(|v| v.accuracy),
            seconds,
            step_seconds,
            constraints: measures.clone(),
        });
        let best = best_epoch(&report.epochs, spec.monitor);
        if spec.keep == Keep::Best && best == Some(epoch) {
            best_state = Some(net.state_tensors()?.into_iter().map(|(n, t)| Ok((n, t.copy()?))).collect::<candle_core::Result<_>>()?);
        }
        let this_epoch = report.epochs.last().expect("just pushed");
        observer.event(&Event::EpochDone { report: this_epoch, epochs, constraints: &labels, best_epoch: best });
        let early_stop = early_stop_due(&report.epochs, spec);
        // A checkpoint every `checkpoint_every` epochs and at the end: a later
        // fault or kill leaves the last good state on disk.
        if epoch % spec.checkpoint_every.max(1) == 0 || epoch == epochs || stop_requested() || early_stop.is_some() {
            let progress = (epoch, 0, &[][..], 0.0, 0.0);
            write_checkpoint(&net, &optimizer, &enforced, progress, (&shuffle, &dropout), &report.epochs, best_state.as_ref())?;
            last_checkpoint = Some(epoch);
        }
        // report.json follows the run epoch by epoch (final figures at the end).
        report.constraints = constraint_reports(&enforced, &net, measures, &init_residuals);
        write_report(dir, &report)?;
        if let (Some(stop), Some(best_epoch)) = (early_stop, best) {
            report.stopped = Some(stop);
            let patience = spec.early_stop.unwrap_or(0);
            observer.event(&Event::EarlyStop { epoch, best_epoch, patience, monitor: spec.monitor.name() });
            break;
        }
        if stop_requested() && epoch < epochs {
            observer.event(&Event::Interrupted);
            return Err(TrainError::Interrupted { epoch: epoch + 1, step: 0, steps: steps_per_epoch, dir: dir.clone() });
        }
    }
    // The weights the run ends with: the last epoch's, or the best one's.
    let last_epoch = report.epochs.last().map(|e| e.epoch);
    report.kept_epoch = match (spec.keep, best_epoch(&report.epochs, spec.monitor), &best_state) {
        (Keep::Best, Some(best), Some(state)) => {
            let state: HashMap<String, Tensor> = state.iter().cloned().collect();
            net.load_state(&state)?;
            Some(best)
        }
        (Keep::Best, _, _) | (Keep::Last, _, _) => last_epoch,
    };
    report.stopped = report.stopped.or(Some(Stopped::Epochs));
    if let Some(test) = &splits.test {
        report.test = Some(evaluate(&net, spec.loss, test, batch_size)?);
    }
    let measures = enforced.iter().map(|e| e.measure(&net)).collect::<candle_core::Result<Vec<_>>>()?;
    report.constraints = constraint_reports(&enforced, &net, measures, &init_residuals);
    save_weights(&net, &weights_path)?;
    write_report(dir, &report)?;
    drop(lock);
    Ok(report)
}

/// Where a checkpoint keeps the best epoch's state (`keep = best`).
const BEST_PREFIX: &str = "best/";

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
fn early_stop_due(reports: &[EpochReport], spec: &crate::language::ir::TrainSpec) -> Option<Stopped> {
    let patience = spec.early_stop?;
    let best = best_epoch(reports, spec.monitor)?;
    let last = reports.last()?.epoch;
    (last - best >= patience).then_some(Stopped::EarlyStop)
}

fn constraint_reports(enforced: &[Enforced], net: &Net, measures: Vec<Measure>, init_residuals: &[Option<f64>]) -> Vec<ConstraintReport> {
    enforced
        .iter()
        .zip(measures)
        .zip(init_residuals)
        .map(|((e, measure), init_residual)| ConstraintReport {
            init_residual: *init_residual,
            layer: e.layer.clone(),
            tensor: net.params[e.param].name.clone(),
            kind: e.spec.family.name().into(),
            mode: e.spec.mode.name().into(),
            params: constraint_params(&e.spec),
            measure,
            lambda_min: e.spec.lambda_min,
            tol: e.spec.tol,
        })
        .collect()
}

fn write_report(dir: &Path, report: &Report) -> Result<(), TrainError> {
    let json = serde_json::to_vec_pretty(report).expect("reports serialize");
    write_atomic(&dir.join("report.json"), &json)
}

/// Refuses a checkpoint that would not continue this run: another model,
/// another program or data, another seed.
fn check_resumable(state: &checkpoint::State, program: &Program, now: &checkpoint::RunDigest, opts: &Options) -> Result<(), TrainError> {
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

/// Applies a phase's changes on top of the model's own settings: layers frozen
/// or scaled for the phase, constraints enforced in another mode. Weights
/// entering a projected mode are projected at once.
fn enter_phase(
    phase: &crate::language::ir::Phase,
    net: &mut Net,
    enforced: &mut [Enforced],
    base: &[(bool, f64)],
    base_specs: &[crate::language::ir::Constraint],
) -> candle_core::Result<()> {
    apply_phase_settings(phase, net, enforced, base, base_specs)?;
    Enforced::project_all(enforced, net)
}

/// A phase's settings without the projection that entering it does (a
/// resumed run's weights are already where the projection left them).
fn apply_phase_settings(
    phase: &crate::language::ir::Phase,
    net: &mut Net,
    enforced: &mut [Enforced],
    base: &[(bool, f64)],
    base_specs: &[crate::language::ir::Constraint],
) -> candle_core::Result<()> {
    for (p, &(frozen, lr)) in net.params.iter_mut().zip(base) {
        p.frozen = frozen;
        p.lr_scale = lr;
    }
    for (e, s) in enforced.iter_mut().zip(base_specs) {
        e.set_spec(s.clone())?;
    }
    for change in &phase.layers {
        let prefix = format!("{}.", change.layer);
        for p in net.params.iter_mut().filter(|p| p.name.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('.'))) {
            p.frozen |= change.frozen;
            if let Some(s) = change.lr_scale {
                p.lr_scale = s;
            }
        }
        for c in &change.constraints {
            for e in enforced.iter_mut().filter(|e| e.layer == change.layer && e.spec.family == c.family) {
                // The phase changes how the constraint is enforced, never its band or
                // value (the checker refuses that, E0060): keep the model's.
                let spec = crate::language::ir::Constraint {
                    band: e.spec.band,
                    value: e.spec.value,
                    lambda_min: e.spec.lambda_min,
                    span: e.spec.span,
                    ..c.clone()
                };
                e.set_spec(spec)?;
            }
        }
    }
    Ok(())
}

/// `lpnc eval`: trained weights on the file's declared test data.
pub fn evaluate_file(program: &Program, base: &Path, weights: &Path) -> Result<Evaluation, TrainError> {
    let splits = data::load(&program.data, &program.model.input.0)?;
    let Some(test) = &splits.test else {
        return Err(TrainError::Lower(LowerError::Init("the file declares no test data: add `test = …` to its data section".into())));
    };
    let mut net = Net::new(&program.model, 0, ops::TRAIN_DTYPE)?;
    let tensors = candle_core::safetensors::load(weights, &net.device)
        .map_err(|e| TrainError::Lower(LowerError::Init(format!("cannot read {}: {e}", weights.display()))))?;
    net.load(&tensors)?;
    evaluate(&net, program.train.loss, test, program.train.batch)
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
        let due = |n: usize, spec: &crate::language::ir::TrainSpec| {
            early_stop_due(&epochs(&losses[..n].iter().map(|&l| (Some(l), None)).collect::<Vec<_>>()), spec)
        };
        assert_eq!(due(3, &spec), None, "one epoch without improvement");
        assert_eq!(due(4, &spec), Some(Stopped::EarlyStop), "two epochs without improvement");
        spec.early_stop = None;
        assert_eq!(due(4, &spec), None);
    }
}
