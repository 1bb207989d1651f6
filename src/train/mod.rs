//! Training: data → batches → forward (with penalty terms) → backward →
//! (projected) gradients → optimizer step → projections; then the weights file
//! and `report.json`.
//!
//! A [`Trainer`] is one run, taken one epoch ([`Trainer::run_epoch`]) or
//! one step at a time; each event (started, epoch begun, step done with
//! live constraint figures, epoch done, early stop, …) goes to the
//! [`Observer`] you pass, which is how `lpnc` draws its progress. A run
//! writes only into [`Options::out_dir`]: `model.safetensors`, a
//! checkpoint after each epoch (so [`Options::resume`] continues it bit
//! for bit) and `report.json`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lpn::train::{Event, Flow, Observer, Options, Trainer};
//!
//! struct Losses(Vec<f64>);
//! impl Observer for Losses {
//!     fn event(&mut self, event: &Event<'_>) {
//!         if let Event::EpochDone { report, .. } = event {
//!             self.0.push(report.train_loss);
//!         }
//!     }
//! }
//!
//! let source = std::fs::read_to_string("examples/denoiser.lpn")?;
//! let program = lpn::compile(&source, &lpn::CompileOptions::for_file("examples/denoiser.lpn"))?;
//! let options = Options { epochs: Some(3), ..Options::new("runs/denoiser") };
//! let mut losses = Losses(Vec::new());
//! let mut trainer = Trainer::new(&program, &options, &mut losses)?;
//! while trainer.run_epoch()? == Flow::Continue {}
//! let report = trainer.finish()?; // runs/denoiser/model.safetensors, report.json
//! # Ok(())
//! # }
//! ```
//!
//! Why the parameters are not a `candle_nn::VarMap` read through a
//! `VarBuilder`: a parameter here is more than a named tensor (frozen or
//! not, its `@lr` scale, weight decay, and for `mode=reparam` the trainable
//! coordinates from which the weight is computed, while the weights file
//! holds the weight itself), each initial value is drawn from its own
//! named stream of lpn's generator (a `VarBuilder` initialises through
//! Candle's), and a checkpoint restores the parameters, the optimizer's
//! moments per parameter and every generator in one fixed order so a
//! resumed run is bit for bit the uninterrupted one.

#[doc(hidden)]
pub mod checkpoint;
#[doc(hidden)]
pub mod lr;
#[doc(hidden)]
pub mod observe;
#[doc(hidden)]
pub mod optim;
#[doc(hidden)]
pub mod predict;
#[doc(hidden)]
pub mod provenance;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod response;
#[doc(hidden)]
pub mod run_dir;
mod schedule;
mod step;
#[doc(hidden)]
pub mod trainer;
#[doc(hidden)]
pub mod verdict;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Tensor;

use crate::data;
use crate::language::ir::Program;
use crate::model::{LowerError, Net, ops};
pub use observe::{ConstraintLabel, Event, Live, LiveFigure, Observer, Recorder, Silent};
pub use report::{ConstraintReport, EpochReport, Evaluation, Report, Stopped, best_epoch, constraint_table};
#[doc(hidden)]
pub use step::evaluate;
pub use trainer::{Flow, Trainer};

/// How a run goes: the folder it writes into (and locks), and what the
/// command line may override of the file's train section.
#[derive(Default)]
pub struct Options {
    /// The run folder: `model.safetensors`, the checkpoint, `report.json`.
    pub out_dir: PathBuf,
    /// Overrides the train section's `epochs` (a staged run's total).
    pub epochs: Option<usize>,
    /// Overrides the train section's `seed`.
    pub seed: Option<u64>,
    /// Continue the run whose checkpoint is in `out_dir`.
    pub resume: bool,
    /// Start a new run in a folder that holds another one, removing its files.
    pub force: bool,
    /// Set from elsewhere (a signal handler) to stop after the current step
    /// with a checkpoint.
    pub stop: Option<Arc<AtomicBool>>,
    /// The .lpn text and its folder, embedded in model.safetensors so the
    /// weights can be used without the file (`provenance`).
    pub source: Option<provenance::ProgramSource>,
    /// The `--set KEY=VALUE` overrides the program was checked with, as
    /// written; recorded in report.json (the program already holds them).
    pub overrides: Vec<String>,
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

/// Writes a file through a temporary name, fsync and a rename, so a reader
/// never sees half of it, whenever the process dies.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    checkpoint::write_durably(path, bytes)
}

/// Writes the weights, with `provenance` in the header's metadata.
#[doc(hidden)]
pub fn save_weights(net: &Net, path: &Path, provenance: &provenance::Provenance) -> Result<(), TrainError> {
    let mut tensors: Vec<(String, Tensor)> = net.tensors()?.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = safetensors::serialize(tensors, Some(provenance.metadata()))
        .map_err(|e| TrainError::Io(path.to_path_buf(), std::io::Error::other(format!("cannot encode the weights: {e}"))))?;
    write_atomic(path, &bytes)
}

/// Trains without telling anything as it goes (tests, scripts): see
/// [`train_observed`].
pub fn train(program: &Program, opts: &Options) -> Result<Report, TrainError> {
    train_observed(program, opts, &mut Silent)
}

/// Trains `program` into `opts.out_dir`, handing every event to `observer`.
///
/// The folder holds one run: it is locked while the run writes there, a new
/// run refuses a folder with another run's files unless `opts.force`, and
/// report.json is rewritten after every epoch. Every path in `program` is
/// already resolved by the checker, so no base folder is needed.
pub fn train_observed(program: &Program, opts: &Options, observer: &mut dyn Observer) -> Result<Report, TrainError> {
    let mut trainer = Trainer::new(program, opts, observer)?;
    while trainer.run_epoch()? == Flow::Continue {}
    trainer.finish()
}

/// `lpnc eval`: trained weights on the file's declared test data.
pub fn evaluate_file(program: &Program, weights: &Path) -> Result<Evaluation, TrainError> {
    let splits = data::load(&program.data, &program.model.input.0)?;
    let Some(test) = &splits.test else {
        return Err(TrainError::Lower(LowerError::Init("the file declares no test data: add `test = …` to its data section".into())));
    };
    let net = trained_net(&program.model, weights)?;
    evaluate(&net, program.train.loss, test, program.train.batch)
}

/// The network of `model` with the trained weights of `weights` (checked
/// to fit it), as `lpnc eval` and `lpnc predict` run it.
pub fn trained_net(model: &crate::language::ir::Model, weights: &Path) -> Result<Net, TrainError> {
    let mut net = Net::new(model, 0, ops::TRAIN_DTYPE)?;
    let tensors = crate::model::params::read(weights, crate::model::Source::WeightsFile).map_err(LowerError::from)?;
    net.load(&tensors)?;
    Ok(net)
}
