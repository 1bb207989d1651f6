//! The `npy` and `npz` data sources at check time: their arrays' headers
//! are probed (by `crate::data::numpy`, which loads them too) for the
//! element type, the shape against the model's input, the number of labels,
//! and files shorter than their headers announce. The labels' type gives
//! the task: integers are classes, floats regression targets of any shape
//! (`[n, …target]`), compared with the model's output by `data::check_train`.

use std::path::{Path, PathBuf};

use crate::data::numpy::{ArrayFacts, class_labels_of, npz_members, pair_task, probe_npy, probe_npz, target_shape};
use crate::language::ast::Span;
use crate::language::check::Ctx;
use crate::language::check::data::{SourceFacts, bad_file, dataset_bytes};
use crate::language::check::params::Call;
use crate::language::diagnostic::Problem;
use crate::language::ir::Source;
use crate::language::schema::Task;
use crate::language::shape::Shape;

/// `npy("x.npy", labels="y.npy")`.
pub fn npy_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let (x_written, y_written) = (call.str("path")?, call.str("labels")?);
    let x_path = ctx.resolve_path(x_written, call.span_of("path"));
    let y_path = ctx.resolve_path(y_written, call.span_of("labels"));
    let (x_path, y_path) = (x_path?, y_path?);
    let probe = |ctx: &mut Ctx, path: &Path, written: &str, span: Span| match probe_npy(ctx.env, path) {
        Ok(facts) => Some(facts),
        Err(e) => {
            bad_file(ctx, span, written, e);
            None
        }
    };
    let x = probe(ctx, &x_path, x_written, call.span_of("path"));
    let y = probe(ctx, &y_path, y_written, call.span_of("labels"));
    let (x, y) = (x?, y?);
    let spans = [(x_path.clone(), call.span_of("path"), x_written), (y_path.clone(), call.span_of("labels"), y_written)];
    let task = fit(ctx, input, &x, &y, &spans)?;
    let classes = match task {
        Task::Classify => {
            let labels = crate::data::read_bytes(ctx.env, &y_path);
            count_classes(ctx, labels.and_then(|bytes| class_labels_of(&y_path, bytes)), &spans[1])?
        }
        Task::Denoise | Task::Regress => None,
    };
    let source = Source::Npy { path: x_path, labels: y_path };
    let bytes = dataset_bytes(x.examples, input, task);
    Some(SourceFacts { source, task, classes, span: call.span, ucr: None, bytes, targets: regression_targets(task, &y) })
}

/// `npz("d.npz", x="x", y="y")`.
pub fn npz_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let written = call.str("path")?;
    let (x_name, y_name) = (call.str("x").unwrap_or("x").to_string(), call.str("y").unwrap_or("y").to_string());
    let path = ctx.resolve_path(written, call.span_of("path"))?;
    let (x, y) = match probe_npz(ctx.env, &path, &x_name, &y_name) {
        Ok(pair) => pair,
        Err(e) => {
            bad_file(ctx, call.span_of("path"), written, e);
            return None;
        }
    };
    let spans = [(path.clone(), call.span_of("path"), written), (path.clone(), call.span_of("path"), written)];
    let task = fit(ctx, input, &x, &y, &spans)?;
    let classes = match task {
        Task::Classify => {
            let labels = npz_members(ctx.env, &path, &x_name, &y_name).and_then(|(_, yb)| class_labels_of(&path, yb));
            let labels = labels.map_err(|mut e| {
                e.message = format!("array `{y_name}`: {}", e.message);
                e
            });
            count_classes(ctx, labels, &spans[1])?
        }
        Task::Denoise | Task::Regress => None,
    };
    let source = Source::Npz { path, x: x_name, y: y_name };
    let bytes = dataset_bytes(x.examples, input, task);
    Some(SourceFacts { source, task, classes, span: call.span, ucr: None, bytes, targets: regression_targets(task, &y) })
}

/// The shape of one regression target, which the model's output must match (E0146).
fn regression_targets(task: Task, y: &ArrayFacts) -> Option<Vec<usize>> {
    (task == Task::Regress).then(|| target_shape(task, &y.header))
}

/// The number of classes the labels make, or E0051 at the labels' file.
fn count_classes(ctx: &mut Ctx, labels: Result<Vec<i64>, crate::data::DataError>, at: &(PathBuf, Span, &str)) -> Option<Option<usize>> {
    match labels {
        Ok(labels) => Some(Some(labels.len())),
        Err(e) => {
            bad_file(ctx, at.1, at.2, e);
            None
        }
    }
}

/// The task of an input and a labels array, or the
/// diagnostic saying why they do not fit the model or each other: E0052 for
/// inputs whose examples do not hold the model's input, E0051 at the file
/// for the rest. `spans` are the inputs' and the labels' (path, span, text).
fn fit(ctx: &mut Ctx, input: Option<(&Shape, Span)>, x: &ArrayFacts, y: &ArrayFacts, spans: &[(PathBuf, Span, &str); 2]) -> Option<Task> {
    let Some((shape, input_span)) = input else {
        return Some(if y.header.dtype.is_integer() { Task::Classify } else { Task::Regress });
    };
    let per_example: usize = x.header.shape.get(1..).map_or(0, |rest| rest.iter().product());
    if x.header.shape.len() < 2 || per_example != shape.numel() {
        ctx.problems.push(Problem::DataShapeMismatch {
            span: spans[0].1,
            input_span,
            data: format!("an array of shape {:?}", x.header.shape),
            input: shape.clone(),
            help: Some(match x.header.shape.get(1..) {
                Some(rest) if !rest.is_empty() => format!("use `input {rest:?}`, or reshape the array to [n, {}]", join(&shape.0)),
                _ => format!("save the inputs with shape [n, {}]", join(&shape.0)),
            }),
        });
        return None;
    }
    match pair_task(&spans[0].0, &x.header, &spans[1].0, &y.header, &shape.0) {
        Ok(task) => Some(task),
        Err(e) => {
            let at = if e.path.as_deref() == Some(spans[0].0.as_path()) && spans[0].0 != spans[1].0 { &spans[0] } else { &spans[1] };
            bad_file(ctx, at.1, at.2, e);
            None
        }
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}
