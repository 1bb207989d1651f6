//! The penalty and lagrangian terms of band constraints for the CPU, as one
//! Candle custom op with an analytic gradient: the mean over kernels of
//! `ρᵢ = hᵢᵀQhᵢ / hᵢᵀhᵢ` (or of `max(0, ρᵢ − tol)`), where the tensor-op
//! version took some thirty small ops forward and back every step.
//!
//! `∂ρᵢ/∂hᵢ = 2(Qhᵢ − ρᵢhᵢ) / hᵢᵀhᵢ`. Sums run in f64 whatever the dtype;
//! kernels are independent, so results do not depend on threads (there are
//! none: the kernels are few and short).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};

/// Mean of `ρᵢ` (or of `max(0, ρᵢ − tol)`) over the rows `hᵢ` of `w`.
struct MeanRatio {
    tol: Option<f64>,
}

/// `(w, Q) ↦ ∂ mean / ∂w`, scaled by the upstream gradient `.0`.
struct MeanRatioGrad {
    tol: Option<f64>,
    upstream: f64,
}

/// Q transposed, in f64: Q's column `j` is row `j` here, so `Qh` is a sum
/// of scaled rows, which vectorizes (a row-times-h dot product in f64 does
/// not: its sum keeps its order).
fn transposed_f64<T: WithDType>(q: &[T], taps: usize) -> Vec<f64> {
    let mut qt = vec![0.0; taps * taps];
    for (i, row) in q.chunks_exact(taps).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            qt[j * taps + i] = v.to_f64();
        }
    }
    qt
}

/// For one kernel `h`: `hf = h` in f64, `qh = Qh`; returns `(hᵀh, ρ)`.
fn row_terms<T: WithDType>(h: &[T], qt: &[f64], hf: &mut [f64], qh: &mut [f64]) -> (f64, f64) {
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

fn mean_ratio<T: WithDType>(w: &[T], q: &[T], taps: usize, tol: Option<f64>) -> f64 {
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

fn mean_ratio_grad<T: WithDType>(w: &[T], q: &[T], taps: usize, tol: Option<f64>, upstream: f64) -> Vec<T> {
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

fn taps_of(l: &Layout) -> Result<usize> {
    let (taps, cols) = l.shape().dims2()?;
    if taps != cols {
        candle_core::bail!("stopband operator must be square, not {taps}×{cols}");
    }
    Ok(taps)
}

impl CustomOp2 for MeanRatio {
    fn name(&self) -> &'static str {
        "lpn-mean-stopband-ratio"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let taps = taps_of(l2)?;
        let out = dispatch!(s1, l1, s2, l2, |w, q| vec![WithDType::from_f64(mean_ratio(w, q, taps, self.tol))]);
        Ok((out, Shape::from(())))
    }
    fn bwd(&self, w: &Tensor, q: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let upstream = grad.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let gw = w.apply_op2_no_bwd(q, &MeanRatioGrad { tol: self.tol, upstream })?;
        Ok((Some(gw), None))
    }
}

impl CustomOp2 for MeanRatioGrad {
    fn name(&self) -> &'static str {
        "lpn-mean-stopband-ratio-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let taps = taps_of(l2)?;
        let out = dispatch!(s1, l1, s2, l2, |w, q| mean_ratio_grad(w, q, taps, self.tol, self.upstream));
        Ok((out, l1.shape().clone()))
    }
}

/// Mean over the kernels (rows of `taps = Q.dim(0)` values) of `w` of their
/// stopband energy ratio, or of its excess over `tol`; a scalar with its
/// gradient in `w` (Q is a constant, and symmetric as every stopband
/// operator is: the gradient is written 2Qh).
pub fn mean_stopband_ratio(w: &Tensor, q: &Tensor, tol: Option<f64>) -> Result<Tensor> {
    let taps = q.dim(0)?;
    if taps == 0 || !w.elem_count().is_multiple_of(taps) {
        candle_core::bail!("weight {:?} is not made of {taps}-tap kernels", w.dims());
    }
    // Q is a constant: detached, it never gets a gradient slot.
    w.contiguous()?.apply_op2(&q.detach().contiguous()?, MeanRatio { tol })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Against the tensor-op formula (`ops::stopband_ratios`), value and
    /// gradient, with and without the hinge.
    #[test]
    fn matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let taps = 7;
        let m = Tensor::randn(0f64, 1.0, (taps, taps), &dev).unwrap();
        let q = (m.matmul(&m.t().unwrap()).unwrap() / 10.0).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 4, taps), &dev).unwrap()).unwrap();
        for tol in [None, Some(0.5)] {
            let ours = mean_stopband_ratio(w.as_tensor(), &q, tol).unwrap();
            let ratios = crate::model::ops::stopband_ratios(w.as_tensor(), &q).unwrap();
            let theirs = match tol {
                Some(t) => (ratios - t).unwrap().relu().unwrap().mean_all().unwrap(),
                None => ratios.mean_all().unwrap(),
            };
            let (a, b) = (ours.to_scalar::<f64>().unwrap(), theirs.to_scalar::<f64>().unwrap());
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            let ga = (ours * 3.0).unwrap().backward().unwrap().get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let gb =
                (theirs * 3.0).unwrap().backward().unwrap().get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (x, y) in ga.iter().zip(&gb) {
                assert!((x - y).abs() < 1e-10, "{x} vs {y}");
            }
        }
        // f32 runs the same sums in f64.
        let w32 = w.as_tensor().to_dtype(DType::F32).unwrap();
        let v = mean_stopband_ratio(&w32, &q.to_dtype(DType::F32).unwrap(), None).unwrap().to_scalar::<f32>().unwrap();
        let want = mean_stopband_ratio(w.as_tensor(), &q, None).unwrap().to_scalar::<f64>().unwrap();
        assert!((v as f64 - want).abs() < 1e-5 * want.abs().max(1.0));
    }
}
