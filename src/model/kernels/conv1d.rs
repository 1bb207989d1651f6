//! The 1-D convolution with a bias in the same op (`lpn_kernels::conv1d`):
//! no broadcast add, one pass for the bias gradient. Without a bias, and
//! for the gradients, the ops of `conv.rs`.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use lpn_kernels::{ConvGeometry, conv1d as kernel};

use super::conv::{Forward, gradients};
use super::expect_shape;

/// `conv1d(x, w) + bias` (per output channel).
struct ForwardBias(ConvGeometry<1>);
/// `grad_y ↦ Σ_b Σ_t grad_y[b, :, t]`, the bias gradient.
struct BiasGrad(ConvGeometry<1>);

impl CustomOp3 for ForwardBias {
    fn name(&self) -> &'static str {
        "lpn-conv1d-bias"
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
        let g = &self.0;
        expect_shape(l1, &g.input_shape(), "conv1d input")?;
        expect_shape(l2, &g.weight_shape(), "conv1d weight")?;
        expect_shape(l3, &[g.out_channels], "conv1d bias")?;
        Ok((dispatch!((s1, l1), (s2, l2), (s3, l3) => |x, w, b| kernel::forward(x, w, Some(b), g)), Shape::from(g.output_shape())))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gx, gw) = gradients(self.0, x, w, &grad)?;
        let gb = bias_grad(&grad, self.0)?;
        Ok((gx, gw, Some(gb)))
    }
}

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "lpn-conv1d-bias-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = &self.0;
        expect_shape(l, &g.output_shape(), "conv1d output gradient")?;
        Ok((dispatch!((s, l) => |gy| kernel::grad_bias(gy, g.out_channels, g.out_len(0))), Shape::from(g.out_channels)))
    }
}

/// The bias's gradient from the convolution output's (contiguous) gradient.
pub(super) fn bias_grad(gy: &Tensor, g: ConvGeometry<1>) -> Result<Tensor> {
    gy.apply_op1_no_bwd(&BiasGrad(g))
}

/// The 1-D convolution of `g` with its backward pass, and an optional bias
/// `[Cout]` added in the same op. Operands that do not fit `g` are errors.
pub fn conv1d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: ConvGeometry<1>) -> Result<Tensor> {
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match bias {
        None => x.apply_op2(&w, Forward(g)),
        Some(b) => x.apply_op3(&w, &b.contiguous()?, ForwardBias(g)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::ir;

    #[test]
    fn impossible_shapes_are_errors() {
        let dev = candle_core::Device::Cpu;
        let zeros = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &dev).unwrap();
        let x = zeros(&[1, 2, 4]);
        let conv = |cin: usize, k: usize| ir::Conv {
            in_channels: cin,
            out_channels: 1,
            kernel: vec![k],
            stride: vec![1],
            padding: vec![(0, 0)],
            dilation: vec![1],
            groups: 1,
            bias: false,
        };
        let run = |c: &ir::Conv, w: &Tensor| super::super::conv_geometry::<1>(c, &x, w).and_then(|g| conv1d(&x, w, None, g));
        assert!(run(&conv(2, 9), &zeros(&[1, 2, 9])).is_err());
        assert!(run(&conv(3, 3), &zeros(&[1, 3, 3])).is_err());
        assert!(run(&conv(2, 3), &zeros(&[1, 2, 4])).is_err());
        assert_eq!(run(&conv(2, 3), &zeros(&[1, 2, 3])).unwrap().dims(), &[1, 1, 2]);
        // A geometry that does not match the tensors is an error, not a panic.
        let g = super::super::conv_geometry::<1>(&conv(2, 3), &x, &zeros(&[1, 2, 3])).unwrap();
        assert!(conv1d(&zeros(&[1, 2, 5]), &zeros(&[1, 2, 3]), None, g).is_err());
    }
}
