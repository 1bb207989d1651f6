//! End to end: check a file, train it for a few epochs, read back what was
//! written. Kept small so the suite stays fast (run with `--release`).

use std::path::{Path, PathBuf};

use lpn::bands::BandSpec;
use lpn::schema::Family;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lpn-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn program(source: &str, base: &Path) -> lpn::ir::Program {
    let (_, checked) = lpn::check_source(source, base);
    assert!(!checked.has_errors(), "{:#?}", checked.problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>());
    checked.program.unwrap()
}

fn train(source: &str, base: &Path, name: &str, epochs: Option<usize>, seed: Option<u64>) -> (lpn::train::Report, PathBuf) {
    let p = program(source, base);
    let out = out_dir(name);
    let report =
        lpn::train::train(&p, base, &lpn::train::Options { out_dir: out.clone(), epochs, seed, quiet: true, ..Default::default() })
            .unwrap();
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
    let design = lpn::bands::design(&BandSpec { family: Family::Lowpass, low: 0.2, high: 0.2, transition: None, fs: None }, 15);
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
    for (file, epochs) in
        [("gunpoint_classifier.lpn", 3), ("digits_2d.lpn", 2), ("waveforms_frozen_frontend.lpn", 2), ("ecg_denoiser.lpn", 2)]
    {
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
    let e = lpn::train::evaluate_file(&p, Path::new("examples"), &dir.join("model.safetensors")).unwrap();
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
    std::fs::write(&weights, b"not a safetensors file").unwrap();
    let source = format!("model m {{\n input [1, 32]\n conv(out=1, k=3) @init(file=\"{}\")\n}}\ndata sines(n=16)\n", weights.display());
    let p = program(&source, Path::new("."));
    let err = lpn::train::train(
        &p,
        Path::new("."),
        &lpn::train::Options { out_dir: dir.join("out"), epochs: Some(1), seed: None, quiet: true, ..Default::default() },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("conv1") && text.contains("w.safetensors"), "{text}");
    // Trained weights of another model for `eval`.
    let (_, other) = train(&denoiser("project"), Path::new("."), "other", Some(1), None);
    let gun = std::fs::read_to_string("examples/gunpoint_classifier.lpn").unwrap();
    let p = program(&gun, Path::new("examples"));
    let err = lpn::train::evaluate_file(&p, Path::new("examples"), &other.join("model.safetensors")).unwrap_err();
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
    let panels = lpn::train::response::panels(&p, Path::new("."), &dir.join("model.safetensors")).unwrap();
    assert_eq!(panels.len(), 1);
    assert_eq!(panels[0].kernels.len(), 4);
    let svg = dir.join("response.svg");
    lpn::train::response::draw(&panels, Some(&report), &svg).unwrap();
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

#[test]
fn every_family_in_every_mode() {
    let families: &[(&str, &str, bool)] = &[
        ("lowpass", "cutoff=0.3", false),
        ("highpass", "cutoff=0.5", false),
        ("bandpass", "low=0.3, high=0.6", false),
        ("bandstop", "low=0.25, high=0.75", false),
        ("symmetric", "", false),
        ("antisymmetric", "", false),
        ("dc_gain", "value=0.5", false),
        ("nonneg", "", false),
        ("maxnorm", "max=0.3", false),
        ("unitnorm", "", false),
        ("orthogonal", "", true),
        ("lipschitz", "max=0.3", true),
    ];
    for &(family, args, linear) in families {
        let def = lpn::schema::annotation(family).unwrap();
        let lpn::schema::AnnotationRole::Constraint { modes, .. } = def.role else { unreachable!() };
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
        for mode in modes.iter().map(|m| m.name()) {
            let extra = match mode {
                "penalty" => ", weight=5",
                _ => "",
            };
            let annotation = format!("@{family}({args}{sep}mode={mode}{extra})");
            let (report, _) = train(&family_model(&annotation, linear, 4), Path::new("."), &format!("{family}-{mode}"), None, None);
            let c = &report.constraints[0];
            match mode {
                "project" | "reparam" | "freeze" => {
                    let tolerance = if c.stopband_ratio.is_some() { c.tol } else { 1e-6 };
                    assert!(measured(&report) <= tolerance + 1e-6, "{annotation}: {:?}", c);
                }
                _ => assert!(
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
    for mode in ["penalty, weight=5", "project", "reparam", "freeze", "lagrangian"] {
        let (report, _) = train(&two_d(&format!("mode={mode}")), Path::new("examples"), &format!("2d-{mode}"), None, None);
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
    let err = lpn::train::train(
        &p,
        Path::new("."),
        &lpn::train::Options { out_dir: dir.clone(), epochs: None, seed: None, quiet: true, ..Default::default() },
    )
    .unwrap_err();
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
