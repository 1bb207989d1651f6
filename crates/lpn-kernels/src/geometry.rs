//! One configuration type per layer kind, built once by the caller and passed
//! to every kernel of that layer (forward and gradients), and the one
//! output-length formula they all use.

use std::fmt;

/// Positions a window of `kernel` taps `dilation` apart, moved by `stride`,
/// takes along an axis of `len` padded by `padding` (before, after): PyTorch's
/// floor formula. `None` when no window fits (or `kernel`, `stride` or
/// `dilation` is 0).
pub fn out_len(len: usize, padding: (usize, usize), kernel: usize, stride: usize, dilation: usize) -> Option<usize> {
    let span = dilation.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
    let padded = len.checked_add(padding.0)?.checked_add(padding.1)?;
    (stride > 0 && dilation > 0 && padded >= span).then(|| (padded - span) / stride + 1)
}

/// Why a geometry cannot be run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeometryError(pub String);

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GeometryError {}

/// A convolution (PyTorch's cross-correlation) over `N` spatial axes: input
/// `[batch, in_channels, *input]`, weight `[out_channels, in_channels/groups,
/// *kernel]`, output `[batch, out_channels, *output()]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry<const N: usize> {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub kernel: [usize; N],
    pub stride: [usize; N],
    /// Zeros before and after, per axis.
    pub padding: [(usize, usize); N],
    pub dilation: [usize; N],
    /// The input's spatial size.
    pub input: [usize; N],
}

impl<const N: usize> ConvGeometry<N> {
    /// An error unless the channels divide into the groups and every axis has
    /// at least one output position.
    pub fn check(&self) -> Result<(), GeometryError> {
        let axes_fit = (0..N).all(|a| self.axis_out_len(a).is_some());
        let fits =
            self.groups > 0 && self.in_channels.is_multiple_of(self.groups) && self.out_channels.is_multiple_of(self.groups) && axes_fit;
        if fits { Ok(()) } else { Err(GeometryError(format!("the convolution does not fit its input: {self:?}"))) }
    }

    fn axis_out_len(&self, axis: usize) -> Option<usize> {
        out_len(self.input[axis], self.padding[axis], self.kernel[axis], self.stride[axis], self.dilation[axis])
    }

    /// The output's length along `axis` (0 where [`Self::check`] fails).
    pub fn out_len(&self, axis: usize) -> usize {
        self.axis_out_len(axis).unwrap_or(0)
    }

    /// The output's spatial size.
    pub fn output(&self) -> [usize; N] {
        std::array::from_fn(|a| self.out_len(a))
    }

    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Taps of one kernel (the product of `kernel`).
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.input.iter().product::<usize>()
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_per_group() * self.taps()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.output().iter().product::<usize>()
    }

    /// The input's shape `[batch, in_channels, *input]`.
    pub fn input_shape(&self) -> Vec<usize> {
        [self.batch, self.in_channels].into_iter().chain(self.input).collect()
    }

    /// The weight's shape `[out_channels, in_channels/groups, *kernel]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        [self.out_channels, self.in_per_group()].into_iter().chain(self.kernel).collect()
    }

    /// The output's shape `[batch, out_channels, *output]`.
    pub fn output_shape(&self) -> Vec<usize> {
        [self.batch, self.out_channels].into_iter().chain(self.output()).collect()
    }

    /// For tap `j` along `axis`: the output positions t whose input index
    /// t·stride + j·dilation − pad lies inside the input, as a half-open
    /// range, and the input index of position 0 (possibly negative).
    pub(crate) fn valid(&self, axis: usize, j: usize) -> (usize, usize, isize) {
        let (len, out) = (self.input[axis], self.out_len(axis));
        let off = (j * self.dilation[axis]) as isize - self.padding[axis].0 as isize;
        let s = self.stride[axis] as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let last = len as isize - 1 - off;
        let hi = if last < 0 { 0 } else { (last / s + 1).min(out as isize) };
        (lo as usize, (hi.max(lo)) as usize, off)
    }

    pub(crate) fn assert_fits(&self, input: usize, weight: usize) {
        assert!(self.check().is_ok(), "{self:?} does not fit");
        assert!(input == self.input_len() && weight == self.weight_len(), "operands do not fit {self:?}");
    }
}

/// The kernels of a convolution geometry (1-D or 2-D), so that callers can
/// treat both alike: forward (no bias) and both gradients. Each panics if
/// its operands do not fit the geometry.
pub trait Convolution: Copy + fmt::Debug + Send + Sync + 'static {
    fn forward<T: crate::Num>(&self, x: &[T], w: &[T]) -> Vec<T>;
    /// The input's gradient from the output's `gy`.
    fn grad_input<T: crate::Num>(&self, gy: &[T], w: &[T]) -> Vec<T>;
    /// The weight's gradient from the output's `gy`.
    fn grad_weight<T: crate::Num>(&self, gy: &[T], x: &[T]) -> Vec<T>;
}

impl Convolution for ConvGeometry<1> {
    fn forward<T: crate::Num>(&self, x: &[T], w: &[T]) -> Vec<T> {
        crate::conv1d::forward(x, w, None, self)
    }
    fn grad_input<T: crate::Num>(&self, gy: &[T], w: &[T]) -> Vec<T> {
        crate::conv1d::grad_input(gy, w, self)
    }
    fn grad_weight<T: crate::Num>(&self, gy: &[T], x: &[T]) -> Vec<T> {
        crate::conv1d::grad_weight(gy, x, self)
    }
}

impl Convolution for ConvGeometry<2> {
    fn forward<T: crate::Num>(&self, x: &[T], w: &[T]) -> Vec<T> {
        crate::conv2d::forward(x, w, self)
    }
    fn grad_input<T: crate::Num>(&self, gy: &[T], w: &[T]) -> Vec<T> {
        crate::conv2d::grad_input(gy, w, self)
    }
    fn grad_weight<T: crate::Num>(&self, gy: &[T], x: &[T]) -> Vec<T> {
        crate::conv2d::grad_weight(gy, x, self)
    }
}

/// A 2-D convolution followed by a per-channel bias, optionally a ReLU, and
/// optionally a max pool whose windows tile the convolution's output (window
/// = stride, no padding; trailing rows and columns that fill no window are
/// dropped, PyTorch's floor mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockGeometry {
    pub conv: ConvGeometry<2>,
    pub relu: bool,
    pub pool: Option<[usize; 2]>,
}

/// Most cells in a block's pooling window: the winner's index is kept in a byte.
pub const MAX_POOL_WINDOW: usize = 256;

impl BlockGeometry {
    pub fn check(&self) -> Result<(), GeometryError> {
        self.conv.check()?;
        let [ho, wo] = self.conv.output();
        match self.pool {
            Some([ph, pw]) if ph == 0 || pw == 0 || ph * pw > MAX_POOL_WINDOW || ph > ho || pw > wo => {
                Err(GeometryError(format!("conv2d block: a {ph}×{pw} pool over a {ho}×{wo} output")))
            }
            Some(_) | None => Ok(()),
        }
    }

    /// The block's output size per channel: the pooled one when it pools.
    pub fn output(&self) -> [usize; 2] {
        let [ho, wo] = self.conv.output();
        match self.pool {
            Some([ph, pw]) => [ho / ph, wo / pw],
            None => [ho, wo],
        }
    }

    /// Elements of the block's output.
    pub fn output_len(&self) -> usize {
        let [h, w] = self.output();
        self.conv.batch * self.conv.out_channels * h * w
    }
}

/// Max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Pooling of `planes` planes of `input` (height, width; a 1-D pool has
/// height 1), window, stride and padding along height, then width. PyTorch's
/// defaults: floor mode, max pooling padded with −∞, average pooling counting
/// the zero padding in the divisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub kind: PoolKind,
    pub planes: usize,
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl PoolGeometry {
    fn axis_out_len(&self, axis: usize) -> Option<usize> {
        out_len(self.input[axis], (self.padding[axis], self.padding[axis]), self.kernel[axis], self.stride[axis], 1)
    }

    pub fn check(&self) -> Result<(), GeometryError> {
        match (self.axis_out_len(0), self.axis_out_len(1)) {
            (Some(_), Some(_)) => Ok(()),
            _ => Err(GeometryError(format!("the pool does not fit its input: {self:?}"))),
        }
    }

    /// Output height and width (0 where [`Self::check`] fails).
    pub fn output(&self) -> [usize; 2] {
        std::array::from_fn(|a| self.axis_out_len(a).unwrap_or(0))
    }

    pub(crate) fn plane_in(&self) -> usize {
        self.input[0] * self.input[1]
    }

    pub(crate) fn plane_out(&self) -> usize {
        let [ho, wo] = self.output();
        ho * wo
    }

    /// The input indices of output position `t`'s window along `axis`,
    /// clipped to the input.
    pub(crate) fn window(&self, axis: usize, t: usize) -> std::ops::Range<usize> {
        let len = self.input[axis];
        let start = (t * self.stride[axis]) as isize - self.padding[axis] as isize;
        let end = (start + self.kernel[axis] as isize).min(len as isize);
        (start.max(0) as usize)..(end.max(0) as usize)
    }

    /// Whether the windows tile the input: no padding, stride = window.
    pub fn tiles(&self) -> bool {
        self.padding == [0, 0] && self.stride == self.kernel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_len_is_pytorch_floor_formula() {
        assert_eq!(out_len(10, (0, 0), 3, 1, 1), Some(8));
        assert_eq!(out_len(10, (1, 1), 3, 2, 1), Some(5));
        assert_eq!(out_len(10, (0, 0), 3, 1, 4), Some(2));
        assert_eq!(out_len(2, (0, 0), 3, 1, 1), None);
        assert_eq!(out_len(2, (1, 0), 3, 1, 1), Some(1));
        assert_eq!(out_len(5, (0, 0), 0, 1, 1), None);
        assert_eq!(out_len(5, (0, 0), 1, 0, 1), None);
        assert_eq!(out_len(5, (0, 0), 2, 1, 0), None);
    }

    #[test]
    fn geometries_that_do_not_fit_fail_their_check() {
        let g = ConvGeometry {
            batch: 1,
            in_channels: 4,
            out_channels: 6,
            groups: 2,
            kernel: [3],
            stride: [1],
            padding: [(0, 0)],
            dilation: [1],
            input: [5],
        };
        assert!(g.check().is_ok());
        assert_eq!(g.output(), [3]);
        assert!(ConvGeometry { groups: 4, ..g }.check().is_err());
        assert!(ConvGeometry { groups: 0, ..g }.check().is_err());
        assert!(ConvGeometry { kernel: [6], ..g }.check().is_err());
    }
}
