//! `lpnc lsp` end to end: each test starts the server as a child process and
//! speaks JSON-RPC to it with Content-Length framing, as an editor does.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

/// A client: writes requests to the server's stdin; a thread reads its stdout
/// into a channel, so a silent server fails the test instead of hanging it.
struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Notifications read while waiting for a response.
    pending: Vec<Value>,
    next_id: i64,
}

impl Client {
    fn start() -> Client {
        let mut child = common::lpnc().arg("lsp").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("lpnc starts");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, messages) = channel();
        std::thread::spawn(move || {
            while let Some(message) = read_message(&mut stdout) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        });
        Client { child, stdin, messages, pending: Vec::new(), next_id: 0 }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn next(&mut self) -> Value {
        self.messages.recv_timeout(Duration::from_secs(30)).expect("the server answers within 30 s")
    }

    /// Sends a request and returns its response, keeping notifications for later.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.next();
            if message["id"] == json!(id) {
                return message;
            }
            self.pending.push(message);
        }
    }

    /// The result of a request that must succeed.
    fn ask(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(response.get("error").is_none(), "{method}: {response}");
        response["result"].clone()
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        self.published(uri).1
    }

    /// The next diagnostics published for `uri`, with the version they are for.
    fn published(&mut self, uri: &str) -> (Value, Vec<Value>) {
        let is_ours = |m: &Value| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri;
        let message = match self.pending.iter().position(is_ours) {
            Some(at) => self.pending.remove(at),
            None => loop {
                let message = self.next();
                if is_ours(&message) {
                    break message;
                }
                self.pending.push(message);
            },
        };
        (message["params"]["version"].clone(), message["params"]["diagnostics"].as_array().unwrap().clone())
    }

    fn initialize(&mut self) -> Value {
        let result = self.ask("initialize", json!({ "processId": null, "rootUri": null, "capabilities": {} }));
        self.notify("initialized", json!({}));
        result
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        let document = json!({ "uri": uri, "languageId": "lpn", "version": 1, "text": text });
        self.notify("textDocument/didOpen", json!({ "textDocument": document }));
        self.diagnostics(uri)
    }

    /// Replaces `range` (UTF-16 positions) with `text`; the diagnostics
    /// published are for this version.
    fn edit(&mut self, uri: &str, version: i64, range: Value, text: &str) -> Vec<Value> {
        let change = json!({ "range": range, "text": text });
        self.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [change] }));
        let (published, diagnostics) = self.published(uri);
        assert_eq!(published, json!(version));
        diagnostics
    }

    /// `shutdown` answers null, and `exit` ends the process with status 0.
    fn shut_down(mut self) {
        let response = self.request("shutdown", Value::Null);
        assert_eq!(response["result"], Value::Null, "{response}");
        self.notify("exit", Value::Null);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length: ") {
            length = value.parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// The LSP position (0-based line, UTF-16 column) of a byte offset.
fn position(text: &str, offset: usize) -> Value {
    let line_start = text[..offset].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let line = text[..offset].matches('\n').count();
    json!({ "line": line, "character": text[line_start..offset].encode_utf16().count() })
}

fn range(text: &str, start: usize, end: usize) -> Value {
    json!({ "start": position(text, start), "end": position(text, end) })
}

fn at(uri: &str, text: &str, offset: usize) -> Value {
    json!({ "textDocument": { "uri": uri }, "position": position(text, offset) })
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn codes(diagnostics: &[Value]) -> Vec<&str> {
    diagnostics.iter().map(|d| d["code"].as_str().unwrap()).collect()
}

fn labels(completion: &Value) -> Vec<&str> {
    completion.as_array().expect("a list of items").iter().map(|i| i["label"].as_str().unwrap()).collect()
}

#[test]
fn scripted_session_on_gunpoint_classifier() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gunpoint_classifier.lpn");
    let uri = file_uri(&path);
    let mut text = std::fs::read_to_string(&path).unwrap();
    let mut client = Client::start();
    let init = client.initialize();
    assert_eq!(init["capabilities"]["hoverProvider"], true, "{init}");

    // The example checks clean, its data files read from its folder.
    assert_eq!(client.open(&uri, &text), Vec::<Value>::new());

    hover_shows_shapes_and_lambda_min(&mut client, &uri, &text);
    completion_offers_what_is_missing(&mut client, &uri, &mut text);
    a_misspelt_annotation_is_reported_and_fixed(&mut client, &uri, &mut text);

    // A data file that does not exist: the data-file problem comes too.
    let csv = text.find("gunpoint_train.csv").unwrap();
    let diagnostics = client.edit(&uri, 5, range(&text, csv, csv + "gunpoint_train".len()), "gunpoint_trian");
    text.replace_range(csv..csv + "gunpoint_train".len(), "gunpoint_trian");
    assert_eq!(codes(&diagnostics), ["E0050"], "{diagnostics:?}");

    // A phase: go to definition from its line to the layer.
    let end = text.rfind('}').unwrap();
    let phase = "  phase warmup {\n    epochs = 2\n    conv1 @freeze\n  }\n";
    client.edit(&uri, 6, range(&text, end, end), phase);
    text.insert_str(end, phase);
    let line = text.find("conv1 @freeze").unwrap();
    let definition = client.ask("textDocument/definition", at(&uri, &text, line + 2));
    let conv = text.find("conv(out=32").unwrap();
    assert_eq!(definition, json!({ "uri": uri, "range": range(&text, conv, conv + 4) }));

    let symbols = client.ask("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
    let names: Vec<&str> = symbols.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["model gunpoint", "data", "train"]);
    let layers: Vec<&str> = symbols[0]["children"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(layers, ["input", "conv1", "batchnorm1", "relu1", "repeat", "global_avgpool1", "linear1"]);
    client.shut_down();
}

/// Part of the scripted session: hover on layers and on the constraint.
fn hover_shows_shapes_and_lambda_min(client: &mut Client, uri: &str, text: &str) {
    // Hover: the first conv's shape and parameters (1·32·9 weights + 32 biases).
    let conv = text.find("conv(out=32").unwrap();
    let hover = client.ask("textDocument/hover", at(uri, text, conv + 1));
    let markdown = hover["contents"]["value"].as_str().unwrap();
    assert!(markdown.contains("- `conv1` (conv1d 1→32 k=9): output `[32, 150]`, 320 parameters"), "{markdown}");
    assert_eq!(hover["range"], range(text, conv, conv + 4));
    // The residual body's conv, once per copy of the repeat.
    let inner = text.find("conv(k=5)").unwrap();
    let markdown = client.ask("textDocument/hover", at(uri, text, inner))["contents"]["value"].as_str().unwrap().to_string();
    assert!(markdown.contains("`repeat1.1.residual1.conv1` (conv1d 32→32 k=5): output `[32, 150]`, 5152 parameters"), "{markdown}");
    assert!(markdown.contains("`repeat1.2.residual1.conv1`"), "{markdown}");
    // The constraint: its mode, band edges on 9 taps, λ_min.
    let lowpass = text.find("lowpass").unwrap();
    let markdown = client.ask("textDocument/hover", at(uri, text, lowpass))["contents"]["value"].as_str().unwrap().to_string();
    assert!(markdown.contains("mode=penalty: adds weight · violation to the loss"), "{markdown}");
    assert!(markdown.contains("band edges on 9 taps: stopband ν ≥ 0.8667"), "{markdown}");
    assert!(markdown.contains("λ_min = ") && markdown.contains("is feasible (tol does not act in mode=penalty)"), "{markdown}");
}

/// Part of the scripted session: completion inside a call and of a setting's value.
fn completion_offers_what_is_missing(client: &mut Client, uri: &str, text: &mut String) {
    // Completion: the parameters @maxnorm has not been given, and the optimizers.
    let after_max = text.find("max=3").unwrap() + "max=3".len();
    text.insert_str(after_max, ", ");
    assert_eq!(client.edit(uri, 2, range(text, after_max, after_max), ", "), Vec::<Value>::new());
    let items = client.ask("textDocument/completion", at(uri, text, after_max + 2));
    let found = labels(&items);
    assert!(found.contains(&"mode") && found.contains(&"tol") && !found.contains(&"max"), "{found:?}");
    let mode = items.as_array().unwrap().iter().find(|i| i["label"] == "mode").unwrap();
    assert_eq!(mode["insertTextFormat"], 2, "a snippet");
    assert_eq!(mode["textEdit"]["newText"], "mode=${1|penalty,project,reparam,freeze,lagrangian|}");
    let optimizer = text.find("adam(").unwrap();
    let found = client.ask("textDocument/completion", at(uri, text, optimizer + 2));
    assert_eq!(labels(&found), ["sgd", "adam", "adamw"]);
}

/// Part of the scripted session: an edit that introduces an error, its diagnostic, hover and quick fix.
fn a_misspelt_annotation_is_reported_and_fixed(client: &mut Client, uri: &str, text: &mut String) {
    // An edit that misspells the annotation: E0020 at the name, and a quick fix.
    let name = text.find("lowpass").unwrap();
    let diagnostics = client.edit(uri, 3, range(text, name, name + "lowpass".len()), "lowpas");
    text.replace_range(name..name + "lowpass".len(), "lowpas");
    assert!(codes(&diagnostics).contains(&"E0020"), "{diagnostics:?}");
    let e0020 = diagnostics.iter().find(|d| d["code"] == "E0020").unwrap();
    assert_eq!(e0020["range"], range(text, name, name + "lowpas".len()));
    assert_eq!(e0020["severity"], 1);
    assert!(
        e0020["message"].as_str().unwrap().contains("unknown annotation `@lowpas`\nnot an annotation\nhelp: did you mean `lowpass`?"),
        "{e0020}"
    );
    assert!(e0020["data"]["explanation"].as_str().unwrap().starts_with("# E0020: unknown annotation"), "{e0020}");
    let hover = client.ask("textDocument/hover", at(uri, text, name + 1));
    assert!(hover["contents"]["value"].as_str().unwrap().contains("**E0020**: unknown annotation (`lpnc explain E0020`)"), "{hover}");
    let params = json!({ "textDocument": { "uri": uri }, "range": range(text, name, name), "context": { "diagnostics": [] } });
    let actions = client.ask("textDocument/codeAction", params);
    assert_eq!(actions[0]["title"], "Replace with `lowpass`", "{actions}");
    let edit = &actions[0]["edit"]["changes"][&uri][0];
    assert_eq!(edit["range"], range(text, name, name + "lowpas".len()));
    assert_eq!(edit["newText"], "lowpass");
    // Applying it clears the diagnostics.
    assert_eq!(client.edit(uri, 4, edit["range"].clone(), "lowpass"), Vec::<Value>::new());
    text.replace_range(name..name + "lowpas".len(), "lowpass");
}

#[test]
fn positions_count_utf16_units_after_non_ascii_text() {
    let uri = "untitled:utf16.lpn";
    // `é` is one UTF-16 unit (2 bytes), `𝜈` two (4 bytes): columns after them differ from byte columns.
    let mut text = "model m {\n  input [1, 64]\n  conv(out=1, k=9) @init(file=\"é𝜈.safetensors\") @lowpas(cutoff=0.2)  // ν ≥ 0.2 — é\n}\ndata sines()\n".to_string();
    let mut client = Client::start();
    client.initialize();
    let diagnostics = client.open(uri, &text);
    let name = text.find("lowpas").unwrap();
    let e0020 = diagnostics.iter().find(|d| d["code"] == "E0020").expect("E0020");
    assert_eq!(e0020["range"], range(&text, name, name + "lowpas".len()));
    // The byte column of `lowpas` is 3 more than its UTF-16 column (`é`: 2 bytes, 1 unit; `𝜈`: 4 bytes, 2 units).
    let line_start = text[..name].rfind('\n').unwrap() + 1;
    assert_eq!(e0020["range"]["start"]["character"], json!(name - line_start - 3));

    // An edit given in UTF-16 positions lands where it should.
    let diagnostics = client.edit(uri, 2, range(&text, name, name + "lowpas".len()), "lowpass");
    text.replace_range(name..name + "lowpas".len(), "lowpass");
    assert!(!codes(&diagnostics).contains(&"E0020"), "{diagnostics:?}");
    let hover = client.ask("textDocument/hover", at(uri, &text, name + 3));
    assert_eq!(hover["range"], range(&text, name, name + "lowpass".len()), "{hover}");
    // A whole-text change replaces the document.
    let change = json!({ "text": "model m {\n  input [1, 64]\n  rleu\n}\ndata sines()\n" });
    client.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [change] }));
    assert_eq!(codes(&client.diagnostics(uri)), ["E0010"]);
    client.shut_down();
}

#[test]
fn unknown_requests_get_an_error_and_closing_clears_diagnostics() {
    let uri = "untitled:close.lpn";
    let mut client = Client::start();
    client.initialize();
    assert!(codes(&client.open(uri, "model m {\n  rleu\n}\n")).contains(&"E0010"));
    let response = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 1, "character": 3 }, "newName": "relu" }),
    );
    assert_eq!(response["error"]["code"], -32601, "method not found: {response}");
    client.notify("textDocument/didClose", json!({ "textDocument": { "uri": uri } }));
    assert_eq!(client.diagnostics(uri), Vec::<Value>::new());
    client.shut_down();
}

/// Formatting goes through `lpnc fmt`'s printer: one edit of the whole
/// document to the canonical layout, none when the text is already laid out
/// or does not parse (it is left as typed).
#[test]
fn formatting_rewrites_the_document_as_lpnc_fmt_does() {
    let uri = "untitled:fmt.lpn";
    let messy = "model m   {\n input [1,64]   // kept\n  conv( out=4,k=3 ) @lowpass( cutoff=0.2 )\n relu }\n";
    let expected = lpn::language::format::format_source(messy).expect("the messy text parses");
    assert_ne!(expected, messy);
    let mut client = Client::start();
    let capabilities = client.initialize();
    assert_eq!(capabilities["capabilities"]["documentFormattingProvider"], json!(true), "{capabilities}");
    client.open(uri, messy);
    let format = |client: &mut Client| {
        client.ask("textDocument/formatting", json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }))
    };
    let edits = format(&mut client);
    let edits = edits.as_array().expect("a list of edits");
    assert_eq!(edits.len(), 1, "{edits:?}");
    assert_eq!(edits[0]["newText"], json!(expected));
    assert_eq!(edits[0]["range"]["start"], json!({ "line": 0, "character": 0 }));
    let end = position(messy, messy.len());
    assert_eq!(edits[0]["range"]["end"], end);

    client.edit(uri, 2, range(messy, 0, messy.len()), &expected);
    let none = format(&mut client);
    assert!(none.is_null() || none == json!([]), "already formatted: {none}");
    client.edit(uri, 3, range(&expected, 0, expected.len()), "model m {\n  conv(out=4\n}\n");
    let broken = format(&mut client);
    assert!(broken.is_null() || broken == json!([]), "a file that does not parse is left as typed: {broken}");
    client.shut_down();
}

/// The time from a change to its diagnostics, and of a hover, on every
/// example (the median of 7 of each): the server checks the whole file on
/// every change, data files included, and must stay well under 50 ms.
/// `cargo test --release --test lsp latency -- --nocapture` prints the figures.
#[test]
fn latency_on_every_example() {
    let mut client = Client::start();
    client.initialize();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut paths: Vec<_> =
        std::fs::read_dir(&examples).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "lpn")).collect();
    paths.sort();
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    for path in paths {
        let uri = file_uri(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        client.open(&uri, &text);
        let (mut check, mut hover) = (Vec::new(), Vec::new());
        for version in 2..9 {
            let start = std::time::Instant::now();
            let change = json!({ "text": text });
            client.notify(
                "textDocument/didChange",
                json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [change] }),
            );
            client.diagnostics(&uri);
            check.push(start.elapsed().as_secs_f64() * 1e3);
            let start = std::time::Instant::now();
            client.ask("textDocument/hover", at(&uri, &text, text.find("conv").unwrap()));
            hover.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let (check, hover) = (median(check), median(hover));
        eprintln!("{}: change → diagnostics {check:.1} ms, hover {hover:.2} ms", path.file_name().unwrap().to_string_lossy());
        assert!(check < 50.0 && hover < 50.0, "{}: {check} ms, {hover} ms", path.display());
    }
    client.shut_down();
}
