//! A convolution with its bias and the training-mode batch norm (+ ReLU)
//! after it as one Candle op, built from the same kernels as the two ops it
//! replaces, so its values and gradients are those of the two ops, bit for
//! bit (tested). Why one op: Candle's backward pass gives every node's
//! gradient a zero-filled tensor and adds into it, on one thread; the
//! convolution's output is the size of the layer's activations, and as a
//! node of its own it cost a zero fill and an add of that size per layer and
//! step (about half of that bookkeeping in the FCN benchmark net). The
//! convolution's output is kept in the op for the backward pass instead.
//!
//! The op's third operand stacks the bias, γ and β (`[3, C]`), since a
//! Candle op takes three operands; the stacking's own backward pass splits
//! their gradient again.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, WithDType};
use lpn_kernels::norm::{self as kernel, BatchStats};
use lpn_kernels::{BlockGeometry, ConvGeometry, Num, block};

use super::conv::gradients;
use super::norm::{NormGrad, channel_tensor};
use super::{act, conv1d, expect_shape};

/// The convolution of the fused op.
#[derive(Clone, Copy, Debug)]
pub enum Conv {
    OneD(ConvGeometry<1>),
    TwoD(ConvGeometry<2>),
}

impl Conv {
    fn input_shape(&self) -> Vec<usize> {
        match self {
            Conv::OneD(g) => g.input_shape(),
            Conv::TwoD(g) => g.input_shape(),
        }
    }
    fn weight_shape(&self) -> Vec<usize> {
        match self {
            Conv::OneD(g) => g.weight_shape(),
            Conv::TwoD(g) => g.weight_shape(),
        }
    }
    fn output_shape(&self) -> Vec<usize> {
        match self {
            Conv::OneD(g) => g.output_shape(),
            Conv::TwoD(g) => g.output_shape(),
        }
    }

    /// `conv(x, w) + bias`, by the kernel the unfused op uses.
    fn forward<T: Num>(&self, x: &[T], w: &[T], bias: &[T]) -> Vec<T> {
        match self {
            Conv::OneD(g) => lpn_kernels::conv1d::forward(x, w, Some(bias), g),
            Conv::TwoD(g) => block::forward(x, w, bias, &BlockGeometry { conv: *g, relu: false, pool: None }).0,
        }
    }

    /// The gradients of x, w and the bias from the convolution output's
    /// (contiguous) gradient, by the ops the unfused convolution uses.
    fn backward(&self, x: &Tensor, w: &Tensor, gy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Tensor)> {
        let ((gx, gw), gb) = match self {
            Conv::OneD(g) => (gradients(*g, x, w, gy)?, conv1d::bias_grad(gy, *g)?),
            Conv::TwoD(g) => (gradients(*g, x, w, gy)?, act::bias_grad(gy)?),
        };
        Ok((gx, gw, gb))
    }
}

/// `batch_norm(conv(x, w) + bias)` (+ ReLU) in training mode, over `(x, w,
/// [bias; γ; β])`; its forward pass keeps the convolution's output and the
/// batch statistics for the backward pass (and the statistics for the
/// caller's running averages).
struct ConvNorm {
    conv: Conv,
    eps: f64,
    relu: bool,
    conv_out: OnceLock<Tensor>,
    stats: Arc<OnceLock<BatchStats>>,
}

impl ConvNorm {
    fn forward<T: Num + WithDType>(&self, x: &[T], w: &[T], params: &[T]) -> Result<Vec<T>> {
        let channels = params.len() / 3;
        let (bias, gamma, beta) = (&params[..channels], &params[channels..2 * channels], &params[2 * channels..]);
        let out_shape = self.conv.output_shape();
        let plane = out_shape[2..].iter().product();
        let conv_out = self.conv.forward(x, w, bias);
        let (y, stats) = kernel::train_forward(&conv_out, gamma, beta, plane, self.eps, self.relu);
        if self.conv_out.set(Tensor::from_vec(conv_out, out_shape, &Device::Cpu)?).is_err() || self.stats.set(stats).is_err() {
            candle_core::bail!("a conv + batch-norm op ran its forward pass twice");
        }
        Ok(y)
    }
}

impl CustomOp3 for ConvNorm {
    fn name(&self) -> &'static str {
        "lpn-conv-batch-norm"
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
        let out_shape = self.conv.output_shape();
        expect_shape(l1, &self.conv.input_shape(), "convolution input")?;
        expect_shape(l2, &self.conv.weight_shape(), "convolution weight")?;
        expect_shape(l3, &[3, out_shape[1]], "the stacked bias, γ and β")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, w, p| self.forward(x, w, p)?);
        Ok((storage, Shape::from(out_shape)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        params: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (Some(conv_out), Some(stats)) = (self.conv_out.get(), self.stats.get()) else {
            candle_core::bail!("a conv + batch-norm op's backward pass ran before its forward pass")
        };
        let gamma = params.get(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let back = NormGrad::train(self.relu, gamma, stats);
        let g_conv = grad.contiguous()?.apply_op3_no_bwd(conv_out, &res.contiguous()?, &back)?;
        let Some((dgamma, dbeta)) = back.into_param_grads() else {
            candle_core::bail!("a batch-norm gradient op gave no per-channel gradients")
        };
        let (gx, gw, gb) = self.conv.backward(x, w, &g_conv)?;
        let dparams = params.track_op().then(|| Tensor::stack(&[gb, dgamma, dbeta], 0)).transpose()?;
        Ok((gx, gw, dparams))
    }
}

/// `conv(x, w) + bias`, then training-mode batch norm (PyTorch's
/// `BatchNorm1d/2d`), then ReLU when `relu`, as one op; returns the output
/// and the batch's mean and unbiased variance per channel (`[C]`, `x`'s
/// dtype), for the running statistics.
pub fn conv_batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    params: [&Tensor; 3],
    conv: Conv,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, Tensor, Tensor)> {
    let stats = Arc::new(OnceLock::new());
    let op = ConvNorm { conv, eps, relu, conv_out: OnceLock::new(), stats: Arc::clone(&stats) };
    let stacked = Tensor::stack(&params, 0)?;
    let y = x.contiguous()?.apply_op3(&w.contiguous()?, &stacked, op)?;
    let Some(stats) = stats.get() else { candle_core::bail!("a conv + batch-norm op ran no forward pass") };
    let as_channels = |v: &[f64]| channel_tensor(v.to_vec())?.to_dtype(x.dtype());
    Ok((y, as_channels(&stats.mean)?, as_channels(&stats.unbiased_var)?))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use crate::language::ir;
    use crate::model::ops;

    fn conv(in_channels: usize, out_channels: usize, kernel: &[usize], stride: usize) -> ir::Conv {
        let n = kernel.len();
        ir::Conv {
            in_channels,
            out_channels,
            kernel: kernel.to_vec(),
            stride: vec![stride; n],
            padding: kernel.iter().map(|k| ((k - 1) / 2, k / 2)).collect(),
            dilation: vec![1; n],
            groups: 1,
            bias: true,
        }
    }

    /// Output, batch statistics and the gradients of x, w, bias, γ and β:
    /// the fused op's against the convolution op and then the batch-norm op.
    #[test]
    fn the_fused_op_gives_the_two_ops_values_bit_for_bit() {
        let dev = Device::Cpu;
        let cases =
            [(vec![4, 3, 40], conv(3, 20, &[5], 1)), (vec![3, 2, 33], conv(2, 9, &[4], 2)), (vec![3, 2, 9, 8], conv(2, 6, &[3, 3], 1))];
        for dtype in [DType::F32, DType::F64] {
            for (shape, c) in &cases {
                for relu in [false, true] {
                    let var = |shape: &[usize], seed: u64| {
                        let n: usize = shape.iter().product();
                        let v: Vec<f64> = (0..n).map(|i| (((i as u64 * 7919 + seed * 104_729) % 1000) as f64 / 500.0) - 1.0).collect();
                        Var::from_tensor(&Tensor::from_vec(v, shape, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap()
                    };
                    let mut wshape = vec![c.out_channels, c.in_channels];
                    wshape.extend(&c.kernel);
                    let (x, w, b, gamma, beta) =
                        (var(shape, 1), var(&wshape, 2), var(&[c.out_channels], 3), var(&[c.out_channels], 4), var(&[c.out_channels], 5));
                    let run = |fused: bool| {
                        let (y, mean, v) = if fused {
                            ops::conv_batch_norm_train(
                                x.as_tensor(),
                                w.as_tensor(),
                                b.as_tensor(),
                                c,
                                (gamma.as_tensor(), beta.as_tensor()),
                                1e-5,
                                relu,
                            )
                            .unwrap()
                        } else {
                            let out = ops::conv(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), c).unwrap();
                            ops::batch_norm_train(&out, gamma.as_tensor(), beta.as_tensor(), 1e-5, relu).unwrap()
                        };
                        let weights = var(y.dims(), 6);
                        let grads = (&y * weights.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
                        let mut all = vec![y, mean, v];
                        for p in [&x, &w, &b, &gamma, &beta] {
                            all.push(grads.get(p.as_tensor()).expect("a gradient").clone());
                        }
                        all.iter()
                            .map(|t| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap())
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(run(true), run(false), "{dtype:?} {shape:?} {c:?} relu {relu}");
                }
            }
        }
    }
}
