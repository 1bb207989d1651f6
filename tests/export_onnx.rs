//! `lpnc export --format onnx`: every shipped example, and a model with every
//! layer of the language, trained one epoch (so reparametrized, frozen,
//! projected and batch-norm tensors are what training makes them), exported,
//! and run by another runtime (tract) on batches of another size than the
//! training batch; the outputs must match lpn's evaluation pass to 1e-5.
// Trains and runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use lpn::language::ir::Program;
use lpn::model::export::onnx::{ModelProto, OPSET};
use lpn::model::{Net, Pass, ops};
use prost::Message;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, tvec};

/// Largest difference allowed between lpn's output and the ONNX runtime's.
const TOLERANCE: f32 = 1e-5;

/// Batch sizes the exported file runs with: none is a training batch, so
/// the batch axis must be free.
const BATCHES: [usize; 3] = [1, 5, 23];

/// Trains `program` one epoch into a fresh folder; returns the weights file.
fn train_one_epoch(program: &Program, name: &str) -> PathBuf {
    let out = common::fresh_dir("export", name);
    let opts = lpn::train::Options { out_dir: out.clone(), epochs: Some(1), ..Default::default() };
    lpn::train::train(program, &opts).unwrap();
    out.join("model.safetensors")
}

/// Inputs in [−2, 2), the same for every run of the test.
fn inputs(batch: usize, shape: &[usize], seed: u64) -> Vec<f32> {
    let mut rng = lpn::rng::Rng::new(seed);
    let n = batch * shape.iter().product::<usize>();
    (0..n).map(|_| rng.range(-2.0, 2.0) as f32).collect()
}

/// lpn's output in evaluation mode, with the weights loaded as `lpnc eval` loads them.
fn lpn_outputs(program: &Program, weights: &Path, batch: usize, x: &[f32]) -> Vec<f32> {
    let mut net = Net::new(&program.model, 0, ops::TRAIN_DTYPE).unwrap();
    net.load(&lpn::model::params::read(weights, lpn::model::Source::WeightsFile).unwrap()).unwrap();
    let mut shape = vec![batch];
    shape.extend(&program.model.input.0);
    let x = Tensor::from_vec(x.to_vec(), shape, &Device::Cpu).unwrap();
    let y = net.forward(&x, &mut Pass::Eval).unwrap();
    y.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// The exported file's output computed by tract, with the output's shape.
fn tract_outputs(onnx: &[u8], input: &[usize], batch: usize, x: &[f32]) -> (Vec<usize>, Vec<f32>) {
    let model = tract_onnx::onnx().model_for_read(&mut &onnx[..]).unwrap().into_optimized().unwrap().into_runnable().unwrap();
    let mut shape = vec![batch];
    shape.extend(input);
    let x = tract_onnx::prelude::Tensor::from_shape(&shape, x).unwrap();
    let y = model.run(tvec!(x.into())).unwrap();
    let y = y[0].to_plain_array_view::<f32>().unwrap();
    (y.shape().to_vec(), y.iter().copied().collect())
}

/// The file declares opset ≥ 17, and input and output with a named batch axis.
fn check_declaration(onnx: &[u8], program: &Program) {
    let model = ModelProto::decode(onnx).unwrap();
    assert!(model.opset_import.iter().any(|o| o.domain.as_deref().unwrap_or("").is_empty() && o.version >= Some(17)), "{model:?}");
    assert_eq!(OPSET, 17);
    let graph = model.graph.unwrap();
    for (values, name, shape) in [(&graph.input, "input", &program.model.input.0), (&graph.output, "output", &program.model.output.0)] {
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].name.as_deref(), Some(name));
        let dims = &values[0].r#type.as_ref().unwrap().tensor_type.as_ref().unwrap().shape.as_ref().unwrap().dim;
        assert_eq!(dims[0].dim_param.as_deref(), Some("batch"), "{name}");
        let fixed: Vec<usize> = dims[1..].iter().map(|d| d.dim_value.unwrap() as usize).collect();
        assert_eq!(&fixed, shape, "{name}");
    }
}

/// Trains, exports and compares; returns the largest difference seen.
fn export_and_compare(program: &Program, name: &str) -> f32 {
    let weights = train_one_epoch(program, name);
    let onnx = lpn::model::export::onnx_from_weights(&program.model, &weights).unwrap();
    check_declaration(&onnx, program);
    let mut worst = 0f32;
    for (i, batch) in BATCHES.into_iter().enumerate() {
        let x = inputs(batch, &program.model.input.0, 17 + i as u64);
        let want = lpn_outputs(program, &weights, batch, &x);
        let (shape, got) = tract_outputs(&onnx, &program.model.input.0, batch, &x);
        let mut want_shape = vec![batch];
        want_shape.extend(&program.model.output.0);
        assert_eq!(shape, want_shape, "{name}: output shape at batch {batch}");
        let diff = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= TOLERANCE, "{name}: batch {batch}: lpn and tract differ by {diff:e}");
        assert!(want.iter().all(|v| v.is_finite()), "{name}: lpn's outputs are finite");
        let spread = want.iter().fold(f32::MIN, |m, &v| m.max(v)) - want.iter().fold(f32::MAX, |m, &v| m.min(v));
        assert!(spread > 1e-3, "{name}: lpn's outputs barely vary ({spread:e}): a comparison that proves little");
        worst = worst.max(diff);
    }
    eprintln!("{name}: max |lpn − tract| = {worst:e} over batches {BATCHES:?}");
    worst
}

/// The shipped examples, `examples/*.lpn`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir("examples").unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "lpn")).collect();
    files.sort();
    files
}

#[test]
fn every_example_exports_and_runs_the_same_in_tract() {
    let files = example_files();
    assert!(files.len() >= 8, "{files:?}");
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let program = common::program(&source, Path::new("examples"));
        export_and_compare(&program, file.file_stem().unwrap().to_str().unwrap());
    }
}

/// Every 1-D layer, with the geometry PyTorch and ONNX could disagree on:
/// asymmetric `same` padding (even kernel), stride, dilation, groups, padded
/// average pooling (the padding counts), padded max pooling, batch norm after
/// a conv and on features, dropout, residual, repeat.
const EVERY_LAYER_1D: &str = "model every_layer_1d {
  input [1, 64]
  conv(out=4, k=6) @lowpass(cutoff=0.3, transition=0.4, mode=reparam, tol=0.1)
  batchnorm
  leaky_relu(0.1)
  conv(out=6, k=5, stride=2, padding=3, dilation=2, groups=2) @smooth(mode=freeze)
  avgpool(3, stride=2, padding=1)
  silu
  maxpool(3, stride=1, padding=1)
  residual {
    conv(k=3, bias=false) @symmetric(mode=project)
    sigmoid
  }
  repeat 2 {
    conv(k=5) @highpass(cutoff=0.6, transition=0.4, mode=penalty)
    gelu
  }
  dropout(0.3)
  tanh
  global_avgpool
  linear(out=8)
  batchnorm
  relu
  dropout(0.2)
  flatten
  linear(out=3) @maxnorm(max=2, mode=lagrangian)
}
data waveforms(classes=3, n=96)
train {
  batch = 16
  seed = 4
}
";

/// The 2-D layers: `same` and explicit padding, a non-square kernel with
/// stride, dilation and groups, the fused conv-ReLU-max-pool block, padded
/// average pooling, global max pooling.
const EVERY_LAYER_2D: &str = "model every_layer_2d {
  input [1, 8, 8]
  conv(out=4, k=3) @lowpass(cutoff=0.6, transition=0.4, mode=reparam, tol=0.1)
  batchnorm
  relu
  conv(out=8, k=[3, 2], stride=[2, 1], padding=[1, 0], dilation=[1, 2], groups=2)
  relu
  maxpool(2)
  avgpool([2, 2], stride=1, padding=1)
  global_maxpool
  linear(out=10)
}
data {
  train = ucr(\"data/digits_8x8.csv\")
}
train {
  batch = 64
}
";

#[test]
fn every_layer_of_the_language_exports_and_runs_the_same_in_tract() {
    for (name, source) in [("every_layer_1d", EVERY_LAYER_1D), ("every_layer_2d", EVERY_LAYER_2D)] {
        export_and_compare(&common::program(source, Path::new("examples")), name);
    }
}

/// The two models above use every layer the language has (a new layer
/// fails here until it is added to them, and so exported and compared).
#[test]
fn the_layer_models_cover_every_layer_of_the_language() {
    for def in lpn::language::schema::LAYERS {
        let name = def.schema.name;
        let used = |source: &str| source.lines().any(|line| line.trim_start().starts_with(name));
        assert!(used(EVERY_LAYER_1D) || used(EVERY_LAYER_2D), "layer `{name}` is in no model of tests/export_onnx.rs");
    }
}

/// For `tests/reference/onnx_runtime_check.py` (not run by `cargo test`):
/// with `LPN_ONNX_REFERENCE_DIR` set, writes for every example its exported
/// `NAME.onnx` and `NAME.json` (inputs at batch 5 and lpn's outputs), for
/// onnxruntime to compare.
#[test]
#[ignore = "writes files for tests/reference/onnx_runtime_check.py"]
fn write_onnx_reference_outputs() {
    let dir = PathBuf::from(std::env::var("LPN_ONNX_REFERENCE_DIR").expect("LPN_ONNX_REFERENCE_DIR names the folder to write"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut programs: Vec<(String, Program)> = example_files()
        .into_iter()
        .map(|file| {
            let name = file.file_stem().unwrap().to_str().unwrap().to_string();
            (name, common::program(&std::fs::read_to_string(&file).unwrap(), Path::new("examples")))
        })
        .collect();
    for (name, source) in [("every_layer_1d", EVERY_LAYER_1D), ("every_layer_2d", EVERY_LAYER_2D)] {
        programs.push((name.to_string(), common::program(source, Path::new("examples"))));
    }
    for (name, program) in programs {
        let weights = train_one_epoch(&program, &format!("ref-{name}"));
        std::fs::write(dir.join(format!("{name}.onnx")), lpn::model::export::onnx_from_weights(&program.model, &weights).unwrap()).unwrap();
        let batch = 5;
        let x = inputs(batch, &program.model.input.0, 99);
        let y = lpn_outputs(&program, &weights, batch, &x);
        let shape = |dims: &[usize]| std::iter::once(batch).chain(dims.iter().copied()).collect::<Vec<_>>();
        let json = serde_json::json!({
            "input_shape": shape(&program.model.input.0), "input": x,
            "output_shape": shape(&program.model.output.0), "output": y,
        });
        std::fs::write(dir.join(format!("{name}.json")), json.to_string()).unwrap();
    }
}

/// `lpnc export` end to end: the file written (nothing else left in its
/// folder), loadable and equal to the library's export; weights of another
/// model refused (exit 1); an output that cannot be written (exit 2); the
/// help names the format and what is baked in.
#[test]
fn lpnc_export_writes_the_file_and_refuses_what_does_not_fit() {
    let dir = common::fresh_dir("export", "cli");
    std::fs::create_dir_all(&dir).unwrap();
    let example = Path::new("examples/denoiser.lpn");
    let program = common::program(&std::fs::read_to_string(example).unwrap(), Path::new("examples"));
    let weights = train_one_epoch(&program, "cli-denoiser");
    let out = dir.join("denoiser.onnx");
    let run = common::lpnc()
        .args(["export", "examples/denoiser.lpn", "--weights"])
        .arg(&weights)
        .args(["--format", "onnx", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("opset 17") && stdout.contains("`input` [batch, 1, 1024]"), "{stdout}");
    let written = std::fs::read(&out).unwrap();
    assert_eq!(written, lpn::model::export::onnx_from_weights(&program.model, &weights).unwrap());
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("denoiser.onnx")], "a temporary file was left");

    let other = train_one_epoch(
        &common::program(&std::fs::read_to_string("examples/ecg_denoiser.lpn").unwrap(), Path::new("examples")),
        "cli-other",
    );
    let run = common::lpnc()
        .args(["export", "examples/denoiser.lpn", "--weights"])
        .arg(&other)
        .arg("--out")
        .arg(dir.join("x.onnx"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("does not fit"), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!dir.join("x.onnx").exists());

    // Weights that carry their .lpn source export without the file, to the same bytes.
    let source = lpn::train::provenance::ProgramSource {
        text: std::fs::read_to_string(example).unwrap(),
        dir: std::path::PathBuf::from("examples"),
    };
    let self_describing = common::fresh_dir("export", "cli-embedded");
    let opts = lpn::train::Options { out_dir: self_describing.clone(), epochs: Some(1), source: Some(source), ..Default::default() };
    lpn::train::train(&program, &opts).unwrap();
    let embedded = self_describing.join("model.safetensors");
    let alone = dir.join("alone.onnx");
    let run = common::lpnc().args(["export", "--weights"]).arg(&embedded).arg("--out").arg(&alone).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read(&alone).unwrap(), lpn::model::export::onnx_from_weights(&program.model, &embedded).unwrap());
    std::fs::remove_file(&alone).unwrap();

    let run = common::lpnc()
        .args(["export", "examples/denoiser.lpn", "--weights"])
        .arg(&weights)
        .arg("--out")
        .arg(dir.join("no/such/folder.onnx"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");

    let help = common::lpnc().args(["export", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for words in ["onnx", "opset 17", "`batch`", "reparametrized", "designed filter", "BatchNormalization", "dropout"] {
        assert!(help.contains(words), "`lpnc export --help` lacks {words:?}:\n{help}");
    }
}
