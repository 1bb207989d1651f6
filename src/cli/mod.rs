//! The command-line front: one module per subcommand, and what they share —
//! reading a .lpn file, printing its diagnostics, exit codes. Only this room
//! prints.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lpn::language::diagnostic::Problem;
use lpn::language::render as report;

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

pub mod args;
pub mod check;
pub mod explain;
pub mod export;
pub mod fmt;
pub mod lsp;
pub mod metrics;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod response;
pub mod tensorboard;
pub mod train;

use args::MessageFormat;

/// Warns when more threads are asked for than the CPUs this process may use:
/// each parallel step then waits for threads that take turns on the same
/// CPUs, so a run gets slower, not faster (issue 12: a 0.4 s run took 59 s
/// with `--threads 1000`).
pub fn warn_oversubscribed(threads: Option<usize>) {
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
pub const OK: u8 = 0;
pub const HAS_ERRORS: u8 = 1;
pub const USAGE_OR_IO: u8 = 2;

pub struct Loaded {
    pub source: String,
    pub display: String,
    pub base_dir: PathBuf,
}

/// Reads a .lpn file; `-` reads standard input (shown as `<stdin>`, data
/// paths relative to the current folder).
pub fn load(path: &Path) -> Result<Loaded, String> {
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

pub fn print_problems(problems: &[Problem], loaded: &Loaded, format: MessageFormat) {
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

/// `checked_program` with `lpnc train --set` overrides written into the
/// file; a diagnostic about an override is shown with the override as its
/// own source, named `--set KEY=VALUE`.
/// Returns the program and the file as read (its text, its folder).
pub fn checked_program_with(path: &Path, overrides: &[String]) -> Result<(lpn::language::ir::Program, Loaded), ExitCode> {
    use lpn::language::overrides::{containing, place};
    let loaded = load(path).map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(USAGE_OR_IO)
    })?;
    let placed = place(overrides, loaded.source.len());
    let env = lpn::RealEnvironment::default();
    let (_, checked) = lpn::language::check::check_source_with_overrides(&loaded.source, &placed, &loaded.base_dir, &env);
    let (in_overrides, in_file): (Vec<Problem>, Vec<Problem>) =
        checked.problems.into_iter().partition(|p| containing(&placed, p.span()).is_some());
    print_problems(&in_file, &loaded, MessageFormat::Human);
    for p in &placed {
        let own: Vec<Problem> = in_overrides.iter().filter(|q| containing(&placed, q.span()) == Some(p)).cloned().collect();
        eprint!("{}", report::render_human_at(&own, &p.text, p.offset, &format!("--set {}", p.text), stderr_color()));
    }
    match checked.program {
        Some(program) => Ok((program, loaded)),
        None => {
            eprintln!("error: {} has errors; nothing was trained", loaded.display);
            Err(ExitCode::from(HAS_ERRORS))
        }
    }
}

/// Loads and checks a file; prints its diagnostics.
pub fn checked_program(path: &Path) -> Result<lpn::language::ir::Program, ExitCode> {
    let loaded = load(path).map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(USAGE_OR_IO)
    })?;
    checked_loaded(&loaded, "nothing was run")
}

/// Checks a file as read; prints its diagnostics, and on errors what the
/// command did not do (`nothing was trained`).
pub fn checked_loaded(loaded: &Loaded, consequence: &str) -> Result<lpn::language::ir::Program, ExitCode> {
    let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
    print_problems(&checked.problems, loaded, MessageFormat::Human);
    match checked.program {
        Some(program) => Ok(program),
        None => {
            eprintln!("error: {} has errors; {consequence}", loaded.display);
            Err(ExitCode::from(HAS_ERRORS))
        }
    }
}
