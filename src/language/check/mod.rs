//! The checker: syntax tree → validated program (`crate::language::ir`), collecting every
//! problem of every phase rather than stopping at the first.
//!
//! Sections are checked in order model → data → train, each with what the
//! earlier ones established (the model's input shape decides whether the data
//! fits, the data's task which loss and output the model needs).

// The passes are the checker's own; what others use is re-exported below
// or reached through `environment`.
pub mod annotations;
pub(crate) mod data;
pub mod environment;
pub mod feasible_set;
pub(crate) mod init_file;
pub(crate) mod media;
pub(crate) mod model;
pub(crate) mod numpy;
pub(crate) mod pairs;
pub(crate) mod params;
pub(crate) mod phases;
pub(crate) mod schedule;
pub(crate) mod ts;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use environment::{CachedEnvironment, EntryKind, Environment, FakeEnvironment, RealEnvironment};

use crate::constraint::quadratic::Source;
use crate::language::ast::{self, Span};
use crate::language::diagnostic::Problem;
use crate::language::ir::Program;
use crate::language::schema::SECTION_NAMES;

/// What checking found: the program when there are no errors, and every problem.
pub struct Checked {
    pub program: Option<Program>,
    pub problems: Vec<Problem>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }
}

/// State shared by the checking passes.
pub struct Ctx<'env> {
    pub problems: Vec<Problem>,
    /// The machine: the files the program names, the memory training may use.
    pub env: &'env dyn Environment,
    /// Folder that relative paths in the file are taken from.
    pub base_dir: PathBuf,
    /// Bytes the data sets take once loaded for training, and where the
    /// training data is declared (set by `data::check_data`).
    pub data_bytes: Option<(u64, Span)>,
    /// Whether the training inputs stream from their file (`stream = …`),
    /// so `data_bytes` counts no more of them than a buffer.
    pub data_streams: bool,
    /// λ_min per quadratic operator and kernel shape: large models repeat the same few.
    lambda_cache: HashMap<OperatorKey, f64>,
    /// Q's eigenvalues per quadratic operator and kernel shape, for the
    /// admissible dimension of every hard-mode instance (the same few again).
    spectrum_cache: HashMap<OperatorKey, std::rc::Rc<[f64]>>,
}

/// A quadratic operator (its source's key) on a kernel shape.
type OperatorKey = (Vec<u64>, Vec<usize>);

impl<'env> Ctx<'env> {
    fn new(problems: Vec<Problem>, base_dir: &Path, env: &'env dyn Environment) -> Ctx<'env> {
        Ctx {
            problems,
            env,
            base_dir: base_dir.to_path_buf(),
            data_bytes: None,
            data_streams: false,
            lambda_cache: HashMap::new(),
            spectrum_cache: HashMap::new(),
        }
    }

    pub fn lambda_min(&mut self, source: &Source, kernel: &[usize]) -> f64 {
        *self.lambda_cache.entry((source.key(), kernel.to_vec())).or_insert_with(|| source.lambda_min(kernel))
    }

    /// Q's eigenvalues in ascending order, through the cache.
    pub fn spectrum(&mut self, source: &Source, kernel: &[usize]) -> std::rc::Rc<[f64]> {
        self.spectrum_cache.entry((source.key(), kernel.to_vec())).or_insert_with(|| source.spectrum(kernel).into()).clone()
    }

    /// The shortest 1-D kernel meeting `tol`, through the λ_min cache.
    pub fn min_taps(&mut self, source: &Source, tol: f64, from: usize, limit: usize) -> Option<usize> {
        crate::constraint::quadratic::min_taps_with(|k| self.lambda_min(source, &[k]), tol, from, limit)
    }

    /// A path from the file, relative to its folder; reports a missing file
    /// (E0050) and one that is not a regular file (E0051: a folder, a named
    /// pipe, a device, which reading would fail on or wait for forever).
    pub fn resolve_path(&mut self, written: &str, span: Span) -> Option<PathBuf> {
        let path = Path::new(written);
        let resolved = if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) };
        let what = match self.env.kind(&resolved) {
            Some(EntryKind::File) => return Some(resolved),
            Some(EntryKind::Folder) => Some("a folder"),
            Some(EntryKind::Other(what)) => Some(what),
            None => None,
        };
        match what {
            Some(what) => {
                let reason = format!("is not a regular file: it is {what}");
                self.problems.push(Problem::BadDataFile { span, path: written.into(), line: None, column: None, reason });
                None
            }
            None => {
                self.problems.push(Problem::FileNotFound { span, path: written.into(), resolved: resolved.display().to_string() });
                None
            }
        }
    }
}

/// Parses and checks a source on this machine. `base_dir` is where relative
/// data paths start.
pub fn check_source(source: &str, base_dir: &Path) -> (ast::File, Checked) {
    check_source_with(source, base_dir, &RealEnvironment::default())
}

/// [`check_source`] in a given environment: its files and its memory (tests
/// pass a [`environment::FakeEnvironment`], or pin the memory of this one).
pub fn check_source_with(source: &str, base_dir: &Path, env: &dyn Environment) -> (ast::File, Checked) {
    check_source_with_overrides(source, &[], base_dir, env)
}

/// `check_source_with` after writing `lpnc train --set` overrides into the
/// file's tree (`overrides::apply`); spans of what they hold point after the
/// file's text, at `placed`.
pub fn check_source_with_overrides(
    source: &str,
    placed: &[crate::language::overrides::Placed],
    base_dir: &Path,
    env: &dyn Environment,
) -> (ast::File, Checked) {
    let (mut file, mut syntax_problems) = crate::language::syntax::parse(source);
    syntax_problems.extend(crate::language::overrides::apply(&mut file, placed));
    let mut ctx = Ctx::new(syntax_problems, base_dir, env);
    let program = check_file(&mut ctx, &file, source.len());
    let mut problems = ctx.problems;
    problems.sort_by_key(|p| p.span().start);
    problems.dedup();
    let has_errors = problems.iter().any(Problem::is_error);
    (file, Checked { program: if has_errors { None } else { program }, problems })
}

fn check_file(ctx: &mut Ctx, file: &ast::File, len: usize) -> Option<Program> {
    // Top-level lines that did not parse, or sections with unknown names: the
    // section a user meant may be among them, so "missing section" would pile on.
    let mut lost_sections = ctx.problems.iter().any(|p| matches!(p, Problem::Syntax { .. } | Problem::StrayCharacter { .. }));
    let mut by_name: HashMap<&str, &ast::Section> = HashMap::new();
    for section in &file.sections {
        let keyword = section.keyword.name.as_str();
        if !SECTION_NAMES.contains(&keyword) {
            ctx.problems.push(Problem::UnknownSection { span: section.keyword.span, name: keyword.into(), known: SECTION_NAMES.to_vec() });
            lost_sections = true;
            continue;
        }
        if let Some(first) = by_name.get(keyword) {
            ctx.problems.push(Problem::DuplicateSection { span: section.keyword.span, first: first.keyword.span, name: keyword.into() });
            continue;
        }
        by_name.insert(keyword, section);
    }

    let checked_model = match by_name.get("model") {
        Some(section) => match &section.body {
            ast::SectionBody::Block(block) => Some(model::check_model(ctx, section, block)),
            ast::SectionBody::Inline(_) => {
                ctx.problems.push(Problem::MalformedSection {
                    span: section.span,
                    section: "model".into(),
                    expected: "`model NAME { input [...]  layers… }`".into(),
                });
                None
            }
        },
        None => {
            if !lost_sections {
                ctx.problems.push(Problem::MissingModel { span: Span::new(0, len.min(1)) });
            }
            None
        }
    };
    let (input, model) = match checked_model {
        Some(checked) => (checked.input, checked.model),
        None => (None, None),
    };
    let model_span = by_name.get("model").map(|s| s.name.as_ref().map(|n| n.span).unwrap_or(s.keyword.span)).unwrap_or_default();
    let data = match by_name.get("data") {
        Some(section) => data::check_data(ctx, section, input.as_ref().map(|(shape, span)| (shape, *span))),
        None => {
            if by_name.contains_key("model") && !lost_sections {
                ctx.problems.push(Problem::MissingTrainData { span: model_span, no_section: true });
            }
            None
        }
    };
    if let (Some(model), Some((data, span))) = (&model, &data) {
        media::rates_fit(ctx, model, data, *span);
    }
    let train = data::check_train(ctx, by_name.get("train").copied(), data.as_ref().map(|(d, s)| (d, *s)), model.as_ref(), model_span);
    if let (Some(model), Some(train)) = (&model, &train) {
        memory_check(ctx, model, train.batch, model_span);
    }
    Some(Program { model: model?, data: data?.0, train: train? })
}

/// Refuses a model whose training would not fit in memory. The estimate:
/// f32 weights with their gradient and two optimizer moments, plus every
/// layer's output for a batch, kept for the backward pass and its gradient,
/// plus the data sets as loaded (`data::check_data` counts them).
fn memory_check(ctx: &mut Ctx, model: &crate::language::ir::Model, batch: usize, span: Span) {
    let available = ctx.env.available_memory();
    let parameters = model.parameter_count() as u64;
    let activations: u64 = model.walk().iter().fold(model.input.numel() as u64, |n, l| n.saturating_add(l.output.numel() as u64));
    let training =
        parameters.saturating_mul(4).saturating_add(activations.saturating_mul(batch as u64).saturating_mul(2)).saturating_mul(4);
    let (data, data_span) = match ctx.data_bytes {
        Some((bytes, span)) => (bytes, Some(span)),
        None => (0, None),
    };
    let needed = training.saturating_add(data);
    if needed > available {
        let streamed = ctx.data_streams;
        ctx.problems.push(Problem::ModelTooLarge {
            span,
            data_span,
            parameters: parameters as usize,
            needed,
            data,
            available,
            batch,
            streamed,
        });
    }
}

/// Checks only the model section of a source (no data or training part
/// needed): for tools and tests that want the layers and shapes alone.
pub fn check_model_only(source: &str) -> Result<crate::language::ir::Model, Vec<Problem>> {
    check_model_only_with(source, Path::new("."), &RealEnvironment::default())
}

/// [`check_model_only`] with `@init` files from `base_dir` in `env` (an
/// editor's document, whose other sections may have errors).
pub fn check_model_only_with(source: &str, base_dir: &Path, env: &dyn Environment) -> Result<crate::language::ir::Model, Vec<Problem>> {
    let (file, problems) = crate::language::syntax::parse(source);
    let mut ctx = Ctx::new(problems, base_dir, env);
    let model = file.sections.iter().find(|s| s.keyword.name == "model").and_then(|section| match &section.body {
        ast::SectionBody::Block(block) => model::check_model(&mut ctx, section, block).model,
        ast::SectionBody::Inline(_) => None,
    });
    match model {
        Some(model) if !ctx.problems.iter().any(Problem::is_error) => Ok(model),
        _ => Err(ctx.problems),
    }
}
