//! End to end: check a file, train it for a few epochs, read back what was
//! written. Kept small so the suite stays fast (run with `--release`).
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

mod common;

use std::path::{Path, PathBuf};

use lpn::constraint::bands::BandSpec;
use lpn::language::schema::Family;

fn out_dir(name: &str) -> PathBuf {
    common::fresh_dir("e2e", name)
}

use common::program;

fn train(source: &str, base: &Path, name: &str, epochs: Option<usize>, seed: Option<u64>) -> (lpn::train::Report, PathBuf) {
    let p = program(source, base);
    let out = out_dir(name);
    let report = lpn::train::train(&p, &lpn::train::Options { out_dir: out.clone(), epochs, seed, ..Default::default() }).unwrap();
    (report, out)
}

fn train_example(file: &str, epochs: usize) -> (lpn::train::Report, PathBuf) {
    let source = std::fs::read_to_string(format!("examples/{file}")).unwrap();
    train(&source, Path::new("examples"), file, Some(epochs), None)
}

/// ρ of every kernel of a saved weight, computed with nalgebra from the saved file.
fn saved_rhos(dir: &Path, tensor: &str, spec: &BandSpec) -> Vec<f64> {
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let w = &tensors[tensor];
    let kernel: Vec<usize> = w.dims()[2..].to_vec();
    let taps: usize = kernel.iter().product();
    let q = spec.stopband_operator(&kernel);
    let data: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    data.chunks(taps)
        .map(|h| {
            let h = nalgebra::DVector::from_iterator(taps, h.iter().map(|&x| x as f64));
            (h.transpose() * &q * &h)[0] / h.norm_squared()
        })
        .collect()
}

fn losses_fall(report: &lpn::train::Report) {
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first, "training loss did not fall: {first} → {last}");
}

const DENOISER: &str = "model small {
  input [1, 128]
  conv(out=4, k=15) @lowpass(cutoff=0.2, mode=MODE, weight=1.0)
  tanh
  conv(out=1, k=9)
}
data sines(n=96, noise=0.3)
train {
  optimizer = adam(lr=3e-3)
  epochs = 4
  batch = 16
  seed = 5
}
";

fn denoiser(mode: &str) -> String {
    let s = DENOISER.replace("MODE", mode);
    if mode == "penalty" { s } else { s.replace(", weight=1.0", "") }
}

#[test]
fn project_mode_holds_in_the_saved_weights() {
    let (report, dir) = train(&denoiser("project"), Path::new("."), "project", None, None);
    losses_fall(&report);
    let spec = report.constraints[0].clone();
    assert!(spec.satisfied);
    let band = BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None };
    for rho in saved_rhos(&dir, "conv1.weight", &band) {
        assert!(rho <= 0.01 + 1e-6, "ρ = {rho} > tol in the saved weights");
    }
}

#[test]
fn freeze_mode_saves_the_firwin_design_unchanged() {
    let (_, dir) = train(&denoiser("freeze"), Path::new("."), "freeze", None, None);
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let w: Vec<f32> = tensors["conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    let design = lpn::constraint::bands::design(&BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None }, 15);
    // One input channel: every kernel is the design itself.
    for kernel in w.chunks(15) {
        for (a, b) in kernel.iter().zip(&design) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
    let band = BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None };
    assert!(saved_rhos(&dir, "conv1.weight", &band).iter().all(|&r| r <= 0.01));
}

#[test]
fn penalty_lowers_the_stopband_energy() {
    let (with, _) = train(&denoiser("penalty"), Path::new("."), "penalty", None, None);
    // The same run with the penalty weighted 0 (a warning, but trainable).
    let (without, _) = train(&denoiser("penalty").replace("weight=1.0", "weight=0"), Path::new("."), "nopenalty", None, None);
    let rho_with = with.constraints[0].stopband_ratio_mean.unwrap();
    let rho_without = without.constraints[0].stopband_ratio_mean.unwrap();
    assert!(rho_with < 0.8 * rho_without, "penalty ρ {rho_with} vs none {rho_without}");
}

#[test]
fn same_seed_same_weights_bit_for_bit() {
    let (_, a) = train(&denoiser("project"), Path::new("."), "seed-a", Some(2), Some(9));
    let (_, b) = train(&denoiser("project"), Path::new("."), "seed-b", Some(2), Some(9));
    let (_, c) = train(&denoiser("project"), Path::new("."), "seed-c", Some(2), Some(10));
    let read = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(read(&a), read(&b), "two runs with one seed differ");
    assert_ne!(read(&a), read(&c), "different seeds gave identical weights");
}

#[test]
fn report_json_has_the_documented_fields() {
    let (_, dir) = train(&denoiser("project"), Path::new("."), "report", Some(1), None);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["model"], "small");
    for key in ["epoch", "train_loss", "val_loss", "val_accuracy", "seconds"] {
        assert!(v["epochs"][0].get(key).is_some(), "epochs[0].{key}");
    }
    assert!(v["epochs"][0]["val_accuracy"].is_null());
    for key in ["layer", "tensor", "kind", "mode", "params", "stopband_ratio", "tol", "satisfied"] {
        assert!(v["constraints"][0].get(key).is_some(), "constraints[0].{key}");
    }
    assert_eq!(v["constraints"][0]["tensor"], "conv1.weight");
    assert_eq!(v["constraints"][0]["params"]["cutoff"], 0.2);
    // Where the band really acts on 15 taps: the stopband from 0.2 + 6.6/15/2 = 0.42.
    let edges = &v["constraints"][0]["params"]["band_edges"];
    let from = edges["stopband"][0][0].as_f64().unwrap();
    assert!((from - 0.42).abs() < 1e-12 && edges["stopband"][0][1] == 1.0, "{edges}");
    assert!(edges["passband"].as_array().unwrap().is_empty(), "{edges}");
    assert_eq!(edges["units"], "nyquist");
}

#[test]
fn end_table_shows_the_stopband_in_force() {
    let (report, _) = train(&denoiser("project"), Path::new("."), "table", Some(1), None);
    let table = lpn::train::constraint_table(&report);
    assert!(table.lines().next().unwrap().contains("stopband"), "{table}");
    assert!(table.contains("ν ≥ 0.42"), "{table}");
}

#[test]
fn frozen_layer_and_lr_scale() {
    let source = "model m {
  input [1, 64]
  conv(out=2, k=5) @freeze
  conv(out=1, k=5) @lr(0.0001)
}
data sines(n=48)
train {
  optimizer = adamw(lr=1e-2, weight_decay=0.5)
  epochs = 2
  batch = 8
}
";
    let p = program(source, Path::new("."));
    // Initial weights: the same seed with zero epochs.
    let (_, init) = train(source, Path::new("."), "frozen-init", Some(0), None);
    let (_, trained) = train(source, Path::new("."), "frozen", None, None);
    let _ = p;
    let load = |d: &Path| candle_core::safetensors::load(d.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let (a, b) = (load(&init), load(&trained));
    let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // Frozen: not moved by the optimizer nor by decoupled weight decay.
    assert_eq!(v(&a["conv1.weight"]), v(&b["conv1.weight"]));
    assert_eq!(v(&a["conv1.bias"]), v(&b["conv1.bias"]));
    // Scaled by 1e-4: Adam's steps are ~lr each, so the change stays tiny.
    let moved: f32 = v(&a["conv2.weight"]).iter().zip(v(&b["conv2.weight"])).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(moved > 0.0 && moved < 1e-4, "conv2 moved by {moved}");
}

#[test]
fn examples_train() {
    for (file, epochs) in [
        ("gunpoint_classifier.lpn", 3),
        ("digits_2d.lpn", 2),
        ("waveforms_frozen_frontend.lpn", 2),
        ("ecg_denoiser.lpn", 2),
        ("ecg_decimator.lpn", 2),
    ] {
        let (report, dir) = train_example(file, epochs);
        losses_fall(&report);
        assert!(dir.join("model.safetensors").is_file() && dir.join("report.json").is_file());
        for c in &report.constraints {
            if matches!(c.mode.as_str(), "project" | "freeze") {
                assert!(c.satisfied, "{file}: {} {} not held: {c:?}", c.layer, c.kind);
            }
        }
    }
}

#[test]
fn eval_reads_back_the_weights() {
    let (report, dir) = train_example("gunpoint_classifier.lpn", 2);
    let source = std::fs::read_to_string("examples/gunpoint_classifier.lpn").unwrap();
    let p = program(&source, Path::new("examples"));
    let e = lpn::train::evaluate_file(&p, &dir.join("model.safetensors")).unwrap();
    let t = report.test.unwrap();
    assert!((e.loss - t.loss).abs() < 1e-6, "{} vs {}", e.loss, t.loss);
    assert_eq!(e.accuracy, t.accuracy);
}

#[test]
fn errors_while_training_are_messages_not_panics() {
    // A pretrained file that does not exist at train time (deleted after checking).
    let dir = out_dir("missing-init");
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("w.safetensors");
    // A good file when checking (the checker reads its header), garbage when training.
    let header = br#"{"conv1.weight":{"dtype":"F32","shape":[1,1,3],"data_offsets":[0,12]}}"#;
    let mut good = (header.len() as u64).to_le_bytes().to_vec();
    good.extend_from_slice(header);
    good.extend_from_slice(&[0u8; 12]);
    std::fs::write(&weights, good).unwrap();
    let source = format!("model m {{\n input [1, 32]\n conv(out=1, k=3) @init(file=\"{}\")\n}}\ndata sines(n=16)\n", weights.display());
    let p = program(&source, Path::new("."));
    std::fs::write(&weights, b"not a safetensors file").unwrap();
    let err = lpn::train::train(&p, &lpn::train::Options { out_dir: dir.join("out"), epochs: Some(1), seed: None, ..Default::default() })
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("conv1") && text.contains("w.safetensors"), "{text}");
    // Trained weights of another model for `eval`.
    let (_, other) = train(&denoiser("project"), Path::new("."), "other", Some(1), None);
    let gun = std::fs::read_to_string("examples/gunpoint_classifier.lpn").unwrap();
    let p = program(&gun, Path::new("examples"));
    let err = lpn::train::evaluate_file(&p, &other.join("model.safetensors")).unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
}

#[test]
fn reparam_mode_holds_by_construction() {
    let (report, dir) = train(&denoiser("reparam"), Path::new("."), "reparam", Some(2), None);
    losses_fall(&report);
    let band = BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None };
    for rho in saved_rhos(&dir, "conv1.weight", &band) {
        assert!(rho <= 0.01 + 1e-6, "ρ = {rho} > tol in the saved (effective) weights");
    }
    // The other families' reparametrizations hold exactly in the saved weights.
    for (annotation, check) in [
        ("@symmetric(mode=reparam)", "sym"),
        ("@antisymmetric(mode=reparam)", "anti"),
        ("@dc_gain(0.5, mode=reparam)", "dc"),
        ("@nonneg(mode=reparam)", "nonneg"),
    ] {
        let source = format!(
            "model m {{\n input [1, 64]\n conv(out=3, k=7) {annotation}\n tanh\n conv(out=1, k=5)\n}}\ndata sines(n=48)\ntrain {{ epochs = 2 }}\n"
        );
        let (_, dir) = train(&source, Path::new("."), check, None, None);
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
        let w: Vec<f32> = tensors["conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
        for h in w.chunks(7) {
            let ok = match check {
                "sym" => (0..7).all(|i| (h[i] - h[6 - i]).abs() < 1e-6),
                "anti" => (0..7).all(|i| (h[i] + h[6 - i]).abs() < 1e-6),
                "dc" => (h.iter().sum::<f32>() - 0.5).abs() < 1e-5,
                _ => h.iter().all(|&x| x >= 0.0),
            };
            assert!(ok, "{annotation}: kernel {h:?}");
        }
    }
}

#[test]
fn lagrangian_meets_tol_on_the_ecg_example_without_a_weight() {
    let source =
        std::fs::read_to_string("examples/ecg_denoiser.lpn").unwrap().replace("mode=project, tol=0.01", "mode=lagrangian, tol=0.01");
    assert!(source.contains("mode=lagrangian"));
    let (report, _) = train(&source, Path::new("examples"), "ecg-lagrangian", None, None);
    let c = &report.constraints[0];
    assert_eq!(c.mode, "lagrangian");
    assert!(c.satisfied, "ρ = {:?} after training, tol {}", c.stopband_ratio, c.tol);
    assert!(c.multiplier.is_some());
    // The multiplier rose while ρ was above tol.
    assert!(report.epochs[0].constraints[0].multiplier.unwrap() > 0.0);
}

#[test]
fn response_plot_is_written_with_mask_and_history() {
    let (report, dir) = train(&denoiser("project"), Path::new("."), "response", Some(2), None);
    let p = program(&denoiser("project"), Path::new("."));
    let panels = lpn::train::response::panels(&p, &dir.join("model.safetensors")).unwrap();
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0].kernels.len(), 4);
    // The CLI draws them, with the ρ history from the report.json next to the weights.
    let file = dir.join("denoiser.lpn");
    std::fs::write(&file, denoiser("project")).unwrap();
    let svg = dir.join("response.svg");
    let weights = dir.join("model.safetensors");
    let out = common::lpnc()
        .args(["response", file.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--out", svg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("stopband") && text.contains("per epoch"), "{}", &text[..200.min(text.len())]);
    // Report figures from the dense response are there for a 1-D band constraint.
    let c = &report.constraints[0];
    assert!(c.stopband_gain_db.is_some() && c.dc_gain.is_some());
    // k = 15 at cutoff 0.2: the default transition (0.44) leaves no passband clear of it.
    assert_eq!(c.passband_ripple_db, None);
}

#[test]
fn orthogonal_and_lipschitz_projections_hold() {
    for (annotation, name) in [("@orthogonal", "ortho"), ("@lipschitz(0.5)", "lip")] {
        let source = format!(
            "model m {{\n input [1, 64]\n conv(out=4, k=9)\n relu\n global_avgpool\n linear(out=6) {annotation}\n relu\n linear(out=3)\n}}\ndata waveforms(classes=3, n=60)\ntrain {{ epochs = 2 }}\n"
        );
        let (report, dir) = train(&source, Path::new("."), name, None, None);
        assert!(report.constraints[0].satisfied, "{annotation}: {:?}", report.constraints[0]);
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
        let w: Vec<f32> = tensors["linear1.weight"].flatten_all().unwrap().to_vec1().unwrap();
        let m = nalgebra::DMatrix::from_row_slice(6, 4, &w.iter().map(|&x| x as f64).collect::<Vec<_>>());
        let s = m.singular_values();
        if name == "ortho" {
            // 6×4: orthonormal columns, every singular value 1.
            assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-4), "{s}");
        } else {
            assert!(s.max() <= 0.5 + 1e-4, "{s}");
        }
    }
}

#[test]
fn staged_training_freezes_then_projects() {
    let source = std::fs::read_to_string("tests/ui/ok_staged_training.lpn").unwrap();
    let (report, _) = train(&source, Path::new("."), "staged", None, None);
    let phases: Vec<Option<&str>> = report.epochs.iter().map(|e| e.phase.as_deref()).collect();
    assert_eq!(phases, [Some("warmup"), Some("warmup"), Some("finetune"), Some("finetune"), Some("finetune")]);
    let rho = |i: usize| report.epochs[i].constraints[0].stopband_ratio.unwrap();
    // Frozen during the warm-up: conv1 does not move (its ρ stays the same)...
    assert_eq!(rho(0), rho(1));
    // ...and projected from the first fine-tuning epoch on (penalty in the model).
    assert!(rho(2) <= 0.01 && rho(4) <= 0.01, "ρ {} {}", rho(2), rho(4));
    assert!(rho(1) > 0.01);
    assert_eq!(report.constraints[0].mode, "project");
    // `--epochs` caps a staged run.
    let (capped, _) = train(&source, Path::new("."), "staged-capped", Some(3), None);
    assert_eq!(capped.epochs.len(), 3);
}

#[test]
fn a_phase_tol_is_the_tol_projected_onto() {
    // The model's penalty has the default tol 0.01; the phase projects with a
    // tighter one. The projector must be made for the phase's tol, not kept
    // from the model's (where ρ up to 0.01 would be reported against 1e-5).
    let source = "model m {\n input [1, 128]\n conv(out=4, k=15) @lowpass(cutoff=0.2, mode=penalty, weight=0.1)\n tanh\n conv(out=1, k=9)\n}\ndata sines(n=96)\ntrain {\n optimizer = adam(lr=3e-3)\n phase warm {\n  epochs = 1\n }\n phase tight {\n  epochs = 2\n  conv1 @lowpass(cutoff=0.2, mode=project, tol=1e-5)\n }\n}\n";
    let (report, dir) = train(source, Path::new("."), "phase-tol", None, None);
    let c = &report.constraints[0];
    assert_eq!((c.mode.as_str(), c.tol), ("project", 1e-5));
    assert!(c.satisfied, "{c:?}");
    let spec = BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None };
    let worst = saved_rhos(&dir, "conv1.weight", &spec).into_iter().fold(0.0, f64::max);
    // f32 weights: a margin for rounding.
    assert!(worst <= 1e-5 + 1e-6, "ρ {worst}");
}

/// Adam counts steps per parameter, as PyTorch's `state['step']`: a layer
/// frozen in phase 1 that joins the carried-on optimizer in phase 2 takes a
/// first step, whose bias correction makes it `lr · g / (|g| + ε)`, so every
/// weight moves by `lr` (up to ε). With one run-wide count (t = 2 here) the
/// first update would be `lr · (0.1/0.19) / √(0.001/0.001999) ≈ 0.744 lr`.
#[test]
fn a_layer_unfrozen_in_phase_two_takes_a_first_adam_step() {
    // One step per epoch: the batch holds every training example.
    let source = "model m {
  input [1, 32]
  conv(out=2, k=5)
  tanh
  conv(out=1, k=5)
}
data sines(n=20)
train {
  optimizer = adam(lr=1e-2)
  batch = 64
  phase warmup {
    epochs = 1
    conv1 @freeze
  }
  phase finetune {
    epochs = 1
  }
}
";
    let (after_warmup, warm) = train(source, Path::new("."), "adam-steps-warmup", Some(1), None);
    let (after_finetune, fine) = train(source, Path::new("."), "adam-steps-finetune", None, None);
    assert_eq!(after_warmup.epochs.len(), 1);
    assert_eq!(after_finetune.epochs.len(), 2);
    let load = |d: &Path| candle_core::safetensors::load(d.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let (a, b) = (load(&warm), load(&fine));
    let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for name in ["conv1.weight", "conv1.bias"] {
        for (x, y) in v(&a[name]).iter().zip(v(&b[name])) {
            let moved = (y - x).abs();
            assert!((moved / 1e-2 - 1.0).abs() < 1e-3, "{name} moved by {moved}, Adam's first step is lr = 0.01");
        }
    }
    // conv2 was trained in both phases: its second step is not a first one.
    let moved: Vec<f32> = v(&a["conv2.weight"]).iter().zip(v(&b["conv2.weight"])).map(|(x, y)| (y - x).abs()).collect();
    assert!(moved.iter().any(|m| (m / 1e-2 - 1.0).abs() > 1e-2), "{moved:?}");
}

/// Initial values of every parameter of a model, by name.
fn initial_values(source: &str, seed: u64) -> Result<Vec<(String, Vec<f64>)>, String> {
    let p = program(source, Path::new("."));
    let net = lpn::model::Net::new(&p.model, seed, candle_core::DType::F64).map_err(|e| e.to_string())?;
    Ok(net.params.iter().map(|q| (q.name.to_string(), q.var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap())).collect())
}

/// `@init(file)` loads the bias with the weight, and changing one layer's
/// `@init` leaves every other initial value as it was: each parameter draws
/// from its own stream (seed and parameter name).
#[test]
fn init_from_a_file_loads_the_bias_and_leaves_other_layers_alone() {
    let dir = out_dir("init-file");
    std::fs::create_dir_all(&dir).unwrap();
    let cpu = candle_core::Device::Cpu;
    let w: Vec<f32> = (0..3 * 2 * 5).map(|i| i as f32 * 0.01 - 0.1).collect();
    let weight = candle_core::Tensor::from_vec(w.clone(), (3, 2, 5), &cpu).unwrap();
    let bias = candle_core::Tensor::from_vec(vec![0.5f32, -0.25, 0.125], 3, &cpu).unwrap();
    let both = dir.join("both.safetensors");
    let weight_only = dir.join("weight_only.safetensors");
    candle_core::safetensors::save(&std::collections::HashMap::from([("pre.weight", weight.clone()), ("pre.bias", bias)]), &both).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("conv2.weight", weight)]), &weight_only).unwrap();
    let model = |init: &str| {
        format!(
            "model m {{\n  input [1, 32]\n  conv(out=2, k=5)\n  tanh\n  conv(out=3, k=5) {init}\n  tanh\n  conv(out=1, k=3)\n  \
             global_avgpool\n  linear(out=2)\n}}\ndata waveforms(n=8, classes=2)\n"
        )
    };
    let plain = initial_values(&model(""), 5).unwrap();
    let from_file = initial_values(&model(&format!("@init(file=\"{}\", tensor=\"pre.weight\")", both.display())), 5).unwrap();
    let weight_loaded = initial_values(&model(&format!("@init(file=\"{}\")", weight_only.display())), 5).unwrap();
    let xavier = initial_values(&model("@init(xavier)"), 5).unwrap();
    let names: Vec<&str> = plain.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight", "conv3.bias", "linear1.weight", "linear1.bias"]
    );
    let w64: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    for (i, name) in names.iter().enumerate() {
        match *name {
            "conv2.weight" => {
                assert_eq!(from_file[i].1, w64);
                assert_eq!(weight_loaded[i].1, w64);
                assert_ne!(xavier[i].1, plain[i].1);
            }
            // Loaded with the weight (`pre.weight` → `pre.bias`) ...
            "conv2.bias" => {
                assert_eq!(from_file[i].1, [0.5, -0.25, 0.125]);
                // ... or, absent from the file, its default, as without @init.
                assert_eq!(weight_loaded[i].1, plain[i].1);
            }
            _ => {
                assert_eq!(from_file[i].1, plain[i].1, "{name} moved because conv2 is loaded from a file");
                assert_eq!(weight_loaded[i].1, plain[i].1, "{name}");
                assert_eq!(xavier[i].1, plain[i].1, "{name} moved because conv2 uses xavier");
            }
        }
    }
    // Another seed, other draws.
    assert_ne!(initial_values(&model(""), 6).unwrap()[0].1, plain[0].1);
    // A bias named explicitly must be in the file.
    let e = initial_values(&model(&format!("@init(file=\"{}\", bias=\"conv2.bias\")", weight_only.display())), 5).unwrap_err();
    assert!(e.contains("has no tensor `conv2.bias`"), "{e}");
}

/// A tiny trainable file with one constrained layer (`conv1` or `linear1`).
fn family_model(annotation: &str, linear: bool, epochs: usize) -> String {
    let body = if linear {
        format!(" conv(out=4, k=5)\n relu\n global_avgpool\n linear(out=6) {annotation}\n relu\n linear(out=3)")
    } else {
        format!(" conv(out=3, k=21) {annotation}\n tanh\n conv(out=1, k=5)")
    };
    let data = if linear { "waveforms(classes=3, n=60)" } else { "sines(n=48)" };
    format!("model m {{\n input [1, 64]\n{body}\n}}\ndata {data}\ntrain {{\n epochs = {epochs}\n seed = 3\n}}\n")
}

fn measured(report: &lpn::train::Report) -> f64 {
    let c = &report.constraints[0];
    c.stopband_ratio.or(c.violation).unwrap()
}

/// Arguments that make a family bind on `family_model`'s layer where its
/// schema example would not (`@maxnorm(3)` holds from the start, and the
/// example bands suppress little of what the data needs).
const BINDING_ARGS: &[(&str, &str)] = &[
    ("lowpass", "cutoff=0.3"),
    ("highpass", "cutoff=0.5"),
    ("bandpass", "low=0.3, high=0.6"),
    ("bandstop", "low=0.25, high=0.75"),
    ("dc_gain", "value=0.5"),
    ("maxnorm", "max=0.3"),
    ("lipschitz", "max=0.3"),
];

/// Every constraint family of the schema, with the modes it declares: its
/// name, the arguments to train it with (its example's unless
/// `BINDING_ARGS` says otherwise) and whether it goes on a linear layer. A
/// new family is covered without editing this test.
fn schema_families() -> Vec<(&'static str, String, bool, &'static [lpn::language::schema::Mode])> {
    use lpn::language::schema::{ANNOTATIONS, AnnotationRole, LayerKind};
    let families: Vec<_> = ANNOTATIONS
        .iter()
        .filter_map(|def| match def.role {
            AnnotationRole::Constraint { modes, layers, .. } => {
                let example = def.schema.example.split_once('(').map(|(_, rest)| rest.trim_end_matches(')').to_string());
                let args = BINDING_ARGS.iter().find(|(name, _)| *name == def.schema.name).map(|(_, args)| args.to_string());
                Some((def.schema.name, args.or(example).unwrap_or_default(), !layers.contains(&LayerKind::Conv), modes))
            }
            AnnotationRole::Freeze | AnnotationRole::LearningRate | AnnotationRole::Init => None,
        })
        .collect();
    for (name, _) in BINDING_ARGS {
        assert!(families.iter().any(|f| f.0 == *name), "BINDING_ARGS names `{name}`, which the schema does not have");
    }
    families
}

#[test]
fn every_family_in_every_mode() {
    let families = schema_families();
    assert!(families.len() >= 12, "{} families", families.len());
    for (family, args, linear, modes) in families {
        let sep = if args.is_empty() { "" } else { ", " };
        // The same run with the penalty weighted 0: the unconstrained dynamics.
        let free = train(
            &family_model(&format!("@{family}({args}{sep}mode=penalty, weight=0)"), linear, 4),
            Path::new("."),
            &format!("{family}-free"),
            None,
            None,
        )
        .0;
        for &mode in modes {
            use lpn::language::schema::Mode;
            let extra = if mode == Mode::Penalty { ", weight=5" } else { "" };
            let annotation = format!("@{family}({args}{sep}mode={mode}{extra})");
            let (report, _) = train(&family_model(&annotation, linear, 4), Path::new("."), &format!("{family}-{mode}"), None, None);
            let c = &report.constraints[0];
            match mode {
                // The hard modes meet tol (ρ) or hold exactly.
                Mode::Project | Mode::Reparam | Mode::Freeze => {
                    let tolerance = if c.stopband_ratio.is_some() { c.tol } else { 1e-6 };
                    assert!(measured(&report) <= tolerance + 1e-6, "{annotation}: {:?}", c);
                }
                // The soft ones pull the figure below the unconstrained run's.
                Mode::Penalty | Mode::Lagrangian => assert!(
                    measured(&report) < measured(&free),
                    "{annotation}: {} not below the unconstrained {}",
                    measured(&report),
                    measured(&free)
                ),
            }
        }
    }
}

#[test]
fn composed_reparametrization_meets_all_three_in_the_saved_weights() {
    let source = std::fs::read_to_string("tests/ui/ok_composed_reparams.lpn").unwrap();
    let (report, dir) = train(&source, Path::new("."), "composed", Some(2), None);
    assert!(report.constraints.iter().all(|c| c.satisfied), "{:#?}", report.constraints);
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let w: Vec<f32> = tensors["conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    let band = BandSpec { family: Family::Lowpass, low: 0.3, high: 0.3, transition: None, fs: None };
    for (h, rho) in w.chunks(15).zip(saved_rhos(&dir, "conv1.weight", &band)) {
        assert!(rho <= 0.01 + 1e-6, "ρ {rho}");
        assert!((0..15).all(|i| (h[i] - h[14 - i]).abs() < 1e-6), "not symmetric: {h:?}");
        assert!((h.iter().sum::<f32>() - 1.0).abs() < 1e-5, "sum {}", h.iter().sum::<f32>());
    }
}

#[test]
fn two_d_band_constraint_in_every_mode() {
    let free = train(&two_d("mode=penalty, weight=0"), Path::new("examples"), "2d-free", None, None).0;
    // Every mode `@lowpass` declares in the schema.
    let lpn::language::schema::AnnotationRole::Constraint { modes, .. } = lpn::language::schema::annotation("lowpass").unwrap().role else {
        panic!("lowpass is a constraint")
    };
    for mode in modes.iter().map(|m| m.name()) {
        let written = if mode == "penalty" { "penalty, weight=5" } else { mode };
        let (report, _) = train(&two_d(&format!("mode={written}")), Path::new("examples"), &format!("2d-{mode}"), None, None);
        let rho = report.constraints[0].stopband_ratio.unwrap();
        if mode == "freeze" {
            // The designed filter never moves (whether it meets tol is the design's; the checker warns).
            assert_eq!(report.epochs[0].constraints[0].stopband_ratio, report.epochs[1].constraints[0].stopband_ratio);
        } else if ["project", "reparam"].contains(&mode) {
            assert!(rho <= 0.01 + 1e-6, "2-D {mode}: ρ {rho}");
        } else {
            assert!(rho < free.constraints[0].stopband_ratio.unwrap(), "2-D {mode}: ρ {rho} not lowered");
        }
    }
}

fn two_d(mode: &str) -> String {
    format!(
        "model d {{\n input [1, 8, 8]\n conv(out=4, k=5) @lowpass(cutoff=0.4, transition=0.3, {mode})\n relu\n flatten\n linear(out=10)\n}}\ndata ucr(\"data/digits_8x8.csv\")\ntrain {{\n epochs = 2\n batch = 128\n}}\n"
    )
}

#[test]
fn a_blown_up_run_stops_with_the_step_and_layer_and_keeps_the_last_epoch() {
    let source = "model m {\n input [1, 128]\n conv(out=4, k=9)\n relu\n conv(out=1, k=9)\n}\ndata sines(n=64)\ntrain {\n optimizer = sgd(lr=1e6)\n epochs = 3\n}\n";
    let p = program(source, Path::new("."));
    let dir = out_dir("blowup");
    let err =
        lpn::train::train(&p, &lpn::train::Options { out_dir: dir.clone(), epochs: None, seed: None, ..Default::default() }).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("epoch") && text.contains("step") && text.contains("conv"), "{text}");
    // The last complete epoch's weights are on disk and finite.
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    for t in tensors.values() {
        assert!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|x| x.is_finite()));
    }
    // Clipping the gradient norm keeps the same run finite.
    let clipped = source.replace(" epochs = 3", " epochs = 3\n clip = 1.0");
    let (report, _) = train(&clipped, Path::new("."), "blowup-clipped", None, None);
    assert!(report.epochs.iter().all(|e| e.train_loss.is_finite()));
}

/// A classifier whose validation loss goes up and down (a large learning
/// rate): at seed 1 its best epoch is the 7th of 8 (val loss 0.71, then 1.09).
const SWINGING: &str = "model swinging {
  input [1, 64]
  conv(out=4, k=9)
  relu
  global_avgpool
  linear(out=3)
}
data {
  train = waveforms(n=120)
  test = waveforms(n=60, seed=2)
}
train {
  optimizer = adam(lr=0.1)
  epochs = 8
  batch = 16
  seed = 1
  KEEP
}
";

fn swinging(settings: &str) -> lpn::language::ir::Program {
    program(&SWINGING.replace("KEEP", settings), Path::new("."))
}

#[test]
fn keep_best_ends_with_the_best_validation_epochs_weights() {
    let best_dir = out_dir("keep-best");
    let best = lpn::train::train(&swinging("keep = best"), &lpn::train::Options::new(&best_dir)).unwrap();
    let kept = best.kept_epoch.unwrap();
    assert_eq!(Some(kept), lpn::train::best_epoch(&best.epochs, lpn::language::ir::Monitor::ValLoss));
    assert!(kept < best.epochs.len(), "the example must have a best epoch before its last (kept {kept})");
    assert_eq!(best.stopped, Some(lpn::train::Stopped::Epochs));
    // The same run cut at that epoch and keeping its last weights: the same
    // weights, bit for bit, and the same test figures.
    let cut_dir = out_dir("keep-best-cut");
    let cut =
        lpn::train::train(&swinging("keep = last"), &lpn::train::Options { epochs: Some(kept), ..lpn::train::Options::new(&cut_dir) })
            .unwrap();
    assert_eq!(cut.kept_epoch, Some(kept));
    let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(bytes(&best_dir), bytes(&cut_dir));
    assert_eq!(best.test.as_ref().map(|t| (t.loss, t.accuracy)), cut.test.as_ref().map(|t| (t.loss, t.accuracy)));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(best_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        (json["keep"].as_str(), json["monitor"].as_str(), json["kept_epoch"].as_u64()),
        (Some("best"), Some("val_loss"), Some(kept as u64))
    );
    assert_eq!(json["stopped"], "epochs");
}

#[test]
fn early_stop_ends_the_run_when_the_validation_loss_stops_improving() {
    let full = lpn::train::train(&swinging("keep = last"), &lpn::train::Options::new(out_dir("early-full"))).unwrap();
    let losses: Vec<f64> = full.epochs.iter().map(|e| e.val_loss.unwrap()).collect();
    // The first epoch after which the loss does not improve for one epoch.
    let stop_after = (1..losses.len()).find(|&i| losses[i] >= losses[..i].iter().cloned().fold(f64::INFINITY, f64::min)).unwrap() + 1;
    assert!(stop_after < losses.len());
    for (keep, kept) in [("keep = last", stop_after), ("keep = best", stop_after - 1)] {
        let r = lpn::train::train(
            &swinging(&format!("{keep}\n  early_stop = 1")),
            &lpn::train::Options::new(out_dir(&format!("early-{}", kept))),
        )
        .unwrap();
        assert_eq!(r.epochs.len(), stop_after, "{keep}");
        assert_eq!(r.stopped, Some(lpn::train::Stopped::EarlyStop));
        assert_eq!(r.kept_epoch, Some(kept), "{keep}");
        // Up to the stop, the very same run.
        assert_eq!(
            r.epochs.iter().map(|e| e.val_loss).collect::<Vec<_>>(),
            full.epochs[..stop_after].iter().map(|e| e.val_loss).collect::<Vec<_>>()
        );
    }
}

/// Asks the run to stop after a given step (epoch, step).
struct StopAt {
    at: (usize, usize),
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl lpn::train::Observer for StopAt {
    fn event(&mut self, event: &lpn::train::Event<'_>) {
        if let lpn::train::Event::StepDone { epoch, step, .. } = event
            && (*epoch, *step) == self.at
        {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn the_best_epochs_weights_survive_an_interruption() {
    let reference_dir = out_dir("best-reference");
    let reference = lpn::train::train(&swinging("keep = best"), &lpn::train::Options::new(&reference_dir)).unwrap();
    let kept = reference.kept_epoch.unwrap();
    // Stopped before the best epoch, and after it (in the middle of an epoch).
    for at in [(2, 3), (kept + 1, 2)] {
        let dir = out_dir(&format!("best-stopped-{}-{}", at.0, at.1));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let opts = lpn::train::Options { stop: Some(stop.clone()), ..lpn::train::Options::new(&dir) };
        let e = lpn::train::train_observed(&swinging("keep = best"), &opts, &mut StopAt { at, stop: stop.clone() });
        assert!(matches!(e, Err(lpn::train::TrainError::Interrupted { .. })), "{at:?}");
        stop.store(false, std::sync::atomic::Ordering::SeqCst);
        let resumed = lpn::train::train(&swinging("keep = best"), &lpn::train::Options { resume: true, ..opts }).unwrap();
        assert_eq!(resumed.kept_epoch, Some(kept));
        let bytes = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
        assert_eq!(bytes(&dir), bytes(&reference_dir), "stopped at {at:?}");
    }
}
