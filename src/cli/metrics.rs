//! `metrics.csv` in the run folder: one row per epoch (epoch, phase, lr in
//! force, train loss, val loss and accuracy, each constraint's measure), for
//! the tools people compare runs in. Written by `lpnc train` through the
//! observer (the library writes no such file); a resumed run keeps the rows
//! of the epochs its checkpoint holds and drops any epoch it will run again,
//! so no epoch is lost or written twice. The same rows go to TensorBoard's
//! event file beside it (`super::tensorboard`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use lpn::train::{ConstraintLabel, EpochReport, Event, Observer};

/// The file's name in the run folder.
pub const FILE_NAME: &str = "metrics.csv";

/// Passes every event on to `display`, and writes metrics.csv.
pub struct WithMetrics {
    pub display: Box<dyn Observer>,
    file: Option<File>,
    path: PathBuf,
    /// The event file, and metrics.csv's columns its records are named by.
    events: Option<(File, Vec<String>)>,
    /// Set after the first failure to write, which is reported once.
    failed: bool,
}

impl WithMetrics {
    pub fn new(display: Box<dyn Observer>) -> WithMetrics {
        WithMetrics { display, file: None, path: PathBuf::new(), events: None, failed: false }
    }

    fn start(&mut self, dir: &Path, constraints: &[ConstraintLabel], resumed_at: Option<(usize, usize)>) -> std::io::Result<()> {
        self.path = dir.join(FILE_NAME);
        let kept = match resumed_at {
            Some((epoch, _)) => kept_rows(&self.path, epoch)?,
            None => header(constraints),
        };
        // Rewritten whole: the header and the rows of the epochs already done.
        std::fs::write(&self.path, &kept)?;
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        let events_path = dir.join(super::tensorboard::FILE_NAME);
        let opened = std::fs::write(&events_path, super::tensorboard::file_from_csv(&kept))
            .and_then(|()| OpenOptions::new().append(true).open(&events_path));
        match opened {
            Ok(events) => {
                let columns = kept.lines().next().unwrap_or_default().split(',').map(String::from).collect();
                self.events = Some((events, columns));
            }
            Err(e) => self.events_failed(&events_path, e),
        }
        Ok(())
    }

    /// The event file could not be written: said once, and metrics.csv goes on.
    fn events_failed(&mut self, path: &Path, e: std::io::Error) {
        eprintln!("warning: could not write {}: {e}; metrics.csv is still written", path.display());
        self.events = None;
    }

    fn append(&mut self, report: &EpochReport) -> std::io::Result<()> {
        let Some(file) = &mut self.file else { return Ok(()) };
        let line = row(report);
        file.write_all(line.as_bytes())?;
        file.flush()?;
        if let Some((events, columns)) = &mut self.events {
            let header: Vec<&str> = columns.iter().map(String::as_str).collect();
            let record = super::tensorboard::row_record(&header, line.trim_end(), super::tensorboard::wall_time());
            if let Err(e) = events.write_all(&record).and_then(|()| events.flush()) {
                let path = self.path.with_file_name(super::tensorboard::FILE_NAME);
                self.events_failed(&path, e);
            }
        }
        Ok(())
    }

    fn report_failure(&mut self, e: std::io::Error) {
        if !self.failed {
            eprintln!("warning: could not write {}: {e}", self.path.display());
        }
        self.failed = true;
        self.file = None;
        self.events = None;
    }
}

impl Observer for WithMetrics {
    fn event(&mut self, event: &Event<'_>) {
        let written = match event {
            Event::Started { dir, constraints, resumed_at, .. } => self.start(dir, constraints, *resumed_at),
            Event::EpochDone { report, .. } => self.append(report),
            Event::StaleLockTakenOver { .. }
            | Event::Replaced { .. }
            | Event::InitFitted { .. }
            | Event::PhaseEntered { .. }
            | Event::EpochStarted { .. }
            | Event::StepDone { .. }
            | Event::EarlyStop { .. }
            | Event::Interrupted => Ok(()),
        };
        if let Err(e) = written {
            self.report_failure(e);
        }
        self.display.event(event);
    }
}

/// The header: the epoch's figures, then one column per constraint (its
/// ρ for a quadratic family, else its violation).
fn header(constraints: &[ConstraintLabel]) -> String {
    let mut columns =
        vec!["epoch", "phase", "lr", "train_loss", "val_loss", "val_accuracy"].into_iter().map(String::from).collect::<Vec<_>>();
    for c in constraints {
        columns.push(format!("{}.{}.{}", c.layer, c.kind, if c.has_ratio { "rho" } else { "violation" }));
    }
    columns.join(",") + "\n"
}

fn row(r: &EpochReport) -> String {
    let opt = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    let mut cells = vec![r.epoch.to_string(), r.phase.clone().unwrap_or_default(), r.lr.to_string(), r.train_loss.to_string()];
    cells.push(opt(r.val_loss));
    cells.push(opt(r.val_accuracy));
    for m in &r.constraints {
        cells.push(opt(m.stopband_ratio.or(m.violation)));
    }
    cells.join(",") + "\n"
}

/// The header and the rows before epoch `resumed_epoch` of an existing file
/// (a missing file gives nothing to keep: the rows start again from here).
fn kept_rows(path: &Path, resumed_epoch: usize) -> std::io::Result<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let mut out: String = lines.next().map(|h| format!("{h}\n")).unwrap_or_default();
    for line in lines {
        let epoch = line.split(',').next().and_then(|e| e.parse::<usize>().ok());
        if epoch.is_some_and(|e| e < resumed_epoch) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}
