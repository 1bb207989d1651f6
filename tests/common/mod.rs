//! What several integration tests share: a fresh output folder, a checked
//! program, and the `lpnc` binary as they start it.
//! With `LPN_TEST_RUNNER` set (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`
//! in `tests/cross_aarch64.sh`, where the binary is built for another CPU) it
//! runs through that command, as cargo runs the test binaries themselves;
//! otherwise directly.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// An empty-to-be folder for one test's files (`lpn-PREFIX-PID-NAME` in the
/// temporary folder), anything left there by an earlier run removed.
pub fn fresh_dir(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lpn-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The checked program of `source` (data paths from `base`); panics with
/// the messages if it has errors.
pub fn program(source: &str, base: &Path) -> lpn::language::ir::Program {
    let (_, checked) = lpn::check_source(source, base);
    assert!(!checked.has_errors(), "{:#?}", checked.problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>());
    checked.program.unwrap()
}

const LPNC: &str = env!("CARGO_BIN_EXE_lpnc");

fn runner() -> Option<String> {
    std::env::var("LPN_TEST_RUNNER").ok().filter(|r| !r.trim().is_empty())
}

/// A command that starts `lpnc`.
pub fn lpnc() -> Command {
    match runner() {
        Some(runner) => {
            let mut words = runner.split_whitespace();
            let mut command = Command::new(words.next().expect("a runner has a program"));
            command.args(words).arg(LPNC);
            command
        }
        None => Command::new(LPNC),
    }
}

/// `lpnc` as the start of a shell command line.
pub fn lpnc_shell() -> String {
    match runner() {
        Some(runner) => format!("{runner} {LPNC}"),
        None => LPNC.to_string(),
    }
}

/// Trains `program` into `dir` stopping after every single step and resuming
/// (a stop requested before a step is honoured after it: each run does one
/// step, checkpoints in the middle or at the end of an epoch, and exits);
/// the final report and the number of runs.
#[cfg(feature = "train")]
pub fn train_stopping_after_every_step(program: &lpn::language::ir::Program, dir: &Path) -> (lpn::train::Report, usize) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut runs = 0;
    loop {
        let opts = lpn::train::Options { resume: runs > 0, stop: Some(stop.clone()), ..lpn::train::Options::new(dir) };
        runs += 1;
        match lpn::train::train(program, &opts) {
            Ok(report) => return (report, runs),
            Err(lpn::train::TrainError::Interrupted { .. }) => {}
            Err(e) => panic!("run {runs}: {e}"),
        }
        assert!(runs < 100, "the run never finished");
    }
}
