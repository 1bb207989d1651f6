//! The basis of `mode=reparam` is the documented one (docs/constraints.md):
//! Q's eigenvectors with eigenvalue ≤ tol for one band, the intersection's
//! basis rotated by the eigenvectors of VᵀQV otherwise, smallest eigenvalue
//! first, repeated eigenvalues and signs by the canonical rule. Reference
//! bases from numpy (`tests/reference/make_reparam_fixtures.py`).
// Trains or runs the model: needs the `train` feature (Candle).
#![cfg(feature = "train")]

use lpn::constraint::SetSpec;
use lpn::constraint::bands::{BandSpec, admissible_basis, ordered_basis};
use lpn::language::ir::Constraint;
use lpn::language::schema::{Family, Mode};
use lpn::model::constraints::composed_subspace;
use nalgebra::DMatrix;
use serde_json::Value;

fn constraint(c: &[Value]) -> Constraint {
    let family = match c[0].as_str().unwrap() {
        "lowpass" => Family::Lowpass,
        "highpass" => Family::Highpass,
        "symmetric" => Family::Symmetric,
        "antisymmetric" => Family::Antisymmetric,
        "dc_gain" => Family::DcGain,
        other => panic!("{other}"),
    };
    let band = matches!(family, Family::Lowpass | Family::Highpass).then(|| {
        let cutoff = c[1].as_f64().unwrap();
        BandSpec { family, low: cutoff, high: cutoff, transition: c[2].as_f64(), fs: None }
    });
    let value = if family == Family::DcGain { c[1].as_f64() } else { None };
    let set = SetSpec::read(family, |_| value, || band).unwrap();
    Constraint {
        family,
        mode: Mode::Reparam,
        weight: 0.0,
        tol: if band.is_some() { c[3].as_f64().unwrap() } else { 0.0 },
        dual_lr: 0.0,
        set,
        span: Default::default(),
    }
}

fn matrix(t: &Value) -> DMatrix<f64> {
    let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data: Vec<f64> = t["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    DMatrix::from_row_slice(shape[0], shape[1], &data)
}

struct Case {
    name: String,
    dims: Vec<usize>,
    constraints: Vec<Constraint>,
    reference: DMatrix<f64>,
}

fn cases() -> Vec<Case> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string("tests/fixtures/reparam_basis.json").unwrap()).unwrap();
    assert_eq!(v["tie"].as_f64(), Some(lpn::constraint::bands::EIGENVALUE_TIE));
    assert_eq!(v["pivot"].as_f64(), Some(lpn::constraint::bands::PIVOT_TOL));
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            dims: c["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect(),
            constraints: c["constraints"].as_array().unwrap().iter().map(|c| constraint(c.as_array().unwrap())).collect(),
            reference: matrix(&c["basis"]),
        })
        .collect()
}

/// The sum of the cases' band operators (0 without a band).
fn stopband(case: &Case) -> DMatrix<f64> {
    let n: usize = case.dims.iter().product();
    case.constraints.iter().filter_map(|c| c.band()).fold(DMatrix::zeros(n, n), |q, b| q + b.stopband_operator(&case.dims))
}

fn assert_same(name: &str, ours: &DMatrix<f64>, reference: &DMatrix<f64>) {
    assert_eq!(ours.shape(), reference.shape(), "{name}: shape");
    let diff = (ours - reference).abs().max();
    assert!(diff < 1e-6, "{name}: basis differs from numpy's by {diff}\nours {ours:.4}\nnumpy {reference:.4}");
}

#[test]
fn the_reparam_basis_is_numpys_documented_basis() {
    for case in cases() {
        let together: Vec<&Constraint> = case.constraints.iter().collect();
        let (basis, _) = composed_subspace(&together, &case.dims).unwrap();
        assert_same(&case.name, &basis, &case.reference);
        // One band alone: Q's own eigenvectors, as `admissible_basis` gives them.
        if let [c] = case.constraints.as_slice()
            && let Some(band) = &c.band()
        {
            assert_same(&case.name, &admissible_basis(&band.stopband_operator(&case.dims), c.tol), &case.reference);
        }
    }
}

#[test]
fn the_basis_diagonalises_vtqv_in_ascending_order() {
    for case in cases() {
        let together: Vec<&Constraint> = case.constraints.iter().collect();
        let (v, _) = composed_subspace(&together, &case.dims).unwrap();
        let d = v.transpose() * stopband(&case) * &v;
        let r = v.ncols();
        assert!((v.transpose() * &v - DMatrix::identity(r, r)).abs().max() < 1e-12, "{}: not orthonormal", case.name);
        for i in 0..r {
            for j in 0..r {
                // Exactly diagonal but inside a cluster of repeated eigenvalues,
                // whose eigenvalues differ by at most the tie tolerance.
                let tie = r as f64 * lpn::constraint::bands::EIGENVALUE_TIE;
                let bound = if (d[(i, i)] - d[(j, j)]).abs() <= tie { tie } else { 1e-12 };
                if i != j {
                    assert!(d[(i, j)].abs() < bound, "{}: VᵀQV[{i},{j}] = {}", case.name, d[(i, j)]);
                }
            }
            if i > 0 {
                let tie = r as f64 * lpn::constraint::bands::EIGENVALUE_TIE;
                assert!(d[(i, i)] >= d[(i - 1, i - 1)] - tie, "{}: eigenvalues not ascending", case.name);
            }
        }
    }
}

/// The basis depends on the subspace alone: any other orthonormal basis of
/// the same span (here rotated by a random orthogonal matrix, which mixes
/// the 2-D case's repeated eigenvalues) gives the same result, and so does a
/// second run.
#[test]
fn the_basis_does_not_depend_on_the_solvers_choices() {
    let mut rng = lpn::rng::Rng::new(3);
    for case in cases() {
        let q = stopband(&case);
        let r = case.reference.ncols();
        let random = DMatrix::from_fn(r, r, |_, _| rng.normal());
        let rotation = random.qr().q();
        let rotated = &case.reference * rotation;
        let again = ordered_basis(&rotated, &q);
        assert_same(&case.name, &again, &case.reference);
        assert!((ordered_basis(&rotated, &q) - &again).abs().max() == 0.0, "{}: not reproducible", case.name);
    }
}

/// The tie rule: within a cluster of repeated eigenvalues each vector has a
/// positive component at its pivot (the first unit vector whose projection
/// is not yet covered) and zeros before it where the earlier vectors pivot;
/// for the symmetric 7-tap basis that is (e₁+e₇)/√2, (e₂+e₆)/√2, (e₃+e₅)/√2, e₄.
#[test]
fn the_tie_rule_on_a_known_case() {
    let case = cases().into_iter().find(|c| c.name == "symmetric_7").unwrap();
    let together: Vec<&Constraint> = case.constraints.iter().collect();
    let (v, _) = composed_subspace(&together, &case.dims).unwrap();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let want = DMatrix::from_row_slice(
        7,
        4,
        &[h, 0., 0., 0., 0., h, 0., 0., 0., 0., h, 0., 0., 0., 0., 1., 0., 0., h, 0., 0., h, 0., 0., h, 0., 0., 0.],
    );
    assert_same("symmetric_7", &v, &want);
}

/// Adam on the coordinates of the documented basis, re-implemented here in
/// f64 (convolution with `same` padding, mean squared error, Adam's formula)
/// with the basis from numpy's fixture: lpn's trained weights follow it. In
/// another orthonormal basis of the same subspace Adam's trajectory differs
/// (checked below), so this pins the basis the training really uses.
#[test]
fn adam_on_the_coordinates_follows_the_documented_basis() {
    let source = "model m {
  input [1, 64]
  conv(out=1, k=15, bias=false) @lowpass(cutoff=0.2, transition=0.1, tol=0.01, mode=reparam)
}
data sines(n=24)
train {
  optimizer = adam(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
  loss = mse
  batch = 64
  epochs = 4
}
";
    let (_, checked) = lpn::check_source(source, std::path::Path::new("."));
    assert!(!checked.has_errors(), "{:?}", checked.problems.iter().map(|p| p.to_diagnostic().message).collect::<Vec<_>>());
    let program = checked.program.unwrap();
    let out = |name: &str| std::env::temp_dir().join(format!("lpn-reparam-{}-{name}", std::process::id()));
    let run = |epochs: usize, name: &str| {
        let dir = out(name);
        let _ = std::fs::remove_dir_all(&dir);
        let opts = lpn::train::Options { out_dir: dir.clone(), epochs: Some(epochs), ..Default::default() };
        lpn::train::train(&program, &opts).unwrap();
        let t = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
        t["conv1.weight"].flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap()
    };
    let reference = cases().into_iter().find(|c| c.name == "lowpass_15").unwrap().reference;
    let start = nalgebra::DVector::from_vec(run(0, "start"));
    let data = lpn::data::load(&program.data, &program.model.input.0).unwrap().train;
    let lpn::data::Targets::Signals(targets) = &data.targets else { panic!("denoising data") };
    let (len, k, pad) = (64, 15, 7);
    let xs: Vec<Vec<f64>> = (0..data.len)
        .map(|b| {
            let mut x = vec![0.0; len + 2 * pad];
            for i in 0..len {
                x[pad + i] = data.inputs[b * len + i] as f64;
            }
            x
        })
        .collect();
    // Adam on c with h = V c, from c = Vᵀ h₀.
    let adam = |v: &DMatrix<f64>, steps: usize| {
        let mut c = v.transpose() * &start;
        let (mut m, mut s) = (nalgebra::DVector::zeros(c.len()), nalgebra::DVector::zeros(c.len()));
        for t in 1..=steps as i32 {
            let h = v * &c;
            let mut grad_h = nalgebra::DVector::<f64>::zeros(k);
            for (b, x) in xs.iter().enumerate() {
                for i in 0..len {
                    let y: f64 = (0..k).map(|j| h[j] * x[i + j]).sum();
                    let r = 2.0 * (y - targets[b * len + i] as f64) / (data.len * len) as f64;
                    for j in 0..k {
                        grad_h[j] += r * x[i + j];
                    }
                }
            }
            let g = v.transpose() * grad_h;
            m = m * 0.9 + &g * 0.1;
            s = s * 0.999 + g.component_mul(&g) * 0.001;
            let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.999f64.powi(t));
            c -= (&m / c1).zip_map(&(&s / c2), |m, s| 1e-2 * m / (s.sqrt() + 1e-8));
        }
        v * c
    };
    let steps_per_epoch = data.len.div_ceil(64);
    let trained = nalgebra::DVector::from_vec(run(4, "trained"));
    let expected = adam(&reference, 4 * steps_per_epoch);
    let scale = expected.abs().max();
    let error = (&trained - &expected).abs().max() / scale;
    assert!(error < 1e-4, "lpn's weights differ from Adam in the documented basis by {error} (relative)\n{trained:.5}\n{expected:.5}");
    // The test can tell bases apart: another basis of the same subspace gives
    // other weights.
    let rotation = DMatrix::from_row_slice(2, 2, &[0.6, -0.8, 0.8, 0.6]);
    let other = adam(&(&reference * rotation), 4 * steps_per_epoch);
    let apart = (&other - &expected).abs().max() / scale;
    assert!(apart > 100.0 * error.max(1e-6), "another basis is only {apart} apart");
}
