//! The basis of `mode=reparam` is the documented one (docs/constraints.md):
//! Q's eigenvectors with eigenvalue ≤ tol for one band, the intersection's
//! basis rotated by the eigenvectors of VᵀQV otherwise, smallest eigenvalue
//! first, repeated eigenvalues and signs by the canonical rule. Reference
//! bases from numpy (`tests/reference/make_reparam_fixtures.py`).

use lpn::bands::{BandSpec, admissible_basis, ordered_basis};
use lpn::ir::Constraint;
use lpn::lower::constraints::composed_subspace;
use lpn::schema::{Family, Mode};
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
    Constraint {
        family,
        mode: Mode::Reparam,
        weight: 0.0,
        tol: if band.is_some() { c[3].as_f64().unwrap() } else { 0.0 },
        dual_lr: 0.0,
        band,
        value: if family == Family::DcGain { c[1].as_f64() } else { None },
        lambda_min: None,
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
    assert_eq!(v["tie"].as_f64(), Some(lpn::bands::EIGENVALUE_TIE));
    assert_eq!(v["pivot"].as_f64(), Some(lpn::bands::PIVOT_TOL));
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
    case.constraints.iter().filter_map(|c| c.band.as_ref()).fold(DMatrix::zeros(n, n), |q, b| q + b.stopband_operator(&case.dims))
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
            && let Some(band) = &c.band
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
                let tie = r as f64 * lpn::bands::EIGENVALUE_TIE;
                let bound = if (d[(i, i)] - d[(j, j)]).abs() <= tie { tie } else { 1e-12 };
                if i != j {
                    assert!(d[(i, j)].abs() < bound, "{}: VᵀQV[{i},{j}] = {}", case.name, d[(i, j)]);
                }
            }
            if i > 0 {
                let tie = r as f64 * lpn::bands::EIGENVALUE_TIE;
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
