//! Checkpoints and resume: a run stopped anywhere — by a request after any
//! step, by Ctrl-C, or by `kill -9` at a random moment — continues from its
//! last checkpoint to exactly the weights of the run that was never stopped.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

fn out_dir(name: &str) -> PathBuf {
    common::fresh_dir("ckpt", name)
}

fn program(source: &str) -> lpn::language::ir::Program {
    common::program(source, Path::new("."))
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// The tensors' bytes of a run's weights, without the header, whose metadata
/// holds the .lpn text (which a comment changes).
fn tensor_bytes(dir: &Path) -> Vec<u8> {
    let bytes = weights(dir);
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

/// Every kind of state a checkpoint must carry: shuffled data order, dropout
/// masks, batch-norm statistics, Adam moments, a lagrangian multiplier, a
/// reparametrized layer and a projected one, a penalty, and a phase change
/// with its own optimizer in the middle of the run.
const STATEFUL: &str = "model stateful {
  input [1, 64]
  conv(out=4, k=9) @lowpass(cutoff=0.3, mode=lagrangian, tol=1e-3)
  batchnorm
  relu
  dropout(0.2)
  conv(out=4, k=9) @lowpass(cutoff=0.3, mode=reparam)
  relu
  conv(out=1, k=9) @nonneg(mode=project)
}
data sines(n=40, noise=0.2)
train {
  batch = 16
  optimizer = adamw(lr=3e-3, weight_decay=1e-2)
  phase first {
    epochs = 2
  }
  phase second {
    epochs = 2
    optimizer = sgd(lr=1e-2, momentum=0.9)
    conv1 @lowpass(cutoff=0.3, mode=penalty, weight=0.5)
  }
}
";

fn uninterrupted(source: &str, name: &str) -> (lpn::train::Report, PathBuf) {
    let dir = out_dir(name);
    let report = lpn::train::train(&program(source), &lpn::train::Options { ..lpn::train::Options::new(&dir) }).unwrap();
    (report, dir)
}

#[test]
fn stopping_after_every_single_step_and_resuming_gives_the_same_weights() {
    let (reference, reference_dir) = uninterrupted(STATEFUL, "every-step-reference");
    let p = program(STATEFUL);
    let dir = out_dir("every-step");
    let (report, runs) = common::train_stopping_after_every_step(&p, &dir);
    // 40 examples in batches of 16: 3 steps per epoch, 4 epochs.
    assert_eq!(runs, 12, "one run per step");
    assert_eq!(weights(&dir), weights(&reference_dir), "resumed weights differ from the uninterrupted run's");
    let losses = |r: &lpn::train::Report| r.epochs.iter().map(|e| (e.train_loss, e.val_loss, e.phase.clone())).collect::<Vec<_>>();
    assert_eq!(losses(&report), losses(&reference));
    let multipliers = |r: &lpn::train::Report| r.constraints.iter().map(|c| c.multiplier).collect::<Vec<_>>();
    assert_eq!(multipliers(&report), multipliers(&reference));
}

/// Adam's step counts differ between parameters when a layer is frozen in a
/// phase and the optimizer carries on: a resumed run must restore each
/// parameter's own count (by name), or its bias correction and weights drift.
const STAGED_ADAM: &str = "model staged_adam {
  input [1, 32]
  conv(out=2, k=5)
  tanh
  conv(out=1, k=5)
}
data sines(n=24)
train {
  batch = 8
  optimizer = adam(lr=1e-2)
  phase warmup {
    epochs = 1
    conv1 @freeze
  }
  phase finetune {
    epochs = 2
  }
}
";

#[test]
fn resuming_a_staged_run_keeps_each_parameters_adam_step_count() {
    let (_, reference_dir) = uninterrupted(STAGED_ADAM, "staged-adam-reference");
    let p = program(STAGED_ADAM);
    let dir = out_dir("staged-adam");
    let stop = Arc::new(AtomicBool::new(true));
    let mut runs = 0;
    let mut counts_differed = false;
    loop {
        let opts = lpn::train::Options { resume: runs > 0, stop: Some(stop.clone()), ..lpn::train::Options::new(&dir) };
        runs += 1;
        match lpn::train::train(&p, &opts) {
            Ok(_) => break,
            Err(lpn::train::TrainError::Interrupted { .. }) => {}
            Err(e) => panic!("run {runs}: {e}"),
        }
        assert!(runs < 100, "the run never finished");
        // Inside the fine-tuning phase conv1 has fewer steps than conv2.
        let ck = lpn::train::checkpoint::load(&dir, &candle_core::Device::Cpu).unwrap();
        let steps = &ck.state.optimizer_steps;
        counts_differed |= steps["conv1.weight"] > 0 && steps["conv1.weight"] < steps["conv2.weight"];
    }
    assert!(counts_differed, "no checkpoint with conv1 behind conv2");
    assert_eq!(weights(&dir), weights(&reference_dir), "resumed weights differ from the uninterrupted run's");
}

#[test]
fn a_checkpoint_holds_the_training_state() {
    let (_, dir) = uninterrupted(STATEFUL, "contents");
    let ck = lpn::train::checkpoint::load(&dir, &candle_core::Device::Cpu).unwrap();
    assert_eq!(ck.state.epochs_done, 4);
    assert_eq!(ck.state.steps_done, 0);
    assert_eq!(ck.state.reports.len(), 4);
    assert_eq!(ck.state.multipliers.len(), 3);
    let names: Vec<&String> = ck.tensors.keys().collect();
    for want in ["param/conv1.weight", "param/conv2.weight", "stats/batchnorm1.running_mean", "optimizer/first/conv1.weight"] {
        assert!(ck.tensors.contains_key(want), "{want} missing from {names:?}");
    }
    // The reparametrized layer stores its coordinates, not its kernel.
    assert_ne!(ck.tensors["param/conv2.weight"].dims(), &[4, 4, 9]);
}

#[test]
fn resume_refuses_what_would_not_continue_the_same_run() {
    let p = program(STATEFUL);
    let err = |opts: lpn::train::Options| lpn::train::train(&p, &opts).expect_err("must fail").to_string();
    // No checkpoint at all.
    let empty = out_dir("refuse-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = err(lpn::train::Options { resume: true, ..lpn::train::Options::new(&empty) });
    assert!(e.contains("no checkpoint in"), "{e}");
    // A damaged file: cut in half, or not a checkpoint at all.
    let (_, dir) = uninterrupted(STATEFUL, "refuse");
    let ck = dir.join(lpn::train::checkpoint::FILE);
    let bytes = std::fs::read(&ck).unwrap();
    std::fs::write(&ck, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(lpn::train::Options { resume: true, ..lpn::train::Options::new(&dir) });
    assert!(e.starts_with("cannot resume:") && (e.contains("not a checkpoint") || e.contains("cannot be read")), "{e}");
    std::fs::copy(dir.join("model.safetensors"), &ck).unwrap();
    let e = err(lpn::train::Options { resume: true, ..lpn::train::Options::new(&dir) });
    assert!(e.contains("not an lpn checkpoint"), "{e}");
    std::fs::write(&ck, &bytes).unwrap();
    // A checkpoint of the previous format (one step count for the whole
    // run): refused with the reason, not misread.
    let old_dir = out_dir("refuse-old-format");
    std::fs::create_dir_all(&old_dir).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut state: serde_json::Value = serde_json::from_str(&header.metadata().as_ref().unwrap()["lpn.checkpoint"]).unwrap();
    state["format"] = 1.into();
    state.as_object_mut().unwrap().remove("optimizer_steps");
    state["optimizer_step"] = 8.into();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).unwrap();
    let metadata = std::collections::HashMap::from([("lpn.checkpoint".to_string(), state.to_string())]);
    std::fs::write(old_dir.join(lpn::train::checkpoint::FILE), safetensors::serialize(tensors, Some(metadata)).unwrap()).unwrap();
    let e = err(lpn::train::Options { resume: true, ..lpn::train::Options::new(&old_dir) });
    assert!(e.contains("written in checkpoint format 1") && e.contains("without --resume"), "{e}");
    // Another seed.
    let e = err(lpn::train::Options { resume: true, seed: Some(7), ..lpn::train::Options::new(&dir) });
    assert!(e.contains("seed"), "{e}");
    // Another program: the model, the data set-up, the training set-up.
    for (from, to, says) in [
        ("conv(out=1, k=9)", "conv(out=1, k=7)", "the model section changed"),
        ("sines(n=40, noise=0.2)", "sines(n=40, noise=0.3)", "the data section changed"),
        ("batch = 16", "batch = 8", "the train section changed"),
    ] {
        assert!(STATEFUL.contains(from));
        let changed = program(&STATEFUL.replace(from, to));
        let e = lpn::train::train(&changed, &lpn::train::Options { resume: true, ..lpn::train::Options::new(&dir) })
            .expect_err("must refuse")
            .to_string();
        assert!(e.contains(says), "{from} → {to}: {e}");
    }
}

/// A model whose run has many steps and checkpoints, so that kills land at
/// many different moments: during steps, during checkpoint writes, between
/// epochs.
const KILLABLE: &str = "model killable {
  input [1, 256]
  conv(out=8, k=15) @lowpass(cutoff=0.25, mode=project)
  relu
  dropout(0.1)
  conv(out=8, k=15)
  relu
  conv(out=1, k=15) @lowpass(cutoff=0.3, mode=lagrangian, tol=1e-3)
}
data sines(n=320, noise=0.3)
train {
  epochs = 16
  batch = 8
}
";

fn lpnc(args: &[&str]) -> Command {
    let mut c = common::lpnc();
    c.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

/// SplitMix64, for kill delays (fractions of an uninterrupted run's time)
/// that differ between runs of the suite but are printed, so a failure can be
/// replayed with LPN_KILL_SEED.
fn delays(seed: u64, n: usize, whole_run: Duration) -> Vec<Duration> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            whole_run.mul_f64(0.05 + 0.9 * ((z ^ (z >> 31)) % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// `lpnc train` arguments that resume the run in `run` if it has a
/// checkpoint, else start it there (replacing what a run killed before its
/// first checkpoint left: its weights may be written already).
fn continue_or_start<'a>(file: &'a str, run: &'a Path) -> Vec<&'a str> {
    let run_s = run.to_str().unwrap();
    if run.join(lpn::train::checkpoint::FILE).exists() {
        vec!["train", file, "--quiet", "--resume", run_s]
    } else {
        vec!["train", file, "--quiet", "--force", "--out", run_s]
    }
}

#[test]
fn kill_9_at_random_moments_then_resume_gives_the_same_weights() {
    let work = out_dir("kill9");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("killable.lpn");
    std::fs::write(&file, KILLABLE).unwrap();
    let file = file.to_str().unwrap();
    let reference = work.join("reference");
    let started = Instant::now();
    let status = lpnc(&["train", file, "--quiet", "--out", reference.to_str().unwrap()]).status().unwrap();
    assert!(status.success());
    let whole_run = started.elapsed();

    let seed = std::env::var("LPN_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("kill delays from LPN_KILL_SEED={seed}");
    let run = work.join("run");
    // Kills land at random fractions of the reference run's time. A run that
    // finishes before its kill (the machine got faster than when the
    // reference was timed, say with other tests running then) starts the
    // sequence over with delays halved, so the run that is finished at the
    // end has been killed several times.
    let (mut kills, mut total_kills, mut scale) = (0, 0, 1.0);
    for delay in delays(seed, 40, whole_run) {
        if kills == 4 {
            break;
        }
        let delay = delay.mul_f64(scale);
        let mut child = lpnc(&continue_or_start(file, &run)).spawn().unwrap();
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL: no handler runs.
            kills += 1;
            total_kills += 1;
        }
        let status = child.wait().unwrap();
        // Whatever the moment, the checkpoint on disk is a whole one.
        if run.join(lpn::train::checkpoint::FILE).exists() {
            let ck = lpn::train::checkpoint::load(&run, &candle_core::Device::Cpu);
            assert!(ck.is_ok(), "after a kill at {delay:?}: {}", ck.err().unwrap());
            let w = candle_core::safetensors::load(run.join("model.safetensors"), &candle_core::Device::Cpu);
            assert!(w.is_ok(), "weights unreadable after a kill at {delay:?}");
        }
        if !killed {
            assert!(status.success(), "a run that was not killed failed");
            std::fs::remove_dir_all(&run).unwrap();
            kills = 0;
            scale *= 0.5;
        }
    }
    assert!(kills > 0, "no run was killed ({total_kills} kills in all; LPN_KILL_SEED={seed})");
    // Finish the run however far it got.
    let out = lpnc(&continue_or_start(file, &run)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(weights(&run), weights(&reference), "after {kills} kills (LPN_KILL_SEED={seed}) the weights differ");
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_a_checkpoint_and_says_how_to_resume() {
    let work = out_dir("sigint");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("killable.lpn");
    std::fs::write(&file, KILLABLE).unwrap();
    let file = file.to_str().unwrap();
    let reference = work.join("reference");
    assert!(lpnc(&["train", file, "--quiet", "--out", reference.to_str().unwrap()]).status().unwrap().success());
    let run = work.join("run");
    let run_s = run.to_str().unwrap();
    for signal in ["-INT", "-TERM"] {
        let _ = std::fs::remove_dir_all(&run);
        let child = lpnc(&["train", file, "--quiet", "--out", run_s]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            continue; // The run finished before the signal arrived: nothing to resume.
        }
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("checkpoint saved in") && stderr.contains(&format!("--resume {run_s}")), "{signal}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let out = lpnc(&["train", file, "--quiet", "--resume", run_s]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(weights(&run), weights(&reference), "{signal}");
    }
}

/// A small classifier on a data file the test writes.
const FROM_FILE: &str = "model from_file {
  input [1, 8]
  conv(out=4, k=3)
  relu
  global_avgpool
  linear(out=2)
}
data ucr(\"rows.csv\")
train {
  epochs = 2
  batch = 8
}
";

/// 24 rows of a UCR-style CSV: label, then 8 values.
fn rows_csv() -> String {
    (0..24)
        .map(|i| {
            let label = 1 + i % 2;
            let values: Vec<String> = (0..8).map(|j| format!("{:.3}", ((i * 8 + j) as f64 * 0.37).sin() + label as f64 * 0.5)).collect();
            format!("{label},{}\n", values.join(","))
        })
        .collect()
}

#[test]
fn resume_takes_a_comment_only_edit_and_refuses_changed_data_naming_the_file() {
    let work = out_dir("digest");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("from_file.lpn");
    let file_s = file.to_str().unwrap();
    let csv = work.join("rows.csv");
    std::fs::write(&csv, rows_csv()).unwrap();
    std::fs::write(&file, FROM_FILE).unwrap();
    let reference = work.join("reference");
    assert!(lpnc(&["train", file_s, "--quiet", "--out", reference.to_str().unwrap()]).status().unwrap().success());

    let run = work.join("run");
    let run_s = run.to_str().unwrap();
    assert!(lpnc(&["train", file_s, "--quiet", "--epochs", "1", "--out", run_s]).status().unwrap().success());
    // Comments, blank lines and another layout: the same program.
    let edited = format!("// a note added after the first epoch\n\n{}", FROM_FILE.replace("  relu\n", "  relu   // rectifier\n\n"));
    std::fs::write(&file, edited).unwrap();
    // The data file's bytes changed: refused, naming the file.
    std::fs::write(&csv, rows_csv().replacen("0.", "0.9", 1)).unwrap();
    let out = lpnc(&["train", file_s, "--quiet", "--epochs", "2", "--resume", run_s]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("the training data file {} changed", csv.display())), "{stderr}");
    assert!(!stderr.contains("section changed"), "only the data file changed: {stderr}");
    // The data restored, the comment edit stays: resumed, to the same weights.
    std::fs::write(&csv, rows_csv()).unwrap();
    let out = lpnc(&["train", file_s, "--quiet", "--epochs", "2", "--resume", run_s]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(tensor_bytes(&run), tensor_bytes(&reference), "a comment-only edit changed the run");
    let embedded = lpn::train::provenance::Provenance::read(&run.join("model.safetensors")).unwrap().unwrap().source.unwrap();
    assert_eq!(embedded.text, std::fs::read_to_string(&file).unwrap(), "the weights carry the source they were resumed with");
}

/// Steps long enough (a wide kernel on long signals, large batches) for a
/// second signal to arrive while one is running.
const SLOW_STEPS: &str = "model slow {
  input [1, 4096]
  conv(out=32, k=63)
  relu
  conv(out=1, k=63)
}
data sines(n=320)
train {
  epochs = 1
  batch = 128
}
";

#[cfg(unix)]
#[test]
fn two_signals_at_once_are_one_request_a_checkpoint_is_saved() {
    // `timeout -s INT`, a terminal's Ctrl-C and batch schedulers signal the
    // whole process group, and wrappers may forward the signal too: two can
    // arrive within a moment, while a step is running. That is one request
    // to stop, not "quit now".
    let work = out_dir("two-signals");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("slow.lpn");
    std::fs::write(&file, SLOW_STEPS).unwrap();
    let file = file.to_str().unwrap();
    let reference = work.join("reference");
    assert!(lpnc(&["train", file, "--quiet", "--out", reference.to_str().unwrap()]).status().unwrap().success());
    let run = work.join("run");
    let run_s = run.to_str().unwrap();
    let child = lpnc(&["train", file, "--quiet", "--out", run_s]).spawn().unwrap();
    // The lock is taken before the data is made and the first step runs.
    let started = Instant::now();
    while !run.join(lpn::train::run_dir::LOCK_FILE).exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the run never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    Command::new("sh").args(["-c", &format!("kill -INT {pid}; sleep 0.1; kill -INT {pid} 2>/dev/null")]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("checkpoint saved in") && !stderr.contains("without saving"), "{stderr}");
    let out = lpnc(&["train", file, "--quiet", "--resume", run_s]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(weights(&run), weights(&reference));
}
