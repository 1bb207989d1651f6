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

use crate::ast::*;
use crate::diagnostic::Problem;

#[derive(Parser)]
#[grammar = "../grammar/lpn.pest"]
struct LpnParser;

/// Parses a whole file. The tree holds every statement that parsed; the
/// problems list every line that did not.
pub fn parse(source: &str) -> (File, Vec<Problem>) {
    // Needed for the expected tokens of bad lines; global, so set every time.
    pest::set_error_detail(true);
    let mut problems = Vec::new();
    let file = match LpnParser::parse(Rule::file, source) {
        Ok(mut pairs) => {
            let file = pairs.next().expect("file rule yields one pair");
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
            problems.push(problem_from_pest(source, 0, &error, "this file"));
            File { sections: vec![] }
        }
    };
    (file, problems)
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
    let what = if entry == Rule::section_alone { "a section" } else { "a statement" };
    if let Some(open) = unclosed_quote(text) {
        return Problem::Syntax {
            span: Span::new(span.start + open, span.start + open + 1),
            message: "this string is never closed".into(),
            label: "opened here".into(),
            help: Some("a string ends with `\"` on the same line: \"data/file.csv\"".into()),
        };
    }
    match LpnParser::parse(entry, text) {
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
