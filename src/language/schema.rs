//! The language's vocabulary, described once as data: every layer, annotation,
//! data source, optimizer, loss and section setting, with its parameters' types,
//! defaults and ranges. The checker, the "did you mean" suggestions and
//! `lpnc explain NAME` all read these tables.

use std::fmt;

/// How a constraint is enforced during training (see docs/constraints.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Penalty,
    Project,
    Reparam,
    Freeze,
    Lagrangian,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Penalty, Mode::Project, Mode::Reparam, Mode::Freeze, Mode::Lagrangian];
    pub const NAMES: &'static [&'static str] = &["penalty", "project", "reparam", "freeze", "lagrangian"];

    /// The name a file writes (`mode=project`), by variant: reordering the
    /// enum renames nothing.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Penalty => "penalty",
            Mode::Project => "project",
            Mode::Reparam => "reparam",
            Mode::Freeze => "freeze",
            Mode::Lagrangian => "lagrangian",
        }
    }
    pub fn from_name(name: &str) -> Option<Mode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// What the mode does, in one line (editors' hover; docs/constraints.md has the maths).
    pub fn summary(self) -> &'static str {
        match self {
            Mode::Penalty => "adds weight · violation to the loss; trades the constraint off against the task, no guarantee",
            Mode::Project => "projects the weight back into the constraint's set after every optimizer step: holds after every step",
            Mode::Reparam => "trains coordinates in the admissible subspace; the weight is built inside the set, so it always holds",
            Mode::Freeze => "sets the weight to a designed filter and never trains it: holds exactly",
            Mode::Lagrangian => "a multiplier λ ≥ 0, raised by dual ascent while the constraint is violated: holds at convergence",
        }
    }

    /// Whether the weight is inside the constraint's set after every step
    /// (projected back, or parametrized inside it): what the checker's
    /// feasibility and subspace checks are about.
    pub fn keeps_weight_in_set(self) -> bool {
        match self {
            Mode::Project | Mode::Reparam => true,
            Mode::Penalty | Mode::Freeze | Mode::Lagrangian => false,
        }
    }

    /// Whether the mode promises that its constraint holds (after every
    /// step, by construction, or exactly) rather than trading it against the
    /// task: a run whose hard constraint does not hold fails (exit 3).
    pub fn is_hard(self) -> bool {
        match self {
            Mode::Project | Mode::Reparam | Mode::Freeze => true,
            Mode::Penalty | Mode::Lagrangian => false,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamType {
    Int {
        min: i64,
        max: i64,
    },
    /// A real number in a range; `open` ends exclude the bound.
    Float {
        min: f64,
        max: f64,
        min_open: bool,
        max_open: bool,
    },
    Bool,
    /// One of a fixed set of names.
    Choice {
        what: &'static str,
        options: &'static [&'static str],
    },
    Str,
    /// A file path, relative to the .lpn file; checked to exist.
    Path,
    /// An integer, or `[a, b]` for the two axes of a 2-D layer.
    IntOrPair {
        min: i64,
    },
    /// An integer, `[a, b]`, `same` or `valid`.
    Padding,
    /// A frequency: a fraction of Nyquist in (0, 1), or Hz below fs/2 when `fs=` is given.
    Frequency,
    /// A value that names an entry of another table: `adam(lr=1e-3)`, `mse`, `ucr("f.csv")`.
    Entry(Table),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Source,
    Optimizer,
    Loss,
    Schedule,
}

impl Table {
    pub fn entries(self) -> &'static [Schema] {
        match self {
            Table::Source => SOURCES,
            Table::Optimizer => OPTIMIZERS,
            Table::Loss => LOSSES,
            Table::Schedule => SCHEDULES,
        }
    }
    pub fn what(self) -> &'static str {
        match self {
            Table::Source => "data source",
            Table::Optimizer => "optimizer",
            Table::Loss => "loss",
            Table::Schedule => "learning-rate schedule",
        }
    }
    /// Whether a value of this table may be a chain `A then B`.
    pub fn chains(self) -> bool {
        match self {
            Table::Schedule => true,
            Table::Source | Table::Optimizer | Table::Loss => false,
        }
    }
}

/// What a parameter takes when it is left out (named so as not to shadow
/// the standard `Default` trait).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultValue {
    /// Must be given.
    Required,
    /// May be left out; then it is not set.
    Absent,
    Int(i64),
    Float(f64),
    Bool(bool),
    Word(&'static str),
    /// Worked out by the checker; the text says from what (for docs).
    Derived(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
    /// May be given without its name, in table order.
    pub positional: bool,
    /// Modes in which the parameter does something (empty: all).
    pub modes: &'static [Mode],
    pub doc: &'static str,
}

const fn param(name: &'static str, ty: ParamType, default: DefaultValue, doc: &'static str) -> Param {
    Param { name, ty, default, positional: false, modes: &[], doc }
}
const fn positional(name: &'static str, ty: ParamType, default: DefaultValue, doc: &'static str) -> Param {
    Param { name, ty, default, positional: true, modes: &[], doc }
}
const fn in_modes(p: Param, modes: &'static [Mode]) -> Param {
    Param { modes, ..p }
}

const fn int(min: i64) -> ParamType {
    ParamType::Int { min, max: i64::MAX }
}
const fn float_closed(min: f64, max: f64) -> ParamType {
    ParamType::Float { min, max, min_open: false, max_open: false }
}
const fn float_open(min: f64, max: f64) -> ParamType {
    ParamType::Float { min, max, min_open: true, max_open: true }
}
const POSITIVE: ParamType = ParamType::Float { min: 0.0, max: f64::INFINITY, min_open: true, max_open: true };
const NON_NEGATIVE: ParamType = ParamType::Float { min: 0.0, max: f64::INFINITY, min_open: false, max_open: true };
const ANY_REAL: ParamType = ParamType::Float { min: f64::NEG_INFINITY, max: f64::INFINITY, min_open: true, max_open: true };

/// A named thing that takes parameters: a layer, an annotation, a data source, …
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub example: &'static str,
}

impl Schema {
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn param_names(&self) -> Vec<&'static str> {
        self.params.iter().map(|p| p.name).collect()
    }
}

pub fn find<'a>(table: &'a [Schema], name: &str) -> Option<&'a Schema> {
    table.iter().find(|s| s.name == name)
}
pub fn names(table: &[Schema]) -> Vec<&'static str> {
    table.iter().map(|s| s.name).collect()
}

// ---------------------------------------------------------------- layers

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    Conv,
    Linear,
    Activation,
    MaxPool,
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    BatchNorm,
    Dropout,
    Flatten,
    Repeat,
    Residual,
}

#[derive(Clone, Copy, Debug)]
pub struct LayerDef {
    pub schema: Schema,
    pub kind: LayerKind,
    /// Has trainable weights that annotations can act on.
    pub weights: bool,
}

const NO_PARAMS: &[Param] = &[];

const fn activation(name: &'static str, summary: &'static str, example: &'static str) -> LayerDef {
    LayerDef { schema: Schema { name, summary, params: NO_PARAMS, example }, kind: LayerKind::Activation, weights: false }
}

/// A pooling layer's parameters; `padding` says what the padded positions hold.
const fn pool_params(padding: &'static str) -> [Param; 3] {
    [
        positional("k", ParamType::IntOrPair { min: 1 }, DefaultValue::Required, "window size; `[h, w]` for 2-D"),
        param("stride", ParamType::IntOrPair { min: 1 }, DefaultValue::Derived("k"), "step between windows"),
        param("padding", ParamType::IntOrPair { min: 0 }, DefaultValue::Int(0), padding),
    ]
}

// As PyTorch's `MaxPool` and `AvgPool` (with `count_include_pad=True`);
// `tests/doc_claims.rs` holds the code to these words.
const MAXPOOL_PARAMS: &[Param] = &pool_params(
    "positions added on each side (at most k/2) that hold −∞, so they never win the maximum (PyTorch's padding): an all-negative window's maximum stays negative",
);
const AVGPOOL_PARAMS: &[Param] = &pool_params("zeros added on each side (at most k/2); they count in the mean");

pub const LAYERS: &[LayerDef] = &[
    LayerDef {
        schema: Schema {
            name: "conv",
            summary: "Convolution, 1-D on `[channels, length]` inputs, 2-D on `[channels, height, width]`. Weight `[out, in/groups, k]` (or `[out, in/groups, kh, kw]`), named `NAME.weight` and `NAME.bias`.",
            params: &[
                param("out", int(1), DefaultValue::Derived("the input's channel count"), "output channels"),
                param("k", ParamType::IntOrPair { min: 1 }, DefaultValue::Required, "kernel size; `[kh, kw]` for 2-D"),
                param("stride", ParamType::IntOrPair { min: 1 }, DefaultValue::Int(1), "step between output samples"),
                param(
                    "padding",
                    ParamType::Padding,
                    DefaultValue::Word("same"),
                    "`same` keeps the length (at stride 1), `valid` or 0 pads nothing, an integer pads that many zeros on each side",
                ),
                param("dilation", ParamType::IntOrPair { min: 1 }, DefaultValue::Int(1), "spacing between kernel taps"),
                param("groups", int(1), DefaultValue::Int(1), "split channels into this many independent groups"),
                param("bias", ParamType::Bool, DefaultValue::Bool(true), "add a learnt bias per output channel"),
            ],
            example: "conv(out=16, k=15)",
        },
        kind: LayerKind::Conv,
        weights: true,
    },
    LayerDef {
        schema: Schema {
            name: "linear",
            summary: "Fully connected layer on a `[features]` input. Weight `[out, in]` (one row per output unit).",
            params: &[
                positional("out", int(1), DefaultValue::Required, "output features"),
                param("bias", ParamType::Bool, DefaultValue::Bool(true), "add a learnt bias per output"),
            ],
            example: "linear(out=10)",
        },
        kind: LayerKind::Linear,
        weights: true,
    },
    activation("relu", "max(x, 0)", "relu"),
    activation("gelu", "Gaussian error linear unit (tanh approximation)", "gelu"),
    activation("tanh", "hyperbolic tangent", "tanh"),
    activation("sigmoid", "logistic function 1/(1+e^-x)", "sigmoid"),
    activation("silu", "x·sigmoid(x), also called swish", "silu"),
    LayerDef {
        schema: Schema {
            name: "leaky_relu",
            summary: "max(x, slope·x)",
            params: &[positional("slope", NON_NEGATIVE, DefaultValue::Float(0.01), "slope for negative inputs")],
            example: "leaky_relu(slope=0.1)",
        },
        kind: LayerKind::Activation,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "maxpool",
            summary: "Maximum over sliding windows (1-D or 2-D, like conv); padded positions never win.",
            params: MAXPOOL_PARAMS,
            example: "maxpool(k=2)",
        },
        kind: LayerKind::MaxPool,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "avgpool",
            summary: "Mean over sliding windows (1-D or 2-D, like conv); padded zeros count in the mean.",
            params: AVGPOOL_PARAMS,
            example: "avgpool(k=2)",
        },
        kind: LayerKind::AvgPool,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "global_avgpool",
            summary: "Mean over the whole length (or image): `[C, …]` → `[C]`.",
            params: NO_PARAMS,
            example: "global_avgpool",
        },
        kind: LayerKind::GlobalAvgPool,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "global_maxpool",
            summary: "Maximum over the whole length (or image): `[C, …]` → `[C]`. Its gradient goes to one position, the first maximum (a NaN wins), as PyTorch's `x.flatten(2).max(2)`; tied maxima do not each get it.",
            params: NO_PARAMS,
            example: "global_maxpool",
        },
        kind: LayerKind::GlobalMaxPool,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "batchnorm",
            summary: "Batch normalisation over the first (channel) axis, with a learnt scale and shift per channel.",
            params: &[
                param(
                    "momentum",
                    float_closed(0.0, 1.0),
                    DefaultValue::Float(0.1),
                    "weight of the current batch in the running statistics",
                ),
                param("eps", POSITIVE, DefaultValue::Float(1e-5), "added to the variance"),
            ],
            example: "batchnorm",
        },
        kind: LayerKind::BatchNorm,
        weights: true,
    },
    LayerDef {
        schema: Schema {
            name: "dropout",
            summary: "Zeroes each value with probability p during training (scaling the rest by 1/(1-p)).",
            params: &[positional(
                "p",
                ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
                DefaultValue::Float(0.5),
                "drop probability",
            )],
            example: "dropout(p=0.2)",
        },
        kind: LayerKind::Dropout,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "flatten",
            summary: "Flattens `[C, L]` or `[C, H, W]` into `[C·L]` or `[C·H·W]`.",
            params: NO_PARAMS,
            example: "flatten",
        },
        kind: LayerKind::Flatten,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "repeat",
            summary: "`repeat N { … }` stacks N copies of its body, each with its own weights (`repeat1.2.conv1` is the first conv of the second copy).",
            params: NO_PARAMS,
            example: "repeat 3 { conv(k=3)\n relu }",
        },
        kind: LayerKind::Repeat,
        weights: false,
    },
    LayerDef {
        schema: Schema {
            name: "residual",
            summary: "`residual { … }` adds its input to its body's output (a skip connection); the body must keep the shape.",
            params: NO_PARAMS,
            example: "residual { conv(k=3)\n relu }",
        },
        kind: LayerKind::Residual,
        weights: false,
    },
];

pub fn layer(name: &str) -> Option<&'static LayerDef> {
    LAYERS.iter().find(|l| l.schema.name == name)
}
pub fn layer_names() -> Vec<&'static str> {
    LAYERS.iter().map(|l| l.schema.name).collect()
}

// ---------------------------------------------------------------- annotations

/// The families of the notes' table; one definition serves every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Lowpass,
    Highpass,
    Bandpass,
    Bandstop,
    Smooth,
    Symmetric,
    Antisymmetric,
    DcGain,
    Nonneg,
    MaxNorm,
    UnitNorm,
    Orthogonal,
    Lipschitz,
}

/// The frequency-band families, for code that only makes sense on a band:
/// it matches on these four and the compiler still lists every place a new
/// band family needs, without repeating the other families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    Lowpass,
    Highpass,
    Bandpass,
    Bandstop,
}

impl Family {
    /// Which band this family is, if it is one.
    pub fn band(self) -> Option<Band> {
        match self {
            Family::Lowpass => Some(Band::Lowpass),
            Family::Highpass => Some(Band::Highpass),
            Family::Bandpass => Some(Band::Bandpass),
            Family::Bandstop => Some(Band::Bandstop),
            Family::Smooth
            | Family::Symmetric
            | Family::Antisymmetric
            | Family::DcGain
            | Family::Nonneg
            | Family::MaxNorm
            | Family::UnitNorm
            | Family::Orthogonal
            | Family::Lipschitz => None,
        }
    }

    pub fn is_band(self) -> bool {
        self.band().is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationRole {
    Constraint { family: Family, modes: &'static [Mode], default_mode: Mode, layers: &'static [LayerKind] },
    Freeze,
    LearningRate,
    Init,
}

#[derive(Clone, Copy, Debug)]
pub struct AnnotationDef {
    pub schema: Schema,
    pub role: AnnotationRole,
}

const ALL_MODES: &[Mode] = &[Mode::Penalty, Mode::Project, Mode::Reparam, Mode::Freeze, Mode::Lagrangian];
const SUBSPACE_MODES: &[Mode] = &[Mode::Penalty, Mode::Project, Mode::Reparam, Mode::Lagrangian];
const NORM_MODES: &[Mode] = &[Mode::Penalty, Mode::Project, Mode::Lagrangian];
const CONV_ONLY: &[LayerKind] = &[LayerKind::Conv];
const CONV_AND_LINEAR: &[LayerKind] = &[LayerKind::Conv, LayerKind::Linear];
const LINEAR_ONLY: &[LayerKind] = &[LayerKind::Linear];

const MODE: Param = param(
    "mode",
    ParamType::Choice { what: "mode", options: Mode::NAMES },
    DefaultValue::Derived("the constraint's default mode"),
    "how the constraint is enforced",
);
const WEIGHT: Param =
    in_modes(param("weight", NON_NEGATIVE, DefaultValue::Float(1.0), "penalty weight: loss += weight · violation"), &[Mode::Penalty]);
const BAND_TOL: Param = in_modes(
    param("tol", float_open(0.0, 1.0), DefaultValue::Float(0.01), "largest stopband energy ratio ρ allowed"),
    &[Mode::Project, Mode::Reparam, Mode::Lagrangian],
);
const EXACT_TOL: Param =
    in_modes(param("tol", POSITIVE, DefaultValue::Float(1e-3), "largest violation the multiplier tolerates"), &[Mode::Lagrangian]);
const DUAL_LR: Param = in_modes(
    param(
        "dual_lr",
        POSITIVE,
        DefaultValue::Float(1.0),
        "step of the multiplier's dual ascent: loss += λ · mean over kernels of max(0, ρ − tol) (λ · violation for other constraints), and after every step λ ← max(0, λ + dual_lr · (g − tol)), g the largest ρ over kernels (the violation for other constraints), from λ = 0",
    ),
    &[Mode::Lagrangian],
);
const FS: Param = param("fs", POSITIVE, DefaultValue::Absent, "sample rate in Hz; when given, frequencies are in Hz");
const TRANSITION: Param = param(
    "transition",
    ParamType::Frequency,
    DefaultValue::Derived("6.6/k, a Hamming window's"),
    "transition width; band edges sit half of it beyond each cutoff",
);

const fn band(name: &'static str, family: Family, summary: &'static str, params: &'static [Param], example: &'static str) -> AnnotationDef {
    AnnotationDef {
        schema: Schema { name, summary, params, example },
        role: AnnotationRole::Constraint { family, modes: ALL_MODES, default_mode: Mode::Project, layers: CONV_ONLY },
    }
}

const fn exact(
    name: &'static str,
    family: Family,
    summary: &'static str,
    params: &'static [Param],
    modes: &'static [Mode],
    layers: &'static [LayerKind],
    example: &'static str,
) -> AnnotationDef {
    AnnotationDef {
        schema: Schema { name, summary, params, example },
        role: AnnotationRole::Constraint { family, modes, default_mode: Mode::Project, layers },
    }
}

const CUTOFF: Param =
    positional("cutoff", ParamType::Frequency, DefaultValue::Required, "cutoff frequency (fraction of Nyquist, or Hz with fs=)");
const LOW: Param = positional("low", ParamType::Frequency, DefaultValue::Required, "lower band edge");
const HIGH: Param = positional("high", ParamType::Frequency, DefaultValue::Required, "upper band edge");

pub const ANNOTATIONS: &[AnnotationDef] = &[
    band(
        "lowpass",
        Family::Lowpass,
        "Each kernel keeps at most tol of its energy in the stopband, which starts half a transition above the cutoff.",
        &[CUTOFF, FS, TRANSITION, MODE, WEIGHT, BAND_TOL, DUAL_LR],
        "@lowpass(cutoff=0.2)",
    ),
    band(
        "highpass",
        Family::Highpass,
        "Each kernel keeps at most tol of its energy in the stopband, which ends half a transition below the cutoff.",
        &[CUTOFF, FS, TRANSITION, MODE, WEIGHT, BAND_TOL, DUAL_LR],
        "@highpass(cutoff=0.3)",
    ),
    band(
        "bandpass",
        Family::Bandpass,
        "Each kernel keeps at most tol of its energy in the stopband, below low and above high by half a transition each.",
        &[LOW, HIGH, FS, TRANSITION, MODE, WEIGHT, BAND_TOL, DUAL_LR],
        "@bandpass(low=0.1, high=0.4)",
    ),
    band(
        "bandstop",
        Family::Bandstop,
        "Each kernel keeps at most tol of its energy in the stopband, from half a transition above low to half a transition below high.",
        &[LOW, HIGH, FS, TRANSITION, MODE, WEIGHT, BAND_TOL, DUAL_LR],
        "@bandstop(low=0.2, high=0.5)",
    ),
    AnnotationDef {
        schema: Schema {
            name: "smooth",
            summary: "Each kernel is smooth along its taps: its order-n differences keep at most tol of its energy, ρ = ‖Dⁿh‖² / (4ⁿ‖h‖²) (in 2-D the two axes' mean), the share of its energy under the high-frequency mask sin(πν/2)^2n.",
            params: &[
                param(
                    "order",
                    ParamType::Int { min: 1, max: 4 },
                    DefaultValue::Int(2),
                    "which difference: 1 penalises slopes, 2 curvature, …",
                ),
                MODE,
                WEIGHT,
                in_modes(
                    param("tol", float_open(0.0, 1.0), DefaultValue::Float(0.05), "largest roughness ratio ρ allowed"),
                    &[Mode::Project, Mode::Reparam, Mode::Lagrangian],
                ),
                DUAL_LR,
            ],
            example: "@smooth(order=2)",
        },
        role: AnnotationRole::Constraint { family: Family::Smooth, modes: ALL_MODES, default_mode: Mode::Project, layers: CONV_ONLY },
    },
    exact(
        "symmetric",
        Family::Symmetric,
        "Each kernel equals its mirror image (linear phase): h = flip(h).",
        &[MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        SUBSPACE_MODES,
        CONV_ONLY,
        "@symmetric",
    ),
    exact(
        "antisymmetric",
        Family::Antisymmetric,
        "Each kernel is the negative of its mirror image: h = -flip(h).",
        &[MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        SUBSPACE_MODES,
        CONV_ONLY,
        "@antisymmetric",
    ),
    exact(
        "dc_gain",
        Family::DcGain,
        "Each kernel's taps sum to value (its gain at frequency 0).",
        &[positional("value", ANY_REAL, DefaultValue::Required, "the gain at DC"), MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        SUBSPACE_MODES,
        CONV_ONLY,
        "@dc_gain(1.0)",
    ),
    exact(
        "nonneg",
        Family::Nonneg,
        "Every weight is ≥ 0.",
        &[MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        SUBSPACE_MODES,
        CONV_AND_LINEAR,
        "@nonneg",
    ),
    exact(
        "maxnorm",
        Family::MaxNorm,
        "Each output unit's weights (a row of a linear weight, an output channel's kernels of a conv, as Keras) have L2 norm ≤ max.",
        &[positional("max", POSITIVE, DefaultValue::Required, "largest norm allowed"), MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        NORM_MODES,
        CONV_AND_LINEAR,
        "@maxnorm(3)",
    ),
    exact(
        "unitnorm",
        Family::UnitNorm,
        "Each output unit's weights have L2 norm 1 (Keras' axis convention).",
        &[MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        NORM_MODES,
        CONV_AND_LINEAR,
        "@unitnorm",
    ),
    exact(
        "orthogonal",
        Family::Orthogonal,
        "A linear layer's weight has orthonormal rows or columns (WᵀW = I on the smaller side).",
        &[MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        NORM_MODES,
        LINEAR_ONLY,
        "@orthogonal",
    ),
    exact(
        "lipschitz",
        Family::Lipschitz,
        "A linear layer's spectral norm (largest singular value) is ≤ max, so the layer is max-Lipschitz.",
        &[positional("max", POSITIVE, DefaultValue::Required, "largest spectral norm allowed"), MODE, WEIGHT, EXACT_TOL, DUAL_LR],
        NORM_MODES,
        LINEAR_ONLY,
        "@lipschitz(1.0)",
    ),
    AnnotationDef {
        schema: Schema {
            name: "freeze",
            summary: "The layer's weights never change: no optimizer step and no weight decay touch them.",
            params: NO_PARAMS,
            example: "@freeze",
        },
        role: AnnotationRole::Freeze,
    },
    AnnotationDef {
        schema: Schema {
            name: "lr",
            summary: "Multiplies this layer's parameter updates (not its gradients, which Adam would normalise away) by scale: each update is optimizer lr × scale × the optimizer's step. A phase's `LAYER @lr(s)` replaces this scale for that phase (it does not multiply it).",
            params: &[positional("scale", POSITIVE, DefaultValue::Required, "factor on the layer's updates")],
            example: "@lr(0.1)",
        },
        role: AnnotationRole::LearningRate,
    },
    AnnotationDef {
        schema: Schema {
            name: "init",
            summary: "How the layer's weights start: a scheme, a designed filter, or tensors from a safetensors file (a pretrained layer: its weight, and its bias when the file has one). Each parameter's random draws come from its own stream (the seed and the parameter's name, e.g. `conv2.weight`), so changing one layer's `@init` leaves every other initial value as it was.",
            params: &[
                positional(
                    "scheme",
                    ParamType::Choice { what: "init scheme", options: INIT_SCHEMES },
                    DefaultValue::Word("kaiming"),
                    "kaiming | xavier | normal | zeros | lowpass | highpass | file",
                ),
                param("std", POSITIVE, DefaultValue::Float(0.02), "standard deviation for `normal`"),
                param("cutoff", ParamType::Frequency, DefaultValue::Absent, "cutoff of the designed filter for `lowpass` / `highpass`"),
                param("file", ParamType::Path, DefaultValue::Absent, "safetensors file to load from (implies scheme=file)"),
                param("tensor", ParamType::Str, DefaultValue::Derived("NAME.weight"), "name of the weight tensor in that file"),
                param(
                    "bias",
                    ParamType::Str,
                    DefaultValue::Derived("`tensor` with `.weight` replaced by `.bias` (NAME.bias)"),
                    "name of the bias tensor in that file; when left to its default and absent from the file, the bias keeps its default initialisation; a name given here must exist; on a layer without bias it does nothing (warning W0033)",
                ),
            ],
            example: "@init(file=\"pretrained.safetensors\", tensor=\"conv1.weight\")",
        },
        role: AnnotationRole::Init,
    },
];

pub const INIT_SCHEMES: &[&str] = &["kaiming", "xavier", "normal", "zeros", "lowpass", "highpass", "file"];

pub fn annotation(name: &str) -> Option<&'static AnnotationDef> {
    ANNOTATIONS.iter().find(|a| a.schema.name == name)
}
pub fn annotation_names() -> Vec<&'static str> {
    ANNOTATIONS.iter().map(|a| a.schema.name).collect()
}

// ---------------------------------------------------------------- data and training

/// What a data source makes the model learn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Output must reproduce the clean input: shape in = shape out.
    Denoise,
    /// Output is one logit per class.
    Classify,
    /// Output is compared with a target of its own shape, given by the data
    /// (`pairs`, float `npy`/`npz` targets).
    Regress,
}

pub const SOURCES: &[Schema] = &[
    Schema {
        name: "sines",
        summary: "Built-in denoising task: sums of a few low-frequency sines plus white noise; the target is the clean sum. Needs an input `[1, length]`.",
        params: &[
            param("n", int(1), DefaultValue::Int(512), "number of signals"),
            param("components", int(1), DefaultValue::Int(3), "sines per signal"),
            param("max_freq", float_open(0.0, 1.0), DefaultValue::Float(0.1), "highest sine frequency, as a fraction of Nyquist"),
            param("noise", NON_NEGATIVE, DefaultValue::Float(0.3), "standard deviation of the added noise"),
            param("seed", int(0), DefaultValue::Int(1), "seed of the generator (independent of training's seed)"),
        ],
        example: "sines(n=512, noise=0.3)",
    },
    Schema {
        name: "waveforms",
        summary: "Built-in classification task: noisy sine, square and sawtooth waves (and more classes: triangle, chirp) of random frequency and phase. Needs an input `[1, length]`.",
        params: &[
            param("n", int(1), DefaultValue::Int(600), "number of examples"),
            param("classes", ParamType::Int { min: 2, max: 5 }, DefaultValue::Int(3), "how many waveform kinds"),
            param("noise", NON_NEGATIVE, DefaultValue::Float(0.3), "standard deviation of the added noise"),
            param("seed", int(0), DefaultValue::Int(1), "seed of the generator"),
        ],
        example: "waveforms(classes=3)",
    },
    Schema {
        name: "ucr",
        summary: "Classification CSV in the UCR archive's layout: no header, one example per row, the class label first, then the values (reshaped to the model's input). A label is a whole number (`2`, `2.0`, `-1`) or a name (`walking`); labels are mapped to classes in sorted order: numbers first, numerically, then names in byte order.",
        params: &[positional(
            "path",
            ParamType::Path,
            DefaultValue::Required,
            "CSV file, relative to the .lpn file; gzip-compressed (`f.csv.gz`) is read as its text",
        )],
        example: "ucr(\"data/gunpoint_train.csv\")",
    },
    Schema {
        name: "signal",
        summary: "Denoising from one long recording: a CSV column cut into windows of the model's input length, with white noise added to the inputs; the target is the clean window.",
        params: &[
            positional(
                "path",
                ParamType::Path,
                DefaultValue::Required,
                "CSV file, relative to the .lpn file (gzip-compressed is read as its text); a header line is skipped",
            ),
            param("column", int(0), DefaultValue::Int(0), "which column holds the signal, counting from 0"),
            param("stride", int(1), DefaultValue::Derived("the window length"), "step between windows"),
            param("noise", NON_NEGATIVE, DefaultValue::Float(0.1), "standard deviation of the added noise, in the signal's units"),
            param("seed", int(0), DefaultValue::Int(1), "seed of the noise"),
        ],
        example: "signal(\"data/ecg.csv\", noise=0.1)",
    },
    Schema {
        name: "npy",
        summary: "NumPy arrays in two `.npy` files: the inputs, shape `[n, …input]`, and one label per example. An integer label array (shape `[n]`) holds class labels, mapped to classes in sorted order; a float array holds regression targets, shape `[n, …target]`, one per example, whose shape the model's output must have (or as many values, for targets `[n, k]`). Any number type, either byte order, C order.",
        params: &[
            positional(
                "path",
                ParamType::Path,
                DefaultValue::Required,
                "`.npy` file of the inputs, relative to the .lpn file; either file may be gzip-compressed (`x.npy.gz`), and is then decompressed whole (it cannot stream)",
            ),
            param("labels", ParamType::Path, DefaultValue::Required, "`.npy` file of the labels or targets"),
        ],
        example: "npy(\"data/x_train.npy\", labels=\"data/y_train.npy\")",
    },
    Schema {
        name: "npz",
        summary: "The inputs and labels of `npy`, as two arrays of one `.npz` file written by `np.savez` (members stored, not compressed: `np.savez_compressed` files are refused).",
        params: &[
            positional(
                "path",
                ParamType::Path,
                DefaultValue::Required,
                "`.npz` file, relative to the .lpn file; gzip-compressed (`d.npz.gz`) is decompressed whole",
            ),
            param("x", ParamType::Str, DefaultValue::Derived("\"x\""), "name of the inputs array"),
            param("y", ParamType::Str, DefaultValue::Derived("\"y\""), "name of the labels or targets array"),
        ],
        example: "npz(\"data/train.npz\", x=\"x\", y=\"y\")",
    },
    Schema {
        name: "ts",
        summary: "Multivariate series in the `.ts` format of the UEA/UCR archives and sktime: a header of `@key value` lines up to `@data`, then one example per line, channels separated by `:`, the class label last. Equal-length series without missing values; each example becomes `[channels, length]`. Labels are strings, mapped to classes in sorted order.",
        params: &[positional("path", ParamType::Path, DefaultValue::Required, "`.ts` file, relative to the .lpn file")],
        example: "ts(\"data/BasicMotions_TRAIN.ts\")",
    },
    Schema {
        name: "pairs",
        summary: "Regression from (input, target) pairs in two CSV files: row i of `x` is an example's input (reshaped to the model's input), row i of `y` its target (laid out in the model's output shape; its number of values must be the output's). Every value a number; a first row of names is a header and skipped. `normalize` rescales the inputs only: the targets keep their units.",
        params: &[
            positional(
                "x",
                ParamType::Path,
                DefaultValue::Required,
                "CSV file of the inputs, one example per row, relative to the .lpn file (gzip-compressed is read as its text)",
            ),
            param("y", ParamType::Path, DefaultValue::Required, "CSV file of the targets, one row per row of `x`"),
        ],
        example: "pairs(x=\"data/ecg_pairs_x.csv.gz\", y=\"data/ecg_pairs_y.csv.gz\")",
    },
    Schema {
        name: "wav",
        summary: "Audio in WAV files: PCM of 8, 16, 24 or 32 bits or 32-bit float, any number of channels (the input's first axis); integer samples scaled to [-1, 1) as `torchaudio.load` does. A folder with one subfolder of `.wav` clips per class is classification, one example per clip, every clip exactly the input's length (none is cut or padded); classes are the folder names, sorted as torchvision's ImageFolder sorts them. One file, or a folder of `.wav` recordings, is denoising: windows of the input's length with white noise added, as `signal`. All files share one sample rate and channel count; a band constraint's `fs=` must be the rate its layer sees.",
        params: &[
            positional("path", ParamType::Path, DefaultValue::Required, "a `.wav` file or a folder, relative to the .lpn file"),
            param("stride", int(1), DefaultValue::Derived("the window length"), "recordings: step between windows"),
            param(
                "noise",
                NON_NEGATIVE,
                DefaultValue::Float(0.1),
                "recordings: standard deviation of the added noise (samples are in [-1, 1])",
            ),
            param("seed", int(0), DefaultValue::Int(1), "recordings: seed of the noise"),
        ],
        example: "wav(\"data/commands\")",
    },
    Schema {
        name: "images",
        summary: "PNG and JPEG images in torchvision's ImageFolder layout: one subfolder per class, classes sorted by folder name, files found in each class folder and below it. Each image is converted to 8-bit RGB (alpha dropped), to gray by ITU-R 601 luma as PIL's `convert(\"L\")` with `grayscale=true`, resized to `size` by bilinear interpolation (the `image` crate's triangle filter, antialiased when shrinking like PIL's BILINEAR) when it is not that size, and scaled to [0, 1] as `ToTensor`: an example is `[channels, height, width]`.",
        params: &[
            positional("path", ParamType::Path, DefaultValue::Required, "folder of class subfolders, relative to the .lpn file"),
            param(
                "size",
                ParamType::IntOrPair { min: 1 },
                DefaultValue::Derived("the input's [height, width]"),
                "`[height, width]` the images are resized to (one number: a square)",
            ),
            param("grayscale", ParamType::Bool, DefaultValue::Bool(false), "one channel of luma instead of three of RGB"),
        ],
        example: "images(\"data/digits\", size=[28, 28], grayscale=true)",
    },
];

impl Schema {
    /// For data sources: which task they pose.
    pub fn task(&self) -> Task {
        match self.name {
            "waveforms" | "ucr" | "ts" | "images" => Task::Classify,
            "pairs" => Task::Regress,
            _ => Task::Denoise,
        }
    }
}

const OPT_LR: Param = positional("lr", POSITIVE, DefaultValue::Float(1e-3), "learning rate");
const BETA1: Param = param(
    "beta1",
    ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
    DefaultValue::Float(0.9),
    "decay of the first moment",
);
const BETA2: Param = param(
    "beta2",
    ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
    DefaultValue::Float(0.999),
    "decay of the second moment",
);
const EPS: Param = param("eps", POSITIVE, DefaultValue::Float(1e-8), "added to the denominator");

pub const OPTIMIZERS: &[Schema] = &[
    Schema {
        name: "sgd",
        summary: "Stochastic gradient descent with momentum.",
        params: &[
            positional("lr", POSITIVE, DefaultValue::Float(0.01), "learning rate"),
            param(
                "momentum",
                ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
                DefaultValue::Float(0.9),
                "momentum",
            ),
            param("nesterov", ParamType::Bool, DefaultValue::Bool(false), "Nesterov momentum"),
            param("weight_decay", NON_NEGATIVE, DefaultValue::Float(0.0), "L2 penalty added to the gradient"),
        ],
        example: "sgd(lr=0.01, momentum=0.9)",
    },
    Schema {
        name: "adam",
        summary: "Adam (Kingma & Ba); weight_decay is added to the gradient (L2).",
        params: &[
            OPT_LR,
            BETA1,
            BETA2,
            EPS,
            param("weight_decay", NON_NEGATIVE, DefaultValue::Float(0.0), "L2 penalty added to the gradient"),
        ],
        example: "adam(lr=1e-3)",
    },
    Schema {
        name: "adamw",
        summary: "Adam with decoupled weight decay (Loshchilov & Hutter).",
        params: &[OPT_LR, BETA1, BETA2, EPS, param("weight_decay", NON_NEGATIVE, DefaultValue::Float(0.01), "decoupled weight decay")],
        example: "adamw(lr=1e-3, weight_decay=0.01)",
    },
];

pub const LOSSES: &[Schema] = &[
    Schema { name: "mse", summary: "Mean squared error, for denoising and regression.", params: NO_PARAMS, example: "mse" },
    Schema { name: "mae", summary: "Mean absolute error, for denoising and regression.", params: NO_PARAMS, example: "mae" },
    Schema { name: "cross_entropy", summary: "Softmax cross-entropy on one logit per class.", params: NO_PARAMS, example: "cross_entropy" },
    Schema {
        name: "bce",
        summary: "Binary cross-entropy with logits, computed stably; two classes, one output logit.",
        params: NO_PARAMS,
        example: "bce",
    },
];

/// Learning-rate schedules (`schedule = …` in the train section or a phase),
/// each PyTorch's scheduler of the same role. Their scope is the run's epochs,
/// or the phase's for a phase's schedule; `step`, `cosine` and `plateau` move
/// once per epoch, `warmup` once per optimizer step.
pub const SCHEDULES: &[Schema] = &[
    Schema {
        name: "step",
        summary: "Multiplies the learning rate by gamma every `every` epochs of its scope: lr = base lr × gamma^⌊epoch / every⌋ (PyTorch StepLR(step_size=every, gamma), stepped once per epoch).",
        params: &[
            positional("every", int(1), DefaultValue::Required, "epochs between two decays"),
            param(
                "gamma",
                ParamType::Float { min: 0.0, max: 1.0, min_open: true, max_open: false },
                DefaultValue::Float(0.1),
                "factor of each decay",
            ),
        ],
        example: "step(every=30, gamma=0.1)",
    },
    Schema {
        name: "cosine",
        summary: "Cosine annealing from the base learning rate to min_lr over the epochs of its scope: lr = min_lr + (base lr − min_lr)(1 + cos(π e / T))/2 at epoch e from 0 of T (PyTorch CosineAnnealingLR(T_max=T, eta_min=min_lr), stepped once per epoch; after a warmup, T is the epochs left from the epoch where the warmup ends).",
        params: &[param("min_lr", NON_NEGATIVE, DefaultValue::Float(0.0), "the learning rate the cosine falls to (eta_min)")],
        example: "cosine(min_lr=1e-5)",
    },
    Schema {
        name: "warmup",
        summary: "Linear warm-up over the first `steps` optimizer steps of its scope: lr = base lr × (start_factor + (1 − start_factor) × min(t, steps)/steps) at step t from 0 (PyTorch LinearLR(start_factor, end_factor=1, total_iters=steps), stepped once per optimizer step). `warmup(…) then S` hands over to S after `steps` steps (PyTorch SequentialLR); start_factor = 0 is allowed (PyTorch's must be > 0).",
        params: &[
            positional("steps", int(1), DefaultValue::Required, "optimizer steps of the warm-up"),
            param(
                "start_factor",
                float_closed(0.0, 1.0),
                DefaultValue::Float(1.0 / 3.0),
                "fraction of the base learning rate at the first step (PyTorch's default 1/3)",
            ),
        ],
        example: "warmup(steps=500) then cosine(min_lr=1e-5)",
    },
    Schema {
        name: "plateau",
        summary: "Multiplies the learning rate by factor when the monitored validation figure (`monitor`: val_loss, lower is better, or val_accuracy, higher is better) has not improved by more than threshold (relative) for patience epochs (PyTorch ReduceLROnPlateau(mode, factor, patience, threshold, threshold_mode='rel', cooldown, min_lr), stepped at each epoch's end). Needs validation data.",
        params: &[
            param("patience", int(0), DefaultValue::Int(10), "epochs without improvement before a decay"),
            param("factor", float_open(0.0, 1.0), DefaultValue::Float(0.1), "factor of each decay"),
            param("min_lr", NON_NEGATIVE, DefaultValue::Float(0.0), "the learning rate never falls below this"),
            param("threshold", NON_NEGATIVE, DefaultValue::Float(1e-4), "relative improvement that counts"),
            param("cooldown", int(0), DefaultValue::Int(0), "epochs after a decay before bad epochs count again"),
        ],
        example: "plateau(patience=5, factor=0.5)",
    },
];

/// The settings of `data { … }`.
pub const DATA_SECTION: Schema = Schema {
    name: "data",
    summary: "Where examples come from. The one-line form `data SOURCE` means `data { train = SOURCE }`.",
    params: &[
        param("train", ParamType::Entry(Table::Source), DefaultValue::Required, "training data"),
        param("val", ParamType::Entry(Table::Source), DefaultValue::Absent, "validation data (default: split off the training data)"),
        param("test", ParamType::Entry(Table::Source), DefaultValue::Absent, "test data, evaluated once at the end"),
        param(
            "val_split",
            ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
            DefaultValue::Float(0.2),
            "share of the training data held out for validation when no `val` is given",
        ),
        param(
            "test_split",
            ParamType::Float { min: 0.0, max: 1.0, min_open: false, max_open: true },
            DefaultValue::Float(0.0),
            "share of the training data held out for testing when no `test` is given; with it, the validation and test parts are drawn per class (stratified)",
        ),
        param(
            "normalize",
            ParamType::Choice { what: "normalisation", options: &["none", "zscore", "minmax"] },
            DefaultValue::Word("none"),
            "rescale the inputs of classification and regression data (not denoising: E0131) per channel, with the training part's figures (stored with the weights, so `lpnc predict` does the same): `zscore` (mean 0, standard deviation 1), `minmax` (into [0, 1]) or `none`",
        ),
        param(
            "stream",
            ParamType::Choice { what: "streaming", options: &["auto", "always", "never"] },
            DefaultValue::Word("auto"),
            "read the inputs of an uncompressed `npy` source from the file a batch at a time instead of whole, so a file larger than memory trains: `auto` streams those whose inputs take more than 256 MiB as 32-bit floats, `always` every one, `never` none; the values, splits, shuffling and `normalize` figures are the same bit for bit either way",
        ),
    ],
    example: "data {\n  train = ucr(\"data/gunpoint_train.csv\")\n  test = ucr(\"data/gunpoint_test.csv\")\n}",
};

/// The settings of `train { … }`.
pub const TRAIN_SECTION: Schema = Schema {
    name: "train",
    summary: "How to train. Every setting has a default.",
    params: &[
        param("optimizer", ParamType::Entry(Table::Optimizer), DefaultValue::Word("adam"), "sgd | adam | adamw, with their parameters"),
        param(
            "loss",
            ParamType::Entry(Table::Loss),
            DefaultValue::Derived("mse for denoising, cross_entropy for classification"),
            "mse | mae | cross_entropy | bce",
        ),
        param("epochs", int(1), DefaultValue::Int(20), "passes over the training data"),
        param("batch", int(1), DefaultValue::Int(32), "examples per step"),
        param("seed", int(0), DefaultValue::Int(0), "makes a run reproducible bit for bit"),
        param("shuffle", ParamType::Bool, DefaultValue::Bool(true), "shuffle the training data every epoch"),
        param("clip", POSITIVE, DefaultValue::Absent, "largest global norm of the gradient: larger ones are scaled down to it"),
        param(
            "checkpoint_every",
            int(1),
            DefaultValue::Int(1),
            "epochs between checkpoints (weights, optimizer, RNG and data order; `lpnc train --resume`); one is always written at the end",
        ),
        param(
            "keep",
            ParamType::Choice { what: "weights to keep", options: &["last", "best"] },
            DefaultValue::Word("last"),
            "which epoch's weights the run ends with (model.safetensors, the test figures): `last`, or `best` by `monitor` on the validation data (Keras ModelCheckpoint(save_best_only=True))",
        ),
        param(
            "monitor",
            ParamType::Choice { what: "validation figure", options: &["val_loss", "val_accuracy"] },
            DefaultValue::Word("val_loss"),
            "what `keep = best` and `early_stop` watch: `val_loss` (lower is better) or `val_accuracy` (higher is better, classification)",
        ),
        param(
            "early_stop",
            int(1),
            DefaultValue::Absent,
            "stop when `monitor` has not improved for this many epochs (Keras EarlyStopping(patience))",
        ),
        param(
            "schedule",
            ParamType::Entry(Table::Schedule),
            DefaultValue::Absent,
            "learning-rate schedule: step | cosine | warmup | plateau, or a warmup then another (`warmup(steps=500) then cosine()`); default: constant",
        ),
    ],
    example: "train {\n  optimizer = adam(lr=1e-3)\n  epochs = 30\n  batch = 16\n}",
};

/// The settings of `phase NAME { … }` in a train section.
pub const PHASE_SECTION: Schema = Schema {
    name: "phase",
    summary: "One stage of training. Lines `LAYER @annotation…` change, for this phase only, a layer's `@freeze`, `@lr` or how one of its constraints is enforced (penalty, project, lagrangian). A phase's `@lr(s)` replaces the layer's own `@lr` scale (the update is optimizer lr × s); `@freeze` freezes a layer for the phase, but a layer frozen in the model stays frozen. Other layers train as the model says.",
    params: &[
        param("epochs", int(1), DefaultValue::Required, "length of the phase"),
        param(
            "optimizer",
            ParamType::Entry(Table::Optimizer),
            DefaultValue::Absent,
            "a fresh optimizer for this phase (default: carry on with the current one)",
        ),
        param(
            "schedule",
            ParamType::Entry(Table::Schedule),
            DefaultValue::Absent,
            "learning-rate schedule over this phase's epochs, in place of the train section's (default: the train section's)",
        ),
    ],
    example: "phase warmup {\n  epochs = 5\n  conv1 @freeze\n}",
};

pub const SECTION_NAMES: &[&str] = &["model", "data", "train"];

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Int { .. } => write!(f, "an integer"),
            ParamType::Float { .. } => write!(f, "a number"),
            ParamType::Bool => write!(f, "`true` or `false`"),
            ParamType::Choice { options, .. } => write!(f, "one of {}", options.join(", ")),
            ParamType::Str => write!(f, "a string"),
            ParamType::Path => write!(f, "a file path in quotes"),
            ParamType::IntOrPair { .. } => write!(f, "an integer or a pair `[a, b]`"),
            ParamType::Padding => write!(f, "an integer, a pair `[a, b]`, `same` or `valid`"),
            ParamType::Frequency => write!(f, "a frequency"),
            ParamType::Entry(table) => write!(f, "a {}", table.what()),
        }
    }
}

impl ParamType {
    /// The allowed range in words, for messages and docs.
    pub fn range(&self) -> Option<String> {
        match *self {
            ParamType::Int { min, max } if max == i64::MAX => Some(format!("≥ {min}")),
            ParamType::Int { min, max } => Some(format!("between {min} and {max}")),
            ParamType::IntOrPair { min } => Some(format!("≥ {min}")),
            ParamType::Float { min, max, min_open, max_open } => {
                let lo = if min == f64::NEG_INFINITY { None } else { Some((if min_open { ">" } else { "≥" }, min)) };
                let hi = if max == f64::INFINITY { None } else { Some((if max_open { "<" } else { "≤" }, max)) };
                match (lo, hi) {
                    (Some((a, x)), Some((b, y))) => {
                        Some(format!("{a} {} and {b} {}", crate::language::diagnostic::fmt_num(x), crate::language::diagnostic::fmt_num(y)))
                    }
                    (Some((a, x)), None) => Some(format!("{a} {}", crate::language::diagnostic::fmt_num(x))),
                    (None, Some((b, y))) => Some(format!("{b} {}", crate::language::diagnostic::fmt_num(y))),
                    (None, None) => None,
                }
            }
            ParamType::Frequency => Some("in (0, 1) as a fraction of Nyquist, or in Hz below fs/2 with fs=".into()),
            ParamType::Bool | ParamType::Choice { .. } | ParamType::Str | ParamType::Path | ParamType::Padding | ParamType::Entry(_) => {
                None
            }
        }
    }
}

impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::Required => write!(f, "required"),
            DefaultValue::Absent => write!(f, "not set"),
            DefaultValue::Int(v) => write!(f, "{v}"),
            DefaultValue::Float(v) => write!(f, "{}", crate::language::diagnostic::fmt_num(*v)),
            DefaultValue::Bool(v) => write!(f, "{v}"),
            DefaultValue::Word(w) => write!(f, "{w}"),
            DefaultValue::Derived(text) => write!(f, "{text}"),
        }
    }
}

/// Breaks a paragraph into lines of at most `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("starts with a line");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.join("\n")
}

/// `lpnc explain NAME` for a layer, annotation, source, optimizer or loss.
pub fn describe(name: &str) -> Option<String> {
    let (kind, schema, extra) = if let Some(def) = layer(name) {
        ("layer", def.schema, String::new())
    } else if let Some(def) = annotation(name.trim_start_matches('@')) {
        let extra = match def.role {
            AnnotationRole::Constraint { family, modes, default_mode, layers } => format!(
                "modes: {} (default {default_mode})\napplies to: {}\n{}",
                modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
                layers.iter().map(|k| format!("{k:?}").to_lowercase()).collect::<Vec<_>>().join(", "),
                family.edges_note().map(|n| format!("\n{}\n\n", wrap(n, 92))).unwrap_or_default()
            ),
            AnnotationRole::Freeze | AnnotationRole::LearningRate | AnnotationRole::Init => String::new(),
        };
        ("annotation", def.schema, extra)
    } else if let Some(s) = find(SOURCES, name) {
        ("data source", *s, String::new())
    } else if let Some(s) = find(OPTIMIZERS, name) {
        ("optimizer", *s, String::new())
    } else if let Some(s) = find(LOSSES, name) {
        ("loss", *s, String::new())
    } else if let Some(s) = find(SCHEDULES, name) {
        ("learning-rate schedule", *s, String::new())
    } else if name == "data" {
        ("section", DATA_SECTION, String::new())
    } else if name == "train" {
        ("section", TRAIN_SECTION, String::new())
    } else if name == "phase" {
        ("train block", PHASE_SECTION, String::new())
    } else {
        return None;
    };
    let mut out = format!("{} ({kind})\n\n{}\n\n{extra}", schema.name, schema.summary);
    if schema.params.is_empty() {
        out.push_str("parameters: none\n");
    } else {
        out.push_str("parameters:\n");
        for p in schema.params {
            let mut line = format!("  {:<12} {}; default: {}", p.name, p.ty, p.default);
            if let Some(range) = p.ty.range() {
                line.push_str(&format!("; {range}"));
            }
            if !p.modes.is_empty() {
                line.push_str(&format!("; used in mode={}", p.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("|")));
            }
            out.push_str(&line);
            out.push_str(&format!("\n               {}\n", p.doc));
        }
    }
    out.push_str(&format!("\nexample:\n  {}\n", schema.example.replace('\n', "\n  ")));
    Some(out)
}

impl Family {
    /// Where a band constraint's edges really fall, for `lpnc explain` and the
    /// reference: the transition moves each edge off its cutoff.
    pub fn edges_note(self) -> Option<&'static str> {
        let note = match self.band()? {
            Band::Lowpass => {
                "band edges: the stopband is ν ≥ cutoff + transition/2 and the passband ν ≤ cutoff − transition/2 (clamped to [0, 1]); \
                 in between, the transition, nothing is asked. The default transition is 6.6/k for a kernel of k taps (a Hamming window's), \
                 so with k = 15 (transition 0.44), cutoff=0.2 constrains only ν ≥ 0.42 and leaves no passband clear of the transition (W0061). \
                 `lpnc inspect` shows each layer's edges."
            }
            Band::Highpass => {
                "band edges: the stopband is ν ≤ cutoff − transition/2 and the passband ν ≥ cutoff + transition/2 (clamped to [0, 1]); \
                 in between, the transition, nothing is asked. The default transition is 6.6/k for a kernel of k taps (a Hamming window's), \
                 so with k = 15 (transition 0.44), cutoff=0.3 constrains only ν ≤ 0.08 and passes from ν ≥ 0.52. \
                 `lpnc inspect` shows each layer's edges."
            }
            Band::Bandpass => {
                "band edges: the stopband is ν ≤ low − transition/2 and ν ≥ high + transition/2, the passband \
                 low + transition/2 ≤ ν ≤ high − transition/2 (clamped to [0, 1]); in between nothing is asked. The default transition is \
                 6.6/k for a kernel of k taps (a Hamming window's): with k = 63 (transition 0.105), low=0.1, high=0.4 give the stopband \
                 ν ≤ 0.048 or ν ≥ 0.452; with k = 15 (transition 0.44), low − 0.22 falls below 0, so nothing below the band is suppressed \
                 and DC passes (W0062). `lpnc inspect` shows each layer's edges."
            }
            Band::Bandstop => {
                "band edges: the stopband is low + transition/2 ≤ ν ≤ high − transition/2 and the passband ν ≤ low − transition/2 and \
                 ν ≥ high + transition/2 (clamped to [0, 1]); in between nothing is asked. The default transition is 6.6/k for a kernel \
                 of k taps (a Hamming window's): with k = 31 (transition 0.213), low=0.2, high=0.5 give the stopband 0.306 ≤ ν ≤ 0.394; \
                 with k = 15 (transition 0.44) nothing is left of it (E0030). `lpnc inspect` shows each layer's edges."
            }
        };
        Some(note)
    }

    /// How the family reads in a sentence: "a high-pass filter".
    pub fn words(self) -> &'static str {
        match self.band() {
            Some(Band::Lowpass) => "low-pass",
            Some(Band::Highpass) => "high-pass",
            Some(Band::Bandpass) => "band-pass",
            Some(Band::Bandstop) => "band-stop",
            None => self.name(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Lowpass => "lowpass",
            Family::Highpass => "highpass",
            Family::Bandpass => "bandpass",
            Family::Bandstop => "bandstop",
            Family::Smooth => "smooth",
            Family::Symmetric => "symmetric",
            Family::Antisymmetric => "antisymmetric",
            Family::DcGain => "dc_gain",
            Family::Nonneg => "nonneg",
            Family::MaxNorm => "maxnorm",
            Family::UnitNorm => "unitnorm",
            Family::Orthogonal => "orthogonal",
            Family::Lipschitz => "lipschitz",
        }
    }
}

/// The language reference in Markdown, made from the tables (docs/reference.md).
pub fn reference_markdown() -> String {
    fn params_table(out: &mut String, schema: &Schema) {
        if schema.params.is_empty() {
            out.push_str("No parameters.\n\n");
            return;
        }
        out.push_str("| parameter | type | default | range | modes | meaning |\n|---|---|---|---|---|---|\n");
        for p in schema.params {
            let modes = p.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ");
            let name = if p.positional { format!("`{}` (positional)", p.name) } else { format!("`{}`", p.name) };
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                p.ty.to_string().replace('|', "\\|"),
                p.default,
                p.ty.range().unwrap_or_default().replace('|', "\\|"),
                modes,
                p.doc.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    fn entry(out: &mut String, heading: &str, schema: &Schema, extra: &str) {
        out.push_str(&format!("### {heading}\n\n{}\n\n{extra}", schema.summary));
        params_table(out, schema);
        out.push_str(&format!("```\n{}\n```\n\n", schema.example));
    }
    let mut out = String::from(
        "# The .lpn language: reference\n\nGenerated from the tables in `src/language/schema.rs` by `lpnc explain reference`; do not edit by hand.\n\n## Layers\n\n",
    );
    for def in LAYERS {
        entry(&mut out, &format!("`{}`", def.schema.name), &def.schema, "");
    }
    out.push_str("## Annotations\n\n");
    for def in ANNOTATIONS {
        let extra = match def.role {
            AnnotationRole::Constraint { family, modes, default_mode, layers } => format!(
                "Modes: {} (default `{default_mode}`). Applies to: {}.\n\n{}",
                modes.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                layers.iter().map(|k| format!("`{}`", format!("{k:?}").to_lowercase())).collect::<Vec<_>>().join(", "),
                family.edges_note().map(|n| format!("{}\n\n", n.replacen("band edges:", "Band edges:", 1))).unwrap_or_default()
            ),
            _ => String::new(),
        };
        entry(&mut out, &format!("`@{}`", def.schema.name), &def.schema, &extra);
    }
    out.push_str("## Data\n\n");
    entry(&mut out, "`data` section", &DATA_SECTION, "");
    for s in SOURCES {
        entry(&mut out, &format!("source `{}`", s.name), s, "");
    }
    out.push_str("## Training\n\n");
    entry(&mut out, "`train` section", &TRAIN_SECTION, "");
    entry(&mut out, "`phase NAME { … }` in a train section", &PHASE_SECTION, "");
    for s in OPTIMIZERS {
        entry(&mut out, &format!("optimizer `{}`", s.name), s, "");
    }
    for s in LOSSES {
        entry(&mut out, &format!("loss `{}`", s.name), s, "");
    }
    for s in SCHEDULES {
        entry(&mut out, &format!("schedule `{}`", s.name), s, "");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn mode_names_are_the_variants_and_round_trip() {
        // The table of names (the resolver's choices) and `name` agree, each
        // name reads back as its mode, and serde writes the same word.
        assert_eq!(Mode::ALL.map(Mode::name).as_slice(), Mode::NAMES);
        for mode in Mode::ALL {
            assert_eq!(Mode::from_name(mode.name()), Some(mode));
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{}\"", mode.name()));
        }
        assert_eq!(Mode::Lagrangian.name(), "lagrangian");
        assert_eq!(Mode::from_name("projection"), None);
    }

    #[test]
    fn explain_gives_the_band_edges_in_force() {
        let text = super::describe("lowpass").unwrap();
        assert!(text.contains("stopband is ν ≥ cutoff + transition/2"), "{text}");
        assert!(text.contains("constrains only ν ≥ 0.42"), "{text}");
        assert!(!text.contains("at most tol of its energy above the cutoff"), "{text}");
        for family in ["highpass", "bandpass", "bandstop"] {
            assert!(super::describe(family).unwrap().contains("6.6/k"), "{family}");
        }
    }
}
