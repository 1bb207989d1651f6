//! `lpnc train` writes metrics.csv in the run folder, one row per epoch, and
//! a resumed run leaves exactly one row per epoch: those its checkpoint holds
//! kept, any written after the checkpoint dropped and run again.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::Path;

/// Two phases, the first with a warm-up into a cosine, the second under a
/// plateau, and a constraint whose measure gets a column.
const SCHEDULED: &str = "model scheduled {
  input [1, 64]
  conv(out=4, k=9) @lowpass(cutoff=0.3, mode=penalty, weight=0.1)
  relu
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

fn train(args: &[&str]) {
    let out = common::lpnc().args(["train", "--quiet"]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn metrics(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("metrics.csv")).unwrap()
}

#[test]
fn a_resumed_run_has_each_epoch_once_with_the_uninterrupted_runs_figures() {
    let work = common::fresh_dir("metrics", "resume");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("scheduled.lpn");
    std::fs::write(&file, SCHEDULED).unwrap();
    let file = file.to_str().unwrap();
    let straight = work.join("straight");
    train(&[file, "--out", straight.to_str().unwrap()]);
    let expected = metrics(&straight);
    let lines: Vec<&str> = expected.lines().collect();
    assert_eq!(lines[0], "epoch,phase,lr,train_loss,val_loss,val_accuracy,conv1.lowpass.rho");
    assert_eq!(lines.len(), 9, "{expected}");
    assert!(lines[1].starts_with("1,warm,0.00666666666666"), "{}", lines[1]);

    // The first phase alone, then a row as a run killed after a later epoch
    // (past its last checkpoint) leaves it; the resumed run runs epoch 4 again.
    let resumed = work.join("resumed");
    train(&[file, "--out", resumed.to_str().unwrap(), "--epochs", "3"]);
    assert_eq!(metrics(&resumed).lines().count(), 4);
    let mut partial = metrics(&resumed);
    partial.push_str("4,rest,0.01,9,9,,9\n");
    std::fs::write(resumed.join("metrics.csv"), partial).unwrap();
    train(&[file, "--resume", resumed.to_str().unwrap(), "--epochs", "8"]);
    assert_eq!(metrics(&resumed), expected);
}

/// The records of a TensorFlow event file (length, CRC, bytes, CRC each),
/// as raw event messages; panics on a truncated record.
fn event_records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
        out.push(&rest[12..12 + len]);
        rest = &rest[16 + len..];
    }
    out
}

/// TensorBoard's event file beside metrics.csv: a version record and one
/// record per row, each naming its figures by the CSV's columns; after a
/// resume it holds exactly the resumed metrics.csv's rows again.
#[test]
fn the_tensorboard_file_has_a_record_per_row() {
    let work = common::fresh_dir("metrics", "tensorboard");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("scheduled.lpn");
    std::fs::write(&file, SCHEDULED).unwrap();
    let file = file.to_str().unwrap();
    let run = work.join("run");
    train(&[file, "--out", run.to_str().unwrap(), "--epochs", "3"]);
    train(&[file, "--resume", run.to_str().unwrap(), "--epochs", "5"]);
    let rows = metrics(&run).lines().count() - 1;
    assert_eq!(rows, 5);
    let bytes = std::fs::read(run.join("events.out.tfevents.lpn")).unwrap();
    let records = event_records(&bytes);
    assert_eq!(records.len(), 1 + rows);
    let contains = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains(records[0], "brain.Event:2"));
    for r in &records[1..] {
        assert!(contains(r, "train_loss") && contains(r, "conv1.lowpass.rho") && contains(r, "lr"));
    }
}

/// An event file that cannot be written (here a folder in its place) is a
/// warning, and metrics.csv still gets every row.
#[test]
fn an_unwritable_tensorboard_file_leaves_metrics_csv_whole() {
    let work = common::fresh_dir("metrics", "tensorboard_blocked");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("scheduled.lpn");
    std::fs::write(&file, SCHEDULED).unwrap();
    let run = work.join("run");
    std::fs::create_dir_all(run.join("events.out.tfevents.lpn")).unwrap();
    let out = common::lpnc()
        .args(["train", "--quiet", "--force", file.to_str().unwrap(), "--out", run.to_str().unwrap(), "--epochs", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not write") && stderr.contains("events.out.tfevents.lpn"), "{stderr}");
    assert_eq!(metrics(&run).lines().count(), 4);
}
