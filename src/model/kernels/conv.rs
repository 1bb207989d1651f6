//! The convolution's ops shared by 1-D and 2-D (`lpn_kernels::Convolution`
//! on `ConvGeometry<N>`): forward without bias, and both gradients.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use lpn_kernels::{ConvGeometry, Convolution};

use super::expect_shape;

/// `conv(x, w)`: x `[B, Cin, *input]`, w `[Cout, Cin/groups, *kernel]`.
pub(super) struct Forward<const N: usize>(pub ConvGeometry<N>);
/// `(grad_y, w) ↦ grad_x`.
struct GradInput<const N: usize>(ConvGeometry<N>);
/// `(grad_y, x) ↦ grad_w`.
struct GradWeight<const N: usize>(ConvGeometry<N>);

impl<const N: usize> CustomOp2 for Forward<N>
where
    ConvGeometry<N>: Convolution,
{
    fn name(&self) -> &'static str {
        "lpn-conv"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        expect_shape(l1, &g.input_shape(), "convolution input")?;
        expect_shape(l2, &g.weight_shape(), "convolution weight")?;
        Ok((dispatch!((s1, l1), (s2, l2) => |x, w| g.forward(x, w)), Shape::from(g.output_shape())))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        gradients(self.0, x, w, &grad.contiguous()?)
    }
}

/// The input's and the weight's gradients from the convolution output's
/// (contiguous) `grad`; a network's input needs none: the most expensive
/// product is skipped.
pub(super) fn gradients<const N: usize>(
    g: ConvGeometry<N>,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)>
where
    ConvGeometry<N>: Convolution,
{
    let gx = if x.track_op() { Some(grad.apply_op2_no_bwd(w, &GradInput(g))?) } else { None };
    let gw = if w.track_op() { Some(grad.apply_op2_no_bwd(x, &GradWeight(g))?) } else { None };
    Ok((gx, gw))
}

impl<const N: usize> CustomOp2 for GradInput<N>
where
    ConvGeometry<N>: Convolution,
{
    fn name(&self) -> &'static str {
        "lpn-conv-grad-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        expect_shape(l1, &g.output_shape(), "convolution output gradient")?;
        expect_shape(l2, &g.weight_shape(), "convolution weight")?;
        Ok((dispatch!((s1, l1), (s2, l2) => |gy, w| g.grad_input(gy, w)), Shape::from(g.input_shape())))
    }
}

impl<const N: usize> CustomOp2 for GradWeight<N>
where
    ConvGeometry<N>: Convolution,
{
    fn name(&self) -> &'static str {
        "lpn-conv-grad-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        expect_shape(l1, &g.output_shape(), "convolution output gradient")?;
        expect_shape(l2, &g.input_shape(), "convolution input")?;
        Ok((dispatch!((s1, l1), (s2, l2) => |gy, x| g.grad_weight(gy, x)), Shape::from(g.weight_shape())))
    }
}
