//! Max and average pooling, 1-D and 2-D (`lpn_kernels::pool`), as Candle ops
//! with their own backward passes. A 1-D input `[B, C, L]` is pooled as
//! `[B, C, 1, L]`. The max pool's gradient recomputes each window's winner
//! from the input (first NaN, else first maximum, as PyTorch), so the passes
//! share nothing but the input Candle keeps.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use lpn_kernels::{PoolGeometry, PoolKind, pool as kernel};

use super::{expect_shape, geometry_error};

/// A pooling layer: its kind and, per pooled axis, window, stride and padding.
#[derive(Clone, Copy, Debug)]
pub struct Pooling<'a> {
    pub kind: PoolKind,
    pub kernel: &'a [usize],
    pub stride: &'a [usize],
    pub padding: &'a [usize],
}

/// Pooling of the input of shape `.1`.
struct Forward(PoolGeometry, Shape);
/// `grad_y ↦ grad_x` for average pooling.
struct AvgGrad(PoolGeometry, Shape);
/// `(grad_y, x) ↦ grad_x` for max pooling.
struct MaxGrad(PoolGeometry, Shape);

/// The output's shape for an input of shape `input`.
pub(super) fn out_shape(input: &Shape, g: &PoolGeometry) -> Shape {
    let (dims, [ho, wo]) = (input.dims(), g.output());
    if dims.len() == 3 { Shape::from((dims[0], dims[1], wo)) } else { Shape::from((dims[0], dims[1], ho, wo)) }
}

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        "lpn-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Forward(g, shape) = self;
        expect_shape(l, shape.dims(), "pool input")?;
        Ok((dispatch!((s, l) => |x| kernel::forward(x, g)), out_shape(shape, g)))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        gradient(grad, x, self.0).map(Some)
    }
}

/// The gradient of the pooling `g` of `x` (contiguous) from the gradient of
/// its output.
pub(super) fn gradient(grad: &Tensor, x: &Tensor, g: PoolGeometry) -> Result<Tensor> {
    let (grad, shape) = (grad.contiguous()?, x.shape().clone());
    match g.kind {
        PoolKind::Max => grad.apply_op2_no_bwd(x, &MaxGrad(g, shape)),
        PoolKind::Avg => grad.apply_op1_no_bwd(&AvgGrad(g, shape)),
    }
}

impl CustomOp1 for AvgGrad {
    fn name(&self) -> &'static str {
        "lpn-avg-pool-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let AvgGrad(g, shape) = self;
        expect_shape(l, out_shape(shape, g).dims(), "pool output gradient")?;
        Ok((dispatch!((s, l) => |gy| kernel::backward(gy, None, g)), shape.clone()))
    }
}

impl CustomOp2 for MaxGrad {
    fn name(&self) -> &'static str {
        "lpn-max-pool-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let MaxGrad(g, shape) = self;
        expect_shape(l1, out_shape(shape, g).dims(), "pool output gradient")?;
        expect_shape(l2, shape.dims(), "pool input")?;
        Ok((dispatch!((s1, l1), (s2, l2) => |gy, x| kernel::backward(gy, Some(x), g)), shape.clone()))
    }
}

/// Pooling of `[B, C, L]` or `[B, C, H, W]` over the last one or two axes
/// (`kernel`, `stride`, `padding` one entry per pooled axis), with its
/// backward pass, for f32 and f64 tensors on the CPU. Shapes that do not fit
/// are errors, never panics.
pub fn pool(x: &Tensor, kind: PoolKind, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    let g = geometry(x.dims(), kind, kernel, stride, padding)?;
    x.contiguous()?.apply_op1(Forward(g, x.shape().clone()))
}

/// The kernels' configuration of a pooling of an input of shape `dims`
/// (`[B, C, L]` or `[B, C, H, W]`); an error unless everything fits.
pub(super) fn geometry(dims: &[usize], kind: PoolKind, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<PoolGeometry> {
    let axes = dims.len().saturating_sub(2);
    if !(1..=2).contains(&axes) || kernel.len() != axes || stride.len() != axes || padding.len() != axes {
        candle_core::bail!("pool: input {dims:?} with kernel {kernel:?}, stride {stride:?}, padding {padding:?}");
    }
    // A 1-D pool is a 2-D one over a height of 1.
    let lift = |v: &[usize], one: usize| if axes == 1 { [one, v[0]] } else { [v[0], v[1]] };
    let g = PoolGeometry {
        kind,
        planes: dims[0] * dims[1],
        input: lift(&dims[2..], 1),
        kernel: lift(kernel, 1),
        stride: lift(stride, 1),
        padding: lift(padding, 0),
    };
    g.check().map_err(geometry_error)?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn impossible_shapes_are_errors() {
        let x = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(pool(&x, PoolKind::Max, &[5], &[1], &[0]).is_err());
        assert!(pool(&x, PoolKind::Max, &[2, 2], &[1, 1], &[0, 0]).is_err());
        assert!(pool(&x, PoolKind::Avg, &[2], &[0], &[0]).is_err());
        assert_eq!(pool(&x, PoolKind::Avg, &[2], &[2], &[0]).unwrap().dims(), &[1, 2, 2]);
    }
}
