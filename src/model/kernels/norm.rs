//! Batch normalisation (`lpn_kernels::norm`), with an optional ReLU after
//! it, as Candle ops: one op forward and one op back for training mode (in
//! place of the dozen broadcast ops, each with its own backward pass, that
//! the Candle-op path builds), and a per-channel scale and shift for
//! evaluation mode.
//!
//! The training op's backward pass needs the batch's mean and inverse
//! standard deviation, which its forward pass computes: the op saves them in
//! a cell written once (as the 2-D block op saves its pooling winners), and
//! the caller reads the same cell for the running statistics. The backward
//! op hands the gradients of γ and β back in a cell of its own.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, WithDType};
use lpn_kernels::Num;
use lpn_kernels::norm::{self as kernel, BatchStats};

use super::act::channel_layout;
use super::expect_shape;

/// Training-mode batch norm (+ ReLU) of `(x, γ, β)`; the forward pass saves
/// the batch statistics in `stats`.
struct TrainNorm {
    eps: f64,
    relu: bool,
    stats: Arc<OnceLock<BatchStats>>,
}

/// `(grad of the output, x, output) ↦` the gradient of x, for either op;
/// the gradients of its two per-channel operands go to `param_grads`.
pub(super) struct NormGrad<'a> {
    relu: bool,
    of: GradOf<'a>,
    param_grads: OnceLock<(Tensor, Tensor)>,
}

/// Which op [`NormGrad`] differentiates, with what its backward pass needs.
enum GradOf<'a> {
    /// Training mode: γ, and the forward pass's statistics.
    Train { gamma: Vec<f64>, stats: &'a BatchStats },
    /// Evaluation mode: the scale.
    Affine { scale: Vec<f64> },
}

/// `x·scale[c] + shift[c]` (+ ReLU) of `(x, scale, shift)`: evaluation mode.
struct Affine {
    relu: bool,
}

/// `(channels, plane)` of `[B, C, *spatial]` whose per-channel operands have
/// shape `[C]`; an error otherwise, or for an empty tensor.
fn check_operands(x: &Layout, per_channel: [&Layout; 2], what: &str) -> Result<(usize, usize)> {
    let (batch, channels, plane) = channel_layout(x.shape())?;
    if batch * channels * plane == 0 {
        candle_core::bail!("{what} over an empty tensor {:?}", x.shape());
    }
    for l in per_channel {
        expect_shape(l, &[channels], what)?;
    }
    Ok((channels, plane))
}

impl<'a> NormGrad<'a> {
    /// The gradient op of a training-mode batch norm (+ ReLU) with `gamma`
    /// and its forward pass's statistics.
    pub(super) fn train(relu: bool, gamma: Vec<f64>, stats: &'a BatchStats) -> NormGrad<'a> {
        NormGrad { relu, of: GradOf::Train { gamma, stats }, param_grads: OnceLock::new() }
    }

    /// The gradients of γ and β, once the op has run.
    pub(super) fn into_param_grads(self) -> Option<(Tensor, Tensor)> {
        self.param_grads.into_inner()
    }
}

/// A per-channel vector as a `[C]` tensor on the CPU.
pub(super) fn channel_tensor<T: WithDType>(v: Vec<T>) -> Result<Tensor> {
    let n = v.len();
    Tensor::from_vec(v, n, &Device::Cpu)
}

/// The gradients `(x, p1, p2)` of an op over `(x, p1, p2)` with output `res`
/// from `grad`, by `back`; those of p1 and p2 only where they are tracked.
fn gradients(back: NormGrad<'_>, x: &Tensor, p: [&Tensor; 2], res: &Tensor, grad: &Tensor) -> GradTriple {
    let gx = grad.contiguous()?.apply_op3_no_bwd(&x.contiguous()?, &res.contiguous()?, &back)?;
    let Some((d1, d2)) = back.param_grads.into_inner() else {
        candle_core::bail!("a batch-norm gradient op gave no per-channel gradients")
    };
    Ok((Some(gx), p[0].track_op().then_some(d1), p[1].track_op().then_some(d2)))
}

/// The gradients of an op over three operands, as `CustomOp3::bwd` returns them.
type GradTriple = Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)>;

fn train_forward<T: Num>(op: &TrainNorm, x: &[T], gamma: &[T], beta: &[T], plane: usize) -> Result<Vec<T>> {
    let (y, stats) = kernel::train_forward(x, gamma, beta, plane, op.eps, op.relu);
    if op.stats.set(stats).is_err() {
        candle_core::bail!("a batch-norm op ran its forward pass twice");
    }
    Ok(y)
}

impl CustomOp3 for TrainNorm {
    fn name(&self) -> &'static str {
        "lpn-batch-norm"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, plane) = check_operands(l1, [l2, l3], "batch norm's γ and β")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, g, b| train_forward(self, x, g, b, plane)?);
        Ok((storage, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, gamma: &Tensor, beta: &Tensor, res: &Tensor, grad: &Tensor) -> GradTriple {
        let Some(stats) = self.stats.get() else { candle_core::bail!("a batch-norm op's backward pass ran before its forward pass") };
        let of = GradOf::Train { gamma: gamma.to_dtype(DType::F64)?.to_vec1::<f64>()?, stats };
        gradients(NormGrad { relu: self.relu, of, param_grads: OnceLock::new() }, x, [gamma, beta], res, grad)
    }
}

fn norm_backward<T: Num + WithDType>(op: &NormGrad<'_>, gy: &[T], x: &[T], y: &[T], plane: usize) -> Result<Vec<T>> {
    let relu_out = op.relu.then_some(y);
    let (gx, d1, d2) = match &op.of {
        GradOf::Train { gamma, stats } => kernel::train_backward(gy, x, relu_out, gamma, stats, plane),
        GradOf::Affine { scale } => kernel::affine_backward(gy, x, relu_out, scale, plane),
    };
    if op.param_grads.set((channel_tensor(d1)?, channel_tensor(d2)?)).is_err() {
        candle_core::bail!("a batch-norm gradient op ran twice");
    }
    Ok(gx)
}

impl CustomOp3 for NormGrad<'_> {
    fn name(&self) -> &'static str {
        "lpn-batch-norm-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, _, plane) = channel_layout(l2.shape())?;
        expect_shape(l1, l2.shape().dims(), "batch norm's output gradient")?;
        expect_shape(l3, l2.shape().dims(), "batch norm's output")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |g, x, y| norm_backward(self, g, x, y, plane)?);
        Ok((storage, l2.shape().clone()))
    }
}

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "lpn-channel-affine"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, plane) = check_operands(l1, [l2, l3], "batch norm's scale and shift")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, a, b| kernel::affine(x, a, b, plane, self.relu));
        Ok((storage, l1.shape().clone()))
    }
    fn bwd(&self, x: &Tensor, scale: &Tensor, shift: &Tensor, res: &Tensor, grad: &Tensor) -> GradTriple {
        let of = GradOf::Affine { scale: scale.to_dtype(DType::F64)?.to_vec1::<f64>()? };
        gradients(NormGrad { relu: self.relu, of, param_grads: OnceLock::new() }, x, [scale, shift], res, grad)
    }
}

/// Training-mode batch norm of `x [B, C, *spatial]` (PyTorch's
/// `BatchNorm1d/2d`: the batch's mean and biased variance per channel), then
/// ReLU when `relu`; returns the output and the batch's mean and unbiased
/// variance per channel (`[C]`, `x`'s dtype), for the running statistics.
/// One op forward, one back.
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, relu: bool) -> Result<(Tensor, Tensor, Tensor)> {
    let stats = Arc::new(OnceLock::new());
    let op = TrainNorm { eps, relu, stats: Arc::clone(&stats) };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let Some(stats) = stats.get() else { candle_core::bail!("a batch-norm op ran no forward pass") };
    let as_channels = |v: &[f64]| channel_tensor(v.to_vec())?.to_dtype(x.dtype());
    Ok((y, as_channels(&stats.mean)?, as_channels(&stats.unbiased_var)?))
}

/// `x·scale[c] + shift[c]` over `[B, C, *spatial]`, then ReLU when `relu`:
/// evaluation-mode batch norm, one op forward and one back.
pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor, relu: bool) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&scale.contiguous()?, &shift.contiguous()?, Affine { relu })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops;
    use candle_core::Var;

    fn flat(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Asserts `a ≈ b` within `tol` relative to the larger of 1 and `b`'s largest value.
    fn assert_near(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let (a, b) = (flat(a), flat(b));
        let scale = b.iter().fold(1f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Training mode against the Candle-op path (and Candle's ReLU), forward,
    /// batch statistics and the gradients of x, γ and β, in f32 and f64, on
    /// `[B, C]`, `[B, C, L]` and `[B, C, H, W]`, with and without ReLU.
    #[test]
    fn training_matches_the_candle_ops() {
        let mut rng = crate::rng::Rng::derive(17, "batch-norm glue test");
        let shapes: [&[usize]; 3] = [&[6, 3], &[4, 5, 33], &[2, 3, 5, 7]];
        for dtype in [DType::F32, DType::F64] {
            for shape in shapes {
                let c = shape[1];
                let mut values = |n: usize, mean: f64| -> Vec<f64> { (0..n).map(|_| mean + rng.normal()).collect() };
                let n: usize = shape.iter().product();
                let make = |v: Vec<f64>, s: &[usize]| {
                    Var::from_tensor(&Tensor::from_vec(v, s, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap()
                };
                let (x, gamma, beta) = (make(values(n, 2.0), shape), make(values(c, 1.0), &[c]), make(values(c, 0.0), &[c]));
                let weights = Tensor::from_vec(values(n, 0.0), shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
                for relu in [false, true] {
                    let what = format!("{dtype:?} {shape:?} relu {relu}");
                    let (y, mean, var) = batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5, relu).unwrap();
                    let (ty, tmean, tvar) = ops::batch_norm_train_by_ops(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5).unwrap();
                    let ty = if relu { ty.relu().unwrap() } else { ty };
                    assert_near(&y, &ty, tol, &format!("{what}: y"));
                    assert_near(&mean, &tmean, tol, &format!("{what}: mean"));
                    assert_near(&var, &tvar, tol, &format!("{what}: unbiased variance"));
                    assert_eq!((mean.dtype(), var.dtype()), (dtype, dtype));
                    let ours = (y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                    let theirs = (ty * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                    for (v, name) in [(&x, "dx"), (&gamma, "dγ"), (&beta, "dβ")] {
                        assert_near(ours.get(v).unwrap(), theirs.get(v).unwrap(), tol, &format!("{what}: {name}"));
                    }
                }
            }
        }
    }

    /// Evaluation mode's affine map (+ ReLU) against broadcast ops, forward
    /// and the gradients of x, scale and shift.
    #[test]
    fn affine_matches_broadcast_ops() {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let scale = Var::from_tensor(&Tensor::randn(0f32, 1.0, 4, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let shift = Var::from_tensor(&Tensor::randn(0f32, 1.0, 4, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
            let weights = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev).unwrap().to_dtype(dtype).unwrap();
            for relu in [false, true] {
                let y = channel_affine(x.as_tensor(), scale.as_tensor(), shift.as_tensor(), relu).unwrap();
                let by_ops = x
                    .as_tensor()
                    .broadcast_mul(&scale.as_tensor().reshape((1, 4, 1, 1)).unwrap())
                    .unwrap()
                    .broadcast_add(&shift.as_tensor().reshape((1, 4, 1, 1)).unwrap())
                    .unwrap();
                let by_ops = if relu { by_ops.relu().unwrap() } else { by_ops };
                assert_near(&y, &by_ops, 1e-6, "y");
                let ours = (y * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                let theirs = (by_ops * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                for v in [&x, &scale, &shift] {
                    assert_near(ours.get(v).unwrap(), theirs.get(v).unwrap(), 1e-5, &format!("{dtype:?} relu {relu}: gradient"));
                }
            }
        }
    }

    #[test]
    fn operands_that_do_not_fit_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let per_channel = |n: usize, dtype: DType| Tensor::ones(n, dtype, &dev).unwrap();
        assert!(batch_norm_train(&x, &per_channel(4, DType::F32), &per_channel(3, DType::F32), 1e-5, false).is_err());
        assert!(batch_norm_train(&x, &per_channel(3, DType::F64), &per_channel(3, DType::F64), 1e-5, false).is_err());
        assert!(
            batch_norm_train(
                &Tensor::zeros(3, DType::F32, &dev).unwrap(),
                &per_channel(3, DType::F32),
                &per_channel(3, DType::F32),
                1e-5,
                false
            )
            .is_err()
        );
        assert!(
            batch_norm_train(
                &Tensor::zeros((0, 3), DType::F32, &dev).unwrap(),
                &per_channel(3, DType::F32),
                &per_channel(3, DType::F32),
                1e-5,
                false
            )
            .is_err()
        );
        assert!(channel_affine(&x, &per_channel(2, DType::F32), &per_channel(2, DType::F32), true).is_err());
        assert!(batch_norm_train(&x, &per_channel(3, DType::F32), &per_channel(3, DType::F32), 1e-5, true).is_ok());
    }
}
