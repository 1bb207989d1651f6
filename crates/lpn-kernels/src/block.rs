//! A 2-D convolution block — convolution, per-channel bias, optional ReLU,
//! optional max pooling whose windows tile the input — forward, and the
//! gradient of the convolution's output from the block's.
//!
//! Run as separate ops, such a block writes the convolution's output, reads
//! it back to add the bias, again to pool, and its backward pass makes and
//! sums a gradient tensor the size of the convolution's output for each op.
//! Here the forward pass takes each sample's convolution output straight from
//! the product's buffer (`conv2d::forward_each`) and writes only the pooled
//! result and, per pooled value, which cell of its window won. [`unpool`]
//! puts each window's gradient back on that cell (masked by the ReLU),
//! summing the bias gradient on the way; the caller hands the result to the
//! convolution's two gradient kernels (`conv2d::grad_input`, `grad_weight`).
//!
//! Semantics are those of the ops in sequence (PyTorch's): ReLU keeps NaN
//! and passes gradient where its output is positive; the max pool's window
//! goes to its first NaN, else its first maximum, in row-major order, floor
//! mode (trailing rows and columns that fill no window are dropped).
//! Results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::act::relu_of;
use crate::conv2d::{Rows, forward_each};
use crate::fill::filled;
use crate::isa::{self, Isa};
use crate::{BlockGeometry, Num};

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
fn beats<T: Num>(v: T, best: T) -> bool {
    !is_nan(best) & ((v > best) | is_nan(v))
}

/// `(v, i)` if `v` beats `best`, else `(best, at)`.
#[inline]
fn keep<T: Num>((best, at): (T, u32), v: T, i: u32) -> (T, u32) {
    let take = beats(v, best);
    (if take { v } else { best }, if take { i } else { at })
}

/// Pools one row of 2×2 windows over rows `r0` and `r1` after the bias and
/// ReLU into `y` and `win` with AVX-512 or AVX2 (f32 only); false: not done here.
fn pool2_row<T: Num>(isa: Isa, (r0, r1): (&[T], &[T]), bias: T, relu: bool, y: &mut [MaybeUninit<T>], win: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Some(r0), Some(r1), Some(b), Some(y)) = (T::as_f32(r0), T::as_f32(r1), bias.as_f32_value(), T::as_f32_uninit(y)) {
        match isa {
            Isa::Avx512 => crate::x86::pool512::pool2_row(r0, r1, b, relu, y, win),
            Isa::Avx2 => crate::x86::pool256::pool2_row(r0, r1, b, relu, y, win),
            Isa::Portable => return false,
        }
        return true;
    }
    let _ = (isa, r0, r1, bias, relu, y, win);
    false
}

/// Puts one row of 2×2 windows' gradient on rows `d0` and `d1` with AVX-512
/// or AVX2 (f32 only), returning the sum it put; None: not done here.
fn unpool2_row<T: Num>(
    isa: Isa,
    (g, y, win): (&[T], &[T], &[u8]),
    relu: bool,
    d0: &mut [MaybeUninit<T>],
    d1: &mut [MaybeUninit<T>],
) -> Option<T> {
    #[cfg(target_arch = "x86_64")]
    if let (Some(g), Some(y), Some(d0), Some(d1)) = (T::as_f32(g), T::as_f32(y), T::as_f32_uninit(d0), T::as_f32_uninit(d1)) {
        let sum = match isa {
            Isa::Avx512 => crate::x86::pool512::unpool2_row(g, y, win, relu, d0, d1),
            Isa::Avx2 => crate::x86::pool256::unpool2_row(g, y, win, relu, d0, d1),
            Isa::Portable => return None,
        };
        return Some(T::from_f64(f64::from(sum)));
    }
    let _ = (isa, g, y, win, relu, d0, d1);
    None
}

/// The block's forward pass: the output `[B, Cout, ho', wo']` and, when it
/// pools, each pooled value's winning cell (row-major in its window; empty
/// when it does not pool). Panics if the operands do not fit `g`.
pub fn forward<T: Num>(x: &[T], w: &[T], bias: &[T], g: &BlockGeometry) -> (Vec<T>, Vec<u8>) {
    assert!(g.check().is_ok() && bias.len() == g.conv.out_channels, "operands do not fit {g:?}");
    let isa = isa::current();
    let (cout, [ho, wo]) = (g.conv.out_channels, g.conv.output());
    let act = |v: T| if g.relu { relu_of(v) } else { v };
    let Some([ph, pw]) = g.pool else {
        let per_sample = cout * ho * wo;
        if per_sample == 0 {
            return (Vec::new(), Vec::new());
        }
        let sink = |yb: &mut [MaybeUninit<T>], rows: &Rows<T>| {
            for (k, dst) in yb.chunks_exact_mut(wo).enumerate() {
                let (c, r) = (k / ho, k % ho);
                for (o, &v) in dst.iter_mut().zip(rows.row(c, r)) {
                    *o = MaybeUninit::new(act(v + bias[c]));
                }
            }
        };
        // SAFETY: the sink writes every row (cout · ho rows of wo) of every
        // sample's chunk, and the chunks cover the output.
        let y = unsafe { filled(g.conv.batch * per_sample, |y| forward_each(x, w, &g.conv, y.par_chunks_mut(per_sample), sink)) };
        return (y, Vec::new());
    };
    let [po_h, po_w] = g.output();
    let per_sample = cout * po_h * po_w;
    if per_sample == 0 {
        return (Vec::new(), Vec::new());
    }
    let mut winners = vec![0u8; g.conv.batch * per_sample];
    let sink = |(yb, wb): (&mut [MaybeUninit<T>], &mut [u8]), rows: &Rows<T>| {
        for (c, &b) in bias.iter().enumerate() {
            for pr in 0..po_h {
                let out = (c * po_h + pr) * po_w;
                let (yr, wr) = (&mut yb[out..out + po_w], &mut wb[out..out + po_w]);
                // The common case, 16 (AVX-512) or 8 (AVX2) windows at a time where the CPU can.
                if ph == 2 && pw == 2 && pool2_row(isa, (rows.row(c, 2 * pr), rows.row(c, 2 * pr + 1)), b, g.relu, yr, wr) {
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
    // SAFETY: the sink writes every pooled value (cout · po_h rows of po_w,
    // by `pool2_row` or the loop) of every sample's chunk, and the chunks
    // cover the output.
    let y = unsafe {
        filled(g.conv.batch * per_sample, |y| {
            let outs = y.par_chunks_mut(per_sample).zip(winners.par_chunks_mut(per_sample));
            forward_each(x, w, &g.conv, outs, sink)
        })
    };
    (y, winners)
}

/// The block's pooling alone, over `y [B, C, ho, wo]`, the output of `g`'s
/// convolution after whatever ran on it (a batch norm, a ReLU): the pooled
/// values and each window's winning cell, as [`forward`] gives them for a
/// block with `g.relu` false, so [`unpool`] (with `g.relu` saying whether a
/// ReLU ran before the pool) is its gradient. Panics if `y` does not fit `g`
/// or `g` does not pool.
pub fn pool_with_winners<T: Num>(y: &[T], g: &BlockGeometry) -> (Vec<T>, Vec<u8>) {
    let [ph, pw] = g.pool.expect("pool_with_winners needs a pooling block");
    let (planes, [ho, wo], [po_h, po_w]) = (g.conv.batch * g.conv.out_channels, g.conv.output(), g.output());
    let (plane_in, plane_out) = (ho * wo, po_h * po_w);
    assert!(g.check().is_ok() && y.len() == planes * plane_in, "input does not fit {g:?}");
    if plane_out == 0 {
        return (Vec::new(), Vec::new());
    }
    let isa = isa::current();
    // −0 added changes no value (x + −0 = x, −0 included): the AVX path's bias slot, unused.
    let no_bias = T::from_f64(-0.0);
    let mut winners = vec![0u8; planes * plane_out];
    let pool_plane = |n: usize, (yp, wp): (&mut [MaybeUninit<T>], &mut [u8])| {
        let src = &y[n * plane_in..(n + 1) * plane_in];
        let row = |r: usize| &src[r * wo..(r + 1) * wo];
        for pr in 0..po_h {
            let (yr, wr) = (&mut yp[pr * po_w..(pr + 1) * po_w], &mut wp[pr * po_w..(pr + 1) * po_w]);
            if ph == 2 && pw == 2 && pool2_row(isa, (row(2 * pr), row(2 * pr + 1)), no_bias, false, yr, wr) {
                continue;
            }
            for (pc, (out, win)) in yr.iter_mut().zip(wr.iter_mut()).enumerate() {
                let mut best = (row(pr * ph)[pc * pw], 0);
                for i in 0..ph {
                    for (j, &v) in row(pr * ph + i)[pc * pw..(pc + 1) * pw].iter().enumerate() {
                        best = keep(best, v, (i * pw + j) as u32);
                    }
                }
                *out = MaybeUninit::new(best.0);
                *win = best.1 as u8;
            }
        }
    };
    // SAFETY: `pool_plane` writes every pooled value of its plane (po_h rows
    // of po_w, by `pool2_row` or the loop), and the planes cover the output.
    let pooled = unsafe {
        filled(planes * plane_out, |out| {
            out.par_chunks_mut(plane_out).zip(winners.par_chunks_mut(plane_out)).enumerate().for_each(|(n, p)| pool_plane(n, p))
        })
    };
    (pooled, winners)
}

/// The gradient of the convolution's output `[B, C, ho, wo]` from the
/// pooling block's output gradient `gy` and output `y` (`[B, C, ho', wo']`)
/// and the winners [`forward`] returned: each window's gradient on its
/// winning cell (zero where the ReLU's output was not positive), zero
/// elsewhere; and the per-channel sums of it (the bias's gradient, summed in
/// f64 in sample order). Panics if the operands do not fit `g` or `g` does
/// not pool.
pub fn unpool<T: Num>(gy: &[T], y: &[T], winners: &[u8], g: &BlockGeometry) -> (Vec<T>, Vec<T>) {
    let [ph, pw] = g.pool.expect("unpool is the gradient of a pooling block");
    let (b, c, [ho, wo], [po_h, po_w]) = (g.conv.batch, g.conv.out_channels, g.conv.output(), g.output());
    let (plane_in, plane_out) = (ho * wo, po_h * po_w);
    assert!(
        g.check().is_ok() && gy.len() == b * c * plane_out && y.len() == gy.len() && winners.len() == gy.len(),
        "operands do not fit {g:?}"
    );
    if plane_in == 0 || b * c == 0 {
        return (Vec::new(), vec![T::ZERO; c]);
    }
    let isa = isa::current();
    let mut sums = vec![0f64; b * c];
    let unplane = |n: usize, gp: &mut [MaybeUninit<T>], sum: &mut f64| {
        let at = n * plane_out;
        let (gyp, yp, wp) = (&gy[at..at + plane_out], &y[at..at + plane_out], &winners[at..at + plane_out]);
        let mut total = T::ZERO;
        for pr in 0..po_h {
            let out = pr * po_w..(pr + 1) * po_w;
            let (g_row, y_row, w_row) = (&gyp[out.clone()], &yp[out.clone()], &wp[out]);
            if ph == 2 && pw == 2 {
                let (d0, d1) = gp[2 * pr * wo..(2 * pr + 2) * wo].split_at_mut(wo);
                if let Some(sum) = unpool2_row(isa, (g_row, y_row, w_row), g.relu, d0, d1) {
                    total += sum;
                    for cell in d0[2 * po_w..].iter_mut().chain(&mut d1[2 * po_w..]) {
                        *cell = MaybeUninit::new(T::ZERO);
                    }
                    continue;
                }
            }
            for i in 0..ph {
                let dst = &mut gp[(pr * ph + i) * wo..(pr * ph + i + 1) * wo];
                for (((cells, &gv), &yv), &win) in dst.chunks_exact_mut(pw).zip(g_row).zip(y_row).zip(w_row) {
                    let gv = if !g.relu || yv > T::ZERO { gv } else { T::ZERO };
                    let first = (i * pw) as u8;
                    for (j, cell) in cells.iter_mut().enumerate() {
                        *cell = MaybeUninit::new(if win == first + j as u8 { gv } else { T::ZERO });
                    }
                }
                // Columns that fill no window.
                for cell in &mut dst[po_w * pw..] {
                    *cell = MaybeUninit::new(T::ZERO);
                }
            }
            for (&gv, &yv) in g_row.iter().zip(y_row) {
                if !g.relu || yv > T::ZERO {
                    total += gv;
                }
            }
        }
        // Rows that fill no window.
        for cell in &mut gp[po_h * ph * wo..] {
            *cell = MaybeUninit::new(T::ZERO);
        }
        *sum = total.to_f64();
    };
    // SAFETY: `unplane` writes every element of its plane: each window's
    // cells (by `unpool2_row` or the loop), then the columns and rows beyond
    // the last window; the planes cover the output.
    let grad = unsafe {
        filled(b * c * plane_in, |gc| {
            gc.par_chunks_mut(plane_in).zip(sums.par_iter_mut()).enumerate().for_each(|(n, (gp, sum))| unplane(n, gp, sum))
        })
    };
    // Per channel, summed in sample order: the same bits on any thread count.
    let per_channel = (0..c).map(|ch| T::from_f64(sums.iter().skip(ch).step_by(c).sum())).collect();
    (grad, per_channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rng, on_threads};
    use crate::{ConvGeometry, PoolGeometry, PoolKind, act, conv2d, pool};

    fn conv(
        batch: usize,
        (cin, cout, groups): (usize, usize, usize),
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        width: usize,
    ) -> ConvGeometry<2> {
        ConvGeometry { batch, in_channels: cin, out_channels: cout, groups, kernel, stride, padding, dilation: [1, 1], input: [11, width] }
    }

    /// Padding, strides and groups, odd sizes that leave a trailing row and
    /// column unpooled, a 3×2 window, 71 columns (2×2 rows of 35 windows: two
    /// whole 16-window steps and a partial one), with and without ReLU and pool.
    fn cases() -> Vec<BlockGeometry> {
        let same = |k: usize, width: usize| conv(3, (4, 6, 1), [k, k], [1, 1], [(k / 2, k / 2); 2], width);
        vec![
            BlockGeometry { conv: same(5, 9), relu: true, pool: Some([2, 2]) },
            BlockGeometry { conv: same(3, 71), relu: true, pool: Some([2, 2]) },
            BlockGeometry { conv: same(3, 71), relu: false, pool: Some([2, 2]) },
            BlockGeometry { conv: conv(3, (4, 6, 1), [3, 2], [1, 1], [(1, 0), (1, 1)], 9), relu: true, pool: Some([3, 2]) },
            BlockGeometry { conv: conv(3, (4, 6, 2), [3, 3], [2, 1], [(1, 1), (0, 0)], 9), relu: false, pool: Some([2, 2]) },
            BlockGeometry { conv: same(3, 9), relu: true, pool: None },
        ]
    }

    /// The pool kernel's configuration of the block's max pool, if it pools.
    fn pool_of(g: &BlockGeometry) -> Option<PoolGeometry> {
        let window = g.pool?;
        let planes = g.conv.batch * g.conv.out_channels;
        Some(PoolGeometry { kind: PoolKind::Max, planes, input: g.conv.output(), kernel: window, stride: window, padding: [0, 0] })
    }

    /// The block's forward pass and, when it pools, its gradient, as the ops
    /// in sequence compute them: conv2d, bias (+ ReLU), max pool; the pool's
    /// gradient recomputes each window's winner from its input.
    fn in_sequence<T: Num>(g: &BlockGeometry, [x, w, b, gy]: &[Vec<T>; 4]) -> Vec<Vec<T>> {
        let [ho, wo] = g.conv.output();
        let y = act::bias_act(&conv2d::forward(x, w, &g.conv), b, ho * wo, g.relu);
        let Some(p) = pool_of(g) else { return vec![y] };
        let pooled = pool::forward(&y, &p);
        let through_pool = pool::backward(gy, Some(&y), &p);
        let grad = if g.relu { act::relu_grad(&through_pool, &y) } else { through_pool };
        let bias_grad = act::channel_sums(&grad, g.conv.out_channels, ho * wo);
        vec![pooled, grad, bias_grad]
    }

    fn fused<T: Num>(g: &BlockGeometry, [x, w, b, gy]: &[Vec<T>; 4]) -> Vec<Vec<T>> {
        let (y, winners) = forward(x, w, b, g);
        if g.pool.is_none() {
            return vec![y];
        }
        let (grad, bias_grad) = unpool(gy, &y, &winners, g);
        vec![y, grad, bias_grad]
    }

    fn operands<T: Num>(g: &BlockGeometry, seed: u64) -> [Vec<T>; 4] {
        let mut rng = Rng::new(seed);
        // Values on a grid of 1/4: ties within windows, and exact zeros after the bias.
        let w = rng.grid::<T>(g.conv.weight_len()).into_iter().map(|v| v / T::from_f64(2.0)).collect();
        [rng.grid(g.conv.input_len()), w, rng.grid(g.conv.out_channels), rng.grid(g.output_len())]
    }

    /// Exactly (grid values keep every sum exact, in f32 too), on every path.
    #[test]
    fn matches_the_ops_in_sequence_on_every_path() {
        fn check<T: Num>(g: &BlockGeometry, seed: u64) {
            let ops = operands::<T>(g, seed);
            for isa in crate::Isa::available() {
                let (a, b) = crate::with_isa(isa, || (fused(g, &ops), in_sequence(g, &ops)));
                for (k, (a, b)) in a.iter().zip(&b).enumerate() {
                    crate::testing::assert_close(a, b, 0.0, &format!("{isa:?} output {k} {g:?}"));
                }
            }
        }
        for (n, g) in cases().iter().enumerate() {
            check::<f32>(g, 200 + n as u64);
            check::<f64>(g, 200 + n as u64);
        }
    }

    /// A block of one 1×1 unit-weight convolution on one plane of `input`, pooled by `window`.
    fn one_plane(input: [usize; 2], relu: bool, window: [usize; 2]) -> BlockGeometry {
        let conv = ConvGeometry {
            batch: 1,
            in_channels: 1,
            out_channels: 1,
            groups: 1,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [(0, 0); 2],
            dilation: [1, 1],
            input,
        };
        BlockGeometry { conv, relu, pool: Some(window) }
    }

    /// NaN wins its window and passes no gradient through the ReLU; −∞
    /// windows (no ReLU) pick their first cell.
    #[test]
    fn nan_and_infinity_in_windows() {
        let g = |relu| one_plane([2, 4], relu, [1, 2]);
        let x = [1f32, f32::NAN, 3.0, 2.0, f32::NEG_INFINITY, f32::NEG_INFINITY, 5.0, 5.0];
        for isa in crate::Isa::available() {
            for relu in [true, false] {
                let (y, winners) = crate::with_isa(isa, || forward(&x, &[1.0], &[0.0], &g(relu)));
                assert!(y[0].is_nan());
                assert_eq!(&y[1..], &[3.0, if relu { 0.0 } else { f32::NEG_INFINITY }, 5.0]);
                let (grad, _) = crate::with_isa(isa, || unpool(&[1.0; 4], &y, &winners, &g(relu)));
                let want = if relu { [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0] } else { [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0] };
                assert_eq!(grad, want, "{isa:?} relu {relu}");
            }
        }
    }

    /// The same on the vector paths' 2×2 windows: a NaN in a window's
    /// second cell, −∞ windows, ties, and a partial step of windows.
    #[test]
    fn nan_and_infinity_in_2x2_windows() {
        let g = |relu| one_plane([2, 6], relu, [2, 2]);
        let ninf = f32::NEG_INFINITY;
        let x = [1f32, f32::NAN, ninf, ninf, 2.0, 4.0, 3.0, 0.5, ninf, ninf, 4.0, 1.0];
        for isa in crate::Isa::available() {
            for relu in [true, false] {
                let (y, winners) = crate::with_isa(isa, || forward(&x, &[1.0], &[0.0], &g(relu)));
                assert!(y[0].is_nan(), "{isa:?}");
                assert_eq!(&y[1..], &[if relu { 0.0 } else { ninf }, 4.0], "{isa:?} relu {relu}");
                assert_eq!(winners, [1, 0, 1], "{isa:?} relu {relu}");
                let (grad, sum) = crate::with_isa(isa, || unpool(&[1.0; 3], &y, &winners, &g(relu)));
                // Without the ReLU, the NaN and −∞ windows pass their gradient too.
                let passed = if relu { 0.0 } else { 1.0 };
                assert_eq!(grad, [0.0, passed, passed, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "{isa:?} relu {relu}");
                assert_eq!(sum, [if relu { 1.0 } else { 3.0 }], "{isa:?} relu {relu}");
            }
        }
    }

    /// The pooling alone and [`unpool`] against the max pool and ReLU
    /// gradient kernels in sequence, bit for bit (−0 kept), on every path:
    /// ties, NaN, ±∞ and signed zeros in the windows, 2×2 and 3×2 windows,
    /// trailing rows and columns that fill no window, partial vector steps.
    #[test]
    fn pooling_alone_matches_the_pool_kernel() {
        fn check<T: Num>(g: &BlockGeometry, seed: u64) {
            let mut rng = Rng::new(seed);
            let specials = [T::from_f64(f64::NAN), T::NEG_INFINITY, T::from_f64(f64::INFINITY), T::from_f64(-0.0), T::ZERO];
            let y: Vec<T> = rng
                .grid::<T>(g.conv.output_len())
                .into_iter()
                .enumerate()
                .map(|(i, v)| if i % 13 == 5 { specials[(i / 13) % 5] } else { v })
                .collect();
            let gy: Vec<T> = rng.grid(g.output_len());
            let p = pool_of(g).unwrap();
            let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
            for isa in crate::Isa::available() {
                let (pooled, winners) = crate::with_isa(isa, || pool_with_winners(&y, g));
                assert_eq!(bits(&pooled), bits(&pool::forward(&y, &p)), "{isa:?} pooled {g:?}");
                let through_pool = pool::backward(&gy, Some(&y), &p);
                let want = if g.relu { act::relu_grad(&through_pool, &y) } else { through_pool };
                let (grad, _) = crate::with_isa(isa, || unpool(&gy, &pooled, &winners, g));
                crate::testing::assert_close(&grad, &want, 0.0, &format!("{isa:?} gradient {g:?}"));
            }
        }
        for (n, g) in cases().iter().filter(|g| g.pool.is_some()).enumerate() {
            check::<f32>(g, 300 + n as u64);
            check::<f64>(g, 300 + n as u64);
        }
    }

    #[test]
    fn same_bits_on_any_thread_count() {
        let g = BlockGeometry { conv: conv(13, (3, 20, 1), [5, 5], [1, 1], [(2, 2); 2], 10), relu: true, pool: Some([2, 2]) };
        let ops = operands::<f32>(&g, 5);
        for isa in crate::Isa::available() {
            let (one, three) = crate::with_isa(isa, || (on_threads(1, || fused(&g, &ops)), on_threads(3, || fused(&g, &ops))));
            assert_eq!(one, three, "{isa:?}");
        }
    }
}
