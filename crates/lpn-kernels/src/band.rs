//! The penalty and lagrangian terms of band constraints: the mean over
//! kernels of `ρᵢ = hᵢᵀQhᵢ / hᵢᵀhᵢ` (or of `max(0, ρᵢ − tol)`), and its
//! analytic gradient `∂ρᵢ/∂hᵢ = 2(Qhᵢ − ρᵢhᵢ) / hᵢᵀhᵢ`. Sums run in f64
//! whatever the element type; kernels are independent, so results do not
//! depend on threads (there are none: the kernels are few and short).

use crate::Num;

/// Q transposed, in f64: Q's column `j` is row `j` here, so `Qh` is a sum
/// of scaled rows, which vectorizes (a row-times-h dot product in f64 does
/// not: its sum keeps its order).
fn transposed_f64<T: Num>(q: &[T], taps: usize) -> Vec<f64> {
    let mut qt = vec![0.0; taps * taps];
    for (i, row) in q.chunks_exact(taps).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            qt[j * taps + i] = v.to_f64();
        }
    }
    qt
}

/// For one kernel `h`: `hf = h` in f64, `qh = Qh`; returns `(hᵀh, ρ)`.
fn row_terms<T: Num>(h: &[T], qt: &[f64], hf: &mut [f64], qh: &mut [f64]) -> (f64, f64) {
    let taps = hf.len();
    for (d, &v) in hf.iter_mut().zip(h) {
        *d = v.to_f64();
    }
    qh.fill(0.0);
    for (column, &hj) in qt.chunks_exact(taps).zip(hf.iter()) {
        for (o, &c) in qh.iter_mut().zip(column) {
            *o += c * hj;
        }
    }
    let energy = hf.iter().map(|v| v * v).sum::<f64>() + 1e-30;
    let stop: f64 = qh.iter().zip(hf.iter()).map(|(a, b)| a * b).sum();
    (energy, stop / energy)
}

/// Mean over the kernels (rows of `taps` values) `h` of `w` of `ρ = hᵀQh / hᵀh`
/// (or of `max(0, ρ − tol)`), `q` row-major `taps × taps` (symmetric).
pub fn mean_ratio<T: Num>(w: &[T], q: &[T], taps: usize, tol: Option<f64>) -> f64 {
    let qt = transposed_f64(q, taps);
    let (mut hf, mut qh) = (vec![0.0; taps], vec![0.0; taps]);
    let rows = w.len() / taps;
    let total: f64 = w
        .chunks_exact(taps)
        .map(|h| {
            let (_, rho) = row_terms(h, &qt, &mut hf, &mut qh);
            match tol {
                Some(t) => (rho - t).max(0.0),
                None => rho,
            }
        })
        .sum();
    total / rows.max(1) as f64
}

/// The gradient of [`mean_ratio`] in `w`, times `upstream`: `2(Qh − ρh) / hᵀh`
/// per kernel (zero where the hinge is inactive), divided by the kernels' count.
pub fn mean_ratio_grad<T: Num>(w: &[T], q: &[T], taps: usize, tol: Option<f64>, upstream: f64) -> Vec<T> {
    let qt = transposed_f64(q, taps);
    let (mut hf, mut qh) = (vec![0.0; taps], vec![0.0; taps]);
    let rows = w.len() / taps;
    let scale = upstream / rows.max(1) as f64;
    let mut grad = Vec::with_capacity(w.len());
    for h in w.chunks_exact(taps) {
        let (energy, rho) = row_terms(h, &qt, &mut hf, &mut qh);
        // The hinge passes no gradient where ρ ≤ tol (as relu's at 0).
        let active = tol.is_none_or(|t| rho > t);
        for (a, b) in qh.iter().zip(&hf) {
            let g = if active { scale * 2.0 * (a - rho * b) / energy } else { 0.0 };
            grad.push(T::from_f64(g));
        }
    }
    grad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the formula written out, with and without the hinge, and the
    /// gradient against central differences.
    #[test]
    fn ratio_and_gradient_match_the_formula() {
        let taps = 5;
        let mut rng = crate::testing::Rng::new(3);
        let m: Vec<f64> = rng.values(taps * taps);
        // Q = MMᵀ/10: symmetric, as every band operator.
        let q: Vec<f64> = (0..taps * taps)
            .map(|ij| (0..taps).map(|k| m[(ij / taps) * taps + k] * m[(ij % taps) * taps + k]).sum::<f64>() / 10.0)
            .collect();
        let w: Vec<f64> = rng.values(3 * taps);
        let rho = |h: &[f64]| {
            let qh: Vec<f64> = (0..taps).map(|i| (0..taps).map(|j| q[i * taps + j] * h[j]).sum()).collect();
            qh.iter().zip(h).map(|(a, b)| a * b).sum::<f64>() / h.iter().map(|v| v * v).sum::<f64>()
        };
        for tol in [None, Some(0.05)] {
            let want = w.chunks(taps).map(|h| tol.map_or(rho(h), |t| (rho(h) - t).max(0.0))).sum::<f64>() / 3.0;
            assert!((mean_ratio(&w, &q, taps, tol) - want).abs() < 1e-12);
            let grad = mean_ratio_grad(&w, &q, taps, tol, 2.0);
            for i in 0..w.len() {
                let (mut up, mut down) = (w.clone(), w.clone());
                up[i] += 1e-6;
                down[i] -= 1e-6;
                let numeric = 2.0 * (mean_ratio(&up, &q, taps, tol) - mean_ratio(&down, &q, taps, tol)) / 2e-6;
                assert!((grad[i] - numeric).abs() < 1e-6, "{i}: {} vs {numeric}", grad[i]);
            }
        }
    }
}
