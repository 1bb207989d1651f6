//! What lpnc reports and reads must be true: weights files are validated
//! against the model before `eval` and `response` use them, `response` says
//! what it leaves out and draws 2-D kernels.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

fn out_dir(name: &str) -> PathBuf {
    let dir = common::fresh_dir("honesty", name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

use common::program;

/// The tensors a freshly initialised network of `source` would save.
fn fresh_weights(source: &str) -> HashMap<String, Tensor> {
    let p = program(source, Path::new("."));
    let net = lpn::model::Net::new(&p.model, 0, DType::F32).unwrap();
    net.tensors().unwrap()
}

fn save(tensors: &HashMap<String, Tensor>, path: &Path) {
    candle_core::safetensors::save(tensors, path).unwrap();
}

fn lpnc(args: &[&str]) -> std::process::Output {
    common::lpnc().args(args).output().unwrap()
}

const CLASSIFIER: &str = "model m {
  input [1, 64]
  conv(out=4, k=9) @lowpass(cutoff=0.3)
  relu
  global_avgpool
  linear(out=3)
}
data {
  train = waveforms(classes=3, n=60)
  test = waveforms(classes=3, n=30)
}
";

#[test]
fn eval_refuses_non_finite_weights() {
    let dir = out_dir("nan");
    let mut w = fresh_weights(CLASSIFIER);
    let good = dir.join("good.safetensors");
    save(&w, &good);
    let p = program(CLASSIFIER, Path::new("."));
    assert!(lpn::train::evaluate_file(&p, &good).is_ok());
    let mut values: Vec<f32> = w["linear1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    values[2] = f32::NAN;
    let shape = w["linear1.weight"].dims().to_vec();
    w.insert("linear1.weight".into(), Tensor::from_vec(values, shape, &candle_core::Device::Cpu).unwrap());
    let bad = dir.join("nan.safetensors");
    save(&w, &bad);
    let err = lpn::train::evaluate_file(&p, &bad).unwrap_err().to_string();
    assert!(err.contains("linear1.weight") && err.contains("NaN"), "{err}");
    // The command line refuses them too, with a non-zero exit and no loss printed.
    let file = dir.join("m.lpn");
    std::fs::write(&file, CLASSIFIER).unwrap();
    let out = lpnc(&["eval", file.to_str().unwrap(), "--weights", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("loss"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("linear1.weight"));
}

#[test]
fn eval_refuses_weights_of_another_model() {
    let dir = out_dir("other");
    // The same layers and one more: every tensor this model needs is there.
    let other = CLASSIFIER.replace("linear(out=3)\n", "linear(out=3)\n  relu\n  linear(out=3)\n");
    let path = dir.join("other.safetensors");
    save(&fresh_weights(&other), &path);
    let p = program(CLASSIFIER, Path::new("."));
    let err = lpn::train::evaluate_file(&p, &path).unwrap_err().to_string();
    assert!(err.contains("`linear2.") && err.contains("another model"), "{err}");
}

#[test]
fn response_refuses_wrong_shapes_missing_tensors_and_nan() {
    let dir = out_dir("response-refuses");
    let p = program(CLASSIFIER, Path::new("."));
    let good = fresh_weights(CLASSIFIER);
    let check = |tensors: &HashMap<String, Tensor>, name: &str, words: &str| {
        let path = dir.join(format!("{name}.safetensors"));
        save(tensors, &path);
        let err = match lpn::train::response::panels(&p, &path) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e,
        };
        assert!(err.contains(words), "{name}: {err}");
    };
    // A head of another shape (the plotted layer itself is fine).
    let mut wrong = good.clone();
    wrong.insert("linear1.weight".into(), Tensor::zeros((5, 4), DType::F32, &candle_core::Device::Cpu).unwrap());
    check(&wrong, "shape", "`linear1.weight` has shape [5, 4]");
    let mut missing = good.clone();
    missing.remove("linear1.bias");
    check(&missing, "missing", "no tensor `linear1.bias`");
    let mut nan = good.clone();
    nan.insert("conv1.weight".into(), (good["conv1.weight"].clone() * f64::NAN).unwrap());
    check(&nan, "nan", "`conv1.weight` holds 36 value(s) that are NaN");
}

#[test]
fn response_says_when_it_caps_the_kernels() {
    let dir = out_dir("cap");
    // 8 outputs × 8 inputs = 64 kernels, more than the 24 drawn.
    let source = "model wide {\n  input [1, 64]\n  conv(out=8, k=3)\n  conv(out=8, k=9) @lowpass(cutoff=0.3)\n  conv(out=1, k=3)\n}\ndata sines(n=16)\n";
    let file = dir.join("wide.lpn");
    std::fs::write(&file, source).unwrap();
    let weights = dir.join("w.safetensors");
    save(&fresh_weights(source), &weights);
    let svg = dir.join("r.svg");
    let out = lpnc(&["response", file.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--out", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("conv2: showing 24 of 64 kernels"), "{stdout}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("showing 24 of 64 kernels"));
}

#[test]
fn response_draws_two_d_kernels_over_the_frequency_plane() {
    let source = std::fs::read_to_string("examples/digits_2d.lpn").unwrap();
    let p = program(&source, Path::new("examples"));
    let dir = out_dir("digits");
    lpn::train::train(&p, &lpn::train::Options { out_dir: dir.clone(), epochs: Some(1), ..Default::default() }).unwrap();
    let weights = dir.join("model.safetensors");
    let panels = lpn::train::response::panels(&p, &weights).unwrap();
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0].shape, vec![3, 3]);
    assert_eq!(panels[0].cap_note().as_deref(), Some("showing 1 of 16 kernels (the one with the largest ρ)"));
    // Kernels come worst first.
    assert!(panels[0].rhos.windows(2).all(|w| w[0] >= w[1]));
    let svg = dir.join("response.svg");
    let out = lpnc(&["response", "examples/digits_2d.lpn", "--weights", weights.to_str().unwrap(), "--out", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("|H(ν1, ν2)|") && text.contains("the passband box"), "no 2-D panel");
    // The heat map: one cell per grid point.
    assert!(text.matches("<rect").count() >= 64 * 64);
}

fn train_quiet(source: &str, name: &str) -> (lpn::train::Report, PathBuf) {
    let p = program(source, Path::new("."));
    let dir = out_dir(name);
    let report = lpn::train::train(&p, &lpn::train::Options { out_dir: dir.clone(), ..Default::default() }).unwrap();
    (report, dir)
}

/// A constrained layer that can only stay at zero: all-zero weights and bias
/// before a ReLU pass no gradient back (and the checker cannot know it).
const DEAD: &str = "model dead {
  input [1, 64]
  conv(out=4, k=9) @init(zeros) @nonneg
  relu
  conv(out=1, k=5)
}
data sines(n=48)
train { epochs = 2 }
";

/// No 6×4 weight meets all three, but deciding it is combinatorial, beyond
/// the checker: orthonormal non-negative columns have disjoint supports, so
/// with 6 rows and 4 columns at least two columns have one non-zero entry,
/// 1, and that row's norm is 1 > 0.9. Alternating projections therefore end
/// with `@orthogonal` not held, whatever the seed.
const ORTHO_NONNEG: &str = "model on {
  input [1, 64]
  conv(out=4, k=9)
  relu
  global_avgpool
  linear(out=6) @orthogonal @nonneg @maxnorm(0.9)
  relu
  linear(out=3)
}
data waveforms(classes=3, n=60)
train { epochs = 2 }
";

#[test]
fn collapse_is_relative_to_the_default_initial_scale() {
    use lpn::train::verdict::collapsed;
    let dev = candle_core::Device::Cpu;
    // [4, 1, 9]: fan_in 9, threshold 1e-6/3.
    let zeros = Tensor::zeros((4, 1, 9), DType::F32, &dev).unwrap();
    assert_eq!(collapsed(&zeros).unwrap(), Some((0.0, 1e-6 / 3.0)));
    let tiny = (Tensor::ones((4, 1, 9), DType::F32, &dev).unwrap() * 3e-7).unwrap();
    assert!(collapsed(&tiny).unwrap().is_some());
    let small_but_alive = (Tensor::ones((4, 1, 9), DType::F32, &dev).unwrap() * 1e-5).unwrap();
    assert_eq!(collapsed(&small_but_alive).unwrap(), None);
    let w = fresh_weights(CLASSIFIER);
    assert_eq!(collapsed(&w["conv1.weight"]).unwrap(), None);
}

#[test]
fn a_collapsed_constrained_layer_is_a_failure_of_the_run() {
    let (report, dir) = train_quiet(DEAD, "dead");
    let verdict = lpn::train::verdict::judge_run(&report, &dir.join("model.safetensors")).unwrap();
    assert!(
        matches!(verdict.failures.as_slice(), [lpn::train::verdict::Failure::Collapsed { tensor, max_abs, .. }] if tensor == "conv1.weight" && *max_abs == 0.0),
        "{verdict:?}"
    );
    // A run whose constraints hold and whose layers live has no failure.
    let (report, dir) = train_quiet(CLASSIFIER, "alive");
    let verdict = lpn::train::verdict::judge_run(&report, &dir.join("model.safetensors")).unwrap();
    assert!(verdict.failures.is_empty(), "{verdict:?}");
}

#[test]
fn lpnc_train_exits_3_when_a_hard_constraint_fails_and_keeps_the_files() {
    let dir = out_dir("cli-hard");
    for (name, source, words) in [
        ("dead", DEAD, "error: layer collapsed: conv1.weight"),
        ("ortho", ORTHO_NONNEG, "error: constraint not held: linear1 `@orthogonal` (mode=project)"),
    ] {
        let file = dir.join(format!("{name}.lpn"));
        std::fs::write(&file, source).unwrap();
        let out_path = dir.join(name);
        let out = lpnc(&["train", file.to_str().unwrap(), "--out", out_path.to_str().unwrap(), "--quiet"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        assert!(stderr.contains(words), "{name}: {stderr}");
        // The table comes first, the files stay.
        assert!(String::from_utf8_lossy(&out.stdout).contains("held"));
        assert!(out_path.join("model.safetensors").is_file() && out_path.join("report.json").is_file());
    }
    // A run that holds exits 0.
    let file = dir.join("fine.lpn");
    std::fs::write(&file, CLASSIFIER).unwrap();
    let out = lpnc(&["train", file.to_str().unwrap(), "--out", dir.join("fine").to_str().unwrap(), "--quiet", "--epochs", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

const PENALTY: &str = "model pen {
  input [1, 128]
  conv(out=4, k=31) INIT @lowpass(cutoff=0.2, mode=penalty, weight=WEIGHT)
  tanh
  conv(out=1, k=9)
}
data sines(n=64, noise=0.3)
train { epochs = 3 }
";

#[test]
fn a_penalty_far_from_tol_gets_advice_and_one_that_holds_does_not() {
    let weak = PENALTY.replace("INIT ", "").replace("WEIGHT", "0.0001");
    let (report, _) = train_quiet(&weak, "weak");
    let advice = lpn::train::verdict::penalty_advice(&report);
    assert_eq!(advice.len(), 1, "{:?}", report.constraints[0]);
    let a = &advice[0];
    assert_eq!((a.layer.as_str(), a.weight, a.tol, a.epochs), ("conv1", 0.0001, 0.01, 3));
    assert!(a.figure > lpn::train::verdict::FAR_FACTOR * a.tol);
    // The weight at which meeting tol costs as much as the task loss.
    let task = report.epochs.last().unwrap().train_loss;
    assert_eq!(a.task_loss, task);
    assert!((a.suggested_weight - (task / 0.01).max(0.001)).abs() < 1e-12);
    // The command line prints it after the table, with the other modes.
    let dir = out_dir("advice-cli");
    let file = dir.join("weak.lpn");
    std::fs::write(&file, &weak).unwrap();
    let out = lpnc(&["train", file.to_str().unwrap(), "--out", dir.join("run").to_str().unwrap(), "--quiet"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let note = stdout.find("note: conv1 `@lowpass` (mode=penalty, weight=0.0001)").expect(&stdout);
    assert!(note > stdout.find("held").unwrap());
    assert!(stdout.contains("raise the weight to about") && stdout.contains("mode=lagrangian") && stdout.contains("mode=project"));

    // Started from a designed low-pass and kept there by a real weight: no advice.
    let held = PENALTY.replace("INIT", "@init(lowpass, cutoff=0.2)").replace("WEIGHT", "1.0");
    let (report, _) = train_quiet(&held, "held");
    assert!(report.constraints[0].satisfied, "{:?}", report.constraints[0]);
    assert!(lpn::train::verdict::penalty_advice(&report).is_empty());
}

#[test]
fn the_highpass_and_lagrangian_examples_hold_their_constraints() {
    for (file, mode) in [("ecg_highpass_residual.lpn", "project"), ("ecg_lagrangian.lpn", "lagrangian")] {
        let source = std::fs::read_to_string(format!("examples/{file}")).unwrap();
        assert!(source.contains(&format!("mode={mode}")));
        let p = program(&source, Path::new("examples"));
        let dir = out_dir(file);
        let report = lpn::train::train(&p, &lpn::train::Options { out_dir: dir, ..Default::default() }).unwrap();
        for c in &report.constraints {
            assert!(c.satisfied, "{file}: {} @{} not held: {c:?}", c.layer, c.kind);
        }
        // Both denoise: the validation MSE ends below the added noise's variance (0.15²).
        let val = report.epochs.last().unwrap().val_loss.unwrap();
        assert!(val < 0.0225, "{file}: val MSE {val}");
    }
}
