//! The words of every problem: one function per `Problem` variant, taking
//! its fields as matched, returning its code, message, labels and help.
//! `Problem::to_diagnostic` dispatches here, one arm per variant.

// The functions take each variant's fields as the match binds them (`&String`,
// `&Vec<…>`), as many as the variant has, so the dispatch stays one plain
// line per variant.
#![allow(clippy::ptr_arg, clippy::too_many_arguments)]

use super::*;

/// Code, message, labels (primary first) and help.
pub(super) type Wording = (&'static str, String, Vec<Label>, Option<String>);

pub(super) fn syntax(span: &Span, message: &String, text: &String, help: &Option<String>) -> Wording {
    ("E0001", message.clone(), vec![label(*span, text)], help.clone())
}

pub(super) fn unknown_section(span: &Span, name: &String, known: &Vec<&'static str>) -> Wording {
    ("E0002", format!("unknown section `{name}`"), vec![label(*span, "not a section")], did_you_mean(name, known, "sections"))
}

pub(super) fn duplicate_section(span: &Span, first: &Span, name: &String) -> Wording {
    (
        "E0003",
        format!("section `{name}` is given twice"),
        vec![label(*span, "second one here"), label(*first, "first one here")],
        Some("merge the two into one section".into()),
    )
}

pub(super) fn missing_model(span: &Span) -> Wording {
    (
        "E0004",
        "this file has no `model` section".into(),
        vec![label(*span, "expected `model NAME { … }` in this file")],
        Some("start with:\n  model my_model {\n    input [1, 256]\n    conv(out=8, k=9)\n  }".into()),
    )
}

pub(super) fn malformed_section(span: &Span, section: &String, expected: &String) -> Wording {
    (
        "E0005",
        format!("section `{section}` is not written the way it must be"),
        vec![label(*span, "here")],
        Some(format!("write it as {expected}")),
    )
}

pub(super) fn missing_input(span: &Span, model: &Option<String>) -> Wording {
    (
        "E0006",
        match model {
            Some(model) => format!("model `{model}` does not say the shape of its input"),
            None => "this model does not say the shape of its input".into(),
        },
        vec![label(*span, "no `input [ … ]` line in this model")],
        Some("add the input shape, without the batch axis, as the model's first line: `input [channels, length]` for signals, `input [channels, height, width]` for images, `input [features]` for vectors".into()),
    )
}

pub(super) fn bad_input(span: &Span, first: &Option<Span>, reason: &String, help: &Option<String>) -> Wording {
    let mut labels = vec![label(*span, "here")];
    if let Some(first) = first {
        labels.push(label(*first, "first given here"));
    }
    ("E0007", format!("invalid input shape: {reason}"), labels, help.clone())
}

pub(super) fn misplaced_statement(span: &Span, what: &String, section: &String, help: &String) -> Wording {
    ("E0008", format!("{what} does not belong in a `{section}` section"), vec![label(*span, "not allowed here")], Some(help.clone()))
}

pub(super) fn unknown_layer(span: &Span, name: &String, known: &Vec<&'static str>) -> Wording {
    ("E0010", format!("unknown layer `{name}`"), vec![label(*span, "not a layer")], did_you_mean(name, known, "layers"))
}

pub(super) fn unknown_parameter(span: &Span, name: &String, owner: &String, known: &Vec<&'static str>) -> Wording {
    (
        "E0011",
        format!("`{owner}` has no parameter `{name}`"),
        vec![label(*span, "unknown parameter")],
        if known.is_empty() { Some(format!("`{owner}` takes no parameters")) } else { did_you_mean(name, known, "parameters") },
    )
}

pub(super) fn missing_parameter(span: &Span, name: &String, owner: &String, example: &String) -> Wording {
    (
        "E0012",
        format!("`{owner}` needs the parameter `{name}`"),
        vec![label(*span, format!("`{name}` missing"))],
        Some(format!("for example: {example}")),
    )
}

pub(super) fn wrong_type(span: &Span, param: &String, owner: &String, expected: &String, found: &String) -> Wording {
    ("E0013", format!("`{param}` of `{owner}` must be {expected}, found {found}"), vec![label(*span, format!("expected {expected}"))], None)
}

pub(super) fn duplicate_parameter(span: &Span, first: &Span, name: &String) -> Wording {
    (
        "E0014",
        format!("`{name}` is given twice"),
        vec![label(*span, "given again here"), label(*first, "first given here")],
        Some("keep one of them".into()),
    )
}

pub(super) fn out_of_range(
    span: &Span,
    param: &String,
    owner: &String,
    value: &String,
    allowed: &String,
    help: &Option<String>,
) -> Wording {
    (
        "E0015",
        format!("`{param}={value}` is out of range for `{owner}`: it must be {allowed}"),
        vec![label(*span, format!("must be {allowed}"))],
        help.clone(),
    )
}

pub(super) fn misplaced_argument(span: &Span, reason: &String, help: &Option<String>) -> Wording {
    ("E0016", reason.clone(), vec![label(*span, "here")], help.clone())
}

pub(super) fn bad_structure(span: &Span, reason: &String, help: &Option<String>) -> Wording {
    ("E0017", reason.clone(), vec![label(*span, "here")], help.clone())
}

pub(super) fn unknown_choice(span: &Span, what: &String, name: &String, known: &Vec<&'static str>) -> Wording {
    (
        "E0018",
        format!("unknown {what} `{name}`"),
        vec![label(*span, format!("not a known {what}"))],
        Some(format!(
            "{}{}",
            stray_note(name),
            match ascii_name(name, known).or_else(|| crate::language::suggest::closest(name, known)) {
                Some(best) => format!("did you mean `{best}`? (known: {})", known.join(", ")),
                None => format!("known: {}", known.join(", ")),
            }
        )),
    )
}

pub(super) fn invalid_band(span: &Span, other: &Span, constraint: &String, low: &f64, high: &f64) -> Wording {
    (
        "E0019",
        format!("`@{constraint}` needs low < high, but low={} and high={}", fmt_num(*low), fmt_num(*high)),
        vec![label(*span, "low edge"), label(*other, "high edge")],
        Some("swap them, or give two different edges".into()),
    )
}

pub(super) fn unknown_annotation(span: &Span, name: &String, known: &Vec<&'static str>) -> Wording {
    ("E0020", format!("unknown annotation `@{name}`"), vec![label(*span, "not an annotation")], did_you_mean(name, known, "annotations"))
}

pub(super) fn unsupported_mode(span: &Span, constraint: &String, mode: &String, supported: &Vec<&'static str>) -> Wording {
    (
        "E0021",
        format!("`@{constraint}` cannot be enforced with mode={mode}"),
        vec![label(*span, "unsupported mode")],
        Some(format!("`@{constraint}` supports mode={}", supported.join(" | "))),
    )
}

pub(super) fn unused_parameter(span: &Span, param: &String, constraint: &String, mode: &String, used_in: &Vec<&'static str>) -> Wording {
    (
        "W0022",
        format!("`{param}` does nothing in mode={mode} of `@{constraint}`"),
        vec![label(*span, "ignored")],
        Some(format!("`{param}` is used by mode={}; remove it or change the mode", used_in.join(" | "))),
    )
}

pub(super) fn weightless_layer(span: &Span, layer_span: &Span, annotation: &String, layer: &String, constraint: &bool) -> Wording {
    (
        "E0023",
        format!("`@{annotation}` on `{layer}`, which has no weights"),
        vec![label(*span, "needs a layer with weights"), label(*layer_span, format!("`{layer}` has no weights"))],
        Some(if *constraint {
            "put it on a `conv` or `linear` layer".into()
        } else {
            "put it on a layer with weights: `conv`, `linear` or `batchnorm`".into()
        }),
    )
}

pub(super) fn not_applicable(
    span: &Span,
    layer_span: &Span,
    annotation: &String,
    layer: &String,
    reason: &String,
    help: &Option<String>,
) -> Wording {
    (
        "E0024",
        format!("`@{annotation}` cannot be applied to `{layer}`: {reason}"),
        vec![label(*span, "not applicable"), label(*layer_span, "this layer")],
        help.clone(),
    )
}

pub(super) fn duplicate_annotation(span: &Span, first: &Span, name: &String) -> Wording {
    (
        "E0025",
        format!("`@{name}` is given twice on one layer"),
        vec![label(*span, "again here"), label(*first, "first here")],
        Some("keep one of them".into()),
    )
}

pub(super) fn conflicting_annotations(span: &Span, other: &Span, reason: &String, help: &Option<String>) -> Wording {
    (
        "E0026",
        format!("conflicting annotations: {reason}"),
        vec![label(*span, "this one"), label(*other, "conflicts with this one")],
        help.clone(),
    )
}

pub(super) fn disjoint_passbands(span: &Span, other: &Span, first: &String, second: &String) -> Wording {
    (
        "E0027",
        format!("the passbands of these constraints do not meet: {first} and {second}"),
        vec![label(*span, first.clone()), label(*other, second.clone())],
        Some("together they would reject every frequency; keep one, or move the cutoffs so the passbands overlap (a band-pass is `@bandpass(low, high)`)".into()),
    )
}

pub(super) fn infeasible_band(
    span: &Span,
    constraint: &String,
    taps: &String,
    ratio: &RatioWords,
    bound: &f64,
    tol: &f64,
    min_taps: &Option<usize>,
) -> Wording {
    let (region, relax) = (&ratio.region, ratio.relax);
    (
        "E0028",
        format!(
            "`@{constraint}` cannot be met: a kernel of {taps} keeps at least {} of its energy in {region}, more than tol={}",
            fmt_num(*bound),
            fmt_num(*tol)
        ),
        vec![label(*span, format!("smallest reachable {} is {} (λ_min of {})", ratio.measure, fmt_num(*bound), ratio.operator))],
        Some(match min_taps {
            Some(n) => {
                format!("use a longer kernel (k={n} reaches tol={}), {relax}, or raise tol above {}", fmt_num(*tol), fmt_num(*bound))
            }
            None => format!("{relax}, or raise tol above {}", fmt_num(*bound)),
        }),
    )
}

pub(super) fn impossible_structure(span: &Span, other: &Option<Span>, reason: &String, help: &Option<String>) -> Wording {
    let mut labels = vec![label(*span, "cannot be")];
    if let Some(other) = other {
        labels.push(label(*other, "because of this"));
    }
    ("E0029", reason.clone(), labels, help.clone())
}

pub(super) fn empty_stopband(span: &Span, constraint: &String, reason: &String) -> Wording {
    (
        "E0030",
        format!("`@{constraint}` has an empty stopband: {reason}"),
        vec![label(*span, "constrains nothing")],
        Some("give a narrower `transition=`, move the band edges so that a stopband remains, or use a longer kernel".into()),
    )
}

pub(super) fn zero_penalty_weight(span: &Span, constraint: &String) -> Wording {
    (
        "W0031",
        format!("`@{constraint}` has a penalty weight of 0, so it has no effect on training"),
        vec![label(*span, "weight=0")],
        Some("give a positive weight, or use mode=project for a hard guarantee".into()),
    )
}

pub(super) fn penalty_floor(span: &Span, constraint: &String, taps: &String, ratio: &RatioWords, bound: &f64) -> Wording {
    (
        "W0032",
        format!(
            "`@{constraint}`: no kernel of {taps} can have less than {} of its energy in {}, so the penalty can never vanish",
            fmt_num(*bound),
            ratio.region
        ),
        vec![label(*span, format!("ρ ≥ {} for every kernel", fmt_num(*bound)))],
        Some(format!("use a longer kernel, or {}", ratio.relax)),
    )
}

pub(super) fn no_effect(span: &Span, reason: &String, help: &Option<String>) -> Wording {
    ("W0033", reason.clone(), vec![label(*span, "no effect")], help.clone())
}

pub(super) fn design_misses_tol(span: &Span, constraint: &String, taps: &String, ratio: &RatioWords, rho: &f64, tol: &f64) -> Wording {
    (
        "W0034",
        format!(
            "mode=freeze fixes `@{constraint}` to a designed filter of {taps} whose {} ratio is {}, above tol={}",
            ratio.measure,
            fmt_num(*rho),
            fmt_num(*tol)
        ),
        vec![label(*span, format!("designed filter has ρ = {}", fmt_num(*rho)))],
        Some(format!("{}; use more taps, {}, or mode=project to learn a kernel that meets tol", ratio.design, ratio.relax)),
    )
}

pub(super) fn passband_swallowed(
    span: &Span,
    constraint: &String,
    transition: &String,
    passband: &String,
    stopband: &String,
    help: &String,
) -> Wording {
    (
        "W0061",
        format!(
            "the transition of `@{constraint}` swallows its passband: with a transition of {transition}, no frequency of the passband {passband} is clear of it; the constraint suppresses only {stopband}"
        ),
        vec![label(*span, "passband inside the transition")],
        Some(help.clone()),
    )
}

pub(super) fn band_edge_clamped(span: &Span, constraint: &String, reason: &String, help: &String) -> Wording {
    ("W0062", format!("`@{constraint}`: {reason}"), vec![label(*span, "stopband edge clamped")], Some(help.clone()))
}

pub(super) fn small_subspace(
    span: &Span,
    constraint: &String,
    mode: &String,
    taps: &String,
    dimension: &usize,
    size: &usize,
    tol: &f64,
    help: &String,
) -> Wording {
    (
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
    )
}

pub(super) fn infeasible_set(spans: &Vec<Span>, names: &Vec<String>, empty: &bool, reason: &String) -> Wording {
    (
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
    )
}

pub(super) fn phase_redefines(
    span: &Span,
    declared_span: &Span,
    constraint: &String,
    layer: &String,
    param: &String,
    declared: &String,
    phase: &String,
) -> Wording {
    (
        "E0060",
        format!("a phase cannot change `{param}` of `@{constraint}` on `{layer}`: the model declares {declared}, this phase {phase}"),
        vec![label(*span, format!("{param}={phase} here")), label(*declared_span, format!("declared with {param}={declared}"))],
        Some(match param.as_str() {
            "tol" => "mode=reparam trains coordinates in a subspace built once from the model's tol; change tol on the layer, or use mode=project in both".into(),
            "value" | "max" | "order" => format!("a phase may change mode, weight and tol; declare the {param} you want on the layer"),
            _ => "a phase may change mode, weight and tol; declare the band you want on the layer".into(),
        }),
    )
}

pub(super) fn kernel_too_long(span: &Span, layer: &String, window: &String, input: &String, help: &String) -> Wording {
    (
        "E0040",
        format!("`{layer}` spans {window}, longer than its input {input}"),
        vec![label(*span, format!("input is {input}"))],
        Some(help.clone()),
    )
}

pub(super) fn residual_mismatch(span: &Span, layer: &String, input: &Shape, output: &Shape) -> Wording {
    (
        "E0041",
        format!("the body of `{layer}` maps {input} to {output}, so it cannot be added to its input"),
        vec![label(*span, format!("{input} → {output}"))],
        Some("a residual body must keep the shape: keep the channel count and use `padding=same` with stride 1".into()),
    )
}

pub(super) fn bad_rank(span: &Span, layer: &String, found: &Shape, expected: &String, help: &Option<String>) -> Wording {
    (
        "E0042",
        format!("`{layer}` needs {expected}, but its input is {found}"),
        vec![label(*span, format!("input here is {found}"))],
        help.clone(),
    )
}

pub(super) fn bad_groups(span: &Span, layer: &String, groups: &usize, in_channels: &usize, out_channels: &usize) -> Wording {
    (
        "E0043",
        format!("`{layer}` has groups={groups}, which must divide both its {in_channels} input and {out_channels} output channels"),
        vec![label(*span, format!("{in_channels} in, {out_channels} out"))],
        Some("choose groups among the common divisors of the two channel counts".into()),
    )
}

pub(super) fn two_d_option(span: &Span, param: &String, layer: &String) -> Wording {
    (
        "E0045",
        format!("`{param}` of `{layer}` is a pair, but the layer is 1-D"),
        vec![label(*span, "one value per axis of a 2-D layer")],
        Some(format!("a 1-D layer takes a single `{param}`; a layer is 2-D when its input is `[channels, height, width]`")),
    )
}

pub(super) fn model_too_large(
    span: &Span,
    data_span: &Option<Span>,
    parameters: &usize,
    needed: &u64,
    data: &u64,
    available: &u64,
    batch: &usize,
    streamed: &bool,
) -> Wording {
    let mut labels = vec![label(*span, format!("weights and activations: about {}", bytes(needed - data)))];
    if let Some(data_span) = data_span.filter(|_| *data > 0) {
        let streams = if *streamed { " (its inputs stream from the file: a buffer is counted, not the file)" } else { "" };
        labels.push(label(data_span, format!("{} of data in memory{streams}", bytes(*data))));
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

pub(super) fn output_mismatch(
    span: &Span,
    model_span: &Span,
    output: &Shape,
    expected: &String,
    why: &String,
    help: &Option<String>,
) -> Wording {
    (
        "E0044",
        format!("the model's output is {output}, but {why} needs {expected}"),
        vec![label(*span, format!("needs {expected}")), label(*model_span, format!("model output is {output}"))],
        help.clone(),
    )
}

pub(super) fn file_not_found(span: &Span, path: &String, resolved: &String) -> Wording {
    (
        "E0050",
        format!("file `{path}` does not exist"),
        vec![label(*span, format!("looked for {resolved}"))],
        Some("relative paths are taken from the folder of the .lpn file".into()),
    )
}

pub(super) fn bad_data_file(span: &Span, path: &String, line: &Option<usize>, column: &Option<usize>, reason: &String) -> Wording {
    (
        "E0051",
        match (line, column) {
            (Some(line), Some(column)) => format!("{path}:{line}:{column}: {reason}"),
            (Some(line), None) => format!("{path}:{line}: {reason}"),
            (None, _) => format!("{path}: {reason}"),
        },
        vec![label(*span, "in this file")],
        None,
    )
}

pub(super) fn media_folder(span: &Span, path: &String, reason: &String, help: &String) -> Wording {
    ("E0150", format!("{path}: {reason}"), vec![label(*span, "this folder")], Some(help.clone()))
}

pub(super) fn mixed_media(span: &Span, reason: &String) -> Wording {
    (
        "E0151",
        reason.clone(),
        vec![label(*span, "in this source")],
        Some("convert the files to one sample rate and channel count, e.g. `sox in.wav -r 16000 -c 1 out.wav`".into()),
    )
}

pub(super) fn sample_rate_mismatch(span: &Span, data_span: &Span, layer: &String, fs: &f64, rate: &f64, decimation: &usize) -> Wording {
    let sees = if *decimation == 1 {
        format!("the data's {} Hz", fmt_num(*rate))
    } else {
        format!(
            "{} Hz (the data's {} Hz, after strides and pooling that keep 1 sample in {decimation})",
            fmt_num(*rate / *decimation as f64),
            fmt_num(*rate)
        )
    };
    (
        "E0152",
        format!("`fs={}` on `{layer}`, but the layer sees {sees}", fmt_num(*fs)),
        vec![label(*span, format!("fs={}", fmt_num(*fs))), label(*data_span, format!("sampled at {} Hz", fmt_num(*rate)))],
        Some(format!(
            "the constraint's frequencies in Hz are taken at fs={}: use `fs={}`, or resample the files",
            fmt_num(*fs),
            fmt_num(*rate / *decimation as f64)
        )),
    )
}

pub(super) fn data_shape_mismatch(span: &Span, input_span: &Span, data: &String, input: &Shape, help: &Option<String>) -> Wording {
    (
        "E0052",
        format!("the data gives {data}, but the model's input is {input}"),
        vec![label(*span, data.clone()), label(*input_span, format!("input {input}"))],
        help.clone(),
    )
}

pub(super) fn missing_train_data(span: &Span, no_section: &bool) -> Wording {
    (
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
    )
}

pub(super) fn task_mismatch(span: &Span, reason: &String, help: &Option<String>) -> Wording {
    ("E0054", reason.clone(), vec![label(*span, "here")], help.clone())
}

pub(super) fn splits_too_large(span: &Span, val_split: &f64, test_split: &f64) -> Wording {
    (
        "E0130",
        format!(
            "`val_split = {val_split}` and `test_split = {test_split}` together hold out {}% of the training data, leaving none to train on",
            (val_split + test_split) * 100.0
        ),
        vec![label(*span, "here")],
        Some("the two shares must add up to less than 1, such as `val_split = 0.2` and `test_split = 0.2`".into()),
    )
}

pub(super) fn normalize_denoising(span: &Span) -> Wording {
    (
        "E0131",
        "`normalize` rescales the inputs of classification data, but this data is for denoising".into(),
        vec![label(*span, "here")],
        Some("a denoiser's targets are in its inputs' units: remove `normalize`, or scale the recording itself".into()),
    )
}

pub(super) fn cannot_stream(span: &Span, source_span: &Span, reason: &String) -> Wording {
    (
        "E0140",
        format!("`stream = always` asks to read the training inputs a batch at a time, but {reason}"),
        vec![label(*span, "here"), label(*source_span, "this source")],
        Some("save the inputs as an uncompressed `.npy` file (`np.save`) and use `npy(...)`, or remove `stream`".into()),
    )
}

pub(super) fn unpaired_rows(x_span: &Span, y_span: &Span, x_rows: &usize, y_rows: &usize, first: &String) -> Wording {
    let rows = |n: &usize| if *n == 1 { "1 row".to_string() } else { format!("{n} rows") };
    (
        "E0145",
        format!(
            "the inputs `x` have {} but the targets `y` have {}: row i of `x` is the input whose target is row i of `y`",
            rows(x_rows),
            rows(y_rows)
        ),
        vec![label(*x_span, format!("{} here", rows(x_rows))), label(*y_span, format!("{} here", rows(y_rows)))],
        Some(format!("the first row without a partner is at {first}; give both files one row per example, in the same order")),
    )
}

pub(super) fn target_shape_mismatch(span: &Span, model_span: &Span, target: &[usize], output: &Shape, help: &String) -> Wording {
    let values: usize = target.iter().product();
    let target_text = if target.len() <= 1 { format!("{values} values") } else { format!("shape {}", Shape(target.to_vec())) };
    (
        "E0146",
        format!("each regression target has {target_text}, but the model's output is {output} ({} values)", output.numel()),
        vec![label(*span, format!("targets of {target_text}")), label(*model_span, format!("model output is {output}"))],
        Some(help.clone()),
    )
}

pub(super) fn class_too_small_for_split(span: &Span, label_text: &String, count: &usize, missing: &String) -> Wording {
    let examples = if *count == 1 { "1 example".to_string() } else { format!("{count} examples") };
    (
        "W0130",
        format!("the class `{label_text}` has {examples}, too few to have one in the {missing} part"),
        vec![label(*span, "split here")],
        Some("its figures there will say nothing of it: add examples of it, or raise the share of that part".into()),
    )
}

pub(super) fn no_validation_data(span: &Span, setting: &String, data_span: &Span) -> Wording {
    (
        "E0080",
        format!("`{setting}` watches a validation figure, but this file has no validation data"),
        vec![label(*span, "needs validation data"), label(*data_span, "no `val = …`, and `val_split = 0`")],
        Some("give `val = SOURCE` or a `val_split` above 0 in the data section, or remove the setting".into()),
    )
}

pub(super) fn monitor_without_accuracy(span: &Span) -> Wording {
    (
        "E0081",
        "`monitor = val_accuracy` needs a classification task; this data is for denoising, which has no accuracy".into(),
        vec![label(*span, "no accuracy to watch")],
        Some("use `monitor = val_loss`".into()),
    )
}

pub(super) fn schedule_never_ends(span: &Span, before_span: &Span, before: &String, after: &String) -> Wording {
    (
        "E0120",
        format!("`{after}` follows `{before}`, which never ends, so it would never run"),
        vec![label(*span, "never reached"), label(*before_span, format!("`{before}` lasts to the end of its scope"))],
        Some(format!("only `warmup(steps=…)` ends and hands over: write `warmup(steps=…) then {before}(…)`, or keep one of them")),
    )
}

pub(super) fn schedule_never_steps(span: &Span, every: &usize, epochs: &usize, scope: &String) -> Wording {
    (
        "W0120",
        format!("`step(every={every})` never decays: {scope} has {epochs} epoch(s), and the first decay comes after {every}"),
        vec![label(*span, format!("{scope} ends first"))],
        Some(format!("use `every` below {epochs}, or no schedule")),
    )
}

pub(super) fn bad_override(span: &Span, reason: &String, help: &Option<String>) -> Wording {
    ("E0121", reason.clone(), vec![label(*span, "cannot be set")], help.clone())
}

pub(super) fn stray_character(span: &Span, character: &char, spelling: &Option<String>) -> Wording {
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
        vec![label(
            *span,
            match looks(*character) {
                Looks::Invisible => format!("invisible {code_point} here"),
                Looks::Space | Looks::Like(_) | Looks::Other => format!("{code_point}, not ASCII"),
            },
        )],
        Some(help),
    )
}

pub(super) fn number_overflow(span: &Span, text: &String) -> Wording {
    (
        "E0071",
        format!("the number `{text}` overflows a 64-bit float"),
        vec![label(*span, "beyond ±1.8e308")],
        Some("no number can be larger in magnitude than about 1.8e308: check the exponent".into()),
    )
}

pub(super) fn not_safetensors(span: &Span, path: &String, reason: &String) -> Wording {
    (
        "E0072",
        format!("`{path}` is not a safetensors file: {reason}"),
        vec![label(*span, "not safetensors")],
        Some("`@init(file=…)` reads the safetensors files `lpnc train` writes (model.safetensors) or PyTorch's `safetensors.torch.save_file`".into()),
    )
}

pub(super) fn init_tensor_missing(span: &Span, path: &String, tensor: &String, known: &Vec<String>) -> Wording {
    (
        "E0073",
        format!("`{path}` has no tensor `{tensor}`"),
        vec![label(*span, format!("no `{tensor}` in the file"))],
        Some(match crate::language::suggest::closest(tensor, &known.iter().map(String::as_str).collect::<Vec<_>>()) {
            Some(best) => format!("did you mean `tensor=\"{best}\"`? (the file has: {})", known.join(", ")),
            None if known.is_empty() => "the file holds no tensor".into(),
            None => format!("the file has: {}", known.join(", ")),
        }),
    )
}

pub(super) fn init_tensor_shape(
    span: &Span,
    layer_span: &Span,
    tensor: &String,
    layer: &String,
    found: &Vec<usize>,
    expected: &Vec<usize>,
) -> Wording {
    (
        "E0074",
        format!("tensor `{tensor}` has shape {found:?}, but `{layer}`'s weight is {expected:?}"),
        vec![label(*span, format!("shape {found:?}")), label(*layer_span, format!("weight {expected:?}"))],
        Some("give the tensor of the layer it was trained for (`tensor=\"…\"`), or change the layer to its shape".into()),
    )
}

pub(super) fn init_tensor_dtype(span: &Span, tensor: &String, dtype: &String) -> Wording {
    (
        "E0075",
        format!("tensor `{tensor}` holds {dtype} values, not floating-point ones"),
        vec![label(*span, format!("dtype {dtype}"))],
        Some(format!("weights are read from {} tensors", crate::language::check::init_file::FLOAT_DTYPES.join(", "))),
    )
}
