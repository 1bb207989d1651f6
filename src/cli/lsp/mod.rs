//! `lpnc lsp`: a Language Server Protocol server on stdin/stdout. It keeps
//! each open document's text, checks it on every change with `lpnc check`'s
//! checker (data paths from the document's folder) and publishes all its
//! diagnostics; hover, completion, definition, outline and quick fixes are
//! `lpn::language::ide`'s answers, converted in `convert.rs`. Positions are
//! UTF-16 columns, as the protocol's default.
//!
//! Transport: `lsp-server` (rust-analyzer's): synchronous, a thread per
//! direction and a channel; no async runtime for a server whose every
//! answer takes a few milliseconds.

mod convert;

use std::collections::HashMap;
use std::process::ExitCode;

use lpn::language::check::CachedEnvironment;
use lpn::language::diagnostic::Problem;
use lpn::language::ide::{self, Analysis, line_index::LineIndex};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types as lsp;
use lsp_types::notification::Notification as _;
use lsp_types::request::Request as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use convert::Text;

/// Rewrites a file in the canonical layout, or says why it cannot.
pub type Formatter = fn(&str) -> Result<String, Vec<Problem>>;

/// `lpnc fmt`'s printer for the formatting request. The printer asserts
/// that no comment is lost (a bug there must not delete a user's text); in
/// the server that assertion must not end the session, so a panic answers
/// "no edit" and the document stays as typed.
fn format_or_leave(source: &str) -> Result<String, Vec<Problem>> {
    std::panic::catch_unwind(|| lpn::language::format::format_source(source)).unwrap_or_else(|_| Err(Vec::new()))
}

/// `lpnc lsp`: serves until the client says `exit`.
pub fn serve() -> ExitCode {
    let (connection, io_threads) = Connection::stdio();
    let formatter: Option<Formatter> = Some(format_or_leave);
    let served = run(&connection, formatter);
    drop(connection);
    let joined = io_threads.join();
    match served.and(joined.map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::from(super::OK),
        Err(message) => {
            eprintln!("error: lpnc lsp: {message}");
            ExitCode::from(super::USAGE_OR_IO)
        }
    }
}

/// The handshake, then the loop until `shutdown` and `exit`.
pub fn run(connection: &Connection, formatter: Option<Formatter>) -> Result<(), String> {
    let capabilities = serde_json::to_value(capabilities(formatter.is_some())).map_err(|e| e.to_string())?;
    connection.initialize(capabilities).map_err(|e| e.to_string())?;
    let mut server = Server { connection, documents: HashMap::new(), env: CachedEnvironment::default(), formatter };
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request).map_err(|e| e.to_string())? {
                    return Ok(());
                }
                let response = server.request(request);
                server.send(Message::Response(response));
            }
            Message::Notification(notification) => server.notification(notification),
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn capabilities(formatting: bool) -> lsp::ServerCapabilities {
    lsp::ServerCapabilities {
        position_encoding: Some(lsp::PositionEncodingKind::UTF16),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Kind(lsp::TextDocumentSyncKind::INCREMENTAL)),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        completion_provider: Some(lsp::CompletionOptions {
            trigger_characters: Some(["@", "(", ",", "="].map(String::from).to_vec()),
            ..lsp::CompletionOptions::default()
        }),
        definition_provider: Some(lsp::OneOf::Left(true)),
        document_symbol_provider: Some(lsp::OneOf::Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Options(lsp::CodeActionOptions {
            code_action_kinds: Some(vec![lsp::CodeActionKind::QUICKFIX]),
            ..lsp::CodeActionOptions::default()
        })),
        document_formatting_provider: formatting.then_some(lsp::OneOf::Left(true)),
        ..lsp::ServerCapabilities::default()
    }
}

struct Document {
    text: String,
    index: LineIndex,
    analysis: Analysis,
}

impl Document {
    fn text(&self) -> Text<'_> {
        Text { text: &self.text, index: &self.index }
    }
}

struct Server<'c> {
    connection: &'c Connection,
    documents: HashMap<lsp::Uri, Document>,
    /// Remembers the data files' figures between checks.
    env: CachedEnvironment,
    formatter: Option<Formatter>,
}

impl Server<'_> {
    fn send(&self, message: Message) {
        // The client is gone if this fails; the loop ends with the channel.
        let _ = self.connection.sender.send(message);
    }

    fn notification(&mut self, notification: Notification) {
        use lsp::notification::{DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument};
        match notification.method.as_str() {
            DidOpenTextDocument::METHOD => {
                if let Ok(params) = serde_json::from_value::<lsp::DidOpenTextDocumentParams>(notification.params) {
                    self.set_text(params.text_document.uri, params.text_document.text, params.text_document.version);
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(params) = serde_json::from_value::<lsp::DidChangeTextDocumentParams>(notification.params) {
                    self.change(params);
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(params) = serde_json::from_value::<lsp::DidCloseTextDocumentParams>(notification.params) {
                    self.documents.remove(&params.text_document.uri);
                    self.publish(params.text_document.uri, Vec::new(), None);
                }
            }
            _ => {}
        }
    }

    /// Applies the edits in order (each range is in the text as the edits
    /// before it left it), then checks the result once.
    fn change(&mut self, params: lsp::DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let Some(document) = self.documents.get(&uri) else { return };
        let mut text = document.text.clone();
        for change in params.content_changes {
            match change.range {
                Some(range) => {
                    let index = LineIndex::new(&text);
                    let span = Text { text: &text, index: &index }.span(range);
                    text.replace_range(span.start..span.end, &change.text);
                }
                None => text = change.text,
            }
        }
        self.set_text(uri, text, params.text_document.version);
    }

    /// Checks the document's new text and publishes its diagnostics, for that version.
    fn set_text(&mut self, uri: lsp::Uri, text: String, version: i32) {
        let base_dir = convert::base_dir(&uri);
        let analysis = ide::analyze(&text, &base_dir, &self.env);
        let document = Document { index: LineIndex::new(&text), text, analysis };
        let diagnostics = document.analysis.problems.iter().map(|p| convert::diagnostic(p, &document.text(), &uri)).collect();
        self.documents.insert(uri.clone(), document);
        self.publish(uri, diagnostics, Some(version));
    }

    fn publish(&self, uri: lsp::Uri, diagnostics: Vec<lsp::Diagnostic>, version: Option<i32>) {
        let params = lsp::PublishDiagnosticsParams { uri, diagnostics, version };
        self.send(Message::Notification(Notification::new(lsp::notification::PublishDiagnostics::METHOD.into(), params)));
    }

    fn request(&self, request: Request) -> Response {
        use lsp::request::{CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest};
        match request.method.as_str() {
            HoverRequest::METHOD => answer(request, |p: lsp::HoverParams| self.hover(p)),
            Completion::METHOD => answer(request, |p: lsp::CompletionParams| self.completion(p)),
            GotoDefinition::METHOD => answer(request, |p: lsp::GotoDefinitionParams| self.definition(p)),
            DocumentSymbolRequest::METHOD => answer(request, |p: lsp::DocumentSymbolParams| self.symbols(p)),
            CodeActionRequest::METHOD => answer(request, |p: lsp::CodeActionParams| self.code_actions(p)),
            Formatting::METHOD if self.formatter.is_some() => answer(request, |p: lsp::DocumentFormattingParams| self.format(p)),
            _ => Response::new_err(request.id, ErrorCode::MethodNotFound as i32, format!("lpnc lsp does not answer {}", request.method)),
        }
    }

    /// The document and the byte offset of a position in it.
    fn at(&self, position: &lsp::TextDocumentPositionParams) -> Option<(&Document, usize)> {
        let document = self.documents.get(&position.text_document.uri)?;
        let offset = document.text().offset(position.position);
        Some((document, offset))
    }

    fn hover(&self, params: lsp::HoverParams) -> Option<lsp::Hover> {
        let (document, offset) = self.at(&params.text_document_position_params)?;
        let found = ide::hover::hover(&document.analysis, offset)?;
        Some(lsp::Hover {
            contents: lsp::HoverContents::Markup(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: found.markdown }),
            range: Some(document.text().range(found.span)),
        })
    }

    fn completion(&self, params: lsp::CompletionParams) -> Option<lsp::CompletionResponse> {
        let (document, offset) = self.at(&params.text_document_position)?;
        let found = ide::complete::complete(&document.analysis, offset);
        let replace = document.text().range(found.replace);
        Some(lsp::CompletionResponse::Array(found.items.into_iter().map(|item| convert::completion(item, replace)).collect()))
    }

    fn definition(&self, params: lsp::GotoDefinitionParams) -> Option<lsp::GotoDefinitionResponse> {
        let (document, offset) = self.at(&params.text_document_position_params)?;
        let span = ide::navigate::definition(&document.analysis, offset)?;
        let uri = params.text_document_position_params.text_document.uri;
        Some(lsp::GotoDefinitionResponse::Scalar(lsp::Location { uri, range: document.text().range(span) }))
    }

    fn symbols(&self, params: lsp::DocumentSymbolParams) -> Option<lsp::DocumentSymbolResponse> {
        let document = self.documents.get(&params.text_document.uri)?;
        let symbols = ide::navigate::symbols(&document.analysis);
        Some(lsp::DocumentSymbolResponse::Nested(symbols.into_iter().map(|s| convert::symbol(s, &document.text())).collect()))
    }

    fn code_actions(&self, params: lsp::CodeActionParams) -> Option<Vec<lsp::CodeActionOrCommand>> {
        let uri = params.text_document.uri;
        let document = self.documents.get(&uri)?;
        let text = document.text();
        let fixes = ide::actions::quick_fixes(&document.analysis.problems, text.span(params.range));
        let actions = fixes.into_iter().map(|fix| {
            let edit = lsp::TextEdit { range: text.range(fix.span), new_text: fix.replacement };
            lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
                title: fix.title,
                kind: Some(lsp::CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![convert::diagnostic(&fix.problem, &text, &uri)]),
                edit: Some(lsp::WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..lsp::WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..lsp::CodeAction::default()
            })
        });
        Some(actions.collect())
    }

    /// The whole document replaced by its formatted text; no edit when it is
    /// formatted already or does not parse (its diagnostics say why).
    fn format(&self, params: lsp::DocumentFormattingParams) -> Option<Vec<lsp::TextEdit>> {
        let document = self.documents.get(&params.text_document.uri)?;
        let formatted = (self.formatter?)(&document.text).ok()?;
        if formatted == document.text {
            return Some(Vec::new());
        }
        Some(vec![lsp::TextEdit {
            range: document.text().range(lpn::language::ast::Span::new(0, document.text.len())),
            new_text: formatted,
        }])
    }
}

/// Parses a request's parameters and answers with `handle`'s result
/// (`null` when it has none, as the protocol allows).
fn answer<P: DeserializeOwned, R: Serialize>(request: Request, handle: impl FnOnce(P) -> Option<R>) -> Response {
    match serde_json::from_value::<P>(request.params) {
        Ok(params) => Response::new_ok(request.id, handle(params)),
        Err(e) => Response::new_err(request.id, ErrorCode::InvalidParams as i32, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn shout(text: &str) -> Result<String, Vec<Problem>> {
        Ok(text.to_uppercase())
    }

    /// The next message that is not a notification.
    fn response(client: &Connection) -> Response {
        loop {
            match client.receiver.recv().expect("the server answers") {
                Message::Response(response) => return response,
                Message::Request(_) | Message::Notification(_) => {}
            }
        }
    }

    fn ask(client: &Connection, id: i32, method: &str, params: Value) -> Value {
        client.sender.send(Message::Request(Request::new(id.into(), method.into(), params))).unwrap();
        let answer = response(client);
        assert!(answer.error.is_none(), "{:?}", answer.error);
        answer.result.unwrap_or(Value::Null)
    }

    fn tell(client: &Connection, method: &str, params: Value) {
        client.sender.send(Message::Notification(Notification::new(method.into(), params))).unwrap();
    }

    #[test]
    fn the_formatting_hook_replaces_the_whole_document() {
        let (server, client) = Connection::memory();
        let serving = std::thread::spawn(move || run(&server, Some(shout)));
        let init = ask(&client, 1, "initialize", json!({ "capabilities": {} }));
        assert_eq!(init["capabilities"]["documentFormattingProvider"], true);
        tell(&client, "initialized", json!({}));
        let uri = "file:///tmp/a.lpn";
        let text = "model m {\n  // é\n}\n";
        tell(&client, "textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "lpn", "version": 1, "text": text } }));
        let edits = ask(
            &client,
            2,
            "textDocument/formatting",
            json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
        );
        assert_eq!(edits[0]["newText"], text.to_uppercase());
        // The whole text: to the end of the last line (line 3, column 0).
        assert_eq!(edits[0]["range"], json!({ "start": { "line": 0, "character": 0 }, "end": { "line": 3, "character": 0 } }));
        ask(&client, 3, "shutdown", Value::Null);
        tell(&client, "exit", Value::Null);
        serving.join().unwrap().unwrap();
    }
}
