//! `lpnc fmt`'s formatter (`lpn::language::format`): idempotent and
//! meaning-preserving over the examples, the benchmark nets, the UI corpus,
//! the fuzz regressions, generated programs (with comments, blank lines,
//! `;`, wrapped arguments and odd spacing) and mutated examples; and every
//! `.lpn` of the repository that parses is formatted.

use std::path::{Path, PathBuf};

use lpn::language::format::format_source;
use proptest::prelude::*;

/// A fixed memory for the checker, so E0046's message cannot differ
/// between the two checks compared.
const MACHINE: lpn::RealEnvironment = lpn::RealEnvironment { available_memory: Some(16 << 30) };

/// What the checker makes of a source, with every span and position left
/// out: the checked program as JSON (its spans are not serialized) and each
/// problem's code, message and help.
/// The checked program as JSON, and each problem's code, message and help.
type Meaning = (Option<String>, Vec<(&'static str, String, Option<String>)>);

fn meaning(source: &str, base: &Path) -> Meaning {
    let (_, checked) = lpn::check_source_with(source, base, &MACHINE);
    let program = checked.program.map(|p| serde_json::to_string(&p).expect("a program serializes"));
    let problems = checked
        .problems
        .iter()
        .map(|p| {
            let d = p.to_diagnostic();
            (d.code, d.message, d.help)
        })
        .collect();
    (program, problems)
}

/// The characters a layout may not touch: all but whitespace, `;` and `,`
/// (statements move to their own lines, trailing commas come and go). A
/// comment lost, moved past code or altered changes this sequence.
fn ink(source: &str) -> String {
    source.chars().filter(|c| !c.is_whitespace() && *c != ';' && *c != ',').collect()
}

/// The properties of the formatter on one source that parses: formatting
/// again changes nothing, the checked meaning is the same, no comment or
/// token is lost or moved. Returns the formatted text, or None if the source
/// does not parse.
fn holds(source: &str, base: &Path, what: &str) -> Option<String> {
    let formatted = format_source(source).ok()?;
    let again = format_source(&formatted).unwrap_or_else(|p| panic!("{what}: the formatted text does not parse: {p:?}\n{formatted}"));
    assert_eq!(again, formatted, "{what}: not idempotent; first pass:\n{formatted}");
    assert_eq!(meaning(&formatted, base), meaning(source, base), "{what}: the meaning changed; formatted:\n{formatted}");
    assert_eq!(ink(&formatted), ink(source), "{what}: text other than layout changed; formatted:\n{formatted}");
    Some(formatted)
}

fn lpn_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "lpn"))
        .collect();
    files.sort();
    files
}

/// Where the repository keeps `.lpn` files, and whether `lpnc fmt` keeps
/// them formatted: the fuzz regressions are kept byte for byte (each
/// reproduces a crash as found).
const FOLDERS: &[(&str, bool)] = &[("examples", true), ("benches/nets", true), ("tests/ui", true), ("tests/fuzz_regressions", false)];

/// Files whose layout is what they test, left as written.
const LAYOUT_UNDER_TEST: &[(&str, &str)] = &[(
    "tests/ui/ok_comments_and_wrapped_arguments.lpn",
    "checks that `;` separates statements, which the canonical layout replaces with line breaks",
)];

#[test]
fn every_lpn_file_of_the_repository_keeps_its_meaning_and_is_formatted() {
    let mut unformatted = Vec::new();
    let mut formatted_count = 0;
    for &(folder, kept_formatted) in FOLDERS {
        for path in lpn_files(folder) {
            let source = std::fs::read_to_string(&path).unwrap();
            let name = path.to_string_lossy().replace('\\', "/");
            let Some(formatted) = holds(&source, path.parent().unwrap(), &name) else { continue };
            formatted_count += 1;
            let exempt = LAYOUT_UNDER_TEST.iter().any(|(file, _)| *file == name);
            if kept_formatted && !exempt && formatted != source {
                unformatted.push(name);
            } else if exempt {
                assert_ne!(formatted, source, "{name} is formatted now: remove it from LAYOUT_UNDER_TEST");
            }
        }
    }
    assert!(formatted_count > 150, "only {formatted_count} files parsed");
    assert!(unformatted.is_empty(), "not formatted (run `cargo run --release -- fmt FILE`): {unformatted:?}");
}

/// The files with syntax errors are refused, with the problems `lpnc check`
/// reports for them.
#[test]
fn files_with_syntax_errors_are_refused_with_their_problems() {
    let mut refused = 0;
    for path in lpn_files("tests/ui") {
        let source = std::fs::read_to_string(&path).unwrap();
        let (_, syntax) = lpn::language::syntax::parse(&source);
        match format_source(&source) {
            Ok(_) => assert!(syntax.is_empty(), "{}", path.display()),
            Err(problems) => {
                assert!(!problems.is_empty() && problems == syntax, "{}", path.display());
                refused += 1;
            }
        }
    }
    assert!(refused >= 5, "only {refused} UI files have syntax errors");
}

/// Choices read one after the other from a tape proptest draws (and
/// shrinks); past its end every choice is the first option.
struct Tape<'a> {
    choices: &'a [u8],
    at: usize,
}

impl Tape<'_> {
    fn pick<'s>(&mut self, options: &[&'s str]) -> &'s str {
        options[self.below(options.len())]
    }
    fn below(&mut self, n: usize) -> usize {
        let choice = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        choice as usize % n
    }
}

const COMMENTS: &[&str] = &["// c", "//", "// a \"quote\" and // slashes", "//é ν ≥ 0.4", "// { ( [ ;"];

/// Room between two statements: line breaks, blank lines, `;`, comments.
fn statement_break(tape: &mut Tape, indent: &str) -> String {
    let comment = tape.pick(COMMENTS);
    match tape.below(8) {
        0 | 1 => "\n".into(),
        2 => "\n\n\n".into(),
        3 => tape.pick(&[";", " ; ", ";\n"]).into(),
        4 => format!("   {comment}\n"),
        5 => format!("\n{indent}{comment}\n"),
        6 => format!("\n\n{indent}{comment}\n\n"),
        _ => format!("; {comment}\n\n"),
    }
}

/// An argument list: items separated by `, `, line breaks or comments,
/// maybe broken after `(` and with a trailing comma.
fn argument_list(tape: &mut Tape, items: &[&str]) -> String {
    let mut text = String::from(tape.pick(&["(", "(", "(\n", "( // open\n"]));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push_str(tape.pick(&[", ", ",", " , ", ",\n", ", // between\n", ",\n\n"]));
        }
        text.push_str(item);
    }
    text.push_str(tape.pick(&["", "", ",", ",\n", "\n", " // last\n"]));
    text.push(')');
    text
}

fn layer(tape: &mut Tape) -> String {
    const HEADS: &[(&str, &[&str])] = &[
        ("conv", &["out=8", "k=15"]),
        ("conv", &["k=3"]),
        ("conv", &["out = 4", "k=9", "padding=same"]),
        ("linear", &["out=3"]),
        ("maxpool", &["k=2"]),
        ("dropout", &["0.1"]),
        ("relu", &[]),
        ("tanh", &[]),
        ("batchnorm", &[]),
    ];
    const ANNOTATIONS: &[(&str, &[&str])] = &[
        ("@lowpass", &["cutoff=0.3"]),
        ("@highpass", &["0.4", "mode=penalty", "weight=0.1"]),
        ("@symmetric", &[]),
        ("@nonneg", &["mode=project"]),
        ("@lr", &["0.5"]),
        ("@init", &["file=\"x // y.safetensors\""]),
        ("@freeze", &[]),
    ];
    let (name, args) = HEADS[tape.below(HEADS.len())];
    let mut text = name.to_string();
    if !args.is_empty() {
        text.push_str(&argument_list(tape, args));
    }
    for _ in 0..tape.below(3) {
        let (name, args) = ANNOTATIONS[tape.below(ANNOTATIONS.len())];
        text.push_str(tape.pick(&[" ", "  ", "\t", "     "]));
        text.push_str(name);
        if !args.is_empty() {
            text.push_str(&argument_list(tape, args));
        }
    }
    text
}

/// The statements of a block at `depth`, `repeat`/`residual` bodies inside.
fn statements(tape: &mut Tape, depth: usize) -> String {
    let indent = "  ".repeat(depth);
    let mut text = String::new();
    for i in 0..1 + tape.below(5) {
        if i > 0 {
            text.push_str(&statement_break(tape, &indent));
        }
        text.push_str(tape.pick(&[&indent, &indent, "", "\t"]));
        match tape.below(if depth < 3 { 6 } else { 4 }) {
            4 => {
                text.push_str(&format!("repeat 2 {{{}{}\n{indent}}}", tape.pick(&["\n", " ", "  // body\n"]), statements(tape, depth + 1)))
            }
            5 => text.push_str(&format!("residual {{\n{}\n{indent}}}", statements(tape, depth + 1))),
            _ => text.push_str(&layer(tape)),
        }
    }
    text
}

/// A whole program from the tape: a model, data and training sections with
/// comments around and between them.
fn program(tape: &mut Tape) -> String {
    let mut text = String::from(tape.pick(&["", "// top\n", "// top\n\n// more\n\n", "\n\n"]));
    text.push_str(tape.pick(&["model m {\n", "model m{ // open\n", "model   m {\n\n"]));
    text.push_str(&format!("  input {}\n", tape.pick(&["[1, 64]", "[1,64]", "[\n 1,\n 64,\n]", "[1, // channels\n 64]"])));
    text.push_str(&statements(tape, 1));
    text.push_str(tape.pick(&["\n}", "\n  // end of the model\n}", ";}"]));
    text.push_str(tape.pick(&["\n", "\n\n", "\n// between\n", "  // after\n\n\n"]));
    text.push_str(tape.pick(&[
        "data sines",
        "data sines(n=32)",
        "data sines( n = 32 , noise=0.3 )",
        "data {\n  train = sines(n=32)   // inline data\n  val_split=0.25\n}",
    ]));
    text.push_str(tape.pick(&["\n", "\n\n", "\n// train it\n"]));
    text.push_str(tape.pick(&[
        "train { epochs = 1; batch = 8 }",
        "train {\n  optimizer = sgd(\n    lr=0.1, // rate\n    momentum=0.9,\n  )\n  epochs=1\n}",
        "train {\n  epochs = 2\n  phase warm { epochs = 1; conv1 @freeze }\n\n  phase rest {\n    epochs = 1 // the rest\n  }\n}",
    ]));
    text.push_str(tape.pick(&["", "\n", "\n\n// the end\n", "   // after train\n"]));
    text
}

/// Pieces of the language inserted at random into the examples (as in
/// tests/robustness.rs): whatever still parses must format correctly.
const TOKENS: &[&str] =
    &["\n", " ", "\n\n", ";", "// c\n", "relu\n", "@nonneg", "(k=3)", ",", "repeat 2 { relu }\n", "\t", "[1, 8]", "}", "{", "//"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn generated_programs_format_idempotently_and_keep_their_meaning(choices in proptest::collection::vec(any::<u8>(), 0..160)) {
        let source = program(&mut Tape { choices: &choices, at: 0 });
        let (_, syntax) = lpn::language::syntax::parse(&source);
        prop_assert!(syntax.is_empty(), "the generator wrote a syntax error: {syntax:?}\n{source}");
        let formatted = holds(&source, Path::new("."), "generated").expect("parses");
        // One statement per line: no `;` left outside comments.
        prop_assert!(formatted.lines().all(|line| !line.split("//").next().unwrap_or("").contains(';')), "{formatted}");
    }

    #[test]
    fn mutated_examples_that_parse_format_correctly(which in 0usize..16, edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..TOKENS.len()), 1..5)) {
        let examples = lpn_files("examples");
        let mut source = std::fs::read_to_string(&examples[which % examples.len()]).unwrap();
        for (at, token) in edits {
            let mut pos = at.index(source.len() + 1);
            while !source.is_char_boundary(pos) {
                pos -= 1;
            }
            source.insert_str(pos, TOKENS[token]);
        }
        holds(&source, Path::new("examples"), "mutated example");
    }
}

/// The example in docs/formatting.md is in the layout it describes.
#[test]
fn the_documented_example_is_formatted() {
    let doc = std::fs::read_to_string("docs/formatting.md").unwrap();
    let example = doc.split("```lpn\n").nth(1).and_then(|rest| rest.split("```").next()).expect("docs/formatting.md has an ```lpn block");
    assert_eq!(format_source(example).expect("the example parses"), example);
    assert!(example.contains("//") && example.contains("@lowpass"), "{example}");
}
