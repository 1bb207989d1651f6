//! The one place where problems become output: miette reports for people,
//! JSON lines for editors and scripts.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Problem, Severity};

/// Renders problems as miette reports, one after the other.
pub fn render_human(problems: &[Problem], source: &str, file_name: &str, color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    for problem in problems {
        let report = to_miette(&problem.to_diagnostic(), source, file_name);
        if handler.render_report(&mut out, report.as_ref()).is_err() {
            // Rendering into a String cannot fail short of a bug in miette; fall back to the plain message.
            out.push_str(&problem.to_diagnostic().message);
        }
        out.push('\n');
    }
    out
}

fn to_miette(d: &Diagnostic, source: &str, file_name: &str) -> miette::Report {
    let labels = d.labels.iter().enumerate().map(|(i, l)| {
        let span = clamp(l.span.start, l.span.len(), source.len());
        if i == 0 {
            LabeledSpan::new_primary_with_span(Some(l.text.clone()), span)
        } else {
            LabeledSpan::new_with_span(Some(l.text.clone()), span)
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
    miette::Report::new(diagnostic).with_source_code(NamedSource::new(file_name, source.to_string()))
}

fn clamp(start: usize, len: usize, total: usize) -> (usize, usize) {
    let start = start.min(total);
    (start, len.min(total - start))
}

#[derive(Serialize)]
pub struct JsonLabel {
    pub offset: usize,
    pub length: usize,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub label: String,
}

#[derive(Serialize)]
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

/// 1-based line and character column of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, source[line_start..offset].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn lines_and_columns_are_one_based() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        assert_eq!(line_column(src, 7), (2, 4));
        assert_eq!(line_column(src, src.len()), (3, 2));
    }
}
