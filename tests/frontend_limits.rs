//! The front end on inputs at and past its limits: megabytes of nested
//! brackets, ten megabytes of layers, one very long line, deep `repeat`
//! nesting, huge numbers. None may panic, overflow the stack or hang, and each
//! gets its diagnostics. (Speed is measured, not asserted, by
//! `benches/frontend_scaling.sh`.) Also replays every input the fuzzers found
//! a bug with, kept in `tests/fuzz_regressions/`.

use std::path::Path;

/// Everything `lpnc check` and `lpnc inspect` do with a source; returns the
/// problems' codes and whether a program came out.
fn front_end(source: &str) -> (Vec<&'static str>, bool) {
    let (_, checked) = lpn::check_source(source, Path::new("tests/ui"));
    let human = lpn::language::render::render_human(&checked.problems, source, "t.lpn", false);
    assert_eq!(human.is_empty(), checked.problems.is_empty());
    for json in lpn::language::render::to_json_all(&checked.problems, source, "t.lpn") {
        serde_json::to_string(&json).unwrap();
    }
    if let Some(program) = &checked.program {
        lpn::language::inspect::table(&program.model);
    }
    assert!(checked.program.is_some() || checked.has_errors(), "no program and no error");
    let codes = checked.problems.iter().map(|p| p.to_diagnostic().code).collect();
    (codes, checked.program.is_some())
}

/// Runs on a thread with a small stack (512 KiB, a quarter of a test thread's),
/// so a recursion that the nesting limit does not bound shows up here first.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(512 * 1024).spawn(f).unwrap().join().unwrap()
}

fn model(body: &str) -> String {
    format!("model m {{\n  input [1, 64]\n{body}\n}}\ndata sines()\n")
}

#[test]
fn a_megabyte_of_open_brackets() {
    for open in ["(", "[", "{", "f(", "@"] {
        let source = open.repeat(1 << 20);
        let (codes, _) = on_small_stack(move || front_end(&source));
        assert!(codes.contains(&"E0001"), "{open}: {codes:?}");
        // Inside a model's layer too.
        let source = model(&format!("  conv(k={})", open.repeat(1 << 20)));
        let (codes, _) = on_small_stack(move || front_end(&source));
        assert!(codes.contains(&"E0001"), "{open} in a layer: {codes:?}");
    }
}

#[test]
fn a_megabyte_of_balanced_nesting() {
    let n = 1 << 18;
    for (open, close) in [("[", "]"), ("f(", ")"), ("{", "}")] {
        let source = model(&format!("  conv(k={}1{})", open.repeat(n), close.repeat(n)));
        let (codes, program) = on_small_stack(move || front_end(&source));
        assert_eq!(codes, ["E0001"], "{open}");
        assert!(!program);
    }
}

#[test]
fn nesting_is_refused_past_the_limit_and_accepted_up_to_it() {
    let limit = lpn::language::syntax::MAX_NESTING;
    // The model's own block is one level; each repeat adds one.
    let nested = |levels: usize| model(&format!("{}  relu\n{}", "  repeat 1 {\n".repeat(levels), "  }\n".repeat(levels)));
    let at_limit = nested(limit - 1);
    let (codes, program) = on_small_stack(move || front_end(&at_limit));
    assert!(program, "{codes:?}");
    let past = nested(limit);
    let (codes, _) = on_small_stack(move || front_end(&past));
    assert_eq!(codes, ["E0001"]);
    // Here the block and the argument list are two levels.
    let lists = |levels: usize| model(&format!("  conv(k={}3{})", "[".repeat(levels), "]".repeat(levels)));
    let (codes, _) = on_small_stack(move || front_end(&lists(limit - 2)));
    assert!(!codes.contains(&"E0001"), "{codes:?}");
    let (codes, _) = on_small_stack(move || front_end(&lists(limit - 1)));
    assert_eq!(codes, ["E0001"]);
    // A deep nesting is refused wherever it is, with the rest of the file.
    let (_, checked) = lpn::check_source(&format!("{}{}", "[".repeat(limit + 1), "]".repeat(limit + 1)), Path::new("."));
    assert!(checked.problems[0].to_diagnostic().message.contains("nested"));
}

#[test]
fn brackets_left_open_across_lines() {
    // Arguments may wrap, so a `(` or `[` left open takes the next lines as
    // its arguments, nesting their brackets in it: refused past the limit,
    // on a small stack (pest runs without its own stack probe).
    for open in ["[\n", "f(\n", "  relu(\n", "  conv(k=[\n", "f(a,\n", "f( // note\n"] {
        let source = model(&open.repeat(1 << 18));
        let (_, checked) = on_small_stack(move || lpn::check_source(&source, Path::new(".")));
        let message = &checked.problems[0].to_diagnostic().message;
        assert!(message.contains("nested"), "{open:?}: {message}");
        let source = model(&open.repeat(1 << 18));
        let (codes, _) = on_small_stack(move || front_end(&source));
        assert!(codes.contains(&"E0001"), "{open:?}: {codes:?}");
    }
    // Wrapped lists nest up to the limit, as on one line.
    let limit = lpn::language::syntax::MAX_NESTING;
    let lists = |levels: usize| model(&format!("  conv(k={}3{})", "[\n".repeat(levels), "\n]".repeat(levels)));
    let (codes, _) = on_small_stack(move || front_end(&lists(limit - 2)));
    assert!(!codes.contains(&"E0001"), "{codes:?}");
    let (codes, _) = on_small_stack(move || front_end(&lists(limit - 1)));
    assert_eq!(codes, ["E0001"]);
    // A `(` never closed, followed by lines that cannot be its arguments, is
    // one bad line among others, however many there are.
    for bad in ["  relu(\n  conv(k=3)\n", "  relu(\n  batchnorm\n", "  relu(x\n  relu @symmetric\n", "  f(\"a\"\n  relu\n"] {
        let source = model(&bad.repeat(20_000));
        let (_, checked) = on_small_stack(move || lpn::check_source(&source, Path::new(".")));
        let bad_lines = checked.problems.iter().filter(|p| p.to_diagnostic().message.contains("nested")).count();
        assert_eq!(bad_lines, 0, "{bad:?}");
        assert!(checked.problems.len() >= 20_000, "{bad:?}: {}", checked.problems.len());
    }
}

#[test]
fn ten_megabytes_of_layers() {
    let lines = [
        "  conv(out=4, k=3, padding=same)\n",
        "  relu\n",
        "  conv(k=5, padding=same) @lowpass(cutoff=0.3, transition=0.4, mode=penalty, weight=0.1) @symmetric\n",
        "  batchnorm\n",
    ];
    let mut body = String::new();
    let mut i = 0;
    while body.len() < 10_000_000 {
        body.push_str(lines[i % lines.len()]);
        i += 1;
    }
    let source = model(&body);
    let (codes, _) = front_end(&source);
    // Far too big to train, and said so once.
    assert!(codes.len() < 10, "{codes:?}");
}

#[test]
fn ten_megabytes_after_unclosed_braces_on_a_bad_line() {
    // Each `{` left open on a bad line is scanned to the end of the file (the
    // grammar's `brace_group`), inside a string or not: 60 of them before
    // 10 MB of layers took minutes with a rule call per character.
    let layers = "  conv(out=4, k=3)\n".repeat(10_000_000 / 18);
    for bad in [format!("  bad {}", "{".repeat(60)), format!("  bad \"{}\" x", "{".repeat(60)), format!("  bad \"{}", "{".repeat(60))] {
        let (codes, program) = front_end(&model(&format!("{bad}\n{layers}")));
        assert!(!program && codes.contains(&"E0001"), "{codes:?}");
    }
}

#[test]
fn ten_megabytes_of_broken_layers() {
    // One diagnostic per line, every line: rendering stays linear.
    let body = "  conv(k=3, kk=1)\n  relu(\n".repeat(200_000);
    let (codes, _) = front_end(&model(&body));
    assert!(codes.len() >= 200_000);
}

#[test]
fn one_very_long_line() {
    // 150,000 arguments on one line, each a problem pointing into it.
    let args: Vec<String> = (0..150_000).map(|i| format!("k{i}=1")).collect();
    let source = model(&format!("  conv({})", args.join(", ")));
    let (codes, _) = front_end(&source);
    assert!(codes.len() >= 150_000);
    // And one line of 90,000 statements (the most layers a model may have is 100,000).
    let (codes, program) = front_end(&model(&"relu; ".repeat(90_000)));
    assert!(program && codes.is_empty(), "{codes:?}");
}

#[test]
fn huge_numbers() {
    for number in ["99999999999999999999999999", "1e400", "-1e400", "18446744073709551616", "4e-324", &"9".repeat(100_000)] {
        for body in [
            format!("  conv(out={number}, k=3)"),
            format!("  repeat {number} {{ relu }}"),
            format!("  conv(k=3) @lowpass(cutoff={number}, fs={number})"),
            format!("  maxpool({number})"),
            format!("  linear({number})"),
        ] {
            front_end(&model(&body));
        }
        front_end(&format!("model m {{\n  input [{number}, {number}]\n  relu\n}}\ndata sines()\n"));
    }
}

#[test]
fn fuzz_regressions() {
    let mut paths: Vec<_> = std::fs::read_dir("tests/fuzz_regressions").unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|e| e == "lpn"));
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let source = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let (codes, program) = on_small_stack(move || front_end(&source));
        assert!(program || !codes.is_empty(), "{}", path.display());
    }
}

#[test]
fn json_in_one_pass_matches_json_one_by_one() {
    let mut sources: Vec<String> = std::fs::read_dir("tests/ui")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lpn"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    sources.push("model m {\n  input [1, 8]\n  cönv(k=é)\r\n  relu(\n}\n\u{1F600} x".into());
    for source in sources {
        let (_, checked) = lpn::check_source(&source, Path::new("tests/ui"));
        let all = lpn::language::render::to_json_all(&checked.problems, &source, "t.lpn");
        assert_eq!(all.len(), checked.problems.len());
        for (one, p) in all.iter().zip(&checked.problems) {
            let single = lpn::language::render::to_json(p, &source, "t.lpn");
            assert_eq!(serde_json::to_string(one).unwrap(), serde_json::to_string(&single).unwrap());
        }
    }
}

#[test]
fn a_label_on_a_very_long_line_shows_a_window_of_it() {
    let source = model(&format!("  conv({}, kk=1)", vec!["k=3"; 20_000].join(", ")));
    let (_, checked) = lpn::check_source(&source, Path::new("."));
    let human = lpn::language::render::render_human(&checked.problems, &source, "t.lpn", false);
    // Every problem is reported, each with a window of the line around its
    // labels, not the whole 100 kB line (which made the output quadratic).
    assert!(human.contains("kk=1"), "{}", &human[..human.len().min(2000)]);
    let widest = human.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 1500, "a line of {widest} characters in the report");
    assert!(human.len() < 2000 * checked.problems.len(), "{} bytes for {} problems", human.len(), checked.problems.len());
}
