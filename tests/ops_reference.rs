//! Every op the lowering uses, forward and gradient, against reference values
//! computed with numpy by `tests/reference/make_op_fixtures.py` (float64,
//! gradients analytic and checked by finite differences there). Our ops run in
//! f64 here; the tolerance is 1e-5 relative to the tensor's largest value.
//!
//! The CPU kernels of 2-D convolution and pooling, and the fused 2-D block
//! (convolution, bias, ReLU, max pool), are also checked against PyTorch
//! (`tests/reference/make_torch_fixtures.py`, `tests/fixtures/torch`), in f64
//! and f32, alongside the Candle-op paths that serve other devices.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use lpn::model::ops;
use serde_json::Value;

struct Fixture {
    op: String,
    params: Value,
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
    /// The dtype the op runs in.
    dtype: DType,
}

fn load(dir: &str, name: &str) -> Fixture {
    let text = std::fs::read_to_string(format!("tests/fixtures/{dir}/{name}.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let mut tensors = HashMap::new();
    for (k, t) in v["tensors"].as_object().unwrap() {
        let shape = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let data = t["data"].as_array().unwrap().iter().map(|d| d.as_f64().unwrap()).collect();
        tensors.insert(k.clone(), (shape, data));
    }
    Fixture { op: v["op"].as_str().unwrap().to_string(), params: v["params"].clone(), tensors, dtype: DType::F64 }
}

impl Fixture {
    fn tensor(&self, name: &str) -> Tensor {
        let (shape, data) = &self.tensors[name];
        Tensor::from_vec(data.clone(), shape.as_slice(), &Device::Cpu).unwrap().to_dtype(self.dtype).unwrap()
    }
    fn var(&self, name: &str) -> Option<Var> {
        self.tensors.contains_key(name).then(|| Var::from_tensor(&self.tensor(name)).unwrap())
    }
    fn classes(&self) -> Vec<usize> {
        self.tensors["target"].1.iter().map(|&x| x as usize).collect()
    }
    fn usizes(&self, key: &str) -> Vec<usize> {
        match &self.params[key] {
            Value::Array(a) => a.iter().map(|x| x.as_u64().unwrap() as usize).collect(),
            v => vec![v.as_u64().unwrap() as usize],
        }
    }
}

fn assert_close(name: &str, what: &str, ours: &Tensor, reference: &(Vec<usize>, Vec<f64>)) {
    assert_eq!(ours.dims(), reference.0.as_slice(), "{name}: {what} shape");
    let ours: Vec<f64> = ours.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let scale = reference.1.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-12);
    for (i, (a, b)) in ours.iter().zip(&reference.1).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "{name}: {what}[{i}] = {a}, reference {b} (scale {scale})");
    }
}

/// Runs the op on the fixture's inputs and checks `out` and every stored gradient
/// of `sum(out · grad_out)`.
fn check(name: &str) {
    check_with("ops", name, false, DType::F64);
    // Convolution and pooling have two paths each: our CPU kernel and the
    // Candle ops that other devices use.
    if name.starts_with("conv") || name.starts_with("maxpool") || name.starts_with("avgpool") || name.starts_with("global_max") {
        check_with("ops", name, true, DType::F64);
    }
    // Global max pooling with tied maxima: one winner in f32 as in f64.
    if name.starts_with("global_max") {
        check_with("ops", name, false, DType::F32);
        check_with("ops", name, true, DType::F32);
    }
}

/// `candle_path`: the convolution by shifted matmuls, pooling by windows and
/// global max pooling by index (what runs off the CPU) instead of our CPU
/// kernels.
fn check_with(dir: &str, name: &str, candle_path: bool, dtype: DType) {
    let mut f = load(dir, name);
    f.dtype = dtype;
    let x = f.var("x").unwrap();
    let w = f.var("w");
    let b = f.var("b");
    let xt = x.as_tensor();
    let out = match f.op.as_str() {
        "conv1d" | "conv2d" | "conv2d_block" => {
            let axes = if f.op == "conv1d" { 1 } else { 2 };
            let per_axis = |key: &str| {
                let v = f.usizes(key);
                if v.len() == axes { v } else { vec![v[0]; axes] }
            };
            let padding: Vec<(usize, usize)> = match &f.params["padding"] {
                Value::Array(a) if axes == 1 => vec![(a[0].as_u64().unwrap() as usize, a[1].as_u64().unwrap() as usize)],
                Value::Array(a) => a.iter().map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize)).collect(),
                other => panic!("padding {other}"),
            };
            let groups = f.params["groups"].as_u64().unwrap() as usize;
            let (wt, bt) = (w.as_ref().unwrap().as_tensor(), b.as_ref().map(|b| b.as_tensor()));
            let (stride, dilation) = (per_axis("stride"), per_axis("dilation"));
            let conv = lpn::language::ir::Conv {
                in_channels: xt.dim(1).unwrap(),
                out_channels: wt.dim(0).unwrap(),
                kernel: wt.dims()[2..].to_vec(),
                stride,
                padding,
                dilation,
                groups,
                bias: bt.is_some(),
            };
            if f.op == "conv2d_block" {
                // The fused convolution, bias, ReLU and max pool.
                let relu = f.params["relu"].as_bool().unwrap();
                let pool: Option<Vec<usize>> =
                    f.params["pool"].as_array().map(|k| k.iter().map(|v| v.as_u64().unwrap() as usize).collect());
                if candle_path {
                    let y = ops::conv_by_matmuls(xt, wt, bt, &conv).unwrap();
                    let y = if relu { ops::relu(&y).unwrap() } else { y };
                    match &pool {
                        Some(k) => ops::max_pool_by_windows(&y, k, k, &[0, 0]),
                        None => Ok(y),
                    }
                } else {
                    ops::conv_block(xt, wt, bt, &conv, relu, pool.as_deref())
                }
            } else if candle_path {
                ops::conv_by_matmuls(xt, wt, bt, &conv)
            } else {
                ops::conv(xt, wt, bt, &conv)
            }
        }
        "linear" => ops::linear(xt, w.as_ref().unwrap().as_tensor(), b.as_ref().map(|b| b.as_tensor())),
        "maxpool1d" | "maxpool2d" if candle_path => ops::max_pool_by_windows(xt, &f.usizes("k"), &f.usizes("stride"), &f.usizes("padding")),
        "maxpool1d" | "maxpool2d" => ops::max_pool(xt, &f.usizes("k"), &f.usizes("stride"), &f.usizes("padding")),
        "avgpool1d" | "avgpool2d" if candle_path => ops::avg_pool_by_windows(xt, &f.usizes("k"), &f.usizes("stride"), &f.usizes("padding")),
        "avgpool1d" | "avgpool2d" => ops::avg_pool(xt, &f.usizes("k"), &f.usizes("stride"), &f.usizes("padding")),
        "global_avgpool1d" | "global_avgpool2d" => ops::global_avg_pool(xt),
        "global_maxpool1d" | "global_maxpool2d" if candle_path => ops::global_max_pool_by_index(xt),
        "global_maxpool1d" | "global_maxpool2d" => ops::global_max_pool(xt),
        "relu" => ops::relu(xt),
        "gelu_tanh" => ops::gelu(xt),
        "tanh" => xt.tanh(),
        "sigmoid" => ops::sigmoid(xt),
        "silu" => ops::silu(xt),
        "leaky_relu" => ops::leaky_relu(xt, f.params["slope"].as_f64().unwrap()),
        "mse" => ops::mse(xt, &f.tensor("target")),
        "mae" => ops::mae(xt, &f.tensor("target")),
        "cross_entropy" => ops::cross_entropy(xt, &f.classes()),
        "bce_logits" => ops::bce_with_logits(xt, &f.classes()),
        "batchnorm1d" | "batchnorm2d" => {
            let eps = f.params["eps"].as_f64().unwrap();
            let (y, mean, _) =
                ops::batch_norm_train(xt, w.as_ref().unwrap().as_tensor(), b.as_ref().unwrap().as_tensor(), eps, false).unwrap();
            assert_close(name, "batch_mean", &mean, &f.tensors["batch_mean"]);
            Ok(y)
        }
        "stopband_ratio" => ops::quadratic_ratios(xt, &f.tensor("Q")).and_then(|r| r.mean_all()),
        other => panic!("no test for op {other}"),
    }
    .unwrap();
    assert_eq!(out.dtype(), dtype, "{name}: output dtype");
    assert_close(name, "out", &out, &f.tensors["out"]);
    let loss = (out * f.tensor("grad_out")).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    for (label, var) in [("x", Some(&x)), ("w", w.as_ref()), ("b", b.as_ref())] {
        let key = format!("grad_{label}");
        if let (Some(var), Some(reference)) = (var, f.tensors.get(&key)) {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient for {label}"));
            assert_close(name, &key, g, reference);
        }
    }
}

#[test]
fn every_fixture_matches() {
    let names = fixture_names("ops");
    assert!(names.len() >= 30, "fixtures missing: {names:?}");
    run_all(
        names.into_iter().map(|name| (name.clone(), Box::new(move || check(&name)) as Box<dyn Fn() + std::panic::RefUnwindSafe>)).collect(),
    );
}

fn fixture_names(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("tests/fixtures/{dir}"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Runs every check, collecting the failures into one report.
fn run_all(checks: Vec<(String, Box<dyn Fn() + std::panic::RefUnwindSafe>)>) {
    let total = checks.len();
    let mut failures = Vec::new();
    for (label, check) in &checks {
        if let Err(e) = std::panic::catch_unwind(check) {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            failures.push(format!("{label}: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{} of {total} checks failed:\n{}", failures.len(), failures.join("\n"));
}

/// 2-D convolution, pooling and the fused convolution block against
/// PyTorch: our CPU kernels in f64 and f32, and the Candle-op paths in f64.
#[test]
fn torch_fixtures_match() {
    let names = fixture_names("torch");
    assert!(names.len() >= 27, "fixtures missing: {names:?}");
    let mut checks: Vec<(String, Box<dyn Fn() + std::panic::RefUnwindSafe>)> = Vec::new();
    for name in names {
        for (candle_path, dtype) in [(false, DType::F64), (false, DType::F32), (true, DType::F64)] {
            let n = name.clone();
            checks.push((
                format!("{name} ({dtype:?}, candle path {candle_path})"),
                Box::new(move || check_with("torch", &n, candle_path, dtype)),
            ));
        }
    }
    run_all(checks);
}

#[test]
fn designed_filters_equal_firwin() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/filters.json").unwrap()).unwrap();
    for case in v["firwin"].as_array().unwrap() {
        let k = case["numtaps"].as_u64().unwrap() as usize;
        let cutoff = case["cutoff"].as_f64().unwrap();
        let family =
            if case["kind"] == "lowpass" { lpn::language::schema::Family::Lowpass } else { lpn::language::schema::Family::Highpass };
        let spec = lpn::constraint::bands::BandSpec { family, low: cutoff, high: cutoff, transition: None, fs: None };
        let ours = lpn::constraint::bands::design(&spec, k);
        let taps: Vec<f64> = case["taps"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        for (a, b) in ours.iter().zip(&taps) {
            assert!((a - b).abs() < 1e-12, "firwin({k}, {cutoff}, {}): {a} vs {b}", case["kind"]);
        }
    }
}

#[test]
fn projector_matches_numpy_and_meets_tol() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/filters.json").unwrap()).unwrap();
    for case in v["projections"].as_array().unwrap() {
        let k = case["k"].as_u64().unwrap() as usize;
        let family =
            if case["family"] == "lowpass" { lpn::language::schema::Family::Lowpass } else { lpn::language::schema::Family::Highpass };
        let spec = lpn::constraint::bands::BandSpec {
            family,
            low: case["cutoff"].as_f64().unwrap(),
            high: 0.0,
            transition: case["transition"].as_f64(),
            fs: None,
        };
        let spec = lpn::constraint::bands::BandSpec { high: spec.low, ..spec };
        let tol = case["tol"].as_f64().unwrap();
        let q = spec.stopband_operator(&[k]);
        let q_ref: Vec<f64> = case["Q"]["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        for i in 0..k * k {
            assert!((q[(i / k, i % k)] - q_ref[i]).abs() < 1e-12, "Q differs at {i}");
        }
        let (p, rank) = lpn::constraint::bands::admissible_projector(&q, tol);
        assert_eq!(rank as u64, case["rank"].as_u64().unwrap());
        let p_ref: Vec<f64> = case["P"]["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        for i in 0..k * k {
            assert!((p[(i / k, i % k)] - p_ref[i]).abs() < 1e-9, "P differs at {i}");
        }
        // Idempotent, and the projected kernel meets tol.
        assert!((&p * &p - &p).abs().max() < 1e-9);
        let h = nalgebra::DVector::from_vec(case["h"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect());
        let ph = &p * &h;
        let rho = (ph.transpose() * &q * &ph)[0] / ph.norm_squared();
        assert!(rho <= tol, "ρ(Ph) = {rho}");
        assert!((rho - case["rho_ph"].as_f64().unwrap()).abs() < 1e-9);
    }
}
