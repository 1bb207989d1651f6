//! The penalty and lagrangian terms of the quadratic families (bands,
//! smoothness: ρ = hᵀQh/hᵀh)
//! (`lpn_kernels::band`) as one Candle op with an analytic gradient, where
//! the tensor-op version took some thirty small ops forward and back every
//! step.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, WithDType};
use lpn_kernels::band as kernel;

/// Mean of `ρᵢ` (or of `max(0, ρᵢ − tol)`) over the rows `hᵢ` of `w`.
struct MeanRatio {
    tol: Option<f64>,
}

/// `(w, Q) ↦ ∂ mean / ∂w`, scaled by the upstream gradient.
struct MeanRatioGrad {
    tol: Option<f64>,
    upstream: f64,
}

/// Taps per kernel: Q's side (Q square, `w` made of whole kernels).
fn taps_of(w: &Layout, q: &Layout) -> Result<usize> {
    let (taps, cols) = q.shape().dims2()?;
    if taps != cols || taps == 0 || !w.shape().elem_count().is_multiple_of(taps) {
        candle_core::bail!("stopband operator {taps}×{cols} does not fit weight {:?}", w.shape());
    }
    Ok(taps)
}

impl CustomOp2 for MeanRatio {
    fn name(&self) -> &'static str {
        "lpn-mean-stopband-ratio"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let taps = taps_of(l1, l2)?;
        let out = dispatch!((s1, l1), (s2, l2) => |w, q| vec![WithDType::from_f64(kernel::mean_ratio(w, q, taps, self.tol))]);
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
        let taps = taps_of(l1, l2)?;
        let out = dispatch!((s1, l1), (s2, l2) => |w, q| kernel::mean_ratio_grad(w, q, taps, self.tol, self.upstream));
        Ok((out, l1.shape().clone()))
    }
}

/// Mean over the kernels (rows of `taps = Q.dim(0)` values) of `w` of their
/// stopband energy ratio, or of its excess over `tol`; a scalar with its
/// gradient in `w` (Q is a constant, and symmetric as every stopband
/// operator is: the gradient is written 2Qh).
pub fn mean_quadratic_ratio(w: &Tensor, q: &Tensor, tol: Option<f64>) -> Result<Tensor> {
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

    /// Against the tensor-op formula (`ops::quadratic_ratios`), value and
    /// gradient, with and without the hinge.
    #[test]
    fn matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let taps = 7;
        let m = Tensor::randn(0f64, 1.0, (taps, taps), &dev).unwrap();
        let q = (m.matmul(&m.t().unwrap()).unwrap() / 10.0).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 4, taps), &dev).unwrap()).unwrap();
        for tol in [None, Some(0.5)] {
            let ours = mean_quadratic_ratio(w.as_tensor(), &q, tol).unwrap();
            let ratios = crate::model::ops::quadratic_ratios(w.as_tensor(), &q).unwrap();
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
        let v = mean_quadratic_ratio(&w32, &q.to_dtype(DType::F32).unwrap(), None).unwrap().to_scalar::<f32>().unwrap();
        let want = mean_quadratic_ratio(w.as_tensor(), &q, None).unwrap().to_scalar::<f64>().unwrap();
        assert!((v as f64 - want).abs() < 1e-5 * want.abs().max(1.0));
    }
}
