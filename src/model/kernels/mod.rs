//! The Candle glue of the CPU kernels (the `lpn-kernels` crate): each op
//! unpacks Candle's storage and layout into slices, hands them with the
//! layer's configuration (`lpn_kernels::ConvGeometry` and its kin, built
//! once per call from the IR and the input's shape) to the kernel, and wraps
//! the result. Backward passes are ops of their own that call the kernels'
//! gradients. No kernel code and no `unsafe` here.

use candle_core::{Layout, Result, Tensor};
use lpn_kernels::{ConvGeometry, GeometryError};

use crate::language::ir;

/// A contiguous CPU tensor's values, for the kernels (which need contiguous inputs).
fn contiguous_slice<'a, T: candle_core::WithDType>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("lpn's CPU kernels need contiguous inputs"),
    }
}

/// Runs a kernel body on f32 or f64 CPU storage, all operands alike, with
/// each operand as a contiguous slice; other dtypes are an error.
macro_rules! dispatch {
    ($(($s:expr, $l:expr)),+ => |$($a:ident),+| $body:expr) => {
        match ($($s,)+) {
            ($(candle_core::CpuStorage::F32($a),)+) => {
                $(let $a = super::contiguous_slice($a, $l)?;)+
                candle_core::CpuStorage::F32($body)
            }
            ($(candle_core::CpuStorage::F64($a),)+) => {
                $(let $a = super::contiguous_slice($a, $l)?;)+
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("lpn's CPU kernels support f32 and f64, all operands alike"),
        }
    };
}

mod act;
mod band;
mod conv;
mod conv1d;
mod conv2d;
mod conv_norm;
mod norm;
mod pool;

pub use act::{bias_act, relu};
pub use band::mean_quadratic_ratio;
pub use conv_norm::{Conv, conv_batch_norm_train};
pub use conv1d::conv1d;
pub use conv2d::{conv2d, conv2d_block};
pub use norm::{batch_norm_train, channel_affine};
pub use pool::{Pooling, pool};

fn geometry_error(e: GeometryError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// An error unless `layout` has the shape `want`.
fn expect_shape(layout: &Layout, want: &[usize], what: &str) -> Result<()> {
    if layout.shape().dims() != want {
        candle_core::bail!("{what} {:?} does not fit the kernel's {want:?}", layout.shape().dims());
    }
    Ok(())
}

/// The kernels' configuration of the convolution `conv` over `x [B, Cin,
/// *spatial]` (N spatial axes) with weight `w`: an error unless everything
/// fits (channels and groups, at least one output position per axis, and
/// `w` of the shape `conv` declares).
pub fn conv_geometry<const N: usize>(conv: &ir::Conv, x: &Tensor, w: &Tensor) -> Result<ConvGeometry<N>> {
    let axes = |v: usize| v == N;
    let ranks_fit = x.rank() == N + 2
        && axes(conv.kernel.len())
        && axes(conv.stride.len())
        && axes(conv.padding.len())
        && axes(conv.dilation.len())
        && x.dim(1)? == conv.in_channels;
    if !ranks_fit {
        candle_core::bail!("convolution {conv:?} over an input {:?}", x.dims());
    }
    let g = ConvGeometry {
        batch: x.dim(0)?,
        in_channels: conv.in_channels,
        out_channels: conv.out_channels,
        groups: conv.groups,
        kernel: std::array::from_fn(|a| conv.kernel[a]),
        stride: std::array::from_fn(|a| conv.stride[a]),
        padding: std::array::from_fn(|a| conv.padding[a]),
        dilation: std::array::from_fn(|a| conv.dilation[a]),
        input: std::array::from_fn(|a| x.dims()[2 + a]),
    };
    g.check().map_err(geometry_error)?;
    if w.dims() != g.weight_shape() {
        candle_core::bail!("weight {:?} does not fit {conv:?} (input {:?})", w.dims(), x.dims());
    }
    Ok(g)
}
