//! What the fuzzers run on each input: everything `lpnc check` and `lpnc
//! inspect` do with a source, in-process (parse, check, the inspect table, the
//! miette report with and without colour, the JSON lines), plus the
//! invariants that hold for every input. A panic anywhere is a bug; so is a
//! broken invariant, returned as `Err`.

use std::path::Path;

/// Runs the front end on `source`, with relative data paths taken from
/// `tests/ui` of the lpn checkout (so seeds that name data files find them).
pub fn run_frontend(source: &str) -> Result<Outcome, String> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    run_frontend_in(source, &base)
}

/// What a run looked like, for telling new behaviour from old.
pub struct Outcome {
    /// Codes of the diagnostics in order, repeats folded.
    pub codes: Vec<&'static str>,
    pub program: bool,
    pub sections: usize,
}

pub fn run_frontend_in(source: &str, base_dir: &Path) -> Result<Outcome, String> {
    let (file, checked) = lpn::check_source(source, base_dir);

    // `lpnc check`: both output formats.
    // With and without colour, on alternate inputs (the colour only changes
    // the theme).
    let human = lpn::language::render::render_human(&checked.problems, source, "fuzz.lpn", source.len() % 2 == 0);
    for json in lpn::language::render::to_json_all(&checked.problems, source, "fuzz.lpn") {
        serde_json::to_string(&json).map_err(|e| format!("JSON diagnostic does not serialise: {e}"))?;
    }
    // `lpnc inspect`.
    if let Some(program) = &checked.program {
        let _ = lpn::language::inspect::table(&program.model);
    }
    // The model-only entry point for tools.
    if let Ok(model) = lpn::language::check::check_model_only(source) {
        let _ = lpn::language::inspect::table(&model);
    }

    // Invariants.
    if checked.program.is_none() && !checked.has_errors() {
        return Err("no program, but no error either".into());
    }
    if !checked.problems.is_empty() && human.is_empty() {
        return Err("problems that render as nothing".into());
    }
    for problem in &checked.problems {
        let d = problem.to_diagnostic();
        if !lpn::language::diagnostic::CODES.iter().any(|(c, _)| *c == d.code) {
            return Err(format!("unlisted code {}", d.code));
        }
        if d.labels.is_empty() {
            return Err(format!("{} has no label", d.code));
        }
        for label in &d.labels {
            if label.span.start > label.span.end || label.span.end > source.len() {
                return Err(format!("{}: label {:?} outside the source ({} bytes)", d.code, label.span, source.len()));
            }
        }
        if d.message.contains("Rule::") {
            return Err(format!("{}: raw rule name in {:?}", d.code, d.message));
        }
    }
    let mut codes: Vec<&'static str> = checked.problems.iter().map(|p| p.to_diagnostic().code).collect();
    codes.dedup();
    Ok(Outcome { codes, program: checked.program.is_some(), sections: file.sections.len() })
}
