//! Annotations on one layer: which constraints apply, in which mode, with which
//! parameters, whether they can be met by a kernel of this shape, and whether
//! they agree with each other.

use std::path::Path;

use crate::constraint::SetSpec;
use crate::constraint::bands::{BandSpec, default_transition, freq_words, intervals_words};
use crate::constraint::quadratic::{self, Source};
use crate::language::ast::{self, Span};
use crate::language::check::Ctx;
use crate::language::check::feasible_set::{self, Units};
use crate::language::check::params::Call;
use crate::language::diagnostic::{Problem, fmt_num};
use crate::language::ir::{Constraint, Init};
use crate::language::schema::{AnnotationDef, AnnotationRole, Band, Family, LayerKind, Mode, ParamType};

/// What the checker knows of the layer the annotations sit on.
pub struct LayerFacts {
    pub kind: LayerKind,
    /// The layer's table name (`conv`).
    pub layer: &'static str,
    /// Its instance name (`residual1.conv2`).
    pub name: String,
    pub span: Span,
    pub weights: bool,
    /// Whether the layer has a bias (`@init(bias=…)` needs one).
    pub bias: bool,
    /// Kernel taps per axis, for convolutions.
    pub kernel: Option<Vec<usize>>,
    pub dilated: bool,
    /// The `@freeze` of an enclosing structure, if any.
    pub frozen_by: Option<Span>,
    /// Output units and weights per unit, for the norm constraints (None when
    /// the shape is unknown).
    pub units: Option<Units>,
    /// The shape of its weight tensor, where the input shape is known.
    pub weight_shape: Option<Vec<usize>>,
}

#[derive(Default)]
pub struct Attached {
    pub constraints: Vec<Constraint>,
    pub frozen: bool,
    pub lr_scale: Option<f64>,
    pub init: Option<Init>,
}

/// Longest kernel the infeasibility help searches for (an eigenproblem per try).
const MAX_SUGGESTED_TAPS: usize = 256;

/// Penalty floors below this are not worth a warning.
const PENALTY_FLOOR_WARNING: f64 = 0.05;

type Written<'a> = (&'a ast::Annotation, &'static AnnotationDef, Call);

pub fn check(ctx: &mut Ctx, layer: &LayerFacts, annotations: &[Written]) -> Attached {
    let first_problem = ctx.problems.len();
    let mut attached = Attached::default();
    // (constraint, its annotation span) for the cross-checks below.
    let mut placed: Vec<(Constraint, Span)> = Vec::new();
    let mut freeze_span = layer.frozen_by;
    let mut lr_span = None;
    let mut init_span = None;

    for (i, (annotation, def, call)) in annotations.iter().enumerate() {
        if let Some((first, _, _)) = annotations[..i].iter().find(|(_, d, _)| d.schema.name == def.schema.name) {
            ctx.problems.push(Problem::DuplicateAnnotation { span: annotation.span, first: first.span, name: def.schema.name.into() });
            continue;
        }
        if !layer.weights {
            ctx.problems.push(Problem::WeightlessLayer {
                span: annotation.span,
                layer_span: layer.span,
                annotation: def.schema.name.into(),
                layer: layer.name.clone(),
                constraint: matches!(def.role, AnnotationRole::Constraint { .. }),
            });
            continue;
        }
        match def.role {
            AnnotationRole::Constraint { family, modes, default_mode, layers } => {
                if !layers.contains(&layer.kind) {
                    let (reason, help) = not_applicable_reason(family, layer.kind);
                    ctx.problems.push(Problem::NotApplicable {
                        span: annotation.span,
                        layer_span: layer.span,
                        annotation: def.schema.name.into(),
                        layer: layer.name.clone(),
                        reason,
                        help,
                    });
                    continue;
                }
                if let Some(constraint) = constraint(ctx, layer, annotation, def, call, family, modes, default_mode) {
                    placed.push((constraint, annotation.span));
                }
            }
            AnnotationRole::Freeze => {
                attached.frozen = true;
                freeze_span = Some(annotation.span);
            }
            AnnotationRole::LearningRate => {
                attached.lr_scale = call.f64("scale");
                lr_span = Some(annotation.span);
            }
            AnnotationRole::Init => {
                attached.init = init(ctx, layer, call);
                init_span = Some(annotation.span);
            }
        }
    }

    cross_check(ctx, layer, &placed, freeze_span, lr_span, init_span);
    // Whether the hard constraints leave any weight but zero; only when the
    // layer's annotations are otherwise sound (one error per conflict).
    if !ctx.problems[first_problem..].iter().any(Problem::is_error) {
        let constraints: Vec<&Constraint> = placed.iter().map(|(c, _)| c).collect();
        if let Some(found) = feasible_set::check(&constraints, layer.kernel.as_deref(), layer.units) {
            ctx.problems.push(Problem::InfeasibleSet { spans: found.spans, names: found.names, empty: found.empty, reason: found.reason });
        }
    }
    attached.constraints = placed.into_iter().map(|(c, _)| c).collect();
    attached
}

fn not_applicable_reason(family: Family, kind: LayerKind) -> (String, Option<String>) {
    match (family, kind) {
        (_, LayerKind::BatchNorm) => (
            "batchnorm's scale and shift are one number per channel, not kernels".into(),
            Some("put the constraint on the `conv` or `linear` layer next to it".into()),
        ),
        (Family::Orthogonal, LayerKind::Conv) => (
            "orthogonality is defined here for a linear layer's weight matrix; a convolution's reshaped kernel being orthogonal does not make the convolution an orthogonal map".into(),
            Some("use `@orthogonal` on a `linear` layer, or bound the kernels with `@maxnorm` / `@unitnorm`".into()),
        ),
        (Family::Lipschitz, LayerKind::Conv) => (
            "a convolution's Lipschitz constant is not the spectral norm of its reshaped kernel, so the bound would not hold".into(),
            Some("use `@lipschitz` on a `linear` layer, or bound the kernels with `@maxnorm` / `@unitnorm`".into()),
        ),
        (_, LayerKind::Linear) => (
            "it acts on convolution kernels along their taps; a linear layer's weight has no tap axis".into(),
            Some(
                "use it on a `conv` layer; on a linear layer, `@nonneg`, `@maxnorm`, `@unitnorm`, `@orthogonal` and `@lipschitz` apply"
                    .into(),
            ),
        ),
        (
            _,
            LayerKind::Conv
            | LayerKind::Activation
            | LayerKind::MaxPool
            | LayerKind::AvgPool
            | LayerKind::GlobalAvgPool
            | LayerKind::GlobalMaxPool
            | LayerKind::Dropout
            | LayerKind::Flatten
            | LayerKind::Repeat
            | LayerKind::Residual,
        ) => ("it does not apply to this kind of layer".into(), None),
    }
}

#[allow(clippy::too_many_arguments)]
fn constraint(
    ctx: &mut Ctx,
    layer: &LayerFacts,
    annotation: &ast::Annotation,
    def: &AnnotationDef,
    call: &Call,
    family: Family,
    modes: &'static [Mode],
    default_mode: Mode,
) -> Option<Constraint> {
    let name = def.schema.name;
    let mode = match call.word("mode") {
        Some(word) => Mode::from_name(word).expect("mode names are checked by the resolver"),
        None if call.given("mode") => return None,
        None => default_mode,
    };
    if !modes.contains(&mode) {
        ctx.problems.push(Problem::UnsupportedMode {
            span: call.span_of("mode"),
            constraint: name.into(),
            mode: mode.name().into(),
            supported: modes.iter().map(|m| m.name()).collect(),
        });
        return None;
    }
    for p in def.schema.params {
        if call.given(p.name) && !p.modes.is_empty() && !p.modes.contains(&mode) {
            ctx.problems.push(Problem::UnusedParameter {
                span: call.span_of(p.name),
                param: p.name.into(),
                constraint: name.into(),
                mode: mode.name().into(),
                used_in: p.modes.iter().map(|m| m.name()).collect(),
            });
        }
    }
    let weight = call.f64("weight").unwrap_or(1.0);
    if mode == Mode::Penalty && weight == 0.0 && call.given("weight") {
        ctx.problems.push(Problem::ZeroPenaltyWeight { span: call.span_of("weight"), constraint: name.into() });
    }
    let band = || {
        if layer.dilated {
            ctx.problems.push(Problem::NotApplicable {
                span: annotation.span,
                layer_span: layer.span,
                annotation: name.into(),
                layer: layer.name.clone(),
                reason: "with dilation > 1 the taps are spread out and the response folds (H(dν)), so a band on the taps is not a band of the layer".into(),
                help: Some("use dilation=1 on a frequency-constrained conv".into()),
            });
            return None;
        }
        band_spec(ctx, call, family, name)
    };
    let set = SetSpec::read(family, |p| call.f64(p), band)?;
    let mut constraint = Constraint {
        family,
        mode,
        weight,
        tol: call.f64("tol").unwrap_or(if set.quadratic().is_some() { 0.01 } else { 1e-3 }),
        dual_lr: call.f64("dual_lr").unwrap_or(1.0),
        set,
        span: annotation.span,
    };
    if constraint.set.quadratic().is_some() {
        let kernel = layer.kernel.clone()?;
        feasibility(ctx, &mut constraint, &kernel, name, call);
    }
    Some(constraint)
}

/// Reads the band's frequencies, normalised to Nyquist, after the range checks
/// that depend on `fs`.
fn band_spec(ctx: &mut Ctx, call: &Call, family: Family, name: &str) -> Option<BandSpec> {
    // A rejected sample rate leaves the units of every frequency unknown.
    if call.given("fs") && call.f64("fs").is_none() {
        return None;
    }
    let fs = call.f64("fs");
    let nyquist = fs.map(|fs| fs / 2.0).unwrap_or(1.0);
    let owner = format!("@{name}");
    let mut normalised = |param: &str| -> Option<f64> {
        let raw = call.f64(param)?;
        if raw >= nyquist {
            let (allowed, help) = match fs {
                Some(fs) => (
                    format!("below fs/2 = {} Hz", fmt_num(fs / 2.0)),
                    "frequencies above half the sample rate do not exist in the sampled signal".to_string(),
                ),
                None => (
                    "in (0, 1), a fraction of Nyquist".to_string(),
                    if (2.0..1e6).contains(&raw) {
                        format!(
                            "cutoffs are fractions of Nyquist as in scipy.signal.firwin; to give {} Hz, add the sample rate: `fs=…`",
                            fmt_num(raw)
                        )
                    } else {
                        "cutoffs are fractions of Nyquist as in scipy.signal.firwin: 0.5 is half of Nyquist".to_string()
                    },
                ),
            };
            ctx.problems.push(Problem::OutOfRange {
                span: call.span_of(param),
                param: param.into(),
                owner: owner.clone(),
                value: fmt_num(raw),
                allowed,
                help: Some(help),
            });
            return None;
        }
        Some(raw / nyquist)
    };
    let (low, high) = if matches!(family, Family::Bandpass | Family::Bandstop) {
        let low = normalised("low");
        let high = normalised("high");
        let (low, high) = (low?, high?);
        if low >= high {
            ctx.problems.push(Problem::InvalidBand {
                span: call.span_of("low"),
                other: call.span_of("high"),
                constraint: name.into(),
                low: low * nyquist,
                high: high * nyquist,
            });
            return None;
        }
        (low, high)
    } else {
        let cutoff = normalised("cutoff")?;
        (cutoff, cutoff)
    };
    let transition = match call.f64("transition") {
        Some(t) if t / nyquist >= 1.0 => {
            ctx.problems.push(Problem::OutOfRange {
                span: call.span_of("transition"),
                param: "transition".into(),
                owner,
                value: fmt_num(t),
                allowed: if fs.is_some() { "below fs/2".into() } else { "in (0, 1), a fraction of Nyquist".into() },
                help: None,
            });
            return None;
        }
        Some(t) => Some(t / nyquist),
        None if call.given("transition") => return None,
        None => None,
    };
    Some(BandSpec { family, low, high, transition, fs })
}

fn describe_taps(kernel: &[usize]) -> String {
    match kernel {
        [k] => format!("{k} taps"),
        dims => format!("{} taps", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")),
    }
}

/// Longest kernel axis a band constraint accepts.
const MAX_BAND_TAPS: usize = 1024;

/// Band families: an empty stopband (E0030) leaves nothing to constrain;
/// otherwise the edges in force and their warnings. False when reported.
fn band_checks(ctx: &mut Ctx, constraint: &mut Constraint, band: &BandSpec, kernel: &[usize], name: &str) -> bool {
    for &k in kernel {
        let stop = band.stopband(k);
        if stop.is_empty() {
            let width = freq_words(band.transition.unwrap_or_else(|| default_transition(k)), band.fs);
            let reason = match band.transition {
                Some(_) => format!("with transition={width}, the band edges leave no frequency to suppress"),
                None => format!(
                    "{k} taps resolve no finer than the default transition of 6.6/k = {width} (a Hamming window's), which leaves no frequency to suppress"
                ),
            };
            ctx.problems.push(Problem::EmptyStopband { span: constraint.span, constraint: name.into(), reason });
            return false;
        }
    }
    if let SetSpec::Quadratic(spec) = &mut constraint.set {
        spec.edges = kernel.iter().map(|&k| band.edges(k)).collect();
    }
    edge_warnings(ctx, constraint, name);
    true
}

/// Every quadratic family (ρ = hᵀQh/hᵀh): the band's own checks, then the
/// λ_min bound against tol (hard modes) or as a floor (penalty), the
/// admissible dimension, and what the designed kernel of mode=freeze
/// achieves (or why there is none).
fn feasibility(ctx: &mut Ctx, constraint: &mut Constraint, kernel: &[usize], name: &str, call: &Call) {
    let Some(source) = constraint.set.quadratic().map(|q| q.source) else { return };
    if let Some(band) = source.band()
        && !band_checks(ctx, constraint, band, kernel, name)
    {
        return;
    }
    // The operators are dense taps×taps matrices (and training projects with
    // them every step): past this size they would take gigabytes and minutes.
    if kernel.iter().any(|&k| k > MAX_BAND_TAPS) {
        ctx.problems.push(Problem::BadStructure {
            span: constraint.span,
            reason: format!(
                "`@{name}` acts on kernels of at most {MAX_BAND_TAPS} taps per axis; this one has {}",
                kernel.iter().map(|k| k.to_string()).collect::<Vec<_>>().join("×")
            ),
            help: Some("a band this selective needs far fewer taps: shorten the kernel".into()),
        });
        return;
    }
    let bound = ctx.lambda_min(&source, kernel);
    if let SetSpec::Quadratic(spec) = &mut constraint.set {
        spec.lambda_min = Some(bound);
    }
    match constraint.mode {
        Mode::Project | Mode::Reparam | Mode::Lagrangian if bound > constraint.tol => {
            let min_taps = if kernel.len() == 1 { ctx.min_taps(&source, constraint.tol, kernel[0], MAX_SUGGESTED_TAPS) } else { None };
            ctx.problems.push(Problem::InfeasibleBand {
                span: constraint.span,
                constraint: name.into(),
                taps: describe_taps(kernel),
                ratio: source.ratio_words(kernel),
                bound,
                tol: constraint.tol,
                min_taps,
            });
        }
        Mode::Project | Mode::Reparam => {
            let dimension = quadratic::admissible_dimension(&ctx.spectrum(&source, kernel), constraint.tol);
            if let SetSpec::Quadratic(spec) = &mut constraint.set {
                spec.admissible_dimension = Some(dimension);
            }
            if dimension <= SMALL_ADMISSIBLE_DIMENSION {
                small_subspace(ctx, constraint, &source, kernel, name, dimension);
            }
        }
        Mode::Penalty if bound > PENALTY_FLOOR_WARNING => {
            ctx.problems.push(Problem::PenaltyFloor {
                span: constraint.span,
                constraint: name.into(),
                taps: describe_taps(kernel),
                ratio: source.ratio_words(kernel),
                bound,
            });
        }
        Mode::Freeze => match source.designed_kernel(kernel) {
            // What the frozen design achieves against this spec.
            Ok(h) => {
                let rho = quadratic::ratio(&source.operator(kernel), &h);
                if rho > constraint.tol {
                    ctx.problems.push(Problem::DesignMissesTol {
                        span: constraint.span,
                        constraint: name.into(),
                        taps: describe_taps(kernel),
                        ratio: source.ratio_words(kernel),
                        rho,
                        tol: constraint.tol,
                    });
                }
            }
            Err(none) => ctx.problems.push(Problem::ImpossibleStructure {
                span: call.span_of("mode"),
                other: None,
                reason: none.reason,
                help: Some(none.help),
            }),
        },
        Mode::Penalty | Mode::Lagrangian => {}
    }
}

/// An admissible subspace of this dimension or less makes every kernel of a
/// layer a combination of one or two fixed kernels (at 1, all of them the same
/// kernel times a scale): the layer can hardly learn, which is worth a warning
/// when the constraint is hard (project, reparam). Three is the target the
/// help gives numbers for.
const SMALL_ADMISSIBLE_DIMENSION: usize = 2;

/// Longest kernel axis the small-subspace help searches (2-D kernels are
/// searched square).
const MAX_SUGGESTED_AXIS: usize = 64;

/// W0063: the admissible subspace is tiny; help with the tol and the kernel
/// length that reach `SMALL_ADMISSIBLE_DIMENSION + 1`.
fn small_subspace(ctx: &mut Ctx, constraint: &Constraint, source: &Source, kernel: &[usize], name: &str, dimension: usize) {
    let target = SMALL_ADMISSIBLE_DIMENSION + 1;
    let spectrum = ctx.spectrum(source, kernel);
    // tol must reach the target-th smallest ρ; rounded up so the figure shown works.
    let tol_needed = spectrum.get(target - 1).map(|&l| round_up(l)).filter(|&t| t < 1.0);
    let longer = (kernel.iter().copied().max().unwrap_or(1) + 1..=MAX_SUGGESTED_AXIS).find_map(|k| {
        let dims: Vec<usize> = kernel.iter().map(|_| k).collect();
        (quadratic::admissible_dimension(&ctx.spectrum(source, &dims), constraint.tol) >= target).then_some(dims)
    });
    let mut ways = Vec::new();
    if let Some(t) = tol_needed {
        ways.push(format!("tol={} gives {target}", fmt_num(t)));
    }
    if let Some(dims) = longer {
        ways.push(format!("k={} gives {target} at tol={}", describe_dims(&dims), fmt_num(constraint.tol)));
    }
    ways.push(source.loosen_words().into());
    ctx.problems.push(Problem::SmallSubspace {
        span: constraint.span,
        constraint: name.into(),
        mode: constraint.mode.name().into(),
        taps: describe_taps(kernel),
        dimension,
        size: kernel.iter().product(),
        tol: constraint.tol,
        help: ways.join("; "),
    });
}

/// `x` rounded up to two significant digits.
fn round_up(x: f64) -> f64 {
    if x <= 0.0 {
        return x;
    }
    let scale = 10f64.powf(x.log10().floor() - 1.0);
    (x / scale - 1e-9).ceil() * scale
}

fn describe_dims(dims: &[usize]) -> String {
    match dims {
        [k] => k.to_string(),
        dims => format!("[{}]", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// The fewest taps from about 6.6/width (where the default transition
/// 6.6/k falls below `width`) for which `fits` holds, counted up with the
/// same edge arithmetic as the checks, so rounding cannot give one too few.
/// None past `MAX_HELP_TAPS` (a cutoff of 1e-300 would need 1e300 taps).
fn taps_from(width: f64, fits: impl Fn(usize) -> bool) -> Option<usize> {
    let start = 6.6 / width;
    if start.is_nan() || start >= MAX_HELP_TAPS as f64 {
        return None;
    }
    // The answer is within a step or two of 6.6/width; the bound only guards rounding.
    (((start.floor() as usize).max(1))..=MAX_HELP_TAPS).find(|&k| fits(k))
}

/// Longest kernel the edge warnings' help names.
const MAX_HELP_TAPS: usize = 100_000;

/// `, or use a kernel of at least N taps` when such a kernel is practical.
fn taps_words(taps: Option<usize>, tail: &str) -> String {
    taps.map(|n| format!(" or use a kernel of at least {n} taps{tail}")).unwrap_or_default()
}

/// The transition in words: `0.73 (6.6/k for 9 taps)` or `0.1`.
fn transition_words(band: &BandSpec, k: usize) -> String {
    let width = freq_words(band.transition_for(k), band.fs);
    match band.transition {
        Some(_) => width,
        None => format!("{width} (the default 6.6/k for {k} taps)"),
    }
}

/// Warnings about where the edges really fall: a passband the transitions
/// swallow (W0061), and a band-pass whose lower (upper) stopband is cut off
/// at 0 (1), so DC (Nyquist) passes (W0062). Once per distinct axis length.
fn edge_warnings(ctx: &mut Ctx, constraint: &Constraint, name: &str) {
    let band = constraint.band().expect("band constraints carry a band");
    let mut seen: Vec<usize> = Vec::new();
    for edges in constraint.edges() {
        let k = edges.taps;
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        let half = edges.transition / 2.0;
        let hz = |x: f64| freq_words(x, band.fs);
        if edges.passband.is_empty() {
            // The widest transition that leaves a passband: half of it must fit
            // inside each written passband piece (both halves in a band-pass).
            let room = match band.shape() {
                Band::Lowpass => 2.0 * band.low,
                Band::Highpass => 2.0 * (1.0 - band.low),
                Band::Bandpass => band.high - band.low,
                Band::Bandstop => 2.0 * band.low.max(1.0 - band.high),
            };
            let default = BandSpec { transition: None, ..band };
            let taps = taps_from(room, |k| !default.edges(k).passband.is_empty());
            ctx.problems.push(Problem::PassbandSwallowed {
                span: constraint.span,
                constraint: name.into(),
                transition: transition_words(&band, k),
                passband: intervals_words(&band.passband(), band.fs),
                stopband: intervals_words(&edges.stopband, band.fs),
                help: format!(
                    "give `transition=` below {} (e.g. transition={}){}",
                    hz(room),
                    hz(room / 2.0),
                    taps_words(taps, ", whose default transition 6.6/k fits").replacen(" or", ", or", 1)
                ),
            });
        }
        if band.family == Family::Bandpass {
            let sides = [
                (band.low - half <= 0.0, "low", band.low, "below the band", "DC (ν = 0)", format!("`@lowpass(cutoff={})`", hz(band.high))),
                (
                    band.high + half >= 1.0,
                    "high",
                    band.high,
                    "above the band",
                    "Nyquist (ν = 1)",
                    format!("`@highpass(cutoff={})`", hz(band.low)),
                ),
            ];
            for (clamped, side, edge, where_, passes, instead) in sides {
                if !clamped {
                    continue;
                }
                let sign = if side == "low" { "−" } else { "+" };
                let limit = if side == "low" { edge } else { 1.0 - edge };
                let default = BandSpec { transition: None, ..band };
                let piece = if side == "low" { 0 } else { 1 };
                let taps = taps_from(2.0 * limit, |k| {
                    let (a, b) = default.stopband(k).pieces[piece];
                    a < b
                });
                ctx.problems.push(Problem::BandEdgeClamped {
                    span: constraint.span,
                    constraint: name.into(),
                    reason: format!(
                        "with a transition of {}, the stopband edge {side} {sign} transition/2 = {} is {}, so nothing {where_} is suppressed: {passes} passes",
                        transition_words(&band, k),
                        hz(edge + if side == "low" { -half } else { half }),
                        if side == "low" { "at or below 0" } else { "at or beyond Nyquist" }
                    ),
                    help: format!(
                        "to suppress it, give `transition=` below {}{}; if it should pass, say so with {instead}",
                        hz(2.0 * limit),
                        taps_words(taps, "")
                    ),
                });
            }
        }
    }
}

/// The tensor `@init(file=…, tensor=…)` names, by the file's header: the
/// file is safetensors, holds the tensor, in a float dtype, of the layer's
/// weight shape (E0072 to E0075).
fn init_tensor_fits(ctx: &mut Ctx, layer: &LayerFacts, call: &Call, written: &str, path: &Path, tensor: &str) -> Option<()> {
    let file_span = call.span_of("file");
    let tensor_span = if call.given("tensor") { call.span_of("tensor") } else { call.span };
    let tensors = match super::init_file::read_header(ctx.env, path) {
        Ok(tensors) => tensors,
        Err(reason) => {
            ctx.problems.push(Problem::NotSafetensors { span: file_span, path: written.into(), reason });
            return None;
        }
    };
    let Some(info) = tensors.iter().find(|t| t.name == tensor) else {
        ctx.problems.push(Problem::InitTensorMissing {
            span: tensor_span,
            path: written.into(),
            tensor: tensor.into(),
            known: tensors.iter().map(|t| t.name.clone()).collect(),
        });
        return None;
    };
    if !super::init_file::FLOAT_DTYPES.contains(&info.dtype.as_str()) {
        ctx.problems.push(Problem::InitTensorDtype { span: tensor_span, tensor: tensor.into(), dtype: info.dtype.clone() });
        return None;
    }
    if let Some(expected) = &layer.weight_shape
        && *expected != info.shape
    {
        ctx.problems.push(Problem::InitTensorShape {
            span: tensor_span,
            layer_span: layer.span,
            tensor: tensor.into(),
            layer: layer.name.clone(),
            found: info.shape.clone(),
            expected: expected.clone(),
        });
        return None;
    }
    Some(())
}

fn init(ctx: &mut Ctx, layer: &LayerFacts, call: &Call) -> Option<Init> {
    let scheme = if call.given("file") && !call.given("scheme") { "file" } else { call.word("scheme")? };
    match scheme {
        "file" => init_from_file(ctx, layer, call),
        "lowpass" | "highpass" => designed_init(ctx, layer, call, scheme),
        "kaiming" => Some(Init::Kaiming),
        "xavier" => Some(Init::Xavier),
        "zeros" => Some(Init::Zeros),
        "normal" => Some(Init::Normal { std: call.f64("std").unwrap_or(0.02) }),
        other => unreachable!("init scheme {other} is checked by the resolver"),
    }
}

/// `@init(file=…)`: the file, the tensor and the bias it names.
fn init_from_file(ctx: &mut Ctx, layer: &LayerFacts, call: &Call) -> Option<Init> {
    let Some(file) = call.str("file") else {
        if !call.given("file") {
            ctx.problems.push(Problem::MissingParameter {
                span: call.span,
                name: "file".into(),
                owner: "@init(file)".into(),
                example: "@init(file=\"pretrained.safetensors\", tensor=\"conv1.weight\")".into(),
            });
        }
        return None;
    };
    let path = ctx.resolve_path(file, call.span_of("file"))?;
    let tensor = call.str("tensor").map(str::to_string).unwrap_or_else(|| format!("{}.weight", layer.name));
    if call.given("bias") && !layer.bias {
        ctx.problems.push(Problem::NoEffect {
            span: call.span_of("bias"),
            reason: format!("`bias=` of `@init` does nothing: `{}` has no bias", layer.name),
            help: Some("remove `bias=`, or give the layer a bias (`bias=true`)".into()),
        });
    }
    let bias = match call.str("bias") {
        Some(bias) => bias.to_string(),
        None => match tensor.strip_suffix(".weight") {
            Some(stem) => format!("{stem}.bias"),
            None => format!("{}.bias", layer.name),
        },
    };
    init_tensor_fits(ctx, layer, call, file, &path, &tensor)?;
    Some(Init::File { path, tensor, bias_required: call.given("bias"), bias })
}

/// `@init(lowpass|highpass, cutoff=…)`: a designed filter on a conv.
fn designed_init(ctx: &mut Ctx, layer: &LayerFacts, call: &Call, scheme: &str) -> Option<Init> {
    if layer.kind != LayerKind::Conv {
        ctx.problems.push(Problem::NotApplicable {
            span: call.span_of("scheme"),
            layer_span: layer.span,
            annotation: "init".into(),
            layer: layer.name.clone(),
            reason: format!("a designed {} filter is a convolution kernel", if scheme == "lowpass" { "low-pass" } else { "high-pass" }),
            help: Some("use it on a `conv` layer".into()),
        });
        return None;
    }
    let Some(cutoff) = call.f64("cutoff") else {
        if !call.given("cutoff") {
            ctx.problems.push(Problem::MissingParameter {
                span: call.span,
                name: "cutoff".into(),
                owner: format!("@init({scheme})"),
                example: format!("@init({scheme}, cutoff=0.2)"),
            });
        }
        return None;
    };
    if cutoff >= 1.0 {
        ctx.problems.push(Problem::OutOfRange {
            span: call.span_of("cutoff"),
            param: "cutoff".into(),
            owner: "@init".into(),
            value: fmt_num(cutoff),
            allowed: ParamType::Frequency.range().unwrap_or_default(),
            help: Some("cutoffs are fractions of Nyquist, as in scipy.signal.firwin".into()),
        });
        return None;
    }
    let family = if scheme == "lowpass" { Family::Lowpass } else { Family::Highpass };
    if family == Family::Highpass && layer.kernel.as_ref().is_some_and(|k| k.iter().any(|k| k % 2 == 0)) {
        ctx.problems.push(Problem::ImpossibleStructure {
            span: call.span_of("scheme"),
            other: None,
            reason: "a linear-phase filter of even length has zero gain at Nyquist, so it cannot be high-pass".into(),
            help: Some("use an odd kernel size".into()),
        });
        return None;
    }
    Some(Init::Designed { family, cutoff })
}

/// The annotations of one layer against each other: freezing against
/// everything that would act, then the families' structural conflicts.
fn cross_check(
    ctx: &mut Ctx,
    layer: &LayerFacts,
    placed: &[(Constraint, Span)],
    freeze: Option<Span>,
    lr: Option<Span>,
    init: Option<Span>,
) {
    freeze_conflicts(ctx, placed, freeze, lr);
    frozen_by_mode_conflicts(ctx, placed, freeze, lr, init);
    structure_conflicts(ctx, placed);
    passband_conflicts(ctx, placed);
    parity_conflicts(ctx, layer, placed);
}

/// `@freeze` makes every mode but freeze, and `@lr`, pointless.
fn freeze_conflicts(ctx: &mut Ctx, placed: &[(Constraint, Span)], freeze: Option<Span>, lr: Option<Span>) {
    if let Some(freeze) = freeze {
        for (c, span) in placed {
            if c.mode == Mode::Freeze {
                ctx.problems.push(Problem::NoEffect {
                    span: freeze,
                    reason: format!("`@freeze` is redundant: mode=freeze of `@{}` already fixes the weights", c.family.name()),
                    help: Some("remove `@freeze`".into()),
                });
            } else {
                ctx.problems.push(Problem::ConflictingAnnotations {
                    span: *span,
                    other: freeze,
                    reason: format!(
                        "`@freeze` keeps the weights where they start, so mode={} of `@{}` can never act",
                        c.mode,
                        c.family.name()
                    ),
                    help: Some(if c.set.quadratic().is_some() {
                        format!("drop `@freeze`, or use `@{}(…, mode=freeze)` to fix the weights to a designed filter", c.family.name())
                    } else {
                        format!("drop `@freeze` or `@{}`", c.family.name())
                    }),
                });
            }
        }
        if let Some(lr) = lr {
            ctx.problems.push(Problem::NoEffect {
                span: lr,
                reason: "`@lr` has no effect on a frozen layer".into(),
                help: Some("remove `@lr` or `@freeze`".into()),
            });
        }
    }
}

/// mode=freeze fixes the weights to a design: the layer's other constraints,
/// `@init` and `@lr` cannot act.
fn frozen_by_mode_conflicts(ctx: &mut Ctx, placed: &[(Constraint, Span)], freeze: Option<Span>, lr: Option<Span>, init: Option<Span>) {
    let frozen_by_mode = placed.iter().find(|(c, _)| c.mode == Mode::Freeze);
    if let Some((fixed, fixed_span)) = frozen_by_mode {
        for (c, span) in placed {
            if span == fixed_span {
                continue;
            }
            // The designed filter (a Hamming-windowed sinc) is symmetric, and a
            // low-pass or band-stop one has unit gain at DC: those hold already.
            let holds = c.family == Family::Symmetric
                || (c.family == Family::DcGain && c.value() == Some(1.0) && matches!(fixed.family, Family::Lowpass | Family::Bandstop));
            if holds {
                ctx.problems.push(Problem::NoEffect {
                    span: *span,
                    reason: format!(
                        "`@{}` already holds for the designed filter that mode=freeze of `@{}` sets",
                        c.family.name(),
                        fixed.family.name()
                    ),
                    help: Some(format!("remove `@{}`", c.family.name())),
                });
            } else {
                ctx.problems.push(Problem::ConflictingAnnotations {
                    span: *span,
                    other: *fixed_span,
                    reason: format!(
                        "mode=freeze sets the weights to a designed `@{}` filter and never moves them, so `@{}` can never act",
                        fixed.family.name(),
                        c.family.name()
                    ),
                    help: Some("use another mode for one of them (for example mode=project)".into()),
                });
            }
        }
        if let Some(init) = init {
            ctx.problems.push(Problem::ConflictingAnnotations {
                span: init,
                other: *fixed_span,
                reason: format!(
                    "mode=freeze replaces the weights with a designed `@{}` filter, so `@init` would be overwritten",
                    fixed.family.name()
                ),
                help: Some("to start from given weights and keep them, use `@init(…)` with `@freeze`".into()),
            });
        }
        if freeze.is_none()
            && let Some(lr) = lr
        {
            ctx.problems.push(Problem::NoEffect {
                span: lr,
                reason: "`@lr` has no effect on weights fixed by mode=freeze".into(),
                help: Some("remove `@lr`".into()),
            });
        }
    }
}

/// Families that exclude each other: symmetric and antisymmetric, nonneg's
/// softplus or clamp against another hard constraint.
fn structure_conflicts(ctx: &mut Ctx, placed: &[(Constraint, Span)]) {
    let find = |family: Family| placed.iter().find(|(c, _)| c.family == family);
    if let (Some((_, a)), Some((_, b))) = (find(Family::Symmetric), find(Family::Antisymmetric)) {
        ctx.problems.push(Problem::ConflictingAnnotations {
            span: *b,
            other: *a,
            reason: "only the zero kernel is both symmetric and antisymmetric".into(),
            help: Some("keep one of them".into()),
        });
    }

    // Softplus (nonneg's reparametrization) cannot share the weight with another hard constraint.
    if let Some((_, nonneg)) = placed.iter().find(|(c, _)| c.family == Family::Nonneg && c.mode == Mode::Reparam) {
        for (c, span) in placed {
            if span != nonneg && c.mode.keeps_weight_in_set() {
                ctx.problems.push(Problem::ConflictingAnnotations {
                    span: *span,
                    other: *nonneg,
                    reason: format!("`@nonneg(mode=reparam)` makes the weight softplus(θ), which `@{}` with mode={} would have to reparametrize or project as well", c.family.name(), c.mode),
                    help: Some("use mode=project for `@nonneg`, or a penalty for one of them".into()),
                });
            }
        }
    }
    if let Some((_, nonneg)) = placed.iter().find(|(c, _)| c.family == Family::Nonneg && c.mode == Mode::Project) {
        for (c, span) in placed {
            if c.mode == Mode::Reparam && c.family != Family::Nonneg {
                ctx.problems.push(Problem::ConflictingAnnotations {
                    span: *nonneg,
                    other: *span,
                    reason: format!(
                        "clamping negative weights to 0 takes the kernel out of the subspace that `@{}(mode=reparam)` keeps it in",
                        c.family.name()
                    ),
                    help: Some(format!("use mode=project for `@{}` too, so both are projections", c.family.name())),
                });
            }
        }
    }
}

/// Passbands must share some frequency.
fn passband_conflicts(ctx: &mut Ctx, placed: &[(Constraint, Span)]) {
    let bands: Vec<(&Constraint, Span)> = placed.iter().filter(|(c, _)| c.band().is_some()).map(|(c, s)| (c, *s)).collect();
    for (i, (a, span_a)) in bands.iter().enumerate() {
        for (b, span_b) in &bands[..i] {
            let (pa, pb) = (a.band().expect("filtered on band").passband(), b.band().expect("filtered on band").passband());
            let meet = pa.iter().any(|&(x0, x1)| pb.iter().any(|&(y0, y1)| x0.max(y0) < x1.min(y1)));
            if !meet {
                ctx.problems.push(Problem::DisjointPassbands {
                    span: *span_a,
                    other: *span_b,
                    first: passband_words(a),
                    second: passband_words(b),
                });
            }
        }
    }
}

/// What symmetry forces on H(0) and H(1), and a DC gain against a band
/// that stops DC.
fn parity_conflicts(ctx: &mut Ctx, layer: &LayerFacts, placed: &[(Constraint, Span)]) {
    let find = |family: Family| placed.iter().find(|(c, _)| c.family == family);
    let bands: Vec<(&Constraint, Span)> = placed.iter().filter(|(c, _)| c.band().is_some()).map(|(c, s)| (c, *s)).collect();
    let kernel = layer.kernel.clone().unwrap_or_default();
    let even = kernel.iter().any(|k| k % 2 == 0);
    let odd = !kernel.is_empty() && kernel.iter().all(|k| k % 2 == 1);
    for (c, span) in placed {
        if let Some((_, sym)) = find(Family::Symmetric)
            && c.family == Family::Highpass
            && even
        {
            ctx.problems.push(Problem::ImpossibleStructure {
                span: *span,
                other: Some(*sym),
                reason: format!(
                    "a symmetric kernel of even length ({}) has zero gain at Nyquist, so it cannot be high-pass",
                    describe_taps(&kernel)
                ),
                help: Some("use an odd kernel size, or `@antisymmetric` with an even one".into()),
            });
        }
        if let Some((_, anti)) = find(Family::Antisymmetric) {
            if c.family == Family::Lowpass {
                ctx.problems.push(Problem::ImpossibleStructure {
                    span: *span,
                    other: Some(*anti),
                    reason: "an antisymmetric kernel sums to zero (zero gain at DC), so it cannot be low-pass".into(),
                    help: Some("use `@symmetric` for a linear-phase low-pass".into()),
                });
            }
            if c.family == Family::Highpass && odd {
                ctx.problems.push(Problem::ImpossibleStructure {
                    span: *span,
                    other: Some(*anti),
                    reason: format!(
                        "an antisymmetric kernel of odd length ({}) has zero gain at Nyquist, so it cannot be high-pass",
                        describe_taps(&kernel)
                    ),
                    help: Some("use an even kernel size with `@antisymmetric`, or `@symmetric` with an odd one".into()),
                });
            }
            if c.family == Family::DcGain && c.value().is_some_and(|g| g != 0.0) {
                ctx.problems.push(Problem::ImpossibleStructure {
                    span: *span,
                    other: Some(*anti),
                    reason: format!("an antisymmetric kernel sums to zero, so its DC gain cannot be {}", fmt_num(c.value().unwrap())),
                    help: None,
                });
            }
        }
        if c.family == Family::DcGain && c.value().is_some_and(|g| g != 0.0) {
            for (b, bspan) in &bands {
                // DC is in the stopband of a high-pass, and of a band-pass unless
                // its lower edge is clamped at 0 (W0062).
                let dc_stopped = b.edges().iter().any(|e| e.stopband.first().is_some_and(|&(from, _)| from <= 0.0));
                if matches!(b.family, Family::Highpass | Family::Bandpass) && dc_stopped {
                    ctx.problems.push(Problem::ImpossibleStructure {
                        span: *span,
                        other: Some(*bspan),
                        reason: format!(
                            "`@{}` puts DC in its stopband, where `@dc_gain` asks for a gain of {}",
                            b.family.name(),
                            fmt_num(c.value().unwrap())
                        ),
                        help: Some("drop `@dc_gain`, or use `@dc_gain(0)`".into()),
                    });
                }
            }
        }
    }
}

fn passband_words(c: &Constraint) -> String {
    let band = c.band().expect("band constraints carry a band");
    let pieces: Vec<String> = band.passband().iter().map(|(a, b)| format!("[{}, {}]", fmt_num(*a), fmt_num(*b))).collect();
    format!("`@{}` passes {}", c.family.name(), pieces.join(" ∪ "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::language::diagnostic::Problem;
    use crate::language::schema::{ANNOTATIONS, AnnotationRole, LayerKind, Mode};

    /// Every constraint family of the schema in every mode: the modes it
    /// declares check without error on a layer it applies to, and the
    /// others are refused as unsupported (E0027). Derived from the schema,
    /// so a new family or mode is covered without editing the test.
    #[test]
    fn every_family_checks_in_the_modes_it_declares_and_only_those() {
        let mut families = 0;
        for def in ANNOTATIONS {
            let (modes, layers) = match def.role {
                AnnotationRole::Constraint { modes, layers, .. } => (modes, layers),
                AnnotationRole::Freeze | AnnotationRole::LearningRate | AnnotationRole::Init => continue,
            };
            families += 1;
            let args = def.schema.example.split_once('(').map(|(_, rest)| rest.trim_end_matches(')')).unwrap_or("");
            let sep = if args.is_empty() { "" } else { ", " };
            let on_conv = layers.contains(&LayerKind::Conv);
            for mode in Mode::ALL {
                let annotation = format!("@{}({args}{sep}mode={mode})", def.schema.name);
                let (body, data) = if on_conv {
                    (format!("conv(out=3, k=31) {annotation}\n tanh\n conv(out=1, k=5)"), "sines(n=8)")
                } else {
                    (
                        format!("conv(out=4, k=5)\n relu\n global_avgpool\n linear(out=6) {annotation}\n relu\n linear(out=3)"),
                        "waveforms(classes=3, n=8)",
                    )
                };
                let source = format!("model m {{\n input [1, 64]\n {body}\n}}\ndata {data}\ntrain {{ epochs = 1 }}\n");
                let (_, checked) = crate::check_source(&source, Path::new("."));
                let errors: Vec<&Problem> = checked.problems.iter().filter(|p| p.is_error()).collect();
                if modes.contains(&mode) {
                    assert!(errors.is_empty(), "{source}{errors:#?}");
                } else {
                    assert!(
                        errors.iter().any(|p| matches!(p, Problem::UnsupportedMode { .. })) && errors.len() == 1,
                        "{source}{errors:#?}"
                    );
                }
            }
        }
        assert!(families >= 12, "{families} constraint families");
    }
}
