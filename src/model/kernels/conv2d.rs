//! The 2-D convolution block (`lpn_kernels::block`: convolution, bias,
//! optional ReLU, optional max pool) as Candle ops with their gradients (the
//! convolution's own are the ops of `conv.rs`).
//!
//! A pooling block's backward pass needs each window's winning cell, which
//! its forward pass finds. The op is the graph node Candle keeps for the
//! backward pass, so its forward pass saves the winners in the op itself, in
//! a cell written once (PyTorch's `ctx.save_for_backward`); no other call
//! sees them. (Returning them as a second half of the output doubled what
//! the step writes, and Candle's gradient of taking the first half added a
//! zero-filled copy: 20–30 % of the 2-D reference net's step.) The unpool op
//! likewise hands the bias's gradient back in a cell of its own, read by the
//! caller right after it runs.

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor};
use lpn_kernels::{BlockGeometry, ConvGeometry, Num, block};

use super::conv::{Forward, gradients};
use super::{act, expect_shape, geometry_error};

/// `pool(act(conv2d(x, w) + bias))`; when it pools, the forward pass saves
/// each window's winning cell in `winners` for this node's backward pass.
struct Block {
    g: BlockGeometry,
    winners: OnceLock<Vec<u8>>,
}

/// `(grad of the block's output, the block's output) ↦` the gradient of the
/// convolution's output; the bias's gradient goes to `bias_grad`.
struct Unpool<'a> {
    g: BlockGeometry,
    winners: &'a [u8],
    bias_grad: OnceLock<Tensor>,
}

/// The block's output shape `[B, C, h', w']`.
pub(super) fn block_shape(g: &BlockGeometry) -> Vec<usize> {
    let [h, w] = g.output();
    vec![g.conv.batch, g.conv.out_channels, h, w]
}

/// The block's forward pass; a pooling block saves its winners.
fn block_forward<T: Num>(x: &[T], w: &[T], bias: &[T], g: &BlockGeometry, winners: &OnceLock<Vec<u8>>) -> Result<Vec<T>> {
    let (y, cells) = block::forward(x, w, bias, g);
    if g.pool.is_some() && winners.set(cells).is_err() {
        candle_core::bail!("a conv2d block op ran its forward pass twice");
    }
    Ok(y)
}

impl CustomOp3 for Block {
    fn name(&self) -> &'static str {
        "lpn-conv2d-block"
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
        let g = &self.g;
        expect_shape(l1, &g.conv.input_shape(), "conv2d input")?;
        expect_shape(l2, &g.conv.weight_shape(), "conv2d weight")?;
        expect_shape(l3, &[g.conv.out_channels], "conv2d bias")?;
        let storage = dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, w, b| block_forward(x, w, b, g, &self.winners)?);
        Ok((storage, Shape::from(block_shape(g))))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = self.g;
        let grad = grad.contiguous()?;
        let (gy, gb) = match g.pool {
            Some(_) => {
                let Some(winners) = self.winners.get() else {
                    candle_core::bail!("a conv2d block op's backward pass ran before its forward pass")
                };
                let unpool = Unpool { g, winners, bias_grad: OnceLock::new() };
                let gy = grad.apply_op2_no_bwd(&res.contiguous()?, &unpool)?;
                let Some(gb) = unpool.bias_grad.into_inner() else { candle_core::bail!("the unpool op gave no bias gradient") };
                (gy, gb)
            }
            None => {
                let gy = if g.relu { act::relu_grad(&grad, res)? } else { grad };
                let gb = act::bias_grad(&gy)?;
                (gy, gb)
            }
        };
        let (gx, gw) = gradients(g.conv, x, w, &gy.contiguous()?)?;
        Ok((gx, gw, bias.track_op().then_some(gb)))
    }
}

/// The convolution output's gradient from the block's gradient and output;
/// the bias's gradient (per channel) goes to `bias_grad`.
fn unpool<T: Num + candle_core::WithDType>(grad: &[T], out: &[T], op: &Unpool<'_>) -> Result<Vec<T>> {
    let (gconv, gbias) = block::unpool(grad, out, op.winners, &op.g);
    let channels = gbias.len();
    let gbias = Tensor::from_vec(gbias, channels, &Device::Cpu)?;
    if op.bias_grad.set(gbias).is_err() {
        candle_core::bail!("a conv2d unpool op ran twice");
    }
    Ok(gconv)
}

impl CustomOp2 for Unpool<'_> {
    fn name(&self) -> &'static str {
        "lpn-conv2d-block-unpool"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.g;
        let shape = block_shape(g);
        expect_shape(l1, &shape, "the block's gradient")?;
        expect_shape(l2, &shape, "the block's output")?;
        if self.winners.len() != g.output_len() {
            candle_core::bail!("the block saved {} winners for {} pooled values", self.winners.len(), g.output_len());
        }
        let storage = dispatch!((s1, l1), (s2, l2) => |grad, out| unpool(grad, out, self)?);
        Ok((storage, Shape::from(g.conv.output_shape())))
    }
}

/// The gradient of a pooling block's convolution output from the gradient
/// `grad` of its output `out` and the winners its forward pass saved (the
/// ReLU's mask applied when `g.relu`).
pub(super) fn unpool_grad(grad: &Tensor, out: &Tensor, g: BlockGeometry, winners: &[u8]) -> Result<Tensor> {
    grad.apply_op2_no_bwd(out, &Unpool { g, winners, bias_grad: OnceLock::new() })
}

/// The 2-D convolution of `g` with its backward pass (bias not included).
/// Operands that do not fit `g` are errors.
pub fn conv2d(x: &Tensor, w: &Tensor, g: ConvGeometry<2>) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward(g))
}

/// The block `pool(act(conv2d(x, w) + bias))` of `g` as one op with its
/// backward pass; `bias` None is a zero bias. Operands that do not fit `g`
/// are errors.
pub fn conv2d_block(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: BlockGeometry) -> Result<Tensor> {
    g.check().map_err(geometry_error)?;
    let bias = match bias {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(g.conv.out_channels, x.dtype(), x.device())?,
    };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias, Block { g, winners: OnceLock::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};
    use lpn_kernels::PoolKind;

    fn geometry(
        x: &Tensor,
        w: &Tensor,
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> ConvGeometry<2> {
        let (b, cin, h, wd) = x.dims4().unwrap();
        let (cout, _, kh, kw) = w.dims4().unwrap();
        ConvGeometry { batch: b, in_channels: cin, out_channels: cout, groups, kernel: [kh, kw], stride, padding, dilation, input: [h, wd] }
    }

    /// The block against its ops in sequence (conv2d, bias + ReLU, max pool),
    /// forward and the gradients of input, weight and bias through Candle's
    /// autograd, for f32 and f64, with padding, strides, groups, a 3×2
    /// window, odd sizes that leave a trailing row and column unpooled, and
    /// inputs on a coarse grid so that windows hold ties.
    #[test]
    fn matches_the_ops_in_sequence() {
        let dev = Device::Cpu;
        let same = |k: usize| ([1, 1], [(k / 2, k / 2); 2], [1, 1], 1);
        let cases = [
            (same(5), (5, 5), Some([2, 2]), true, 9),
            (same(3), (3, 3), Some([2, 2]), true, 71),
            (same(3), (3, 3), Some([2, 2]), false, 71),
            (([1, 1], [(1, 0), (1, 1)], [1, 1], 1), (3, 2), Some([3, 2]), true, 9),
            (([2, 1], [(1, 1), (0, 0)], [1, 2], 2), (3, 3), Some([2, 2]), false, 9),
            (same(3), (3, 3), None, true, 9),
        ];
        for dtype in [DType::F32, DType::F64] {
            for ((stride, padding, dilation, groups), (kh, kw), pool_window, relu, width) in cases {
                let grid = |t: Tensor| ((t * 4.0).unwrap().round().unwrap() / 4.0).unwrap().to_dtype(dtype).unwrap();
                let x = Var::from_tensor(&grid(Tensor::randn(0f32, 1.0, (3, 4, 11, width), &dev).unwrap())).unwrap();
                let w = Var::from_tensor(&grid(Tensor::randn(0f32, 0.5, (6, 4 / groups, kh, kw), &dev).unwrap())).unwrap();
                let b = Var::from_tensor(&grid(Tensor::randn(0f32, 1.0, 6, &dev).unwrap())).unwrap();
                let conv = geometry(x.as_tensor(), w.as_tensor(), stride, padding, dilation, groups);
                let ours = conv2d_block(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), BlockGeometry { conv, relu, pool: pool_window })
                    .unwrap();
                let y = act::bias_act(&conv2d(x.as_tensor(), w.as_tensor(), conv).unwrap(), b.as_tensor(), relu).unwrap();
                let theirs = match pool_window {
                    Some(k) => super::super::pool(&y, PoolKind::Max, &k, &k, &[0, 0]).unwrap(),
                    None => y,
                };
                assert_eq!(ours.dims(), theirs.dims());
                let weights = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap().to_dtype(dtype).unwrap();
                let flat = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let go = (&ours * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                let gt = (&theirs * &weights).unwrap().sum_all().unwrap().backward().unwrap();
                let mut pairs = vec![(flat(&ours), flat(&theirs))];
                for v in [x.as_tensor(), w.as_tensor(), b.as_tensor()] {
                    pairs.push((flat(go.get(v).unwrap()), flat(gt.get(v).unwrap())));
                }
                for (k, (got, want)) in pairs.iter().enumerate() {
                    assert_eq!(got.len(), want.len());
                    for (g, t) in got.iter().zip(want) {
                        assert!((g - t).abs() <= 1e-5 * (1.0 + t.abs()), "{dtype:?} {conv:?} tensor {k}: {g} vs {t}");
                    }
                }
            }
        }
    }

    /// Output and every gradient are the same bits on 1 and 3 threads.
    #[test]
    fn same_bits_on_any_thread_count() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (13, 3, 12, 10), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.3, (20, 3, 5, 5), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 20, &dev).unwrap()).unwrap();
        let conv = geometry(x.as_tensor(), w.as_tensor(), [1, 1], [(2, 2), (2, 2)], [1, 1], 1);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y =
                    conv2d_block(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), BlockGeometry { conv, relu: true, pool: Some([2, 2]) })
                        .unwrap();
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                [
                    flat(&y),
                    flat(grads.get(x.as_tensor()).unwrap()),
                    flat(grads.get(w.as_tensor()).unwrap()),
                    flat(grads.get(b.as_tensor()).unwrap()),
                ]
            })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 2, 3, 3), DType::F32, &dev).unwrap();
        let conv = geometry(&x, &w, [1, 1], [(0, 0), (0, 0)], [1, 1], 1);
        let block = |pool, bias: Option<&Tensor>| conv2d_block(&x, &w, bias, BlockGeometry { conv, relu: true, pool });
        assert!(block(Some([3, 1]), None).is_err());
        assert!(block(Some([0, 1]), None).is_err());
        assert!(block(Some([2, 2]), Some(&Tensor::zeros(2, DType::F32, &dev).unwrap())).is_err());
        assert!(block(Some([2, 2]), Some(&Tensor::zeros(3, DType::F64, &dev).unwrap())).is_err());
        assert_eq!(block(Some([2, 2]), None).unwrap().dims(), &[1, 3, 1, 1]);
        assert!(conv2d(&x, &Tensor::zeros((3, 2, 5, 3), DType::F32, &dev).unwrap(), conv).is_err());
    }
}
