//! The one place where problems become output: miette reports for people,
//! JSON lines for editors and scripts.

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError, MietteSpanContents, SourceCode, SourceSpan,
    SpanContents,
};
use serde::Serialize;

use crate::language::diagnostic::{Diagnostic, Problem, Severity};

/// Renders problems as miette reports, one after the other.
///
/// Linear in the size of the source and the number of problems: the source is
/// indexed by line once, each report reads only the lines it shows, and a very
/// long line is shown as a window around the label (see [`Indexed`]).
///
/// A byte-order mark at the start of `source` is not shown: the reports
/// quote the text after it, and columns count from there, as an editor shows
/// the file.
pub fn render_human(problems: &[Problem], source: &str, file_name: &str, color: bool) -> String {
    let origin = bom_len(source);
    render_human_at(problems, &source[origin..], origin, file_name, color)
}

/// `render_human` for a text whose spans start at `origin`: a file after its
/// byte-order mark, or a `--set` override placed after the file
/// (`overrides::Placed`).
pub fn render_human_at(problems: &[Problem], text: &str, origin: usize, file_name: &str, color: bool) -> String {
    if problems.is_empty() {
        // Nothing to show: skip indexing the lines of a possibly huge source.
        return String::new();
    }
    let indexed = Indexed::new(text, file_name);
    let render_part = |part: &[Problem]| {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        // Lines wrap at spaces only: miette's default, Unicode's line-breaking
        // rules, was a tenth of `lpnc check`'s time on a file with 2,000
        // warnings, and broke lines inside paths and formulas (`data/` |
        // `file.csv`, `6.6/` | `k`), which now stay whole.
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false)
            .with_word_separator(textwrap::WordSeparator::AsciiSpace);
        let mut out = String::new();
        for problem in part {
            let report = Located { inner: to_miette(&problem.to_diagnostic(), text, origin), source: &indexed };
            if handler.render_report(&mut out, &report).is_err() {
                // Rendering into a String cannot fail short of a bug in miette; fall back to the plain message.
                out.push_str(&problem.to_diagnostic().message);
            }
            out.push('\n');
        }
        out
    };
    // Each report is laid out on its own, so thousands of them (a generated
    // model, a file of broken lines) are split into runs laid out on every
    // core and joined in order: the text is the same. Few reports stay on
    // this thread, where starting threads would cost more than it saves.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    in_runs(problems, cores.min(problems.len() / REPORTS_PER_THREAD), render_part)
}

/// `render` over `items` cut into `parts` runs, each on a scoped thread of
/// its own, the texts joined in order; one run (or none asked) stays on this
/// thread.
fn in_runs<T: Sync>(items: &[T], parts: usize, render: impl Fn(&[T]) -> String + Sync) -> String {
    if parts <= 1 || items.is_empty() {
        return render(items);
    }
    std::thread::scope(|scope| {
        let runs: Vec<_> = items.chunks(items.len().div_ceil(parts)).map(|run| scope.spawn(|| render(run))).collect();
        runs.into_iter().map(|run| run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

/// The fewest reports worth a thread of their own (each takes about ten
/// microseconds to lay out; starting a thread, tens).
const REPORTS_PER_THREAD: usize = 256;

/// A label longer than this is shown by its start only (a label over a whole
/// section of a huge file would otherwise print all of it).
const MAX_LABEL: usize = 1024;
/// Lines around a label longer than this together are shown as a window.
const LONG_REGION: usize = 4096;
/// How much of a long line a window shows on each side of its label.
const WINDOW: usize = 96;

/// The length of a byte-order mark at the start of `source` (0 without one).
fn bom_len(source: &str) -> usize {
    if source.starts_with('\u{FEFF}') { '\u{FEFF}'.len_utf8() } else { 0 }
}

/// Labels of `d`, whose spans are offsets into a source of which `source` is
/// the part from byte `origin` on.
fn to_miette(d: &Diagnostic, source: &str, origin: usize) -> MietteDiagnostic {
    let labels = d.labels.iter().enumerate().map(|(i, l)| {
        let start = l.span.start.saturating_sub(origin);
        let (start, mut len) = clamp(start, l.span.end.saturating_sub(origin).max(start) - start, source.len());
        if len > MAX_LABEL {
            len = floor_boundary(source, start + MAX_LABEL) - start;
        }
        if i == 0 {
            LabeledSpan::new_primary_with_span(Some(l.text.clone()), (start, len))
        } else {
            LabeledSpan::new_with_span(Some(l.text.clone()), (start, len))
        }
    });
    let mut diagnostic = MietteDiagnostic::new(d.message.clone()).with_code(d.code).with_severity(match d.severity {
        Severity::Error => miette::Severity::Error,
        Severity::Warning => miette::Severity::Warning,
    });
    diagnostic = diagnostic.with_labels(labels);
    if let Some(help) = &d.help {
        diagnostic = diagnostic.with_help(help.clone());
    }
    diagnostic
}

/// A diagnostic with a borrowed, indexed source, so rendering a report copies
/// nothing.
#[derive(Debug)]
struct Located<'a> {
    inner: MietteDiagnostic,
    source: &'a Indexed<'a>,
}

impl std::fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for Located<'_> {}

impl miette::Diagnostic for Located<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.inner.labels()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
}

/// The source with the start of every line, as miette counts lines (`\n`,
/// `\r\n` or a lone `\r` ends one). Reading a span costs the lines it shows,
/// not the bytes before it. Where those lines are short this gives exactly
/// what miette's own reading of a `str` gives; where they are long (over
/// `LONG_REGION` bytes) it gives the label's lines cut to a window of `WINDOW`
/// bytes each side, without context lines.
#[derive(Debug)]
struct Indexed<'a> {
    text: &'a str,
    name: &'a str,
    starts: Vec<usize>,
}

impl<'a> Indexed<'a> {
    fn new(text: &'a str, name: &'a str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    starts.push(i);
                }
                b'\r' | b'\n' => {
                    i += 1;
                    starts.push(i);
                }
                _ => i += 1,
            }
        }
        Indexed { text, name, starts }
    }

    /// 0-based line holding byte `offset`; a line's terminator belongs to it.
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }

    /// Byte where `line` (0-based) starts; the length of the text past the end.
    fn start_of(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.text.len())
    }
}

impl SourceCode for Indexed<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let (start, end) = (span.offset(), span.offset() + span.len());
        if end > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = self.line_of(start);
        let last = self.line_of(end.saturating_sub(1).max(start));
        let context_first = first.saturating_sub(context_lines_before);
        let base = self.start_of(context_first);
        // miette may read one line past the context when a span ends on a
        // line break.
        let region_end = self.start_of(last + context_lines_after + 2);
        if region_end - base <= LONG_REGION {
            // miette's own reading on the text from the first line shown: the
            // same result, shifted, without walking the text before it.
            let contents = self.text[base..].read_span(&(start - base, span.len()).into(), context_lines_before, context_lines_after)?;
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.to_string(),
                contents.data(),
                (contents.span().offset() + base, contents.span().len()).into(),
                contents.line() + context_first,
                contents.column(),
                contents.line_count() + context_first,
            )));
        }
        // Long lines. Two labels far apart on one are shown apart: refuse the
        // merged span miette asks for.
        if span.len() > MAX_LABEL + 2 * WINDOW {
            return Err(MietteError::OutOfBounds);
        }
        let line_start = self.start_of(first);
        let line_end = {
            let e = self.start_of(last + 1);
            let bytes = self.text.as_bytes();
            let mut e = e;
            if e > line_start && bytes[e - 1] == b'\n' {
                e -= 1;
            }
            if e > line_start && bytes[e - 1] == b'\r' {
                e -= 1;
            }
            e.max(end)
        };
        // The header's line:column reads the label alone, from its start.
        let from = if context_lines_before == 0 && context_lines_after == 0 { start } else { start.saturating_sub(WINDOW).max(line_start) };
        let from = floor_boundary(self.text, from);
        let to = ceil_boundary(self.text, (end + WINDOW).min(line_end).max(end));
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            &self.text.as_bytes()[from..to],
            (from, to - from).into(),
            first,
            from - line_start,
            self.line_of(to),
        )))
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn clamp(start: usize, len: usize, total: usize) -> (usize, usize) {
    let start = start.min(total);
    (start, len.min(total - start))
}

/// A label's place. `offset` and `length` are bytes of the file as read, a
/// byte-order mark included; `line` and `column` are as an editor shows
/// them, so a mark at the start takes no column.
#[derive(Clone, Debug, Serialize)]
pub struct JsonLabel {
    pub offset: usize,
    pub length: usize,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub label: String,
}

/// One problem as `--message-format json` gives it: its code (`E0028`),
/// severity, message, help, and the places it points at.
#[derive(Clone, Debug, Serialize)]
pub struct JsonDiagnostic {
    pub file: String,
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    pub labels: Vec<JsonLabel>,
}

pub fn to_json(problem: &Problem, source: &str, file_name: &str) -> JsonDiagnostic {
    let d = problem.to_diagnostic();
    let labels = d
        .labels
        .iter()
        .map(|l| {
            let (offset, length) = clamp(l.span.start, l.span.len(), source.len());
            let (line, column) = line_column(source, offset);
            JsonLabel { offset, length, line, column, label: l.text.clone() }
        })
        .collect();
    JsonDiagnostic { file: file_name.to_string(), code: d.code, severity: d.severity, message: d.message, help: d.help, labels }
}

/// Every problem as JSON, in one pass over the source: linear where calling
/// [`to_json`] for each problem would walk the source once per label.
pub fn to_json_all(problems: &[Problem], source: &str, file_name: &str) -> Vec<JsonDiagnostic> {
    let diagnostics: Vec<Diagnostic> = problems.iter().map(Problem::to_diagnostic).collect();
    let mut offsets: Vec<usize> =
        diagnostics.iter().flat_map(|d| d.labels.iter().map(|l| clamp(l.span.start, l.span.len(), source.len()).0)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    // One sweep: (offset, line, column) for every label start, in order.
    let mut positions: Vec<(usize, usize, usize)> = Vec::with_capacity(offsets.len());
    // Columns count from after a byte-order mark (see `JsonLabel`).
    let (mut at, mut line, mut column) = (bom_len(source), 1usize, 1usize);
    for &offset in &offsets {
        let target = floor_boundary(source, offset).max(at);
        let between = &source[at..target];
        match between.rfind('\n') {
            Some(last) => {
                line += between.matches('\n').count();
                column = 1 + between[last + 1..].chars().count();
            }
            None => column += between.chars().count(),
        }
        at = target;
        positions.push((offset, line, column));
    }
    diagnostics
        .into_iter()
        .map(|d| {
            let labels = d
                .labels
                .iter()
                .map(|l| {
                    let (offset, length) = clamp(l.span.start, l.span.len(), source.len());
                    let i = positions.partition_point(|p| p.0 < offset);
                    let (line, column) = positions.get(i).map(|p| (p.1, p.2)).unwrap_or_else(|| line_column(source, offset));
                    JsonLabel { offset, length, line, column, label: l.text.clone() }
                })
                .collect();
            JsonDiagnostic { file: file_name.to_string(), code: d.code, severity: d.severity, message: d.message, help: d.help, labels }
        })
        .collect()
}

/// 1-based line and character column of a byte offset.
///
/// A byte-order mark at the start takes no column.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len()).max(bom_len(source));
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(bom_len(source));
    (line, source[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::{REPORTS_PER_THREAD, in_runs, line_column, render_human};
    use crate::language::check::check_source;

    #[test]
    fn runs_on_threads_join_in_order() {
        // Whatever this machine's core count, three runs take three threads.
        let items: Vec<usize> = (0..1000).collect();
        let each = |run: &[usize]| run.iter().map(|i| format!("{i},")).collect::<String>();
        assert_eq!(in_runs(&items, 3, each), each(&items));
        assert_eq!(in_runs(&items[..2], 3, each), "0,1,");
        assert_eq!(in_runs(&items[..0], 3, each), "");
    }

    #[test]
    fn many_reports_render_as_each_alone_in_order() {
        // Enough problems for the runs on several threads; each line's own.
        let lines: String = (0..3 * REPORTS_PER_THREAD).map(|i| format!("  conv{i}(k=3)\n")).collect();
        let source = format!("model m {{\n  input [1, 64]\n{lines}}}\ndata sines()\n");
        let (_, checked) = check_source(&source, std::path::Path::new("."));
        assert!(checked.problems.len() >= 3 * REPORTS_PER_THREAD);
        let whole = render_human(&checked.problems, &source, "t.lpn", false);
        let one_by_one: String = checked.problems.iter().map(|p| render_human(std::slice::from_ref(p), &source, "t.lpn", false)).collect();
        assert_eq!(whole, one_by_one);
        assert!(whole.contains("conv0") && whole.contains(&format!("conv{}", 3 * REPORTS_PER_THREAD - 1)));
    }

    #[test]
    fn lines_and_columns_are_one_based() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        assert_eq!(line_column(src, 7), (2, 4));
        assert_eq!(line_column(src, src.len()), (3, 2));
    }
}
