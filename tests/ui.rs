//! UI tests: every `tests/ui/*.lpn` is checked and its rendered diagnostics are
//! compared with a snapshot in `tests/snapshots/` (review changes with
//! `cargo insta review`). Files named `ok_*.lpn` and the shipped examples must
//! check without any diagnostic.

use std::path::Path;

/// The machine the snapshots are taken on: this one's files, and 16 GiB
/// available, so E0046's message is the same everywhere.
const MACHINE: lpn::RealEnvironment = lpn::RealEnvironment { available_memory: Some(16 << 30) };

/// `lpnc train --set` overrides a UI file asks for, one per line
/// `// --set KEY=VALUE` at its top, placed after the file's text.
fn overrides_of(source: &str) -> Vec<lpn::language::overrides::Placed> {
    let written: Vec<String> = source.lines().map_while(|l| l.strip_prefix("// --set ")).map(|s| s.trim().to_string()).collect();
    lpn::language::overrides::place(&written, source.len())
}

/// The file checked with its overrides, as `lpnc train` checks it.
fn check(source: &str, base: &Path) -> lpn::Checked {
    lpn::language::check::check_source_with_overrides(source, &overrides_of(source), base, &MACHINE).1
}

fn render(path: &Path) -> (String, String, bool) {
    // Relative to the crate, so messages that show paths do not depend on
    // where the checkout lives.
    let path = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
    let source = std::fs::read_to_string(path).unwrap();
    let base = path.parent().unwrap();
    let mut checked = check(&source, base);
    let has_errors = checked.has_errors();
    let name = format!("{}/{}", base.file_name().unwrap().to_string_lossy(), path.file_name().unwrap().to_string_lossy());
    // Diagnostics about an override are shown with it as their source, as `lpnc train` does.
    let placed = overrides_of(&source);
    let (in_overrides, in_file): (Vec<_>, Vec<_>) =
        checked.problems.drain(..).partition(|p| lpn::language::overrides::containing(&placed, p.span()).is_some());
    let mut human = lpn::language::render::render_human(&in_file, &source, &name, false);
    for p in &placed {
        let own: Vec<_> =
            in_overrides.iter().filter(|q| lpn::language::overrides::containing(&placed, q.span()) == Some(p)).cloned().collect();
        human.push_str(&lpn::language::render::render_human_at(&own, &p.text, p.offset, &format!("--set {}", p.text), false));
    }
    checked.problems = in_file;
    let json: Vec<String> =
        checked.problems.iter().map(|p| serde_json::to_string(&lpn::language::render::to_json(p, &source, &name)).unwrap()).collect();
    (human, json.join("\n"), has_errors)
}

#[test]
fn ui_diagnostics_match_snapshots() {
    insta::glob!("ui/*.lpn", |path| {
        let (human, _, _) = render(path);
        let is_ok = path.file_name().unwrap().to_string_lossy().starts_with("ok_");
        if is_ok {
            assert!(human.is_empty(), "{} should check clean:\n{human}", path.display());
        } else {
            assert!(!human.is_empty(), "{} should produce diagnostics", path.display());
        }
        insta::assert_snapshot!(human);
    });
}

#[test]
fn every_diagnostic_has_a_code_and_a_located_label() {
    insta::glob!("ui/*.lpn", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let (_, checked) = lpn::check_source(&source, path.parent().unwrap());
        for problem in &checked.problems {
            let d = problem.to_diagnostic();
            assert!(lpn::language::diagnostic::CODES.iter().any(|(c, _)| *c == d.code), "{}: unlisted code {}", path.display(), d.code);
            assert!(!d.labels.is_empty(), "{}: {} has no label", path.display(), d.code);
            for label in &d.labels {
                assert!(label.span.end <= source.len(), "{}: {} label past the end", path.display(), d.code);
            }
            assert!(!d.message.contains("Rule::"), "{}: raw rule name in {:?}", path.display(), d.message);
        }
    });
}

#[test]
fn every_code_is_exercised_by_the_ui_corpus() {
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("tests/ui").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lpn") {
            let source = std::fs::read_to_string(&path).unwrap();
            let checked = check(&source, path.parent().unwrap());
            seen.extend(checked.problems.iter().map(|p| p.to_diagnostic().code));
        }
    }
    let missing: Vec<&str> = lpn::language::diagnostic::CODES.iter().map(|(c, _)| *c).filter(|c| !seen.contains(c)).collect();
    assert!(missing.is_empty(), "codes with no UI test: {missing:?}");
}

/// Diagnostics a shipped example keeps on purpose: (file, code, why).
const ALLOWED_IN_EXAMPLES: &[(&str, &str, &str)] = &[(
    "denoiser.lpn",
    "W0061",
    "the design card verbatim: its `@lowpass(cutoff=0.2)` on 15 taps constrains only ν ≥ 0.42, which the warning says",
)];

#[test]
fn shipped_examples_check_clean() {
    let mut count = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "lpn") {
            let source = std::fs::read_to_string(&path).unwrap();
            let (_, checked) = lpn::check_source(&source, path.parent().unwrap());
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            let left: Vec<_> = checked
                .problems
                .into_iter()
                .filter(|p| !ALLOWED_IN_EXAMPLES.iter().any(|(f, code, _)| *f == file && *code == p.to_diagnostic().code))
                .collect();
            let human = lpn::language::render::render_human(&left, &source, &file, false);
            assert!(human.is_empty(), "{} should check clean:\n{human}", path.display());
            let first = std::fs::read_to_string(&path).unwrap();
            assert!(first.starts_with("//"), "{} should start with a comment saying what it shows", path.display());
            count += 1;
        }
    }
    assert!(count >= 4, "expected at least four examples, found {count}");
}

#[test]
fn json_labels_point_at_the_right_text() {
    let source = "model m {\n  input [1, 64]\n  cnv(k=3)\n}\ndata sines()\n";
    let (_, checked) = lpn::check_source(source, Path::new("."));
    let json = lpn::language::render::to_json(&checked.problems[0], source, "m.lpn");
    assert_eq!(json.code, "E0010");
    let label = &json.labels[0];
    assert_eq!((label.line, label.column), (3, 3));
    assert_eq!(&source[label.offset..label.offset + label.length], "cnv");
    let value = serde_json::to_value(&json).unwrap();
    for key in ["code", "severity", "message", "help", "labels"] {
        assert!(value.get(key).is_some(), "missing {key}");
    }
    assert_eq!(value["severity"], "error");
}

#[test]
fn reference_doc_is_generated_from_the_tables() {
    let committed = std::fs::read_to_string("docs/reference.md").unwrap();
    assert!(
        committed == lpn::language::schema::reference_markdown(),
        "docs/reference.md is stale: run `cargo run -- explain reference > docs/reference.md`"
    );
}

/// A UTF-8 byte-order mark opens the file: it is skipped by both parsers;
/// JSON offsets are bytes of the file as read (the mark included), lines and
/// columns as an editor shows them; the human report does not show the mark.
#[test]
fn a_byte_order_mark_is_skipped_and_labels_still_point_right() {
    let clean = "model m {\n  input [1, 64]\n  conv(out=1, k=3, padding=same)\n}\ndata sines(n=16)\n";
    // Both parsers: the fast path takes the clean file, pest the one with a
    // syntax error.
    for body in [clean.to_string(), clean.replace("padding=same)", "padding=same")] {
        let with_bom = format!("\u{FEFF}{body}");
        let (_, plain) = lpn::check_source(&body, Path::new("."));
        let (_, marked) = lpn::check_source(&with_bom, Path::new("."));
        let shifted: Vec<_> = plain.problems.iter().map(|p| (p.to_diagnostic().code, p.span().start + 3)).collect();
        let found: Vec<_> = marked.problems.iter().map(|p| (p.to_diagnostic().code, p.span().start)).collect();
        assert_eq!(found, shifted, "the mark changes nothing but the offsets:\n{with_bom}");
    }

    // A label on the first line, just after the mark.
    let source = "\u{FEFF}modle m {\n  input [1, 64]\n}\n";
    let (_, checked) = lpn::check_source(source, Path::new("."));
    let json = lpn::language::render::to_json_all(&checked.problems, source, "m.lpn");
    let first = &json[0].labels[0];
    assert_eq!(&source[first.offset..first.offset + first.length], "modle");
    assert_eq!((first.offset, first.line, first.column), (3, 1, 1));
    let single = lpn::language::render::to_json(&checked.problems[0], source, "m.lpn");
    assert_eq!((single.labels[0].offset, single.labels[0].line, single.labels[0].column), (3, 1, 1));
    // A label further down.
    let later = "\u{FEFF}model m {\n  input [1, 64]\n  cnv(k=3)\n}\ndata sines()\n";
    let (_, later_checked) = lpn::check_source(later, Path::new("."));
    let label = &lpn::language::render::to_json_all(&later_checked.problems, later, "m.lpn")[0].labels[0];
    assert_eq!(&later[label.offset..label.offset + label.length], "cnv");
    assert_eq!((label.line, label.column), (3, 3));

    let human = lpn::language::render::render_human(&checked.problems, source, "m.lpn", false);
    assert!(human.contains("[m.lpn:1:1]"), "{human}");
    assert!(!human.contains('\u{FEFF}'), "the mark is not shown:\n{human}");
    assert!(human.contains(" 1 │ modle m {"), "{human}");
}
