//! Properties of the constraint machinery over random specs and kernels:
//! projection is idempotent and never raises ρ, projected and reparametrized
//! kernels meet tol, and Dykstra's projections meet several constraints at once.
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

use lpn::constraint::bands::{BandSpec, admissible_basis, admissible_projector};
use lpn::language::schema::Family;
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

fn rho(q: &DMatrix<f64>, h: &DVector<f64>) -> f64 {
    (h.transpose() * q * h)[0] / h.norm_squared()
}

fn spec() -> impl Strategy<Value = (BandSpec, usize, f64)> {
    (0usize..4, 0.05f64..0.9, 0.05f64..0.9, 9usize..40, prop_oneof![Just(0.01), Just(0.05), Just(1e-3)]).prop_filter_map(
        "a band with a stopband that some kernel can meet",
        |(f, a, b, k, tol)| {
            let family = [Family::Lowpass, Family::Highpass, Family::Bandpass, Family::Bandstop][f];
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            if matches!(family, Family::Bandpass | Family::Bandstop) && high - low < 0.1 {
                return None;
            }
            let spec = BandSpec {
                family,
                low,
                high: if family.is_band() && matches!(family, Family::Lowpass | Family::Highpass) { low } else { high },
                transition: None,
                fs: None,
            };
            if spec.stopband(k).is_empty() || spec.lambda_min(&[k]) > tol {
                return None;
            }
            Some((spec, k, tol))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn projection_is_idempotent_and_never_raises_rho((spec, k, tol) in spec(), seed in any::<u64>()) {
        let q = spec.stopband_operator(&[k]);
        let (p, rank) = admissible_projector(&q, tol);
        prop_assert!(rank > 0);
        prop_assert!((&p * &p - &p).abs().max() < 1e-9);
        let mut rng = lpn::rng::Rng::new(seed);
        let h = DVector::from_fn(k, |_, _| rng.normal());
        let ph = &p * &h;
        if ph.norm() > 1e-9 {
            prop_assert!(rho(&q, &ph) <= tol + 1e-9, "ρ(Ph) = {}", rho(&q, &ph));
            prop_assert!(rho(&q, &ph) <= rho(&q, &h) + 1e-9);
        }
    }

    #[test]
    fn any_reparam_coordinates_meet_tol((spec, k, tol) in spec(), seed in any::<u64>()) {
        let q = spec.stopband_operator(&[k]);
        let v = admissible_basis(&q, tol);
        prop_assert!(v.ncols() > 0);
        // Orthonormal columns.
        prop_assert!((v.transpose() * &v - DMatrix::identity(v.ncols(), v.ncols())).abs().max() < 1e-9);
        let mut rng = lpn::rng::Rng::new(seed);
        let c = DVector::from_fn(v.ncols(), |_, _| rng.normal() * 10.0);
        let h = &v * c;
        prop_assert!(rho(&q, &h) <= tol + 1e-9);
    }
}

#[test]
fn dykstra_meets_a_band_and_nonnegativity_together() {
    // A low-pass that must also be non-negative (a smoothing kernel): their
    // intersection is convex and not empty (a Gaussian-like bump is in it).
    let source = "model m {\n input [1, 64]\n conv(out=3, k=15) @lowpass(cutoff=0.3, tol=0.02) @nonneg @dc_gain(1.0)\n conv(out=1, k=3)\n}\ndata sines(n=32)\ntrain { epochs = 1 }\n";
    let (_, checked) = lpn::check_source(source, std::path::Path::new("."));
    let program = checked.program.expect("checks");
    let dir = std::env::temp_dir().join(format!("lpn-dykstra-{}", std::process::id()));
    // A process id is reused: a folder left by an earlier process with the
    // same id would hold a finished run, which `train` refuses to overwrite.
    let _ = std::fs::remove_dir_all(&dir);
    let report =
        lpn::train::train(&program, &lpn::train::Options { out_dir: dir.clone(), epochs: None, seed: None, ..Default::default() }).unwrap();
    let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let w: Vec<f32> = tensors["conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    let spec = BandSpec { family: Family::Lowpass, low: 0.3, high: 0.3, transition: None, fs: None };
    let q = spec.stopband_operator(&[15]);
    for kernel in w.chunks(15) {
        let h = DVector::from_iterator(15, kernel.iter().map(|&x| x as f64));
        assert!(rho(&q, &h) <= 0.02 + 1e-4, "ρ = {}", rho(&q, &h));
        assert!(kernel.iter().all(|&x| x >= -1e-5), "negative tap in {kernel:?}");
        assert!((kernel.iter().sum::<f32>() - 1.0).abs() < 1e-3, "sum {}", kernel.iter().sum::<f32>());
    }
    assert!(report.constraints.iter().all(|c| c.satisfied), "{:#?}", report.constraints);
}
