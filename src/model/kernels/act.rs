//! ReLU and a convolution's per-channel bias (+ ReLU) (`lpn_kernels::act`)
//! as Candle ops whose backward pass is one pass over the gradient.
//!
//! Candle's own `relu` backward takes five passes over the tensor (a zero
//! tensor, a comparison, a cast, a product, the sum into the gradient store),
//! and a broadcast bias add sums its gradient with a strided reduction; on
//! the 2-D reference net these elementwise passes cost more than the
//! convolutions.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use lpn_kernels::act as kernel;

/// `relu(x)`.
struct Relu;
/// `(grad, relu output) ↦ grad · [output > 0]`.
struct ReluGrad;
/// `act(y + bias[c])` over `[B, C, *spatial]`; `act` is ReLU when `.0`.
struct BiasAct(bool);
/// `(masked) grad ↦` its per-channel sums: the bias gradient.
struct BiasSum;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "lpn-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((dispatch!((s, l) => |x| kernel::relu(x)), l.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_grad(grad, res)?))
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "lpn-relu-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!("relu gradient {:?} does not fit its output {:?}", l1.shape(), l2.shape());
        }
        Ok((dispatch!((s1, l1), (s2, l2) => |g, y| kernel::relu_grad(g, y)), l1.shape().clone()))
    }
}

/// `(batch, channels, positions per channel)` of `[B, C, *spatial]`.
pub(super) fn channel_layout(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("a per-channel op over a rank-{} tensor", dims.len());
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

impl CustomOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "lpn-bias-act"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (batch, channels, plane) = channel_layout(l1.shape())?;
        if l2.shape().dims() != [channels] || batch * channels * plane == 0 {
            candle_core::bail!("bias {:?} does not fit {:?}", l2.shape(), l1.shape());
        }
        Ok((dispatch!((s1, l1), (s2, l2) => |y, bias| kernel::bias_act(y, bias, plane, self.0)), l1.shape().clone()))
    }
    fn bwd(&self, _y: &Tensor, bias: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gy = if self.0 { grad.apply_op2_no_bwd(res, &ReluGrad)? } else { grad };
        let gb = if bias.track_op() { Some(gy.apply_op1_no_bwd(&BiasSum)?) } else { None };
        Ok((Some(gy), gb))
    }
}

impl CustomOp1 for BiasSum {
    fn name(&self) -> &'static str {
        "lpn-bias-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, channels, plane) = channel_layout(l.shape())?;
        Ok((dispatch!((s, l) => |g| kernel::channel_sums(g, channels, plane)), Shape::from(channels)))
    }
}

/// ReLU with a one-pass backward, for f32 and f64 tensors on the CPU.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

/// `y + bias[c]` over `[B, C, *spatial]`, then ReLU when `relu`; one pass
/// forward and one backward (mask and bias gradient).
pub fn bias_act(y: &Tensor, bias: &Tensor, relu: bool) -> Result<Tensor> {
    if y.rank() < 2 || bias.dims() != [y.dim(1)?] {
        candle_core::bail!("bias {:?} does not fit {:?}", bias.dims(), y.dims());
    }
    y.contiguous()?.apply_op2(&bias.contiguous()?, BiasAct(relu))
}

/// `grad · [output > 0]`: the gradient through a ReLU whose output was `res`.
pub(super) fn relu_grad(grad: &Tensor, res: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(&res.contiguous()?, &ReluGrad)
}

/// The per-channel sums of `gy [B, C, *spatial]`: a bias's gradient.
pub(super) fn bias_grad(gy: &Tensor) -> Result<Tensor> {
    gy.contiguous()?.apply_op1_no_bwd(&BiasSum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Seeded values on a grid: `odd` puts them on odd multiples of 1/2048
    /// and `even` on multiples of 1/1024 (both exact in f32), so x and x + b
    /// are never exactly 0, where the gradient rules of Candle's ReLU and ours
    /// (PyTorch's) differ. Unseeded random data hit an exact 0 now and then.
    fn grid(rng: &mut crate::rng::Rng, shape: &[usize], odd: bool, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let steps = (rng.normal() * 1024.0).round() as i64;
                if odd { (2 * steps + 1) as f32 / 2048.0 } else { steps as f32 / 1024.0 }
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// Against Candle's own ops (away from exactly 0, where the gradient rules
    /// differ), forward and every gradient, f32 and f64.
    #[test]
    fn match_candle_ops() {
        let mut rng = crate::rng::Rng::derive(7, "act_kernel test");
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&grid(&mut rng, &[3, 5, 7, 40_000 / 35 + 1], true, dtype)).unwrap();
            let b = Var::from_tensor(&grid(&mut rng, &[5], false, dtype)).unwrap();
            let weights = grid(&mut rng, x.dims(), false, dtype);
            let loss = |y: Tensor| (y * &weights).unwrap().sum_all().unwrap();
            let ours = [
                relu(x.as_tensor()).unwrap(),
                bias_act(x.as_tensor(), b.as_tensor(), true).unwrap(),
                bias_act(x.as_tensor(), b.as_tensor(), false).unwrap(),
            ];
            let shifted = x.as_tensor().broadcast_add(&b.as_tensor().reshape((1, 5, 1, 1)).unwrap()).unwrap();
            let theirs = [x.as_tensor().relu().unwrap(), shifted.relu().unwrap(), shifted.clone()];
            for (o, t) in ours.into_iter().zip(theirs) {
                let diff = (&o - &t).unwrap().abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
                assert_eq!(diff, 0.0);
                let (go, gt) = (loss(o).backward().unwrap(), loss(t).backward().unwrap());
                for v in [x.as_tensor(), b.as_tensor()] {
                    match (go.get(v), gt.get(v)) {
                        (Some(a), Some(b)) => {
                            let scale = b.abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap();
                            let diff = (a - b)
                                .unwrap()
                                .abs()
                                .unwrap()
                                .max_all()
                                .unwrap()
                                .to_dtype(DType::F64)
                                .unwrap()
                                .to_scalar::<f64>()
                                .unwrap();
                            assert!(diff <= 1e-5 * scale.max(1.0), "{diff}");
                        }
                        (None, None) => {}
                        (a, b) => panic!("gradient present on one side only: {} vs {}", a.is_some(), b.is_some()),
                    }
                }
            }
        }
    }

    #[test]
    fn relu_keeps_nan_and_masks_its_gradient() {
        let x = Var::from_tensor(&Tensor::new(&[-1f32, 0.0, 2.0, f32::NAN], &Device::Cpu).unwrap()).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        let v: Vec<f32> = y.to_vec1().unwrap();
        assert_eq!(&v[..3], &[0.0, 0.0, 2.0]);
        assert!(v[3].is_nan());
        let g: Vec<f32> = y.sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().to_vec1().unwrap();
        // PyTorch: the gradient passes where the output is positive only.
        assert_eq!(g, vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn bias_that_does_not_fit_is_an_error() {
        let y = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(bias_act(&y, &Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(), true).is_err());
        assert!(
            bias_act(&Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(), &Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(), true)
                .is_err()
        );
    }
}
