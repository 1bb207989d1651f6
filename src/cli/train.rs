//! `lpnc train` and `lpnc eval`: the run, its signals, its verdict in words.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{HAS_ERRORS, OK, progress};

/// Exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells do).
const INTERRUPTED: u8 = 130;

/// Exit code of a run that finished (its files written) with a hard
/// constraint (project, reparam, freeze) not held, or a constrained weight
/// collapsed to zero.
const CONSTRAINT_FAILED: u8 = 3;

/// A penalty that ended far from its tolerance, and what to do.
fn penalty_advice_words(a: &lpn::train::verdict::PenaltyAdvice) -> String {
    let what = if a.has_ratio { "ρ (max)" } else { "its violation" };
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

pub struct TrainArgs {
    pub out: Option<PathBuf>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub quiet: bool,
    pub resume: Option<PathBuf>,
    pub force: bool,
    /// `--set KEY=VALUE`, as written.
    pub overrides: Vec<String>,
}

pub fn train(path: &Path, args: TrainArgs) -> ExitCode {
    let (program, loaded) = match super::checked_program_with(path, &args.overrides) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let out_dir = args.resume.clone().or(args.out).unwrap_or_else(|| PathBuf::from("runs").join(&program.model.name));
    let options = lpn::train::Options {
        out_dir: out_dir.clone(),
        epochs: args.epochs,
        seed: args.seed,
        resume: args.resume.is_some(),
        force: args.force,
        stop: Some(stop_on_signal()),
        // Embedded in model.safetensors, with the folder its data paths start from.
        source: Some(lpn::train::provenance::ProgramSource {
            text: loaded.source,
            dir: std::path::absolute(&loaded.base_dir).unwrap_or(loaded.base_dir),
        }),
        overrides: args.overrides.clone(),
    };
    let display: Box<dyn lpn::train::Observer> = if args.quiet {
        Box::new(lpn::train::Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(progress::Bars::default())
    } else {
        Box::new(progress::Lines)
    };
    let mut observer = super::metrics::WithMetrics::new(display);
    let result = lpn::train::train_observed(&program, &options, &mut observer);
    drop(observer);
    match result {
        Ok(report) => trained(&report, &out_dir),
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

/// The flag a run looks at after each step. The first Ctrl-C (or SIGTERM)
/// sets it, asking for a checkpoint after the current step; a second one, a
/// second or more later, quits at once (the last checkpoint is intact, as
/// every write is atomic).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let first_signal = std::sync::Mutex::new(None::<std::time::Instant>);
    let installed = ctrlc::set_handler(move || {
        let mut first = first_signal.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *first {
            None => {
                *first = Some(std::time::Instant::now());
                flag.store(true, Ordering::SeqCst);
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
    stop
}

/// A finished run for people: the end tables, where its files are, advice on
/// penalties, the hard constraints that failed; the exit code.
fn trained(report: &lpn::train::Report, out_dir: &Path) -> ExitCode {
    say_raw!("{}", progress::end_table(report));
    if !report.constraints.is_empty() {
        say_raw!("{}", lpn::train::constraint_table(report));
    }
    say!(
        "wrote {}, {} and {}",
        out_dir.join("model.safetensors").display(),
        out_dir.join("report.json").display(),
        out_dir.join(super::metrics::FILE_NAME).display()
    );
    let verdict = match lpn::train::verdict::judge_run(report, &out_dir.join("model.safetensors")) {
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

pub fn eval(path: Option<&Path>, weights: &Path) -> ExitCode {
    let program = match super::predict::program_for(path, weights) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match lpn::train::evaluate_file(&program, weights) {
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
