//! 2-D convolution for the CPU, as Candle custom ops: forward, input gradient
//! and weight gradient. For f32 on AVX-512 CPUs with stride 1, one group
//! and padding below the kernel size (the common layers), a direct
//! correlation over zero-padded copies of each sample (see
//! `implicit_applies`); otherwise an im2col (or its adjoint, col2im) into a
//! thread-local buffer that is reused from call to call and one GEMM per
//! sample and group, by our register-tiled kernels (`avx512_gemm`) where
//! they apply, else the `gemm` crate, which Candle's matmul uses.
//!
//! Parallel over the batch with rayon's global pool; each GEMM runs on one
//! thread. The forward pass and the input gradient write disjoint samples. The
//! weight gradient is a sum over the batch: the batch is cut into a fixed
//! number of chunks (not depending on the thread count), each chunk sums its
//! samples in order into its own partial, and the partials are added in chunk
//! order, so every result is the same bit for bit on any number of threads.
//!
//! Same semantics as `ops::conv_by_matmuls` (PyTorch's cross-correlation with
//! padding, stride, dilation and groups); tested against the PyTorch fixtures.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::thread::LocalKey;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct Conv2dSpec {
    pub stride: [usize; 2],
    /// `(before, after)` along height, then width.
    pub padding: [(usize, usize); 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub(super) b: usize,
    pub(super) cin: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) kh: usize,
    pub(super) kw: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
}

impl Dims {
    fn positions(&self) -> usize {
        self.ho * self.wo
    }
    fn input_plane(&self) -> usize {
        self.h * self.w
    }
}

/// Partial sums of the weight gradient: at most this many, so their memory
/// stays a small multiple of the weight's.
const WEIGHT_GRAD_CHUNKS: usize = 8;

impl Conv2dSpec {
    pub(super) fn out_len(&self, axis: usize, len: usize, k: usize) -> usize {
        let (before, after) = self.padding[axis];
        (len + before + after - self.dilation[axis] * (k - 1) - 1) / self.stride[axis] + 1
    }

    /// For tap `j` along `axis`: the output positions t whose input index
    /// t·stride + j·dilation − pad lies inside `0..len`, as a half-open range,
    /// and the input index of position 0 (possibly negative).
    fn valid(&self, axis: usize, j: usize, len: usize, out_len: usize) -> (usize, usize, isize) {
        let off = (j * self.dilation[axis]) as isize - self.padding[axis].0 as isize;
        let s = self.stride[axis] as isize;
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let last = len as isize - 1 - off;
        let hi = if last < 0 { 0 } else { (last / s + 1).min(out_len as isize) };
        (lo as usize, (hi.max(lo)) as usize, off)
    }
}

pub(super) trait Num:
    candle_core::WithDType
    + Copy
    + Send
    + Sync
    + std::ops::Mul<Output = Self>
    + std::ops::Add<Output = Self>
    + std::ops::AddAssign
    + Default
    + 'static
{
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>>;

    /// `dst (+)= a·b` by our own kernels where they apply (f32 on an AVX-512
    /// CPU, operands with unit stride along a row); false leaves it undone.
    fn own_matmul(_dst: &mut [Self], _a: Mat<Self>, _b: Mat<Self>, _accumulate: bool) -> bool {
        false
    }

    /// Whether [`Num::own_matmul_t_segments`] runs here.
    fn has_segments() -> bool {
        false
    }

    /// `dst = Σ_s a_s·b_sᵀ`, `dst` row-major `m × n`, each `a_s` `m` rows and
    /// each `b_s` `n` rows of `k` (row stride `k`).
    fn own_matmul_t_segments(_dst: &mut [Self], _m: usize, _n: usize, _a: &[&[Self]], _b: &[&[Self]], _k: usize) {
        unreachable!("only called where has_segments() holds")
    }

    /// `dst[c·rows + r] = src[r·cols + c]`.
    fn transpose(src: &[Self], rows: usize, cols: usize, dst: &mut [Self]) {
        transpose_by_elements(src, rows, cols, dst)
    }

    /// `dst[(oh·wo + ow)·n + j] (+)= Σ_t x[oh·wp + ow + offsets[t]] · wt[t·n + j]`:
    /// the correlation of padded planes `x` with a kernel laid channels last.
    #[allow(clippy::too_many_arguments)]
    fn own_direct_rows(
        _dst: &mut [Self],
        _ho: usize,
        _wo: usize,
        _wp: usize,
        _x: &[Self],
        _offsets: &[usize],
        _wt: &[Self],
        _n: usize,
        _accumulate: bool,
    ) {
        unreachable!("only called where has_segments() holds")
    }
}

/// `dst[c·rows + r] = src[r·cols + c]`, element by element.
fn transpose_by_elements<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    for (r, row) in src.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c * rows + r] = v;
        }
    }
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl Num for f32 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F32
    }

    fn own_matmul(dst: &mut [f32], a: Mat<f32>, b: Mat<f32>, accumulate: bool) -> bool {
        use super::avx512_gemm::{Dst, available, matmul_rows, matmul_rows_t};
        if !available() {
            return false;
        }
        let dst = Dst { data: dst, rows: a.rows, cols: b.cols, ld: b.cols };
        if b.col_stride == 1 {
            matmul_rows(dst, a.data, a.row_stride, a.col_stride, a.cols, b.data, b.row_stride, accumulate);
        } else if a.col_stride == 1 && b.row_stride == 1 {
            // b is the transpose of a row-major matrix: its columns are contiguous.
            matmul_rows_t(dst, a.data, a.row_stride, a.cols, b.data, b.col_stride, accumulate);
        } else {
            return false;
        }
        true
    }

    fn has_segments() -> bool {
        super::avx512_gemm::available()
    }

    fn own_matmul_t_segments(dst: &mut [f32], m: usize, n: usize, a: &[&[f32]], b: &[&[f32]], k: usize) {
        let dst = super::avx512_gemm::Dst { data: dst, rows: m, cols: n, ld: n };
        super::avx512_gemm::matmul_rows_t_segments(dst, a, k, k, b, k, false);
    }

    fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
        if super::avx512_gemm::available() {
            return super::avx512_gemm::transpose(src, rows, cols, dst);
        }
        transpose_by_elements(src, rows, cols, dst)
    }

    #[allow(clippy::too_many_arguments)]
    fn own_direct_rows(
        dst: &mut [f32],
        ho: usize,
        wo: usize,
        wp: usize,
        x: &[f32],
        offsets: &[usize],
        wt: &[f32],
        n: usize,
        accumulate: bool,
    ) {
        super::avx512_gemm::direct_rows(dst, n, ho, wo, wp, x, offsets, wt, n, n, accumulate);
    }
}
impl Num for f64 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F64
    }
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
pub(super) struct Mat<'a, T> {
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
    fn fits(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`), `dst` row-major
/// `a.rows × b.cols`, on the calling thread.
fn matmul<T: Num>(dst: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool) {
    assert!(a.cols == b.rows && a.fits() && b.fits() && dst.len() >= a.rows * b.cols, "matmul operands do not fit");
    if T::own_matmul(dst, a, b, accumulate) {
        return;
    }
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
fn im2col<T: Num>(x: &[T], c0: usize, cin_g: usize, d: &Dims, s: &Conv2dSpec, col: &mut [T]) {
    let p = d.positions();
    let mut rows = col.chunks_exact_mut(p);
    for c in 0..cin_g {
        let plane = &x[(c0 + c) * d.input_plane()..(c0 + c + 1) * d.input_plane()];
        for jh in 0..d.kh {
            let (h_lo, h_hi, h_off) = s.valid(0, jh, d.h, d.ho);
            for jw in 0..d.kw {
                let (w_lo, w_hi, w_off) = s.valid(1, jw, d.w, d.wo);
                let row = rows.next().expect("col has a row per tap");
                for (oh, seg) in row.chunks_exact_mut(d.wo).enumerate() {
                    if oh < h_lo || oh >= h_hi || w_lo == w_hi {
                        seg.fill(T::default());
                        continue;
                    }
                    let ih = (oh as isize * s.stride[0] as isize + h_off) as usize;
                    let xr = &plane[ih * d.w..(ih + 1) * d.w];
                    seg[..w_lo].fill(T::default());
                    seg[w_hi..].fill(T::default());
                    let start = (w_lo as isize * s.stride[1] as isize + w_off) as usize;
                    if s.stride[1] == 1 {
                        seg[w_lo..w_hi].copy_from_slice(&xr[start..start + (w_hi - w_lo)]);
                    } else {
                        for (v, xv) in seg[w_lo..w_hi].iter_mut().zip(xr[start..].iter().step_by(s.stride[1])) {
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
fn col2im_add<T: Num>(col: &[T], c0: usize, cin_g: usize, d: &Dims, s: &Conv2dSpec, gx: &mut [T]) {
    let p = d.positions();
    let mut rows = col.chunks_exact(p);
    for c in 0..cin_g {
        let plane = &mut gx[(c0 + c) * d.input_plane()..(c0 + c + 1) * d.input_plane()];
        for jh in 0..d.kh {
            let (h_lo, h_hi, h_off) = s.valid(0, jh, d.h, d.ho);
            for jw in 0..d.kw {
                let (w_lo, w_hi, w_off) = s.valid(1, jw, d.w, d.wo);
                let row = rows.next().expect("col has a row per tap");
                for oh in h_lo..h_hi {
                    let seg = &row[oh * d.wo..(oh + 1) * d.wo];
                    let ih = (oh as isize * s.stride[0] as isize + h_off) as usize;
                    let xr = &mut plane[ih * d.w..(ih + 1) * d.w];
                    let start = (w_lo as isize * s.stride[1] as isize + w_off) as usize;
                    if s.stride[1] == 1 {
                        for (xv, v) in xr[start..start + (w_hi - w_lo)].iter_mut().zip(&seg[w_lo..w_hi]) {
                            *xv += *v;
                        }
                    } else {
                        for (xv, v) in xr[start..].iter_mut().step_by(s.stride[1]).zip(&seg[w_lo..w_hi]) {
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
fn is_pointwise(d: &Dims, s: &Conv2dSpec) -> bool {
    d.kh == 1 && d.kw == 1 && s.stride == [1, 1] && s.padding == [(0, 0), (0, 0)]
}

/// The implicit path (f32 on AVX-512; stride 1, no dilation, one group,
/// padding below the kernel size): each sample is copied once into
/// zero-padded planes of width `wp`, and tap `(c, jh, jw)` reads them from
/// `c·hp·wp + jh·wp + jw` on, in place: no im2col copy. The forward pass and
/// the input gradient are direct correlations (register tiles of positions
/// of one output row × channels, `avx512_gemm::direct_rows`), the input
/// gradient on the padded output gradient with the kernel transposed and
/// flipped (no col2im); the weight gradient is the same kernel with the
/// padded input as the image and gy as the kernel.
fn implicit_applies<T: Num>(d: &Dims, s: &Conv2dSpec) -> bool {
    let pad_fits = |axis: usize, k: usize| s.padding[axis].0 < k && s.padding[axis].1 < k;
    T::has_segments()
        && s.stride == [1, 1]
        && s.dilation == [1, 1]
        && s.groups == 1
        && pad_fits(0, d.kh)
        && pad_fits(1, d.kw)
        && d.ho > 0
        && d.wo > 0
}

/// The padded planes of one problem, `hp × wp`, and each tap's offset in them.
struct Grid {
    hp: usize,
    wp: usize,
    offsets: Vec<usize>,
}

fn grid(channels: usize, h: usize, w: usize, kh: usize, kw: usize, pad: [(usize, usize); 2]) -> Grid {
    let (hp, wp) = (h + pad[0].0 + pad[0].1, w + pad[1].0 + pad[1].1);
    let mut offsets = Vec::with_capacity(channels * kh * kw);
    for c in 0..channels {
        for jh in 0..kh {
            for jw in 0..kw {
                offsets.push(c * hp * wp + jh * wp + jw);
            }
        }
    }
    Grid { hp, wp, offsets }
}

/// `x [C, h, w]` into `out [C, hp, wp]` at `(top, left)`, zeros around.
#[allow(clippy::too_many_arguments)]
fn pad_planes<T: Num>(x: &[T], channels: usize, h: usize, w: usize, top: usize, left: usize, g: &Grid, out: &mut [T]) {
    out.fill(T::default());
    for c in 0..channels {
        for r in 0..h {
            let dst = (c * g.hp + top + r) * g.wp + left;
            out[dst..dst + w].copy_from_slice(&x[(c * h + r) * w..(c * h + r + 1) * w]);
        }
    }
}

/// One sample's convolution output, read in place: channel `c`'s output row
/// `r` is `data[c·channel + r·row..][..wo]` (on the implicit path the rows
/// lie on the padded grid, so `row > wo`).
pub(super) struct Rows<'a, T> {
    data: &'a [T],
    channel: usize,
    row: usize,
    wo: usize,
}

impl<T> Rows<'_, T> {
    #[inline]
    pub(super) fn row(&self, c: usize, r: usize) -> &[T] {
        &self.data[c * self.channel + r * self.row..][..self.wo]
    }
}

/// Correlation of `x [B, cin, h, w]` with `w [cout, cin·kh·kw]` row-major,
/// padded by `pad`, stride 1, sample by sample in parallel: `sink(out_i,
/// rows)` receives the `i`-th item of `outs` with sample `i`'s result. Each
/// sample is copied once into zero-padded planes and correlated there with
/// the kernel laid channels last, by register tiles of positions × output
/// channels (`avx512_gemm::direct_rows`), then turned channels first. The
/// sink runs while this thread's scratch buffer is borrowed: it must not use
/// it, nor re-enter rayon.
#[allow(clippy::too_many_arguments)]
fn correlate_implicit_each<T: Num, O: Send>(
    x: &[T],
    w: &[T],
    cin: usize,
    h: usize,
    wd: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    pad: [(usize, usize); 2],
    outs: impl IndexedParallelIterator<Item = O>,
    sink: impl Fn(O, &Rows<T>) + Sync,
) {
    let g = grid(cin, h, wd, kh, kw, pad);
    let (ho, wo) = (g.hp + 1 - kh, g.wp + 1 - kw);
    let (plane, p, taps) = (cin * g.hp * g.wp, ho * wo, cin * kh * kw);
    let mut wt = vec![T::default(); taps * cout];
    T::transpose(&w[..cout * taps], cout, taps, &mut wt);
    outs.enumerate().for_each(|(i, o)| {
        with_scratch(plane + 2 * cout * p, |buf| {
            let (padded, rest) = buf.split_at_mut(plane);
            let (by_position, by_channel) = rest.split_at_mut(cout * p);
            pad_planes(&x[i * cin * h * wd..(i + 1) * cin * h * wd], cin, h, wd, pad[0].0, pad[1].0, &g, padded);
            T::own_direct_rows(by_position, ho, wo, g.wp, padded, &g.offsets, &wt, cout, false);
            T::transpose(by_position, p, cout, by_channel);
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

/// A vector of `len` elements written by `fill` (no zero fill first).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(super) unsafe fn filled<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees that `fill` wrote all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Correlation as [`correlate_implicit_each`], into a fresh `[B, cout, ho, wo]`.
#[allow(clippy::too_many_arguments)]
fn correlate_implicit<T: Num>(
    x: &[T],
    w: &[T],
    b: usize,
    cin: usize,
    h: usize,
    wd: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    pad: [(usize, usize); 2],
) -> Vec<T> {
    let ho = h + pad[0].0 + pad[0].1 + 1 - kh;
    let per_sample = cout * ho * (wd + pad[1].0 + pad[1].1 + 1 - kw);
    if per_sample == 0 {
        return Vec::new();
    }
    // SAFETY: `copy_rows` writes each sample's whole chunk.
    unsafe {
        filled(b * per_sample, |y| {
            correlate_implicit_each(x, w, cin, h, wd, cout, kh, kw, pad, y.par_chunks_mut(per_sample), |yb, rows| copy_rows(yb, rows, ho))
        })
    }
}

/// The forward pass sample by sample in parallel: `sink(out_i, rows)`
/// receives the `i`-th item of `outs` with sample `i`'s `[cout, ho, wo]`
/// output (before any bias). The same rules for `sink` as in
/// [`correlate_implicit_each`].
pub(super) fn forward_each<T: Num, O: Send>(
    x: &[T],
    w: &[T],
    d: &Dims,
    s: &Conv2dSpec,
    outs: impl IndexedParallelIterator<Item = O>,
    sink: impl Fn(O, &Rows<T>) + Sync,
) {
    if implicit_applies::<T>(d, s) {
        return correlate_implicit_each(x, w, d.cin, d.h, d.w, d.cout, d.kh, d.kw, s.padding, outs, sink);
    }
    let (cin_g, cout_g) = (d.cin / s.groups, d.cout / s.groups);
    let (p, taps) = (d.positions(), cin_g * d.kh * d.kw);
    let sample_len = d.cin * d.input_plane();
    let col_len = if is_pointwise(d, s) { 0 } else { taps * p };
    outs.enumerate().for_each(|(b, o)| {
        let xb = &x[b * sample_len..(b + 1) * sample_len];
        with_scratch(d.cout * p + col_len, |buf| {
            let (yb, col) = buf.split_at_mut(d.cout * p);
            for g in 0..s.groups {
                let wg = Mat::rows(&w[g * cout_g * taps..(g + 1) * cout_g * taps], cout_g, taps);
                let dst = &mut yb[g * cout_g * p..(g + 1) * cout_g * p];
                if is_pointwise(d, s) {
                    matmul(dst, wg, Mat::rows(&xb[g * cin_g * p..(g + 1) * cin_g * p], taps, p), false);
                } else {
                    im2col(xb, g * cin_g, cin_g, d, s, col);
                    matmul(dst, wg, Mat::rows(col, taps, p), false);
                }
            }
            sink(o, &Rows { data: yb, channel: p, row: d.wo, wo: d.wo });
        })
    });
}

fn forward<T: Num>(x: &[T], w: &[T], d: &Dims, s: &Conv2dSpec) -> Vec<T> {
    let per_sample = d.cout * d.positions();
    if per_sample == 0 {
        return Vec::new();
    }
    // SAFETY: `copy_rows` writes each sample's whole chunk.
    unsafe { filled(d.b * per_sample, |y| forward_each(x, w, d, s, y.par_chunks_mut(per_sample), |yb, rows| copy_rows(yb, rows, d.ho))) }
}

fn grad_input<T: Num>(gy: &[T], w: &[T], d: &Dims, s: &Conv2dSpec) -> Vec<T> {
    if implicit_applies::<T>(d, s) {
        // gx = gy padded by (k − 1 − pad) correlated with the kernel
        // transposed (in ↔ out channels) and flipped in both axes.
        let (kh, kw) = (d.kh, d.kw);
        let mut flipped = vec![T::default(); d.cin * d.cout * kh * kw];
        for co in 0..d.cout {
            for ci in 0..d.cin {
                for jh in 0..kh {
                    for jw in 0..kw {
                        flipped[((ci * d.cout + co) * kh + kh - 1 - jh) * kw + kw - 1 - jw] = w[((co * d.cin + ci) * kh + jh) * kw + jw];
                    }
                }
            }
        }
        let [(t, b), (l, r)] = s.padding;
        let pad = [(kh - 1 - t, kh - 1 - b), (kw - 1 - l, kw - 1 - r)];
        return correlate_implicit(gy, &flipped, d.b, d.cout, d.ho, d.wo, d.cin, kh, kw, pad);
    }
    let (cin_g, cout_g) = (d.cin / s.groups, d.cout / s.groups);
    let (p, taps) = (d.positions(), cin_g * d.kh * d.kw);
    let sample_len = d.cin * d.input_plane();
    let mut gx = vec![T::default(); d.b * sample_len];
    gx.par_chunks_mut(sample_len).enumerate().for_each(|(b, gxb)| {
        for g in 0..s.groups {
            let wgt = Mat::transposed(&w[g * cout_g * taps..(g + 1) * cout_g * taps], cout_g, taps);
            let gyg = Mat::rows(&gy[(b * d.cout + g * cout_g) * p..(b * d.cout + (g + 1) * cout_g) * p], cout_g, p);
            if is_pointwise(d, s) {
                matmul(&mut gxb[g * cin_g * p..(g + 1) * cin_g * p], wgt, gyg, false);
            } else {
                with_scratch(taps * p, |col| {
                    matmul(col, wgt, gyg, false);
                    col2im_add(col, g * cin_g, cin_g, d, s, gxb);
                });
            }
        }
    });
    gx
}

fn grad_weight<T: Num>(gy: &[T], x: &[T], d: &Dims, s: &Conv2dSpec) -> Vec<T> {
    let (cin_g, cout_g) = (d.cin / s.groups, d.cout / s.groups);
    let (p, taps) = (d.positions(), cin_g * d.kh * d.kw);
    let sample_len = d.cin * d.input_plane();
    let w_len = d.cout * taps;
    let chunks = d.b.clamp(1, WEIGHT_GRAD_CHUNKS);
    let per_chunk = d.b.div_ceil(chunks);
    let mut partials = vec![T::default(); chunks * w_len];
    // The implicit path's padded planes and each output position's offset in them.
    let implicit = implicit_applies::<T>(d, s).then(|| {
        let g = grid(d.cin, d.h, d.w, d.kh, d.kw, s.padding);
        let positions: Vec<usize> = (0..d.ho).flat_map(|oh| (0..d.wo).map(move |ow| oh * g.wp + ow)).collect();
        (g, positions)
    });
    partials.par_chunks_mut(w_len).enumerate().for_each(|(chunk, partial)| {
        let samples = chunk * per_chunk..((chunk + 1) * per_chunk).min(d.b);
        if let (Some((g, positions)), false) = (&implicit, samples.is_empty()) {
            // gw[co, ci, jh, jw] = Σ over the chunk's samples and the output
            // positions (oh, ow) of gy[co, oh, ow] · x_padded[ci, oh + jh, ow + jw]:
            // per input channel, a correlation of the padded plane with gy
            // as the kernel (its positions the taps, channels last), whose
            // kh × kw outputs are the weights; accumulated sample by sample.
            let plane = d.cin * g.hp * g.wp;
            with_scratch(plane + p * d.cout + taps * d.cout, |buf| {
                let (input, rest) = buf.split_at_mut(plane);
                let (gy_t, gw_t) = rest.split_at_mut(p * d.cout);
                for (i, b) in samples.clone().enumerate() {
                    pad_planes(&x[b * sample_len..(b + 1) * sample_len], d.cin, d.h, d.w, s.padding[0].0, s.padding[1].0, g, input);
                    T::transpose(&gy[b * d.cout * p..(b + 1) * d.cout * p], d.cout, p, gy_t);
                    for ci in 0..d.cin {
                        let dst = &mut gw_t[ci * d.kh * d.kw * d.cout..(ci + 1) * d.kh * d.kw * d.cout];
                        T::own_direct_rows(dst, d.kh, d.kw, g.wp, &input[ci * g.hp * g.wp..], positions, gy_t, d.cout, i > 0);
                    }
                }
                T::transpose(gw_t, taps, d.cout, partial);
            });
            return;
        }
        if T::has_segments() && !is_pointwise(d, s) && !samples.is_empty() {
            // The chunk's columns side by side, one product summed over its
            // samples: each weight's sum is reduced once, not once per sample.
            let nb = samples.len();
            for g in 0..s.groups {
                with_scratch(nb * taps * p, |cols| {
                    for (i, b) in samples.clone().enumerate() {
                        im2col(
                            &x[b * sample_len..(b + 1) * sample_len],
                            g * cin_g,
                            cin_g,
                            d,
                            s,
                            &mut cols[i * taps * p..(i + 1) * taps * p],
                        );
                    }
                    let a: Vec<&[T]> =
                        samples.clone().map(|b| &gy[(b * d.cout + g * cout_g) * p..(b * d.cout + (g + 1) * cout_g) * p]).collect();
                    let b: Vec<&[T]> = cols.chunks_exact(taps * p).collect();
                    T::own_matmul_t_segments(&mut partial[g * cout_g * taps..(g + 1) * cout_g * taps], cout_g, taps, &a, &b, p);
                });
            }
            return;
        }
        for b in samples {
            let xb = &x[b * sample_len..(b + 1) * sample_len];
            for g in 0..s.groups {
                let gyg = Mat::rows(&gy[(b * d.cout + g * cout_g) * p..(b * d.cout + (g + 1) * cout_g) * p], cout_g, p);
                let dst = &mut partial[g * cout_g * taps..(g + 1) * cout_g * taps];
                let first = b == chunk * per_chunk;
                if is_pointwise(d, s) {
                    matmul(dst, gyg, Mat::transposed(&xb[g * cin_g * p..(g + 1) * cin_g * p], taps, p), !first);
                } else {
                    with_scratch(taps * p, |col| {
                        im2col(xb, g * cin_g, cin_g, d, s, col);
                        matmul(dst, gyg, Mat::transposed(col, taps, p), !first);
                    });
                }
            }
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

/// `conv2d(x, w)`: x `[B, Cin, H, W]`, w `[Cout, Cin/groups, kh, kw]`.
struct Forward(Conv2dSpec);
/// `(grad_y, w) ↦ grad_x`; carries the input's height and width.
struct GradInput(Conv2dSpec, [usize; 2]);
/// `(grad_y, x) ↦ grad_w`; carries the kernel's height and width.
struct GradWeight(Conv2dSpec, [usize; 2]);

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "lpn-conv2d"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cin, h, w) = l1.shape().dims4()?;
        let (cout, _, kh, kw) = l2.shape().dims4()?;
        let s = &self.0;
        let d = Dims { b, cin, h, w, cout, kh, kw, ho: s.out_len(0, h, kh), wo: s.out_len(1, w, kw) };
        let out = dispatch!(s1, l1, s2, l2, |x, w| forward(x, w, &d, s));
        Ok((out, Shape::from((d.b, d.cout, d.ho, d.wo))))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // A network's input needs no gradient: skip the most expensive product.
        let gx = if x.track_op() { Some(input_gradient(&grad, x, w, self.0)?) } else { None };
        let gw = if w.track_op() { Some(weight_gradient(&grad, x, w, self.0)?) } else { None };
        Ok((gx, gw))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "lpn-conv2d-grad-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cout, ho, wo) = l1.shape().dims4()?;
        let (_, cin_g, kh, kw) = l2.shape().dims4()?;
        let [h, w] = self.1;
        let d = Dims { b, cin: cin_g * self.0.groups, h, w, cout, kh, kw, ho, wo };
        let out = dispatch!(s1, l1, s2, l2, |gy, w| grad_input(gy, w, &d, &self.0));
        Ok((out, Shape::from((d.b, d.cin, d.h, d.w))))
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "lpn-conv2d-grad-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cout, ho, wo) = l1.shape().dims4()?;
        let (_, cin, h, w) = l2.shape().dims4()?;
        let [kh, kw] = self.1;
        let d = Dims { b, cin, h, w, cout, kh, kw, ho, wo };
        let out = dispatch!(s1, l1, s2, l2, |gy, x| grad_weight(gy, x, &d, &self.0));
        Ok((out, Shape::from((d.cout, d.cin / self.0.groups, d.kh, d.kw))))
    }
}

/// The 2-D convolution with its backward pass (bias not included), for f32
/// and f64 tensors on the CPU. Shapes that do not fit are errors, never panics.
pub fn conv2d(x: &Tensor, w: &Tensor, spec: Conv2dSpec) -> Result<Tensor> {
    check_fits(x, w, &spec)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward(spec))
}

/// An error unless `x [B, Cin, H, W]` and `w [Cout, Cin/groups, kh, kw]` fit
/// `spec` with at least one output position.
pub(super) fn check_fits(x: &Tensor, w: &Tensor, spec: &Conv2dSpec) -> Result<()> {
    let (_, cin, h, wd) = x.dims4()?;
    let (cout, cin_g, kh, kw) = w.dims4()?;
    let fits_axis = |axis: usize, len: usize, k: usize| {
        let (before, after) = spec.padding[axis];
        spec.stride[axis] > 0 && spec.dilation[axis] > 0 && k > 0 && len + before + after > spec.dilation[axis] * (k - 1)
    };
    let fits = spec.groups > 0 && cin == cin_g * spec.groups && cout % spec.groups == 0 && fits_axis(0, h, kh) && fits_axis(1, wd, kw);
    if !fits {
        candle_core::bail!("conv2d: input {:?} and weight {:?} do not fit {spec:?}", x.dims(), w.dims());
    }
    Ok(())
}

/// The gradient of the input `x` of a convolution with `w`, from the
/// output's gradient `grad` (contiguous).
pub(super) fn input_gradient(grad: &Tensor, x: &Tensor, w: &Tensor, spec: Conv2dSpec) -> Result<Tensor> {
    grad.apply_op2_no_bwd(w, &GradInput(spec, [x.dim(2)?, x.dim(3)?]))
}

/// The gradient of the kernel `w` of a convolution of `x`, from the output's
/// gradient `grad` (contiguous).
pub(super) fn weight_gradient(grad: &Tensor, x: &Tensor, w: &Tensor, spec: Conv2dSpec) -> Result<Tensor> {
    grad.apply_op2_no_bwd(x, &GradWeight(spec, [w.dim(2)?, w.dim(3)?]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn spec(stride: usize, pad: usize, groups: usize) -> Conv2dSpec {
        Conv2dSpec { stride: [stride; 2], padding: [(pad, pad); 2], dilation: [1, 1], groups }
    }

    #[test]
    fn impossible_shapes_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &Tensor::zeros((1, 2, 5, 3), DType::F32, &dev).unwrap(), spec(1, 0, 1)).is_err());
        assert!(conv2d(&x, &Tensor::zeros((1, 3, 3, 3), DType::F32, &dev).unwrap(), spec(1, 0, 1)).is_err());
        assert!(conv2d(&x, &Tensor::zeros((3, 1, 3, 3), DType::F32, &dev).unwrap(), spec(1, 0, 2)).is_err());
        let y = conv2d(&x, &Tensor::zeros((1, 2, 3, 3), DType::F32, &dev).unwrap(), spec(1, 0, 1)).unwrap();
        assert_eq!(y.dims(), &[1, 1, 2, 2]);
    }

    /// f32 (the implicit-GEMM path on AVX-512 CPUs) against f64 (always the
    /// im2col path): forward and both gradients, with asymmetric padding,
    /// non-square kernels and odd sizes.
    #[test]
    fn implicit_path_matches_the_im2col_path() {
        let dev = Device::Cpu;
        // 5 output channels take the dot-product weight gradient, 33 the outer-product one.
        let cases =
            [([(1, 1), (0, 1)], (3, 2), 5), ([(2, 2), (2, 2)], (5, 5), 5), ([(0, 0), (0, 0)], (1, 3), 5), ([(2, 1), (1, 2)], (3, 3), 33)];
        for (pad, k, cout) in cases {
            let spec = Conv2dSpec { stride: [1, 1], padding: pad, dilation: [1, 1], groups: 1 };
            let x64 = Tensor::randn(0f64, 1.0, (3, 4, 9, 7), &dev).unwrap();
            let w64 = Tensor::randn(0f64, 1.0, (cout, 4, k.0, k.1), &dev).unwrap();
            let run = |dtype: DType| {
                let x = Var::from_tensor(&x64.to_dtype(dtype).unwrap()).unwrap();
                let w = Var::from_tensor(&w64.to_dtype(dtype).unwrap()).unwrap();
                let y = conv2d(x.as_tensor(), w.as_tensor(), spec).unwrap();
                let weights = Tensor::ones(y.dims(), dtype, &dev).unwrap().cumsum(3).unwrap();
                let grads = (&y * weights).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                (flat(&y), flat(grads.get(x.as_tensor()).unwrap()), flat(grads.get(w.as_tensor()).unwrap()))
            };
            let (a, b) = (run(DType::F32), run(DType::F64));
            for (got, want) in [(a.0, b.0), (a.1, b.1), (a.2, b.2)] {
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w} ({pad:?}, {k:?})");
                }
            }
        }
    }

    /// The weight gradient's chunked sum gives the same bits on any number of
    /// threads.
    #[test]
    fn weight_gradient_is_deterministic_across_thread_counts() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (13, 3, 9, 8), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, 3, 2), &dev).unwrap()).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = conv2d(x.as_tensor(), w.as_tensor(), spec(2, 1, 1)).unwrap();
                let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                let gw: Vec<f32> = grads.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                let gx: Vec<f32> = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                (gw, gx)
            })
        };
        assert_eq!(run(1), run(3));
    }
}
