//! The validated program: what the checker hands to lowering and training.
//!
//! Every value is resolved (defaults filled, frequencies normalised to Nyquist,
//! repeats expanded, shapes inferred), so later phases never re-check.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::constraint::SetSpec;
use crate::constraint::bands::BandSpec;
use crate::language::ast::Span;
use crate::language::schema::{Family, Mode, Task};
use crate::language::shape::Shape;

/// A checked `.lpn` file (`lpn::compile`): its model, data and training,
/// every name resolved, every shape inferred and every path resolved
/// against the file's folder.
#[derive(Clone, Debug, Serialize)]
pub struct Program {
    #[doc(hidden)]
    pub model: Model,
    #[doc(hidden)]
    pub data: DataSpec,
    #[doc(hidden)]
    pub train: TrainSpec,
}

#[derive(Clone, Debug, Serialize)]
pub struct Model {
    pub name: String,
    pub input: Shape,
    pub output: Shape,
    pub layers: Vec<Layer>,
}

impl Model {
    /// Every layer, depth first, residual bodies included.
    pub fn walk(&self) -> Vec<&Layer> {
        fn go<'a>(layers: &'a [Layer], out: &mut Vec<&'a Layer>) {
            for layer in layers {
                out.push(layer);
                if let Op::Residual { body } = &layer.op {
                    go(body, out);
                }
            }
        }
        let mut out = Vec::new();
        go(&self.layers, &mut out);
        out
    }

    pub fn parameter_count(&self) -> usize {
        self.walk().iter().fold(0usize, |n, l| n.saturating_add(l.parameters))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    /// Deterministic, readable path: `conv2`, `residual1.conv1`, `repeat1.2.conv1`.
    pub name: String,
    pub op: Op,
    pub input: Shape,
    pub output: Shape,
    /// Trainable scalars (weights and biases).
    pub parameters: usize,
    pub constraints: Vec<Constraint>,
    pub frozen: bool,
    pub lr_scale: f64,
    pub init: Option<Init>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub enum Op {
    Conv(Conv),
    Linear { in_features: usize, out_features: usize, bias: bool },
    Activation(Activation),
    MaxPool(Pool),
    AvgPool(Pool),
    GlobalAvgPool,
    GlobalMaxPool,
    BatchNorm { channels: usize, momentum: f64, eps: f64 },
    Dropout { p: f64 },
    Flatten,
    Residual { body: Vec<Layer> },
}

impl Op {
    /// The shape of the weight tensor (`NAME.weight`) that `@init` fills:
    /// `[out, in/groups, k…]` for a conv, `[out, in]` for a linear.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match self {
            Op::Conv(c) => Some([c.out_channels, c.in_channels / c.groups.max(1)].into_iter().chain(c.kernel.iter().copied()).collect()),
            Op::Linear { in_features, out_features, .. } => Some(vec![*out_features, *in_features]),
            // Its scale starts at 1; `@init` does not fill it.
            Op::BatchNorm { .. }
            | Op::Activation(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Dropout { .. }
            | Op::Flatten
            | Op::Residual { .. } => None,
        }
    }

    /// Short description for tables: `conv1d 1→16 k=15`.
    pub fn describe(&self) -> String {
        match self {
            Op::Conv(c) => format!("conv{}d {}→{} k={}", c.kernel.len(), c.in_channels, c.out_channels, join(&c.kernel)),
            Op::Linear { in_features, out_features, .. } => format!("linear {in_features}→{out_features}"),
            Op::Activation(a) => format!("{a:?}").to_lowercase(),
            Op::MaxPool(p) => format!("maxpool k={}", join(&p.kernel)),
            Op::AvgPool(p) => format!("avgpool k={}", join(&p.kernel)),
            Op::GlobalAvgPool => "global_avgpool".into(),
            Op::GlobalMaxPool => "global_maxpool".into(),
            Op::BatchNorm { channels, .. } => format!("batchnorm {channels}"),
            Op::Dropout { p } => format!("dropout p={p}"),
            Op::Flatten => "flatten".into(),
            Op::Residual { body } => format!("residual ({} layers)", body.len()),
        }
    }
}

fn join(v: &[usize]) -> String {
    v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("×")
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conv {
    pub in_channels: usize,
    pub out_channels: usize,
    /// One entry per spatial axis: `[k]` or `[kh, kw]`.
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    /// Zeros before and after, per axis.
    pub padding: Vec<(usize, usize)>,
    pub dilation: Vec<usize>,
    pub groups: usize,
    pub bias: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pool {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub padding: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Silu,
    LeakyRelu(f64),
}

/// A constraint on one layer's weight: which family, how it is enforced,
/// and its admissible set (`constraint::SetSpec`, the family's own
/// parameters and what the checker worked out for the layer's kernel).
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub family: Family,
    pub mode: Mode,
    /// Penalty weight (penalty mode).
    pub weight: f64,
    /// Largest violation allowed: ρ for quadratic families (project, reparam, lagrangian).
    pub tol: f64,
    /// Dual ascent step (lagrangian).
    pub dual_lr: f64,
    pub set: SetSpec,
    pub span: Span,
}

impl Constraint {
    /// The band, for band families, in Nyquist units.
    pub fn band(&self) -> Option<BandSpec> {
        self.set.band()
    }

    /// The family's one number: `dc_gain`'s value, `maxnorm`'s and `lipschitz`'s max.
    pub fn value(&self) -> Option<f64> {
        self.set.value().map(|(_, v)| v)
    }

    /// The lowest ρ a kernel of this layer's shape can reach (quadratic families).
    pub fn lambda_min(&self) -> Option<f64> {
        self.set.lambda_min()
    }

    /// Band families: the edges in force on each kernel axis.
    pub fn edges(&self) -> &[crate::constraint::bands::BandEdges] {
        self.set.edges()
    }

    /// Quadratic families in a hard mode: how many independent kernels have ρ ≤ tol.
    pub fn admissible_dimension(&self) -> Option<usize> {
        self.set.admissible_dimension()
    }
}

/// The fields `lpnc inspect --json` has always shown, whatever the family.
impl Serialize for Constraint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Constraint", 10)?;
        st.serialize_field("family", &self.family)?;
        st.serialize_field("mode", &self.mode)?;
        st.serialize_field("weight", &self.weight)?;
        st.serialize_field("tol", &self.tol)?;
        st.serialize_field("dual_lr", &self.dual_lr)?;
        st.serialize_field("band", &self.band())?;
        st.serialize_field("value", &self.value())?;
        st.serialize_field("lambda_min", &self.lambda_min())?;
        st.serialize_field("edges", self.edges())?;
        st.serialize_field("admissible_dimension", &self.admissible_dimension())?;
        st.end()
    }
}

impl Serialize for BandSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("BandSpec", 4)?;
        st.serialize_field("low", &self.low)?;
        st.serialize_field("high", &self.high)?;
        st.serialize_field("transition", &self.transition)?;
        st.serialize_field("fs", &self.fs)?;
        st.end()
    }
}

impl Serialize for Family {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Init {
    Kaiming,
    Xavier,
    Normal {
        std: f64,
    },
    Zeros,
    /// A designed filter (firwin), cutoff in Nyquist units.
    Designed {
        family: Family,
        cutoff: f64,
    },
    /// Tensors from a safetensors file: the weight `tensor` and the bias
    /// `bias`, which must exist when `bias_required` (named by the user) and
    /// otherwise is loaded only when present.
    File {
        /// Where it was found is not part of a run's identity: the file's
        /// bytes are (`train::checkpoint::RunDigest`).
        #[serde(skip)]
        path: PathBuf,
        tensor: String,
        bias: String,
        bias_required: bool,
    },
}

/// `normalize = …` of the data section: per channel (the input's first axis,
/// or all values of a `[features]` input), with the training part's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Normalize {
    None,
    /// (x − mean) / standard deviation (population, as numpy's `std`).
    Zscore,
    /// (x − min) / (max − min), into [0, 1].
    Minmax,
}

#[derive(Clone, Debug, Serialize)]
pub struct DataSpec {
    pub train: Source,
    pub val: Option<Source>,
    pub test: Option<Source>,
    pub val_split: f64,
    /// Share of the training source held out for testing when no `test`
    /// is given (0: none); with it, the split is stratified by class.
    pub test_split: f64,
    /// How the inputs are rescaled, with statistics of the training part.
    pub normalize: Normalize,
    pub task: Task,
    /// Number of classes, for classification.
    pub classes: Option<usize>,
    /// Which sources are read a batch at a time (`stream = …`). Not part of
    /// a run's identity: the values are the same bit for bit either way.
    #[serde(skip)]
    pub stream: Stream,
    /// The shape of one regression target as the data gives it (`Task::Regress`),
    /// which the model's output must match. Absent from the serialized program
    /// when `None`, so runs of other tasks keep their digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<usize>>,
}

/// `stream = …` of the data section: whether an uncompressed `npy` source's
/// inputs are read from the file a batch at a time (`crate::data::stream`)
/// rather than whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Stream {
    /// Those whose inputs take more than `crate::data::stream::STREAM_ABOVE` as f32.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Clone, Debug, Serialize)]
pub enum Source {
    Sines {
        n: usize,
        components: usize,
        max_freq: f64,
        noise: f64,
        seed: u64,
    },
    Waveforms {
        n: usize,
        classes: usize,
        noise: f64,
        seed: u64,
    },
    // Where a file was found is not part of a run's identity: its bytes are
    // (`train::checkpoint::RunDigest`).
    Ucr {
        #[serde(skip)]
        path: PathBuf,
    },
    Signal {
        #[serde(skip)]
        path: PathBuf,
        column: usize,
        stride: Option<usize>,
        noise: f64,
        seed: u64,
    },
    /// Inputs and labels in two `.npy` files (`crate::data::numpy`).
    Npy {
        #[serde(skip)]
        path: PathBuf,
        #[serde(skip)]
        labels: PathBuf,
    },
    /// Inputs and labels as two arrays of one `.npz` file.
    Npz {
        #[serde(skip)]
        path: PathBuf,
        x: String,
        y: String,
    },
    /// Multivariate series with string labels in a `.ts` file (`crate::data::ts`).
    Ts {
        #[serde(skip)]
        path: PathBuf,
    },
    /// Regression inputs and targets, row by row, in two CSV files (`crate::data::pairs`).
    Pairs {
        #[serde(skip)]
        x: PathBuf,
        #[serde(skip)]
        y: PathBuf,
    },
    /// Audio in WAV files (`crate::data::wav`): class folders of clips, or
    /// recordings cut into noisy windows as `Signal`'s. `rate` is the
    /// files' sample rate in Hz.
    Wav {
        #[serde(skip)]
        path: PathBuf,
        stride: Option<usize>,
        noise: f64,
        seed: u64,
        rate: u32,
    },
    /// PNG/JPEG images in class folders (`crate::data::images`), resized to
    /// `size` (height, width), one channel when `grayscale`, else three.
    Images {
        #[serde(skip)]
        path: PathBuf,
        size: [usize; 2],
        grayscale: bool,
    },
}

/// One stage of a staged training: how long, and what changes for its
/// duration (the rest stays as the model declares).
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub epochs: usize,
    pub optimizer: Option<Optimizer>,
    /// The learning-rate schedule over this phase, in place of the run's.
    /// Left out of the run's digest when absent, so checkpoints written
    /// before schedules existed still resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LrSchedule>,
    pub layers: Vec<PhaseLayer>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseLayer {
    pub layer: String,
    pub frozen: bool,
    pub lr_scale: Option<f64>,
    /// Constraints of the layer enforced differently in this phase (same
    /// family, another mode or parameters).
    pub constraints: Vec<Constraint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainSpec {
    /// Empty: one phase of `epochs`.
    pub phases: Vec<Phase>,
    pub optimizer: Optimizer,
    pub loss: Loss,
    pub epochs: usize,
    pub batch: usize,
    pub seed: u64,
    pub shuffle: bool,
    /// Global gradient-norm clipping.
    pub clip: Option<f64>,
    /// Epochs between checkpoints.
    pub checkpoint_every: usize,
    /// Which epoch's weights the run ends with.
    pub keep: Keep,
    /// The validation figure that `keep = best` and `early_stop` watch.
    pub monitor: Monitor,
    /// Stop when `monitor` has not improved for this many epochs.
    pub early_stop: Option<usize>,
    /// The learning-rate schedule (`None`: constant); see `Phase::schedule`
    /// for why an absent one is not serialized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<LrSchedule>,
}

/// A learning-rate schedule: one or more parts, each after the one before
/// it ends (only a warm-up ends; the checker allows no part after another).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LrSchedule {
    pub parts: Vec<LrPart>,
}

/// One part of a schedule, as `schema::SCHEDULES` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LrPart {
    Step { every: usize, gamma: f64 },
    Cosine { min_lr: f64 },
    Warmup { steps: usize, start_factor: f64 },
    Plateau { patience: usize, factor: f64, min_lr: f64, threshold: f64, cooldown: usize },
}

/// Which weights a run ends with (in model.safetensors, and evaluated on the
/// test data): those of the last epoch, or of the epoch with the best
/// validation figure (Keras's `ModelCheckpoint(save_best_only=True)`,
/// Lightning's `ModelCheckpoint(monitor=…)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    #[default]
    Last,
    Best,
}

/// A validation figure to watch: lower loss or higher accuracy is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    ValLoss,
    ValAccuracy,
}

impl Monitor {
    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAccuracy => "val_accuracy",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Optimizer {
    Sgd { lr: f64, momentum: f64, nesterov: bool, weight_decay: f64 },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
    AdamW { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    Mse,
    Mae,
    CrossEntropy,
    Bce,
}
