//! Source text → syntax tree, with the pest grammar in `grammar/lpn.pest`.
//!
//! The grammar accepts any line: a line that is not a statement becomes a
//! `bad_stmt` (or `bad_item` at the top level). Each of those is re-parsed on its
//! own to learn what was expected where, and reported as an `E0001` worded for
//! people; parsing goes on with the next line, so one run reports every broken
//! line.

use pest::Parser;
use pest::iterators::Pair;
use pest_derive::Parser;

use crate::language::ast::*;
use crate::language::diagnostic::Problem;

#[derive(Parser)]
#[grammar = "../grammar/lpn.pest"]
struct LpnParser;

/// Parses a whole file. The tree holds every statement that parsed; the
/// problems list every line that did not.
///
/// A byte-order mark at the start is skipped; spans stay byte offsets into
/// `source` as given, mark included.
pub fn parse(source: &str) -> (File, Vec<Problem>) {
    let (file, mut problems) = parse_with_pest(source);
    overflowing_numbers(&file, &mut problems);
    (file, problems)
}

/// E0071 for every number literal that reads as ±∞.
fn overflowing_numbers(file: &File, problems: &mut Vec<Problem>) {
    fn value(v: &Value, problems: &mut Vec<Problem>) {
        match &v.kind {
            ValueKind::Number { text, .. } if v.overflows() => problems.push(Problem::NumberOverflow { span: v.span, text: text.clone() }),
            ValueKind::Number { .. } | ValueKind::Str(_) | ValueKind::Ident(_) => {}
            ValueKind::List(items) | ValueKind::Chain(items) => items.iter().for_each(|item| value(item, problems)),
            ValueKind::Call { args: a, .. } => args(a, problems),
        }
    }
    fn args(a: &Args, problems: &mut Vec<Problem>) {
        a.items.iter().for_each(|arg| value(&arg.value, problems));
    }
    fn block(b: &Block, problems: &mut Vec<Problem>) {
        for stmt in &b.stmts {
            match stmt {
                Stmt::Input { dims, .. } => dims.iter().for_each(|d| value(d, problems)),
                Stmt::Setting(s) => value(&s.value, problems),
                Stmt::Layer(layer) => {
                    layer.count.iter().for_each(|c| value(c, problems));
                    layer.args.iter().for_each(|a| args(a, problems));
                    layer.annotations.iter().filter_map(|a| a.args.as_ref()).for_each(|a| args(a, problems));
                    layer.body.iter().for_each(|b| block(b, problems));
                }
                Stmt::Named(named) => block(&named.block, problems),
                Stmt::Error { .. } => {}
            }
        }
    }
    for section in &file.sections {
        match &section.body {
            SectionBody::Block(b) => block(b, problems),
            SectionBody::Inline(v) => value(v, problems),
        }
    }
}

/// The whole file through pest, with its recovery from bad lines.
fn parse_with_pest(source: &str) -> (File, Vec<Problem>) {
    let mut problems = Vec::new();
    // Before pest: brackets nested (or left open) past the limit would make
    // its recovery rules retry every unclosed `{` up to the end of the file,
    // in time quadratic in their number, and deep recursion.
    if let Some(at) = too_deep_in_text(source) {
        problems.push(nested_too_deep(source, at));
        return (File { sections: vec![] }, problems);
    }
    // Without pest's error detail: it would record every attempt at every
    // token of the file, which doubles the time, and only bad lines need it.
    let file = match run_pest(Rule::file, source, false) {
        Ok(mut pairs) => {
            let file = pairs.next().expect("file rule yields one pair");
            // The tree is built (and later checked) by recursion: refuse a
            // nesting deeper than any program needs before it can exhaust
            // the stack.
            if let Some(at) = too_deep(file.clone()) {
                problems.push(nested_too_deep(source, at));
                return (File { sections: vec![] }, problems);
            }
            let mut sections = Vec::new();
            for item in file.into_inner() {
                match item.as_rule() {
                    Rule::section => sections.push(section(item, &mut problems)),
                    Rule::bad_item => problems.push(explain_bad(source, item, Rule::section_alone)),
                    _ => {}
                }
            }
            File { sections }
        }
        // The recovery rules accept any line, so this is not expected; report
        // it rather than panic if the grammar ever changes.
        Err(error) => {
            let error = run_pest(Rule::file, source, true).err().unwrap_or(error);
            problems.push(problem_from_pest(source, 0, &error, "this file"));
            File { sections: vec![] }
        }
    };
    (file, problems)
}

/// pest's error detail is one switch for the whole process, read when a parse
/// starts; the lock keeps each parse with the setting it asked for when
/// threads parse at once.
fn run_pest(rule: Rule, input: &str, detail: bool) -> Result<pest::iterators::Pairs<'_, Rule>, pest::error::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = DETAIL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    pest::set_error_detail(detail);
    LpnParser::parse(rule, input)
}

/// How deep brackets (`( … )`, `[ … ]`, `{ … }`) may nest. Real programs
/// nest a few levels; the limit keeps the recursive passes far from the end
/// of even a small thread stack in a debug build.
pub const MAX_NESTING: usize = 64;

/// Where a bracket opens past `MAX_NESTING` levels, if one does. Walks the
/// tree with its own stack, so the depth of the input does not matter here.
fn too_deep(root: Pair<Rule>) -> Option<usize> {
    let mut stack = vec![(root, 0usize)];
    while let Some((pair, depth)) = stack.pop() {
        let depth = depth + usize::from(matches!(pair.as_rule(), Rule::args | Rule::list | Rule::shape | Rule::block));
        if depth > MAX_NESTING {
            return Some(pair.as_span().start());
        }
        stack.extend(pair.into_inner().map(|child| (child, depth)));
    }
    None
}

/// The same limit on the text itself, before any parsing: brackets in
/// strings and `//` comments do not count, a stray closer does not go below
/// zero. This stays outside the grammar because a pest grammar cannot count:
/// its only state is the PUSH/POP stack of matched text, which can require
/// brackets to match but not refuse the 65th level, and the recovery rules
/// would already have spent their quadratic time before a rule could.
///
/// It is also what keeps pest's recursion off the end of the stack (pest is
/// built without its stack probe, a sixth of the parse time): the depth it
/// counts is never below the depth pest reaches. Braces count across lines
/// (a block left open runs to the end of the file). `(` and `[` count across
/// lines too, since arguments may wrap, until the text inside them can no
/// longer be arguments ([`InsideBrackets`]): there every open bracket's rule
/// fails, pest backtracks to the start of a statement, and the count starts
/// again from zero. So `relu(` on every line is refused (pest would nest
/// each line's arguments in the one before), and a line whose `(` is never
/// closed, followed by lines of layers, is a bad line like any other.
fn too_deep_in_text(source: &str) -> Option<usize> {
    use InsideBrackets::{AfterValue, AfterWord, ExpectingValue};
    let bytes = source.as_bytes();
    let (mut braces, mut depth) = (0usize, 0usize);
    // Meaningful while `depth > 0`.
    let mut inside = ExpectingValue;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        // What this byte does to the open brackets: `Some(next)` if their
        // rules go on (in state `next`), `None` if they all fail here.
        let goes_on = match byte {
            b'"' => {
                // A string needs its closing quote on the same line; a quote
                // left open is a plain character to the grammar (and ends
                // any open brackets' arguments). Braces count inside strings
                // too: a bad line's `{ … }` groups do not know strings, and
                // each unclosed one is scanned to the end of the file. (A
                // quote left open has no quote after it on its line, so no
                // line is scanned twice.)
                let mut end = i + 1;
                while end < bytes.len() && bytes[end] != b'"' && bytes[end] != b'\n' && bytes[end] != b'\r' {
                    end += if bytes[end] == b'\\' { 2 } else { 1 };
                }
                if bytes.get(end) == Some(&b'"') {
                    for (at, &byte) in bytes.iter().enumerate().take(end).skip(i + 1) {
                        match byte {
                            b'{' => braces += 1,
                            b'}' => braces = braces.saturating_sub(1),
                            _ => {}
                        }
                        if braces + depth > MAX_NESTING {
                            return Some(at);
                        }
                    }
                    i = end;
                    inside.read(ExpectingValue, AfterValue)
                } else {
                    None
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
                Some(inside)
            }
            b' ' | b'\t' | b'\n' | b'\r' => Some(inside),
            // A call's arguments, after its name; a list where a value may
            // start. (Elsewhere the caller opens a new count.)
            b'(' => inside.read(AfterWord, ExpectingValue),
            b'[' => inside.read(ExpectingValue, ExpectingValue),
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                Some(AfterValue)
            }
            b',' => (inside != ExpectingValue).then_some(ExpectingValue),
            // `name = value`: taken after any name (a list refuses it, but
            // the count may only ever be too high, never too low).
            b'=' => inside.read(AfterWord, ExpectingValue),
            // Two names or numbers with only spaces or newlines between are
            // never arguments (`conv(k=3)` on one line, `relu` on the next).
            _ if is_word_byte(byte) => {
                while i + 1 < bytes.len() && is_word_byte(bytes[i + 1]) {
                    i += 1;
                }
                inside.read(ExpectingValue, AfterWord)
            }
            // `{`, `}`, `@`, `;` and every other character: not arguments.
            _ => None,
        };
        match goes_on {
            Some(next) if depth > 0 => inside = next,
            // Outside brackets any text may come before the next one.
            Some(_) => {}
            None => depth = 0,
        }
        let opened = match byte {
            b'{' => {
                braces += 1;
                true
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                false
            }
            // An opener after a failure starts a new count, at one.
            b'(' | b'[' => {
                depth += 1;
                inside = ExpectingValue;
                true
            }
            _ => false,
        };
        if opened && braces + depth > MAX_NESTING {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Where [`too_deep_in_text`] is inside `( … )` or `[ … ]`: what the
/// grammar lets come next (`args` and `list`: values, `name = value`,
/// commas, calls `name( … )`, lists `[ … ]`, spaces, newlines and comments).
/// It is the same for every open bracket, whichever statement opened it: it
/// depends only on the last thing read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InsideBrackets {
    /// After `(`, `[`, `,` or `=`.
    ExpectingValue,
    /// After a name or a number (one run of [`is_word_byte`]s).
    AfterWord,
    /// After `)`, `]` or a string.
    AfterValue,
}

impl InsideBrackets {
    /// After reading something that may only come in state `from`: `next`,
    /// or from any other state `None` (every open bracket's rule fails).
    fn read(self, from: Self, next: Self) -> Option<Self> {
        (self == from).then_some(next)
    }
}

/// The bytes of names (`conv`, `repeat1.2.conv1`) and numbers (`-1.5e-3`).
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'+' | b'-')
}

fn nested_too_deep(source: &str, at: usize) -> Problem {
    let len = source.get(at..).and_then(|rest| rest.chars().next()).map_or(0, char::len_utf8);
    Problem::Syntax {
        span: Span::new(at, at + len),
        message: format!("brackets are nested more than {MAX_NESTING} deep"),
        label: "too deep here".into(),
        help: Some(format!(
            "`( … )`, `[ … ]` and `{{ … }}` may nest at most {MAX_NESTING} levels; `repeat N {{ … }}` repeats layers without nesting them"
        )),
    }
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident { name: pair.as_str().to_string(), span: span_of(&pair) }
}

fn section(pair: Pair<Rule>, problems: &mut Vec<Problem>) -> Section {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let keyword = ident(inner.next().expect("section keyword"));
    let mut name = None;
    let mut body = None;
    for part in inner {
        match part.as_rule() {
            Rule::ident if body.is_none() && name.is_none() => {
                // `model denoiser { … }`, or the one-line `data sines`.
                name = Some(ident(part));
            }
            Rule::block => body = Some(SectionBody::Block(block(part, problems))),
            _ => body = Some(SectionBody::Inline(value(part))),
        }
    }
    let body = match body {
        Some(body) => body,
        // `data sines`: the name is really the inline value.
        None => {
            let word = name.take().expect("section has a name or a body");
            SectionBody::Inline(Value { span: word.span, kind: ValueKind::Ident(word.name) })
        }
    };
    Section { keyword, name, body, span }
}

fn block(pair: Pair<Rule>, problems: &mut Vec<Problem>) -> Block {
    let span = span_of(&pair);
    let source = pair.get_input();
    if !pair.as_str().ends_with('}') {
        problems.push(Problem::Syntax {
            span: Span::new(span.start, span.start + 1),
            message: "this `{` is never closed".into(),
            label: "opened here, still open at the end of the file".into(),
            help: Some("add the matching `}` (check the blocks inside it too)".into()),
        });
    }
    let mut stmts = Vec::new();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::input_stmt => {
                let stmt_span = span_of(&part);
                let shape = part.into_inner().nth(1).expect("input shape");
                let dims = shape.into_inner().map(value).collect();
                stmts.push(Stmt::Input { dims, span: stmt_span });
            }
            Rule::setting => stmts.push(Stmt::Setting(setting(part))),
            Rule::named_block => {
                let span = span_of(&part);
                let mut inner = part.into_inner();
                let kind = ident(inner.next().expect("block kind"));
                let name = ident(inner.next().expect("block name"));
                let block = block(inner.next().expect("block body"), problems);
                stmts.push(Stmt::Named(NamedBlock { kind, name, block, span }));
            }
            Rule::layer => stmts.push(Stmt::Layer(layer(part, problems))),
            Rule::bad_stmt => {
                stmts.push(Stmt::Error { span: span_of(&part) });
                problems.push(explain_bad(source, part, Rule::stmt_alone));
            }
            _ => {}
        }
    }
    Block { stmts, span }
}

fn setting(pair: Pair<Rule>) -> Setting {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let key = ident(inner.next().expect("setting key"));
    let mut values: Vec<Value> = inner.filter(|p| p.as_rule() != Rule::then_kw).map(value).collect();
    let value = match values.len() {
        1 => values.pop().expect("one value"),
        _ => {
            let span = values[0].span.to(values[values.len() - 1].span);
            Value { kind: ValueKind::Chain(values), span }
        }
    };
    Setting { key, value, span }
}

/// `--set KEY=VALUE` (`lpnc train`): the key's dotted names and the value,
/// read as the language reads a setting's value (a chain with `then`
/// included), its spans moved by `offset`: where the override's text is
/// placed after the file's, so diagnostics can point into it.
pub fn parse_override(text: &str, offset: usize) -> Result<(Vec<Ident>, Value), Box<Problem>> {
    // The same bound on nesting as a file's, which also keeps pest's
    // recursion on the stack.
    if let Some(at) = too_deep_in_text(text) {
        let placed = format!("{}{text}", " ".repeat(offset));
        return Err(Box::new(nested_too_deep(&placed, offset + at)));
    }
    let pairs = match run_pest(Rule::override_alone, text, true) {
        Ok(mut pairs) => pairs.next().expect("override_alone").into_inner(),
        Err(error) => {
            // Positions count from the start of the file, as the override's
            // spans do: the text is read where it is placed.
            let placed = format!("{}{text}", " ".repeat(offset));
            return Err(Box::new(problem_from_pest(&placed, offset, &error, "a setting `KEY=VALUE`")));
        }
    };
    let mut key = Vec::new();
    let mut values = Vec::new();
    for part in pairs {
        match part.as_rule() {
            Rule::ident => key.push(shifted_ident(ident(part), offset)),
            Rule::then_kw | Rule::EOI => {}
            _ => values.push(shifted(value(part), offset)),
        }
    }
    let value = match values.len() {
        1 => values.pop().expect("one value"),
        _ => Value { span: values[0].span.to(values[values.len() - 1].span), kind: ValueKind::Chain(values) },
    };
    Ok((key, value))
}

fn shifted_ident(id: Ident, by: usize) -> Ident {
    Ident { name: id.name, span: Span::new(id.span.start + by, id.span.end + by) }
}

fn shifted(v: Value, by: usize) -> Value {
    let kind = match v.kind {
        ValueKind::Number { .. } | ValueKind::Str(_) | ValueKind::Ident(_) => v.kind,
        ValueKind::List(items) => ValueKind::List(items.into_iter().map(|i| shifted(i, by)).collect()),
        ValueKind::Chain(items) => ValueKind::Chain(items.into_iter().map(|i| shifted(i, by)).collect()),
        ValueKind::Call { name, args } => ValueKind::Call {
            name: shifted_ident(name, by),
            args: Args {
                items: args
                    .items
                    .into_iter()
                    .map(|a| Arg {
                        key: a.key.map(|k| shifted_ident(k, by)),
                        value: shifted(a.value, by),
                        span: Span::new(a.span.start + by, a.span.end + by),
                    })
                    .collect(),
                span: Span::new(args.span.start + by, args.span.end + by),
            },
        },
    };
    Value { kind, span: Span::new(v.span.start + by, v.span.end + by) }
}

fn layer(pair: Pair<Rule>, problems: &mut Vec<Problem>) -> Layer {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("layer name"));
    let mut layer = Layer { name, count: None, args: None, annotations: vec![], body: None, span };
    for part in inner {
        // The rule's span runs on over the whitespace before the lookahead
        // that ends it; a layer ends with its last annotation or its body.
        // (Without either it takes in that whitespace, as the span always has:
        // pest skips it before looking for annotations.)
        if matches!(part.as_rule(), Rule::annotation | Rule::block) {
            layer.span.end = part.as_span().end();
        }
        match part.as_rule() {
            Rule::number => layer.count = Some(value(part)),
            Rule::args => layer.args = Some(args(part)),
            Rule::annotation => layer.annotations.push(annotation(part)),
            Rule::block => layer.body = Some(block(part, problems)),
            rule => unreachable!("not a part of a layer: {rule:?}"),
        }
    }
    layer
}

fn annotation(pair: Pair<Rule>) -> Annotation {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("annotation name"));
    let args = inner.next().map(args);
    Annotation { name, args, span }
}

fn args(pair: Pair<Rule>) -> Args {
    let span = span_of(&pair);
    let items = pair
        .into_inner()
        .map(|part| {
            let span = span_of(&part);
            if part.as_rule() == Rule::kwarg {
                let mut inner = part.into_inner();
                let key = ident(inner.next().expect("kwarg key"));
                let value = value(inner.next().expect("kwarg value"));
                Arg { key: Some(key), value, span }
            } else {
                Arg { key: None, value: value(part), span }
            }
        })
        .collect();
    Args { items, span }
}

fn value(pair: Pair<Rule>) -> Value {
    let span = span_of(&pair);
    let kind = match pair.as_rule() {
        Rule::number => {
            let text = pair.as_str();
            let integer = !text.contains(['.', 'e', 'E']);
            // The grammar only admits well-formed decimal literals; a literal
            // too large for f64 becomes infinity and the range checks catch it.
            let value = text.parse::<f64>().unwrap_or(f64::INFINITY);
            ValueKind::Number { value, integer, text: text.to_string() }
        }
        Rule::string => {
            let raw = pair.into_inner().next().map(|p| p.as_str()).unwrap_or("");
            ValueKind::Str(unescape(raw))
        }
        Rule::ident | Rule::layer_name => ValueKind::Ident(pair.as_str().to_string()),
        Rule::list => ValueKind::List(pair.into_inner().map(value).collect()),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name = ident(inner.next().expect("call name"));
            let args = args(inner.next().expect("call args"));
            ValueKind::Call { name, args }
        }
        rule => unreachable!("not a value rule: {rule:?}"),
    };
    Value { kind, span }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Re-parses one bad line on its own to find where and why it fails.
fn explain_bad(source: &str, pair: Pair<Rule>, entry: Rule) -> Problem {
    let span = span_of(&pair);
    let text = &source[span.start..span.end];
    // A character that is invisible or looks like ASCII explains the line
    // better than what pest expected where it stands.
    if let Some((at, character)) = stray_character(text) {
        let at = span.start + at;
        return Problem::StrayCharacter {
            span: Span::new(at, at + character.len_utf8()),
            character,
            spelling: crate::language::confusables::ascii_spelling(source, at)
                .map(|(range, word)| if source[..range.start].ends_with('@') { format!("@{word}") } else { word }),
        };
    }
    let what = if entry == Rule::section_alone { "a section" } else { "a statement" };
    if let Some(open) = unclosed_quote(text) {
        return Problem::Syntax {
            span: Span::new(span.start + open, span.start + open + 1),
            message: "this string is never closed".into(),
            label: "opened here".into(),
            help: Some("a string ends with `\"` on the same line: \"data/file.csv\"".into()),
        };
    }
    // With error detail: the expected tokens are the explanation.
    match run_pest(entry, text, true) {
        Err(error) => problem_from_pest(source, span.start, &error, what),
        // It parses alone but not in place: something after it on the line.
        Ok(_) => Problem::Syntax { span, message: format!("this line is not {what}"), label: "not understood".into(), help: None },
    }
}

fn problem_from_pest(source: &str, offset: usize, error: &pest::error::Error<Rule>, what: &str) -> Problem {
    let pos = offset
        + match (error.parse_attempts(), &error.location) {
            (Some(attempts), _) => attempts.max_position,
            (None, pest::error::InputLocation::Pos(p)) => *p,
            (None, pest::error::InputLocation::Span((s, _))) => *s,
        };
    let found = describe_found(source, pos);
    let mut expected: Vec<String> = Vec::new();
    if let Some(attempts) = error.parse_attempts() {
        for token in attempts.expected_tokens() {
            // ParsingToken is not exported; its Display is the literal text.
            // Only structural tokens help a person; the rest are letters and
            // signs inside numbers and names, said better by the rule words.
            let token = token.to_string();
            match token.as_str() {
                "(" | ")" | "," | "=" | "@" | "{" | "}" | "]" => expected.push(format!("`{token}`")),
                // A list can start here, so any value can.
                "[" => expected.push("a value".into()),
                "\\" => expected.push("a closing `\"`".into()),
                _ => {}
            }
        }
        for stack in attempts.call_stacks() {
            for rule in [stack.deepest.get_rule().copied(), stack.parent].into_iter().flatten() {
                if let Some(word) = rule_in_words(rule) {
                    expected.push(word.to_string());
                }
            }
        }
    }
    expected.sort();
    expected.dedup();
    // After a complete item only the closing or separating token helps.
    if expected.iter().any(|e| e == "`)`" || e == "`]`") {
        expected.retain(|e| e.starts_with('`') || e == "a value");
    }
    // Where any value may stand, say so once.
    if expected.iter().any(|e| matches!(e.as_str(), "a number" | "a value")) {
        expected.retain(|e| !matches!(e.as_str(), "a number" | "a name" | "a string" | "a value" | "`[`" | "an argument"));
        expected.insert(0, "a value".into());
    }
    // After a complete layer: more annotations, a body, or the end of the line.
    if expected.iter().any(|e| e == "`@`") {
        expected.retain(|e| e != "an annotation (`@name`)" && e != "an argument");
        expected.push("end of line".into());
    }
    if expected.is_empty() && what == "a statement" {
        expected.push("a layer, `input [ … ]` or a setting `name = value`".into());
    }
    if expected.is_empty() && what == "a section" {
        expected.push("a section: `model NAME { … }`, `data { … }` or `train { … }`".into());
    }
    let help = help_for(&expected, &found, source, pos);
    let message = if expected.is_empty() {
        format!("unexpected {found} in {what}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    Problem::Syntax {
        span: Span::new(pos, (pos + found_len(source, pos)).min(source.len())),
        message,
        label: if expected.is_empty() { "not understood".into() } else { "unexpected here".into() },
        help,
    }
}

/// What to do about a syntax error, from what was expected and what was found.
fn help_for(expected: &[String], found: &str, source: &str, pos: usize) -> Option<String> {
    let at_end = found == "end of line" || found == "end of file";
    let word_found = found.starts_with('`') && found[1..].starts_with(|c: char| c.is_alphabetic());
    let glued_to_number = word_found && source[..pos].ends_with(|c: char| c.is_ascii_digit() || c == '.');
    if glued_to_number {
        Some("a number cannot have letters right after it; frequencies in Hz are plain numbers with `fs=` giving the sample rate".into())
    } else if expected.iter().any(|e| e == "`)`") && at_end {
        Some("arguments go inside `( … )` on one statement; close the list with `)`".into())
    } else if expected.iter().any(|e| e == "`]`") && at_end {
        Some("close the list with `]`".into())
    } else if expected.iter().any(|e| e == "`}`") && at_end {
        Some("every `{` needs a matching `}`".into())
    } else if expected.iter().any(|e| e.contains("closing `\"`")) {
        Some("strings are written in double quotes on one line: \"data/file.csv\"".into())
    } else if expected.iter().any(|e| e == "`(`") && word_found {
        Some("a layer's arguments go in parentheses right after its name, `name=value` separated by commas: `conv(out=8, k=3)`".into())
    } else if expected.iter().any(|e| e == "`,`") && word_found {
        Some("separate arguments with commas: `conv(out=8, k=3)`".into())
    } else if found == "`@`" {
        Some("annotations are written `@name(...)` after the layer, on the same line".into())
    } else if expected.iter().any(|e| e == "end of line") && word_found {
        Some("one layer per line; annotations start with `@`".into())
    } else {
        None
    }
}

fn rule_in_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident | Rule::input_kw | Rule::layer_name | Rule::dotted_name => "a name",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::list | Rule::call => "a value",
        Rule::args | Rule::kwarg => "an argument",
        Rule::annotation => "an annotation (`@name`)",
        Rule::block => "`{`",
        Rule::shape => "a shape (`[…]`)",
        _ => return None,
    })
}

fn describe_found(source: &str, pos: usize) -> String {
    match source[pos..].chars().next() {
        None => "end of file".into(),
        Some('\n') | Some('\r') => "end of line".into(),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let word: String = source[pos..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').collect();
            format!("`{word}`")
        }
        Some(c) => format!("`{c}`"),
    }
}

fn found_len(source: &str, pos: usize) -> usize {
    match source[pos..].chars().next() {
        None | Some('\n') | Some('\r') => 0,
        Some(c) if c.is_alphanumeric() || c == '_' => {
            source[pos..].chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').map(char::len_utf8).sum()
        }
        Some(c) => c.len_utf8(),
    }
}

/// The first character outside strings and comments that is not ASCII (or
/// is an ASCII control), with its offset in `text`.
fn stray_character(text: &str) -> Option<(usize, char)> {
    let mut in_string = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (c, in_string) {
            ('/', false) if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ('"', _) => in_string = !in_string,
            ('\\', true) => {
                chars.next();
            }
            ('\n', true) => in_string = false,
            (c, false) if crate::language::confusables::is_suspicious(c) => return Some((i, c)),
            _ => {}
        }
    }
    None
}

/// The offset of a `"` that opens a string with no closing quote, if any
/// (comments aside).
fn unclosed_quote(text: &str) -> Option<usize> {
    let mut open = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (c, open) {
            ('/', None) if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                // A comment runs to the end of its line.
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            ('"', None) => open = Some(i),
            ('"', Some(_)) => open = None,
            ('\\', Some(_)) => {
                chars.next();
            }
            ('\n', Some(_)) => return open,
            _ => {}
        }
    }
    open
}

/// "a, b or c"
pub fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_NESTING, parse_override};
    use crate::language::diagnostic::Problem;

    #[test]
    fn an_override_nested_too_deep_is_refused_before_pest() {
        // pest has no stack probe: the text check must stop this first.
        let deep = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| parse_override(&format!("train.epochs={}1", "[\n".repeat(1 << 18)), 40).err())
            .unwrap()
            .join()
            .unwrap()
            .expect("refused");
        let diagnostic = deep.to_diagnostic();
        assert!(diagnostic.message.contains("nested"), "{}", diagnostic.message);
        assert_eq!(diagnostic.labels[0].span.start, 40 + "train.epochs=".len() + 2 * MAX_NESTING);
        assert!(parse_override(&format!("train.x={}1{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING)), 0).is_ok());
    }

    /// A NUL is named like any other invisible character; strings and
    /// comments may hold anything.
    #[test]
    fn control_and_foreign_characters_are_named() {
        let (_, problems) = super::parse("model m {\n  input [1, 8]\n  relu\0\n}\n");
        let Some(Problem::StrayCharacter { span, character: '\0', spelling: None }) = problems.first() else {
            panic!("expected E0070 for the NUL, got {problems:?}")
        };
        assert_eq!((span.start, span.end), (31, 32));
        assert!(problems[0].to_diagnostic().message.contains("U+0000 NULL (invisible)"));
        let (_, problems) = super::parse("model m {\n  input [1, 8] // ça, \u{00A0}\n}\ndata ucr(\"données\u{200B}.csv\")\n");
        assert!(problems.is_empty(), "{problems:?}");
    }

    /// One `layer` rule reads layers with and without a body: a layer ends
    /// with its last annotation or its body (not the whitespace or comment
    /// after it, which the rule's lookahead takes in), a phase's dotted name
    /// takes no body, and a count without a body is still a layer.
    #[test]
    fn layers_with_and_without_a_body() {
        let source = "model m {\n  conv(k=3) @lowpass(0.2)  // c\n  repeat 2 { relu }  \n  repeat 3\n  a.b { relu }\n}\n";
        let (file, problems) = super::parse(source);
        let crate::language::ast::SectionBody::Block(block) = &file.sections[0].body else { panic!("a block") };
        let spans: Vec<&str> = block
            .stmts
            .iter()
            .map(|stmt| match stmt {
                crate::language::ast::Stmt::Layer(layer) => &source[layer.span.start..layer.span.end],
                other => panic!("not a layer: {other:?}"),
            })
            .take(3)
            .collect();
        assert_eq!(spans, ["conv(k=3) @lowpass(0.2)", "repeat 2 { relu }", "repeat 3"]);
        assert!(matches!(block.stmts[3], crate::language::ast::Stmt::Error { .. }), "{:?}", block.stmts[3]);
        assert!(matches!(problems[..], [Problem::Syntax { .. }]), "{problems:?}");
    }
}
