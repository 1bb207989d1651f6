//! Batch norm against PyTorch (`tests/reference/make_batchnorm_fixtures.py`,
//! `tests/fixtures/batchnorm`): a network of one `batchnorm` layer (and a
//! `relu` after it in some cases, which lpn fuses into one op) trained for a
//! few steps on PyTorch's batches, then evaluated: outputs, the gradients of
//! x, γ and β, and the running mean and variance after each step, to 1e-5
//! relative to each tensor's largest value. Our kernels in f32 and f64, and
//! the Candle-op path other devices take (forced on the CPU). Also, a small
//! FCN-style net trains the same on both paths.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use lpn::model::ops::with_candle_ops;
use lpn::model::{Net, Pass};
use lpn::rng::Rng;
use serde_json::Value;

/// A fixture tensor `{"shape", "data"}` as a tensor of `dtype`.
fn tensor(v: &Value, dtype: DType) -> Tensor {
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f64> = v["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// Asserts `ours` ≈ the fixture's `reference` within 1e-5 of its largest value.
fn assert_close(what: &str, ours: &Tensor, reference: &Value) {
    let reference = tensor(reference, DType::F64);
    assert_eq!(ours.dims(), reference.dims(), "{what}: shape");
    let ours: Vec<f64> = ours.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let reference: Vec<f64> = reference.flatten_all().unwrap().to_vec1().unwrap();
    let scale = reference.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}] = {a}, PyTorch {b} (scale {scale})");
    }
}

/// The one-layer network of the fixture's parameters, with its γ and β.
fn network(fixture: &Value, dtype: DType) -> Net {
    let p = &fixture["params"];
    let input: Vec<String> = p["input"].as_array().unwrap().iter().map(|d| d.to_string()).collect();
    let relu = if p["relu"].as_bool().unwrap() { "  relu\n" } else { "" };
    let source = format!(
        "model m {{\n  input [{}]\n  batchnorm(momentum={}, eps={})\n{relu}}}\n",
        input.join(", "),
        p["momentum"].as_f64().unwrap(),
        p["eps"].as_f64().unwrap()
    );
    let model = lpn::language::check::check_model_only(&source).unwrap_or_else(|e| panic!("{source}: {e:?}"));
    let net = Net::new(&model, 1, dtype).unwrap();
    for (name, key) in [("batchnorm1.weight", "gamma"), ("batchnorm1.bias", "beta")] {
        net.set_effective(net.param_index(name).unwrap(), &tensor(&fixture[key], dtype)).unwrap();
    }
    net
}

/// One pass of `net` on the record's `x`; checks the output and the
/// gradients of `sum(out · grad_out)` against the record's.
fn check_pass(net: &Net, record: &Value, pass: &mut Pass, dtype: DType, what: &str) {
    let x = Var::from_tensor(&tensor(&record["x"], dtype)).unwrap();
    let out = net.forward(x.as_tensor(), pass).unwrap();
    assert_eq!(out.dtype(), dtype);
    assert_close(&format!("{what} out"), &out, &record["out"]);
    let grads = (out * tensor(&record["grad_out"], dtype)).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close(&format!("{what} grad_x"), grads.get(x.as_tensor()).unwrap(), &record["grad_x"]);
    for (name, key) in [("batchnorm1.weight", "grad_gamma"), ("batchnorm1.bias", "grad_beta")] {
        let var = &net.params[net.param_index(name).unwrap()].var;
        assert_close(&format!("{what} {key}"), grads.get(var.as_tensor()).unwrap(), &record[key]);
    }
}

/// The network's running statistics (mean, variance), as it keeps them.
fn running_stats(net: &Net) -> (Tensor, Tensor) {
    let state: std::collections::HashMap<String, Tensor> = net.state_tensors().unwrap().into_iter().collect();
    (state["stats/batchnorm1.running_mean"].clone(), state["stats/batchnorm1.running_var"].clone())
}

/// Every step of the fixture and its evaluation pass.
fn check_fixture(name: &str, dtype: DType) {
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(format!("tests/fixtures/batchnorm/{name}.json")).unwrap()).unwrap();
    let net = network(&fixture, dtype);
    let mut dropout = Rng::new(0);
    for (k, record) in fixture["steps"].as_array().unwrap().iter().enumerate() {
        check_pass(&net, record, &mut Pass::Train { dropout: &mut dropout }, dtype, &format!("{name} step {k}"));
        let (mean, var) = running_stats(&net);
        assert_close(&format!("{name} step {k} running_mean"), &mean, &record["running_mean"]);
        assert_close(&format!("{name} step {k} running_var"), &var, &record["running_var"]);
    }
    check_pass(&net, &fixture["eval"], &mut Pass::Eval, dtype, &format!("{name} eval"));
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("tests/fixtures/batchnorm")
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Our kernels in f32 and f64, and the Candle-op path in f64, against
/// PyTorch. (The Candle-op path in f32 computes the variance from f32
/// deviations, which the large-mean case is there to catch in our kernel.)
#[test]
fn batch_norm_matches_pytorch() {
    let names = fixture_names();
    assert!(names.len() >= 7, "fixtures missing: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        for (candle_ops, dtype) in [(false, DType::F32), (false, DType::F64), (true, DType::F64)] {
            let run = || {
                if candle_ops { with_candle_ops(|| check_fixture(name, dtype)) } else { check_fixture(name, dtype) }
            };
            if let Err(e) = std::panic::catch_unwind(run) {
                let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                failures.push(format!("{name} ({dtype:?}, Candle ops {candle_ops}): {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
}

/// A small FCN-style net (convolutions, each followed by batch norm and ReLU,
/// global average pooling) trains the same on our kernels as on the
/// Candle-op path, the path every batch norm took before it had its own
/// kernel: the same losses every epoch, the same weights and running
/// statistics, to 1e-5 (f32). The convolutions have no bias: batch norm
/// removes a bias before it, whose gradient is then rounding noise that Adam
/// scales up to full steps, different on any two paths (and in PyTorch); the
/// running means follow those biases, and the validation losses with them.
#[test]
fn a_net_with_batch_norm_trains_as_on_the_candle_ops() {
    let source = "model m {\n  input [1, 64]\n  conv(out=8, k=7, bias=false)\n  batchnorm\n  relu\n  conv(out=8, k=5, bias=false)\n  batchnorm(momentum=0.2)\n  relu\n  \
                  conv(out=1, k=3, bias=false)\n  batchnorm\n}\ndata sines(n=48)\ntrain {\n  epochs = 3\n  batch = 8\n}\n";
    let program = lpn::compile(source, &lpn::CompileOptions::default()).unwrap_or_else(|d| panic!("{d}"));
    let run = |name: &str| {
        let dir = common::fresh_dir("batchnorm", name);
        let report = lpn::train::train(&program, &lpn::train::Options::new(&dir)).unwrap();
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (report.epochs.iter().map(|e| (e.train_loss, e.val_loss.unwrap())).collect::<Vec<_>>(), weights)
    };
    let (losses_k, weights_k) = run("kernels");
    let (losses_c, weights_c) = with_candle_ops(|| run("candle"));
    assert_eq!(losses_k.len(), 3);
    let gap = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-12);
    for ((tk, vk), (tc, vc)) in losses_k.iter().zip(&losses_c) {
        assert!(gap(*tk, *tc) <= 1e-5 && gap(*vk, *vc) <= 1e-5, "losses {losses_k:?} against {losses_c:?}");
    }
    assert_eq!(weights_k.len(), weights_c.len());
    for (name, w) in &weights_k {
        let ours: Vec<f64> = w.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let theirs: Vec<f64> = weights_c[name].to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let scale = theirs.iter().fold(1f64, |m, v| m.max(v.abs()));
        let diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(diff <= 1e-5 * scale, "{name} differs by {diff:e}");
    }
}
