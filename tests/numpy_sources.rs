//! End to end: models trained on NumPy arrays (`npy`, `npz`), from the
//! fixtures of tests/reference/make_npy_train_fixtures.py.
// Trains the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::Path;

fn train(source: &str, name: &str) -> lpn::train::Report {
    let p = common::program(source, Path::new("tests/fixtures/npy_train"));
    let out = common::fresh_dir("numpy", name);
    lpn::train::train(&p, &lpn::train::Options { out_dir: out, ..Default::default() }).unwrap()
}

const CLASSIFIER: &str = "model slow_or_fast {
  input [1, 16]
  conv(out=8, k=5, padding=same)
  relu
  global_avgpool
  linear(out=2)
}
data {
  train = SOURCE
  val = npz(\"train.npz\")
  test = npy(\"cls_x_be.npy\", labels=\"cls_y_be.npy\")
}
train {
  optimizer = adam(lr=1e-2)
  epochs = 30
  batch = 8
  seed = 3
}
";

#[test]
fn a_classifier_learns_from_npy_arrays_and_npz_gives_the_same_run() {
    let npy = train(&CLASSIFIER.replace("SOURCE", "npy(\"cls_x.npy\", labels=\"cls_y.npy\")"), "npy");
    let (first, last) = (npy.epochs.first().unwrap().train_loss, npy.epochs.last().unwrap().train_loss);
    assert!(last < 0.5 * first, "training loss did not fall: {first} → {last}");
    // A slow and a fast sine: told apart on the (same) validation and test data.
    assert!(npy.epochs.last().unwrap().val_accuracy.unwrap() >= 0.9, "{:?}", npy.epochs.last());
    assert!(npy.test.as_ref().unwrap().accuracy.unwrap() >= 0.9, "{:?}", npy.test);
    // The same arrays from an .npz: the same run, bit for bit.
    let npz = train(&CLASSIFIER.replace("SOURCE", "npz(\"train.npz\", x=\"x\", y=\"y\")"), "npz");
    let losses = |r: &lpn::train::Report| r.epochs.iter().map(|e| e.train_loss.to_bits()).collect::<Vec<_>>();
    assert_eq!(losses(&npy), losses(&npz));
}

#[test]
fn a_regression_learns_float_targets_from_npy_arrays() {
    let source = "model smoother {
  input [1, 16]
  conv(out=4, k=5, padding=same)
  tanh
  conv(out=1, k=5, padding=same)
}
data npy(\"reg_x.npy\", labels=\"reg_y.npy\")
train {
  optimizer = adam(lr=1e-2)
  epochs = 20
  batch = 8
  seed = 1
}
";
    let report = train(source, "regression");
    let (first, last) = (report.epochs.first().unwrap().train_loss, report.epochs.last().unwrap().train_loss);
    assert!(last < 0.5 * first, "training loss did not fall: {first} → {last}");
    assert!(report.epochs.last().unwrap().val_accuracy.is_none());
}

#[test]
fn a_regression_learns_targets_shorter_than_its_inputs_from_npy_arrays() {
    // Targets [32, 1, 8]: the clean sines downsampled 2×, for inputs [32, 1, 16].
    let source = "model halver {
  input [1, 16]
  conv(out=4, k=5, padding=same)
  tanh
  conv(out=1, k=2, stride=2)
}
data npy(\"reg_x.npy\", labels=\"reg_y_half.npy\")
train {
  optimizer = adam(lr=1e-2)
  epochs = 40
  batch = 8
  seed = 1
}
";
    let p = common::program(source, Path::new("tests/fixtures/npy_train"));
    assert_eq!(p.data.targets, Some(vec![1, 8]));
    let splits = lpn::data::load(&p.data, &[1, 16]).unwrap();
    let lpn::data::Targets::Regression { values, shape } = &splits.val.targets else { panic!("{:?}", splits.val.targets) };
    assert_eq!(shape, &[1, 8]);
    // The trivial predictor (the validation targets' mean) scores their variance.
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let variance = values.iter().map(|t| (t - mean).powi(2)).sum::<f32>() / values.len() as f32;
    let report = train(source, "regression_half");
    let val = report.epochs.last().unwrap().val_loss.unwrap();
    assert!(val < 0.25 * variance as f64, "validation loss {val} not clearly below the trivial predictor's {variance}");
}

#[test]
fn the_digits_npy_example_trains_on_uint8_images() {
    let source = std::fs::read_to_string("examples/digits_npy.lpn").unwrap();
    let p = common::program(&source, Path::new("examples"));
    assert_eq!(p.data.classes, Some(10));
    let out = common::fresh_dir("numpy", "digits_example");
    let report = lpn::train::train(&p, &lpn::train::Options { out_dir: out, epochs: Some(3), ..Default::default() }).unwrap();
    let (first, last) = (report.epochs.first().unwrap().train_loss, report.epochs.last().unwrap().train_loss);
    assert!(last < first, "training loss did not fall: {first} → {last}");
    assert!(report.epochs.last().unwrap().val_accuracy.unwrap() > 0.5, "{:?}", report.epochs.last());
}

/// `stream = always` reads the inputs from the file a batch at a time
/// (`lpn::data::stream`): with shuffling, a stratified test split and
/// `normalize`, the run is the one that reads the file whole, bit for bit,
/// and stopping it after every step and resuming gives the same weights.
#[test]
fn a_streamed_npy_source_trains_as_the_file_in_memory_and_resumes_bit_identically() {
    let source = |stream: &str| {
        format!(
            "model slow_or_fast {{
  input [1, 16]
  conv(out=4, k=5, padding=same)
  relu
  global_avgpool
  linear(out=2)
}}
data {{
  train = npy(\"cls_x_be.npy\", labels=\"cls_y.npy\")
  val_split = 0.2
  test_split = 0.2
  normalize = zscore
  stream = {stream}
}}
train {{
  optimizer = adam(lr=1e-2)
  epochs = 3
  batch = 8
  seed = 5
}}
"
        )
    };
    let program = |stream: &str| common::program(&source(stream), Path::new("tests/fixtures/npy_train"));
    let streamed = common::fresh_dir("numpy", "streamed");
    let whole = common::fresh_dir("numpy", "whole");
    let run = |stream: &str, out: &Path| lpn::train::train(&program(stream), &lpn::train::Options::new(out)).unwrap();
    let (a, b) = (run("always", &streamed), run("never", &whole));
    let losses =
        |r: &lpn::train::Report| r.epochs.iter().map(|e| (e.train_loss.to_bits(), e.val_loss.map(f64::to_bits))).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.test.as_ref().map(|t| t.loss.to_bits()), b.test.as_ref().map(|t| t.loss.to_bits()));
    let tensors = |dir: &Path| {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    assert_eq!(tensors(&streamed), tensors(&whole));
    let resumed = common::fresh_dir("numpy", "streamed-resumed");
    let (_, runs) = common::train_stopping_after_every_step(&program("always"), &resumed);
    assert!(runs > 3, "{runs} runs");
    assert_eq!(tensors(&resumed), tensors(&streamed), "a resumed streamed run differs from the uninterrupted one");
}
