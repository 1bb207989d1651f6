//! The editor support in `editors/` stays in step with the language, without
//! npm: the TextMate grammar (`editors/vscode/syntaxes/lpn.tmLanguage.json`)
//! is valid JSON whose includes all resolve, and every keyword list in it
//! (a regex group of plain words, `(conv|linear|…)`) is exactly one of the
//! schema's tables, so a layer, annotation, source, optimizer, loss or
//! choice added to `src/language/schema.rs` and missing from the grammar (or
//! a name the language does not have) fails here. Tokenizing the repo's files
//! with the grammar is `editors/vscode/test/scopes.js` (node, not in CI).

use lpn::language::schema::{self, LayerKind, ParamType, Schema};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

type Words = BTreeSet<String>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(relative: &str) -> Value {
    let text = std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

fn grammar() -> Value {
    read_json("editors/vscode/syntaxes/lpn.tmLanguage.json")
}

fn words<'a>(names: impl IntoIterator<Item = &'a str>) -> Words {
    names.into_iter().map(str::to_string).collect()
}

/// Every string of the grammar under one of `keys`, anywhere in it: its
/// regexes (`match`, `begin`, `end`) or its `include`s.
fn strings_under(value: &Value, keys: &[&str], out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match inner {
                    Value::String(text) if keys.contains(&key.as_str()) => out.push(text.clone()),
                    _ => strings_under(inner, keys, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| strings_under(item, keys, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

fn regexes(grammar: &Value) -> Vec<String> {
    let mut out = Vec::new();
    strings_under(grammar, &["match", "begin", "end"], &mut out);
    out
}

/// The groups of a regex that are alternations of plain lower-case words:
/// `(conv|linear)` or `(?:model|data|train)`; the grammar's keyword lists.
fn word_alternations(regex: &str) -> Vec<Words> {
    let mut groups = Vec::new();
    for (open, _) in regex.match_indices('(') {
        if regex[..open].ends_with('\\') {
            continue;
        }
        let rest = &regex[open + 1..];
        let rest = rest.strip_prefix("?:").unwrap_or(rest);
        let Some(close) = rest.find(')') else { continue };
        let body = &rest[..close];
        let plain = body.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '|');
        if plain && body.contains('|') {
            groups.push(words(body.split('|')));
        }
    }
    groups
}

/// The words `padding=` takes besides numbers (`check/params.rs` reads them).
const PADDING_WORDS: [&str; 2] = ["same", "valid"];

fn all_schemas() -> Vec<Schema> {
    let mut all: Vec<Schema> = schema::LAYERS.iter().map(|l| l.schema).collect();
    all.extend(schema::ANNOTATIONS.iter().map(|a| a.schema));
    for table in [schema::SOURCES, schema::OPTIMIZERS, schema::LOSSES, schema::SCHEDULES] {
        all.extend(table.iter().copied());
    }
    all.extend([schema::DATA_SECTION, schema::TRAIN_SECTION, schema::PHASE_SECTION]);
    all
}

/// The names a value may be written as: every choice's options and the
/// padding words; and whether some parameter is a `true`/`false`.
fn value_words() -> (Words, bool) {
    let mut choices = Words::new();
    let mut any_bool = false;
    for param in all_schemas().iter().flat_map(|s| s.params) {
        match param.ty {
            ParamType::Choice { options, .. } => choices.extend(words(options.iter().copied())),
            ParamType::Padding => choices.extend(words(PADDING_WORDS)),
            ParamType::Bool => any_bool = true,
            ParamType::Int { .. }
            | ParamType::Float { .. }
            | ParamType::Str
            | ParamType::Path
            | ParamType::IntOrPair { .. }
            | ParamType::Frequency
            | ParamType::Entry(_) => {}
        }
    }
    (choices, any_bool)
}

/// The keyword lists the grammar must hold, each named for messages.
fn expected_lists() -> Vec<(&'static str, Words)> {
    let is_structure = |kind: LayerKind| matches!(kind, LayerKind::Repeat | LayerKind::Residual);
    let (choices, any_bool) = value_words();
    let mut lists = vec![
        ("section keywords", words(schema::SECTION_NAMES.iter().copied())),
        ("layers", words(schema::LAYERS.iter().filter(|l| !is_structure(l.kind)).map(|l| l.schema.name))),
        ("structures", words(schema::LAYERS.iter().filter(|l| is_structure(l.kind)).map(|l| l.schema.name))),
        ("annotations", words(schema::ANNOTATIONS.iter().map(|a| a.schema.name))),
        ("data sources", words(schema::names(schema::SOURCES))),
        ("optimizers", words(schema::names(schema::OPTIMIZERS))),
        ("losses", words(schema::names(schema::LOSSES))),
        ("schedules", words(schema::names(schema::SCHEDULES))),
        ("choice values", choices),
    ];
    if any_bool {
        lists.push(("booleans", words(["true", "false"])));
    }
    lists
}

/// The words of a pest rule made of literals: `section_kw = @{ ("model" | …) … }`.
fn pest_literals(rule: &str) -> Words {
    let pest = std::fs::read_to_string(root().join("grammar/lpn.pest")).expect("grammar/lpn.pest");
    let line =
        pest.lines().find(|l| l.split_whitespace().next() == Some(rule)).unwrap_or_else(|| panic!("no rule `{rule}` in grammar/lpn.pest"));
    line.split('"').skip(1).step_by(2).filter(|w| w.chars().all(|c| c.is_ascii_alphabetic())).map(str::to_string).collect()
}

fn describe_mismatch(found: &Words, expected: &[(&'static str, Words)]) -> String {
    let (name, closest) = expected.iter().max_by_key(|(_, list)| list.intersection(found).count()).expect("lists");
    let missing: Vec<_> = closest.difference(found).collect();
    let unknown: Vec<_> = found.difference(closest).collect();
    format!("a keyword list in the grammar is not one of the schema's: closest to the {name}, missing {missing:?}, unknown {unknown:?}")
}

#[test]
fn keyword_lists_in_the_grammar_are_the_schema_tables() {
    let all = regexes(&grammar());
    let expected = expected_lists();
    let mut seen = BTreeSet::new();
    for regex in &all {
        for group in word_alternations(regex) {
            match expected.iter().find(|(_, list)| *list == group) {
                Some((name, _)) => {
                    seen.insert(*name);
                }
                None => panic!("{}\nin {regex}", describe_mismatch(&group, &expected)),
            }
        }
    }
    for (name, list) in &expected {
        assert!(seen.contains(name), "the grammar has no keyword list for the {name}: {list:?}");
    }
}

#[test]
fn single_keywords_of_the_grammar_are_the_parser_and_schema_words() {
    // `phase` (a train block) and `input` (the model's input line) are the
    // two keywords that are not part of a list.
    let all = regexes(&grammar());
    let is_word_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let has_word = |word: &str| {
        all.iter().any(|r| {
            r.match_indices(word).any(|(at, _)| !r[..at].ends_with(is_word_char) && !r[at + word.len()..].starts_with(is_word_char))
        })
    };
    // `then` joins the parts of a schedule (`warmup(…) then cosine(…)`).
    for word in pest_literals("input_kw").iter().chain(&pest_literals("then_kw")).map(String::as_str).chain([schema::PHASE_SECTION.name]) {
        assert!(has_word(word), "the grammar never names the keyword `{word}`");
    }
    // The parser's section keywords are the schema's (the grammar's list is
    // checked against the schema above).
    assert_eq!(pest_literals("section_kw"), words(schema::SECTION_NAMES.iter().copied()));
}

#[test]
fn grammar_is_the_extensions_and_its_includes_resolve() {
    // Every `"include": "#name"` names an entry of the repository.
    let grammar = grammar();
    assert_eq!(grammar["scopeName"], "source.lpn");
    let repository = grammar["repository"].as_object().expect("a repository");
    let mut targets = Vec::new();
    strings_under(&grammar, &["include"], &mut targets);
    for target in &targets {
        let name = target.strip_prefix('#').unwrap_or_else(|| panic!("include {target} is not a repository entry"));
        assert!(repository.contains_key(name), "include {target} names no repository entry");
    }
    // The extension declares the language and this grammar for it.
    let package = read_json("editors/vscode/package.json");
    let language = &package["contributes"]["languages"][0];
    assert_eq!(language["id"], "lpn");
    assert_eq!(language["extensions"][0], ".lpn");
    let declared = &package["contributes"]["grammars"][0];
    assert_eq!(declared["language"], "lpn");
    assert_eq!(declared["scopeName"], "source.lpn");
    assert_eq!(declared["path"], "./syntaxes/lpn.tmLanguage.json");
    assert_eq!(package["contributes"]["configuration"]["properties"]["lpn.serverPath"]["default"], "lpnc");
}
