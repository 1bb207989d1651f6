//! Completion, from the text around the cursor (while a line is being typed
//! it rarely parses): layer names at the start of a model's line,
//! annotations after `@`, the parameters a call has not been given yet,
//! a parameter's choices after `=`, a section's settings not set yet, the
//! model's layers in a phase, and sections at the top level. Items carry
//! snippets in the editor's syntax (`${1}` placeholders, `${1|a,b|}` choices).

use crate::language::ast::Span;
use crate::language::ide::{Analysis, first_sentence};
use crate::language::schema::{self, DATA_SECTION, Mode, PHASE_SECTION, Param, ParamType, Schema, TRAIN_SECTION, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    Section,
    Keyword,
    Layer,
    Annotation,
    Parameter,
    /// A name among a parameter's choices or a table's entries.
    Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
    pub documentation: String,
    /// What to insert, in snippet syntax.
    pub snippet: String,
}

/// The items, and the text they replace (the part of a name already typed).
#[derive(Clone, Debug, PartialEq)]
pub struct Completions {
    pub replace: Span,
    pub items: Vec<Completion>,
}

/// Where the cursor is, as far as brackets and comments go.
struct Scan {
    /// Unclosed `(` and `[`, innermost last.
    open: Vec<(usize, u8)>,
    /// Unclosed `{`, innermost last.
    braces: Vec<usize>,
    /// In a comment or a string: nothing to complete.
    quiet: bool,
}

fn scan(source: &str, offset: usize) -> Scan {
    let bytes = &source.as_bytes()[..offset];
    let mut state = Scan { open: Vec::new(), braces: Vec::new(), quiet: false };
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => match bytes[i..].iter().position(|&b| b == b'\n') {
                Some(n) => i += n,
                None => state.quiet = true,
            },
            b'"' => match string_end(&bytes[i + 1..]) {
                Some(n) => i += n + 1,
                None => state.quiet = true,
            },
            b @ (b'(' | b'[') => state.open.push((i, b)),
            b')' | b']' => {
                state.open.pop();
            }
            // A brace ends any argument list a broken line left open.
            b'{' => {
                state.open.clear();
                state.braces.push(i);
            }
            b'}' => {
                state.open.clear();
                state.braces.pop();
            }
            _ => {}
        }
        i += 1;
    }
    state
}

/// Where a string that starts before `rest` ends: the index in `rest` of its
/// closing quote, or of the newline that ends an unclosed one (`\"` does not
/// close it, as in the grammar); `None` if the text ends first.
fn string_end(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'"' | b'\n' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

/// The name (or name being typed) that ends at `end`.
fn name_before(source: &str, end: usize) -> &str {
    let start = source[..end].bytes().rposition(|b| !is_name_byte(b)).map(|p| p + 1).unwrap_or(0);
    &source[start..end]
}

pub fn complete(analysis: &Analysis, offset: usize) -> Completions {
    let source = analysis.source.as_str();
    let offset = offset.min(source.len());
    let start = offset - name_before(source, offset).len();
    let replace = Span::new(start, offset);
    let state = scan(source, start);
    let items = if state.quiet { Vec::new() } else { items_at(analysis, &state, replace) };
    Completions { replace, items }
}

fn items_at(analysis: &Analysis, state: &Scan, replace: Span) -> Vec<Completion> {
    let source = analysis.source.as_str();
    let before = source[..replace.start].trim_end_matches([' ', '\t']);
    if before.ends_with('@') {
        return schema::ANNOTATIONS.iter().map(|a| schema_item(&a.schema, CompletionKind::Annotation, "annotation")).collect();
    }
    if let Some(&(open, b'(')) = state.open.last() {
        return in_call(source, open, before, replace);
    }
    if !state.open.is_empty() {
        return Vec::new();
    }
    let block = state.braces.last().map(|&brace| (brace, block_keyword(source, brace)));
    let line_start = before.rfind('\n').map(|p| p + 1).unwrap_or(0);
    let head = before[line_start..].trim();
    if let Some(key) = head.strip_suffix('=') {
        let settings = block.and_then(|(_, keyword)| settings_of(keyword));
        return settings.and_then(|s| s.param(key.trim())).map(|p| values_of(p.ty)).unwrap_or_default();
    }
    match (block, head) {
        (None, "") => sections(),
        (None, "data") => entries(Table::Source),
        (Some((_, "model" | "repeat" | "residual")), "") => layers(block.is_some_and(|(_, k)| k == "model")),
        (Some((brace, keyword)), "") => settings_items(analysis, brace, keyword, replace),
        _ => Vec::new(),
    }
}

/// The word that opens a block: `model`, `data`, `train`, `phase`, `repeat`, `residual`.
fn block_keyword(source: &str, brace: usize) -> &str {
    let line_start = source[..brace].rfind('\n').map(|p| p + 1).unwrap_or(0);
    source[line_start..brace].split_whitespace().next().unwrap_or("")
}

fn settings_of(keyword: &str) -> Option<&'static Schema> {
    match keyword {
        "phase" => Some(&PHASE_SECTION),
        other => crate::language::ide::locate::section_schema(other),
    }
}

/// Inside `NAME(…`: the parameters not given yet, or after `key=` its choices.
fn in_call(source: &str, open: usize, before: &str, replace: Span) -> Vec<Completion> {
    let callee = name_before(source, open);
    let annotation = source[..open - callee.len()].ends_with('@');
    let schema = if annotation {
        schema::annotation(callee).map(|a| &a.schema)
    } else {
        schema::layer(callee)
            .map(|l| &l.schema)
            .or_else(|| [Table::Source, Table::Optimizer].iter().find_map(|t| schema::find(t.entries(), callee)))
    };
    let Some(schema) = schema else { return Vec::new() };
    if let Some(key) = before.strip_suffix('=') {
        return schema.param(name_before(key, key.trim_end().len())).map(|p| values_of(p.ty)).unwrap_or_default();
    }
    if !(before.ends_with('(') || before.ends_with(',')) {
        return Vec::new();
    }
    let (given, positional) = given_arguments(source, open, replace);
    let mut positional_left = positional;
    schema
        .params
        .iter()
        .filter(|p| {
            let filled = p.positional && positional_left > 0;
            if filled {
                positional_left -= 1;
            }
            !filled && !given.contains(&p.name)
        })
        .map(|p| param_item(p, "="))
        .collect()
}

/// The keys written in the call opened at `open`, and how many arguments
/// are written without a key, leaving out the one being typed.
fn given_arguments(source: &str, open: usize, replace: Span) -> (Vec<&str>, usize) {
    let mut depth = 0usize;
    let mut end = source.len();
    for (i, b) in source.bytes().enumerate().skip(open + 1) {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' if depth == 0 => {
                end = i;
                break;
            }
            b')' | b']' => depth -= 1,
            b'{' | b'}' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let (mut keys, mut positional, mut at) = (Vec::new(), 0, open + 1);
    for piece in split_top_level(&source[open + 1..end]) {
        let span = Span::new(at, at + piece.len());
        at += piece.len() + 1;
        if span.start <= replace.start && replace.end <= span.end {
            continue;
        }
        match piece.split_once('=') {
            Some((key, _)) => keys.push(key.trim()),
            None if !piece.trim().is_empty() => positional += 1,
            None => {}
        }
    }
    (keys, positional)
}

/// A call's arguments: its text split at the commas outside brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut pieces, mut depth, mut from) = (Vec::new(), 0usize, 0);
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                pieces.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[from..]);
    pieces
}

/// The names a parameter of this type takes: its choices, or a table's entries.
fn values_of(ty: ParamType) -> Vec<Completion> {
    let words: &[&str] = match ty {
        ParamType::Entry(table) => return entries(table),
        ParamType::Choice { options, .. } => options,
        ParamType::Bool => &["true", "false"],
        ParamType::Padding => &["same", "valid"],
        ParamType::Int { .. }
        | ParamType::Float { .. }
        | ParamType::Str
        | ParamType::Path
        | ParamType::IntOrPair { .. }
        | ParamType::Frequency => &[],
    };
    words
        .iter()
        .map(|w| {
            let documentation = Mode::from_name(w).map(|m| m.summary().to_string()).unwrap_or_default();
            Completion { label: w.to_string(), kind: CompletionKind::Value, detail: ty.to_string(), documentation, snippet: w.to_string() }
        })
        .collect()
}

fn entries(table: Table) -> Vec<Completion> {
    table.entries().iter().map(|s| schema_item(s, CompletionKind::Value, table.what())).collect()
}

/// A layer, annotation or table entry, with its required parameters as placeholders.
fn schema_item(schema: &Schema, kind: CompletionKind, what: &str) -> Completion {
    let required: Vec<&Param> = schema.params.iter().filter(|p| p.default == schema::DefaultValue::Required).collect();
    let snippet = if required.is_empty() {
        schema.name.to_string()
    } else {
        let args: Vec<String> = required
            .iter()
            .enumerate()
            .map(|(i, p)| match (p.positional, p.ty) {
                (true, ParamType::Path | ParamType::Str) => format!("\"${{{}:{}}}\"", i + 1, p.name),
                (true, _) => format!("${{{}:{}}}", i + 1, p.name),
                (false, _) => format!("{}=${{{}}}", p.name, i + 1),
            })
            .collect();
        format!("{}({})", schema.name, args.join(", "))
    };
    let documentation = format!("{}\n\nexample: `{}`", schema.summary, schema.example.replace('\n', " "));
    Completion { label: schema.name.into(), kind, detail: format!("{what}: {}", first_sentence(schema.summary)), documentation, snippet }
}

fn param_item(p: &Param, equals: &str) -> Completion {
    let value = match p.ty {
        ParamType::Choice { options, .. } => format!("${{1|{}|}}", options.join(",")),
        ParamType::Bool => "${1|true,false|}".into(),
        ParamType::Str | ParamType::Path => "\"${1}\"".into(),
        ParamType::Int { .. }
        | ParamType::Float { .. }
        | ParamType::IntOrPair { .. }
        | ParamType::Padding
        | ParamType::Frequency
        | ParamType::Entry(_) => "${1}".into(),
    };
    Completion {
        label: p.name.into(),
        kind: CompletionKind::Parameter,
        detail: format!("{}; default: {}", p.ty, p.default),
        documentation: p.doc.into(),
        snippet: format!("{}{equals}{value}", p.name),
    }
}

fn layers(with_input: bool) -> Vec<Completion> {
    let mut items: Vec<Completion> = schema::LAYERS
        .iter()
        .map(|l| {
            let mut item = schema_item(&l.schema, CompletionKind::Layer, "layer");
            match l.kind {
                schema::LayerKind::Repeat => item.snippet = "repeat ${1:2} {\n\t$0\n}".into(),
                schema::LayerKind::Residual => item.snippet = "residual {\n\t$0\n}".into(),
                _ => {}
            }
            item
        })
        .collect();
    if with_input {
        items.push(keyword("input", "the input's shape, without the batch axis", "input [${1:1}, ${2:256}]"));
    }
    items
}

fn keyword(label: &str, detail: &str, snippet: &str) -> Completion {
    Completion {
        label: label.into(),
        kind: CompletionKind::Keyword,
        detail: detail.into(),
        documentation: String::new(),
        snippet: snippet.into(),
    }
}

fn sections() -> Vec<Completion> {
    let section =
        |label: &str, detail: &str, snippet: &str| Completion { kind: CompletionKind::Section, ..keyword(label, detail, snippet) };
    vec![
        section("model", "the network", "model ${1:name} {\n\tinput [${2:1}, ${3:256}]\n\t$0\n}"),
        section("data", first_sentence(DATA_SECTION.summary), "data {\n\ttrain = $0\n}"),
        section("train", first_sentence(TRAIN_SECTION.summary), "train {\n\t$0\n}"),
    ]
}

/// At the start of a line of `data`, `train` or a phase: the settings not
/// set yet in that block; `train` adds `phase`, a phase the model's layers.
fn settings_items(analysis: &Analysis, brace: usize, keyword: &str, replace: Span) -> Vec<Completion> {
    let Some(settings) = settings_of(keyword) else { return Vec::new() };
    let given = block_keys(&analysis.source, brace, replace.start);
    let mut items: Vec<Completion> = settings.params.iter().filter(|p| !given.contains(&p.name)).map(|p| param_item(p, " = ")).collect();
    match keyword {
        "train" => items.push(keyword_item_phase()),
        "phase" => {
            let with_weights = analysis.model.iter().flat_map(|m| m.walk()).filter(|l| l.parameters > 0);
            items.extend(with_weights.map(|l| Completion {
                label: l.name.clone(),
                kind: CompletionKind::Layer,
                detail: format!("{}: output {}", l.op.describe(), l.output),
                documentation: String::new(),
                snippet: format!("{} @${{1|freeze,lr|}}", l.name),
            }));
        }
        _ => {}
    }
    items
}

fn keyword_item_phase() -> Completion {
    keyword("phase", first_sentence(PHASE_SECTION.summary), "phase ${1:name} {\n\tepochs = ${2:5}\n\t$0\n}")
}

/// The keys set on their own lines in the block opened at `brace`, the
/// line holding `cursor` left out.
fn block_keys(source: &str, brace: usize, cursor: usize) -> Vec<&str> {
    let (mut depth, mut keys, mut line_start) = (0usize, Vec::new(), brace + 1);
    for (i, b) in source.bytes().enumerate().skip(brace + 1) {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b'\n' => {
                let line = &source[line_start..i];
                if depth == 0
                    && !(line_start <= cursor && cursor <= i)
                    && let Some((key, _)) = line.split_once('=')
                {
                    keys.push(key.trim());
                }
                line_start = i + 1;
            }
            _ => {}
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::check::FakeEnvironment;

    /// The labels offered where `|` stands in `marked`.
    fn labels(marked: &str) -> Vec<String> {
        let offset = marked.find('|').expect("a cursor");
        let source = marked.replacen('|', "", 1);
        let analysis = crate::language::ide::analyze(&source, std::path::Path::new("."), &FakeEnvironment::with_memory(1 << 30));
        complete(&analysis, offset).items.into_iter().map(|c| c.label).collect()
    }

    const MODEL: &str = "model m {\n  input [1, 64]\n  conv(out=4, k=9)\n}\n";

    #[test]
    fn layers_at_the_start_of_a_model_line_and_annotations_after_at() {
        let found = labels("model m {\n  input [1, 64]\n  co|\n}\n");
        assert!(found.contains(&"conv".into()) && found.contains(&"input".into()) && found.contains(&"repeat".into()), "{found:?}");
        let found = labels("model m {\n  input [1, 64]\n  conv(k=3) @lo|\n}\n");
        assert!(found.contains(&"lowpass".into()) && found.contains(&"freeze".into()), "{found:?}");
        assert!(!found.contains(&"conv".into()));
        // Inside a repeat: layers, but `input` belongs to the model's top.
        let found = labels("model m {\n  input [1, 64]\n  repeat 2 {\n    |\n  }\n}\n");
        assert!(found.contains(&"relu".into()) && !found.contains(&"input".into()), "{found:?}");
    }

    #[test]
    fn parameters_not_yet_given_and_choices_after_equals() {
        let found = labels("model m {\n  input [1, 64]\n  conv(out=4, k=9) @lowpass(cutoff=0.2, |)\n}\n");
        assert!(found.contains(&"mode".into()) && found.contains(&"tol".into()), "{found:?}");
        assert!(!found.contains(&"cutoff".into()), "cutoff is given: {found:?}");
        // A positional argument fills `cutoff` too.
        let found = labels("model m {\n  input [1, 64]\n  conv(k=9) @lowpass(0.2, |)\n}\n");
        assert!(!found.contains(&"cutoff".into()) && found.contains(&"fs".into()), "{found:?}");
        let found = labels("model m {\n  input [1, 64]\n  conv(|, k=9)\n}\n");
        assert!(found.contains(&"out".into()) && !found.contains(&"k".into()), "{found:?}");
        assert_eq!(labels("model m {\n  input [1, 64]\n  conv(k=9) @lowpass(0.2, mode=|)\n}\n"), Mode::NAMES);
        assert_eq!(labels("model m {\n  input [1, 64]\n  conv(k=9, padding=|)\n}\n"), ["same", "valid"]);
    }

    #[test]
    fn settings_and_their_values() {
        let train = format!("{MODEL}data sines()\ntrain {{\n  epochs = 3\n  |\n}}\n");
        let found = labels(&train);
        assert!(found.contains(&"optimizer".into()) && found.contains(&"phase".into()), "{found:?}");
        assert!(!found.contains(&"epochs".into()), "epochs is set: {found:?}");
        assert_eq!(labels(&format!("{MODEL}train {{\n  optimizer = |\n}}\n")), ["sgd", "adam", "adamw"]);
        assert_eq!(labels(&format!("{MODEL}train {{\n  loss = c|\n}}\n")), ["mse", "mae", "cross_entropy", "bce"]);
        assert_eq!(labels(&format!("{MODEL}train {{\n  keep = |\n}}\n")), ["last", "best"]);
        let found = labels(&format!("{MODEL}data {{\n  train = |\n}}\n"));
        assert!(found.contains(&"ucr".into()) && found.contains(&"sines".into()), "{found:?}");
        let found = labels(&format!("{MODEL}data |"));
        assert!(found.contains(&"waveforms".into()), "{found:?}");
    }

    #[test]
    fn a_phase_offers_the_model_layers_with_weights() {
        let found = labels(&format!("{MODEL}data sines()\ntrain {{\n  phase a {{\n    epochs = 1\n    |\n  }}\n}}\n"));
        assert!(found.contains(&"conv1".into()) && found.contains(&"optimizer".into()), "{found:?}");
        assert!(!found.contains(&"epochs".into()));
    }

    #[test]
    fn sections_at_the_top_and_nothing_in_comments_or_strings() {
        assert_eq!(labels("|"), ["model", "data", "train"]);
        assert!(labels("model m {\n  input [1, 64]\n  // co|\n}\n").is_empty());
        assert!(labels(&format!("{MODEL}data ucr(\"da|\")")).is_empty());
        // An escaped quote does not end the string: the `@` after it is still inside.
        assert!(labels(&format!("{MODEL}data ucr(\"a\\\" @|\")")).is_empty());
        // After the string closes, completion works again.
        let found = labels("model m {\n  input [1, 64]\n  conv(k=3) @init(file=\"a\\\"b\") @|\n}\n");
        assert!(found.contains(&"lowpass".into()), "{found:?}");
    }

    #[test]
    fn snippets_hold_required_parameters_and_choices() {
        let layer = schema_item(&schema::layer("conv").unwrap().schema, CompletionKind::Layer, "layer");
        assert_eq!(layer.snippet, "conv(k=${1})");
        let source = schema_item(schema::find(schema::SOURCES, "ucr").unwrap(), CompletionKind::Value, "data source");
        assert_eq!(source.snippet, "ucr(\"${1:path}\")");
        let mode = param_item(schema::annotation("lowpass").unwrap().schema.param("mode").unwrap(), "=");
        assert_eq!(mode.snippet, "mode=${1|penalty,project,reparam,freeze,lagrangian|}");
    }

    #[test]
    fn the_replaced_text_is_the_name_being_typed() {
        let source = "model m {\n  input [1, 64]\n  conv(k=3) @lowp\n}\n";
        let analysis = crate::language::ide::analyze(source, std::path::Path::new("."), &FakeEnvironment::with_memory(1 << 30));
        let end = source.find("lowp").unwrap() + 4;
        assert_eq!(complete(&analysis, end).replace, Span::new(end - 4, end));
    }
}
