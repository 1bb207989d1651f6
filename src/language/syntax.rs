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
/// A byte-order mark at the start is skipped by both parsers; spans stay
/// byte offsets into `source` as given, mark included.
pub fn parse(source: &str) -> (File, Vec<Problem>) {
    let (file, mut problems) = match fast::parse(source) {
        Some(file) => (file, Vec::new()),
        None => parse_with_pest(source),
    };
    overflowing_numbers(&file, &mut problems);
    (file, problems)
}

/// E0071 for every number literal that reads as ±∞.
fn overflowing_numbers(file: &File, problems: &mut Vec<Problem>) {
    fn value(v: &Value, problems: &mut Vec<Problem>) {
        match &v.kind {
            ValueKind::Number { text, .. } if v.overflows() => problems.push(Problem::NumberOverflow { span: v.span, text: text.clone() }),
            ValueKind::Number { .. } | ValueKind::Str(_) | ValueKind::Ident(_) => {}
            ValueKind::List(items) => items.iter().for_each(|item| value(item, problems)),
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
        // pest stops when its recursion nears the end of the stack: brackets
        // nested far too deep.
        Err(error) if matches!(&error.variant, pest::error::ErrorVariant::CustomError { message } if message.contains("limit reached")) => {
            let at = match error.location {
                pest::error::InputLocation::Pos(p) => p,
                pest::error::InputLocation::Span((s, _)) => s,
            };
            problems.push(nested_too_deep(source, at.min(source.len())));
            File { sections: vec![] }
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
/// zero.
fn too_deep_in_text(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let (mut braces, mut depth) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // A string needs its closing quote on the same line; a quote
                // left open is a plain character to the grammar. Braces count
                // inside strings too: a bad line's `{ … }` groups do not know
                // strings, and each unclosed one is scanned to the end of the
                // file. (A quote left open has no quote after it on its line,
                // so no line is scanned twice.)
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
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            // Braces count across lines (a block left open runs to the end);
            // `(` and `[` within their line, as a bad line's stray opener
            // ends with it.
            b'{' | b'(' | b'[' => {
                if bytes[i] == b'{' {
                    braces += 1;
                } else {
                    depth += 1;
                }
                if braces + depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b'}' => braces = braces.saturating_sub(1),
            b')' | b']' => depth = depth.saturating_sub(1),
            b'\n' => depth = 0,
            _ => {}
        }
        i += 1;
    }
    None
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
            Rule::structure | Rule::layer => stmts.push(Stmt::Layer(layer(part, problems))),
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
    let value = value(inner.next().expect("setting value"));
    Setting { key, value, span }
}

fn layer(pair: Pair<Rule>, problems: &mut Vec<Problem>) -> Layer {
    let span = span_of(&pair);
    let mut inner = pair.into_inner();
    let name = ident(inner.next().expect("layer name"));
    let mut layer = Layer { name, count: None, args: None, annotations: vec![], body: None, span };
    for part in inner {
        match part.as_rule() {
            Rule::number => layer.count = Some(value(part)),
            Rule::args => layer.args = Some(args(part)),
            Rule::annotation => layer.annotations.push(annotation(part)),
            Rule::block => layer.body = Some(block(part, problems)),
            _ => {}
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
    let at_end = found == "end of line" || found == "end of file";
    let word_found = found.starts_with('`') && found[1..].starts_with(|c: char| c.is_alphabetic());
    let glued_to_number = word_found && source[..pos].ends_with(|c: char| c.is_ascii_digit() || c == '.');
    let help = if glued_to_number {
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
    };
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

fn rule_in_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::ident | Rule::input_kw | Rule::layer_name => "a name",
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

/// The fast path for a file without syntax problems: the grammar of
/// `grammar/lpn.pest` written out by hand, rule for rule, with pest's implicit
/// whitespace (`skip`) at the same places so every span comes out the same.
/// It covers the well-formed programs only: a file with `\r`, `;` or NUL, a
/// line that pest would take as `bad_stmt`/`bad_item`, a block left open or
/// brackets nested deeper than half of `MAX_NESTING` give `None`, and pest
/// parses the file as before (with its recovery and explanations). pest's
/// general machinery (boxed state, stack probes, the same arguments parsed
/// twice by `structure` and `layer`) made it most of `lpnc check`'s time on
/// large files; the test `fast_path_matches_pest` holds the two to the same tree.
mod fast {
    use super::{MAX_NESTING, unescape};
    use crate::language::ast::*;

    pub(super) fn parse(source: &str) -> Option<File> {
        if source.bytes().any(|c| matches!(c, b'\r' | b';' | 0)) {
            return None;
        }
        let mut parser = Fast { s: source, b: source.as_bytes(), depth: 0, bail: false };
        let file = parser.file();
        if parser.bail { None } else { file }
    }

    struct Fast<'a> {
        s: &'a str,
        b: &'a [u8],
        depth: usize,
        /// Set where pest would recover (a bad line, an open block) or where
        /// nesting is deep: the tree built here is then not pest's.
        bail: bool,
    }

    fn word_char(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'_'
    }

    impl Fast<'_> {
        /// The byte at `i`, or 0 at the end (the source holds no NUL).
        fn at(&self, i: usize) -> u8 {
            self.b.get(i).copied().unwrap_or(0)
        }

        fn eoi(&self, i: usize) -> bool {
            i >= self.b.len()
        }

        /// pest's implicit `(WHITESPACE | COMMENT)*`.
        fn skip(&self, mut i: usize) -> usize {
            loop {
                match self.at(i) {
                    b' ' | b'\t' => i += 1,
                    b'/' if self.at(i + 1) == b'/' => {
                        i += 2;
                        while !self.eoi(i) && self.b[i] != b'\n' {
                            i += 1;
                        }
                    }
                    _ => return i,
                }
            }
        }

        /// `skip ~ gap ~ skip`: whitespace, comments and newlines.
        fn ws(&self, mut i: usize) -> usize {
            loop {
                i = self.skip(i);
                if self.at(i) == b'\n' {
                    i += 1;
                } else {
                    return i;
                }
            }
        }

        fn ident_end(&self, i: usize) -> Option<usize> {
            let c = self.at(i);
            if !(c.is_ascii_alphabetic() || c == b'_') {
                return None;
            }
            let mut j = i + 1;
            while word_char(self.at(j)) {
                j += 1;
            }
            Some(j)
        }

        fn ident(&self, start: usize, end: usize) -> Ident {
            Ident { name: self.s[start..end].to_string(), span: Span::new(start, end) }
        }

        /// `section_kw`, `input_kw`: the word not followed by a word character.
        fn keyword_end(&self, i: usize, word: &str) -> Option<usize> {
            let end = i + word.len();
            (self.b[i..].starts_with(word.as_bytes()) && !word_char(self.at(end))).then_some(end)
        }

        fn section_kw_end(&self, i: usize) -> Option<usize> {
            ["model", "data", "train"].into_iter().find_map(|word| self.keyword_end(i, word))
        }

        fn layer_name_end(&self, i: usize) -> Option<usize> {
            let mut j = self.ident_end(i)?;
            while self.at(j) == b'.' && word_char(self.at(j + 1)) {
                j += 2;
                while word_char(self.at(j)) {
                    j += 1;
                }
            }
            Some(j)
        }

        fn number_end(&self, i: usize) -> Option<usize> {
            let digit = |j: usize| self.at(j).is_ascii_digit();
            let mut j = i;
            if matches!(self.at(j), b'+' | b'-') {
                j += 1;
            }
            if digit(j) {
                while digit(j) {
                    j += 1;
                }
                if self.at(j) == b'.' {
                    j += 1;
                    while digit(j) {
                        j += 1;
                    }
                }
            } else if self.at(j) == b'.' && digit(j + 1) {
                j += 1;
                while digit(j) {
                    j += 1;
                }
            } else {
                return None;
            }
            if matches!(self.at(j), b'e' | b'E') {
                let mut k = j + 1;
                if matches!(self.at(k), b'+' | b'-') {
                    k += 1;
                }
                if digit(k) {
                    while digit(k) {
                        k += 1;
                    }
                    j = k;
                }
            }
            let c = self.at(j);
            (!(c.is_ascii_alphabetic() || c == b'_')).then_some(j)
        }

        fn number(&self, i: usize) -> Option<(usize, Value)> {
            let end = self.number_end(i)?;
            let text = &self.s[i..end];
            let integer = !text.contains(['.', 'e', 'E']);
            let value = text.parse::<f64>().unwrap_or(f64::INFINITY);
            Some((end, Value { kind: ValueKind::Number { value, integer, text: text.to_string() }, span: Span::new(i, end) }))
        }

        fn string(&self, i: usize) -> Option<(usize, Value)> {
            if self.at(i) != b'"' {
                return None;
            }
            let mut j = i + 1;
            loop {
                if self.eoi(j) {
                    return None;
                }
                match self.b[j] {
                    b'"' | b'\n' => break,
                    b'\\' if self.eoi(j + 1) => return None,
                    b'\\' => j += 2,
                    _ => j += 1,
                }
            }
            if self.at(j) != b'"' {
                return None;
            }
            let raw = &self.s[i + 1..j];
            Some((j + 1, Value { kind: ValueKind::Str(unescape(raw)), span: Span::new(i, j + 1) }))
        }

        fn enter(&mut self) -> bool {
            self.depth += 1;
            if self.depth > MAX_NESTING / 2 {
                self.bail = true;
            }
            !self.bail
        }

        /// `value = _{ call | number | string | list | layer_name }`
        fn value(&mut self, i: usize) -> Option<(usize, Value)> {
            if let Some(name_end) = self.ident_end(i) {
                let k = self.skip(name_end);
                if let Some((end, args)) = self.args(k) {
                    let name = self.ident(i, name_end);
                    return Some((end, Value { kind: ValueKind::Call { name, args }, span: Span::new(i, end) }));
                }
            }
            if let Some(found) = self.number(i) {
                return Some(found);
            }
            if let Some(found) = self.string(i) {
                return Some(found);
            }
            if let Some((end, items)) = self.list(i) {
                return Some((end, Value { kind: ValueKind::List(items), span: Span::new(i, end) }));
            }
            let end = self.layer_name_end(i)?;
            Some((end, Value { kind: ValueKind::Ident(self.s[i..end].to_string()), span: Span::new(i, end) }))
        }

        /// `list` and `shape`: `"[" ~ gap ~ (value ~ (gap ~ "," ~ gap ~ value)* ~ (gap ~ ",")?)? ~ gap ~ "]"`
        fn list(&mut self, i: usize) -> Option<(usize, Vec<Value>)> {
            if self.at(i) != b'[' {
                return None;
            }
            if !self.enter() {
                return None;
            }
            let found = self.list_body(i);
            self.depth -= 1;
            found
        }

        fn list_body(&mut self, i: usize) -> Option<(usize, Vec<Value>)> {
            let mut j = self.ws(i + 1);
            let mut items = Vec::new();
            if let Some((end, first)) = self.value(j) {
                items.push(first);
                j = self.more_items(end, Self::value, &mut items);
            }
            j = self.ws(j);
            (self.at(j) == b']').then_some((j + 1, items))
        }

        /// `(gap ~ "," ~ gap ~ ITEM)* ~ (gap ~ ",")?` after a first item ending at `end`.
        fn more_items<T>(&mut self, end: usize, item: fn(&mut Self, usize) -> Option<(usize, T)>, items: &mut Vec<T>) -> usize {
            let mut j = end;
            loop {
                let comma = self.ws(j);
                if self.at(comma) != b',' {
                    break;
                }
                match item(self, self.ws(comma + 1)) {
                    Some((end, next)) => {
                        items.push(next);
                        j = end;
                    }
                    None => break,
                }
            }
            let comma = self.ws(j);
            if self.at(comma) == b',' { comma + 1 } else { j }
        }

        /// `args = { "(" ~ gap ~ (arg ~ (gap ~ "," ~ gap ~ arg)* ~ (gap ~ ",")?)? ~ gap ~ ")" }`
        fn args(&mut self, i: usize) -> Option<(usize, Args)> {
            if self.at(i) != b'(' {
                return None;
            }
            if !self.enter() {
                return None;
            }
            let found = self.args_body(i);
            self.depth -= 1;
            found
        }

        fn args_body(&mut self, i: usize) -> Option<(usize, Args)> {
            let mut j = self.ws(i + 1);
            let mut items = Vec::new();
            if let Some((end, first)) = self.arg(j) {
                items.push(first);
                j = self.more_items(end, Self::arg, &mut items);
            }
            j = self.ws(j);
            (self.at(j) == b')').then(|| (j + 1, Args { items, span: Span::new(i, j + 1) }))
        }

        /// `arg = _{ kwarg | value }`, `kwarg = { ident ~ "=" ~ value }`
        fn arg(&mut self, i: usize) -> Option<(usize, Arg)> {
            if let Some(key_end) = self.ident_end(i) {
                let eq = self.skip(key_end);
                if self.at(eq) == b'=' {
                    let k = self.skip(eq + 1);
                    if let Some((end, value)) = self.value(k) {
                        let key = self.ident(i, key_end);
                        return Some((end, Arg { key: Some(key), value, span: Span::new(i, end) }));
                    }
                }
            }
            let (end, value) = self.value(i)?;
            let span = value.span;
            Some((end, Arg { key: None, value, span }))
        }

        /// `annotation = { "@" ~ ident ~ args? }`
        fn annotation(&mut self, i: usize) -> Option<(usize, Annotation)> {
            if self.at(i) != b'@' {
                return None;
            }
            let start = self.skip(i + 1);
            let name_end = self.ident_end(start)?;
            let name = self.ident(start, name_end);
            let k = self.skip(name_end);
            let (end, args) = match self.args(k) {
                Some((end, args)) => (end, Some(args)),
                None => (k, None),
            };
            Some((end, Annotation { name, args, span: Span::new(i, end) }))
        }

        /// `structure` (`with_block`) and `layer`: NAME ~ number? ~ args? ~ annotation* (~ block).
        fn layer(&mut self, i: usize, name_end: usize, with_block: bool) -> Option<(usize, Layer)> {
            let name = self.ident(i, name_end);
            let mut layer = Layer { name, count: None, args: None, annotations: vec![], body: None, span: Span::default() };
            let mut j = self.skip(name_end);
            if let Some((end, count)) = self.number(j) {
                layer.count = Some(count);
                j = self.skip(end);
            }
            if let Some((end, args)) = self.args(j) {
                layer.args = Some(args);
                j = self.skip(end);
            }
            if let Some((end, first)) = self.annotation(j) {
                layer.annotations.push(first);
                j = end;
                loop {
                    let k = self.skip(j);
                    match self.annotation(k) {
                        Some((end, next)) => {
                            layer.annotations.push(next);
                            j = end;
                        }
                        None => break,
                    }
                }
            }
            if with_block {
                let (end, body) = self.block(self.skip(j))?;
                layer.body = Some(body);
                j = end;
            }
            layer.span = Span::new(i, j);
            Some((j, layer))
        }

        /// `stmt`'s good alternatives: input_stmt | setting | named_block | structure | layer.
        fn stmt(&mut self, i: usize) -> Option<(usize, Stmt)> {
            if let Some(kw_end) = self.keyword_end(i, "input")
                && let Some((end, dims)) = self.list(self.skip(kw_end))
            {
                return Some((end, Stmt::Input { dims, span: Span::new(i, end) }));
            }
            let ident_end = self.ident_end(i);
            if let Some(key_end) = ident_end {
                let eq = self.skip(key_end);
                if self.at(eq) == b'=' {
                    let k = self.skip(eq + 1);
                    if let Some((end, value)) = self.value(k) {
                        let key = self.ident(i, key_end);
                        return Some((end, Stmt::Setting(Setting { key, value, span: Span::new(i, end) })));
                    }
                }
                let second = self.skip(key_end);
                if let Some(name_end) = self.ident_end(second) {
                    let k = self.skip(name_end);
                    if let Some((end, block)) = self.block(k) {
                        let kind = self.ident(i, key_end);
                        let name = self.ident(second, name_end);
                        return Some((end, Stmt::Named(NamedBlock { kind, name, block, span: Span::new(i, end) })));
                    }
                }
                if let Some((end, layer)) = self.layer(i, key_end, true) {
                    return Some((end, Stmt::Layer(layer)));
                }
            }
            let name_end = self.layer_name_end(i)?;
            let (end, layer) = self.layer(i, name_end, false)?;
            Some((end, Stmt::Layer(layer)))
        }

        /// `section_start = _{ section_kw ~ (ident? ~ "{" | !("=" | "(" | "@")) }`
        fn section_start(&self, i: usize) -> bool {
            let Some(kw_end) = self.section_kw_end(i) else { return false };
            let q = self.skip(kw_end);
            let brace = self.ident_end(q).map_or(q, |end| self.skip(end));
            self.at(brace) == b'{' || !matches!(self.at(q), b'=' | b'(' | b'@')
        }

        /// `block = { "{" ~ gap ~ (!section_start ~ stmt ~ stmt_end)* ~ ("}" | EOI | &section_start) }`;
        /// anything but a closed block of good statements bails.
        fn block(&mut self, i: usize) -> Option<(usize, Block)> {
            if self.at(i) != b'{' {
                return None;
            }
            if !self.enter() {
                return None;
            }
            let found = self.block_body(i);
            self.depth -= 1;
            if found.is_none() {
                self.bail = true;
            }
            found
        }

        fn block_body(&mut self, i: usize) -> Option<(usize, Block)> {
            let mut stmts = Vec::new();
            let mut j = self.ws(i + 1);
            loop {
                if self.at(j) == b'}' {
                    return Some((j + 1, Block { stmts, span: Span::new(i, j + 1) }));
                }
                if self.eoi(j) || self.section_start(j) {
                    return None;
                }
                let (end, stmt) = self.stmt(j)?;
                stmts.push(stmt);
                let next = self.skip(end);
                match self.at(next) {
                    b'\n' => j = self.ws(next + 1),
                    b'}' => j = next,
                    _ => return None,
                }
            }
        }

        /// `section = { ident ~ ident? ~ block | ident ~ value ~ &(NEWLINE | ";" | EOI) }`
        fn section(&mut self, i: usize) -> Option<(usize, Section)> {
            let kw_end = self.ident_end(i)?;
            let keyword = self.ident(i, kw_end);
            let q = self.skip(kw_end);
            let (name, brace) = match self.ident_end(q) {
                Some(end) => (Some(self.ident(q, end)), self.skip(end)),
                None => (None, q),
            };
            if self.at(brace) == b'{' {
                let (end, block) = self.block(brace)?;
                return Some((end, Section { keyword, name, body: SectionBody::Block(block), span: Span::new(i, end) }));
            }
            let (value_end, value) = self.value(q)?;
            let end = self.skip(value_end);
            (self.eoi(end) || self.at(end) == b'\n')
                .then(|| (end, Section { keyword, name: None, body: SectionBody::Inline(value), span: Span::new(i, end) }))
        }

        /// `file = { SOI ~ gap ~ ((section | bad_item) ~ item_end)* ~ EOI }`
        fn file(&mut self) -> Option<File> {
            let mut sections = Vec::new();
            // A byte-order mark, as the grammar's `file` rule skips it.
            let mut j = self.ws(if self.s.starts_with('\u{FEFF}') { '\u{FEFF}'.len_utf8() } else { 0 });
            while !self.eoi(j) {
                let (end, section) = self.section(j)?;
                sections.push(section);
                let next = self.skip(end);
                if self.at(next) == b'\n' {
                    j = self.ws(next + 1);
                } else if self.eoi(next) || self.section_kw_end(next).is_some() {
                    j = next;
                } else {
                    return None;
                }
            }
            Some(File { sections })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::language::diagnostic::Problem;

    /// A NUL, which the fast path leaves to pest, is named like any other
    /// invisible character; strings and comments may hold anything.
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

    /// Every program the tree holds, whole and mutated at many places (a
    /// byte removed, whitespace, a comment, a newline or a bracket put in):
    /// wherever the fast path gives a tree, pest gives the same tree and no
    /// problem.
    #[test]
    fn fast_path_matches_pest() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = Vec::new();
        for dir in ["tests/ui", "examples", "benches/nets", "fuzz/corpus/frontend"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    sources.push(text);
                }
            }
        }
        assert!(sources.len() > 50, "found only {} programs", sources.len());
        sources.push(
            "model m {\n  input [1, 64]  // c\n  conv(out=8, k=15) @lowpass(cutoff=0.2, mode=project) @freeze  \n  relu // x\n  repeat 2 {\n    conv 3 (k=\"a\\\"b\", w=[1, 2,\n ], f=g(h=.5e-3))\n  }\n  a.b.c\n}\ndata sines()  // d\ntrain { epochs = 3\n phase warmup { conv1 @lr(0.1) }\n}\n"
                .into(),
        );
        assert!(sources.last().and_then(|s| super::fast::parse(s)).is_some(), "the fast path covers every rule");
        let inserts = [" ", "\t", "\n", "// c\n", "(", ")", "{", "}", "[", "]", ",", "@", "=", ".", "e", "\"", "\\", "1", "x", "model "];
        let (mut fast, mut total) = (0, 0);
        for source in &sources {
            let mut variants = vec![source.clone()];
            let cuts: Vec<usize> = (0..=source.len()).filter(|&i| source.is_char_boundary(i)).collect();
            let step = (cuts.len() / 60).max(1);
            for (n, &at) in cuts.iter().enumerate().step_by(step) {
                let insert = inserts[n % inserts.len()];
                variants.push(format!("{}{insert}{}", &source[..at], &source[at..]));
                if let Some(&next) = cuts.get(n + 1) {
                    variants.push(format!("{}{}", &source[..at], &source[next..]));
                }
            }
            for variant in variants {
                total += 1;
                if let Some(tree) = super::fast::parse(&variant) {
                    fast += 1;
                    let (expected, problems) = super::parse_with_pest(&variant);
                    assert!(problems.is_empty(), "fast path accepted a file pest reports:\n{variant}");
                    assert_eq!(tree, expected, "trees differ for:\n{variant}");
                }
            }
        }
        assert!(fast > total / 4, "fast path took only {fast} of {total}");
    }
}
