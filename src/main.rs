//! `lpnc`: the command-line front of lpn.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use lpn::diagnostic::{CODES, Problem};

/// Prints to stdout, ignoring a closed pipe (`lpnc explain list | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}
use lpn::{codes, inspect, report, schema};

// Training allocates and frees megabyte-sized tensors every step; glibc's
// malloc hands such blocks back to the kernel and takes them again, a page
// fault per 4 KiB each time. mimalloc keeps them: ~13 % less step time on the
// 2-D reference net (benches/compare_pytorch.sh), at a higher but still small
// peak memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "lpnc", version, about = "Compile, check and train .lpn models: neural-network layers with declared structure")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads for training and evaluation (default: LPN_THREADS, else every CPU this process may use).
    #[arg(long, global = true, value_name = "N", env = "LPN_THREADS")]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Check files and report every problem (exit 0: no errors, 1: errors, 2: usage or I/O).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// `human` (miette reports on stderr) or `json` (one object per line on stdout).
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        message_format: MessageFormat,
    },
    /// Explain a diagnostic code (`E0028`) or describe a layer, annotation, data source, optimizer or loss.
    Explain {
        /// A code, a name such as `conv` or `lowpass`, `list` for every code, or `reference` for the whole language in Markdown.
        what: String,
    },
    /// Check a file and print its layers: names, output shapes, parameter counts and constraints.
    Inspect { file: PathBuf },
    /// Train the model of a file on its data; writes model.safetensors and report.json.
    Train {
        file: PathBuf,
        /// Output folder (default: runs/MODEL_NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the file's epoch count (at least 1, as in the file).
        #[arg(long, value_parser = at_least_one_epoch)]
        epochs: Option<usize>,
        /// Override the file's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
        /// Continue the run whose checkpoint is in this folder (its --out), exactly where it stopped.
        #[arg(long, value_name = "DIR", conflicts_with = "out")]
        resume: Option<PathBuf>,
    },
    /// Plot the magnitude response of every band-constrained layer over its spec's mask (SVG), and ρ per epoch.
    Response {
        file: PathBuf,
        /// A model.safetensors written by `lpnc train` (its report.json, if next to it, adds ρ per epoch).
        #[arg(long)]
        weights: PathBuf,
        #[arg(long, default_value = "response.svg")]
        out: PathBuf,
    },
    /// Loss and accuracy of trained weights on the file's declared test data.
    Eval {
        file: PathBuf,
        /// A model.safetensors written by `lpnc train`.
        #[arg(long)]
        weights: PathBuf,
    },
}

/// `--epochs`: the file's `epochs` must be ≥ 1, and so must its override
/// (0 would train nothing and write the initial weights as a result).
fn at_least_one_epoch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1, as `epochs` in a file (0 would train nothing)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MessageFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Explain { .. }) {
        warn_oversubscribed(cli.threads);
    }
    // SAFETY: nothing else runs yet (no thread has been started), as
    // `configure` requires.
    if let Err(e) = unsafe { lpn::threads::configure(cli.threads) } {
        eprintln!("error: {e}");
        return ExitCode::from(USAGE_OR_IO);
    }
    match cli.command {
        Command::Check { files, message_format } => check(&files, message_format),
        Command::Explain { what } => explain(&what),
        Command::Inspect { file } => inspect_file(&file),
        Command::Train { file, out, epochs, seed, quiet, resume } => train(&file, out, epochs, seed, quiet, resume),
        Command::Eval { file, weights } => eval(&file, &weights),
        Command::Response { file, weights, out } => response(&file, &weights, &out),
    }
}

/// Warns when more threads are asked for than the CPUs this process may use:
/// each parallel step then waits for threads that take turns on the same
/// CPUs, so a run gets slower, not faster (issue 12: a 0.4 s run took 59 s
/// with `--threads 1000`).
fn warn_oversubscribed(threads: Option<usize>) {
    let Some(threads) = threads else { return };
    let Ok(cpus) = std::thread::available_parallelism().map(usize::from) else { return };
    if threads > cpus {
        eprintln!(
            "warning: {threads} threads were asked for (--threads or LPN_THREADS), but this process may use only {cpus} CPU(s); \
             the extra threads take turns on the same CPUs and every step waits for them, so training and evaluation can run \
             many times slower, not faster (use at most {cpus})"
        );
    }
}

/// Whether stderr gets colours: a terminal, and no `NO_COLOR` (any non-empty
/// value turns colours off, as https://no-color.org asks).
fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Exit codes of `check` and `inspect`.
const OK: u8 = 0;
const HAS_ERRORS: u8 = 1;
const USAGE_OR_IO: u8 = 2;

struct Loaded {
    source: String,
    display: String,
    base_dir: PathBuf,
}

/// Reads a .lpn file; `-` reads standard input (shown as `<stdin>`, data
/// paths relative to the current folder).
fn load(path: &Path) -> Result<Loaded, String> {
    if path == Path::new("-") {
        let mut source = String::new();
        std::io::stdin().read_to_string(&mut source).map_err(|e| format!("error: cannot read standard input: {e}"))?;
        return Ok(Loaded { source, display: "<stdin>".into(), base_dir: PathBuf::from(".") });
    }
    let source = std::fs::read_to_string(path).map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
    Ok(Loaded { source, display: path.display().to_string(), base_dir })
}

fn print_problems(problems: &[Problem], loaded: &Loaded, format: MessageFormat) {
    match format {
        MessageFormat::Human => {
            eprint!("{}", report::render_human(problems, &loaded.source, &loaded.display, stderr_color()));
        }
        MessageFormat::Json => {
            let mut stdout = std::io::stdout().lock();
            for d in report::to_json_all(problems, &loaded.source, &loaded.display) {
                let json = serde_json::to_string(&d).expect("diagnostics serialize");
                // A closed pipe is not worth a panic.
                let _ = writeln!(stdout, "{json}");
            }
        }
    }
}

fn check(files: &[PathBuf], format: MessageFormat) -> ExitCode {
    let mut status = OK;
    let (mut errors, mut warnings, mut unread) = (0, 0, 0);
    for path in files {
        let loaded = match load(path) {
            Ok(l) => l,
            Err(message) => {
                eprintln!("{message}");
                status = USAGE_OR_IO;
                unread += 1;
                continue;
            }
        };
        let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
        print_problems(&checked.problems, &loaded, format);
        let e = checked.problems.iter().filter(|p| p.is_error()).count();
        errors += e;
        warnings += checked.problems.len() - e;
        if e > 0 && status == OK {
            status = HAS_ERRORS;
        }
    }
    if matches!(format, MessageFormat::Human) {
        let files_word = if files.len() == 1 { "file" } else { "files" };
        if unread == 0 {
            eprintln!("checked {} {files_word}: {errors} error(s), {warnings} warning(s)", files.len());
        } else {
            // A file that could not be read was not checked: say so, rather
            // than "0 error(s)" for it.
            eprintln!(
                "checked {} of {} {files_word} ({unread} could not be read): {errors} error(s), {warnings} warning(s)",
                files.len() - unread,
                files.len()
            );
        }
    }
    ExitCode::from(status)
}

fn explain(what: &str) -> ExitCode {
    if what == "reference" {
        say_raw!("{}", schema::reference_markdown());
        return ExitCode::from(OK);
    }
    if what == "list" {
        for (code, title) in CODES {
            say!("{code}  {title}");
        }
        return ExitCode::from(OK);
    }
    if let Some(text) = codes::explanation(what) {
        say_raw!("{text}");
        return ExitCode::from(OK);
    }
    if let Some(text) = schema::describe(what) {
        say_raw!("{text}");
        return ExitCode::from(OK);
    }
    let mut known: Vec<&str> = CODES.iter().map(|(c, _)| *c).collect();
    known.extend(schema::layer_names());
    known.extend(schema::annotation_names());
    eprintln!("error: nothing is called `{what}`");
    // A look-alike or invisible character: name it, and try the name in ASCII.
    let stray = what.char_indices().find(|&(_, c)| lpn::confusables::is_suspicious(c));
    let spelt = stray.and_then(|(at, _)| lpn::confusables::ascii_spelling(what, at)).map(|(_, word)| word);
    if let Some((_, c)) = stray {
        eprintln!("note: it contains {}", lpn::confusables::describe(c));
    }
    if let Some(best) = spelt.as_deref().filter(|w| known.contains(w)).or_else(|| lpn::suggest::closest(what, &known)) {
        eprintln!("help: did you mean `{best}`?");
    }
    eprintln!("help: `lpnc explain list` lists every code; names of layers, annotations, data sources, optimizers and losses work too");
    ExitCode::from(USAGE_OR_IO)
}

fn inspect_file(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(USAGE_OR_IO);
        }
    };
    let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
    print_problems(&checked.problems, &loaded, MessageFormat::Human);
    match checked.program {
        Some(program) => {
            say!("model {}", program.model.name);
            say_raw!("{}", inspect::table(&program.model));
            ExitCode::from(OK)
        }
        None => ExitCode::from(HAS_ERRORS),
    }
}

/// Loads and checks a file for training; prints its diagnostics.
/// A checked program, the folder its data paths are relative to, and the
/// digest of its source (checkpoints record it).
fn checked_program(path: &Path) -> Result<(lpn::ir::Program, PathBuf, String), ExitCode> {
    let loaded = load(path).map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(USAGE_OR_IO)
    })?;
    let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
    print_problems(&checked.problems, &loaded, MessageFormat::Human);
    match checked.program {
        Some(program) => Ok((program, loaded.base_dir, lpn::train::checkpoint::digest(&loaded.source))),
        None => {
            eprintln!("error: {} has errors; nothing was trained", loaded.display);
            Err(ExitCode::from(HAS_ERRORS))
        }
    }
}

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

fn train(path: &Path, out: Option<PathBuf>, epochs: Option<usize>, seed: Option<u64>, quiet: bool, resume: Option<PathBuf>) -> ExitCode {
    let (program, base, digest) = match checked_program(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let out_dir = resume.clone().or(out).unwrap_or_else(|| PathBuf::from("runs").join(&program.model.name));
    if !quiet {
        let verb = if resume.is_some() { "resuming" } else { "training" };
        eprintln!("{verb} `{}` ({} parameters) → {}", program.model.name, program.model.parameter_count(), out_dir.display());
    }
    // The first Ctrl-C (or SIGTERM) asks for a checkpoint after the current
    // step; a second one quits at once (the last checkpoint is intact, as
    // every write is atomic).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\nstopped without saving the current step; the last checkpoint is intact");
            std::process::exit(INTERRUPTED as i32);
        }
        eprintln!("\nstopping after this step to save a checkpoint (press Ctrl-C again to quit at once)");
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last checkpoint");
    }
    let options = lpn::train::Options {
        out_dir: out_dir.clone(),
        epochs,
        seed,
        quiet,
        resume: resume.is_some(),
        source_digest: Some(digest),
        stop: Some(stop),
    };
    match lpn::train::train(&program, &base, &options) {
        Ok(report) => {
            if let Some(test) = &report.test {
                match test.accuracy {
                    Some(a) => say!("test: loss {:.4}, accuracy {:.1}%", test.loss, a * 100.0),
                    None => say!("test: loss {:.4}", test.loss),
                }
            }
            if !report.constraints.is_empty() {
                say_raw!("{}", lpn::train::constraint_table(&report));
            }
            say!("wrote {} and {}", out_dir.join("model.safetensors").display(), out_dir.join("report.json").display());
            ExitCode::from(OK)
        }
        Err(e @ lpn::train::TrainError::Interrupted { .. }) => {
            eprintln!("{e}");
            eprintln!("continue with: lpnc train {} --resume {}", path.display(), out_dir.display());
            ExitCode::from(INTERRUPTED)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}

fn eval(path: &Path, weights: &Path) -> ExitCode {
    let (program, base, _) = match checked_program(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match lpn::train::evaluate_file(&program, &base, weights) {
        Ok(e) => {
            match e.accuracy {
                Some(a) => say!("test: loss {:.4}, accuracy {:.1}%", e.loss, a * 100.0),
                None => say!("test: loss {:.4}", e.loss),
            }
            ExitCode::from(OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}

fn response(path: &Path, weights: &Path, out: &Path) -> ExitCode {
    let (program, _, _) = match checked_program(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let panels = match lpn::train::response::panels(&program, weights) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(HAS_ERRORS);
        }
    };
    let report = lpn::train::response::report_next_to(weights);
    match lpn::train::response::draw(&panels, report.as_ref(), out) {
        Ok(()) => {
            say!("wrote {} ({} layer(s){})", out.display(), panels.len(), if report.is_some() { ", ρ per epoch" } else { "" });
            ExitCode::from(OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}
