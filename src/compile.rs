//! The front end as a library call: [`compile`] a source into a checked
//! [`Program`], or get its [`Diagnostics`], which render as `lpnc check`
//! shows them. No Candle here (the crate builds this without the `train`
//! feature).

use std::path::{Path, PathBuf};

use crate::language::check::check_source;
use crate::language::diagnostic::{Problem, Severity};
use crate::language::ir::Program;
use crate::language::render::{JsonDiagnostic as Diagnostic, render_human, to_json_all};

/// How [`compile`] reads a source.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    base_dir: PathBuf,
    file_name: String,
}

impl Default for CompileOptions {
    /// Data files relative to the working directory; diagnostics name the
    /// source `<source>`.
    fn default() -> Self {
        CompileOptions { base_dir: PathBuf::from("."), file_name: "<source>".into() }
    }
}

impl CompileOptions {
    /// Options for a source read from `path`: data files and `@init` files
    /// are found relative to its folder, and diagnostics name it.
    pub fn for_file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            Some(_) | None => PathBuf::from("."),
        };
        CompileOptions { base_dir, file_name: path.display().to_string() }
    }

    /// The folder that relative paths in the source (data files, `@init`
    /// files) are resolved against.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// The file name diagnostics show.
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }
}

/// Checks `source` (the text of a `.lpn` file) and returns the validated
/// program, or every problem found when there is at least one error.
/// Warnings alone do not fail; [`check`] returns them.
///
/// Data files the source names are looked at (their widths, labels), as by
/// `lpnc check`, but not loaded.
pub fn compile(source: &str, options: &CompileOptions) -> Result<Program, Diagnostics> {
    let (_, checked) = check_source(source, &options.base_dir);
    match checked.program {
        Some(program) if !checked.has_errors() => Ok(program),
        Some(_) | None => Err(Diagnostics::new(checked.problems, source, &options.file_name)),
    }
}

/// Every problem in `source`, errors and warnings, empty when it is clean:
/// what `lpnc check` reports.
pub fn check(source: &str, options: &CompileOptions) -> Diagnostics {
    let (_, checked) = check_source(source, &options.base_dir);
    Diagnostics::new(checked.problems, source, &options.file_name)
}

/// The problems of one source, in source order. Iterate over them as
/// [`Diagnostic`](crate::Diagnostic)s (code, severity, message, help, and
/// the places they point at, with 1-based line and column), or render them: [`Diagnostics::render`] gives the text
/// `lpnc check` prints, and `Display` the same without colour.
#[derive(Debug)]
pub struct Diagnostics {
    problems: Vec<Problem>,
    source: String,
    file_name: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    fn new(problems: Vec<Problem>, source: &str, file_name: &str) -> Self {
        let items = to_json_all(&problems, source, file_name);
        Diagnostics { problems, source: source.to_string(), file_name: file_name.to_string(), items }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many are errors (the rest are warnings).
    pub fn errors(&self) -> usize {
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// The report `lpnc check` prints (miette's graphical form, with the
    /// source lines and labels), with or without terminal colours.
    pub fn render(&self, color: bool) -> String {
        render_human(&self.problems, &self.source, &self.file_name, color)
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl std::error::Error for Diagnostics {}

impl Program {
    /// The model's name (`model denoiser { … }`).
    pub fn name(&self) -> &str {
        &self.model.name
    }

    /// The shape of one example the model takes, without the batch axis
    /// (`input [1, 1024]` is `[1, 1024]`).
    pub fn input_shape(&self) -> &[usize] {
        &self.model.input.0
    }

    /// The shape of the model's output for one example, without the batch axis.
    pub fn output_shape(&self) -> &[usize] {
        &self.model.output.0
    }
}
