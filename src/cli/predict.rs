//! `lpnc predict`, and the program that `predict`, `eval` and `response` run
//! trained weights with: the file given, checked against the model the
//! weights were trained for, or the .lpn source embedded in the weights.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lpn::language::ir::{Loss, Model, Program};
use lpn::train::predict::Predicting;
use lpn::train::provenance::{Provenance, model_digest};

use super::{HAS_ERRORS, Loaded, OK, USAGE_OR_IO, checked_loaded, checked_program};

/// The program to run `weights` with: `file` when given (refused when the
/// weights were trained for another model), else the source in the weights.
/// Data paths of an embedded source are looked up next to the weights first,
/// then in the folder the source was trained from.
pub fn program_for(file: Option<&Path>, weights: &Path) -> Result<Program, ExitCode> {
    let provenance = match Provenance::read(weights) {
        Ok(p) => p,
        // An unreadable file is named by the load that follows.
        Err(_) if file.is_some() => None,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(USAGE_OR_IO));
        }
    };
    let Some(file) = file else { return embedded_program(weights, provenance) };
    let program = checked_program(file)?;
    match provenance {
        None => eprintln!(
            "note: {} carries no lpn metadata (it was written before lpn recorded its model): its tensors are checked \
             against {} by name and shape only",
            weights.display(),
            file.display()
        ),
        Some(p) => {
            if let Some(why) = p.mismatch(&program) {
                eprintln!("error: {} does not fit {}: {why}", weights.display(), file.display());
                return Err(ExitCode::from(HAS_ERRORS));
            }
        }
    }
    Ok(program)
}

/// What `predict` and `export` run: a checked program, or, for weights
/// whose embedded source cannot be checked whole here because its data files
/// are elsewhere, the model section alone (those commands need no data).
pub enum Runnable {
    Program(Box<Program>),
    ModelOnly { model: Model, loss: Loss },
}

impl Runnable {
    pub fn model(&self) -> &Model {
        match self {
            Runnable::Program(program) => &program.model,
            Runnable::ModelOnly { model, .. } => model,
        }
    }

    pub fn predicting(&self) -> Predicting<'_> {
        match self {
            Runnable::Program(program) => Predicting::from(&**program),
            Runnable::ModelOnly { model, loss } => Predicting { model, loss: *loss, data: None },
        }
    }
}

/// [`program_for`], except that weights carrying their source and loss run
/// without their data files: when the embedded source checks nowhere, its
/// model section is checked alone and must be the weights' model (the same
/// digest). Trained weights can so be copied to a machine without the data.
pub fn runnable_for(file: Option<&Path>, weights: &Path) -> Result<Runnable, ExitCode> {
    if file.is_some() {
        return program_for(file, weights).map(|p| Runnable::Program(Box::new(p)));
    }
    let provenance = match Provenance::read(weights) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(USAGE_OR_IO));
        }
    };
    if let Some(p) = &provenance
        && let Some(source) = &p.source
        && let Some(program) = embedded_checked(weights, &source.text, &source.dir)
    {
        return Ok(Runnable::Program(Box::new(program)));
    }
    if let Some(p) = &provenance
        && let (Some(source), Some(loss)) = (&p.source, p.loss)
    {
        let base = folder_of(weights);
        if let Ok(model) = lpn::language::check::check_model_only_with(&source.text, &base, &lpn::RealEnvironment::default())
            && model_digest(&model) == p.model_digest
        {
            eprintln!("note: the data files of {}'s embedded source are not here: running its model section alone", weights.display());
            return Ok(Runnable::ModelOnly { model, loss });
        }
    }
    embedded_program(weights, provenance).map(|p| Runnable::Program(Box::new(p)))
}

/// The folder of a weights file (`.` for a bare file name).
fn folder_of(weights: &Path) -> PathBuf {
    weights.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// An embedded source's program, checked with its data beside the weights
/// first, then in the folder it was trained from; `None` where neither has it.
fn embedded_checked(weights: &Path, text: &str, trained_in: &Path) -> Option<Program> {
    [folder_of(weights), trained_in.to_path_buf()].iter().find_map(|base| lpn::check_source(text, base).1.program)
}

/// The program embedded in the weights, checked with its data paths
/// relative to the weights' folder, or else to the folder it was trained from.
fn embedded_program(weights: &Path, provenance: Option<Provenance>) -> Result<Program, ExitCode> {
    let Some(source) = provenance.and_then(|p| p.source) else {
        eprintln!(
            "error: {} carries no .lpn source (it was written before lpn embedded it, or by a program that did not give it): \
             name the .lpn file too, as in `lpnc predict FILE --weights {0} …`",
            weights.display()
        );
        return Err(ExitCode::from(USAGE_OR_IO));
    };
    if let Some(program) = embedded_checked(weights, &source.text, &source.dir) {
        return Ok(program);
    }
    let display = format!("{} (its embedded .lpn source)", weights.display());
    // Neither folder has the data: the diagnostics as from the original one.
    checked_loaded(&Loaded { source: source.text, display, base_dir: source.dir }, "nothing was run")
}

pub struct PredictArgs {
    pub file: Option<PathBuf>,
    pub weights: PathBuf,
    pub input: PathBuf,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

pub fn predict(args: PredictArgs) -> ExitCode {
    let runnable = match runnable_for(args.file.as_deref(), &args.weights) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let predicting = runnable.predicting();
    let mut progress = Progress::new(args.quiet);
    let mut report = |done, total| progress.show(done, total);
    let result = match &args.out {
        Some(out) => write_atomically(out, |sink| lpn::train::predict::predict(&predicting, &args.weights, &args.input, sink, &mut report)),
        None => {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            lpn::train::predict::predict(&predicting, &args.weights, &args.input, &mut stdout, &mut report)
                .and_then(|n| stdout.flush().map(|()| n).map_err(lpn::train::predict::PredictError::Write))
        }
    };
    progress.clear();
    match result {
        Ok(n) => {
            if !args.quiet {
                let to = args.out.as_ref().map_or_else(|| "standard output".to_string(), |p| p.display().to_string());
                eprintln!("predicted {n} example(s) of {} into {to}", args.input.display());
            }
            ExitCode::from(OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}

/// Writes `out` through a temporary file beside it, renamed over it only
/// when `write` succeeded: a reader never sees half of the predictions, and
/// a failed run leaves an earlier file as it was.
fn write_atomically(
    out: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<usize, lpn::train::predict::PredictError>,
) -> Result<usize, lpn::train::predict::PredictError> {
    use lpn::train::predict::PredictError;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "predictions".into());
    let temp = out.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&temp).map_err(PredictError::Write)?;
        let mut sink = std::io::BufWriter::new(file);
        let n = write(&mut sink)?;
        let file = sink.into_inner().map_err(|e| PredictError::Write(e.into_error()))?;
        file.sync_all().map_err(PredictError::Write)?;
        std::fs::rename(&temp, out).map_err(PredictError::Write)?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Progress on stderr, at most every half second: a line redrawn on a
/// terminal, a line now and then elsewhere (every 10 s).
struct Progress {
    quiet: bool,
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress { quiet, terminal: std::io::stderr().is_terminal(), last: None, drawn: false }
    }

    fn show(&mut self, done: usize, total: Option<usize>) {
        let every = if self.terminal { Duration::from_millis(500) } else { Duration::from_secs(10) };
        let now = Instant::now();
        let last = *self.last.get_or_insert(now);
        if self.quiet || now - last < every {
            return;
        }
        self.last = Some(now);
        let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
        if self.terminal {
            eprint!("\rpredicting: {done}{of} examples");
            self.drawn = true;
        } else {
            eprintln!("predicting: {done}{of} examples");
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[K");
        }
    }
}
