//! Run folders and what a run shows: one run per folder (refused, replaced
//! whole with --force, locked while a run writes there), report.json after
//! every epoch, one line per epoch outside a terminal, the end table.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn out_dir(name: &str) -> PathBuf {
    common::fresh_dir("runs", name)
}

fn program(source: &str) -> lpn::language::ir::Program {
    common::program(source, Path::new("."))
}

/// A small classifier on built-in data, with test data: seconds to train.
const WAVES: &str = "model waves {
  input [1, 64]
  conv(out=4, k=15) @lowpass(cutoff=0.5, mode=lagrangian)
  relu
  global_avgpool
  linear(out=3)
}
data {
  train = waveforms(n=96)
  test = waveforms(n=48, seed=2)
}
train {
  epochs = 3
  batch = 32
}
";

/// Another model, to tell two runs' files apart.
const OTHER: &str = "model other {
  input [1, 64]
  conv(out=2, k=3)
  relu
  global_avgpool
  linear(out=3)
}
data waveforms(n=96)
train {
  epochs = 2
  batch = 32
}
";

/// A run long enough to be caught while it goes.
const LONG: &str = "model long {
  input [1, 256]
  conv(out=8, k=15)
  relu
  conv(out=1, k=15)
}
data sines(n=320)
train {
  epochs = 200
  batch = 8
}
";

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn lpnc(args: &[&str]) -> std::process::Output {
    common::lpnc().args(args).stdin(Stdio::null()).output().unwrap()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

#[test]
fn outside_a_terminal_each_epoch_is_one_line_and_the_end_table_has_the_final_metrics() {
    let work = out_dir("plain");
    let file = write(&work, "waves.lpn", WAVES);
    let run = work.join("run");
    // stderr is a pipe here, as in CI, nohup or a batch job.
    let out = lpnc(&["train", &file, "--out", run.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    for epoch in 1..=3 {
        let line = stderr.lines().find(|l| l.starts_with(&format!("epoch {epoch:>3}/3"))).unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains("loss ") && line.contains("val loss ") && line.contains("val acc ") && line.contains("conv1 ρ"), "{line}");
    }
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "no terminal control in a log: {stderr:?}");
    // The end table: the kept epoch and loss and accuracy on train, val and test.
    assert!(stdout.contains("kept epoch 3 of 3 (the last)"), "{stdout}");
    let row = |name: &str| stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} row: {stdout}")).to_string();
    let report = report(&run);
    let val_loss = report["epochs"][2]["val_loss"].as_f64().unwrap();
    assert!(row("val").contains(&format!("{val_loss:.4}")), "{stdout}");
    assert!(row("val").ends_with('%') && row("test").ends_with('%'), "{stdout}");
    let test_loss = report["test"]["loss"].as_f64().unwrap();
    assert!(row("test").contains(&format!("{test_loss:.4}")), "{stdout}");
    // --quiet: nothing on stderr, the end table still on stdout.
    let out = lpnc(&["train", &file, "--quiet", "--force", "--out", run.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept epoch 3 of 3"));
}

/// Checks, at the end of each epoch, that report.json already holds it.
struct ReportWatcher {
    dir: PathBuf,
    seen: Vec<usize>,
}

impl lpn::train::Observer for ReportWatcher {
    fn event(&mut self, event: &lpn::train::Event<'_>) {
        if let lpn::train::Event::EpochDone { report: epoch, .. } = event {
            // The file is written right after this event: look at it at the next one.
            self.seen.push(epoch.epoch);
        }
        if let lpn::train::Event::EpochStarted { epoch, .. } = event
            && *epoch > 1
        {
            let r = report(&self.dir);
            assert_eq!(r["epochs"].as_array().unwrap().len(), epoch - 1, "report.json lags behind the run");
            assert!(r["kept_epoch"].is_null() && r["stopped"].is_null() && r["test"].is_null(), "{r}");
            assert_eq!(r["constraints"].as_array().unwrap().len(), 1);
        }
    }
}

#[test]
fn report_json_is_written_after_every_epoch() {
    let dir = out_dir("report-each-epoch");
    let mut watcher = ReportWatcher { dir: dir.clone(), seen: Vec::new() };
    let report = lpn::train::train_observed(&program(WAVES), &lpn::train::Options::new(&dir), &mut watcher).unwrap();
    assert_eq!(watcher.seen, vec![1, 2, 3]);
    let r = self::report(&dir);
    assert_eq!(r["kept_epoch"], 3);
    assert_eq!(r["stopped"], "epochs");
    assert_eq!(r["test"]["loss"].as_f64(), report.test.map(|t| t.loss));
}

#[test]
fn the_observer_sees_the_run_in_order() {
    let source = "model staged {
  input [1, 32]
  conv(out=2, k=9) @lowpass(cutoff=0.4, mode=penalty, weight=0.1)
  relu
  conv(out=1, k=5)
}
data sines(n=20)
train {
  batch = 10
  phase warm {
    epochs = 1
    conv1 @freeze
  }
  phase rest {
    epochs = 1
  }
}
";
    let dir = out_dir("observer");
    let mut recorder = lpn::train::Recorder::default();
    lpn::train::train_observed(&program(source), &lpn::train::Options::new(&dir), &mut recorder).unwrap();
    // 16 training examples after the validation split: 2 steps of 10 (and 6).
    let want = [
        "started staged epochs=2 resumed_at=None",
        "phase warm 1",
        "epoch started 1 done=0",
        "step 1.1 figures=1",
        "step 1.2 figures=1",
        "epoch done 1 best=Some(1)",
        "phase rest 1",
        "epoch started 2 done=0",
        "step 2.1 figures=1",
        "step 2.2 figures=1",
    ];
    assert_eq!(&recorder.lines[..want.len()], &want[..]);
    assert!(recorder.lines[want.len()].starts_with("epoch done 2"), "{:?}", recorder.lines);
    assert_eq!(recorder.lines.len(), want.len() + 1);

    // Resumed after its first step: the event says where.
    let dir = out_dir("observer-resumed");
    let stop = Arc::new(AtomicBool::new(true));
    let opts = lpn::train::Options { stop: Some(stop.clone()), ..lpn::train::Options::new(&dir) };
    let mut recorder = lpn::train::Recorder::default();
    let e = lpn::train::train_observed(&program(source), &opts, &mut recorder).unwrap_err();
    assert!(matches!(e, lpn::train::TrainError::Interrupted { .. }), "{e}");
    assert_eq!(recorder.lines.last().unwrap(), "interrupted");
    stop.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut recorder = lpn::train::Recorder::default();
    lpn::train::train_observed(&program(source), &lpn::train::Options { resume: true, ..opts }, &mut recorder).unwrap();
    assert_eq!(recorder.lines[0], "started staged epochs=2 resumed_at=Some((1, 2))");
    assert_eq!(recorder.lines[1], "epoch started 1 done=1");
}

#[test]
fn a_folder_that_holds_a_run_is_refused_and_force_replaces_the_run_whole() {
    let work = out_dir("refuse");
    let waves = write(&work, "waves.lpn", WAVES);
    let other = write(&work, "other.lpn", OTHER);
    let run = work.join("run");
    let run_s = run.to_str().unwrap();
    assert!(lpnc(&["train", &waves, "--quiet", "--out", run_s]).status.success());
    let weights = std::fs::read(run.join("model.safetensors")).unwrap();
    // Again, or another model, into the same folder: refused, nothing touched.
    for file in [&waves, &other] {
        let out = lpnc(&["train", file, "--quiet", "--out", run_s]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("already holds a run") && stderr.contains("--resume") && stderr.contains("--force"), "{stderr}");
        assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), weights);
        assert_eq!(report(&run)["model"], "waves");
    }
    // --force: the other model's run, and nothing of the first one.
    let out = lpnc(&["train", &other, "--force", "--out", run_s]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("removed the earlier run's"));
    assert_eq!(report(&run)["model"], "other");
    let ck = lpn::train::checkpoint::load(&run, &candle_core::Device::Cpu).unwrap();
    assert_eq!(ck.state.model, "other");
}

#[test]
fn force_leaves_nothing_of_the_old_run_beside_an_interrupted_new_one() {
    let dir = out_dir("force-interrupted");
    lpn::train::train(&program(WAVES), &lpn::train::Options::new(&dir)).unwrap();
    // Another model into the folder, stopped after its first step.
    let opts = lpn::train::Options { force: true, stop: Some(Arc::new(AtomicBool::new(true))), ..lpn::train::Options::new(&dir) };
    let e = lpn::train::train(&program(OTHER), &opts).unwrap_err();
    assert!(matches!(e, lpn::train::TrainError::Interrupted { .. }), "{e}");
    // What is there is the new run's: its weights and checkpoint, no report
    // yet (no epoch finished), and nothing of the first model's.
    assert!(!dir.join("report.json").exists(), "the old run's report.json is left beside the new run");
    assert_eq!(lpn::train::checkpoint::load(&dir, &candle_core::Device::Cpu).unwrap().state.model, "other");
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(weights["conv1.weight"].dims(), &[2, 1, 3]);
}

#[test]
fn a_second_run_into_a_folder_in_use_is_told_which_process_holds_it() {
    let work = out_dir("locked");
    let file = write(&work, "long.lpn", LONG);
    let run = work.join("run");
    let run_s = run.to_str().unwrap();
    let mut first =
        common::lpnc().args(["train", &file, "--quiet", "--out", run_s]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let lock = run.join(lpn::train::run_dir::LOCK_FILE);
    let started = Instant::now();
    while !lock.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the first run never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Even with --force (which would remove the first run's files), and with --resume.
    for how in [&["--force", "--out"][..], &["--resume"][..]] {
        let mut args = vec!["train", &file, "--quiet"];
        args.extend(how);
        args.push(run_s);
        let out = lpnc(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{how:?}: {stderr}");
        assert!(stderr.contains(&format!("in use by another run: process {}", first.id())), "{how:?}: {stderr}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed with -9, it left its lock: the next run takes it over, and says so.
    assert!(lock.exists());
    let out = lpnc(&["train", &file, "--force", "--epochs", "1", "--out", run_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("took over the folder's lock from process {}", first.id())), "{stderr}");
    assert!(!lock.exists(), "a finished run leaves no lock");
    let leftovers: Vec<String> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(leftovers.iter().all(|n| !n.starts_with('.')), "temporary files left: {leftovers:?}");
}
