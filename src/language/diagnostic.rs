//! Every problem the front end can find, as plain data.
//!
//! Each variant carries the spans and facts of one finding; `to_diagnostic`
//! words it (message, labels, help) and gives its stable code. Turning that into
//! miette reports or JSON happens in one place, `crate::language::render`.

use crate::language::ast::Span;
use crate::language::shape::Shape;

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

#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    // ---- syntax ----
    Syntax { span: Span, message: String, label: String, help: Option<String> },

    // ---- sections ----
    UnknownSection { span: Span, name: String, known: Vec<&'static str> },
    DuplicateSection { span: Span, first: Span, name: String },
    MissingModel { span: Span },
    MalformedSection { span: Span, section: String, expected: String },
    MissingInput { span: Span, model: Option<String> },
    BadInput { span: Span, first: Option<Span>, reason: String, help: Option<String> },
    MisplacedStatement { span: Span, what: String, section: String, help: String },

    // ---- names and parameters ----
    UnknownLayer { span: Span, name: String, known: Vec<&'static str> },
    UnknownParameter { span: Span, name: String, owner: String, known: Vec<&'static str> },
    MissingParameter { span: Span, name: String, owner: String, example: String },
    WrongType { span: Span, param: String, owner: String, expected: String, found: String },
    DuplicateParameter { span: Span, first: Span, name: String },
    OutOfRange { span: Span, param: String, owner: String, value: String, allowed: String, help: Option<String> },
    MisplacedArgument { span: Span, reason: String, help: Option<String> },
    BadStructure { span: Span, reason: String, help: Option<String> },
    UnknownChoice { span: Span, what: String, name: String, known: Vec<&'static str> },
    InvalidBand { span: Span, other: Span, constraint: String, low: f64, high: f64 },

    // ---- annotations and constraints ----
    UnknownAnnotation { span: Span, name: String, known: Vec<&'static str> },
    UnsupportedMode { span: Span, constraint: String, mode: String, supported: Vec<&'static str> },
    UnusedParameter { span: Span, param: String, constraint: String, mode: String, used_in: Vec<&'static str> },
    WeightlessLayer { span: Span, layer_span: Span, annotation: String, layer: String, constraint: bool },
    NotApplicable { span: Span, layer_span: Span, annotation: String, layer: String, reason: String, help: Option<String> },
    DuplicateAnnotation { span: Span, first: Span, name: String },
    ConflictingAnnotations { span: Span, other: Span, reason: String, help: Option<String> },
    DisjointPassbands { span: Span, other: Span, first: String, second: String },
    InfeasibleBand { span: Span, constraint: String, taps: String, stopband: String, bound: f64, tol: f64, min_taps: Option<usize> },
    ImpossibleStructure { span: Span, other: Option<Span>, reason: String, help: Option<String> },
    EmptyStopband { span: Span, constraint: String, reason: String },
    ZeroPenaltyWeight { span: Span, constraint: String },
    PenaltyFloor { span: Span, constraint: String, taps: String, bound: f64 },
    NoEffect { span: Span, reason: String, help: Option<String> },
    DesignMissesTol { span: Span, constraint: String, taps: String, rho: f64, tol: f64 },
    PassbandSwallowed { span: Span, constraint: String, transition: String, passband: String, stopband: String, help: String },
    BandEdgeClamped { span: Span, constraint: String, reason: String, help: String },
    SmallSubspace { span: Span, constraint: String, mode: String, taps: String, dimension: usize, size: usize, tol: f64, help: String },
    InfeasibleSet { spans: Vec<Span>, names: Vec<String>, empty: bool, reason: String },
    PhaseRedefines { span: Span, declared_span: Span, constraint: String, layer: String, param: String, declared: String, phase: String },

    // ---- shapes ----
    KernelTooLong { span: Span, layer: String, window: String, input: String, help: String },
    ResidualMismatch { span: Span, layer: String, input: Shape, output: Shape },
    BadRank { span: Span, layer: String, found: Shape, expected: String, help: Option<String> },
    BadGroups { span: Span, layer: String, groups: usize, in_channels: usize, out_channels: usize },
    TwoDOption { span: Span, param: String, layer: String },
    ModelTooLarge { span: Span, data_span: Option<Span>, parameters: usize, needed: u64, data: u64, available: u64, batch: usize },
    OutputMismatch { span: Span, model_span: Span, output: Shape, expected: String, why: String, help: Option<String> },

    // ---- data and training ----
    FileNotFound { span: Span, path: String, resolved: String },
    BadDataFile { span: Span, path: String, line: Option<usize>, column: Option<usize>, reason: String },
    DataShapeMismatch { span: Span, input_span: Span, data: String, input: Shape, help: Option<String> },
    MissingTrainData { span: Span, no_section: bool },
    TaskMismatch { span: Span, reason: String, help: Option<String> },
    // `keep = best` or `early_stop` without validation data to watch.
    NoValidationData { span: Span, setting: String, data_span: Span },
    // `monitor = val_accuracy` on a task without classes.
    MonitorWithoutAccuracy { span: Span },

    // ---- characters and literals ----
    // A character outside ASCII (or an ASCII control) outside strings and
    // comments; `spelling`: the word around it written in ASCII.
    StrayCharacter { span: Span, character: char, spelling: Option<String> },
    // A number literal too large for a 64-bit float (it would read as ±∞).
    NumberOverflow { span: Span, text: String },

    // ---- @init(file=…) ----
    NotSafetensors { span: Span, path: String, reason: String },
    InitTensorMissing { span: Span, path: String, tensor: String, known: Vec<String> },
    InitTensorShape { span: Span, layer_span: Span, tensor: String, layer: String, found: Vec<usize>, expected: Vec<usize> },
    InitTensorDtype { span: Span, tensor: String, dtype: String },
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
    ("W0063", "admissible subspace of very few kernels"),
    ("E0064", "hard constraints that leave no weight but zero"),
    ("E0070", "invisible or look-alike character"),
    ("E0071", "number too large"),
    ("E0072", "@init file is not a safetensors file"),
    ("E0073", "@init tensor not in the file"),
    ("E0074", "@init tensor of the wrong shape"),
    ("E0075", "@init tensor that is not floating-point"),
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

    pub fn to_diagnostic(&self) -> Diagnostic {
        use Problem::*;
        let (code, message, labels, help): (&str, String, Vec<Label>, Option<String>) = match self {
            Syntax { span, message, label: text, help } => ("E0001", message.clone(), vec![label(*span, text)], help.clone()),
            UnknownSection { span, name, known } => (
                "E0002",
                format!("unknown section `{name}`"),
                vec![label(*span, "not a section")],
                did_you_mean(name, known, "sections"),
            ),
            DuplicateSection { span, first, name } => (
                "E0003",
                format!("section `{name}` is given twice"),
                vec![label(*span, "second one here"), label(*first, "first one here")],
                Some("merge the two into one section".into()),
            ),
            MissingModel { span } => (
                "E0004",
                "this file has no `model` section".into(),
                vec![label(*span, "expected `model NAME { … }` in this file")],
                Some("start with:\n  model my_model {\n    input [1, 256]\n    conv(out=8, k=9)\n  }".into()),
            ),
            MalformedSection { span, section, expected } => (
                "E0005",
                format!("section `{section}` is not written the way it must be"),
                vec![label(*span, "here")],
                Some(format!("write it as {expected}")),
            ),
            MissingInput { span, model } => (
                "E0006",
                match model {
                    Some(model) => format!("model `{model}` does not say the shape of its input"),
                    None => "this model does not say the shape of its input".into(),
                },
                vec![label(*span, "no `input [ … ]` line in this model")],
                Some("add the input shape, without the batch axis, as the model's first line: `input [channels, length]` for signals, `input [channels, height, width]` for images, `input [features]` for vectors".into()),
            ),
            BadInput { span, first, reason, help } => {
                let mut labels = vec![label(*span, "here")];
                if let Some(first) = first {
                    labels.push(label(*first, "first given here"));
                }
                ("E0007", format!("invalid input shape: {reason}"), labels, help.clone())
            }
            MisplacedStatement { span, what, section, help } => (
                "E0008",
                format!("{what} does not belong in a `{section}` section"),
                vec![label(*span, "not allowed here")],
                Some(help.clone()),
            ),
            UnknownLayer { span, name, known } => (
                "E0010",
                format!("unknown layer `{name}`"),
                vec![label(*span, "not a layer")],
                did_you_mean(name, known, "layers"),
            ),
            UnknownParameter { span, name, owner, known } => (
                "E0011",
                format!("`{owner}` has no parameter `{name}`"),
                vec![label(*span, "unknown parameter")],
                if known.is_empty() {
                    Some(format!("`{owner}` takes no parameters"))
                } else {
                    did_you_mean(name, known, "parameters")
                },
            ),
            MissingParameter { span, name, owner, example } => (
                "E0012",
                format!("`{owner}` needs the parameter `{name}`"),
                vec![label(*span, format!("`{name}` missing"))],
                Some(format!("for example: {example}")),
            ),
            WrongType { span, param, owner, expected, found } => (
                "E0013",
                format!("`{param}` of `{owner}` must be {expected}, found {found}"),
                vec![label(*span, format!("expected {expected}"))],
                None,
            ),
            DuplicateParameter { span, first, name } => (
                "E0014",
                format!("`{name}` is given twice"),
                vec![label(*span, "given again here"), label(*first, "first given here")],
                Some("keep one of them".into()),
            ),
            OutOfRange { span, param, owner, value, allowed, help } => (
                "E0015",
                format!("`{param}={value}` is out of range for `{owner}`: it must be {allowed}"),
                vec![label(*span, format!("must be {allowed}"))],
                help.clone(),
            ),
            MisplacedArgument { span, reason, help } => ("E0016", reason.clone(), vec![label(*span, "here")], help.clone()),
            BadStructure { span, reason, help } => ("E0017", reason.clone(), vec![label(*span, "here")], help.clone()),
            UnknownChoice { span, what, name, known } => (
                "E0018",
                format!("unknown {what} `{name}`"),
                vec![label(*span, format!("not a known {what}"))],
                Some(format!("{}{}", stray_note(name), match ascii_name(name, known).or_else(|| crate::language::suggest::closest(name, known)) {
                    Some(best) => format!("did you mean `{best}`? (known: {})", known.join(", ")),
                    None => format!("known: {}", known.join(", ")),
                })),
            ),
            InvalidBand { span, other, constraint, low, high } => (
                "E0019",
                format!("`@{constraint}` needs low < high, but low={} and high={}", fmt_num(*low), fmt_num(*high)),
                vec![label(*span, "low edge"), label(*other, "high edge")],
                Some("swap them, or give two different edges".into()),
            ),
            UnknownAnnotation { span, name, known } => (
                "E0020",
                format!("unknown annotation `@{name}`"),
                vec![label(*span, "not an annotation")],
                did_you_mean(name, known, "annotations"),
            ),
            UnsupportedMode { span, constraint, mode, supported } => (
                "E0021",
                format!("`@{constraint}` cannot be enforced with mode={mode}"),
                vec![label(*span, "unsupported mode")],
                Some(format!("`@{constraint}` supports mode={}", supported.join(" | "))),
            ),
            UnusedParameter { span, param, constraint, mode, used_in } => (
                "W0022",
                format!("`{param}` does nothing in mode={mode} of `@{constraint}`"),
                vec![label(*span, "ignored")],
                Some(format!("`{param}` is used by mode={}; remove it or change the mode", used_in.join(" | "))),
            ),
            WeightlessLayer { span, layer_span, annotation, layer, constraint } => (
                "E0023",
                format!("`@{annotation}` on `{layer}`, which has no weights"),
                vec![label(*span, "needs a layer with weights"), label(*layer_span, format!("`{layer}` has no weights"))],
                Some(if *constraint { "put it on a `conv` or `linear` layer".into() } else { "put it on a layer with weights: `conv`, `linear` or `batchnorm`".into() }),
            ),
            NotApplicable { span, layer_span, annotation, layer, reason, help } => (
                "E0024",
                format!("`@{annotation}` cannot be applied to `{layer}`: {reason}"),
                vec![label(*span, "not applicable"), label(*layer_span, "this layer")],
                help.clone(),
            ),
            DuplicateAnnotation { span, first, name } => (
                "E0025",
                format!("`@{name}` is given twice on one layer"),
                vec![label(*span, "again here"), label(*first, "first here")],
                Some("keep one of them".into()),
            ),
            ConflictingAnnotations { span, other, reason, help } => (
                "E0026",
                format!("conflicting annotations: {reason}"),
                vec![label(*span, "this one"), label(*other, "conflicts with this one")],
                help.clone(),
            ),
            DisjointPassbands { span, other, first, second } => (
                "E0027",
                format!("the passbands of these constraints do not meet: {first} and {second}"),
                vec![label(*span, first.clone()), label(*other, second.clone())],
                Some("together they would reject every frequency; keep one, or move the cutoffs so the passbands overlap (a band-pass is `@bandpass(low, high)`)".into()),
            ),
            InfeasibleBand { span, constraint, taps, stopband, bound, tol, min_taps } => (
                "E0028",
                format!(
                    "`@{constraint}` cannot be met: a kernel of {taps} keeps at least {} of its energy in {stopband}, more than tol={}",
                    fmt_num(*bound),
                    fmt_num(*tol)
                ),
                vec![label(*span, format!("smallest reachable stopband energy is {} (λ_min of the stopband operator)", fmt_num(*bound)))],
                Some(match min_taps {
                    Some(n) => format!("use a longer kernel (k={n} reaches tol={}), widen the band, or raise tol above {}", fmt_num(*tol), fmt_num(*bound)),
                    None => format!("widen the band, or raise tol above {}", fmt_num(*bound)),
                }),
            ),
            ImpossibleStructure { span, other, reason, help } => {
                let mut labels = vec![label(*span, "cannot be")];
                if let Some(other) = other {
                    labels.push(label(*other, "because of this"));
                }
                ("E0029", reason.clone(), labels, help.clone())
            }
            EmptyStopband { span, constraint, reason } => (
                "E0030",
                format!("`@{constraint}` has an empty stopband: {reason}"),
                vec![label(*span, "constrains nothing")],
                Some("give a narrower `transition=`, move the band edges so that a stopband remains, or use a longer kernel".into()),
            ),
            ZeroPenaltyWeight { span, constraint } => (
                "W0031",
                format!("`@{constraint}` has a penalty weight of 0, so it has no effect on training"),
                vec![label(*span, "weight=0")],
                Some("give a positive weight, or use mode=project for a hard guarantee".into()),
            ),
            PenaltyFloor { span, constraint, taps, bound } => (
                "W0032",
                format!("`@{constraint}`: no kernel of {taps} can have less than {} of its energy in the stopband, so the penalty can never vanish", fmt_num(*bound)),
                vec![label(*span, format!("ρ ≥ {} for every kernel", fmt_num(*bound)))],
                Some("use a longer kernel or a wider band".into()),
            ),
            NoEffect { span, reason, help } => ("W0033", reason.clone(), vec![label(*span, "no effect")], help.clone()),
            DesignMissesTol { span, constraint, taps, rho, tol } => (
                "W0034",
                format!(
                    "mode=freeze fixes `@{constraint}` to a designed filter of {taps} whose stopband energy ratio is {}, above tol={}",
                    fmt_num(*rho),
                    fmt_num(*tol)
                ),
                vec![label(*span, format!("designed filter has ρ = {}", fmt_num(*rho)))],
                Some("a Hamming-windowed design of this length cannot do better; use more taps, a wider transition, or mode=project to learn a kernel that meets tol".into()),
            ),
            PassbandSwallowed { span, constraint, transition, passband, stopband, help } => (
                "W0061",
                format!(
                    "the transition of `@{constraint}` swallows its passband: with a transition of {transition}, no frequency of the passband {passband} is clear of it; the constraint suppresses only {stopband}"
                ),
                vec![label(*span, "passband inside the transition")],
                Some(help.clone()),
            ),
            BandEdgeClamped { span, constraint, reason, help } => {
                ("W0062", format!("`@{constraint}`: {reason}"), vec![label(*span, "stopband edge clamped")], Some(help.clone()))
            }
            SmallSubspace { span, constraint, mode, taps, dimension, size, tol, help } => (
                "W0063",
                format!(
                    "mode={mode} keeps the kernels of `@{constraint}` in a subspace of dimension {dimension} (of {size}): on {taps}, only {dimension} independent kernel{} {} ρ ≤ tol={}, so every kernel of the layer is {}",
                    if *dimension == 1 { "" } else { "s" },
                    if *dimension == 1 { "has" } else { "have" },
                    fmt_num(*tol),
                    if *dimension == 1 { "the same kernel times a scale".to_string() } else { format!("a combination of the same {dimension}") }
                ),
                vec![label(*span, format!("admissible dimension {dimension}"))],
                Some(help.clone()),
            ),
            InfeasibleSet { spans, names, empty, reason } => (
                "E0064",
                format!(
                    "{} cannot hold together: {}{reason}",
                    join_and(names),
                    if *empty { "no weight satisfies them all; " } else { "only the zero weight satisfies them all; " }
                ),
                spans
                    .iter()
                    .zip(names)
                    .enumerate()
                    .map(|(i, (span, name))| label(*span, if i == 0 { format!("{name} (hard)") } else { format!("{name} (hard), with it") }))
                    .collect(),
                Some(if *empty {
                    "training would never reach a weight that meets them; enforce one of them as a penalty (mode=penalty), or drop one".into()
                } else {
                    "training would leave this layer at zero; enforce one of them as a penalty (mode=penalty), or drop one".into()
                }),
            ),
            PhaseRedefines { span, declared_span, constraint, layer, param, declared, phase } => (
                "E0060",
                format!("a phase cannot change `{param}` of `@{constraint}` on `{layer}`: the model declares {declared}, this phase {phase}"),
                vec![label(*span, format!("{param}={phase} here")), label(*declared_span, format!("declared with {param}={declared}"))],
                Some(match param.as_str() {
                    "tol" => "mode=reparam trains coordinates in a subspace built once from the model's tol; change tol on the layer, or use mode=project in both".into(),
                    "value" | "max" => format!("a phase may change mode, weight and tol; declare the {param} you want on the layer"),
                    _ => "a phase may change mode, weight and tol; declare the band you want on the layer".into(),
                }),
            ),
            KernelTooLong { span, layer, window, input, help } => (
                "E0040",
                format!("`{layer}` spans {window}, longer than its input {input}"),
                vec![label(*span, format!("input is {input}"))],
                Some(help.clone()),
            ),
            ResidualMismatch { span, layer, input, output } => (
                "E0041",
                format!("the body of `{layer}` maps {input} to {output}, so it cannot be added to its input"),
                vec![label(*span, format!("{input} → {output}"))],
                Some("a residual body must keep the shape: keep the channel count and use `padding=same` with stride 1".into()),
            ),
            BadRank { span, layer, found, expected, help } => (
                "E0042",
                format!("`{layer}` needs {expected}, but its input is {found}"),
                vec![label(*span, format!("input here is {found}"))],
                help.clone(),
            ),
            BadGroups { span, layer, groups, in_channels, out_channels } => (
                "E0043",
                format!("`{layer}` has groups={groups}, which must divide both its {in_channels} input and {out_channels} output channels"),
                vec![label(*span, format!("{in_channels} in, {out_channels} out"))],
                Some("choose groups among the common divisors of the two channel counts".into()),
            ),
            TwoDOption { span, param, layer } => (
                "E0045",
                format!("`{param}` of `{layer}` is a pair, but the layer is 1-D"),
                vec![label(*span, "one value per axis of a 2-D layer")],
                Some(format!("a 1-D layer takes a single `{param}`; a layer is 2-D when its input is `[channels, height, width]`")),
            ),
            ModelTooLarge { span, data_span, parameters, needed, data, available, batch } => {
                let mut labels = vec![label(*span, format!("weights and activations: about {}", bytes(needed - data)))];
                if let Some(data_span) = data_span.filter(|_| *data > 0) {
                    labels.push(label(data_span, format!("{} of data in memory", bytes(*data))));
                }
                (
                    "E0046",
                    format!(
                        "training this model needs about {} of memory ({} parameters, batch {batch}, {} of data), more than the {} available",
                        bytes(*needed),
                        parameters,
                        bytes(*data),
                        bytes(*available)
                    ),
                    labels,
                    Some(if *data > needed - data {
                        "most of it is the data: use fewer or shorter examples (`n=`, a shorter input), or a smaller file".into()
                    } else {
                        "use fewer or narrower layers, downsample earlier, or a smaller `batch`".into()
                    }),
                )
            }
            OutputMismatch { span, model_span, output, expected, why, help } => (
                "E0044",
                format!("the model's output is {output}, but {why} needs {expected}"),
                vec![label(*span, format!("needs {expected}")), label(*model_span, format!("model output is {output}"))],
                help.clone(),
            ),
            FileNotFound { span, path, resolved } => (
                "E0050",
                format!("file `{path}` does not exist"),
                vec![label(*span, format!("looked for {resolved}"))],
                Some("relative paths are taken from the folder of the .lpn file".into()),
            ),
            BadDataFile { span, path, line, column, reason } => (
                "E0051",
                match (line, column) {
                    (Some(line), Some(column)) => format!("{path}:{line}:{column}: {reason}"),
                    (Some(line), None) => format!("{path}:{line}: {reason}"),
                    (None, _) => format!("{path}: {reason}"),
                },
                vec![label(*span, "in this file")],
                None,
            ),
            DataShapeMismatch { span, input_span, data, input, help } => (
                "E0052",
                format!("the data gives {data}, but the model's input is {input}"),
                vec![label(*span, data.clone()), label(*input_span, format!("input {input}"))],
                help.clone(),
            ),
            MissingTrainData { span, no_section } => (
                "E0053",
                if *no_section {
                    "this file has no `data` section, so there is nothing to train on".into()
                } else {
                    "the data section does not say where the training data comes from".into()
                },
                vec![label(*span, if *no_section { "model without data" } else { "no `train = …` here" })],
                Some(if *no_section {
                    "add a data source, e.g. the one-line `data sines()` (built-in denoising) or `data ucr(\"train.csv\")`".into()
                } else {
                    "add `train = sines()` for a built-in task or `train = ucr(\"file.csv\")` for your own".into()
                }),
            ),
            TaskMismatch { span, reason, help } => ("E0054", reason.clone(), vec![label(*span, "here")], help.clone()),
            NoValidationData { span, setting, data_span } => (
                "E0080",
                format!("`{setting}` watches a validation figure, but this file has no validation data"),
                vec![label(*span, "needs validation data"), label(*data_span, "no `val = …`, and `val_split = 0`")],
                Some("give `val = SOURCE` or a `val_split` above 0 in the data section, or remove the setting".into()),
            ),
            MonitorWithoutAccuracy { span } => (
                "E0081",
                "`monitor = val_accuracy` needs a classification task; this data is for denoising, which has no accuracy".into(),
                vec![label(*span, "no accuracy to watch")],
                Some("use `monitor = val_loss`".into()),
            ),
            StrayCharacter { span, character, spelling } => {
                use crate::language::confusables::{Looks, describe, looks};
                let code_point = format!("U+{:04X}", *character as u32);
                let help = match (looks(*character), spelling) {
                    (Looks::Invisible, Some(word)) => format!("delete it: did you mean `{word}`?"),
                    (Looks::Like(_), Some(word)) | (Looks::Other, Some(word)) => {
                        format!("names are written in ASCII letters: did you mean `{word}`?")
                    }
                    (Looks::Invisible, None) => "delete it (most editors do not show it)".into(),
                    (Looks::Space, _) => "replace it with a plain space".into(),
                    (Looks::Like(ascii), None) => format!("type a plain `{ascii}` instead"),
                    (Looks::Other, None) => "outside strings and comments a .lpn file is ASCII".into(),
                };
                (
                    "E0070",
                    format!("unexpected character {}", describe(*character)),
                    vec![label(*span, match looks(*character) {
                        Looks::Invisible => format!("invisible {code_point} here"),
                        Looks::Space | Looks::Like(_) | Looks::Other => format!("{code_point}, not ASCII"),
                    })],
                    Some(help),
                )
            }
            NumberOverflow { span, text } => (
                "E0071",
                format!("the number `{text}` overflows a 64-bit float"),
                vec![label(*span, "beyond ±1.8e308")],
                Some("no number can be larger in magnitude than about 1.8e308: check the exponent".into()),
            ),
                    NotSafetensors { span, path, reason } => (
                "E0072",
                format!("`{path}` is not a safetensors file: {reason}"),
                vec![label(*span, "not safetensors")],
                Some("`@init(file=…)` reads the safetensors files `lpnc train` writes (model.safetensors) or PyTorch's `safetensors.torch.save_file`".into()),
            ),
            InitTensorMissing { span, path, tensor, known } => (
                "E0073",
                format!("`{path}` has no tensor `{tensor}`"),
                vec![label(*span, format!("no `{tensor}` in the file"))],
                Some(match crate::language::suggest::closest(tensor, &known.iter().map(String::as_str).collect::<Vec<_>>()) {
                    Some(best) => format!("did you mean `tensor=\"{best}\"`? (the file has: {})", known.join(", ")),
                    None if known.is_empty() => "the file holds no tensor".into(),
                    None => format!("the file has: {}", known.join(", ")),
                }),
            ),
            InitTensorShape { span, layer_span, tensor, layer, found, expected } => (
                "E0074",
                format!("tensor `{tensor}` has shape {found:?}, but `{layer}`'s weight is {expected:?}"),
                vec![label(*span, format!("shape {found:?}")), label(*layer_span, format!("weight {expected:?}"))],
                Some("give the tensor of the layer it was trained for (`tensor=\"…\"`), or change the layer to its shape".into()),
            ),
            InitTensorDtype { span, tensor, dtype } => (
                "E0075",
                format!("tensor `{tensor}` holds {dtype} values, not floating-point ones"),
                vec![label(*span, format!("dtype {dtype}"))],
                Some(format!("weights are read from {} tensors", crate::language::check::init_file::FLOAT_DTYPES.join(", "))),
            ),
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
