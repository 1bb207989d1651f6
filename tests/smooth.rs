//! `@smooth(order=2)` end to end, on a tiny denoiser: mode=project and
//! mode=reparam leave every saved kernel with ρ ≤ tol (ρ recomputed here from
//! the saved weights with Q = DᵀD/16 built from its definition, not from the
//! library's operator), mode=freeze saves the smoothest unit-DC kernel, and a
//! penalty lowers ρ below the unconstrained run's.

use std::path::{Path, PathBuf};

const MODEL: &str = "model m {
  input [1, 64]
  conv(out=3, k=15) @smooth(order=2, ANNOTATION)
  tanh
  conv(out=1, k=5)
}
data sines(n=48, noise=0.3)
train {
  epochs = 3
  batch = 16
  seed = 11
}
";

fn train(annotation: &str, name: &str) -> (lpn::train::Report, PathBuf) {
    let source = MODEL.replace("ANNOTATION", annotation);
    let (_, checked) = lpn::check_source(&source, Path::new("."));
    assert!(!checked.has_errors(), "{:#?}", checked.problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>());
    let out = std::env::temp_dir().join(format!("lpn-smooth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let options = lpn::train::Options { out_dir: out.clone(), ..Default::default() };
    (lpn::train::train(&checked.program.unwrap(), &options).unwrap(), out)
}

/// Second differences of the kernel taken as zero beyond its ends, over 4² = 16.
fn rho(h: &[f64]) -> f64 {
    let k = h.len() as isize;
    let at = |i: isize| if (0..k).contains(&i) { h[i as usize] } else { 0.0 };
    let rough: f64 = (-1..=k).map(|i| (at(i - 1) - 2.0 * at(i) + at(i + 1)).powi(2)).sum();
    rough / (16.0 * h.iter().map(|x| x * x).sum::<f64>())
}

fn saved_kernels(dir: &Path) -> Vec<Vec<f64>> {
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let w: Vec<f32> = tensors["conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    w.chunks(15).map(|h| h.iter().map(|&x| x as f64).collect()).collect()
}

#[test]
fn project_and_reparam_keep_every_saved_kernel_within_tol() {
    for mode in ["project", "reparam"] {
        let (report, dir) = train(&format!("mode={mode}, tol=0.005"), mode);
        let c = &report.constraints[0];
        assert_eq!((c.kind.as_str(), c.mode.as_str()), ("smooth", mode));
        // report.json names the family's number as the user wrote it.
        assert_eq!(c.params.get("order").and_then(|v| v.as_f64()), Some(2.0), "{}", c.params);
        assert!(c.satisfied, "{mode}: {c:?}");
        for h in saved_kernels(&dir) {
            assert!(rho(&h) <= 0.005 + 1e-6, "{mode}: saved kernel has ρ = {} > tol: {h:?}", rho(&h));
        }
        // The report's ρ is the same figure.
        let worst = saved_kernels(&dir).iter().map(|h| rho(h)).fold(0.0, f64::max);
        assert!((c.stopband_ratio.unwrap() - worst).abs() < 1e-5, "{} vs {worst}", c.stopband_ratio.unwrap());
    }
}

#[test]
fn penalty_lowers_rho_below_the_unconstrained_run() {
    let (free, _) = train("mode=penalty, weight=0", "free");
    let (held, _) = train("mode=penalty, weight=5", "penalty");
    let (free, held) = (free.constraints[0].stopband_ratio.unwrap(), held.constraints[0].stopband_ratio.unwrap());
    assert!(held < free, "penalty ρ {held} not below the unconstrained {free}");
}

#[test]
fn freeze_saves_the_smoothest_unit_dc_kernel() {
    let (report, dir) = train("mode=freeze", "freeze");
    // numpy (tests/fixtures/smooth_operator.json): λ_min of order 2 on 15 taps.
    let lambda_min = 0.00037589428792577967;
    for h in saved_kernels(&dir) {
        // One input channel: the design itself, summing to 1, with ρ = λ_min.
        assert!((h.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{h:?}");
        assert!((rho(&h) - lambda_min).abs() < 1e-6, "ρ {} vs λ_min {lambda_min}", rho(&h));
        assert!((0..15).all(|i| (h[i] - h[14 - i]).abs() < 1e-6), "not symmetric: {h:?}");
    }
    assert!(report.constraints[0].satisfied);
}
