//! Max and average pooling, 1-D and 2-D, for the CPU, as Candle custom ops
//! with their own backward passes. A 1-D input `[B, C, L]` is pooled as
//! `[B, C, 1, L]`.
//!
//! Semantics are PyTorch's defaults: floor mode, max pooling padded with −∞
//! (padding never wins), average pooling counting the zero padding in the
//! divisor (kh·kw). The max-pool backward recomputes each window's argmax
//! from the input (the first maximum in row-major window order, as PyTorch)
//! instead of storing indices.
//!
//! Parallel over `(batch, channel)` planes with rayon's global pool; each
//! plane's output and gradient are written by one thread in a fixed order, so
//! results are deterministic. Tested against the fixtures in
//! `tests/fixtures/ops` and `tests/fixtures/torch`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Window, stride and padding along height, then width (1-D: height 1).
#[derive(Clone, Copy, Debug)]
pub struct PoolSpec {
    pub kind: PoolKind,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

#[derive(Clone, Copy)]
struct Dims {
    planes: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
}

impl PoolSpec {
    fn out_len(&self, axis: usize, len: usize) -> usize {
        (len + 2 * self.padding[axis] - self.kernel[axis]) / self.stride[axis] + 1
    }

    /// The input indices of output position `t`'s window along `axis`,
    /// clipped to the input.
    fn window(&self, axis: usize, t: usize, len: usize) -> std::ops::Range<usize> {
        let start = (t * self.stride[axis]) as isize - self.padding[axis] as isize;
        let end = (start + self.kernel[axis] as isize).min(len as isize);
        (start.max(0) as usize)..(end.max(0) as usize)
    }

    fn divisor(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
}

trait Num:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::AddAssign
    + std::ops::Div<Output = Self>
    + std::ops::DivAssign
    + Default
{
    const NEG_INFINITY: Self;
    fn from_usize(n: usize) -> Self;
    fn is_nan(self) -> bool;
}
impl Num for f32 {
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    fn from_usize(n: usize) -> Self {
        n as f32
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}
impl Num for f64 {
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    fn from_usize(n: usize) -> Self {
        n as f64
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// Every output position's window along one axis, clipped to the input.
fn windows(s: &PoolSpec, axis: usize, len: usize, out_len: usize) -> Vec<std::ops::Range<usize>> {
    (0..out_len).map(|t| s.window(axis, t, len)).collect()
}

/// The flat index (within the plane) of the first maximum of the window
/// `rows × cols`, or None when the window lies wholly in the padding. NaN
/// wins, as in PyTorch.
#[inline]
fn argmax<T: Num>(plane: &[T], w: usize, rows: &std::ops::Range<usize>, cols: &std::ops::Range<usize>) -> Option<usize> {
    let mut best = None;
    let mut best_v = T::NEG_INFINITY;
    for ih in rows.clone() {
        let row = &plane[ih * w..(ih + 1) * w];
        for iw in cols.clone() {
            let v = row[iw];
            if v > best_v || (best.is_none() && v == best_v) {
                best = Some(ih * w + iw);
                best_v = v;
            } else if v.is_nan() {
                return Some(ih * w + iw);
            }
        }
    }
    best
}

/// Planes per parallel task: at least this many input elements each, so
/// rayon's overhead stays small next to the work on small planes.
const TASK_ELEMENTS: usize = 1 << 14;

/// Runs `f(plane index, output plane)` over every plane of `out` (planes of
/// `plane_out` elements), in parallel over groups of planes.
fn for_each_plane<T: Num>(out: &mut [T], plane_out: usize, plane_in: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if plane_out == 0 {
        return;
    }
    let per_task = (TASK_ELEMENTS / plane_in.max(1)).max(1);
    out.par_chunks_mut(plane_out * per_task).enumerate().for_each(|(task, planes)| {
        for (k, plane) in planes.chunks_mut(plane_out).enumerate() {
            f(task * per_task + k, plane);
        }
    });
}

/// `m` or `v`, whichever max pooling keeps: the larger, and NaN once seen.
#[inline]
fn keep_max<T: Num>(m: T, v: T) -> T {
    if v > m || v.is_nan() { v } else { m }
}

/// Windows that tile the input (no padding, stride = window): row by row,
/// no per-window ranges; 2×2 max pooling, the common case, unrolled.
fn forward_tiled<T: Num>(xp: &[T], yp: &mut [T], d: &Dims, s: &PoolSpec) {
    let [kh, kw] = s.kernel;
    let divisor = T::from_usize(s.divisor());
    for (oh, yrow) in yp.chunks_exact_mut(d.wo).enumerate() {
        let rows = &xp[oh * kh * d.w..(oh + 1) * kh * d.w];
        match s.kind {
            PoolKind::Max if kh == 2 && kw == 2 => {
                let (r0, r1) = rows.split_at(d.w);
                for (ow, yv) in yrow.iter_mut().enumerate() {
                    let i = 2 * ow;
                    *yv = keep_max(keep_max(keep_max(r0[i], r0[i + 1]), r1[i]), r1[i + 1]);
                }
            }
            PoolKind::Max => {
                for (ow, yv) in yrow.iter_mut().enumerate() {
                    let mut m = T::NEG_INFINITY;
                    for row in rows.chunks_exact(d.w) {
                        for &v in &row[ow * kw..(ow + 1) * kw] {
                            m = keep_max(m, v);
                        }
                    }
                    *yv = m;
                }
            }
            PoolKind::Avg => {
                for (ow, yv) in yrow.iter_mut().enumerate() {
                    let mut sum = T::default();
                    for row in rows.chunks_exact(d.w) {
                        for &v in &row[ow * kw..(ow + 1) * kw] {
                            sum += v;
                        }
                    }
                    *yv = sum / divisor;
                }
            }
        }
    }
}

fn forward<T: Num>(x: &[T], d: &Dims, s: &PoolSpec) -> Vec<T> {
    let (plane_in, plane_out) = (d.h * d.w, d.ho * d.wo);
    let (row_windows, col_windows) = (windows(s, 0, d.h, d.ho), windows(s, 1, d.w, d.wo));
    let divisor = T::from_usize(s.divisor());
    let mut y = vec![T::default(); d.planes * plane_out];
    let tiling = s.padding == [0, 0] && s.stride == s.kernel;
    for_each_plane(&mut y, plane_out, plane_in, |n, yp| {
        let xp = &x[n * plane_in..(n + 1) * plane_in];
        if tiling {
            return forward_tiled(xp, yp, d, s);
        }
        for (rows, yrow) in row_windows.iter().zip(yp.chunks_exact_mut(d.wo)) {
            for (cols, yv) in col_windows.iter().zip(yrow.iter_mut()) {
                *yv = match s.kind {
                    PoolKind::Max => {
                        // The value of `argmax`'s pick, without tracking where.
                        let mut max = T::NEG_INFINITY;
                        for ih in rows.clone() {
                            for &v in &xp[ih * d.w + cols.start..ih * d.w + cols.end] {
                                max = keep_max(max, v);
                            }
                        }
                        max
                    }
                    PoolKind::Avg => {
                        let mut sum = T::default();
                        for ih in rows.clone() {
                            for &v in &xp[ih * d.w + cols.start..ih * d.w + cols.end] {
                                sum += v;
                            }
                        }
                        sum / divisor
                    }
                };
            }
        }
    });
    y
}

/// The 2×2 tiling max-pool backward: each input element is in one window,
/// and the window's gradient goes to its first NaN, else its first maximum
/// (what `argmax` picks).
fn max_backward_2x2<T: Num>(gyp: &[T], xp: &[T], gxp: &mut [T], d: &Dims) {
    for (oh, grow) in gyp.chunks_exact(d.wo).enumerate() {
        let (top, bottom) = (2 * oh * d.w, (2 * oh + 1) * d.w);
        for (ow, &g) in grow.iter().enumerate() {
            let cells = [top + 2 * ow, top + 2 * ow + 1, bottom + 2 * ow, bottom + 2 * ow + 1];
            let mut best = cells[0];
            let mut best_v = xp[best];
            if !best_v.is_nan() {
                for &i in &cells[1..] {
                    let v = xp[i];
                    if v.is_nan() {
                        best = i;
                        break;
                    }
                    if v > best_v {
                        best = i;
                        best_v = v;
                    }
                }
            }
            gxp[best] += g;
        }
    }
}

/// `grad_x` from `grad_y`; max pooling also needs the input `x`.
fn backward<T: Num>(gy: &[T], x: Option<&[T]>, d: &Dims, s: &PoolSpec) -> Vec<T> {
    let (plane_in, plane_out) = (d.h * d.w, d.ho * d.wo);
    let (row_windows, col_windows) = (windows(s, 0, d.h, d.ho), windows(s, 1, d.w, d.wo));
    let divisor = T::from_usize(s.divisor());
    let max_2x2 = s.kind == PoolKind::Max && s.padding == [0, 0] && s.stride == [2, 2] && s.kernel == [2, 2];
    let mut gx = vec![T::default(); d.planes * plane_in];
    for_each_plane(&mut gx, plane_in, plane_in, |n, gxp| {
        let gyp = &gy[n * plane_out..(n + 1) * plane_out];
        if let (true, Some(x)) = (max_2x2, x) {
            return max_backward_2x2(gyp, &x[n * plane_in..(n + 1) * plane_in], gxp, d);
        }
        for (rows, grow) in row_windows.iter().zip(gyp.chunks_exact(d.wo)) {
            for (cols, &g) in col_windows.iter().zip(grow) {
                match x {
                    Some(x) => {
                        if let Some(i) = argmax(&x[n * plane_in..(n + 1) * plane_in], d.w, rows, cols) {
                            gxp[i] += g;
                        }
                    }
                    None => {
                        let share = g / divisor;
                        for ih in rows.clone() {
                            for v in &mut gxp[ih * d.w + cols.start..ih * d.w + cols.end] {
                                *v += share;
                            }
                        }
                    }
                }
            }
        }
    });
    gx
}

use super::contiguous_slice as slice;

/// `[B, C, *spatial]` with one or two spatial axes, as planes of `h × w`.
fn plane_dims(shape: &Shape, s: &PoolSpec) -> Result<Dims> {
    let dims = shape.dims();
    let (h, w) = match dims.len() {
        3 => (1, dims[2]),
        4 => (dims[2], dims[3]),
        n => candle_core::bail!("pooling over a rank-{n} tensor"),
    };
    Ok(Dims { planes: dims[0] * dims[1], h, w, ho: s.out_len(0, h), wo: s.out_len(1, w) })
}

fn out_shape(input: &Shape, d: &Dims) -> Shape {
    let dims = input.dims();
    if dims.len() == 3 { Shape::from((dims[0], dims[1], d.wo)) } else { Shape::from((dims[0], dims[1], d.ho, d.wo)) }
}

struct Forward(PoolSpec);
/// `grad_y ↦ grad_x` for average pooling; carries the input's shape.
struct AvgGrad(PoolSpec, Shape);
/// `(grad_y, x) ↦ grad_x` for max pooling.
struct MaxGrad(PoolSpec);

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        "lpn-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = plane_dims(l.shape(), &self.0)?;
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(forward(slice(x, l)?, &d, &self.0)),
            CpuStorage::F64(x) => CpuStorage::F64(forward(slice(x, l)?, &d, &self.0)),
            _ => candle_core::bail!("pool kernel supports f32 and f64"),
        };
        Ok((out, out_shape(l.shape(), &d)))
    }
    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(match self.0.kind {
            PoolKind::Max => grad.apply_op2_no_bwd(x, &MaxGrad(self.0))?,
            PoolKind::Avg => grad.apply_op1_no_bwd(&AvgGrad(self.0, x.shape().clone()))?,
        }))
    }
}

impl CustomOp1 for AvgGrad {
    fn name(&self) -> &'static str {
        "lpn-avg-pool-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = plane_dims(&self.1, &self.0)?;
        let out = match s {
            CpuStorage::F32(g) => CpuStorage::F32(backward(slice(g, l)?, None, &d, &self.0)),
            CpuStorage::F64(g) => CpuStorage::F64(backward(slice(g, l)?, None, &d, &self.0)),
            _ => candle_core::bail!("pool kernel supports f32 and f64"),
        };
        Ok((out, self.1.clone()))
    }
}

impl CustomOp2 for MaxGrad {
    fn name(&self) -> &'static str {
        "lpn-max-pool-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = plane_dims(l2.shape(), &self.0)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(x)) => CpuStorage::F32(backward(slice(g, l1)?, Some(slice(x, l2)?), &d, &self.0)),
            (CpuStorage::F64(g), CpuStorage::F64(x)) => CpuStorage::F64(backward(slice(g, l1)?, Some(slice(x, l2)?), &d, &self.0)),
            _ => candle_core::bail!("pool kernel supports f32 and f64"),
        };
        Ok((out, l2.shape().clone()))
    }
}

/// Pooling of `[B, C, L]` or `[B, C, H, W]` over the last one or two axes
/// (`kernel`, `stride`, `padding` one entry per pooled axis), with its
/// backward pass, for f32 and f64 tensors on the CPU. Shapes that do not fit
/// are errors, never panics.
pub fn pool(x: &Tensor, kind: PoolKind, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    let axes = x.rank().saturating_sub(2);
    if !(1..=2).contains(&axes) || kernel.len() != axes || stride.len() != axes || padding.len() != axes {
        candle_core::bail!("pool: input {:?} with kernel {kernel:?}, stride {stride:?}, padding {padding:?}", x.dims());
    }
    // A 1-D pool is a 2-D one over a height of 1.
    let lift = |v: &[usize], one: usize| if axes == 1 { [one, v[0]] } else { [v[0], v[1]] };
    let spec = PoolSpec { kind, kernel: lift(kernel, 1), stride: lift(stride, 1), padding: lift(padding, 0) };
    let spatial = &x.dims()[2..];
    let fits = (0..axes).all(|a| {
        let (k, s, p) = (kernel[a], stride[a], padding[a]);
        k > 0 && s > 0 && spatial[a] + 2 * p >= k
    });
    if !fits {
        candle_core::bail!("pool: input {:?} does not fit kernel {kernel:?}, stride {stride:?}, padding {padding:?}", x.dims());
    }
    x.contiguous()?.apply_op1(Forward(spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The unrolled 2×2 paths against the general window loops (`argmax`,
    /// `keep_max`), on odd sizes with ties, −∞ and NaN.
    #[test]
    fn tiled_2x2_matches_the_general_windows() {
        let (h, w) = (7, 9);
        let d = Dims { planes: 3, h, w, ho: 3, wo: 4 };
        let spec = PoolSpec { kind: PoolKind::Max, kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
        let mut rng = crate::rng::Rng::derive(7, "pool test");
        let x: Vec<f64> = (0..d.planes * h * w)
            .map(|i| match i % 23 {
                5 => f64::NAN,
                9 => f64::NEG_INFINITY,
                _ => (rng.range(0.0, 4.0)).floor(),
            })
            .collect();
        let gy: Vec<f64> = (0..d.planes * d.ho * d.wo).map(|i| i as f64 + 1.0).collect();
        let y = forward(&x, &d, &spec);
        let gx = backward(&gy, Some(&x), &d, &spec);
        let mut want_gx = vec![0.0; x.len()];
        for n in 0..d.planes {
            let plane = &x[n * h * w..(n + 1) * h * w];
            for oh in 0..d.ho {
                for ow in 0..d.wo {
                    let (rows, cols) = (2 * oh..2 * oh + 2, 2 * ow..2 * ow + 2);
                    let i = argmax(plane, w, &rows, &cols).unwrap();
                    let o = (n * d.ho + oh) * d.wo + ow;
                    assert!(y[o] == plane[i] || (y[o].is_nan() && plane[i].is_nan()), "{} vs {}", y[o], plane[i]);
                    want_gx[n * h * w + i] += gy[o];
                }
            }
        }
        assert_eq!(gx, want_gx);
    }

    #[test]
    fn impossible_shapes_are_errors() {
        let x = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(pool(&x, PoolKind::Max, &[5], &[1], &[0]).is_err());
        assert!(pool(&x, PoolKind::Max, &[2, 2], &[1, 1], &[0, 0]).is_err());
        assert!(pool(&x, PoolKind::Avg, &[2], &[0], &[0]).is_err());
        assert_eq!(pool(&x, PoolKind::Avg, &[2], &[2], &[0]).unwrap().dims(), &[1, 2, 2]);
    }
}
