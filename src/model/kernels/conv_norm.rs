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
//! A max or average pool right after it joins the op for the same reason
//! (the batch norm's output is then kept in the op instead of being a node
//! whose gradient Candle zero-fills and adds into): in the 2-D batch-norm
//! benchmark net that fill and add were most of what the step's own thread
//! did while the other thread waited.
//!
//! The op's third operand stacks the bias, γ and β (`[3, C]`), since a
//! Candle op takes three operands; the stacking's own backward pass splits
//! their gradient again.

use std::sync::{Arc, OnceLock};

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, WithDType};
use lpn_kernels::norm::{self as kernel, BatchStats};
use lpn_kernels::{BlockGeometry, ConvGeometry, Num, PoolGeometry, PoolKind, block, pool as pool_kernel};

use super::conv::gradients;
use super::norm::{NormGrad, channel_tensor};
use super::pool::{self, Pooling};
use super::{act, conv1d, conv2d, expect_shape};

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

/// `pool(batch_norm(conv(x, w) + bias))` (+ ReLU before the pool) in
/// training mode, over `(x, w, [bias; γ; β])`; its forward pass keeps the
/// convolution's output, the batch statistics and what its pool's backward
/// pass needs (and the statistics for the caller's running averages).
struct ConvNorm {
    conv: Conv,
    eps: f64,
    relu: bool,
    pool: Pool,
    conv_out: OnceLock<Tensor>,
    stats: Arc<OnceLock<BatchStats>>,
}

/// The pool a [`ConvNorm`] ends with, and what its forward pass keeps for
/// the pool's backward pass.
enum Pool {
    None,
    /// A 2-D max pool whose windows tile the batch norm's output (the common
    /// 2×2 one): each window's winning cell, a byte per pooled value; the
    /// gradient goes back by the 2-D block's unpool (vectorised, every cell
    /// written once, the ReLU's mask applied on the way).
    Tiled {
        block: BlockGeometry,
        winners: OnceLock<Vec<u8>>,
    },
    /// Any other pool: the batch norm's output, for the pool kernel's gradient.
    Other {
        g: PoolGeometry,
        normed: OnceLock<Tensor>,
    },
}

impl Pool {
    /// The pool `p` after the convolution `conv` (whose output it pools) and
    /// a ReLU when `relu`; an error unless `p` fits.
    fn of(p: Option<Pooling<'_>>, conv: &Conv, relu: bool) -> Result<Pool> {
        let Some(p) = p else { return Ok(Pool::None) };
        let g = pool::geometry(&conv.output_shape(), p.kind, p.kernel, p.stride, p.padding)?;
        let block = match (conv, p.kind) {
            (Conv::TwoD(conv), PoolKind::Max) if g.tiles() => Some(BlockGeometry { conv: *conv, relu, pool: Some(g.kernel) }),
            (Conv::TwoD(_) | Conv::OneD(_), PoolKind::Max | PoolKind::Avg) => None,
        };
        Ok(match block {
            Some(block) if block.check().is_ok() => Pool::Tiled { block, winners: OnceLock::new() },
            Some(_) | None => Pool::Other { g, normed: OnceLock::new() },
        })
    }
}

impl ConvNorm {
    fn forward<T: Num + WithDType>(&self, x: &[T], w: &[T], params: &[T]) -> Result<Vec<T>> {
        let channels = params.len() / 3;
        let (bias, gamma, beta) = (&params[..channels], &params[channels..2 * channels], &params[2 * channels..]);
        let out_shape = self.conv.output_shape();
        let plane = out_shape[2..].iter().product();
        let conv_out = self.conv.forward(x, w, bias);
        let (y, stats) = kernel::train_forward(&conv_out, gamma, beta, plane, self.eps, self.relu);
        let twice =
            self.conv_out.set(Tensor::from_vec(conv_out, out_shape.as_slice(), &Device::Cpu)?).is_err() || self.stats.set(stats).is_err();
        let (out, twice) = match &self.pool {
            Pool::None => (y, twice),
            Pool::Tiled { block: g, winners } => {
                let (pooled, cells) = block::pool_with_winners(&y, g);
                (pooled, twice || winners.set(cells).is_err())
            }
            Pool::Other { g, normed } => {
                (pool_kernel::forward(&y, g), twice || normed.set(Tensor::from_vec(y, out_shape, &Device::Cpu)?).is_err())
            }
        };
        if twice {
            candle_core::bail!("a conv + batch-norm op ran its forward pass twice");
        }
        Ok(out)
    }

    /// The op's output shape: the convolution's, pooled when it pools.
    fn output_shape(&self) -> Shape {
        let conv_shape = Shape::from(self.conv.output_shape());
        match &self.pool {
            Pool::None => conv_shape,
            Pool::Tiled { block, .. } => conv2d::block_shape(block).into(),
            Pool::Other { g, .. } => pool::out_shape(&conv_shape, g),
        }
    }

    /// The gradient of the batch norm's output (the ReLU's mask applied when
    /// `.1` is false) from the op's output gradient and output, through the
    /// pool's backward pass when it pools; `.1`: the op that masks (the
    /// ReLU's output) when the mask is still to apply.
    fn normed_grad(&self, grad: &Tensor, res: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let early = || candle_core::Error::Msg("a conv + batch-norm + pool op's backward pass ran before its forward pass".into());
        let grad = grad.contiguous()?;
        Ok(match &self.pool {
            Pool::None => (grad, self.relu.then(|| res.contiguous()).transpose()?),
            Pool::Tiled { block, winners } => {
                let winners = winners.get().ok_or_else(early)?;
                (conv2d::unpool_grad(&grad, &res.contiguous()?, *block, winners)?, None)
            }
            Pool::Other { g, normed } => {
                let normed = normed.get().ok_or_else(early)?;
                (pool::gradient(&grad, normed, *g)?, self.relu.then(|| normed.clone()))
            }
        })
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
        expect_shape(l1, &self.conv.input_shape(), "convolution input")?;
        expect_shape(l2, &self.conv.weight_shape(), "convolution weight")?;
        expect_shape(l3, &[3, self.conv.output_shape()[1]], "the stacked bias, γ and β")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, w, p| self.forward(x, w, p)?);
        Ok((storage, self.output_shape()))
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
        let (g_normed, relu_out) = self.normed_grad(grad, res)?;
        let gamma = params.get(1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let back = NormGrad::train(relu_out.is_some(), gamma, stats);
        // Without a mask to apply, the third operand is not read; the gradient stands in for it.
        let g_conv = g_normed.apply_op3_no_bwd(conv_out, relu_out.as_ref().unwrap_or(&g_normed), &back)?;
        let Some((dgamma, dbeta)) = back.into_param_grads() else {
            candle_core::bail!("a batch-norm gradient op gave no per-channel gradients")
        };
        let (gx, gw, gb) = self.conv.backward(x, w, &g_conv)?;
        let dparams = params.track_op().then(|| Tensor::stack(&[gb, dgamma, dbeta], 0)).transpose()?;
        Ok((gx, gw, dparams))
    }
}

/// `conv(x, w) + bias`, then training-mode batch norm (PyTorch's
/// `BatchNorm1d/2d`), then ReLU when `relu`, then the pooling `pool` (a
/// [`Pooling`] of the convolution's output shape) when given, as one op;
/// returns the output and the batch's mean and unbiased variance per channel
/// (`[C]`, `x`'s dtype), for the running statistics.
pub fn conv_batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    params: [&Tensor; 3],
    conv: Conv,
    (eps, relu): (f64, bool),
    pool: Option<Pooling<'_>>,
) -> Result<(Tensor, Tensor, Tensor)> {
    let pool = Pool::of(pool, &conv, relu)?;
    let stats = Arc::new(OnceLock::new());
    let op = ConvNorm { conv, eps, relu, pool, conv_out: OnceLock::new(), stats: Arc::clone(&stats) };
    let stacked = Tensor::stack(&params, 0)?;
    let y = x.contiguous()?.apply_op3(&w.contiguous()?, &stacked, op)?;
    let Some(stats) = stats.get() else { candle_core::bail!("a conv + batch-norm op ran no forward pass") };
    let as_channels = |v: &[f64]| channel_tensor(v.to_vec())?.to_dtype(x.dtype());
    Ok((y, as_channels(&stats.mean)?, as_channels(&stats.unbiased_var)?))
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, Tensor, Var};

    use lpn_kernels::PoolKind;

    use super::Pooling;
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

    /// The pools a case of `axes` spatial axes is tried with: none, tiling
    /// max pools, overlapping padded ones, average pools.
    fn pools(axes: usize) -> Vec<Option<Pooling<'static>>> {
        let of = |kind, kernel, stride, padding| Some(Pooling { kind, kernel, stride, padding });
        match axes {
            1 => vec![None, of(PoolKind::Max, &[2], &[2], &[0]), of(PoolKind::Max, &[3], &[2], &[1]), of(PoolKind::Avg, &[3], &[3], &[0])],
            _ => vec![
                None,
                of(PoolKind::Max, &[2, 2], &[2, 2], &[0, 0]),
                of(PoolKind::Max, &[3, 2], &[2, 1], &[1, 0]),
                of(PoolKind::Avg, &[2, 2], &[2, 2], &[1, 1]),
            ],
        }
    }

    /// Output, batch statistics and the gradients of x, w, bias, γ and β:
    /// the fused op's against the convolution op, the batch-norm op and the
    /// pooling op in sequence.
    #[test]
    fn the_fused_op_gives_the_ops_in_sequence_values_bit_for_bit() {
        let dev = Device::Cpu;
        let cases =
            [(vec![4, 3, 40], conv(3, 20, &[5], 1)), (vec![3, 2, 33], conv(2, 9, &[4], 2)), (vec![3, 2, 9, 8], conv(2, 6, &[3, 3], 1))];
        let runs = cases.iter().flat_map(|(shape, c)| pools(shape.len() - 2).into_iter().map(move |p| (shape, c, p)));
        for dtype in [DType::F32, DType::F64] {
            for (shape, c, pool) in runs.clone() {
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
                                pool,
                            )
                            .unwrap()
                        } else {
                            let out = ops::conv(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), c).unwrap();
                            let (y, mean, v) = ops::batch_norm_train(&out, gamma.as_tensor(), beta.as_tensor(), 1e-5, relu).unwrap();
                            (pool.map_or(Ok(y.clone()), |p| ops::pool(&y, p)).unwrap(), mean, v)
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
                    assert_eq!(run(true), run(false), "{dtype:?} {shape:?} {c:?} relu {relu} {pool:?}");
                }
            }
        }
    }
}
