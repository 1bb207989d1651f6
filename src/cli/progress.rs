//! What `lpnc train` shows while a run goes: progress bars on a terminal,
//! one plain line per epoch elsewhere (CI, nohup, batch jobs' log files); and
//! the end-of-run table.

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
        Event::EarlyStop { epoch, best_epoch, patience, monitor } => {
            Some(format!("early stop after epoch {epoch}: {monitor} has not improved for {patience} epoch(s) (best: epoch {best_epoch})"))
        }
        Event::EpochStarted { .. } | Event::StepDone { .. } | Event::EpochDone { .. } | Event::Interrupted => None,
    }
}

fn figure_text(label: &ConstraintLabel, value: Option<f64>, multiplier: Option<f64>) -> String {
    let Some(v) = value else { return String::new() };
    let mut out =
        if label.has_ratio { format!(" · {} ρ {v:.2e}", label.layer) } else { format!(" · {} {} {v:.1e}", label.layer, label.kind) };
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
        .map(|(l, m)| figure_text(l, if l.has_ratio { m.stopband_ratio } else { m.violation }, m.multiplier))
        .collect()
}

fn epoch_text(r: &EpochReport, labels: &[ConstraintLabel]) -> String {
    let val = match (r.val_loss, r.val_accuracy) {
        (Some(loss), Some(a)) => format!(" · val loss {loss:.4} · val acc {:.1}%", a * 100.0),
        (Some(loss), None) => format!(" · val loss {loss:.4}"),
        (None, _) => String::new(),
    };
    format!("loss {:.4}{val}{} · lr {:.2e} · {:.1}s", r.train_loss, measured_text(labels, &r.constraints), r.lr, r.seconds)
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
        if let Some(last) = report.epochs.last() {
            out.push_str(&format!(", lr in force at the end {:.2e}", last.lr));
        }
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
