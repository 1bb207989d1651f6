//! `lpnc train FILE --set KEY=VALUE`: overrides take effect as if written in
//! the file, are recorded in report.json, and a wrong one is a diagnostic
//! shown in the override itself.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

const FILE: &str = "model m {
  input [1, 64]
  conv(out=4, k=9)
  relu
  conv(out=1, k=9)
}
data sines(n=40, noise=0.3)
train {
  epochs = 5
  batch = 8
}
";

#[test]
fn overrides_change_the_run_and_are_recorded() {
    let work = common::fresh_dir("set", "ok");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("m.lpn");
    std::fs::write(&file, FILE).unwrap();
    let run = work.join("run");
    let sets = ["train.epochs=2", "data.val_split=0", "train.schedule=warmup(steps=5, start_factor=0.5) then step(every=1, gamma=0.5)"];
    let mut cmd = common::lpnc();
    cmd.args(["train", "--quiet", file.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["overrides"], serde_json::json!(sets));
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2, "train.epochs=2");
    assert!(epochs.iter().all(|e| e["val_loss"].is_null()), "data.val_split=0 leaves no validation data");
    // 40 examples in batches of 8: 5 steps per epoch, all of the first in the
    // warm-up; the step schedule's first epoch is the second, at the base lr.
    let lrs: Vec<f64> = epochs.iter().map(|e| e["lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs, vec![1e-3 * (0.5 + 0.5 * 4.0 / 5.0), 1e-3]);
}

#[test]
fn a_misspelt_override_is_a_diagnostic_in_the_override() {
    let work = common::fresh_dir("set", "bad");
    std::fs::create_dir_all(&work).unwrap();
    let file = work.join("m.lpn");
    std::fs::write(&file, FILE).unwrap();
    let out = common::lpnc()
        .args(["train", file.to_str().unwrap(), "--out", work.join("run").to_str().unwrap(), "--set", "train.epochz=50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[--set train.epochz=50:1:7]"), "{stderr}");
    assert!(stderr.contains("did you mean `epochs`?"), "{stderr}");
    assert!(!work.join("run").join("report.json").exists());
}
