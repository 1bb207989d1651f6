//! The `pairs` data source at check time: both CSV files are read through
//! the environment by the reader that loads them (`crate::data::pairs`), so
//! a ragged row or a value that is not a number is E0051 at its
//! `file:line:column`; rows of `x` that do not hold the model's input are
//! E0052; files with different numbers of rows are E0145. The width of
//! `y`'s rows is the regression target, which `data::check_train` compares
//! with the model's output (E0146).

use std::path::Path;

use crate::data::DataError;
use crate::data::pairs::read_table;
use crate::language::ast::Span;
use crate::language::check::Ctx;
use crate::language::check::data::{SourceFacts, bad_file};
use crate::language::check::environment::Environment;
use crate::language::check::params::Call;
use crate::language::diagnostic::Problem;
use crate::language::ir::Source;
use crate::language::schema::Task;
use crate::language::shape::Shape;

/// `pairs(x="in.csv", y="out.csv")`.
pub fn pairs_source(ctx: &mut Ctx, call: &Call, input: Option<(&Shape, Span)>) -> Option<SourceFacts> {
    let (x_written, y_written) = (call.str("x")?, call.str("y")?);
    let (x_span, y_span) = (call.span_of("x"), call.span_of("y"));
    let x_path = ctx.resolve_path(x_written, x_span);
    let y_path = ctx.resolve_path(y_written, y_span);
    let (x_path, y_path) = (x_path?, y_path?);
    let mut probe = |path: &Path, written: &str, span: Span| -> Option<Rows> {
        probe_rows(ctx.env, path).map_err(|e| bad_file(ctx, span, written, e)).ok()
    };
    let x = probe(&x_path, x_written, x_span);
    let y = probe(&y_path, y_written, y_span);
    let (x, y) = (x?, y?);
    if let Some((shape, input_span)) = input
        && shape.numel() != x.width
    {
        let help = Some(match shape.rank() {
            1 => format!("use `input [{}]`", x.width),
            _ => format!("use an input with {} values, such as `input [1, {}]`", x.width, x.width),
        });
        let data = format!("rows of {} values", x.width);
        ctx.problems.push(Problem::DataShapeMismatch { span: x_span, input_span, data, input: shape.clone(), help });
    }
    let (x_rows, y_rows) = (x.lines.len(), y.lines.len());
    if x_rows != y_rows {
        let (longer, path, rows) = if x_rows > y_rows { (&x, x_written, y_rows) } else { (&y, y_written, x_rows) };
        let first = format!("{path}:{}", longer.lines[rows]);
        ctx.problems.push(Problem::UnpairedRows { x_span, y_span, x_rows, y_rows, first });
    }
    let per_example = input.map_or(0, |(shape, _)| shape.numel()).saturating_add(y.width) as u64;
    Some(SourceFacts {
        source: Source::Pairs { x: x_path, y: y_path },
        task: Task::Regress,
        classes: None,
        span: call.span,
        ucr: None,
        bytes: (x_rows as u64).saturating_mul(per_example).saturating_mul(4),
        targets: Some(vec![y.width]),
    })
}

/// What the checker needs of a CSV of numbers: its rows' width and lines.
#[derive(Clone)]
struct Rows {
    width: usize,
    lines: Vec<usize>,
}

/// The rows of the CSV at `path`, through the environment's memo if it keeps
/// one (`lpnc lsp` checks on every change; the files are read again only
/// when they change).
fn probe_rows(env: &dyn Environment, path: &Path) -> Result<Rows, DataError> {
    let read = || read_table(env, path).map(|table| Rows { width: table.width, lines: table.lines });
    match env.memo() {
        Some(memo) => memo.remember(path, "rows of numbers", read),
        None => read(),
    }
}
