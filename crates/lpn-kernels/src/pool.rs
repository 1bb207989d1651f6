//! Max and average pooling over planes, with their gradients.
//!
//! Semantics are PyTorch's defaults: floor mode, max pooling padded with −∞
//! (padding never wins), average pooling counting the zero padding in the
//! divisor (kh·kw). The max-pool gradient recomputes each window's argmax
//! from the input (the first NaN, else the first maximum in row-major window
//! order, as PyTorch) instead of storing indices.
//!
//! Parallel over planes with rayon's global pool; each plane's output and
//! gradient are written by one thread in a fixed order, so results are
//! deterministic.

use std::ops::Range;

use crate::fill::zeroed_parts;
use crate::{Num, PoolGeometry, PoolKind};

/// Every output position's window along one axis, clipped to the input.
fn windows(g: &PoolGeometry, axis: usize) -> Vec<Range<usize>> {
    (0..g.output()[axis]).map(|t| g.window(axis, t)).collect()
}

/// The flat index (within the plane) of the first maximum of the window
/// `rows × cols`, or None when the window lies wholly in the padding. NaN
/// wins, as in PyTorch.
#[inline]
pub(crate) fn argmax<T: Num>(plane: &[T], w: usize, rows: &Range<usize>, cols: &Range<usize>) -> Option<usize> {
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

/// A fresh output of `planes` planes of `plane_out` elements, each zeroed
/// and then given to `f(plane index, output plane)`, in parallel over groups
/// of planes (the zero fill too: one thread's memset of a gradient the size
/// of the pool's input was a serial part of a training step).
fn planes_from<T: Num>(planes: usize, plane_out: usize, plane_in: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    if plane_out == 0 {
        return Vec::new();
    }
    let per_task = (TASK_ELEMENTS / plane_in.max(1)).max(1);
    zeroed_parts(planes * plane_out, plane_out * per_task, |task, group| {
        for (k, plane) in group.chunks_mut(plane_out).enumerate() {
            f(task * per_task + k, plane);
        }
    })
}

/// `m` or `v`, whichever max pooling keeps: the larger, and NaN once seen.
#[inline]
fn keep_max<T: Num>(m: T, v: T) -> T {
    if v > m || v.is_nan() { v } else { m }
}

/// Windows that tile the input (no padding, stride = window): row by row,
/// no per-window ranges; 2×2 max pooling, the common case, unrolled.
fn forward_tiled<T: Num>(xp: &[T], yp: &mut [T], g: &PoolGeometry) {
    let ([kh, kw], w, wo) = (g.kernel, g.input[1], g.output()[1]);
    let divisor = T::from_usize(kh * kw);
    for (oh, yrow) in yp.chunks_exact_mut(wo).enumerate() {
        let rows = &xp[oh * kh * w..(oh + 1) * kh * w];
        match g.kind {
            PoolKind::Max if kh == 2 && kw == 2 => {
                let (r0, r1) = rows.split_at(w);
                for (ow, yv) in yrow.iter_mut().enumerate() {
                    let i = 2 * ow;
                    *yv = keep_max(keep_max(keep_max(r0[i], r0[i + 1]), r1[i]), r1[i + 1]);
                }
            }
            PoolKind::Max => {
                for (ow, yv) in yrow.iter_mut().enumerate() {
                    let mut m = T::NEG_INFINITY;
                    for row in rows.chunks_exact(w) {
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
                    for row in rows.chunks_exact(w) {
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

/// The pooled planes `[planes, ho, wo]` of `x [planes, h, w]`. Panics if `x`
/// does not fit `g`.
pub fn forward<T: Num>(x: &[T], g: &PoolGeometry) -> Vec<T> {
    assert!(g.check().is_ok() && x.len() == g.planes * g.plane_in(), "input does not fit {g:?}");
    let (plane_in, plane_out, w, wo) = (g.plane_in(), g.plane_out(), g.input[1], g.output()[1]);
    let (row_windows, col_windows) = (windows(g, 0), windows(g, 1));
    let divisor = T::from_usize(g.kernel[0] * g.kernel[1]);
    planes_from(g.planes, plane_out, plane_in, |n, yp| {
        let xp = &x[n * plane_in..(n + 1) * plane_in];
        if g.tiles() {
            return forward_tiled(xp, yp, g);
        }
        for (rows, yrow) in row_windows.iter().zip(yp.chunks_exact_mut(wo)) {
            for (cols, yv) in col_windows.iter().zip(yrow.iter_mut()) {
                *yv = match g.kind {
                    PoolKind::Max => {
                        // The value of `argmax`'s pick, without tracking where.
                        let mut max = T::NEG_INFINITY;
                        for ih in rows.clone() {
                            for &v in &xp[ih * w + cols.start..ih * w + cols.end] {
                                max = keep_max(max, v);
                            }
                        }
                        max
                    }
                    PoolKind::Avg => {
                        let mut sum = T::default();
                        for ih in rows.clone() {
                            for &v in &xp[ih * w + cols.start..ih * w + cols.end] {
                                sum += v;
                            }
                        }
                        sum / divisor
                    }
                };
            }
        }
    })
}

/// The 2×2 tiling max-pool backward: each input element is in one window,
/// and the window's gradient goes to its first NaN, else its first maximum
/// (what `argmax` picks).
fn max_backward_2x2<T: Num>(gyp: &[T], xp: &[T], gxp: &mut [T], [w, wo]: [usize; 2]) {
    for (oh, grow) in gyp.chunks_exact(wo).enumerate() {
        let (top, bottom) = (2 * oh * w, (2 * oh + 1) * w);
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

/// The input's gradient from the output's `gy [planes, ho, wo]`; max pooling
/// needs the input `x` (`None` is only for average pooling). Panics if the
/// operands do not fit `g`.
pub fn backward<T: Num>(gy: &[T], x: Option<&[T]>, g: &PoolGeometry) -> Vec<T> {
    let (plane_in, plane_out, w, wo) = (g.plane_in(), g.plane_out(), g.input[1], g.output()[1]);
    assert!(g.check().is_ok() && gy.len() == g.planes * plane_out, "gradient does not fit {g:?}");
    assert!(x.is_none_or(|x| x.len() == g.planes * plane_in), "input does not fit {g:?}");
    assert!(x.is_some() || g.kind == PoolKind::Avg, "the max pool's gradient needs its input");
    let (row_windows, col_windows) = (windows(g, 0), windows(g, 1));
    let divisor = T::from_usize(g.kernel[0] * g.kernel[1]);
    let max_2x2 = g.kind == PoolKind::Max && g.tiles() && g.kernel == [2, 2];
    planes_from(g.planes, plane_in, plane_in, |n, gxp| {
        let gyp = &gy[n * plane_out..(n + 1) * plane_out];
        if let (true, Some(x)) = (max_2x2, x) {
            return max_backward_2x2(gyp, &x[n * plane_in..(n + 1) * plane_in], gxp, [w, wo]);
        }
        for (rows, grow) in row_windows.iter().zip(gyp.chunks_exact(wo)) {
            for (cols, &gv) in col_windows.iter().zip(grow) {
                match x {
                    Some(x) => {
                        if let Some(i) = argmax(&x[n * plane_in..(n + 1) * plane_in], w, rows, cols) {
                            gxp[i] += gv;
                        }
                    }
                    None => {
                        let share = gv / divisor;
                        for ih in rows.clone() {
                            for v in &mut gxp[ih * w + cols.start..ih * w + cols.end] {
                                *v += share;
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    /// The unrolled 2×2 paths against the general window loops (`argmax`,
    /// `keep_max`), on odd sizes with ties, −∞ and NaN.
    #[test]
    fn tiled_2x2_matches_the_general_windows() {
        let (h, w) = (7, 9);
        let g = PoolGeometry { kind: PoolKind::Max, planes: 3, input: [h, w], kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
        let [ho, wo] = g.output();
        assert_eq!([ho, wo], [3, 4]);
        let mut rng = Rng::new(7);
        let x: Vec<f64> = (0..g.planes * h * w)
            .map(|i| match i % 23 {
                5 => f64::NAN,
                9 => f64::NEG_INFINITY,
                _ => (rng.uniform() * 2.0 + 2.0).floor(),
            })
            .collect();
        let gy: Vec<f64> = (0..g.planes * ho * wo).map(|i| i as f64 + 1.0).collect();
        let y = forward(&x, &g);
        let gx = backward(&gy, Some(&x), &g);
        let mut want_gx = vec![0.0; x.len()];
        for n in 0..g.planes {
            let plane = &x[n * h * w..(n + 1) * h * w];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (rows, cols) = (2 * oh..2 * oh + 2, 2 * ow..2 * ow + 2);
                    let i = argmax(plane, w, &rows, &cols).unwrap();
                    let o = (n * ho + oh) * wo + ow;
                    assert!(y[o] == plane[i] || (y[o].is_nan() && plane[i].is_nan()), "{} vs {}", y[o], plane[i]);
                    want_gx[n * h * w + i] += gy[o];
                }
            }
        }
        assert_eq!(gx, want_gx);
    }

    /// Padded, overlapping windows against a direct reading of the
    /// definition: max (first NaN, else first maximum; padding never wins)
    /// and average (padding counted in the divisor).
    #[test]
    fn padded_windows_match_the_definition() {
        let mut rng = Rng::new(11);
        let x: Vec<f64> = rng.grid(2 * 5 * 6);
        for kind in [PoolKind::Max, PoolKind::Avg] {
            let g = PoolGeometry { kind, planes: 2, input: [5, 6], kernel: [3, 2], stride: [2, 1], padding: [1, 1] };
            let [ho, wo] = g.output();
            assert_eq!([ho, wo], [3, 7]);
            let y = forward(&x, &g);
            for n in 0..2 {
                for oh in 0..ho {
                    for ow in 0..wo {
                        let cells: Vec<f64> = (0..3)
                            .flat_map(|i| (0..2).map(move |j| ((oh * 2 + i) as isize - 1, (ow + j) as isize - 1)))
                            .filter(|&(r, c)| (0..5).contains(&r) && (0..6).contains(&c))
                            .map(|(r, c)| x[n * 30 + r as usize * 6 + c as usize])
                            .collect();
                        let want = match kind {
                            PoolKind::Max => cells.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                            PoolKind::Avg => cells.iter().sum::<f64>() / 6.0,
                        };
                        assert_eq!(y[(n * ho + oh) * wo + ow], want);
                    }
                }
            }
        }
    }
}
