//! `lpnc`: the command-line front of lpn.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use lpn::language::diagnostic::{CODES, Problem};

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
use lpn::language::render as report;
use lpn::language::{codes, inspect, schema};

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
    ///
    /// Exit status: 0 trained; 1 errors in the file or while training; 2 usage or I/O; 3 trained and written, but a
    /// constraint in a hard mode (project, reparam, freeze) does not hold or a constrained weight collapsed to zero;
    /// 130 interrupted (checkpoint saved).
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
        /// Nothing on stderr while training (the end table still goes to stdout).
        #[arg(long)]
        quiet: bool,
        /// Continue the run whose checkpoint is in this folder (its --out), exactly where it stopped.
        #[arg(long, value_name = "DIR", conflicts_with = "out")]
        resume: Option<PathBuf>,
        /// Replace the run already in the output folder (its files are removed first).
        #[arg(long, conflicts_with = "resume")]
        force: bool,
    },
    /// Plot the magnitude response of every band-constrained layer over its spec's mask (SVG; 1-D: up to 24 kernels, largest ρ first; 2-D: a heat map of the worst kernel), and ρ per epoch.
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
        Command::Train { file, out, epochs, seed, quiet, resume, force } => {
            train(&file, TrainArgs { out, epochs, seed, quiet, resume, force })
        }
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
    let stray = what.char_indices().find(|&(_, c)| lpn::language::confusables::is_suspicious(c));
    let spelt = stray.and_then(|(at, _)| lpn::language::confusables::ascii_spelling(what, at)).map(|(_, word)| word);
    if let Some((_, c)) = stray {
        eprintln!("note: it contains {}", lpn::language::confusables::describe(c));
    }
    if let Some(best) = spelt.as_deref().filter(|w| known.contains(w)).or_else(|| lpn::language::suggest::closest(what, &known)) {
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
/// A checked program and the folder its data paths are relative to.
fn checked_program(path: &Path) -> Result<(lpn::language::ir::Program, PathBuf), ExitCode> {
    let loaded = load(path).map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(USAGE_OR_IO)
    })?;
    let (_, checked) = lpn::check_source(&loaded.source, &loaded.base_dir);
    print_problems(&checked.problems, &loaded, MessageFormat::Human);
    match checked.program {
        Some(program) => Ok((program, loaded.base_dir)),
        None => {
            eprintln!("error: {} has errors; nothing was trained", loaded.display);
            Err(ExitCode::from(HAS_ERRORS))
        }
    }
}

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

/// Exit code of a run that finished (its files written) with a hard
/// constraint (project, reparam, freeze) not held, or a constrained weight
/// collapsed to zero.
const CONSTRAINT_FAILED: u8 = 3;

/// A penalty that ended far from its tolerance, and what to do.
fn penalty_advice_words(a: &lpn::train::verdict::PenaltyAdvice) -> String {
    let what = if a.band { "ρ (max)" } else { "its violation" };
    let trend = match a.first_figure {
        Some(first) if a.epochs > 1 && first > a.figure => format!(
            "; it fell from {first:.3e} after epoch 1 to {:.3e} after epoch {} (under Adam a kernel moves about lr per step whatever \
             the weight, so more epochs help too)",
            a.figure, a.epochs
        ),
        _ => String::new(),
    };
    format!(
        "note: {} `@{}` (mode=penalty, weight={}) ends with {what} = {:.3e}, {:.0}× its tol {}: the penalty barely \
         constrains it{trend}\n  help: raise the weight to about {} (task loss {:.3e} / tol {}: the weight at which a \
         kernel just meeting tol would cost as much as the whole task loss does now; at least 10× the weight used), or let \
         lpn enforce it: mode=project (holds after every step) or mode=lagrangian (a multiplier that rises until it holds, \
         no weight to tune)\n",
        a.layer,
        a.kind,
        a.weight,
        a.figure,
        a.figure / a.tol,
        a.tol,
        lpn::language::diagnostic::fmt_num(round_weight(a.suggested_weight)),
        a.task_loss,
        a.tol,
    )
}

/// A suggested weight to two significant figures.
fn round_weight(w: f64) -> f64 {
    if w <= 0.0 || !w.is_finite() {
        return w;
    }
    let scale = 10f64.powf(w.log10().floor() - 1.0);
    (w / scale).round() * scale
}

/// A hard constraint that failed, as an error for people.
fn failure_words(f: &lpn::train::verdict::Failure) -> String {
    use lpn::train::verdict::Failure;
    match f {
        Failure::NotHeld { layer, kind, mode, figure, tol } => {
            use lpn::language::schema::Mode;
            let (why, help) = match mode {
                Mode::Freeze => (
                    "the designed filter (a Hamming-windowed sinc) does not meet tol for this band",
                    "use more taps, a wider transition, or mode=project or mode=reparam, which learn a kernel that meets tol",
                ),
                Mode::Project | Mode::Reparam | Mode::Penalty | Mode::Lagrangian => (
                    "the constraints on this weight may not hold together (alternating projections need not converge on \
                     sets that do not meet, or that are not convex)",
                    "drop or relax one of the layer's constraints, or enforce one with mode=penalty or mode=lagrangian",
                ),
            };
            format!(
                "error: constraint not held: {layer} `@{kind}` (mode={mode}) ends at {figure:.3e}, above its tol {tol}, \
                 although mode={mode} should keep it: {why}\n  help: {help}\n"
            )
        }
        Failure::Collapsed { layer, tensor, kinds, max_abs, threshold } => {
            let has = |k: &str| kinds.iter().any(|x| x == k);
            let why = if has("@nonneg") && (has("@highpass") || has("@bandpass")) {
                " (a non-negative kernel has its largest gain at DC, so it cannot keep DC out)"
            } else {
                ""
            };
            format!(
                "error: layer collapsed: {tensor} ended numerically zero (largest |w| = {max_abs:.3e} ≤ {threshold:.3e}, a \
                 millionth of the default initial scale 1/√fan_in), so {layer} passes nothing on: its constraints ({}) may \
                 meet only at zero{why}, or training left it there (a zero layer before a ReLU gets no gradient)\n  help: \
                 drop or relax a constraint, enforce one with mode=penalty or mode=lagrangian, or start the layer from a \
                 non-zero init\n",
                kinds.join(" ")
            )
        }
    }
}

/// A second signal this soon after the first is taken as the same request,
/// not as "quit now": `timeout -s INT`, a terminal's Ctrl-C and batch
/// schedulers signal every process of the group (and a wrapper may forward
/// the signal as well), so one request can arrive twice at once.
const SAME_REQUEST: std::time::Duration = std::time::Duration::from_secs(1);

struct TrainArgs {
    out: Option<PathBuf>,
    epochs: Option<usize>,
    seed: Option<u64>,
    quiet: bool,
    resume: Option<PathBuf>,
    force: bool,
}

fn train(path: &Path, args: TrainArgs) -> ExitCode {
    let (program, base) = match checked_program(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let out_dir = args.resume.clone().or(args.out).unwrap_or_else(|| PathBuf::from("runs").join(&program.model.name));
    // The first Ctrl-C (or SIGTERM) asks for a checkpoint after the current
    // step; a second one, a second or more later, quits at once (the last
    // checkpoint is intact, as every write is atomic).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let first_signal = std::sync::Mutex::new(None::<std::time::Instant>);
    let installed = ctrlc::set_handler(move || {
        let mut first = first_signal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *first {
            None => {
                *first = Some(std::time::Instant::now());
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                eprintln!("\nstopping after this step to save a checkpoint (press Ctrl-C again to quit at once)");
            }
            // The same request delivered twice (see SAME_REQUEST): ignored.
            Some(at) if at.elapsed() < SAME_REQUEST => {}
            Some(_) => {
                eprintln!("\nstopped without saving the current step; the last checkpoint is intact");
                std::process::exit(INTERRUPTED as i32);
            }
        }
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot catch Ctrl-C ({e}); an interrupted run resumes from its last checkpoint");
    }
    let options = lpn::train::Options {
        out_dir: out_dir.clone(),
        epochs: args.epochs,
        seed: args.seed,
        resume: args.resume.is_some(),
        force: args.force,
        stop: Some(stop),
    };
    let mut observer: Box<dyn lpn::train::Observer> = if args.quiet {
        Box::new(lpn::train::Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(progress::Bars::default())
    } else {
        Box::new(progress::Lines)
    };
    let result = lpn::train::train_observed(&program, &base, &options, observer.as_mut());
    drop(observer);
    match result {
        Ok(report) => {
            say_raw!("{}", progress::end_table(&report));
            if !report.constraints.is_empty() {
                say_raw!("{}", lpn::train::constraint_table(&report));
            }
            say!("wrote {} and {}", out_dir.join("model.safetensors").display(), out_dir.join("report.json").display());
            let verdict = match lpn::train::verdict::judge_run(&report, &out_dir.join("model.safetensors")) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(HAS_ERRORS);
                }
            };
            for advice in &verdict.advice {
                say_raw!("{}", penalty_advice_words(advice));
            }
            for failure in &verdict.failures {
                eprint!("{}", failure_words(failure));
            }
            if verdict.failures.is_empty() { ExitCode::from(OK) } else { ExitCode::from(CONSTRAINT_FAILED) }
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

/// What `lpnc train` shows while a run goes: progress bars on a terminal,
/// one plain line per epoch elsewhere (CI, nohup, batch jobs' log files).
mod progress {
    use lpn::model::constraints::Measure;
    use lpn::train::{ConstraintLabel, EpochReport, Event, LiveFigure, Observer, Report, Stopped};

    /// The messages both observers show as lines.
    fn note(event: &Event<'_>) -> Option<String> {
        match event {
            Event::Started { model, parameters, dir, epochs, resumed_at: None, .. } => {
                Some(format!("training `{model}` ({parameters} parameters, {epochs} epochs) → {}", dir.display()))
            }
            Event::Started { model, dir, epochs, resumed_at: Some((epoch, step)), .. } => {
                Some(format!("resuming `{model}` at epoch {epoch}, step {step} (of {epochs} epochs) → {}", dir.display()))
            }
            Event::StaleLockTakenOver { pid, command } => {
                Some(format!("note: took over the folder's lock from process {pid} (`{command}`), which is no longer running"))
            }
            Event::Replaced { files } => Some(format!("note: --force: removed the earlier run's {}", files.join(", "))),
            Event::InitFitted { layer, constraint, relative_change } => Some(format!(
                "note: {layer}'s initial weight did not satisfy `@{constraint}`; it was fitted into the constraint set (relative change {relative_change:.3e})"
            )),
            Event::PhaseEntered { name, epochs } => Some(format!("phase `{name}`: {epochs} epoch(s)")),
            Event::EarlyStop { epoch, best_epoch, patience, monitor } => Some(format!(
                "early stop after epoch {epoch}: {monitor} has not improved for {patience} epoch(s) (best: epoch {best_epoch})"
            )),
            Event::EpochStarted { .. } | Event::StepDone { .. } | Event::EpochDone { .. } | Event::Interrupted => None,
        }
    }

    fn figure_text(label: &ConstraintLabel, value: Option<f64>, multiplier: Option<f64>) -> String {
        let Some(v) = value else { return String::new() };
        let mut out =
            if label.band { format!(" · {} ρ {v:.2e}", label.layer) } else { format!(" · {} {} {v:.1e}", label.layer, label.kind) };
        if let Some(m) = multiplier {
            out.push_str(&format!(" λ {m:.3}"));
        }
        out
    }

    fn live_text(labels: &[ConstraintLabel], figures: &[Option<LiveFigure>]) -> String {
        labels.iter().zip(figures).map(|(l, f)| figure_text(l, f.map(|f| f.value), f.and_then(|f| f.multiplier))).collect()
    }

    fn measured_text(labels: &[ConstraintLabel], measures: &[Measure]) -> String {
        labels
            .iter()
            .zip(measures)
            .map(|(l, m)| figure_text(l, if l.band { m.stopband_ratio } else { m.violation }, m.multiplier))
            .collect()
    }

    fn epoch_text(r: &EpochReport, labels: &[ConstraintLabel]) -> String {
        let val = match (r.val_loss, r.val_accuracy) {
            (Some(loss), Some(a)) => format!(" · val loss {loss:.4} · val acc {:.1}%", a * 100.0),
            (Some(loss), None) => format!(" · val loss {loss:.4}"),
            (None, _) => String::new(),
        };
        format!("loss {:.4}{val}{} · {:.1}s", r.train_loss, measured_text(labels, &r.constraints), r.seconds)
    }

    /// One line per epoch and per note, nothing per step.
    pub struct Lines;

    impl Observer for Lines {
        fn event(&mut self, event: &Event<'_>) {
            if let Some(line) = note(event) {
                eprintln!("{line}");
            }
            if let Event::EpochDone { report, epochs, constraints, .. } = event {
                eprintln!("epoch {:>3}/{epochs} {}", report.epoch, epoch_text(report, constraints));
            }
        }
    }

    /// A progress bar per epoch, with the loss and the constraints' figures live.
    #[derive(Default)]
    pub struct Bars {
        bar: Option<indicatif::ProgressBar>,
        labels: Vec<ConstraintLabel>,
    }

    impl Observer for Bars {
        fn event(&mut self, event: &Event<'_>) {
            if let Some(line) = note(event) {
                match &self.bar {
                    Some(bar) if !bar.is_finished() => bar.println(line),
                    _ => eprintln!("{line}"),
                }
            }
            match event {
                Event::Started { constraints, .. } => self.labels = constraints.to_vec(),
                Event::EpochStarted { epoch, epochs, steps, done } => {
                    let bar = indicatif::ProgressBar::new(*steps as u64);
                    let style = indicatif::ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {msg}")
                        .expect("valid template")
                        .progress_chars("=> ");
                    bar.set_style(style);
                    bar.set_prefix(format!("epoch {epoch:>3}/{epochs}"));
                    bar.inc(*done as u64);
                    self.bar = Some(bar);
                }
                Event::StepDone { mean_loss, live, .. } => {
                    if let Some(bar) = &self.bar {
                        bar.set_message(format!("loss {mean_loss:.4}{}", live_text(&self.labels, &live.figures())));
                        bar.inc(1);
                    }
                }
                Event::EpochDone { report, constraints, .. } => {
                    if let Some(bar) = self.bar.take() {
                        bar.finish_with_message(epoch_text(report, constraints));
                    }
                }
                Event::Interrupted => {
                    if let Some(bar) = self.bar.take() {
                        bar.abandon();
                    }
                }
                Event::StaleLockTakenOver { .. }
                | Event::Replaced { .. }
                | Event::InitFitted { .. }
                | Event::PhaseEntered { .. }
                | Event::EarlyStop { .. } => {}
            }
        }
    }

    /// The end of a run, for people: which epoch's weights were kept and why
    /// the run stopped, then loss and accuracy on each data set.
    pub fn end_table(report: &Report) -> String {
        let mut out = String::new();
        let ran = report.epochs.len();
        let kept = report.kept_epoch.and_then(|k| report.epochs.iter().find(|e| e.epoch == k));
        if let Some(k) = kept {
            let why = match report.keep {
                lpn::language::ir::Keep::Best => format!("best {}", report.monitor.name()),
                lpn::language::ir::Keep::Last => "the last".to_string(),
            };
            out.push_str(&format!("kept epoch {} of {ran} ({why})", k.epoch));
            if report.stopped == Some(Stopped::EarlyStop) {
                out.push_str("; stopped early");
            }
            out.push('\n');
        }
        let mut rows = vec![["".to_string(), "loss".into(), "accuracy".into()]];
        let accuracy = |a: Option<f64>| a.map(|a| format!("{:.1}%", a * 100.0)).unwrap_or_else(|| "-".into());
        if let Some(k) = kept {
            rows.push(["train".into(), format!("{:.4}", k.train_loss), "-".into()]);
            if let Some(loss) = k.val_loss {
                rows.push(["val".into(), format!("{loss:.4}"), accuracy(k.val_accuracy)]);
            }
        }
        if let Some(t) = &report.test {
            rows.push(["test".into(), format!("{:.4}", t.loss), accuracy(t.accuracy)]);
        }
        if rows.len() == 1 {
            return out;
        }
        let widths: Vec<usize> = (0..3).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for row in &rows {
            out.push_str(&format!("{:<w0$}  {:>w1$}  {:>w2$}\n", row[0], row[1], row[2], w0 = widths[0], w1 = widths[1], w2 = widths[2]));
        }
        out
    }
}

fn eval(path: &Path, weights: &Path) -> ExitCode {
    let (program, base) = match checked_program(path) {
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
    let (program, base) = match checked_program(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let panels = match lpn::train::response::panels(&program, &base, weights) {
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
            for panel in &panels {
                if let Some(note) = panel.cap_note() {
                    say!("{}: {note}", panel.layer);
                }
            }
            ExitCode::from(OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(HAS_ERRORS)
        }
    }
}
