//! Every problem the front end can find, as plain data.
//!
//! Each variant carries the spans and facts of one finding; `to_diagnostic`
//! words it (message, labels, help) and gives its stable code. Turning that into
//! miette reports or JSON happens in one place, `crate::language::render`.

use crate::language::ast::Span;
use crate::language::shape::Shape;

mod wording;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// A problem in words, ready to render.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

/// How a quadratic family (ρ = hᵀQh/hᵀh) words its ratio in E0028, W0032
/// and W0034, so a smoothness constraint is not told to widen its band.
#[derive(Clone, Debug, PartialEq)]
pub struct RatioWords {
    /// Where ρ counts the energy: "the stopband [0.3, 1]", "its high frequencies (…)".
    pub region: String,
    /// What ρ is called: "stopband energy", "roughness".
    pub measure: &'static str,
    /// Q in words, for λ_min: "the stopband operator".
    pub operator: &'static str,
    /// The family's own way to lower λ_min besides the kernel length and tol.
    pub relax: &'static str,
    /// Why the frozen design cannot do better (W0034).
    pub design: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    // ---- syntax ----
    Syntax {
        span: Span,
        message: String,
        label: String,
        help: Option<String>,
    },

    // ---- sections ----
    UnknownSection {
        span: Span,
        name: String,
        known: Vec<&'static str>,
    },
    DuplicateSection {
        span: Span,
        first: Span,
        name: String,
    },
    MissingModel {
        span: Span,
    },
    MalformedSection {
        span: Span,
        section: String,
        expected: String,
    },
    MissingInput {
        span: Span,
        model: Option<String>,
    },
    BadInput {
        span: Span,
        first: Option<Span>,
        reason: String,
        help: Option<String>,
    },
    MisplacedStatement {
        span: Span,
        what: String,
        section: String,
        help: String,
    },

    // ---- names and parameters ----
    UnknownLayer {
        span: Span,
        name: String,
        known: Vec<&'static str>,
    },
    UnknownParameter {
        span: Span,
        name: String,
        owner: String,
        known: Vec<&'static str>,
    },
    MissingParameter {
        span: Span,
        name: String,
        owner: String,
        example: String,
    },
    WrongType {
        span: Span,
        param: String,
        owner: String,
        expected: String,
        found: String,
    },
    DuplicateParameter {
        span: Span,
        first: Span,
        name: String,
    },
    OutOfRange {
        span: Span,
        param: String,
        owner: String,
        value: String,
        allowed: String,
        help: Option<String>,
    },
    MisplacedArgument {
        span: Span,
        reason: String,
        help: Option<String>,
    },
    BadStructure {
        span: Span,
        reason: String,
        help: Option<String>,
    },
    UnknownChoice {
        span: Span,
        what: String,
        name: String,
        known: Vec<&'static str>,
    },
    InvalidBand {
        span: Span,
        other: Span,
        constraint: String,
        low: f64,
        high: f64,
    },

    // ---- annotations and constraints ----
    UnknownAnnotation {
        span: Span,
        name: String,
        known: Vec<&'static str>,
    },
    UnsupportedMode {
        span: Span,
        constraint: String,
        mode: String,
        supported: Vec<&'static str>,
    },
    UnusedParameter {
        span: Span,
        param: String,
        constraint: String,
        mode: String,
        used_in: Vec<&'static str>,
    },
    WeightlessLayer {
        span: Span,
        layer_span: Span,
        annotation: String,
        layer: String,
        constraint: bool,
    },
    NotApplicable {
        span: Span,
        layer_span: Span,
        annotation: String,
        layer: String,
        reason: String,
        help: Option<String>,
    },
    DuplicateAnnotation {
        span: Span,
        first: Span,
        name: String,
    },
    ConflictingAnnotations {
        span: Span,
        other: Span,
        reason: String,
        help: Option<String>,
    },
    DisjointPassbands {
        span: Span,
        other: Span,
        first: String,
        second: String,
    },
    InfeasibleBand {
        span: Span,
        constraint: String,
        taps: String,
        ratio: RatioWords,
        bound: f64,
        tol: f64,
        min_taps: Option<usize>,
    },
    ImpossibleStructure {
        span: Span,
        other: Option<Span>,
        reason: String,
        help: Option<String>,
    },
    EmptyStopband {
        span: Span,
        constraint: String,
        reason: String,
    },
    ZeroPenaltyWeight {
        span: Span,
        constraint: String,
    },
    PenaltyFloor {
        span: Span,
        constraint: String,
        taps: String,
        ratio: RatioWords,
        bound: f64,
    },
    NoEffect {
        span: Span,
        reason: String,
        help: Option<String>,
    },
    DesignMissesTol {
        span: Span,
        constraint: String,
        taps: String,
        ratio: RatioWords,
        rho: f64,
        tol: f64,
    },
    PassbandSwallowed {
        span: Span,
        constraint: String,
        transition: String,
        passband: String,
        stopband: String,
        help: String,
    },
    BandEdgeClamped {
        span: Span,
        constraint: String,
        reason: String,
        help: String,
    },
    SmallSubspace {
        span: Span,
        constraint: String,
        mode: String,
        taps: String,
        dimension: usize,
        size: usize,
        tol: f64,
        help: String,
    },
    InfeasibleSet {
        spans: Vec<Span>,
        names: Vec<String>,
        empty: bool,
        reason: String,
    },
    PhaseRedefines {
        span: Span,
        declared_span: Span,
        constraint: String,
        layer: String,
        param: String,
        declared: String,
        phase: String,
    },

    // ---- shapes ----
    KernelTooLong {
        span: Span,
        layer: String,
        window: String,
        input: String,
        help: String,
    },
    ResidualMismatch {
        span: Span,
        layer: String,
        input: Shape,
        output: Shape,
    },
    BadRank {
        span: Span,
        layer: String,
        found: Shape,
        expected: String,
        help: Option<String>,
    },
    BadGroups {
        span: Span,
        layer: String,
        groups: usize,
        in_channels: usize,
        out_channels: usize,
    },
    TwoDOption {
        span: Span,
        param: String,
        layer: String,
    },
    ModelTooLarge {
        span: Span,
        data_span: Option<Span>,
        parameters: usize,
        needed: u64,
        data: u64,
        available: u64,
        batch: usize,
        /// The training inputs stream from their file: `data` counts a buffer.
        streamed: bool,
    },
    OutputMismatch {
        span: Span,
        model_span: Span,
        output: Shape,
        expected: String,
        why: String,
        help: Option<String>,
    },

    // ---- data and training ----
    FileNotFound {
        span: Span,
        path: String,
        resolved: String,
    },
    BadDataFile {
        span: Span,
        path: String,
        line: Option<usize>,
        column: Option<usize>,
        reason: String,
    },
    DataShapeMismatch {
        span: Span,
        input_span: Span,
        data: String,
        input: Shape,
        help: Option<String>,
    },
    MissingTrainData {
        span: Span,
        no_section: bool,
    },
    TaskMismatch {
        span: Span,
        reason: String,
        help: Option<String>,
    },
    /// `val_split + test_split` leave nothing for training.
    SplitsTooLarge {
        span: Span,
        val_split: f64,
        test_split: f64,
    },
    /// `normalize` on denoising data.
    NormalizeDenoising {
        span: Span,
    },
    /// `stream = always` with a training source that is read whole.
    CannotStream {
        span: Span,
        source_span: Span,
        reason: String,
    },
    /// `pairs(x=…, y=…)` whose files hold different numbers of rows; `first`
    /// is `file:line` of the first row without a partner.
    UnpairedRows {
        x_span: Span,
        y_span: Span,
        x_rows: usize,
        y_rows: usize,
        first: String,
    },
    /// Regression targets whose shape the model's output does not have.
    TargetShapeMismatch {
        span: Span,
        model_span: Span,
        target: Vec<usize>,
        output: Shape,
        help: String,
    },
    /// A class too small to have an example in every part of a stratified split.
    ClassTooSmallForSplit {
        span: Span,
        label: String,
        count: usize,
        missing: String,
    },
    // `keep = best` or `early_stop` without validation data to watch.
    NoValidationData {
        span: Span,
        setting: String,
        data_span: Span,
    },
    // `monitor = val_accuracy` on a task without classes.
    MonitorWithoutAccuracy {
        span: Span,
    },
    // `cosine() then step(…)`: a schedule part after one that never ends.
    ScheduleNeverEnds {
        span: Span,
        before_span: Span,
        before: String,
        after: String,
    },
    // `step(every=N)` with N at least its scope's epochs: it never decays.
    ScheduleNeverSteps {
        span: Span,
        every: usize,
        epochs: usize,
        scope: String,
    },
    // `lpnc train --set KEY=VALUE` naming no setting it can change.
    BadOverride {
        span: Span,
        reason: String,
        help: Option<String>,
    },

    // ---- characters and literals ----
    // A character outside ASCII (or an ASCII control) outside strings and
    // comments; `spelling`: the word around it written in ASCII.
    StrayCharacter {
        span: Span,
        character: char,
        spelling: Option<String>,
    },
    // A number literal too large for a 64-bit float (it would read as ±∞).
    NumberOverflow {
        span: Span,
        text: String,
    },

    // ---- @init(file=…) ----
    NotSafetensors {
        span: Span,
        path: String,
        reason: String,
    },
    InitTensorMissing {
        span: Span,
        path: String,
        tensor: String,
        known: Vec<String>,
    },
    InitTensorShape {
        span: Span,
        layer_span: Span,
        tensor: String,
        layer: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    InitTensorDtype {
        span: Span,
        tensor: String,
        dtype: String,
    },

    // ---- wav and images sources ----
    /// A folder that is not laid out as its source reads it (no class
    /// folder, an empty one, files beside class folders).
    MediaFolder {
        span: Span,
        path: String,
        reason: String,
        help: String,
    },
    /// A file of a source whose sample rate or channel count differs from
    /// the first file's.
    MixedMedia {
        span: Span,
        reason: String,
    },
    /// A band constraint's `fs=` that is not the rate of the data the layer sees.
    SampleRateMismatch {
        span: Span,
        data_span: Span,
        layer: String,
        fs: f64,
        rate: f64,
        decimation: usize,
    },
}

/// Every code, in order, with a one-line title (`lpnc explain` adds the long text).
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "syntax error"),
    ("E0002", "unknown section"),
    ("E0003", "section given twice"),
    ("E0004", "no model section"),
    ("E0005", "malformed section"),
    ("E0006", "model without an input shape"),
    ("E0007", "invalid input shape"),
    ("E0008", "statement in the wrong section"),
    ("E0010", "unknown layer"),
    ("E0011", "unknown parameter"),
    ("E0012", "missing required parameter"),
    ("E0013", "parameter of the wrong type"),
    ("E0014", "parameter given twice"),
    ("E0015", "value out of range"),
    ("E0016", "misplaced argument"),
    ("E0017", "misused structure"),
    ("E0018", "unknown name for a setting"),
    ("E0019", "band edges in the wrong order"),
    ("E0020", "unknown annotation"),
    ("E0021", "mode not supported by this constraint"),
    ("W0022", "parameter does nothing in this mode"),
    ("E0023", "annotation on a layer without weights"),
    ("E0024", "constraint not applicable to this layer"),
    ("E0025", "annotation given twice"),
    ("E0026", "conflicting annotations"),
    ("E0027", "passbands that do not meet"),
    ("E0028", "band constraint infeasible for this kernel length"),
    ("E0029", "filter type that this kernel structure rules out"),
    ("E0030", "empty stopband"),
    ("W0031", "penalty weight of zero"),
    ("W0032", "penalty cannot reach a small stopband energy"),
    ("W0033", "annotation or setting without effect"),
    ("W0034", "designed filter does not meet tol"),
    ("E0040", "kernel or window longer than its input"),
    ("E0041", "residual body changes the shape"),
    ("E0042", "layer applied to a rank it cannot take"),
    ("E0043", "groups do not divide the channels"),
    ("E0044", "model output does not fit the task"),
    ("E0045", "2-D option on a 1-D layer"),
    ("E0046", "model too large for this machine's memory"),
    ("E0050", "data file not found"),
    ("E0051", "data file cannot be used"),
    ("E0052", "data does not fit the model's input"),
    ("E0053", "no training data"),
    ("E0054", "loss or data set does not fit the task"),
    ("E0080", "best-epoch keeping or early stopping without validation data"),
    ("E0081", "validation accuracy watched on a task without classes"),
    ("E0060", "phase changes what a constraint is"),
    ("W0061", "transition wider than the passband"),
    ("W0062", "band-pass stopband edge clamped: DC or Nyquist passes"),
    ("E0130", "val_split and test_split leave no training data"),
    ("W0130", "a class too small to appear in every split"),
    ("E0131", "normalize on denoising data"),
    ("E0140", "stream = always with a source that cannot stream"),
    ("E0145", "pairs files with different numbers of rows"),
    ("E0146", "regression targets do not fit the model's output"),
    ("W0063", "admissible subspace of very few kernels"),
    ("E0064", "hard constraints that leave no weight but zero"),
    ("E0070", "invisible or look-alike character"),
    ("E0071", "number too large"),
    ("E0072", "@init file is not a safetensors file"),
    ("E0073", "@init tensor not in the file"),
    ("E0074", "@init tensor of the wrong shape"),
    ("E0075", "@init tensor that is not floating-point"),
    ("E0120", "learning-rate schedule part after one that never ends"),
    ("W0120", "step schedule that never decays"),
    ("E0121", "--set that names no setting of the data or train sections"),
    ("E0150", "data folder not laid out as its source reads it"),
    ("E0151", "files of one source with different sample rates or channels"),
    ("E0152", "band constraint's fs differs from the data's sample rate"),
];

fn did_you_mean(name: &str, known: &[&'static str], kind: &str) -> Option<String> {
    match crate::language::suggest::closest(name, known) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None if known.is_empty() => None,
        None => Some(format!("known {kind}: {}", known.join(", "))),
    }
}

/// `` `@a`, `@b` and `@c` ``.
fn join_and(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// `` `sаme` contains U+0430 CYRILLIC SMALL LETTER A (looks like `a`); `` for a
/// name with an invisible or look-alike character, else nothing.
fn stray_note(name: &str) -> String {
    match name.chars().find(|&c| crate::language::confusables::is_suspicious(c)) {
        Some(c) => format!("`{name}` contains {}; ", crate::language::confusables::describe(c)),
        None => String::new(),
    }
}

/// The known name that `name` spells with look-alikes, if any.
fn ascii_name(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let at = name.char_indices().find(|&(_, c)| crate::language::confusables::is_suspicious(c))?.0;
    let (_, spelt) = crate::language::confusables::ascii_spelling(name, at)?;
    known.iter().copied().find(|k| *k == spelt)
}

fn label(span: Span, text: impl Into<String>) -> Label {
    Label { span, text: text.into() }
}

/// A byte count for people: `3.2 GiB`.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut x = n as f64;
    let mut unit = 0;
    while x >= 1024.0 && unit + 1 < units.len() {
        x /= 1024.0;
        unit += 1;
    }
    format!("{x:.1} {}", units[unit])
}

/// Formats a figure compactly: `0.26`, `1.2e-4`.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1e-3 && x.abs() < 1e6 {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.2e}")
    }
}

impl Problem {
    pub fn severity(&self) -> Severity {
        self.to_diagnostic().severity
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    /// The primary span, for sorting.
    pub fn span(&self) -> Span {
        self.to_diagnostic().labels.first().map(|l| l.span).unwrap_or_default()
    }

    /// The text a "did you mean" proposes and the span it would replace
    /// (editors offer it as a quick fix): a name spelt with a look-alike, in
    /// ASCII, else the closest known name; a look-alike or invisible
    /// character, the ASCII it looks like (nothing for an invisible one).
    pub fn suggestion(&self) -> Option<(Span, String)> {
        use crate::language::confusables::{Looks, looks};
        if let Problem::StrayCharacter { span, character, .. } = self {
            return match looks(*character) {
                Looks::Like(ascii) => Some((*span, ascii.to_string())),
                Looks::Invisible => Some((*span, String::new())),
                Looks::Space | Looks::Other => None,
            };
        }
        let (Problem::UnknownSection { span, name, known }
        | Problem::UnknownLayer { span, name, known }
        | Problem::UnknownParameter { span, name, known, .. }
        | Problem::UnknownAnnotation { span, name, known }
        | Problem::UnknownChoice { span, name, known, .. }) = self
        else {
            return None;
        };
        let best = ascii_name(name, known).or_else(|| crate::language::suggest::closest(name, known))?;
        Some((*span, best.to_string()))
    }

    pub fn to_diagnostic(&self) -> Diagnostic {
        use Problem::*;
        let (code, message, labels, help) = match self {
            Syntax { span, message, label: text, help } => wording::syntax(span, message, text, help),
            UnknownSection { span, name, known } => wording::unknown_section(span, name, known),
            DuplicateSection { span, first, name } => wording::duplicate_section(span, first, name),
            MissingModel { span } => wording::missing_model(span),
            MalformedSection { span, section, expected } => wording::malformed_section(span, section, expected),
            MissingInput { span, model } => wording::missing_input(span, model),
            BadInput { span, first, reason, help } => wording::bad_input(span, first, reason, help),
            MisplacedStatement { span, what, section, help } => wording::misplaced_statement(span, what, section, help),
            UnknownLayer { span, name, known } => wording::unknown_layer(span, name, known),
            UnknownParameter { span, name, owner, known } => wording::unknown_parameter(span, name, owner, known),
            MissingParameter { span, name, owner, example } => wording::missing_parameter(span, name, owner, example),
            WrongType { span, param, owner, expected, found } => wording::wrong_type(span, param, owner, expected, found),
            DuplicateParameter { span, first, name } => wording::duplicate_parameter(span, first, name),
            OutOfRange { span, param, owner, value, allowed, help } => wording::out_of_range(span, param, owner, value, allowed, help),
            MisplacedArgument { span, reason, help } => wording::misplaced_argument(span, reason, help),
            BadStructure { span, reason, help } => wording::bad_structure(span, reason, help),
            UnknownChoice { span, what, name, known } => wording::unknown_choice(span, what, name, known),
            InvalidBand { span, other, constraint, low, high } => wording::invalid_band(span, other, constraint, low, high),
            UnknownAnnotation { span, name, known } => wording::unknown_annotation(span, name, known),
            UnsupportedMode { span, constraint, mode, supported } => wording::unsupported_mode(span, constraint, mode, supported),
            UnusedParameter { span, param, constraint, mode, used_in } => wording::unused_parameter(span, param, constraint, mode, used_in),
            WeightlessLayer { span, layer_span, annotation, layer, constraint } => {
                wording::weightless_layer(span, layer_span, annotation, layer, constraint)
            }
            NotApplicable { span, layer_span, annotation, layer, reason, help } => {
                wording::not_applicable(span, layer_span, annotation, layer, reason, help)
            }
            DuplicateAnnotation { span, first, name } => wording::duplicate_annotation(span, first, name),
            ConflictingAnnotations { span, other, reason, help } => wording::conflicting_annotations(span, other, reason, help),
            DisjointPassbands { span, other, first, second } => wording::disjoint_passbands(span, other, first, second),
            InfeasibleBand { span, constraint, taps, ratio, bound, tol, min_taps } => {
                wording::infeasible_band(span, constraint, taps, ratio, bound, tol, min_taps)
            }
            ImpossibleStructure { span, other, reason, help } => wording::impossible_structure(span, other, reason, help),
            EmptyStopband { span, constraint, reason } => wording::empty_stopband(span, constraint, reason),
            ZeroPenaltyWeight { span, constraint } => wording::zero_penalty_weight(span, constraint),
            PenaltyFloor { span, constraint, taps, ratio, bound } => wording::penalty_floor(span, constraint, taps, ratio, bound),
            NoEffect { span, reason, help } => wording::no_effect(span, reason, help),
            DesignMissesTol { span, constraint, taps, ratio, rho, tol } => {
                wording::design_misses_tol(span, constraint, taps, ratio, rho, tol)
            }
            PassbandSwallowed { span, constraint, transition, passband, stopband, help } => {
                wording::passband_swallowed(span, constraint, transition, passband, stopband, help)
            }
            BandEdgeClamped { span, constraint, reason, help } => wording::band_edge_clamped(span, constraint, reason, help),
            SmallSubspace { span, constraint, mode, taps, dimension, size, tol, help } => {
                wording::small_subspace(span, constraint, mode, taps, dimension, size, tol, help)
            }
            InfeasibleSet { spans, names, empty, reason } => wording::infeasible_set(spans, names, empty, reason),
            PhaseRedefines { span, declared_span, constraint, layer, param, declared, phase } => {
                wording::phase_redefines(span, declared_span, constraint, layer, param, declared, phase)
            }
            KernelTooLong { span, layer, window, input, help } => wording::kernel_too_long(span, layer, window, input, help),
            ResidualMismatch { span, layer, input, output } => wording::residual_mismatch(span, layer, input, output),
            BadRank { span, layer, found, expected, help } => wording::bad_rank(span, layer, found, expected, help),
            BadGroups { span, layer, groups, in_channels, out_channels } => {
                wording::bad_groups(span, layer, groups, in_channels, out_channels)
            }
            TwoDOption { span, param, layer } => wording::two_d_option(span, param, layer),
            ModelTooLarge { span, data_span, parameters, needed, data, available, batch, streamed } => {
                wording::model_too_large(span, data_span, parameters, needed, data, available, batch, streamed)
            }
            OutputMismatch { span, model_span, output, expected, why, help } => {
                wording::output_mismatch(span, model_span, output, expected, why, help)
            }
            FileNotFound { span, path, resolved } => wording::file_not_found(span, path, resolved),
            BadDataFile { span, path, line, column, reason } => wording::bad_data_file(span, path, line, column, reason),
            MediaFolder { span, path, reason, help } => wording::media_folder(span, path, reason, help),
            MixedMedia { span, reason } => wording::mixed_media(span, reason),
            SampleRateMismatch { span, data_span, layer, fs, rate, decimation } => {
                wording::sample_rate_mismatch(span, data_span, layer, fs, rate, decimation)
            }
            DataShapeMismatch { span, input_span, data, input, help } => wording::data_shape_mismatch(span, input_span, data, input, help),
            MissingTrainData { span, no_section } => wording::missing_train_data(span, no_section),
            TaskMismatch { span, reason, help } => wording::task_mismatch(span, reason, help),
            SplitsTooLarge { span, val_split, test_split } => wording::splits_too_large(span, val_split, test_split),
            NormalizeDenoising { span } => wording::normalize_denoising(span),
            CannotStream { span, source_span, reason } => wording::cannot_stream(span, source_span, reason),
            UnpairedRows { x_span, y_span, x_rows, y_rows, first } => wording::unpaired_rows(x_span, y_span, x_rows, y_rows, first),
            TargetShapeMismatch { span, model_span, target, output, help } => {
                wording::target_shape_mismatch(span, model_span, target, output, help)
            }
            ClassTooSmallForSplit { span, label, count, missing } => wording::class_too_small_for_split(span, label, count, missing),
            NoValidationData { span, setting, data_span } => wording::no_validation_data(span, setting, data_span),
            MonitorWithoutAccuracy { span } => wording::monitor_without_accuracy(span),
            ScheduleNeverEnds { span, before_span, before, after } => wording::schedule_never_ends(span, before_span, before, after),
            ScheduleNeverSteps { span, every, epochs, scope } => wording::schedule_never_steps(span, every, epochs, scope),
            BadOverride { span, reason, help } => wording::bad_override(span, reason, help),
            StrayCharacter { span, character, spelling } => wording::stray_character(span, character, spelling),
            NumberOverflow { span, text } => wording::number_overflow(span, text),
            NotSafetensors { span, path, reason } => wording::not_safetensors(span, path, reason),
            InitTensorMissing { span, path, tensor, known } => wording::init_tensor_missing(span, path, tensor, known),
            InitTensorShape { span, layer_span, tensor, layer, found, expected } => {
                wording::init_tensor_shape(span, layer_span, tensor, layer, found, expected)
            }
            InitTensorDtype { span, tensor, dtype } => wording::init_tensor_dtype(span, tensor, dtype),
        };
        let severity = if code.starts_with('W') { Severity::Warning } else { Severity::Error };
        Diagnostic { code, severity, message, labels, help }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::syntax::join_or;

    #[test]
    fn every_code_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, _) in CODES {
            assert!(seen.insert(*code), "{code} twice");
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(0.26), "0.26");
        assert_eq!(fmt_num(0.01), "0.01");
        assert_eq!(fmt_num(1.0), "1");
        assert_eq!(fmt_num(1.2e-5), "1.20e-5");
    }

    #[test]
    fn join_reads_well() {
        assert_eq!(join_or(&["`a`".into(), "`b`".into(), "`c`".into()]), "`a`, `b` or `c`");
    }
}
