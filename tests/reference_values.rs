//! The feasibility bound λ_min(Q) against values computed independently with
//! numpy/scipy by `tests/reference/feasibility.py` (a dense DFT of the
//! stopband, and scipy's DPSS concentration ratios for low-pass).

use lpn::constraint::bands::BandSpec;
use lpn::language::schema::Family;

fn family(name: &str) -> Family {
    match name {
        "lowpass" => Family::Lowpass,
        "highpass" => Family::Highpass,
        "bandpass" => Family::Bandpass,
        "bandstop" => Family::Bandstop,
        _ => unreachable!(),
    }
}

/// Our spec whose stopband edges are exactly `low`/`high` (transition 0).
fn spec(name: &str, low: f64, high: f64) -> BandSpec {
    BandSpec { family: family(name), low, high, transition: Some(0.0), fs: None }
}

fn close(ours: f64, reference: f64, what: &str) {
    // The dense grid has ~1e-5 quadrature error; the exact sinc formula is ours.
    let tol = 2e-6 + 5e-3 * reference.abs();
    assert!((ours - reference).abs() <= tol, "{what}: ours {ours:e}, reference {reference:e}");
}

// Printed by tests/reference/feasibility.py: family, k, low, high, dense DFT, DPSS.
const ONE_D: &[(&str, usize, f64, f64, f64, f64)] = &[
    ("lowpass", 15, 0.06, 0.06, 2.6426854496e-01, 2.6424955934e-01),
    ("lowpass", 15, 0.2, 0.2, 9.7995564794e-04, 9.8050464489e-04),
    ("lowpass", 31, 0.1, 0.1, 8.0075667929e-04, 8.0120670823e-04),
    ("lowpass", 64, 0.05, 0.05, 6.1264268416e-04, 6.1123415381e-04),
    ("highpass", 15, 0.3, 0.3, 2.6651352337e-16, f64::NAN),
    ("highpass", 9, 0.5, 0.5, 2.9758719198e-06, f64::NAN),
    ("bandpass", 21, 0.2, 0.5, 3.7970165172e-04, f64::NAN),
    ("bandstop", 21, 0.3, 0.6, 8.0709446127e-14, f64::NAN),
];

// k, edge, λ_min for the separable 2-D low-pass.
const TWO_D: &[(usize, f64, f64)] = &[(3, 0.7, 7.4171596061e-03), (5, 0.4, 2.7702791366e-02), (7, 0.3, 2.4051115420e-02)];

#[test]
fn lambda_min_matches_dense_dft_and_dpss() {
    for &(name, k, low, high, dense, slepian) in ONE_D {
        let ours = spec(name, low, high).lambda_min(&[k]);
        close(ours, dense, &format!("{name} k={k} dense"));
        if !slepian.is_nan() {
            close(ours, slepian, &format!("{name} k={k} dpss"));
        }
    }
}

#[test]
fn two_d_lambda_min_matches_dense_dft() {
    for &(k, edge, reference) in TWO_D {
        let ours = spec("lowpass", edge, edge).lambda_min(&[k, k]);
        close(ours, reference, &format!("2-D lowpass k={k}"));
    }
}

#[test]
fn checker_rejects_the_notes_example_with_the_bound_in_the_message() {
    // k = 15, ν_s = 0.06: λ_min ≈ 0.264 > tol = 0.01.
    let source = "model m {\n  input [1, 256]\n  conv(out=4, k=15) @lowpass(cutoff=0.06, transition=0.0001, tol=0.01)\n}\ndata sines()\n";
    let (_, checked) = lpn::check_source(source, std::path::Path::new("."));
    let d = checked.problems.iter().map(|p| p.to_diagnostic()).find(|d| d.code == "E0028").expect("E0028");
    assert!(d.message.contains("0.26"), "{}", d.message);
    assert!(d.help.unwrap().contains("k="));
}

// ρ of h[n] = cos(a·n)·exp(−b·n) from a dense FFT (numpy, 2^16 points), printed by
// tests/reference/feasibility.py: family, k, a, b, low edge, high edge, ρ.
const RHO_FFT: &[(&str, usize, f64, f64, f64, f64, f64)] = &[
    ("lowpass", 15, 0.3, 0.1, 0.4, 0.4, 7.9782326081e-02),
    ("lowpass", 31, 1.5, 0.05, 0.25, 0.25, 9.8136059581e-01),
    ("highpass", 21, 2.5, 0.02, 0.5, 0.5, 3.2093494652e-02),
    ("bandpass", 25, 1.2, 0.03, 0.2, 0.6, 4.0564042768e-02),
    ("bandstop", 17, 0.9, 0.0, 0.3, 0.7, 4.0038679289e-01),
];

#[test]
fn stopband_ratio_matches_a_dense_fft() {
    for &(name, k, a, b, low, high, reference) in RHO_FFT {
        let h = nalgebra::DVector::from_fn(k, |n, _| (a * n as f64).cos() * (-b * n as f64).exp());
        let q = spec(name, low, high).stopband_operator(&[k]);
        let ours = (h.transpose() * &q * &h)[0] / h.norm_squared();
        close(ours, reference, &format!("ρ {name} k={k}"));
    }
}
