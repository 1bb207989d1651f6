//! The `data` and `train` sections, and whether data, model and loss fit
//! together.
//!
//! Data files are probed here, by the same readers that load them for
//! training (`crate::data`), so bad data is reported by `lpnc check` and
//! before the first training step, at `file:line:column` where that applies:
//! a missing, unreadable or empty file, a folder, text that is not UTF-8 or
//! not comma-separated, ragged rows, a value that is not a finite number,
//! labels that are empty or numbers but not whole ones, a single class, rows or recordings that do
//! not fit the model's input, and classes without training examples.
//!
//! A class without training examples is an error, not a warning: the model
//! could never learn it. That is a label of the validation or test file that
//! the training file lacks, or a label whose every example `val_split` moves
//! to the validation set. A `ucr` file's classes are its distinct labels (in
//! sorted order), so a model output with more logits than that (labels `0, 1,
//! 3` for a 4-logit model) is E0044, whose help names the missing label.

use std::path::{Path, PathBuf};

use crate::language::ast::{self, Arg, Span, Stmt};
use crate::language::check::Ctx;
use crate::language::check::environment::{EntryKind, Environment};
use crate::language::check::params::{self, Call};
use crate::language::diagnostic::Problem;
use crate::language::ir::{DataSpec, Keep, Loss, Model, Monitor, Normalize, Optimizer, Source, Stream, TrainSpec};
use crate::language::schema::{DATA_SECTION, TRAIN_SECTION, Task};
use crate::language::shape::Shape;

/// A section's `key = value` lines as arguments, so the one resolver checks them.
fn settings_as_args(ctx: &mut Ctx, block: &ast::Block, section: &str) -> Vec<Arg> {
    let mut args = Vec::new();
    for stmt in &block.stmts {
        match stmt {
            Stmt::Setting(s) => args.push(Arg { key: Some(s.key.clone()), value: s.value.clone(), span: s.span }),
            Stmt::Layer(layer) => ctx.problems.push(Problem::MisplacedStatement {
                span: layer.span,
                what: format!("`{}`", layer.name.name),
                section: section.into(),
                help: if section == "data" {
                    format!("settings are written `name = value`, for example `train = {}(…)`", layer.name.name)
                } else {
                    "settings are written `name = value`, for example `epochs = 20`; layers go in the model".into()
                },
            }),
            Stmt::Error { .. } => {}
            // Phases are read by `check_phases`.
            Stmt::Named(_) if section == "train" => {}
            Stmt::Named(n) => ctx.problems.push(Problem::MisplacedStatement {
                span: n.span,
                what: format!("a `{}` block", n.kind.name),
                section: section.into(),
                help: "`phase NAME { … }` blocks go in the train section".into(),
            }),
            Stmt::Input { span, .. } => ctx.problems.push(Problem::MisplacedStatement {
                span: *span,
                what: "the input shape".into(),
                section: section.into(),
                help: "the input shape goes at the top of the model section".into(),
            }),
        }
    }
    args
}

/// What a data source holds, as far as the checker can tell without tensors.
pub struct SourceFacts {
    pub source: Source,
    pub task: Task,
    /// Number of classes, for classification sources whose labels are known.
    pub classes: Option<usize>,
    pub span: Span,
    /// The rows of a `ucr` file, to compare its labels with the training data's.
    pub ucr: Option<UcrFacts>,
    /// Bytes its examples take once loaded (`crate::data::Dataset`): f32
    /// inputs, and f32 clean signals (denoising) or a class index each.
    pub bytes: u64,
    /// The shape of one regression target (`Task::Regress`), as the data gives it.
    pub targets: Option<Vec<usize>>,
}

/// Bytes of `examples` examples of `input` once loaded.
pub(super) fn dataset_bytes(examples: usize, input: Option<(&Shape, Span)>, task: Task) -> u64 {
    let Some((shape, _)) = input else { return 0 };
    let values = (examples as u64).saturating_mul(shape.numel() as u64).saturating_mul(4);
    match task {
        // A regression target's size is not known here: reckoned as the input's.
        Task::Denoise | Task::Regress => values.saturating_mul(2),
        Task::Classify => values.saturating_add((examples as u64).saturating_mul(std::mem::size_of::<usize>() as u64)),
    }
}

/// A probed `ucr` file: its path as written and where, and its rows.
pub struct UcrFacts {
    pub written: String,
    pub span: Span,
    pub path: PathBuf,
    pub table: crate::data::UcrTable,
}

/// E0051 for a data file, at the line and column the reader found.
pub(super) fn bad_file(ctx: &mut Ctx, span: Span, written: &str, e: crate::data::DataError) {
    ctx.problems.push(Problem::BadDataFile { span, path: written.into(), line: e.line, column: e.column, reason: e.message });
}

/// The file a source's `path` names: E0050 when it does not exist, E0051 when
/// it is a folder.
fn data_path(ctx: &mut Ctx, call: &Call) -> Option<PathBuf> {
    let written = call.str("path")?;
    let span = call.span_of("path");
    let path = Path::new(written);
    if ctx.env.kind(&ctx.base_dir.join(path)) == Some(EntryKind::Folder) {
        ctx.problems.push(Problem::BadDataFile {
            span,
            path: written.into(),
            line: None,
            column: None,
            reason: "is a folder, not a file".into(),
        });
        return None;
    }
    ctx.resolve_path(written, span)
}

pub fn check_data(ctx: &mut Ctx, section: &ast::Section, input: Option<(&Shape, Span)>) -> Option<(DataSpec, Span)> {
    let call = match &section.body {
        ast::SectionBody::Inline(value) => {
            let arg = Arg { key: Some(ast::Ident { name: "train".into(), span: value.span }), value: value.clone(), span: value.span };
            params::resolve_items(&DATA_SECTION, &[arg], section.span, "data", &mut ctx.problems)
        }
        ast::SectionBody::Block(block) => {
            let args = settings_as_args(ctx, block, "data");
            let mut scratch = Vec::new();
            let call = params::resolve_items(&DATA_SECTION, &args, section.keyword.span, "data", &mut scratch);
            // A missing `train` reads better as its own diagnostic.
            for p in scratch {
                match p {
                    Problem::MissingParameter { name, .. } if name == "train" => {
                        ctx.problems.push(Problem::MissingTrainData { span: section.keyword.span, no_section: false })
                    }
                    other => ctx.problems.push(other),
                }
            }
            call
        }
    };
    let train = source(ctx, call.entry("train")?, input);
    let val = call.entry("val").and_then(|c| source(ctx, c, input));
    let test = call.entry("test").and_then(|c| source(ctx, c, input));
    if call.given("val_split") && call.given("val") {
        ctx.problems.push(Problem::NoEffect {
            span: call.span_of("val_split"),
            reason: "`val_split` has no effect when `val` gives the validation data".into(),
            help: Some("remove one of them".into()),
        });
    }
    let train = train?;
    let stream = stream_setting(ctx, &call, &train);
    // Loading holds the whole training set while it splits off the
    // validation part (or copies it, with a separate `val`): twice its size.
    let data_bytes = held_bytes(ctx, stream, &train)
        .saturating_mul(2)
        .saturating_add(val.as_ref().map_or(0, |v| held_bytes(ctx, stream, v)))
        .saturating_add(test.as_ref().map_or(0, |t| held_bytes(ctx, stream, t)));
    ctx.data_bytes = Some((data_bytes, train.span));
    ctx.data_streams = crate::data::stream::streams(stream, &train.source, ctx.env);
    let val_split = call.f64("val_split").unwrap_or(0.2);
    let test_split = call.f64("test_split").unwrap_or(0.0);
    // A stratified split keeps every class in training: no class can be lost.
    let stratified = test.is_none() && test_split > 0.0;
    if stratified {
        check_stratified_split(ctx, &call, &train, val.is_none().then_some(val_split), test_split);
    } else if call.given("test_split") && call.given("test") {
        ctx.problems.push(Problem::NoEffect {
            span: call.span_of("test_split"),
            reason: "`test_split` has no effect when `test` gives the test data".into(),
            help: Some("remove one of them".into()),
        });
    }
    if let (None, Some(facts), false) = (&val, &train.ucr, stratified)
        && let Err(e) = crate::data::split_keeps_every_class(&facts.path, &facts.table, val_split)
    {
        bad_file(ctx, facts.span, &facts.written, e);
    }
    if let Source::Waveforms { n, classes, seed, .. } = train.source
        && let Some(reason) = crate::data::waveforms_missing_class(n, classes, seed, (val.is_none() && !stratified).then_some(val_split))
    {
        ctx.problems.push(Problem::TaskMismatch { span: train.span, reason, help: None });
    }
    for other in [&val, &test].into_iter().flatten() {
        fits_training_data(ctx, other, &train);
    }
    let spec = DataSpec {
        task: train.task,
        classes: train.classes,
        train: train.source,
        val: val.map(|v| v.source),
        test: test.map(|t| t.source),
        val_split,
        test_split,
        normalize: normalize(ctx, &call, train.task),
        stream,
        targets: train.targets,
    };
    Some((spec, call.get("train").and_then(|g| g.span).unwrap_or(section.span)))
}

/// `stream = …`: E0140 when `always` asks a training source that is read
/// whole (not an uncompressed `npy` file) to stream.
fn stream_setting(ctx: &mut Ctx, call: &Call, train: &SourceFacts) -> Stream {
    let chosen = match call.word("stream") {
        Some("always") => Stream::Always,
        Some("never") => Stream::Never,
        Some("auto") | None => Stream::Auto,
        Some(other) => unreachable!("stream = {other} has no meaning"),
    };
    if chosen == Stream::Always
        && let Some(reason) = crate::data::stream::cannot_stream(&train.source, ctx.env)
    {
        ctx.problems.push(Problem::CannotStream { span: call.span_of("stream"), source_span: train.span, reason });
    }
    chosen
}

/// Bytes `facts`' source takes once loaded: less its inputs, plus an index,
/// when they stream from the file.
fn held_bytes(ctx: &Ctx, stream: Stream, facts: &SourceFacts) -> u64 {
    match crate::data::stream::memory_trade(&facts.source, ctx.env) {
        Some((not_held, held)) if crate::data::stream::streams(stream, &facts.source, ctx.env) => {
            facts.bytes.saturating_sub(not_held).saturating_add(held)
        }
        Some(_) | None => facts.bytes,
    }
}

/// `normalize = …`: rescaling applies to the inputs of classification and
/// regression, not of denoising (E0131: a denoiser's targets are in the
/// inputs' units; a regression's targets keep their own).
fn normalize(ctx: &mut Ctx, call: &Call, task: Task) -> Normalize {
    let chosen = match call.word("normalize") {
        Some("zscore") => Normalize::Zscore,
        Some("minmax") => Normalize::Minmax,
        Some("none") | None => Normalize::None,
        Some(other) => unreachable!("normalize = {other} has no meaning"),
    };
    if chosen != Normalize::None && task == Task::Denoise {
        ctx.problems.push(Problem::NormalizeDenoising { span: call.span_of("normalize") });
        return Normalize::None;
    }
    chosen
}

/// A split of the training source into training, validation (`val_split`,
/// when no `val` source is given) and test parts: E0130 when the shares
/// leave no training data, W0130 for each class too small to have an
/// example in every part (as `crate::data::stratified_counts` divides it).
fn check_stratified_split(ctx: &mut Ctx, call: &Call, train: &SourceFacts, val_split: Option<f64>, test_split: f64) {
    let span = call.span_of("test_split");
    if val_split.unwrap_or(0.0) + test_split >= 1.0 {
        ctx.problems.push(Problem::SplitsTooLarge { span, val_split: val_split.unwrap_or(0.0), test_split });
        return;
    }
    let counts: Vec<(String, usize)> = match (&train.ucr, &train.source) {
        (Some(facts), _) => {
            let mut counts = std::collections::BTreeMap::new();
            for row in &facts.table.rows {
                *counts.entry(row.label.clone()).or_insert(0) += 1;
            }
            counts.into_iter().map(|(label, n)| (label.to_string(), n)).collect()
        }
        // `waveforms` deals its classes out in turn: class c has ⌈(n − c)/classes⌉.
        (None, &Source::Waveforms { n, classes, .. }) => {
            (0..classes).map(|c| (c.to_string(), (n.saturating_sub(c)).div_ceil(classes))).collect()
        }
        (None, _) => return,
    };
    for (label, count) in counts {
        let (_, n_val, n_test) = crate::data::stratified_counts(count, val_split.unwrap_or(0.0), test_split);
        let missing = match (val_split.is_some_and(|v| v > 0.0) && n_val == 0, n_test == 0) {
            (true, true) => "validation or test",
            (true, false) => "validation",
            (false, true) => "test",
            (false, false) => continue,
        };
        ctx.problems.push(Problem::ClassTooSmallForSplit { span, label, count, missing: missing.into() });
    }
}

/// A validation or test set against the training set: the same task, no
/// more classes, and (for `ucr` files) no label without training examples.
fn fits_training_data(ctx: &mut Ctx, other: &SourceFacts, train: &SourceFacts) {
    // Each label of a validation or test file must have training examples.
    let unknown = match (&other.ucr, &train.ucr) {
        (Some(theirs), Some(ours)) => {
            let known = crate::data::distinct_labels(&ours.table.rows);
            crate::data::classes_of(&theirs.path, &theirs.table.rows, &known).err().map(|e| (theirs, e))
        }
        _ => None,
    };
    if other.task != train.task {
        ctx.problems.push(Problem::TaskMismatch {
            span: other.span,
            reason: format!("this data set is for {}, but the training data is for {}", task_words(other.task), task_words(train.task)),
            help: None,
        });
    } else if let (Some(theirs), Some(ours)) = (&other.targets, &train.targets)
        && theirs.iter().product::<usize>() != ours.iter().product::<usize>()
    {
        ctx.problems.push(Problem::TaskMismatch {
            span: other.span,
            reason: format!("this data set's targets have shape {theirs:?}, the training data's {ours:?}"),
            help: Some("every example's target is compared with the same model output".into()),
        });
    }
    if let (Some(a), Some(b)) = (other.classes, train.classes)
        && a > b
    {
        let first = match &unknown {
            Some((theirs, e)) => match (e.line, e.column) {
                (Some(line), Some(column)) => format!(" (the first is at {}:{line}:{column})", theirs.written),
                _ => String::new(),
            },
            None => String::new(),
        };
        ctx.problems.push(Problem::TaskMismatch {
            span: other.span,
            reason: format!("this data set has {a} classes, the training data only {b}"),
            help: Some(format!("a class never seen in training cannot be learnt{first}")),
        });
    } else if let Some((theirs, e)) = unknown {
        bad_file(ctx, theirs.span, &theirs.written, e);
    }
}

fn task_words(task: Task) -> &'static str {
    match task {
        Task::Denoise => "denoising",
        Task::Classify => "classification",
        Task::Regress => "regression",
    }
}

fn source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let task = call.schema.task();
    let span = call.span;
    let seed = call.int("seed").unwrap_or(1) as u64;
    let noise = call.f64("noise").unwrap_or(0.1);
    match call.schema.name {
        "sines" => {
            needs_signal_input(ctx, input, span, "sines");
            let n = call.int("n")? as usize;
            let source = Source::Sines { n, components: call.int("components")? as usize, max_freq: call.f64("max_freq")?, noise, seed };
            Some(SourceFacts { source, task, classes: None, span, ucr: None, bytes: dataset_bytes(n, input, task), targets: None })
        }
        "waveforms" => {
            needs_signal_input(ctx, input, span, "waveforms");
            let classes = call.int("classes")? as usize;
            let n = call.int("n")? as usize;
            Some(SourceFacts {
                source: Source::Waveforms { n, classes, noise, seed },
                task,
                classes: Some(classes),
                span,
                ucr: None,
                bytes: dataset_bytes(n, input, task),
                targets: None,
            })
        }
        "ucr" => ucr_source(ctx, call, input, task, span),
        "signal" => signal_source(ctx, call, input, task, span),
        "npy" => super::numpy::npy_source(ctx, call, input),
        "npz" => super::numpy::npz_source(ctx, call, input),
        "ts" => super::ts::ts_source(ctx, call, input),
        "pairs" => super::pairs::pairs_source(ctx, call, input),
        "wav" => super::media::wav_source(ctx, call, input),
        "images" => super::media::images_source(ctx, call, input),
        other => unreachable!("data source {other} has no checker"),
    }
}

/// E0052 for a generator or recording that gives 1-channel signals, when the
/// model's input is not `[1, length]`.
fn needs_signal_input(ctx: &mut Ctx, input: Option<(&Shape, Span)>, span: Span, what: &str) {
    if let Some((shape, input_span)) = input
        && (shape.rank() != 2 || shape.channels() != 1)
    {
        let help = Some(format!("`{what}` gives 1-channel signals: use `input [1, {}]`", shape.0.last().copied().unwrap_or(256)));
        ctx.problems.push(Problem::DataShapeMismatch {
            span,
            input_span,
            data: "1-channel signals `[1, length]`".into(),
            input: shape.clone(),
            help,
        });
    }
}

/// A `ucr` file: its rows, read through the environment, against the
/// model's input.
fn ucr_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>, task: Task, span: Span) -> Option<SourceFacts> {
    let path = data_path(ctx, call)?;
    let table = match probe_ucr(ctx.env, &path) {
        Ok(table) => table,
        Err(e) => {
            bad_file(ctx, call.span_of("path"), call.str("path")?, e);
            return None;
        }
    };
    if let Some((shape, input_span)) = input
        && shape.numel() != table.width
    {
        let help = Some(match shape.rank() {
            1 => format!("use `input [{}]`", table.width),
            _ => format!("use an input with {} values, such as `input [1, {}]`", table.width, table.width),
        });
        ctx.problems.push(Problem::DataShapeMismatch {
            span: call.span_of("path"),
            input_span,
            data: format!("{} values per row", table.width),
            input: shape.clone(),
            help,
        });
    }
    let classes = crate::data::distinct_labels(&table.rows).len();
    let bytes = dataset_bytes(table.rows.len(), input, task);
    let ucr = UcrFacts { written: call.str("path")?.into(), span: call.span_of("path"), path: path.clone(), table };
    Some(SourceFacts { source: Source::Ucr { path }, task, classes: Some(classes), span, ucr: Some(ucr), bytes, targets: None })
}

/// A `signal` recording: its samples in `column`, read through the
/// environment, cut into windows of the input's length.
fn signal_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>, task: Task, span: Span) -> Option<SourceFacts> {
    let (seed, noise) = (call.int("seed").unwrap_or(1) as u64, call.f64("noise").unwrap_or(0.1));
    needs_signal_input(ctx, input, span, "signal");
    let path = data_path(ctx, call)?;
    let column = call.int("column")? as usize;
    let stride = call.int("stride").map(|s| s as usize);
    let mut windows = 0;
    match probe_signal(ctx.env, &path, column) {
        Ok(samples) => {
            // As `crate::data` cuts the recording: windows of the
            // input's length, `stride` apart (default: not overlapping).
            if let Some((shape, _)) = input
                && let [1, len] = shape.0[..]
                && len > 0
                && samples >= len
            {
                windows = (samples - len) / stride.unwrap_or(len).max(1) + 1;
            }
            if let Some((shape, input_span)) = input
                && shape.rank() == 2
                && shape.0[1] > samples
            {
                ctx.problems.push(Problem::DataShapeMismatch {
                    span: call.span_of("path"),
                    input_span,
                    data: format!("a recording of {samples} samples"),
                    input: shape.clone(),
                    help: Some(format!("windows are the model's input length; use at most {samples}")),
                });
            }
        }
        Err(e) => {
            bad_file(ctx, call.span_of("path"), call.str("path")?, e);
            return None;
        }
    }
    Some(SourceFacts {
        source: Source::Signal { path, column, stride, noise, seed },
        task,
        classes: None,
        span,
        ucr: None,
        bytes: dataset_bytes(windows, input, task),
        targets: None,
    })
}

/// The rows of a UCR-style CSV, read by the same code that loads it for
/// training, with at least two distinct labels; through the environment's
/// memo if it keeps one (the 8×8 digits' 1797 rows took 11 ms, on every
/// change in `lpnc lsp`).
fn probe_ucr(env: &dyn Environment, path: &Path) -> Result<crate::data::UcrTable, crate::data::DataError> {
    let read = || crate::data::read_ucr(env, path);
    let table = match env.memo() {
        Some(memo) => memo.remember(path, "ucr table", read),
        None => read(),
    }?;
    let labels = crate::data::distinct_labels(&table.rows);
    if labels.len() < 2 {
        return Err(crate::data::DataError {
            path: Some(path.to_path_buf()),
            line: None,
            column: None,
            message: format!(
                "all rows have the same label ({}); classification needs at least two classes",
                labels.first().map(ToString::to_string).unwrap_or_default()
            ),
        });
    }
    Ok(table)
}

/// Number of samples in one column of a signal CSV (a header line is allowed),
/// through the environment's memo if it keeps one (a recording is the slowest
/// file to read: 15 ms for the ECG examples' 108 000 lines, on every change in `lpnc lsp`).
fn probe_signal(env: &dyn Environment, path: &Path, column: usize) -> Result<usize, crate::data::DataError> {
    let read = || crate::data::read_column(env, path, column).map(|s| s.len());
    match env.memo() {
        Some(memo) => memo.remember(path, &format!("samples in column {column}"), read),
        None => read(),
    }
}

pub fn check_train(
    ctx: &mut Ctx,
    section: Option<&ast::Section>,
    data: Option<(&DataSpec, Span)>,
    model: Option<&Model>,
    model_span: Span,
) -> Option<TrainSpec> {
    let call = match section.map(|s| (s, &s.body)) {
        Some((_, ast::SectionBody::Block(block))) => {
            let args = settings_as_args(ctx, block, "train");
            params::resolve_items(&TRAIN_SECTION, &args, section.unwrap().keyword.span, "train", &mut ctx.problems)
        }
        Some((s, ast::SectionBody::Inline(_))) => {
            ctx.problems.push(Problem::MalformedSection {
                span: s.span,
                section: "train".into(),
                expected: "`train { epochs = 20 … }`".into(),
            });
            return None;
        }
        None => params::resolve_items(&TRAIN_SECTION, &[], model_span, "train", &mut ctx.problems),
    };
    let optimizer = optimizer(call.entry("optimizer")?)?;
    let loss_call = call.entry("loss");
    let task = data.map(|(d, _)| d.task);
    let loss = match loss_call.map(|c| c.schema.name) {
        Some("mse") => Loss::Mse,
        Some("mae") => Loss::Mae,
        Some("cross_entropy") => Loss::CrossEntropy,
        Some("bce") => Loss::Bce,
        Some(other) => unreachable!("loss {other} has no lowering"),
        None if call.given("loss") => return None,
        None if task == Some(Task::Classify) => Loss::CrossEntropy,
        None => Loss::Mse,
    };
    if let Some((data, data_span)) = data {
        let loss_span = loss_call.map(|c| c.span).unwrap_or(data_span);
        fit_task(ctx, loss, loss_call.is_some(), loss_span, data, data_span, model, model_span);
    }
    let phases = match (section, model) {
        (Some(ast::Section { body: ast::SectionBody::Block(block), .. }), Some(model)) => {
            super::phases::check_phases(ctx, block, model, data)
        }
        _ => Vec::new(),
    };
    if !phases.is_empty() && call.given("epochs") {
        ctx.problems.push(Problem::NoEffect {
            span: call.span_of("epochs"),
            reason: "`epochs` has no effect when the training is split into phases: each phase gives its own".into(),
            help: Some("remove it; the run lasts the sum of the phases' epochs".into()),
        });
    }
    let keep = match call.word("keep")? {
        "last" => Keep::Last,
        "best" => Keep::Best,
        other => unreachable!("keep = {other} has no meaning"),
    };
    let monitor = match call.word("monitor")? {
        "val_loss" => Monitor::ValLoss,
        "val_accuracy" => Monitor::ValAccuracy,
        other => unreachable!("monitor = {other} has no meaning"),
    };
    let early_stop = call.int("early_stop").map(|n| n as usize);
    watched_figure_exists(ctx, &call, keep, monitor, early_stop, data);
    let epochs = call.int("epochs")? as usize;
    let run_epochs = if phases.is_empty() { epochs } else { phases.iter().map(|p| p.epochs).sum() };
    let scope = super::schedule::Scope { epochs: run_epochs, what: "the run".into(), data };
    let schedule = super::schedule::lower(ctx, &call, &scope);
    Some(TrainSpec {
        phases,
        optimizer,
        loss,
        epochs,
        batch: call.int("batch")? as usize,
        seed: call.int("seed")? as u64,
        shuffle: call.bool("shuffle")?,
        clip: call.f64("clip"),
        checkpoint_every: call.int("checkpoint_every")? as usize,
        keep,
        monitor,
        early_stop,
        schedule,
    })
}

/// `keep = best` and `early_stop` watch a validation figure: there must be
/// validation data, and an accuracy to watch if `monitor = val_accuracy`.
fn watched_figure_exists(
    ctx: &mut Ctx,
    call: &Call,
    keep: Keep,
    monitor: Monitor,
    early_stop: Option<usize>,
    data: Option<(&DataSpec, Span)>,
) {
    let Some((data, data_span)) = data else { return };
    let watching = [
        (keep == Keep::Best).then(|| ("keep", "keep = best".to_string())),
        early_stop.map(|n| ("early_stop", format!("early_stop = {n}"))),
    ];
    for (setting, written) in watching.into_iter().flatten() {
        if data.val.is_none() && data.val_split == 0.0 {
            ctx.problems.push(Problem::NoValidationData { span: call.span_of(setting), setting: written, data_span });
        }
    }
    if monitor == Monitor::ValAccuracy && data.task != Task::Classify {
        ctx.problems.push(Problem::MonitorWithoutAccuracy { span: call.span_of("monitor") });
    }
}

pub fn optimizer(call: &Call) -> Option<Optimizer> {
    let lr = call.f64("lr")?;
    let weight_decay = call.f64("weight_decay")?;
    Some(match call.schema.name {
        "sgd" => Optimizer::Sgd { lr, momentum: call.f64("momentum")?, nesterov: call.bool("nesterov")?, weight_decay },
        "adam" => Optimizer::Adam { lr, beta1: call.f64("beta1")?, beta2: call.f64("beta2")?, eps: call.f64("eps")?, weight_decay },
        "adamw" => Optimizer::AdamW { lr, beta1: call.f64("beta1")?, beta2: call.f64("beta2")?, eps: call.f64("eps")?, weight_decay },
        other => unreachable!("optimizer {other} has no lowering"),
    })
}

/// The loss fits the task, and the model's output fits the loss and the data.
#[allow(clippy::too_many_arguments)]
fn fit_task(
    ctx: &mut Ctx,
    loss: Loss,
    loss_written: bool,
    loss_span: Span,
    data: &DataSpec,
    data_span: Span,
    model: Option<&Model>,
    model_span: Span,
) {
    if !loss_fits_task(ctx, loss, loss_written, loss_span, data) {
        return;
    }
    let Some(model) = model else { return };
    if data.task == Task::Regress {
        targets_fit_output(ctx, data, data_span, model, model_span);
        return;
    }
    let (expected, why, help) = expected_output(ctx, loss, data, model);
    if model.output != expected {
        ctx.problems.push(Problem::OutputMismatch {
            span: data_span,
            model_span,
            output: model.output.clone(),
            expected: expected.to_string(),
            why,
            help,
        });
    }
}

/// Whether the loss suits the data's task (and its number of classes); if not,
/// reports why.
fn loss_fits_task(ctx: &mut Ctx, loss: Loss, loss_written: bool, loss_span: Span, data: &DataSpec) -> bool {
    let classify_loss = matches!(loss, Loss::CrossEntropy | Loss::Bce);
    match (data.task, classify_loss) {
        (Task::Denoise | Task::Regress, true) => {
            let compared = if data.task == Task::Denoise {
                "denoising compares the output with the clean signal"
            } else {
                "regression compares the output with the target"
            };
            ctx.problems.push(Problem::TaskMismatch {
                span: loss_span,
                reason: format!("a classification loss on a {} data set", task_words(data.task)),
                help: Some(format!("{compared}: use `loss = mse` or `loss = mae`")),
            });
            return false;
        }
        (Task::Classify, false) => {
            ctx.problems.push(Problem::TaskMismatch {
                span: loss_span,
                reason: format!("a regression loss on a classification data set{}", if loss_written { "" } else { " (the default)" }),
                help: Some("use `loss = cross_entropy` (one logit per class) or `loss = bce` (two classes, one logit)".into()),
            });
            return false;
        }
        (Task::Denoise | Task::Regress, false) | (Task::Classify, true) => {}
    }
    if loss == Loss::Bce && data.classes.is_some_and(|c| c != 2) {
        ctx.problems.push(Problem::TaskMismatch {
            span: loss_span,
            reason: format!("`bce` is for two classes, but the data has {}", data.classes.unwrap()),
            help: Some("use `loss = cross_entropy`".into()),
        });
        return false;
    }
    true
}

/// The output shape the task and loss need, what needs it, and how to get there.
fn expected_output(ctx: &Ctx, loss: Loss, data: &DataSpec, model: &Model) -> (Shape, String, Option<String>) {
    match data.task {
        Task::Denoise => (
            model.input.clone(),
            "denoising (the clean signal)".to_string(),
            if model.output.rank() == model.input.rank() && model.output.0[1..] != model.input.0[1..] {
                Some("keep the length: `padding=same` on every conv, stride 1 and no pooling".to_string())
            } else {
                Some(format!("end with a conv of out={} and keep the length with `padding=same`", model.input.channels()))
            },
        ),
        Task::Classify => {
            let classes = data.classes.unwrap_or(2);
            let logits = if loss == Loss::Bce { 1 } else { classes };
            let what = if loss == Loss::Bce {
                "binary cross-entropy (one logit)".to_string()
            } else {
                format!("{classes}-class cross-entropy (one logit per class)")
            };
            let help = if model.output.rank() > 1 {
                format!("reduce to a vector first (`global_avgpool` or `flatten`), then end with `linear(out={logits})`")
            } else if loss != Loss::Bce
                && model.output.0[0] != logits
                && let Some(note) = label_note(ctx.env, data)
            {
                format!("end with `linear(out={logits})`; {note}")
            } else {
                format!("end with `linear(out={logits})`")
            };
            (Shape(vec![logits]), what, Some(help))
        }
        Task::Regress => unreachable!("regression targets are compared with the output by `targets_fit_output`"),
    }
}

/// E0146 unless the model's output holds one regression target: the same
/// shape, or as many values for targets given flat (a `pairs` row, an
/// `npy` array of shape `[n, k]` or `[n]`), which the training step lays out
/// in the output's shape.
fn targets_fit_output(ctx: &mut Ctx, data: &DataSpec, data_span: Span, model: &Model, model_span: Span) {
    let Some(target) = &data.targets else { return };
    let (output, values) = (&model.output, target.iter().product::<usize>());
    if target == &output.0 || (target.len() <= 1 && values == output.numel()) {
        return;
    }
    let help = if target.len() > 1 {
        format!("end the model with an output of shape {}", Shape(target.clone()))
    } else if output.rank() == 2 && values % output.channels().max(1) == 0 {
        let length = values / output.channels().max(1);
        format!(
            "end the model with an output of {values} values, such as [{}, {length}] (a conv's `stride` or a pooling changes the length), or `flatten` then `linear(out={values})`",
            output.channels()
        )
    } else {
        format!("end the model with an output of {values} values, such as `linear(out={values})`")
    };
    ctx.problems.push(Problem::TargetShapeMismatch { span: data_span, model_span, target: target.clone(), output: output.clone(), help });
}

/// For a `ucr` training file: its labels, which are its classes, and the
/// integers between them without an example (which are no class), for the
/// help of a model output that does not match.
fn label_note(env: &dyn Environment, data: &DataSpec) -> Option<String> {
    use crate::data::Label;
    let Source::Ucr { path } = &data.train else { return None };
    let labels = crate::data::distinct_labels(&crate::data::read_ucr(env, path).ok()?.rows);
    let shown = |ls: &[Label]| ls.iter().take(12).map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
    let mut note = format!(
        "the training data has {} distinct labels ({}{}), and each is a class, in sorted order",
        labels.len(),
        shown(&labels),
        if labels.len() > 12 { ", …" } else { "" }
    );
    // The whole numbers between the numeric labels that have no example.
    let numbers: Vec<i64> = labels.iter().filter_map(|l| if let Label::Number(n) = l { Some(*n) } else { None }).collect();
    if let (Some(&low), Some(&high)) = (numbers.first(), numbers.last())
        && high.checked_sub(low).is_some_and(|span| span < 10_000)
    {
        let missing: Vec<Label> = (low..=high).filter(|l| numbers.binary_search(l).is_err()).map(Label::Number).collect();
        match missing.len() {
            0 => {}
            1 => note.push_str(&format!(
                "; label {} has no example, so it is no class: a class without examples cannot be learnt",
                shown(&missing)
            )),
            n => note.push_str(&format!(
                "; {n} labels in between ({}{}) have no example, so they are no classes: a class without examples cannot be learnt",
                shown(&missing),
                if n > 12 { ", …" } else { "" }
            )),
        }
    }
    Some(note)
}
