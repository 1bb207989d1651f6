//! Learning-rate schedules: the lr of every step against PyTorch's schedulers
//! (tests/fixtures/lr_schedules.json, from tests/reference/lr_schedules.py),
//! and a run stopped anywhere inside a schedule that resumes bit for bit.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::Path;

use lpn::train::lr::{InRun, LrPlan};

fn program_with(schedule: &str, monitor: &str, epochs: usize) -> lpn::language::ir::Program {
    let source = format!(
        "model m {{\n  input [1, 32]\n  conv(out=3, k=3)\n  global_avgpool\n}}\ndata waveforms(n=40)\ntrain {{\n  epochs = {epochs}\n  monitor = {monitor}\n  schedule = {schedule}\n}}\n"
    );
    common::program(&source, Path::new("."))
}

#[test]
fn every_schedule_gives_pytorchs_learning_rates_step_by_step() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!("fixtures/lr_schedules.json")).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let schedule = case["schedule"].as_str().unwrap();
        let epochs = case["epochs"].as_u64().unwrap() as usize;
        let steps = case["steps"].as_u64().unwrap() as usize;
        let base = case["base"].as_f64().unwrap();
        let monitor = case["monitor"].as_str().unwrap_or("val_loss");
        let figures: Vec<f64> = case["figures"].as_array().map(|f| f.iter().map(|x| x.as_f64().unwrap()).collect()).unwrap_or_default();
        let expected: Vec<f64> = case["lrs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(expected.len(), epochs * steps);
        let program = program_with(schedule, monitor, epochs);
        let spec = &program.train;
        let mut plan = LrPlan::new(steps, None);
        let in_run = InRun { phase: None, run_epochs: epochs };
        for epoch in 0..epochs {
            for step in 0..steps {
                let lr = plan.lr(spec, in_run, epoch, step, base);
                let want = expected[epoch * steps + step];
                assert!(
                    (lr - want).abs() <= 1e-12 * want.abs().max(1e-300),
                    "{schedule}: epoch {epoch} step {step}: lpn {lr}, PyTorch {want}"
                );
            }
            plan.end_epoch(spec, in_run, epoch, base, figures.get(epoch).copied());
        }
    }
}

/// A run whose schedule changes at every phase: a warm-up into a cosine,
/// then a plateau (patience 0, so it decays often, with state the
/// checkpoint must keep), on shuffled data with Adam.
const SCHEDULED: &str = "model scheduled {
  input [1, 64]
  conv(out=4, k=9)
  relu
  dropout(0.1)
  conv(out=1, k=9)
}
data sines(n=40, noise=0.3)
train {
  batch = 8
  optimizer = adam(lr=1e-2)
  schedule = plateau(patience=0, factor=0.5, threshold=0.5)
  phase warm {
    epochs = 3
    schedule = warmup(steps=6) then cosine(min_lr=1e-4)
  }
  phase rest {
    epochs = 5
  }
}
";

#[test]
fn a_run_stopped_after_every_step_inside_its_schedules_resumes_to_the_same_weights() {
    let p = common::program(SCHEDULED, Path::new("."));
    let reference_dir = common::fresh_dir("lr", "reference");
    let reference = lpn::train::train(&p, &lpn::train::Options::new(&reference_dir)).unwrap();
    let lrs: Vec<f64> = reference.epochs.iter().map(|e| e.lr).collect();
    // The plateau decays at least once in the second phase, so its state matters.
    assert!(lrs[3..].windows(2).any(|w| w[1] < w[0]), "the plateau never decayed: {lrs:?}");
    let dir = common::fresh_dir("lr", "resumed");
    let (report, runs) = common::train_stopping_after_every_step(&p, &dir);
    assert!(runs > 20, "only {runs} runs");
    assert_eq!(report.epochs.iter().map(|e| e.lr).collect::<Vec<_>>(), lrs);
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert!(weights(&dir) == weights(&reference_dir), "resumed weights differ from the uninterrupted run's");
}
