//! The public API (`lpn::compile`, `lpn::Model`) as a program using the
//! crate sees it, and the ops path other devices take (Candle's own ops),
//! forced on the CPU and compared with lpn's kernels on every shipped
//! example's network.
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, ModuleT, Tensor};
use lpn::model::ops::with_candle_ops;
use lpn::model::{Net, Pass};
use lpn::rng::Rng;
use lpn::{CompileOptions, Model, Severity};

const SMALL: &str = "model m {\n  input [1, 32]\n  conv(out=4, k=15) @lowpass(cutoff=0.3, mode=project)\n  batchnorm\n  relu\n  dropout(p=0.5)\n  conv(out=1, k=5)\n}\ndata sines(n=8)\n";

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "lpn"))
        .collect();
    files.sort();
    files
}

fn compile_file(path: &Path) -> lpn::Program {
    let source = std::fs::read_to_string(path).unwrap();
    lpn::compile(&source, &CompileOptions::for_file(path)).unwrap_or_else(|d| panic!("{d}"))
}

/// A batch of `batch` examples of the model's input, normal values from `seed`.
fn batch_for(model: &Model, batch: usize, seed: u64) -> Tensor {
    let mut shape = vec![batch];
    shape.extend(model.input_shape());
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// The largest difference between `a` and `b` over the scale of `a` (at least 1).
fn relative_gap(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (values(a), values(b));
    let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn compile_gives_diagnostics_that_render_like_check() {
    let source = "model m {\n  input [1, 16]\n  conv(out=1, k=3) @lowpas(cutoff=0.2)\n}\ndata sines(n=8)\n";
    let diagnostics = lpn::compile(source, &CompileOptions::default().file_name("bad.lpn")).unwrap_err();
    assert_eq!(diagnostics.errors(), 1, "{diagnostics}");
    let first = diagnostics.iter().next().unwrap();
    assert_eq!((first.severity, first.labels[0].line), (Severity::Error, 3));
    let rendered = diagnostics.render(false);
    assert!(rendered.contains(first.code) && rendered.contains("bad.lpn") && rendered.contains("lowpass"), "{rendered}");
    // What `lpnc check` prints is the same renderer over the same problems.
    let (_, checked) = lpn::check_source(source, Path::new("."));
    assert_eq!(rendered, lpn::language::render::render_human(&checked.problems, source, "bad.lpn", false));
    assert!(lpn::check(SMALL, &CompileOptions::default()).is_empty());
}

#[test]
fn a_model_runs_as_a_candle_module_in_both_modes() {
    let program = lpn::compile(SMALL, &CompileOptions::default()).unwrap();
    assert_eq!((program.input_shape(), program.output_shape()), (&[1, 32][..], &[1, 32][..]));
    let model = Model::init(&program, 3, &Device::Cpu).unwrap();
    let x = batch_for(&model, 4, 1);
    let eval = model.forward(&x).unwrap();
    assert_eq!(eval.dims(), &[4, 1, 32]);
    // Evaluation is `forward_t(x, false)` and `eval()` as a Module, and repeats.
    assert_eq!(values(&eval), values(&model.forward_t(&x, false).unwrap()));
    assert_eq!(values(&eval), values(&x.apply(&model.eval()).unwrap()));
    // A training pass uses batch statistics and dropout: another output,
    // and one that differs between calls (new dropout masks).
    let train = model.forward_t(&x, true).unwrap();
    assert!(relative_gap(&eval, &train) > 1e-3);
    assert!(relative_gap(&train, &model.forward_t(&x, true).unwrap()) > 1e-3);
    // The same seed, the same start; another seed, another one.
    let again = Model::init(&program, 3, &Device::Cpu).unwrap();
    assert_eq!(values(&eval), values(&again.forward(&x).unwrap()));
    let other = Model::init(&program, 4, &Device::Cpu).unwrap();
    assert!(relative_gap(&eval, &other.forward(&x).unwrap()) > 1e-3);
}

#[test]
fn a_model_says_what_input_it_takes() {
    let program = lpn::compile(SMALL, &CompileOptions::default()).unwrap();
    let model = Model::init(&program, 0, &Device::Cpu).unwrap();
    let wrong_shape = Tensor::zeros((4, 2, 32), DType::F32, &Device::Cpu).unwrap();
    let e = model.forward(&wrong_shape).unwrap_err().to_string();
    assert!(e.contains("[B, 1, 32]") && e.contains("[4, 2, 32]"), "{e}");
    let wrong_type = Tensor::zeros((4, 1, 32), DType::F64, &Device::Cpu).unwrap();
    let e = model.forward(&wrong_type).unwrap_err().to_string();
    assert!(e.contains("F32") && e.contains("to_dtype"), "{e}");
}

/// Every op with one of our kernels has a path of Candle's own ops, which
/// other devices take: forced on the CPU, it gives each example's network
/// the same output as the kernels to 1e-5 (f32, evaluation), and the same
/// gradients of a training pass (batch statistics and dropout included) to
/// 1e-9 in f64, where the order of a sum's terms does not blur the figure.
#[test]
fn candle_ops_path_matches_the_kernels_on_every_example() {
    for path in examples() {
        let program = compile_file(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let kernels = Model::init(&program, 11, &Device::Cpu).unwrap();
        let candle = Model::init(&program, 11, &Device::Cpu).unwrap();
        let x = batch_for(&kernels, 3, 5);
        let by_kernels = kernels.forward(&x).unwrap();
        let by_candle = with_candle_ops(|| candle.forward(&x).unwrap());
        let gap = relative_gap(&by_kernels, &by_candle);
        assert!(gap <= 1e-5, "{name}: evaluation differs by {gap:e}");
        let x = x.to_dtype(DType::F64).unwrap();
        let grads_kernels = gradients(&program, &x);
        let grads_candle = with_candle_ops(|| gradients(&program, &x));
        assert_eq!(grads_kernels.len(), grads_candle.len());
        for ((param, a), (_, b)) in grads_kernels.iter().zip(&grads_candle) {
            let gap = relative_gap(a, b);
            assert!(gap <= 1e-9, "{name}: the gradient of {param} differs by {gap:e}");
        }
    }
}

/// Each parameter's gradient of a fixed weighting of a training pass's
/// output, the network in f64.
fn gradients(program: &lpn::Program, x: &Tensor) -> Vec<(String, Tensor)> {
    let net = Net::new(&program.model, 11, DType::F64).unwrap();
    let y = net.forward(x, &mut Pass::Train { dropout: &mut Rng::new(2) }).unwrap();
    let weights = Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let weights = ((weights * 0.37).unwrap().sin().unwrap()).reshape(y.dims()).unwrap();
    let grads = (y * weights).unwrap().sum_all().unwrap().backward().unwrap();
    net.params.iter().map(|p| (p.name.to_string(), grads.get(p.var.as_tensor()).expect("every parameter has a gradient").clone())).collect()
}

/// The README's "Use lpn from Rust" example is the doc test of `src/lib.rs`
/// (less its hidden lines), which `cargo test --doc` runs.
#[test]
fn the_readme_example_is_the_doc_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let doc: Vec<&str> = lib.lines().filter_map(|l| l.strip_prefix("//!")).map(|l| l.strip_prefix(' ').unwrap_or(l)).collect();
    let doc_test: Vec<&str> =
        doc.iter().skip_while(|l| **l != "```").skip(1).take_while(|l| **l != "```").filter(|l| !l.starts_with("# ")).copied().collect();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Use lpn from Rust").expect("the README has the section")..];
    let shown: Vec<&str> = section.lines().skip_while(|l| *l != "```rust").skip(1).take_while(|l| *l != "```").collect();
    assert!(doc_test.len() > 5, "{doc_test:?}");
    assert_eq!(shown, doc_test);
}

/// `Model::load` takes every tensor of a weights file `lpnc train` wrote
/// (batch-norm statistics included), and refuses those of another model,
/// naming the tensor.
#[test]
fn a_model_loads_trained_weights_and_refuses_another_models() {
    let dir = common::fresh_dir("api", "load");
    let program = lpn::compile(SMALL, &CompileOptions::default()).unwrap();
    lpn::train::train(&program, &lpn::train::Options { epochs: Some(2), ..lpn::train::Options::new(&dir) }).unwrap();
    let weights = dir.join("model.safetensors");
    let model = Model::load(&program, &weights, &Device::Cpu).unwrap();
    let file = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let held = model.net().tensors().unwrap();
    assert_eq!(held.len(), file.len());
    for (name, t) in &file {
        assert_eq!(values(t), values(&held[name]), "{name}");
    }
    let wider = SMALL.replace("conv(out=4, k=15)", "conv(out=6, k=15)");
    let other = lpn::compile(&wider, &CompileOptions::default()).unwrap();
    let e = Model::load(&other, &weights, &Device::Cpu).err().expect("another model's weights are refused").to_string();
    assert!(e.contains("in the weights file, the model needs [6]"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A training run on Candle's ops path (what another device runs, forced on
/// the CPU) follows the kernels' run: the denoiser's penalty (the band
/// ratio's own op or Candle's) and projection, one epoch, the same losses
/// and the same weights to 1e-5 (f32 over a few dozen steps; 1e-8 here).
#[test]
fn training_on_the_candle_ops_path_follows_the_kernels() {
    let program = compile_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/denoiser.lpn"));
    let run = |name: &str| {
        let dir = common::fresh_dir("api", name);
        let report = lpn::train::train(&program, &lpn::train::Options { epochs: Some(1), ..lpn::train::Options::new(&dir) }).unwrap();
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (report.epochs[0].train_loss, report.epochs[0].val_loss.unwrap(), weights)
    };
    let (train_k, val_k, weights_k) = run("train-kernels");
    let (train_c, val_c, weights_c) = with_candle_ops(|| run("train-candle"));
    let gap = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-12);
    assert!(gap(train_k, train_c) <= 1e-5 && gap(val_k, val_c) <= 1e-5, "losses {train_k} {val_k} against {train_c} {val_c}");
    for (name, w) in &weights_k {
        let g = relative_gap(w, &weights_c[name]);
        assert!(g <= 1e-5, "{name} differs by {g:e}");
    }
}
