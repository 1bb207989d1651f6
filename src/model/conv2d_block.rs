//! A 2-D convolution block — convolution, per-channel bias, optional ReLU,
//! optional max pooling whose windows tile the input — as one Candle custom
//! op on the CPU, for f32 and f64.
//!
//! Run as separate ops, such a block writes the convolution's output, reads
//! it back to add the bias, again to pool, and its backward pass makes and
//! sums a gradient tensor the size of the convolution's output for each op
//! (Candle adds every gradient into a fresh zero tensor). Here the forward
//! pass takes each sample's convolution output straight from the product's
//! buffer (`conv2d_kernel::forward_each`) and writes only the pooled result
//! and, per pooled value, which cell of its window won. The backward pass
//! puts each window's gradient back on that cell (masked by the ReLU),
//! summing the bias gradient on the way, and hands the result to the
//! convolution's two gradient kernels.
//!
//! Semantics are those of the ops in sequence (PyTorch's): ReLU keeps NaN
//! and passes gradient where its output is positive; the max pool's window
//! goes to its first NaN, else its first maximum, in row-major order, floor
//! mode (trailing rows and columns that fill no window are dropped).
//! Results do not depend on the thread count.

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::act_kernel;
use super::contiguous_slice as slice;
use super::conv2d_kernel::{self, Conv2dSpec, Dims, Num, Rows};

/// What follows the convolution in the block.
#[derive(Clone, Copy, Debug)]
pub struct BlockSpec {
    pub conv: Conv2dSpec,
    pub relu: bool,
    /// A max pool with this window and the same stride, no padding.
    pub pool: Option<[usize; 2]>,
}

/// Most cells in a pooling window: the winner's index is kept in a byte.
const MAX_WINDOW: usize = 256;

struct Block {
    spec: BlockSpec,
    /// Per pooled value, the winning cell of its window (row-major), written
    /// by the forward pass for the backward pass.
    winners: Mutex<Arc<Vec<u8>>>,
}

/// `(grad of the pooled output, pooled output) ↦ grad of the convolution's
/// output`; also leaves the per-channel sums of that gradient (the bias
/// gradient) in `bias_sums`.
struct Unpool {
    spec: BlockSpec,
    winners: Arc<Vec<u8>>,
    conv_shape: (usize, usize, usize, usize),
    bias_sums: Mutex<Vec<f64>>,
}

#[inline]
fn is_nan<T: PartialEq>(v: T) -> bool {
    #[allow(clippy::eq_op)]
    let nan = v != v;
    nan
}

/// Whether `v` wins against the window's best so far `best`: NaN wins once
/// seen, else a strictly larger value (so the first maximum stays). Written
/// without short-circuits so that it compiles to selects, not branches (the
/// outcome is a coin toss on real data).
#[inline]
fn beats<T: WithDType>(v: T, best: T) -> bool {
    !is_nan(best) & ((v > best) | is_nan(v))
}

/// `(v, i)` if `v` beats `best`, else `(best, at)`.
#[inline]
fn keep<T: WithDType>((best, at): (T, u32), v: T, i: u32) -> (T, u32) {
    let take = beats(v, best);
    (if take { v } else { best }, if take { i } else { at })
}

/// Per-type fast paths of the 2×2 pool and its gradient: f32 on AVX-512
/// CPUs (16 windows per step); everything else takes the portable loops.
trait BlockNum: Num {
    /// Pools one row of 2×2 windows over input rows `r0` and `r1` (at least
    /// `2·y.len()` each) after the bias and ReLU: `y` and `win`. False: not
    /// done here.
    fn pool2_row(_r0: &[Self], _r1: &[Self], _bias: Self, _relu: bool, _y: &mut [MaybeUninit<Self>], _win: &mut [u8]) -> bool {
        false
    }

    /// Puts one row of 2×2 windows' gradient `g` on rows `d0` and `d1`
    /// (`2·g.len()` each), masked where `y` is not positive when `relu`;
    /// returns the sum of what it put. None: not done here.
    fn unpool2_row(
        _g: &[Self],
        _y: &[Self],
        _win: &[u8],
        _relu: bool,
        _d0: &mut [MaybeUninit<Self>],
        _d1: &mut [MaybeUninit<Self>],
    ) -> Option<Self> {
        None
    }
}

impl BlockNum for f64 {}

impl BlockNum for f32 {
    fn pool2_row(r0: &[f32], r1: &[f32], bias: f32, relu: bool, y: &mut [MaybeUninit<f32>], win: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if super::avx512_gemm::available() {
            let n = y.len();
            assert!(win.len() == n && r0.len() >= 2 * n && r1.len() >= 2 * n, "pool row operands do not fit");
            // SAFETY: AVX-512F is present; the lengths are checked above.
            unsafe { avx512::pool2_row(r0.as_ptr(), r1.as_ptr(), n, bias, relu, y.as_mut_ptr().cast(), win.as_mut_ptr()) };
            return true;
        }
        false
    }

    fn unpool2_row(g: &[f32], y: &[f32], win: &[u8], relu: bool, d0: &mut [MaybeUninit<f32>], d1: &mut [MaybeUninit<f32>]) -> Option<f32> {
        #[cfg(target_arch = "x86_64")]
        if super::avx512_gemm::available() {
            let n = g.len();
            assert!(y.len() == n && win.len() == n && d0.len() >= 2 * n && d1.len() >= 2 * n, "unpool row operands do not fit");
            // SAFETY: AVX-512F is present; the lengths are checked above.
            return Some(unsafe {
                avx512::unpool2_row(g.as_ptr(), y.as_ptr(), win.as_ptr(), n, relu, d0.as_mut_ptr().cast(), d1.as_mut_ptr().cast())
            });
        }
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[inline]
    fn mask(lanes: usize) -> __mmask16 {
        if lanes >= 16 { 0xffff } else { ((1u32 << lanes) - 1) as __mmask16 }
    }

    /// Up to 16 winner bytes as 32-bit lanes.
    #[target_feature(enable = "avx512f")]
    unsafe fn load_bytes(p: *const u8, k: usize) -> __m512i {
        let mut bytes = [0u8; 16];
        // SAFETY: the caller guarantees `k` readable bytes at `p`.
        unsafe { std::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), k.min(16)) };
        _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
    }

    /// See `BlockNum::pool2_row`; `n` windows, rows of `2n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pool2_row(r0: *const f32, r1: *const f32, n: usize, bias: f32, relu: bool, y: *mut f32, win: *mut u8) {
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (bias, zero) = (_mm512_set1_ps(bias), _mm512_setzero_ps());
        // v + bias, then ReLU as `relu_of` (v ≤ 0 → 0; NaN stays).
        let act = |v: __m512| {
            let v = _mm512_add_ps(v, bias);
            if relu { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero), v, zero) } else { v }
        };
        // `beats`: NaN wins once seen, else strictly larger.
        let keep = |best: __m512, at: __m512i, v: __m512, i: i32| {
            let take = _mm512_mask_cmp_ps_mask::<_CMP_ORD_Q>(
                _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v),
                best,
                best,
            );
            (_mm512_mask_blend_ps(take, best, v), _mm512_mask_blend_epi32(take, at, _mm512_set1_epi32(i)))
        };
        let mut j = 0;
        while j < n {
            let k = (n - j).min(16);
            let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(16)));
            // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
            let (a_lo, a_hi, b_lo, b_hi) = unsafe {
                (
                    _mm512_maskz_loadu_ps(m_lo, r0.add(2 * j)),
                    _mm512_maskz_loadu_ps(m_hi, r0.add(2 * j + 16)),
                    _mm512_maskz_loadu_ps(m_lo, r1.add(2 * j)),
                    _mm512_maskz_loadu_ps(m_hi, r1.add(2 * j + 16)),
                )
            };
            let best = act(_mm512_permutex2var_ps(a_lo, even, a_hi));
            let at = _mm512_setzero_si512();
            let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(a_lo, odd, a_hi)), 1);
            let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(b_lo, even, b_hi)), 2);
            let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(b_lo, odd, b_hi)), 3);
            // SAFETY: k outputs from j, within the n the caller guarantees.
            unsafe {
                _mm512_mask_storeu_ps(y.add(j), m, best);
                _mm512_mask_cvtepi32_storeu_epi8(win.add(j).cast(), m, at);
            }
            j += k;
        }
    }

    /// See `BlockNum::unpool2_row`; `n` windows, rows of `2n`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn unpool2_row(
        g: *const f32,
        y: *const f32,
        win: *const u8,
        n: usize,
        relu: bool,
        d0: *mut f32,
        d1: *mut f32,
    ) -> f32 {
        let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let zero = _mm512_setzero_ps();
        let mut total = zero;
        let mut j = 0;
        while j < n {
            let k = (n - j).min(16);
            let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(16)));
            // SAFETY: k values from j, within the n the caller guarantees.
            let (mut gv, at) = unsafe { (_mm512_maskz_loadu_ps(m, g.add(j)), load_bytes(win.add(j), k)) };
            if relu {
                // Masked by the ReLU's output > 0 (false for NaN).
                let yv = unsafe { _mm512_maskz_loadu_ps(m, y.add(j)) };
                gv = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(yv, zero), gv);
            }
            total = _mm512_add_ps(total, gv);
            let cell = |i: i32| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(i)), gv);
            let (c0, c1, c2, c3) = (cell(0), cell(1), cell(2), cell(3));
            // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
            unsafe {
                _mm512_mask_storeu_ps(d0.add(2 * j), m_lo, _mm512_permutex2var_ps(c0, lo, c1));
                _mm512_mask_storeu_ps(d0.add(2 * j + 16), m_hi, _mm512_permutex2var_ps(c0, hi, c1));
                _mm512_mask_storeu_ps(d1.add(2 * j), m_lo, _mm512_permutex2var_ps(c2, lo, c3));
                _mm512_mask_storeu_ps(d1.add(2 * j + 16), m_hi, _mm512_permutex2var_ps(c2, hi, c3));
            }
            j += k;
        }
        _mm512_reduce_add_ps(total)
    }
}

fn dims_of(x: &Shape, w: &Shape, spec: &Conv2dSpec) -> Result<Dims> {
    let (b, cin, h, wd) = x.dims4()?;
    let (cout, _, kh, kw) = w.dims4()?;
    Ok(Dims { b, cin, h, w: wd, cout, kh, kw, ho: spec.out_len(0, h, kh), wo: spec.out_len(1, wd, kw) })
}

/// The block's forward pass: the output `[B, Cout, ho', wo']` and, when it
/// pools, each pooled value's winning cell.
fn forward<T: BlockNum>(x: &[T], w: &[T], bias: &[T], d: &Dims, spec: &BlockSpec) -> (Vec<T>, Vec<u8>) {
    let act = |v: T| if spec.relu { act_kernel::relu_of(v) } else { v };
    let Some([ph, pw]) = spec.pool else {
        let per_sample = d.cout * d.ho * d.wo;
        if per_sample == 0 {
            return (Vec::new(), Vec::new());
        }
        let sink = |yb: &mut [MaybeUninit<T>], rows: &Rows<T>| {
            for (k, dst) in yb.chunks_exact_mut(d.wo).enumerate() {
                let (c, r) = (k / d.ho, k % d.ho);
                for (o, &v) in dst.iter_mut().zip(rows.row(c, r)) {
                    *o = MaybeUninit::new(act(v + bias[c]));
                }
            }
        };
        // SAFETY: the sink writes every row of every sample's chunk.
        let y = unsafe {
            conv2d_kernel::filled(d.b * per_sample, |y| {
                conv2d_kernel::forward_each(x, w, d, &spec.conv, y.par_chunks_mut(per_sample), sink)
            })
        };
        return (y, Vec::new());
    };
    let (po_h, po_w) = (d.ho / ph, d.wo / pw);
    let per_sample = d.cout * po_h * po_w;
    if per_sample == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut winners = vec![0u8; d.b * per_sample];
    let sink = |(yb, wb): (&mut [MaybeUninit<T>], &mut [u8]), rows: &Rows<T>| {
        for (c, &b) in bias.iter().enumerate().take(d.cout) {
            for pr in 0..po_h {
                let out = (c * po_h + pr) * po_w;
                let (yr, wr) = (&mut yb[out..out + po_w], &mut wb[out..out + po_w]);
                // The common case, 16 windows at a time where the CPU can.
                if ph == 2 && pw == 2 && T::pool2_row(rows.row(c, 2 * pr), rows.row(c, 2 * pr + 1), b, spec.relu, yr, wr) {
                    continue;
                }
                for (pc, (y, win)) in yr.iter_mut().zip(wr.iter_mut()).enumerate() {
                    let mut best = (act(rows.row(c, pr * ph)[pc * pw] + b), 0);
                    for i in 0..ph {
                        let row = &rows.row(c, pr * ph + i)[pc * pw..(pc + 1) * pw];
                        for (j, &v) in row.iter().enumerate() {
                            best = keep(best, act(v + b), (i * pw + j) as u32);
                        }
                    }
                    let (best, at) = best;
                    *y = MaybeUninit::new(best);
                    *win = at as u8;
                }
            }
        }
    };
    // SAFETY: the sink writes every pooled value of every sample's chunk.
    let y = unsafe {
        conv2d_kernel::filled(d.b * per_sample, |y| {
            let outs = y.par_chunks_mut(per_sample).zip(winners.par_chunks_mut(per_sample));
            conv2d_kernel::forward_each(x, w, d, &spec.conv, outs, sink)
        })
    };
    (y, winners)
}

/// The gradient of the convolution's output `[B, C, ho, wo]` from the pooled
/// output's gradient `gy` and value `y` (`[B, C, ho', wo']`): each window's
/// gradient on its winning cell (zero where the ReLU's output was not
/// positive), zero elsewhere; and the per-channel sums (in f64).
fn unpool<T: BlockNum>(gy: &[T], y: &[T], winners: &[u8], conv: (usize, usize, usize, usize), spec: &BlockSpec) -> (Vec<T>, Vec<f64>) {
    let (b, c, ho, wo) = conv;
    let [ph, pw] = spec.pool.unwrap_or([1, 1]);
    let (po_h, po_w) = (ho / ph, wo / pw);
    let (plane_in, plane_out) = (ho * wo, po_h * po_w);
    let mut sums = vec![0f64; b * c];
    if plane_in == 0 {
        return (Vec::new(), vec![0.0; c]);
    }
    let unplane = |n: usize, gp: &mut [MaybeUninit<T>], sum: &mut f64| {
        let at = n * plane_out;
        let (gyp, yp, wp) = (&gy[at..at + plane_out], &y[at..at + plane_out], &winners[at..at + plane_out]);
        let mut total = T::zero();
        for pr in 0..po_h {
            let out = pr * po_w..(pr + 1) * po_w;
            let (g_row, y_row, w_row) = (&gyp[out.clone()], &yp[out.clone()], &wp[out]);
            if ph == 2 && pw == 2 {
                let (d0, d1) = gp[2 * pr * wo..(2 * pr + 2) * wo].split_at_mut(wo);
                if let Some(sum) = T::unpool2_row(g_row, y_row, w_row, spec.relu, d0, d1) {
                    total += sum;
                    for cell in d0[2 * po_w..].iter_mut().chain(&mut d1[2 * po_w..]) {
                        *cell = MaybeUninit::new(T::zero());
                    }
                    continue;
                }
            }
            for i in 0..ph {
                let dst = &mut gp[(pr * ph + i) * wo..(pr * ph + i + 1) * wo];
                for (((cells, &g), &yv), &win) in dst.chunks_exact_mut(pw).zip(g_row).zip(y_row).zip(w_row) {
                    let g = if !spec.relu || yv > T::zero() { g } else { T::zero() };
                    let first = (i * pw) as u8;
                    for (j, cell) in cells.iter_mut().enumerate() {
                        *cell = MaybeUninit::new(if win == first + j as u8 { g } else { T::zero() });
                    }
                }
                // Columns that fill no window.
                for cell in &mut dst[po_w * pw..] {
                    *cell = MaybeUninit::new(T::zero());
                }
            }
            for (&g, &yv) in g_row.iter().zip(y_row) {
                if !spec.relu || yv > T::zero() {
                    total += g;
                }
            }
        }
        // Rows that fill no window.
        for cell in &mut gp[po_h * ph * wo..] {
            *cell = MaybeUninit::new(T::zero());
        }
        *sum = total.to_f64();
    };
    // SAFETY: `unplane` writes every element of its plane: each window's
    // cells, then the columns and rows beyond the last window.
    let g = unsafe {
        conv2d_kernel::filled(b * c * plane_in, |g| {
            g.par_chunks_mut(plane_in).zip(sums.par_iter_mut()).enumerate().for_each(|(n, (gp, sum))| unplane(n, gp, sum))
        })
    };
    // Per channel, summed in sample order: the same bits on any thread count.
    let per_channel = (0..c).map(|ch| sums.iter().skip(ch).step_by(c.max(1)).sum()).collect();
    (g, per_channel)
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
        let d = dims_of(l1.shape(), l2.shape(), &self.spec.conv)?;
        let (storage, winners) = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (y, winners) = forward(slice(x, l1)?, slice(w, l2)?, slice(b, l3)?, &d, &self.spec);
                (CpuStorage::F32(y), winners)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (y, winners) = forward(slice(x, l1)?, slice(w, l2)?, slice(b, l3)?, &d, &self.spec);
                (CpuStorage::F64(y), winners)
            }
            _ => candle_core::bail!("lpn's CPU kernels support f32 and f64, all operands alike"),
        };
        *self.winners.lock().expect("winners lock") = Arc::new(winners);
        let (ho, wo) = match self.spec.pool {
            Some([ph, pw]) => (d.ho / ph, d.wo / pw),
            None => (d.ho, d.wo),
        };
        Ok((storage, Shape::from((d.b, d.cout, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gy, gb) = match self.spec.pool {
            Some(_) => {
                let d = dims_of(x.shape(), w.shape(), &self.spec.conv)?;
                let op = Unpool {
                    spec: self.spec,
                    winners: self.winners.lock().expect("winners lock").clone(),
                    conv_shape: (d.b, d.cout, d.ho, d.wo),
                    bias_sums: Mutex::new(Vec::new()),
                };
                let gy = grad.apply_op2_no_bwd(res, &op)?;
                let sums = std::mem::take(&mut *op.bias_sums.lock().expect("bias sums lock"));
                let gb = Tensor::from_vec(sums, bias.dims(), bias.device())?.to_dtype(bias.dtype())?;
                (gy, gb)
            }
            None => {
                let gy = if self.spec.relu { act_kernel::relu_grad(&grad, res)? } else { grad };
                let gb = act_kernel::bias_grad(&gy)?;
                (gy, gb)
            }
        };
        let gx = if x.track_op() { Some(conv2d_kernel::input_gradient(&gy, x, w, self.spec.conv)?) } else { None };
        let gw = if w.track_op() { Some(conv2d_kernel::weight_gradient(&gy, x, w, self.spec.conv)?) } else { None };
        Ok((gx, gw, bias.track_op().then_some(gb)))
    }
}

impl CustomOp2 for Unpool {
    fn name(&self) -> &'static str {
        "lpn-conv2d-block-unpool"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, c, ho, wo) = self.conv_shape;
        let [ph, pw] = self.spec.pool.unwrap_or([1, 1]);
        if l1.shape().dims() != [b, c, ho / ph, wo / pw] || l2.shape() != l1.shape() || self.winners.len() != l1.shape().elem_count() {
            candle_core::bail!("the block's gradient {:?} does not fit its output {:?}", l1.shape(), l2.shape());
        }
        let (storage, sums) = match (s1, s2) {
            (CpuStorage::F32(gy), CpuStorage::F32(y)) => {
                let (g, sums) = unpool(slice(gy, l1)?, slice(y, l2)?, &self.winners, self.conv_shape, &self.spec);
                (CpuStorage::F32(g), sums)
            }
            (CpuStorage::F64(gy), CpuStorage::F64(y)) => {
                let (g, sums) = unpool(slice(gy, l1)?, slice(y, l2)?, &self.winners, self.conv_shape, &self.spec);
                (CpuStorage::F64(g), sums)
            }
            _ => candle_core::bail!("lpn's CPU kernels support f32 and f64, both operands alike"),
        };
        *self.bias_sums.lock().expect("bias sums lock") = sums;
        Ok((storage, Shape::from(self.conv_shape)))
    }
}

/// The block `pool(act(conv2d(x, w) + bias))` as one op with its backward
/// pass, for f32 and f64 tensors on the CPU; `bias` None is a zero bias.
/// Shapes that do not fit are errors, never panics.
pub fn conv2d_block(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, spec: BlockSpec) -> Result<Tensor> {
    conv2d_kernel::check_fits(x, w, &spec.conv)?;
    let d = dims_of(x.shape(), w.shape(), &spec.conv)?;
    if let Some([ph, pw]) = spec.pool
        && (ph == 0 || pw == 0 || ph * pw > MAX_WINDOW || ph > d.ho || pw > d.wo)
    {
        candle_core::bail!("conv2d block: a {ph}×{pw} pool over a {}×{} output", d.ho, d.wo);
    }
    let zeros;
    let bias = match bias {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(d.cout, x.dtype(), x.device())?;
            &zeros
        }
    };
    if bias.dims() != [d.cout] || bias.dtype() != x.dtype() || w.dtype() != x.dtype() || !matches!(x.dtype(), DType::F32 | DType::F64) {
        candle_core::bail!("conv2d block: bias {:?} {:?}, weight {:?}, input {:?}", bias.dims(), bias.dtype(), w.dtype(), x.dtype());
    }
    let block = Block { spec, winners: Mutex::new(Arc::new(Vec::new())) };
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pool_kernel::{PoolKind, pool};
    use candle_core::{Device, Var};

    /// The block against its ops in sequence (conv2d, bias + ReLU, max pool),
    /// forward and the gradients of input, weight and bias, for f32 (the
    /// implicit-GEMM path on AVX-512) and f64 (im2col), with padding, strides,
    /// odd sizes that leave a trailing row and column unpooled, a 3×2 window,
    /// and inputs on a coarse grid so that windows hold ties.
    #[test]
    fn matches_the_ops_in_sequence() {
        let dev = Device::Cpu;
        let same = |k: usize| Conv2dSpec { stride: [1, 1], padding: [(k / 2, k / 2); 2], dilation: [1, 1], groups: 1 };
        // (spec, kernel, pool window, relu, input width); 71 wide gives 2×2
        // rows of 35 windows: two whole 16-window steps and a partial one.
        let cases = [
            (same(5), (5, 5), Some([2, 2]), true, 9),
            (same(3), (3, 3), Some([2, 2]), true, 71),
            (same(3), (3, 3), Some([2, 2]), false, 71),
            (Conv2dSpec { stride: [1, 1], padding: [(1, 0), (1, 1)], dilation: [1, 1], groups: 1 }, (3, 2), Some([3, 2]), true, 9),
            (Conv2dSpec { stride: [2, 1], padding: [(1, 1), (0, 0)], dilation: [1, 2], groups: 2 }, (3, 3), Some([2, 2]), false, 9),
            (same(3), (3, 3), None, true, 9),
            (Conv2dSpec { stride: [1, 1], padding: [(0, 0), (0, 0)], dilation: [1, 1], groups: 1 }, (1, 1), None, false, 9),
        ];
        for dtype in [DType::F32, DType::F64] {
            for (conv, (kh, kw), pool_window, relu, width) in cases {
                let groups = conv.groups;
                // Values on a grid of 1/4: ties within windows, and exact zeros after the bias.
                let grid = |t: Tensor| ((t * 4.0).unwrap().round().unwrap() / 4.0).unwrap().to_dtype(dtype).unwrap();
                let x = Var::from_tensor(&grid(Tensor::randn(0f32, 1.0, (3, 4, 11, width), &dev).unwrap())).unwrap();
                let w = Var::from_tensor(&grid(Tensor::randn(0f32, 0.5, (6, 4 / groups, kh, kw), &dev).unwrap())).unwrap();
                let b = Var::from_tensor(&grid(Tensor::randn(0f32, 1.0, 6, &dev).unwrap())).unwrap();
                let spec = BlockSpec { conv, relu, pool: pool_window };
                let ours = conv2d_block(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), spec).unwrap();
                let y = conv2d_kernel::conv2d(x.as_tensor(), w.as_tensor(), conv).unwrap();
                let y = act_kernel::bias_act(&y, b.as_tensor(), relu).unwrap();
                let theirs = match pool_window {
                    Some(k) => pool(&y, PoolKind::Max, &k, &k, &[0, 0]).unwrap(),
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
                        assert!((g - t).abs() <= 1e-5 * (1.0 + t.abs()), "{dtype:?} {spec:?} tensor {k}: {g} vs {t}");
                    }
                }
            }
        }
    }

    /// NaN wins its window and passes no gradient through the ReLU; −∞
    /// windows (no ReLU) pick their first cell.
    #[test]
    fn nan_and_infinity_in_windows() {
        let dev = Device::Cpu;
        let conv = Conv2dSpec { stride: [1, 1], padding: [(0, 0), (0, 0)], dilation: [1, 1], groups: 1 };
        let x = Var::from_tensor(
            &Tensor::new(&[[[[1f32, f32::NAN, 3.0, 2.0], [f32::NEG_INFINITY, f32::NEG_INFINITY, 5.0, 5.0]]]], &dev).unwrap(),
        )
        .unwrap();
        let w = Tensor::ones((1, 1, 1, 1), DType::F32, &dev).unwrap();
        for relu in [true, false] {
            let y = conv2d_block(x.as_tensor(), &w, None, BlockSpec { conv, relu, pool: Some([1, 2]) }).unwrap();
            let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert!(v[0].is_nan());
            assert_eq!(&v[1..], &[3.0, if relu { 0.0 } else { f32::NEG_INFINITY }, 5.0]);
            let g: Vec<f32> =
                y.sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let want = if relu { [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] } else { [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0] };
            assert_eq!(g, want, "relu {relu}");
        }
    }

    /// Output and every gradient are the same bits on 1 and 3 threads (the
    /// direct kernels on AVX-512 for f32, the weight gradient's fixed chunks,
    /// the bias sums in sample order).
    #[test]
    fn same_bits_on_any_thread_count() {
        let dev = Device::Cpu;
        let conv = Conv2dSpec { stride: [1, 1], padding: [(2, 2), (2, 2)], dilation: [1, 1], groups: 1 };
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (13, 3, 12, 10), &dev).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.3, (20, 3, 5, 5), &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::randn(0f32, 0.3, 20, &dev).unwrap()).unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = conv2d_block(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), BlockSpec { conv, relu: true, pool: Some([2, 2]) })
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
        let conv = Conv2dSpec { stride: [1, 1], padding: [(0, 0), (0, 0)], dilation: [1, 1], groups: 1 };
        let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((3, 2, 3, 3), DType::F32, &dev).unwrap();
        let block = |pool, bias: Option<&Tensor>| conv2d_block(&x, &w, bias, BlockSpec { conv, relu: true, pool });
        assert!(block(Some([3, 1]), None).is_err());
        assert!(block(Some([0, 1]), None).is_err());
        assert!(block(Some([2, 2]), Some(&Tensor::zeros(2, DType::F32, &dev).unwrap())).is_err());
        assert!(block(Some([2, 2]), Some(&Tensor::zeros(3, DType::F64, &dev).unwrap())).is_err());
        assert_eq!(block(Some([2, 2]), None).unwrap().dims(), &[1, 3, 1, 1]);
    }
}
