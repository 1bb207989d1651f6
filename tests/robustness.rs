//! Arbitrary input never panics the parser or the checker: random text,
//! random bytes, and the shipped examples mutated at random.

use std::path::Path;

use proptest::prelude::*;

fn examples() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("examples")
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "lpn").then(|| std::fs::read_to_string(path).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn check(source: &str) {
    let (_, checked) = lpn::check_source(source, Path::new("examples"));
    // Rendering walks every span, so it must not panic either.
    let _ = lpn::language::render::render_human(&checked.problems, source, "fuzz.lpn", false);
    for p in &checked.problems {
        let _ = lpn::language::render::to_json(p, source, "fuzz.lpn");
    }
    // `lpnc fmt` (and the language server's formatting) on the same text:
    // a file that parses is laid out without a panic, and the layout parses.
    if let Ok(formatted) = lpn::language::format::format_source(source) {
        assert!(lpn::language::format::format_source(&formatted).is_ok(), "{source:?} formats to text that does not parse:\n{formatted}");
    }
}

/// Pieces of the language, so random text often gets deep into the checker.
const TOKENS: &[&str] = &[
    "model",
    "m",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    "=",
    "@",
    "\n",
    " ",
    "input",
    "conv",
    "linear",
    "relu",
    "repeat",
    "residual",
    "flatten",
    "maxpool",
    "global_avgpool",
    "lowpass",
    "highpass",
    "bandpass",
    "symmetric",
    "antisymmetric",
    "dc_gain",
    "nonneg",
    "orthogonal",
    "freeze",
    "lr",
    "init",
    "mode",
    "penalty",
    "project",
    "reparam",
    "lagrangian",
    "k",
    "out",
    "cutoff",
    "low",
    "high",
    "fs",
    "tol",
    "weight",
    "stride",
    "padding",
    "same",
    "dilation",
    "groups",
    "data",
    "train",
    "sines",
    "waveforms",
    "ucr",
    "signal",
    "\"x.csv\"",
    "epochs",
    "batch",
    "optimizer",
    "adam",
    "loss",
    "mse",
    "0",
    "1",
    "3",
    "15",
    "-1",
    "0.2",
    "1.5",
    "1e-3",
    "1e400",
    "//c\n",
    ";",
    "true",
    "\"",
    "é",
    "\t",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_token_soup(indices in proptest::collection::vec(0..TOKENS.len(), 0..80)) {
        let source: String = indices.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join("");
        check(&source);
    }

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_examples(which in 0usize..16, edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, 0..TOKENS.len()), 1..6)) {
        let all = examples();
        let mut source = all[which % all.len()].clone();
        for (at, kind, token) in edits {
            let mut pos = at.index(source.len() + 1);
            while !source.is_char_boundary(pos) { pos -= 1; }
            match kind {
                0 => source.insert_str(pos, TOKENS[token]),
                1 => { let end = (pos + 1..=source.len()).find(|&e| source.is_char_boundary(e)).unwrap_or(pos); source.replace_range(pos..end, ""); }
                2 => { let end = (pos..=source.len()).filter(|&e| source.is_char_boundary(e)).take(8).last().unwrap_or(pos); source.replace_range(pos..end, TOKENS[token]); }
                _ => source.truncate(pos),
            }
        }
        check(&source);
    }
}

#[test]
fn pathological_inputs() {
    for source in [
        "",
        "\n\n\n",
        "model",
        "model m",
        "model m {",
        "model m {\n input [1, 8]\n repeat 1000000000 { relu }\n}\ndata sines()",
        "model m {\n input [1, 8]\n repeat 10000 { repeat 10000 { relu } }\n}\ndata sines()",
        "model m {\n input [1, 99999999999999999999]\n}",
        "model m {\n input [1, 8]\n conv(k=99999999999999999999)\n}",
        "model m {\n input [1, 8]\n conv(k=1e300)\n}",
        &"(".repeat(10_000),
        &"{".repeat(10_000),
        &format!("model m {{\n input [1, 8]\n{}\n}}", "relu\n".repeat(5000)),
        "model m {\n input [1, 64]\n conv(k=15) @lowpass(cutoff=1e-300)\n}\ndata sines()",
        "model m {\n input [1, 64]\n conv(k=15) @bandstop(low=0.5, high=0.50000001)\n}\ndata sines()",
    ] {
        check(source);
    }
}
