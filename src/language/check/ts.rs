//! The `ts` data source at check time: the `.ts` file read through the
//! environment by `crate::data::ts` (the code that loads it), its rows'
//! problems at file:line:column (E0051), its `[channels, length]` against
//! the model's input (E0052), and its classes counted.

use crate::data::ts::read_ts;
use crate::language::ast::Span;
use crate::language::check::Ctx;
use crate::language::check::data::{SourceFacts, bad_file, dataset_bytes};
use crate::language::check::params::Call;
use crate::language::diagnostic::Problem;
use crate::language::ir::Source;
use crate::language::schema::Task;
use crate::language::shape::Shape;

/// `ts("file.ts")`.
pub fn ts_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let written = call.str("path")?;
    let span = call.span_of("path");
    let path = ctx.resolve_path(written, span)?;
    let table = match read_ts(ctx.env, &path) {
        Ok(table) => table,
        Err(e) => {
            bad_file(ctx, span, written, e);
            return None;
        }
    };
    let classes = table.class_names();
    if classes.len() < 2 {
        bad_file(ctx, span, written, crate::data::numpy::one_class(&path, format!("`{}`", classes[0])));
        return None;
    }
    if let Some((shape, input_span)) = input
        && shape.numel() != table.channels * table.length
    {
        ctx.problems.push(Problem::DataShapeMismatch {
            span,
            input_span,
            data: format!("series of {} channels × {} samples", table.channels, table.length),
            input: shape.clone(),
            help: Some(format!("use `input [{}, {}]`", table.channels, table.length)),
        });
    }
    let bytes = dataset_bytes(table.labels.len(), input, Task::Classify);
    Some(SourceFacts {
        source: Source::Ts { path },
        task: Task::Classify,
        classes: Some(classes.len()),
        span: call.span,
        ucr: None,
        bytes,
        targets: None,
    })
}
