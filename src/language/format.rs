//! `lpnc fmt`: a parsed file printed back in one canonical layout
//! (docs/formatting.md), every comment kept where it stood.
//!
//! The grammar skips comments as whitespace, so the tree does not hold them:
//! they are found again in the source (`comments`, outside strings) and
//! printed while the tree is walked in source order. A comment is either
//! *trailing* (code before it on its line: it stays after that code) or on a
//! line of its own (it stays before what follows it, at that thing's
//! indentation). Comments can only stand where the grammar allows line
//! breaks: between sections and statements, and inside `( … )`, `[ … ]` and
//! `{ … }`; an argument list or list holding one is printed one item per
//! line.
//!
//! Nothing of the program changes: names, numbers and strings are copied as
//! written; only the space between tokens, line breaks, `;` separators and
//! trailing commas do. (`tests/format.rs` checks that the checked program
//! of the output equals that of the input.)

use crate::language::ast::*;
use crate::language::diagnostic::Problem;
use crate::language::syntax;

/// The spaces of one level of indentation.
const INDENT: &str = "  ";

/// Annotations of neighbouring layers start in one column when their heads
/// (`conv(out=8, k=3)`) differ in width by at most this many characters;
/// further apart, the padding would push the short line's annotations far
/// from their layer.
const ALIGN_SPREAD: usize = 8;

/// ... and when at most one other layer stands between them (a `relu`
/// between two constrained convs, say).
const ALIGN_REACH: usize = 2;

/// The file in the canonical layout, or its syntax problems when it does not
/// parse cleanly (then nothing can be laid out: a broken line has no tree).
///
/// Panics if a comment of the source would be lost, which would be a bug of
/// this module (the property tests check that every comment comes back).
pub fn format_source(source: &str) -> Result<String, Vec<Problem>> {
    let (file, problems) = syntax::parse(source);
    if !problems.is_empty() {
        return Err(problems);
    }
    let comments = comments(source);
    let mut printer =
        Printer { source, comments: &comments, next: 0, out: String::with_capacity(source.len() + 64), newline: newline(source) };
    printer.file(&file);
    assert_eq!(printer.next, comments.len(), "lpnc fmt: a comment was not placed; please report this file");
    Ok(printer.out)
}

/// A `//` comment: its byte range, trailing whitespace and `\r` left out.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Comment {
    start: usize,
    end: usize,
}

/// Every comment of a file that parsed, in order. Strings are skipped as
/// the grammar reads them (a `\` escapes the next character; a string ends
/// at its closing `"`).
fn comments(source: &str) -> Vec<Comment> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let start = i;
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                let end = start + source[start..i].trim_end().len();
                found.push(Comment { start, end });
            }
            _ => i += 1,
        }
    }
    found
}

/// The line ending of the output: the file's own (`\r\n` if it has one).
fn newline(source: &str) -> &'static str {
    if source.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Whether the text between two offsets holds a line with nothing on it.
fn blank_line_between(source: &str, from: usize, to: usize) -> bool {
    let lines: Vec<&str> = source[from..to].split('\n').collect();
    lines.len() > 2 && lines[1..lines.len() - 1].iter().any(|line| line.trim().is_empty())
}

/// Blank lines between the items of a sequence: as the file has them (at
/// most one), or always one (between sections).
#[derive(Clone, Copy, PartialEq)]
enum Blank {
    AsWritten,
    Always,
}

struct Printer<'a> {
    source: &'a str,
    comments: &'a [Comment],
    /// The first comment not printed yet.
    next: usize,
    out: String,
    newline: &'static str,
}

impl Printer<'_> {
    /// The next unprinted comment, if it starts before `limit`.
    fn pending(&self, limit: usize) -> Option<Comment> {
        self.comments.get(self.next).copied().filter(|c| c.start < limit)
    }

    /// Whether a comment starts in `[from, to)`.
    fn has_comment_in(&self, from: usize, to: usize) -> bool {
        let first = self.comments.partition_point(|c| c.start < from);
        self.comments.get(first).is_some_and(|c| c.start < to)
    }

    fn indent(&mut self, level: usize) {
        for _ in 0..level {
            self.out.push_str(INDENT);
        }
    }

    /// Ends the current line, whose code ends at `anchor`: a comment after
    /// it on the same source line (and before `limit`) goes at its end.
    /// Returns where the source line's content ends.
    fn finish_line(&mut self, anchor: usize, limit: usize) -> usize {
        let mut end = anchor;
        if let Some(comment) = self.pending(limit).filter(|c| !self.source[anchor..c.start].contains('\n')) {
            self.out.push_str("  ");
            self.out.push_str(&self.source[comment.start..comment.end]);
            self.next += 1;
            end = comment.end;
        }
        self.out.push_str(self.newline);
        end
    }

    /// Own-line comments before `limit`, at `level`. `prev` is where the
    /// source's last printed line ended, `first` whether nothing of the
    /// sequence is printed yet, `forced` whether the first of them takes a
    /// blank line in any case. Returns where the last one ended and whether
    /// any was printed.
    fn own_line_comments(&mut self, mut prev: usize, limit: usize, level: usize, first: &mut bool, forced: bool) -> (usize, bool) {
        let mut printed = false;
        while let Some(comment) = self.pending(limit) {
            self.separate(prev, comment.start, *first, forced && !printed);
            self.indent(level);
            self.out.push_str(&self.source[comment.start..comment.end]);
            self.out.push_str(self.newline);
            self.next += 1;
            prev = comment.end;
            *first = false;
            printed = true;
        }
        (prev, printed)
    }

    /// A blank line between what ended at `prev` and what starts at `next`,
    /// unless nothing is printed yet.
    fn separate(&mut self, prev: usize, next: usize, first: bool, forced: bool) {
        if !first && (forced || (next <= self.source.len() && blank_line_between(self.source, prev, next))) {
            self.out.push_str(self.newline);
        }
    }

    /// Items one per line at `level`, each followed by `separator` and its
    /// trailing comment; the comments before each item and those after the
    /// last one (before `to`) on lines of their own. `from` is where the
    /// source line before the first item ends.
    fn lines<T>(
        &mut self,
        items: &[T],
        span: (usize, usize),
        level: usize,
        layout: (Blank, &str),
        extent: impl Fn(&T) -> (usize, usize),
        print: impl Fn(&mut Self, &T, usize),
    ) {
        let (from, to) = span;
        let (blank, separator) = layout;
        let mut prev = from;
        let mut first = true;
        for (i, item) in items.iter().enumerate() {
            let (start, end) = extent(item);
            let forced = blank == Blank::Always;
            let (after_comments, commented) = self.own_line_comments(prev, start, level, &mut first, forced);
            self.separate(after_comments, start, first, forced && !commented);
            self.indent(level);
            print(self, item, level);
            self.out.push_str(separator);
            let limit = items.get(i + 1).map_or(to, |next| extent(next).0);
            prev = self.finish_line(end, limit);
            first = false;
        }
        // Comments at the end, with the blank lines the file has before them.
        self.own_line_comments(prev, to, level, &mut first, false);
    }

    fn file(&mut self, file: &File) {
        let body_start = if self.source.starts_with('\u{FEFF}') {
            self.out.push('\u{FEFF}');
            '\u{FEFF}'.len_utf8()
        } else {
            0
        };
        let span = (body_start, self.source.len());
        self.lines(&file.sections, span, 0, (Blank::Always, ""), section_extent, |p, section, _| p.section(section));
    }

    fn section(&mut self, section: &Section) {
        self.out.push_str(&section.keyword.name);
        if let Some(name) = &section.name {
            self.out.push(' ');
            self.out.push_str(&name.name);
        }
        self.out.push(' ');
        match &section.body {
            SectionBody::Block(block) => self.block(block, 0),
            SectionBody::Inline(value) => self.value(value, 0),
        }
    }

    /// `{ … }` with its statements one per line at `level + 1`.
    fn block(&mut self, block: &Block, level: usize) {
        let open = block.span.start;
        let close = block.span.end - 1;
        if block.stmts.is_empty() && !self.has_comment_in(open, close) {
            self.out.push_str("{}");
            return;
        }
        self.out.push('{');
        let first_start = block.stmts.first().map_or(close, |stmt| stmt_extent(stmt).0);
        let from = self.finish_line(open + 1, first_start);
        let padded: Vec<(&Stmt, usize)> = block.stmts.iter().zip(self.annotation_padding(&block.stmts)).collect();
        let extent = |(stmt, _): &(&Stmt, usize)| stmt_extent(stmt);
        self.lines(&padded, (from, close), level + 1, (Blank::AsWritten, ""), extent, |p, (stmt, pad), level| p.stmt(stmt, level, *pad));
        self.indent(level);
        self.out.push('}');
    }

    fn stmt(&mut self, stmt: &Stmt, level: usize, pad: usize) {
        match stmt {
            Stmt::Input { dims, span } => {
                self.out.push_str("input ");
                // The shape's `[` follows the keyword on the same line.
                let open = span.start + self.source[span.start..span.end].find('[').expect("a shape opens with `[`");
                self.bracketed(('[', ']'), Span::new(open, span.end), dims, level, |v| (v.span.start, v.span.end), Self::value);
            }
            Stmt::Setting(setting) => {
                self.out.push_str(&setting.key.name);
                self.out.push_str(" = ");
                self.value(&setting.value, level);
            }
            Stmt::Layer(layer) => self.layer(layer, level, pad),
            Stmt::Named(named) => {
                self.out.push_str(&named.kind.name);
                self.out.push(' ');
                self.out.push_str(&named.name.name);
                self.out.push(' ');
                self.block(&named.block, level);
            }
            // Not in a file that parsed; copied as written all the same.
            Stmt::Error { span } => self.out.push_str(&self.source[span.start..span.end]),
        }
    }

    /// A layer; its first annotation after `pad` spaces (for alignment).
    fn layer(&mut self, layer: &Layer, level: usize, pad: usize) {
        self.head(layer, level);
        for (i, annotation) in layer.annotations.iter().enumerate() {
            self.out.push_str(&" ".repeat(if i == 0 { pad } else { 1 }));
            self.out.push('@');
            self.out.push_str(&annotation.name.name);
            if let Some(args) = &annotation.args {
                self.args(args, level);
            }
        }
        if let Some(body) = &layer.body {
            self.out.push(' ');
            self.block(body, level);
        }
    }

    /// A layer's name, count and arguments: what its annotations follow.
    fn head(&mut self, layer: &Layer, level: usize) {
        self.out.push_str(&layer.name.name);
        if let Some(count) = &layer.count {
            self.out.push(' ');
            self.value(count, level);
        }
        if let Some(args) = &layer.args {
            self.args(args, level);
        }
    }

    fn args(&mut self, args: &Args, level: usize) {
        self.bracketed(
            ('(', ')'),
            args.span,
            &args.items,
            level,
            |arg| (arg.span.start, arg.span.end),
            |p, arg, level| {
                if let Some(key) = &arg.key {
                    p.out.push_str(&key.name);
                    p.out.push('=');
                }
                p.value(&arg.value, level);
            },
        );
    }

    fn value(&mut self, value: &Value, level: usize) {
        match &value.kind {
            ValueKind::Number { text, .. } => self.out.push_str(text),
            ValueKind::Str(_) => self.out.push_str(&self.source[value.span.start..value.span.end]),
            ValueKind::Ident(name) => self.out.push_str(name),
            ValueKind::List(items) => {
                self.bracketed(('[', ']'), value.span, items, level, |v| (v.span.start, v.span.end), Self::value);
            }
            ValueKind::Call { name, args } => {
                self.out.push_str(&name.name);
                self.args(args, level);
            }
            ValueKind::Chain(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(" then ");
                    }
                    self.value(part, level);
                }
            }
        }
    }

    /// `(a, b)` or `[a, b]` on one line; one item per line (with a trailing
    /// comma) when a comment stands inside or the file breaks the line
    /// right after the opening bracket.
    fn bracketed<T>(
        &mut self,
        brackets: (char, char),
        span: Span,
        items: &[T],
        level: usize,
        extent: impl Fn(&T) -> (usize, usize),
        print: impl Fn(&mut Self, &T, usize),
    ) {
        let close = span.end - 1;
        let first_start = items.first().map_or(close, |item| extent(item).0);
        let wrapped = self.has_comment_in(span.start, close) || (!items.is_empty() && self.source[span.start..first_start].contains('\n'));
        self.out.push(brackets.0);
        if wrapped {
            let from = self.finish_line(span.start + 1, first_start);
            self.lines(items, (from, close), level + 1, (Blank::AsWritten, ","), extent, print);
            self.indent(level);
        } else {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                print(self, item, level);
            }
        }
        self.out.push(brackets.1);
    }

    /// How many spaces go before each statement's first annotation: one, or
    /// more to start it in the column of its neighbours' (see `align`).
    fn annotation_padding(&self, stmts: &[Stmt]) -> Vec<usize> {
        let mut padding = vec![1; stmts.len()];
        // Runs of one-line layers, unbroken by a blank line or another
        // kind of statement; within each, the annotated ones.
        let mut run: Vec<(usize, usize)> = Vec::new();
        let mut prev_end = None;
        for (i, stmt) in stmts.iter().enumerate() {
            let (start, end) = stmt_extent(stmt);
            let head = match stmt {
                Stmt::Layer(layer) if layer.body.is_none() => self.one_line_head(layer),
                Stmt::Layer(_) | Stmt::Input { .. } | Stmt::Setting(_) | Stmt::Named(_) | Stmt::Error { .. } => None,
            };
            let joined = prev_end.is_some_and(|prev| !blank_line_between(self.source, prev, start));
            if head.is_none() || !joined {
                align(&run, &mut padding);
                run.clear();
            }
            if let (Some(width), Stmt::Layer(layer)) = (head, stmt)
                && !layer.annotations.is_empty()
            {
                // Annotated layers further apart are not read together.
                if run.last().is_some_and(|&(last, _)| i - last > ALIGN_REACH) {
                    align(&run, &mut padding);
                    run.clear();
                }
                run.push((i, width));
            }
            prev_end = head.map(|_| end);
        }
        align(&run, &mut padding);
        padding
    }

    /// The width of a layer's head as printed, if it is printed on one line.
    fn one_line_head(&self, layer: &Layer) -> Option<usize> {
        let mut scratch = Printer { out: String::new(), next: self.comments.partition_point(|c| c.start < layer.span.start), ..*self };
        scratch.head(layer, 0);
        (!scratch.out.contains('\n')).then(|| scratch.out.chars().count())
    }
}

/// Starts the first annotation of each layer of a run (`(index, head width)`)
/// in one column, taking the layers in order into groups whose widths stay
/// within `ALIGN_SPREAD` of each other.
fn align(run: &[(usize, usize)], padding: &mut [usize]) {
    let mut group: Vec<(usize, usize)> = Vec::new();
    let flush = |group: &mut Vec<(usize, usize)>, padding: &mut [usize]| {
        let widest = group.iter().map(|&(_, w)| w).max().unwrap_or(0);
        for &(i, width) in group.iter() {
            padding[i] = widest - width + 1;
        }
        group.clear();
    };
    for &(i, width) in run {
        let widest = group.iter().map(|&(_, w)| w).max().unwrap_or(width).max(width);
        let narrowest = group.iter().map(|&(_, w)| w).min().unwrap_or(width).min(width);
        if widest - narrowest > ALIGN_SPREAD {
            flush(&mut group, padding);
        }
        group.push((i, width));
    }
    flush(&mut group, padding);
}

/// Where a section's code starts and ends (its tree span may run on over
/// the spaces and comment after it).
fn section_extent(section: &Section) -> (usize, usize) {
    let end = match &section.body {
        SectionBody::Block(block) => block.span.end,
        SectionBody::Inline(value) => value.span.end,
    };
    (section.keyword.span.start, end)
}

/// Where a statement's code starts and ends: a layer's span may run on over
/// the spaces and comment after it, so its end is that of its last part.
fn stmt_extent(stmt: &Stmt) -> (usize, usize) {
    match stmt {
        Stmt::Input { span, .. } | Stmt::Error { span } => (span.start, span.end),
        Stmt::Setting(setting) => (setting.span.start, setting.value.span.end),
        Stmt::Named(named) => (named.span.start, named.block.span.end),
        Stmt::Layer(layer) => {
            let end = [
                Some(layer.name.span.end),
                layer.count.as_ref().map(|c| c.span.end),
                layer.args.as_ref().map(|a| a.span.end),
                // An annotation's span, too, may run on when it has no arguments.
                layer.annotations.last().map(|a| a.args.as_ref().map_or(a.name.span.end, |args| args.span.end)),
                layer.body.as_ref().map(|b| b.span.end),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(layer.span.end);
            (layer.span.start, end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format_source;

    fn fmt(source: &str) -> String {
        format_source(source).unwrap_or_else(|problems| panic!("{source:?} does not parse: {problems:?}"))
    }

    /// Spacing, one statement per line, indented bodies, one blank line
    /// between sections, numbers and strings as written.
    #[test]
    fn lays_out_statements_and_sections() {
        let source = "model   m{\ninput[1,64]\n\tconv( out = 8 ,k=15 )@lowpass( 0.3,mode = penalty)  @lr(5e-1)\n  relu;dropout(.10)\n\n\n\
                      repeat 2 { residual{conv(k=3) ; relu} }\nresidual @lr(0.1) {}\n  }\ndata sines(n=+32, s=\"a\\\"b\")\ntrain{epochs=3;phase p{conv1 @freeze}}";
        let expected = "model m {\n  input [1, 64]\n  conv(out=8, k=15) @lowpass(0.3, mode=penalty) @lr(5e-1)\n  relu\n  dropout(.10)\n\n  \
                        repeat 2 {\n    residual {\n      conv(k=3)\n      relu\n    }\n  }\n  residual @lr(0.1) {}\n}\n\n\
                        data sines(n=+32, s=\"a\\\"b\")\n\ntrain {\n  epochs = 3\n  phase p {\n    conv1 @freeze\n  }\n}\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    /// Comments at the top, before a statement, after one, after `{`, at
    /// the end of a block, between sections and at the end of the file;
    /// a `//` inside a string is not one. (The span of an annotation
    /// without arguments runs on over the comment after it: the comment is
    /// still placed after it, found by the generated programs of
    /// tests/format.rs.)
    #[test]
    fn keeps_every_comment_in_place() {
        let source = "// top\n\n// about m\nmodel m {   // after the brace\n  // before input\n  input [1, 64]    // trailing\n\n\n  \
                      // own line\n  relu; tanh @freeze // after tanh\n  // end of the block\n}\n// before data\ndata ucr(\"a//b.csv\")   // after data\n\n// the end\n";
        let expected = "// top\n\n// about m\nmodel m {  // after the brace\n  // before input\n  input [1, 64]  // trailing\n\n  \
                        // own line\n  relu\n  tanh @freeze  // after tanh\n  // end of the block\n}\n\n// before data\ndata ucr(\"a//b.csv\")  // after data\n\n// the end\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    /// A comment inside an argument list puts one argument per line (with a
    /// trailing comma), and so does a line break right after `(`; a list
    /// merely wrapped later is joined.
    #[test]
    fn wraps_lists_that_hold_comments_or_start_a_line() {
        let source = "model m {\n  input [1,\n 64]\n  conv(out=8, // eight\n    k=15) @lowpass(\n  cutoff=0.3, mode=penalty)\n}\n\
                      train {\n  optimizer = sgd(\n    // the rate\n    lr=0.1,\n\n    momentum=0.9\n    // more later\n  )\n}\n";
        let expected = "model m {\n  input [1, 64]\n  conv(\n    out=8,  // eight\n    k=15,\n  ) @lowpass(\n    cutoff=0.3,\n    mode=penalty,\n  )\n}\n\n\
                        train {\n  optimizer = sgd(\n    // the rate\n    lr=0.1,\n\n    momentum=0.9,\n    // more later\n  )\n}\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    /// The first annotations of neighbouring one-line layers share a column
    /// when their heads are close in width; a blank line, a far wider head,
    /// two unannotated layers between or a layer with a body break the run.
    #[test]
    fn aligns_annotations_of_neighbouring_layers() {
        let source = "model m {\n  input [1, 64]\n  conv(out=16, k=15) @lowpass(0.3)\n  relu\n  conv(out=1, k=15) @symmetric\n\
                      conv(out=1, k=15, padding=valid, dilation=2) @nonneg\n\n  conv(k=3) @nonneg\n  relu\n  tanh\n  conv(k=15) @nonneg\n\
                      linear(out=3) @lr(0.5)\n  residual @lr(0.1) {\n    conv(k=3)\n  }\n  linear(out=30) @lr(0.5)\n}\n";
        let expected = "model m {\n  input [1, 64]\n  conv(out=16, k=15) @lowpass(0.3)\n  relu\n  conv(out=1, k=15)  @symmetric\n  \
                        conv(out=1, k=15, padding=valid, dilation=2) @nonneg\n\n  conv(k=3) @nonneg\n  relu\n  tanh\n  conv(k=15)    @nonneg\n  \
                        linear(out=3) @lr(0.5)\n  residual @lr(0.1) {\n    conv(k=3)\n  }\n  linear(out=30) @lr(0.5)\n}\n";
        assert_eq!(fmt(source), expected);
        assert_eq!(fmt(expected), expected);
    }

    /// A byte-order mark and `\r\n` line ends stay; an empty file stays
    /// empty; a file of comments alone keeps them.
    #[test]
    fn keeps_the_mark_line_ends_and_empty_files() {
        assert_eq!(fmt("\u{FEFF}data sines\r\n//c\r\n"), "\u{FEFF}data sines\r\n//c\r\n");
        assert_eq!(fmt("model m{\r\n relu\r\n}"), "model m {\r\n  relu\r\n}\r\n");
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("\n\n  // only a comment   \n\n"), "// only a comment\n");
    }

    /// A file that does not parse cleanly is not laid out: its problems
    /// come back instead, those of `lpnc check`.
    #[test]
    fn refuses_files_with_syntax_errors() {
        for source in ["model m {\n  conv(k=3 k=5)\n}\n", "model m {\n  relu\n", "data sines(n=1e400)\n", "model m {\n  relu \u{0430}\n}\n"]
        {
            let problems = format_source(source).expect_err(source);
            let (_, syntax) = crate::language::syntax::parse(source);
            assert_eq!(problems, syntax, "{source:?}");
            assert!(!problems.is_empty());
        }
    }
}
