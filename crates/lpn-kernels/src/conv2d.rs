//! 2-D convolution: forward, input gradient and weight gradient. For f32 on
//! a vector path (AVX-512 or AVX2) with stride 1, one group and padding
//! below the kernel size (the common layers), a direct correlation over
//! zero-padded copies of each sample (see `implicit_applies`); otherwise an
//! im2col (or its adjoint, col2im) into a thread-local buffer that is reused
//! from call to call and one GEMM per sample and group, by our
//! register-tiled kernels (`x86::gemm512`, `x86::gemm256`) on the vector
//! paths, else the `gemm` crate, which Candle's matmul uses.
//!
//! Parallel over the batch with rayon's global pool; each GEMM runs on one
//! thread. The forward pass and the input gradient write disjoint samples. The
//! weight gradient is a sum over the batch: the batch is cut into a fixed
//! number of chunks (not depending on the thread count), each chunk sums its
//! samples in order into its own partial, and the partials are added in chunk
//! order, so every result is the same bit for bit on any number of threads.
//!
//! Semantics: PyTorch's cross-correlation with padding, stride, dilation and
//! groups.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::fill::filled;
use crate::isa::{self, Isa};
use crate::{ConvGeometry, Num};

/// Partial sums of the weight gradient: at most this many, so their memory
/// stays a small multiple of the weight's.
const WEIGHT_GRAD_CHUNKS: usize = 8;

/// Whether this call runs our register-tiled products: f32 on a vector path.
fn own_kernels<T: Num>(isa: Isa) -> bool {
    let vector = match isa {
        Isa::Portable => false,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => true,
    };
    vector && T::as_f32(&[]).is_some()
}

/// `module::function(args)` from the products module of a vector path:
/// `x86::gemm512` on AVX-512, `x86::gemm256` on AVX2 (both have the same
/// functions).
#[cfg(target_arch = "x86_64")]
macro_rules! products {
    ($isa:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $isa {
            Isa::Avx512 => crate::x86::gemm512::$f($($arg),*),
            Isa::Avx2 => crate::x86::gemm256::$f($($arg),*),
            Isa::Portable => unreachable!("our products run on a vector path (own_kernels)"),
        }
    };
}

/// `dst[c·rows + r] = src[r·cols + c]`.
fn transpose<T: Num>(src: &[T], rows: usize, cols: usize, dst: &mut [T], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(s), Some(d)) = (own_kernels::<T>(isa), T::as_f32(src), T::as_f32_mut(dst)) {
        return products!(isa, transpose(s, rows, cols, d));
    }
    let _ = isa;
    for (r, row) in src.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

/// `dst[(oh·wo + ow)·n + j] (+)= Σ_t x[oh·wp + ow + offsets[t]] · wt[t·n + j]`:
/// the correlation of padded planes `x` with a kernel laid channels last
/// (`n` channels), `dst` holding `ho × wo` positions. Only on a vector path
/// (see `implicit_applies`).
fn direct_rows<T: Num>(
    dst: &mut [T],
    [ho, wo, wp]: [usize; 3],
    x: &[T],
    offsets: &[usize],
    (wt, n): (&[T], usize),
    accumulate: bool,
    isa: Isa,
) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(dst), Some(x), Some(wt)) = (T::as_f32_mut(dst), T::as_f32(x), T::as_f32(wt)) {
        let shape = crate::x86::gemm512::Direct { ho, wo, wp, n, ldo: n, ldw: n, accumulate };
        return products!(isa, direct_rows(dst, x, offsets, wt, shape));
    }
    let _ = (dst, ho, wo, wp, x, offsets, wt, n, accumulate, isa);
    unreachable!("the implicit path runs on a vector path with f32 only")
}

/// Runs `f` on this thread's scratch buffer of at least `len` elements (grown,
/// never shrunk, and not cleared: `f` must write before it reads). Nothing in
/// `f` may re-enter rayon, or another task on this thread could borrow it too.
fn with_scratch<T: Num, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    T::scratch().with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, T::default());
        }
        f(&mut buf[..len])
    })
}

/// A matrix read from a slice with arbitrary strides (a transposed view is a
/// row-major one with the strides swapped).
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> Mat<'a, T> {
    fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat { data, rows, cols, row_stride: cols, col_stride: 1 }
    }
    /// The transpose of the row-major `rows × cols` matrix in `data`.
    fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat { data, rows: cols, cols: rows, row_stride: 1, col_stride: cols }
    }
    /// The same shape and strides over other data.
    #[cfg(target_arch = "x86_64")]
    fn with_data<'b, U>(self, data: &'b [U]) -> Mat<'b, U> {
        Mat { data, rows: self.rows, cols: self.cols, row_stride: self.row_stride, col_stride: self.col_stride }
    }
    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst (+)= a·b` by our kernels for `isa` where the operands have unit
/// stride along a row; false leaves it undone.
#[cfg(target_arch = "x86_64")]
fn own_matmul(dst: &mut [f32], a: Mat<f32>, b: Mat<f32>, accumulate: bool, isa: Isa) -> bool {
    use crate::x86::gemm512::{Dst, Strided};
    let dst = Dst { data: dst, rows: a.rows, cols: b.cols, ld: b.cols };
    if b.col_stride == 1 {
        let a_strided = Strided { data: a.data, row_stride: a.row_stride, col_stride: a.col_stride };
        products!(isa, matmul_rows(dst, a_strided, a.cols, b.data, b.row_stride, accumulate));
    } else if a.col_stride == 1 && b.row_stride == 1 {
        // b is the transpose of a row-major matrix: its columns are contiguous.
        products!(isa, matmul_rows_t(dst, a.data, a.row_stride, a.cols, b.data, b.col_stride, accumulate));
    } else {
        return false;
    }
    true
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`), `dst` row-major
/// `a.rows × b.cols`, on the calling thread.
fn matmul<T: Num>(dst: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool, isa: Isa) {
    assert!(a.cols == b.rows && a.fits() && b.fits() && dst.len() >= a.rows * b.cols, "matmul operands do not fit");
    #[cfg(target_arch = "x86_64")]
    if own_kernels::<T>(isa)
        && let (Some(d), Some(ad), Some(bd)) = (T::as_f32_mut(dst), T::as_f32(a.data), T::as_f32(b.data))
        && own_matmul(d, a.with_data(ad), b.with_data(bd), accumulate, isa)
    {
        return;
    }
    let _ = isa;
    // SAFETY: every index the GEMM reads or writes is inside its slice (the
    // bounds are asserted above), `dst` is borrowed exclusively so it does not
    // alias `a` or `b`, and T is f32 or f64, which `gemm` supports.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            dst.as_mut_ptr(),
            1,
            b.cols as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::from_f64(if accumulate { 1.0 } else { 0.0 }),
            T::from_f64(1.0),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The columns of one group of one sample: `col[(c, jh, jw), (oh, ow)] =
/// x[c0 + c, oh·sh + jh·dh − ph, ow·sw + jw·dw − pw]`, zero outside the image.
/// `x` is the sample `[Cin, H, W]`; `col` is `[cin_g·kh·kw, Ho·Wo]`.
fn im2col<T: Num>(x: &[T], c0: usize, g: &ConvGeometry<2>, col: &mut [T]) {
    let ([h, w], [kh, kw], [ho, wo]) = (g.input, g.kernel, g.output());
    let mut rows = col.chunks_exact_mut(ho * wo);
    for c in 0..g.in_per_group() {
        let plane = &x[(c0 + c) * h * w..(c0 + c + 1) * h * w];
        for jh in 0..kh {
            let (h_lo, h_hi, h_off) = g.valid(0, jh);
            for jw in 0..kw {
                let (w_lo, w_hi, w_off) = g.valid(1, jw);
                let row = rows.next().expect("col has a row per tap");
                for (oh, seg) in row.chunks_exact_mut(wo).enumerate() {
                    if oh < h_lo || oh >= h_hi || w_lo == w_hi {
                        seg.fill(T::default());
                        continue;
                    }
                    let ih = (oh as isize * g.stride[0] as isize + h_off) as usize;
                    let xr = &plane[ih * w..(ih + 1) * w];
                    seg[..w_lo].fill(T::default());
                    seg[w_hi..].fill(T::default());
                    let start = (w_lo as isize * g.stride[1] as isize + w_off) as usize;
                    if g.stride[1] == 1 {
                        seg[w_lo..w_hi].copy_from_slice(&xr[start..start + (w_hi - w_lo)]);
                    } else {
                        for (v, xv) in seg[w_lo..w_hi].iter_mut().zip(xr[start..].iter().step_by(g.stride[1])) {
                            *v = *xv;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: adds each column value back onto the input
/// position it was read from. `gx` is the sample's gradient `[Cin, H, W]`.
fn col2im_add<T: Num>(col: &[T], c0: usize, g: &ConvGeometry<2>, gx: &mut [T]) {
    let ([h, w], [kh, kw], [ho, wo]) = (g.input, g.kernel, g.output());
    let mut rows = col.chunks_exact(ho * wo);
    for c in 0..g.in_per_group() {
        let plane = &mut gx[(c0 + c) * h * w..(c0 + c + 1) * h * w];
        for jh in 0..kh {
            let (h_lo, h_hi, h_off) = g.valid(0, jh);
            for jw in 0..kw {
                let (w_lo, w_hi, w_off) = g.valid(1, jw);
                let row = rows.next().expect("col has a row per tap");
                for oh in h_lo..h_hi {
                    let seg = &row[oh * wo..(oh + 1) * wo];
                    let ih = (oh as isize * g.stride[0] as isize + h_off) as usize;
                    let xr = &mut plane[ih * w..(ih + 1) * w];
                    let start = (w_lo as isize * g.stride[1] as isize + w_off) as usize;
                    if g.stride[1] == 1 {
                        for (xv, v) in xr[start..start + (w_hi - w_lo)].iter_mut().zip(&seg[w_lo..w_hi]) {
                            *xv += *v;
                        }
                    } else {
                        for (xv, v) in xr[start..].iter_mut().step_by(g.stride[1]).zip(&seg[w_lo..w_hi]) {
                            *xv += *v;
                        }
                    }
                }
            }
        }
    }
}

/// A 1×1 kernel with stride 1 and no padding reads the input as it is: no
/// im2col needed.
fn is_pointwise(g: &ConvGeometry<2>) -> bool {
    g.kernel == [1, 1] && g.stride == [1, 1] && g.padding == [(0, 0), (0, 0)]
}

/// The implicit path (f32 on a vector path; stride 1, no dilation, one group,
/// padding below the kernel size): each sample is copied once into
/// zero-padded planes of width `wp`, and tap `(c, jh, jw)` reads them from
/// `c·hp·wp + jh·wp + jw` on, in place: no im2col copy. The forward pass and
/// the input gradient are direct correlations (register tiles of positions
/// of one output row × channels, `direct_rows` of `x86::gemm512` or
/// `x86::gemm256`), the input
/// gradient on the padded output gradient with the kernel transposed and
/// flipped (no col2im); the weight gradient is the same kernel with the
/// padded input as the image and gy as the kernel.
fn implicit_applies<T: Num>(g: &ConvGeometry<2>, isa: Isa) -> bool {
    let pad_fits = |axis: usize| g.padding[axis].0 < g.kernel[axis] && g.padding[axis].1 < g.kernel[axis];
    let [ho, wo] = g.output();
    own_kernels::<T>(isa) && g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1 && pad_fits(0) && pad_fits(1) && ho > 0 && wo > 0
}

/// The padded planes of one problem: `channels` planes of `h × w` placed at
/// `(top, left)` in planes of `hp × wp`, and each tap's offset in them.
struct Grid {
    channels: usize,
    h: usize,
    w: usize,
    top: usize,
    left: usize,
    hp: usize,
    wp: usize,
    offsets: Vec<usize>,
}

/// The grid of a stride-1, undilated, one-group geometry's input.
fn grid(g: &ConvGeometry<2>) -> Grid {
    let ([h, w], [kh, kw], [(top, bottom), (left, right)]) = (g.input, g.kernel, g.padding);
    let (hp, wp) = (h + top + bottom, w + left + right);
    let mut offsets = Vec::with_capacity(g.in_channels * kh * kw);
    for c in 0..g.in_channels {
        for jh in 0..kh {
            for jw in 0..kw {
                offsets.push(c * hp * wp + jh * wp + jw);
            }
        }
    }
    Grid { channels: g.in_channels, h, w, top, left, hp, wp, offsets }
}

impl Grid {
    /// `x [C, h, w]` into `out [C, hp, wp]`, zeros around.
    fn pad<T: Num>(&self, x: &[T], out: &mut [T]) {
        out.fill(T::default());
        let (h, w) = (self.h, self.w);
        for c in 0..self.channels {
            for r in 0..h {
                let dst = (c * self.hp + self.top + r) * self.wp + self.left;
                out[dst..dst + w].copy_from_slice(&x[(c * h + r) * w..(c * h + r + 1) * w]);
            }
        }
    }
}

/// One sample's convolution output, read in place: channel `c`'s output row
/// `r` is `data[c·channel + r·row..][..wo]` (on the implicit path the rows
/// lie on the padded grid, so `row > wo`).
pub(crate) struct Rows<'a, T> {
    data: &'a [T],
    channel: usize,
    row: usize,
    wo: usize,
}

impl<T> Rows<'_, T> {
    #[inline]
    pub(crate) fn row(&self, c: usize, r: usize) -> &[T] {
        &self.data[c * self.channel + r * self.row..][..self.wo]
    }
}

/// Correlation of `x` with `w [cout, cin·kh·kw]` row-major for a stride-1,
/// undilated, one-group `g`, sample by sample in parallel: `sink(out_i,
/// rows)` receives the `i`-th item of `outs` with sample `i`'s result. Each
/// sample is copied once into zero-padded planes and correlated there with
/// the kernel laid channels last, by register tiles of positions × output
/// channels, then turned channels first. The sink runs while this thread's
/// scratch buffer is borrowed: it must not use it, nor re-enter rayon.
fn correlate_implicit_each<T: Num, O: Send>(
    (x, w): (&[T], &[T]),
    g: &ConvGeometry<2>,
    isa: Isa,
    outs: impl IndexedParallelIterator<Item = O>,
    sink: impl Fn(O, &Rows<T>) + Sync,
) {
    let grid = grid(g);
    let (cin, cout, [ho, wo]) = (g.in_channels, g.out_channels, g.output());
    let (plane, p, taps) = (cin * grid.hp * grid.wp, ho * wo, g.in_per_group() * g.taps());
    let sample_len = cin * g.input[0] * g.input[1];
    let mut wt = vec![T::default(); taps * cout];
    transpose(&w[..cout * taps], cout, taps, &mut wt, isa);
    outs.enumerate().for_each(|(i, o)| {
        with_scratch(plane + 2 * cout * p, |buf| {
            let (padded, rest) = buf.split_at_mut(plane);
            let (by_position, by_channel) = rest.split_at_mut(cout * p);
            grid.pad(&x[i * sample_len..(i + 1) * sample_len], padded);
            direct_rows(by_position, [ho, wo, grid.wp], padded, &grid.offsets, (&wt, cout), false, isa);
            transpose(by_position, p, cout, by_channel, isa);
            sink(o, &Rows { data: by_channel, channel: p, row: wo, wo });
        })
    });
}

/// `rows` (channels of `ho` rows) copied densely into `dst`.
fn copy_rows<T: Copy>(dst: &mut [MaybeUninit<T>], rows: &Rows<T>, ho: usize) {
    for (k, d) in dst.chunks_exact_mut(rows.wo).enumerate() {
        for (d, &v) in d.iter_mut().zip(rows.row(k / ho, k % ho)) {
            *d = MaybeUninit::new(v);
        }
    }
}

/// The forward pass sample by sample in parallel: `sink(out_i, rows)`
/// receives the `i`-th item of `outs` with sample `i`'s `[cout, ho, wo]`
/// output (before any bias). The same rules for `sink` as in
/// [`correlate_implicit_each`].
pub(crate) fn forward_each<T: Num, O: Send>(
    x: &[T],
    w: &[T],
    g: &ConvGeometry<2>,
    outs: impl IndexedParallelIterator<Item = O>,
    sink: impl Fn(O, &Rows<T>) + Sync,
) {
    g.assert_fits(x.len(), w.len());
    let isa = isa::current();
    if implicit_applies::<T>(g, isa) {
        return correlate_implicit_each((x, w), g, isa, outs, sink);
    }
    let (cin_g, cout_g, [ho, wo]) = (g.in_per_group(), g.out_per_group(), g.output());
    let (p, taps) = (ho * wo, cin_g * g.taps());
    let sample_len = g.in_channels * g.input[0] * g.input[1];
    let col_len = if is_pointwise(g) { 0 } else { taps * p };
    outs.enumerate().for_each(|(b, o)| {
        let xb = &x[b * sample_len..(b + 1) * sample_len];
        with_scratch(g.out_channels * p + col_len, |buf| {
            let (yb, col) = buf.split_at_mut(g.out_channels * p);
            for grp in 0..g.groups {
                let wg = Mat::rows(&w[grp * cout_g * taps..(grp + 1) * cout_g * taps], cout_g, taps);
                let dst = &mut yb[grp * cout_g * p..(grp + 1) * cout_g * p];
                if is_pointwise(g) {
                    matmul(dst, wg, Mat::rows(&xb[grp * cin_g * p..(grp + 1) * cin_g * p], taps, p), false, isa);
                } else {
                    im2col(xb, grp * cin_g, g, col);
                    matmul(dst, wg, Mat::rows(col, taps, p), false, isa);
                }
            }
            sink(o, &Rows { data: yb, channel: p, row: wo, wo });
        })
    });
}

/// `conv2d(x, w)`: x `[B, Cin, H, W]`, w `[Cout, Cin/groups, kh, kw]`, y
/// `[B, Cout, Ho, Wo]` (no bias). Panics if the operands do not fit `g`.
pub fn forward<T: Num>(x: &[T], w: &[T], g: &ConvGeometry<2>) -> Vec<T> {
    let ho = g.out_len(0);
    let per_sample = g.out_channels * ho * g.out_len(1);
    if per_sample == 0 {
        return Vec::new();
    }
    // SAFETY: `copy_rows` writes each sample's whole chunk (its `cout · ho`
    // rows of `wo`), and the chunks cover the output.
    unsafe { filled(g.batch * per_sample, |y| forward_each(x, w, g, y.par_chunks_mut(per_sample), |yb, rows| copy_rows(yb, rows, ho))) }
}

/// The implicit path's input gradient: gy padded by (k − 1 − pad) correlated
/// with the kernel transposed (in ↔ out channels) and flipped in both axes.
fn grad_input_implicit<T: Num>(gy: &[T], w: &[T], g: &ConvGeometry<2>, isa: Isa) -> Vec<T> {
    let ([kh, kw], cin, cout) = (g.kernel, g.in_channels, g.out_channels);
    let mut flipped = vec![T::default(); cin * cout * kh * kw];
    for co in 0..cout {
        for ci in 0..cin {
            for jh in 0..kh {
                for jw in 0..kw {
                    flipped[((ci * cout + co) * kh + kh - 1 - jh) * kw + kw - 1 - jw] = w[((co * cin + ci) * kh + jh) * kw + jw];
                }
            }
        }
    }
    let [(t, b), (l, r)] = g.padding;
    let adjoint = ConvGeometry {
        in_channels: cout,
        out_channels: cin,
        padding: [(kh - 1 - t, kh - 1 - b), (kw - 1 - l, kw - 1 - r)],
        input: g.output(),
        ..*g
    };
    let [h, wd] = g.input;
    let per_sample = cin * h * wd;
    // SAFETY: `copy_rows` writes each sample's whole chunk (the adjoint's
    // output is the input's size), and the chunks cover the output.
    unsafe {
        filled(g.batch * per_sample, |gx| {
            correlate_implicit_each((gy, &flipped), &adjoint, isa, gx.par_chunks_mut(per_sample), |gb, rows| copy_rows(gb, rows, h))
        })
    }
}

/// The gradient of the input from the output's gradient `gy [B, Cout, Ho, Wo]`.
pub fn grad_input<T: Num>(gy: &[T], w: &[T], g: &ConvGeometry<2>) -> Vec<T> {
    g.assert_fits(g.input_len(), w.len());
    assert_eq!(gy.len(), g.output_len(), "gradient does not fit {g:?}");
    let isa = isa::current();
    let sample_len = g.in_channels * g.input[0] * g.input[1];
    if sample_len == 0 || g.batch == 0 {
        return vec![T::default(); g.input_len()];
    }
    if implicit_applies::<T>(g, isa) {
        return grad_input_implicit(gy, w, g, isa);
    }
    let (cin_g, cout_g, [ho, wo]) = (g.in_per_group(), g.out_per_group(), g.output());
    let (p, taps, cout) = (ho * wo, cin_g * g.taps(), g.out_channels);
    let mut gx = vec![T::default(); g.input_len()];
    gx.par_chunks_mut(sample_len).enumerate().for_each(|(b, gxb)| {
        for grp in 0..g.groups {
            let wgt = Mat::transposed(&w[grp * cout_g * taps..(grp + 1) * cout_g * taps], cout_g, taps);
            let gyg = Mat::rows(&gy[(b * cout + grp * cout_g) * p..(b * cout + (grp + 1) * cout_g) * p], cout_g, p);
            if is_pointwise(g) {
                matmul(&mut gxb[grp * cin_g * p..(grp + 1) * cin_g * p], wgt, gyg, false, isa);
            } else {
                with_scratch(taps * p, |col| {
                    matmul(col, wgt, gyg, false, isa);
                    col2im_add(col, grp * cin_g, g, gxb);
                });
            }
        }
    });
    gx
}

/// The gradient of the weight from the output's gradient `gy [B, Cout, Ho, Wo]`.
pub fn grad_weight<T: Num>(gy: &[T], x: &[T], g: &ConvGeometry<2>) -> Vec<T> {
    g.assert_fits(x.len(), g.weight_len());
    assert_eq!(gy.len(), g.output_len(), "gradient does not fit {g:?}");
    let isa = isa::current();
    let w_len = g.weight_len();
    let chunks = g.batch.clamp(1, WEIGHT_GRAD_CHUNKS);
    let per_chunk = g.batch.div_ceil(chunks);
    let mut partials = vec![T::default(); chunks * w_len];
    if w_len == 0 {
        return partials;
    }
    let implicit = implicit_applies::<T>(g, isa);
    partials.par_chunks_mut(w_len).enumerate().for_each(|(chunk, partial)| {
        let samples = chunk * per_chunk..((chunk + 1) * per_chunk).min(g.batch);
        if samples.is_empty() {
            return;
        }
        if implicit {
            grad_weight_implicit((gy, x), g, samples, partial, isa);
        } else if own_kernels::<T>(isa) && !is_pointwise(g) {
            grad_weight_segments((gy, x), g, samples, partial, isa);
        } else {
            grad_weight_per_sample((gy, x), g, samples, partial, isa);
        }
    });
    let (head, rest) = partials.split_at_mut(w_len);
    for partial in rest.chunks_exact(w_len) {
        for (a, v) in head.iter_mut().zip(partial) {
            *a += *v;
        }
    }
    partials.truncate(w_len);
    partials
}

/// One chunk's weight gradient on the implicit path: gw[co, ci, jh, jw] = Σ
/// over the chunk's samples and the output positions (oh, ow) of gy[co, oh,
/// ow] · x_padded[ci, oh + jh, ow + jw]: per input channel, a correlation of
/// the padded plane with gy as the kernel (its positions the taps, channels
/// last), whose kh × kw outputs are the weights; accumulated sample by sample.
fn grad_weight_implicit<T: Num>((gy, x): (&[T], &[T]), g: &ConvGeometry<2>, samples: std::ops::Range<usize>, partial: &mut [T], isa: Isa) {
    let grid = grid(g);
    let ([kh, kw], [ho, wo], cin, cout) = (g.kernel, g.output(), g.in_channels, g.out_channels);
    let (p, taps) = (ho * wo, cin * kh * kw);
    let positions: Vec<usize> = (0..ho).flat_map(|oh| (0..wo).map(move |ow| oh * grid.wp + ow)).collect();
    let sample_len = cin * g.input[0] * g.input[1];
    let plane = cin * grid.hp * grid.wp;
    with_scratch(plane + p * cout + taps * cout, |buf| {
        let (input, rest) = buf.split_at_mut(plane);
        let (gy_t, gw_t) = rest.split_at_mut(p * cout);
        for (i, b) in samples.enumerate() {
            grid.pad(&x[b * sample_len..(b + 1) * sample_len], input);
            transpose(&gy[b * cout * p..(b + 1) * cout * p], cout, p, gy_t, isa);
            for ci in 0..cin {
                let dst = &mut gw_t[ci * kh * kw * cout..(ci + 1) * kh * kw * cout];
                direct_rows(dst, [kh, kw, grid.wp], &input[ci * grid.hp * grid.wp..], &positions, (gy_t, cout), i > 0, isa);
            }
        }
        transpose(gw_t, taps, cout, partial, isa);
    });
}

/// One chunk's weight gradient with our register-tiled products: the chunk's
/// columns side by side, one product summed over its samples, so each
/// weight's sum is reduced once, not once per sample.
fn grad_weight_segments<T: Num>((gy, x): (&[T], &[T]), g: &ConvGeometry<2>, samples: std::ops::Range<usize>, partial: &mut [T], isa: Isa) {
    let (cin_g, cout_g, [ho, wo], cout) = (g.in_per_group(), g.out_per_group(), g.output(), g.out_channels);
    let (p, taps) = (ho * wo, cin_g * g.taps());
    let sample_len = g.in_channels * g.input[0] * g.input[1];
    let nb = samples.len();
    for grp in 0..g.groups {
        with_scratch(nb * taps * p, |cols| {
            for (i, b) in samples.clone().enumerate() {
                im2col(&x[b * sample_len..(b + 1) * sample_len], grp * cin_g, g, &mut cols[i * taps * p..(i + 1) * taps * p]);
            }
            let a: Vec<&[T]> = samples.clone().map(|b| &gy[(b * cout + grp * cout_g) * p..(b * cout + (grp + 1) * cout_g) * p]).collect();
            let b: Vec<&[T]> = cols.chunks_exact(taps * p).collect();
            matmul_t_segments(&mut partial[grp * cout_g * taps..(grp + 1) * cout_g * taps], [cout_g, taps, p], (&a, &b), isa);
        });
    }
}

/// `dst = Σ_s a_s·b_sᵀ`, `dst` row-major `m × n`, each `a_s` `m` rows and
/// each `b_s` `n` rows of `k` (row stride `k`). Only on a vector path.
fn matmul_t_segments<T: Num>(dst: &mut [T], [m, n, k]: [usize; 3], (a, b): (&[&[T]], &[&[T]]), isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(dst)) = (own_kernels::<T>(isa), T::as_f32_mut(dst)) {
        let a: Vec<&[f32]> = a.iter().map(|s| T::as_f32(s).expect("f32 like dst")).collect();
        let b: Vec<&[f32]> = b.iter().map(|s| T::as_f32(s).expect("f32 like dst")).collect();
        let dst = crate::x86::gemm512::Dst { data: dst, rows: m, cols: n, ld: n };
        return products!(isa, matmul_rows_t_segments(dst, &a, k, k, &b, k, false));
    }
    let _ = (dst, m, n, k, a, b, isa);
    unreachable!("segment products run on a vector path with f32 only")
}

/// One chunk's weight gradient sample by sample, one product per sample and
/// group accumulated into the partial.
fn grad_weight_per_sample<T: Num>(
    (gy, x): (&[T], &[T]),
    g: &ConvGeometry<2>,
    samples: std::ops::Range<usize>,
    partial: &mut [T],
    isa: Isa,
) {
    let (cin_g, cout_g, [ho, wo], cout) = (g.in_per_group(), g.out_per_group(), g.output(), g.out_channels);
    let (p, taps) = (ho * wo, cin_g * g.taps());
    let sample_len = g.in_channels * g.input[0] * g.input[1];
    let first_sample = samples.start;
    for b in samples {
        let xb = &x[b * sample_len..(b + 1) * sample_len];
        for grp in 0..g.groups {
            let gyg = Mat::rows(&gy[(b * cout + grp * cout_g) * p..(b * cout + (grp + 1) * cout_g) * p], cout_g, p);
            let dst = &mut partial[grp * cout_g * taps..(grp + 1) * cout_g * taps];
            let first = b == first_sample;
            if is_pointwise(g) {
                matmul(dst, gyg, Mat::transposed(&xb[grp * cin_g * p..(grp + 1) * cin_g * p], taps, p), !first, isa);
            } else {
                with_scratch(taps * p, |col| {
                    im2col(xb, grp * cin_g, g, col);
                    matmul(dst, gyg, Mat::transposed(col, taps, p), !first, isa);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rng, assert_close, on_every_path, on_threads, reference_conv2d, wide};

    fn geometry(
        batch: usize,
        (cin, cout, groups): (usize, usize, usize),
        kernel: [usize; 2],
        stride: usize,
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> ConvGeometry<2> {
        ConvGeometry { batch, in_channels: cin, out_channels: cout, groups, kernel, stride: [stride; 2], padding, dilation, input: [9, 7] }
    }

    /// The implicit path's cases (stride 1, one group, padding below the
    /// kernel: asymmetric padding, non-square kernels; 5 output channels take
    /// the dot-product weight gradient, 33 the outer-product one), a 1×1
    /// kernel (no im2col), and strides, groups and dilation (im2col).
    fn cases() -> Vec<ConvGeometry<2>> {
        vec![
            geometry(3, (4, 5, 1), [3, 2], 1, [(1, 1), (0, 1)], [1, 1]),
            geometry(3, (4, 5, 1), [5, 5], 1, [(2, 2), (2, 2)], [1, 1]),
            geometry(3, (4, 5, 1), [1, 3], 1, [(0, 0), (0, 0)], [1, 1]),
            geometry(3, (4, 33, 1), [3, 3], 1, [(2, 1), (1, 2)], [1, 1]),
            geometry(2, (4, 6, 1), [1, 1], 1, [(0, 0), (0, 0)], [1, 1]),
            geometry(13, (3, 4, 1), [3, 2], 2, [(1, 1), (1, 1)], [1, 1]),
            geometry(2, (4, 6, 2), [3, 3], 1, [(1, 1), (0, 0)], [1, 2]),
        ]
    }

    fn operands<T: Num>(g: &ConvGeometry<2>, seed: u64) -> [Vec<T>; 3] {
        let mut rng = Rng::new(seed);
        [rng.values(g.input_len()), rng.values(g.weight_len()), rng.values(g.output_len())]
    }

    fn run<T: Num>(g: &ConvGeometry<2>, seed: u64) -> Vec<Vec<T>> {
        let [x, w, gy] = operands::<T>(g, seed);
        vec![forward(&x, &w, g), grad_input(&gy, &w, g), grad_weight(&gy, &x, g)]
    }

    #[test]
    fn every_path_matches_the_definition() {
        for (n, g) in cases().iter().enumerate() {
            let seed = 100 + n as u64;
            let [x, w, gy] = operands::<f64>(g, seed);
            let want = reference_conv2d(g, &x, &w, &gy);
            for (got, want) in run::<f64>(g, seed).iter().zip(&want) {
                assert_close(got, want, 1e-12, &format!("f64 {g:?}"));
            }
            on_every_path(1e-5, &format!("f32 {g:?}"), || run::<f32>(g, seed));
            for isa in Isa::available() {
                for (got, want) in crate::with_isa(isa, || run::<f32>(g, seed)).iter().zip(&want) {
                    assert_close(&wide(got), want, 1e-4, &format!("f32 on {isa:?} {g:?}"));
                }
            }
        }
    }

    /// The weight gradient's chunked sum gives the same bits on any number
    /// of threads, on every path.
    #[test]
    fn same_bits_on_any_thread_count() {
        for g in [cases()[5], cases()[1]] {
            for isa in Isa::available() {
                let (one, three) = crate::with_isa(isa, || (on_threads(1, || run::<f32>(&g, 9)), on_threads(3, || run::<f32>(&g, 9))));
                assert_eq!(one, three, "{isa:?} {g:?}");
            }
        }
    }
}
