//! The `wav` and `images` data sources at check time, from their folders'
//! listings and their files' headers only (`crate::data::wav` and
//! `crate::data::images`, the code that loads them): the layout (E0150),
//! a file that cannot be read or decoded (E0051, at the file), WAV files of
//! different rates or channel counts (E0151), clips or images that do not
//! fit the model's input (E0052); and band constraints whose `fs=` is not
//! the rate of the audio the layer sees (E0152).

use std::path::{Path, PathBuf};

use crate::data::folders::{Layout, shown};
use crate::data::wav::{WavFacts, difference_message, first_difference, probe_wav, wav_layout};
use crate::language::ast::Span;
use crate::language::check::Ctx;
use crate::language::check::data::{SourceFacts, dataset_bytes};
use crate::language::check::params::Call;
use crate::language::diagnostic::Problem;
use crate::language::ir::{DataSpec, Layer, Model, Op, Source};
use crate::language::schema::Task;
use crate::language::shape::Shape;

/// The source's folder or file and its layout, or E0050/E0150.
fn located(
    ctx: &mut Ctx,
    call: &Call,
    list: fn(&dyn crate::language::check::Environment, &Path) -> Result<Layout, crate::data::DataError>,
    help: &str,
) -> Option<(PathBuf, Layout)> {
    let written = call.str("path")?;
    let span = call.span_of("path");
    let path = if Path::new(written).is_absolute() { PathBuf::from(written) } else { ctx.base_dir.join(written) };
    if ctx.env.kind(&path).is_none() {
        ctx.problems.push(Problem::FileNotFound { span, path: written.into(), resolved: path.display().to_string() });
        return None;
    }
    match list(ctx.env, &path) {
        Ok(layout) => Some((path, layout)),
        Err(e) => {
            let at = e.path.as_deref().map_or_else(|| written.to_string(), |p| in_source(written, &path, p));
            ctx.problems.push(Problem::MediaFolder { span, path: at, reason: e.message, help: help.into() });
            None
        }
    }
}

/// A file of a source as a message names it: the source's path as written, then the file's path in it.
fn in_source(written: &str, root: &Path, file: &Path) -> String {
    match shown(root, file) {
        inner if file == root || inner == file.display().to_string() => written.to_string(),
        inner => format!("{}/{inner}", written.trim_end_matches('/')),
    }
}

/// E0051 at a file of the source.
fn bad_member(ctx: &mut Ctx, span: Span, written: &str, root: &Path, e: crate::data::DataError) {
    let path = e.path.as_deref().map_or_else(|| written.to_string(), |p| in_source(written, root, p));
    ctx.problems.push(Problem::BadDataFile { span, path, line: e.line, column: e.column, reason: e.message });
}

/// `wav("dir_or_file", …)`.
pub fn wav_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let help = "give one `.wav` file, a folder of `.wav` recordings, or a folder with one subfolder of `.wav` clips per class";
    let (path, layout) = located(ctx, call, wav_layout, help)?;
    let (written, span) = (call.str("path")?, call.span_of("path"));
    let files = layout.files();
    let mut facts: Vec<WavFacts> = Vec::with_capacity(files.len());
    for file in &files {
        match probe_wav(ctx.env, file) {
            Ok(f) => facts.push(f),
            Err(e) => {
                bad_member(ctx, span, written, &path, e);
                return None;
            }
        }
    }
    if let Some(i) = first_difference(&facts) {
        let reason = difference_message(&in_source(written, &path, files[0]), &facts[0], &in_source(written, &path, files[i]), &facts[i]);
        ctx.problems.push(Problem::MixedMedia { span, reason });
        return None;
    }
    let task = match layout {
        Layout::Classes(_) => Task::Classify,
        Layout::Files(_) => Task::Denoise,
    };
    let examples = fits_input(ctx, call, input, &layout, &facts, |file| in_source(written, &path, file));
    let classes = match &layout {
        Layout::Classes(classes) => Some(classes.len()),
        Layout::Files(_) => None,
    };
    let source = Source::Wav {
        path,
        stride: call.int("stride").map(|s| s as usize),
        noise: call.f64("noise").unwrap_or(0.1),
        seed: call.int("seed").unwrap_or(1) as u64,
        rate: facts[0].rate,
    };
    Some(SourceFacts { source, task, classes, span: call.span, ucr: None, targets: None, bytes: dataset_bytes(examples, input, task) })
}

/// E0052 for clips or recordings that do not fit the input `[channels,
/// length]`; the number of examples they make.
fn fits_input(
    ctx: &mut Ctx,
    call: &Call,
    input: Option<(&Shape, Span)>,
    layout: &Layout,
    facts: &[WavFacts],
    name: impl Fn(&Path) -> String,
) -> usize {
    let Some((shape, input_span)) = input else { return 0 };
    let first = &facts[0];
    let mismatch = |data: String, help: String| Problem::DataShapeMismatch {
        span: call.span_of("path"),
        input_span,
        data,
        input: shape.clone(),
        help: Some(help),
    };
    let [channels, length] = shape.0[..] else {
        ctx.problems.push(mismatch(format!("audio of {}", first.kind()), format!("use an input `[{}, length]`", first.channels)));
        return 0;
    };
    if channels != first.channels {
        ctx.problems.push(mismatch(format!("audio of {}", first.kind()), format!("use `input [{}, {length}]`", first.channels)));
        return 0;
    }
    match layout {
        Layout::Classes(_) => {
            let files = layout.files();
            if let Some(i) = facts.iter().position(|f| f.frames != length) {
                let data = format!("a clip `{}` of {} samples", name(files[i]), facts[i].frames);
                let help = format!(
                    "every clip must have exactly the input's length, {length} samples: trim or pad the files (none is cut or padded on loading)"
                );
                ctx.problems.push(mismatch(data, help));
            }
            facts.len()
        }
        Layout::Files(_) => {
            let stride = call.int("stride").map_or(length, |s| s as usize).max(1);
            let windows: usize = facts.iter().filter(|f| f.frames >= length).map(|f| (f.frames - length) / stride + 1).sum();
            if windows == 0 && length > 0 {
                let longest = facts.iter().map(|f| f.frames).max().unwrap_or(0);
                ctx.problems.push(mismatch(
                    format!("recordings of at most {longest} samples"),
                    format!("windows are the model's input length; use at most {longest}"),
                ));
            }
            windows
        }
    }
}

/// `images("dir", size=[h, w], grayscale=…)`.
pub fn images_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let help =
        "put each class's images in a subfolder named after the class: `DIR/CLASS/IMAGE.png`, as torchvision's ImageFolder reads them";
    let (path, layout) = located(ctx, call, crate::data::images::image_layout, help)?;
    let (written, span) = (call.str("path")?, call.span_of("path"));
    let Layout::Classes(classes) = &layout else { return None };
    for file in layout.files() {
        if let Err(e) = crate::data::images::probe_image(ctx.env, file) {
            bad_member(ctx, span, written, &path, e);
            return None;
        }
    }
    let grayscale = call.bool("grayscale").unwrap_or(false);
    let channels = if grayscale { 1 } else { 3 };
    let size = match (call.axes("size"), input.map(|(s, _)| &s.0[..])) {
        (Some(axes), _) => [axes[0] as usize, *axes.last().unwrap_or(&axes[0]) as usize],
        (None, Some(&[_, h, w])) => [h, w],
        (None, _) => [28, 28],
    };
    if let Some((shape, input_span)) = input
        && shape.0 != [channels, size[0], size[1]]
    {
        let data = format!("{} images of {}×{}", if grayscale { "grayscale" } else { "RGB" }, size[0], size[1]);
        let help = format!(
            "use `input [{channels}, {}, {}]`{}",
            size[0],
            size[1],
            match (shape.0.first(), grayscale) {
                (Some(1), false) => ", or `grayscale=true` for one channel",
                (Some(3), true) => ", or leave out `grayscale=true` for RGB",
                _ => "",
            }
        );
        ctx.problems.push(Problem::DataShapeMismatch { span: call.span, input_span, data, input: shape.clone(), help: Some(help) });
    }
    let examples = layout.files().len();
    let source = Source::Images { path, size, grayscale };
    Some(SourceFacts {
        source,
        task: Task::Classify,
        classes: Some(classes.len()),
        span: call.span,
        ucr: None,
        targets: None,
        bytes: dataset_bytes(examples, input, Task::Classify),
    })
}

/// E0152 for each band constraint whose `fs=` is not the rate of the audio
/// its layer sees: the training `wav` data's rate, divided by the strides
/// of the convolutions and pools before the layer.
pub fn rates_fit(ctx: &mut Ctx, model: &Model, data: &DataSpec, data_span: Span) {
    let Source::Wav { rate, .. } = data.train else { return };
    check_layers(ctx, &model.layers, rate as f64, 1, data_span);
}

fn check_layers(ctx: &mut Ctx, layers: &[Layer], rate: f64, mut decimation: usize, data_span: Span) -> usize {
    for layer in layers {
        for constraint in &layer.constraints {
            let seen = rate / decimation as f64;
            if let Some(fs) = constraint.band().and_then(|b| b.fs)
                && (fs - seen).abs() > 1e-9 * seen
            {
                let (layer_name, span) = (layer.name.clone(), constraint.span);
                ctx.problems.push(Problem::SampleRateMismatch { span, data_span, layer: layer_name, fs, rate, decimation });
            }
        }
        decimation = decimation.saturating_mul(match &layer.op {
            Op::Conv(conv) => conv.stride.last().copied().unwrap_or(1),
            Op::MaxPool(pool) | Op::AvgPool(pool) => pool.stride.last().copied().unwrap_or(1),
            Op::Residual { body } => check_layers(ctx, body, rate, decimation, data_span) / decimation,
            Op::Linear { .. }
            | Op::Activation(_)
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::BatchNorm { .. }
            | Op::Dropout { .. }
            | Op::Flatten => 1,
        });
    }
    decimation
}
