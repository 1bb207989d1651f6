//! Our answers (`lpn::language::ide`, problems) in the protocol's types:
//! byte spans to UTF-16 ranges, problems to diagnostics, symbols, items.

use lpn::language::ast::Span;
use lpn::language::diagnostic::{Problem, Severity};
use lpn::language::ide::complete::{Completion, CompletionKind};
use lpn::language::ide::line_index::LineIndex;
use lpn::language::ide::navigate::{Symbol, SymbolKind};
use lsp_types as lsp;

/// A document's text with its line index: spans ↔ ranges.
pub struct Text<'a> {
    pub text: &'a str,
    pub index: &'a LineIndex,
}

impl Text<'_> {
    pub fn range(&self, span: Span) -> lsp::Range {
        lsp::Range { start: self.position(span.start), end: self.position(span.end) }
    }

    pub fn position(&self, offset: usize) -> lsp::Position {
        let (line, character) = self.index.position(self.text, offset);
        lsp::Position { line, character }
    }

    pub fn offset(&self, position: lsp::Position) -> usize {
        self.index.offset(self.text, position.line, position.character)
    }

    pub fn span(&self, range: lsp::Range) -> Span {
        let (start, end) = (self.offset(range.start), self.offset(range.end));
        Span::new(start.min(end), start.max(end))
    }
}

/// A problem as `lpnc check` words it: the message with the primary label
/// and the help under it, the other labels as related information, the code
/// (its long explanation in `data.explanation`, and in hover over the span).
pub fn diagnostic(problem: &Problem, text: &Text, uri: &lsp::Uri) -> lsp::Diagnostic {
    let words = problem.to_diagnostic();
    let primary = words.labels.first().map(|l| l.span).unwrap_or_default();
    let mut message = words.message.clone();
    if let Some(label) = words.labels.first().filter(|l| !l.text.is_empty()) {
        message.push_str(&format!("\n{}", label.text));
    }
    if let Some(help) = &words.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = words.labels[words.labels.len().min(1)..]
        .iter()
        .map(|l| lsp::DiagnosticRelatedInformation {
            location: lsp::Location { uri: uri.clone(), range: text.range(l.span) },
            message: l.text.clone(),
        })
        .collect();
    lsp::Diagnostic {
        range: text.range(primary),
        severity: Some(match words.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(lsp::NumberOrString::String(words.code.into())),
        code_description: None,
        source: Some("lpnc".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: lpn::language::codes::explanation(words.code).map(|text| serde_json::json!({ "explanation": text })),
    }
}

pub fn completion(item: Completion, replace: lsp::Range) -> lsp::CompletionItem {
    lsp::CompletionItem {
        kind: Some(match item.kind {
            CompletionKind::Section => lsp::CompletionItemKind::MODULE,
            CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
            CompletionKind::Layer => lsp::CompletionItemKind::CLASS,
            CompletionKind::Annotation => lsp::CompletionItemKind::INTERFACE,
            CompletionKind::Parameter => lsp::CompletionItemKind::FIELD,
            CompletionKind::Value => lsp::CompletionItemKind::ENUM_MEMBER,
        }),
        detail: Some(item.detail),
        documentation: (!item.documentation.is_empty()).then_some(lsp::Documentation::MarkupContent(lsp::MarkupContent {
            kind: lsp::MarkupKind::Markdown,
            value: item.documentation,
        })),
        insert_text_format: Some(lsp::InsertTextFormat::SNIPPET),
        text_edit: Some(lsp::CompletionTextEdit::Edit(lsp::TextEdit { range: replace, new_text: item.snippet })),
        label: item.label,
        ..lsp::CompletionItem::default()
    }
}

pub fn symbol(symbol: Symbol, text: &Text) -> lsp::DocumentSymbol {
    #[allow(deprecated)] // `deprecated` is a field the type still has.
    lsp::DocumentSymbol {
        name: symbol.name,
        detail: symbol.detail,
        kind: match symbol.kind {
            SymbolKind::Section => lsp::SymbolKind::MODULE,
            SymbolKind::Input => lsp::SymbolKind::PROPERTY,
            SymbolKind::Layer => lsp::SymbolKind::FUNCTION,
            SymbolKind::Structure => lsp::SymbolKind::NAMESPACE,
            SymbolKind::Setting => lsp::SymbolKind::PROPERTY,
            SymbolKind::Phase => lsp::SymbolKind::EVENT,
        },
        tags: None,
        deprecated: None,
        range: text.range(symbol.span),
        selection_range: text.range(symbol.selection),
        children: Some(symbol.children.into_iter().map(|c| self::symbol(c, text)).collect()),
    }
}

/// The folder a `file:` URI's document is in (data paths start there);
/// the current folder for other schemes (an unsaved buffer).
pub fn base_dir(uri: &lsp::Uri) -> std::path::PathBuf {
    let Some(rest) = uri.as_str().strip_prefix("file://") else { return ".".into() };
    // `file://host/path`: the path starts at the first slash.
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    let path = std::path::PathBuf::from(percent_decode(path));
    path.parent().map(std::path::Path::to_path_buf).filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| ".".into())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_uri_gives_its_folder() {
        let uri: lsp::Uri = "file:///work/my%20models/a.lpn".parse().unwrap();
        assert_eq!(base_dir(&uri), std::path::PathBuf::from("/work/my models"));
        let uri: lsp::Uri = "untitled:Untitled-1".parse().unwrap();
        assert_eq!(base_dir(&uri), std::path::PathBuf::from("."));
    }
}
