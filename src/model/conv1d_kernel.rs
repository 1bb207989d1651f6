//! A direct 1-D convolution for the CPU, as Candle custom ops: forward, and the
//! two backward products (input gradient, weight gradient). Nothing is
//! allocated but the outputs and small per-thread scratch rows.
//!
//! Stride 1 (the common case, any padding, dilation and groups) has blocked
//! kernels: the input rows are copied once into zero-padded scratch rows, so
//! the hot loops have no bounds to test, and each output tile keeps several
//! output channels × positions in registers, so every loaded value feeds many
//! multiply-adds. The input gradient is the forward kernel run on the output
//! gradient with the kernels transposed and flipped. The hot loops are
//! compiled for AVX-512, AVX2+FMA and the baseline, picked at run time. Other
//! strides take plain loops over contiguous rows.
//!
//! Determinism: every output value is computed by one thread in a fixed order;
//! the weight gradient sums per-chunk partials over a fixed cut of the batch
//! (independent of the thread count) in chunk order.
//!
//! Same semantics as `ops::conv` (PyTorch's cross-correlation with padding,
//! stride, dilation and groups); tested against the numpy fixtures.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug)]
pub struct Conv1dSpec {
    pub stride: usize,
    pub pad_left: usize,
    pub pad_right: usize,
    pub dilation: usize,
    pub groups: usize,
}

struct Dims {
    b: usize,
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    lout: usize,
}

impl Conv1dSpec {
    fn out_len(&self, l: usize, k: usize) -> usize {
        (l + self.pad_left + self.pad_right - self.dilation * (k - 1) - 1) / self.stride + 1
    }

    /// For tap j: the output positions t whose input index t·s + j·d − pad is
    /// inside the signal, as a half-open range.
    fn valid(&self, j: usize, l: usize, lout: usize) -> (usize, usize) {
        let off = (j * self.dilation) as isize - self.pad_left as isize;
        let s = self.stride as isize;
        // smallest t with t·s + off ≥ 0, largest t with t·s + off ≤ l − 1
        let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
        let hi = if (l as isize - 1 - off) < 0 { -1 } else { (l as isize - 1 - off) / s };
        let hi = (hi + 1).min(lout as isize);
        (lo as usize, (hi.max(lo)) as usize)
    }
}

use super::contiguous_slice as slice;

trait Num: candle_core::WithDType + Copy + Send + Sync + std::ops::Mul<Output = Self> + std::ops::AddAssign + Default {
    /// The blocked stride-1 kernels, where this type has them (f32 with
    /// AVX-512 or AVX2+FMA); `None` means: use the plain loops.
    fn blocked_forward(_x: &[Self], _w: &[Self], _d: &Dims, _spec: &Conv1dSpec) -> Option<Vec<Self>> {
        None
    }
    fn blocked_grad_input(_gy: &[Self], _w: &[Self], _d: &Dims, _spec: &Conv1dSpec) -> Option<Vec<Self>> {
        None
    }
    fn blocked_grad_weight(_gy: &[Self], _x: &[Self], _d: &Dims, _spec: &Conv1dSpec) -> Option<Vec<Self>> {
        None
    }
}
impl Num for f64 {}
impl Num for f32 {
    fn blocked_forward(x: &[f32], w: &[f32], d: &Dims, spec: &Conv1dSpec) -> Option<Vec<f32>> {
        let (p, isa) = (plan(d, spec)?, isa()?);
        Some(forward_blocked(x, w, d.b, &p, isa))
    }
    fn blocked_grad_input(gy: &[f32], w: &[f32], d: &Dims, spec: &Conv1dSpec) -> Option<Vec<f32>> {
        let (p, isa) = (plan(d, spec)?, isa()?);
        Some(grad_input_blocked(gy, w, d.b, &p, isa))
    }
    fn blocked_grad_weight(gy: &[f32], x: &[f32], d: &Dims, spec: &Conv1dSpec) -> Option<Vec<f32>> {
        let (p, isa) = (plan(d, spec)?, isa()?);
        Some(grad_weight_blocked(gy, x, d.b, &p, isa))
    }
}

/// The vector instruction set the blocked kernels run with, detected once;
/// `None` without one (then the plain loops run).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

fn isa() -> Option<Isa> {
    static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    })
}

/// A stride-1 convolution as the blocked kernels see it: `x [B, cin, l]`
/// zero-padded by `pad_left` (and by zeros on the right as far as needed),
/// `w [cout, cin/groups, k]`, output `[B, cout, lout]`.
#[derive(Clone, Copy)]
struct Plan {
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    lout: usize,
    pad_left: usize,
    dilation: usize,
    groups: usize,
}

fn plan(d: &Dims, spec: &Conv1dSpec) -> Option<Plan> {
    // The input gradient mirrors the padding, which needs pad_left ≤ (k−1)·d.
    (spec.stride == 1 && spec.pad_left <= (d.k - 1) * spec.dilation).then_some(Plan {
        cin: d.cin,
        l: d.l,
        cout: d.cout,
        k: d.k,
        lout: d.lout,
        pad_left: spec.pad_left,
        dilation: spec.dilation,
        groups: spec.groups,
    })
}

/// Output channels per register tile of the forward kernel.
const OB: usize = 8;
/// Widest tile, in positions: scratch rows are padded to a multiple of it.
const MAX_WIDTH: usize = 128;

impl Plan {
    /// Length of a padded scratch row: whole tiles of up to `MAX_WIDTH`
    /// outputs read inside it, and it holds the signal from `pad_left` on.
    fn row_len(&self) -> usize {
        self.lout.div_ceil(MAX_WIDTH) * MAX_WIDTH + (self.k - 1) * self.dilation
    }

    /// The weights regrouped for the tiles: for each group and block of output
    /// channels (`OB` at a time, then one by one), `[ii][j][o in block]`, so a
    /// tile reads its block's weights for one tap as one contiguous run.
    fn pack_weights(&self, w: &[f32]) -> Vec<f32> {
        let (cin_g, cout_g) = (self.cin / self.groups, self.cout / self.groups);
        let mut out = Vec::with_capacity(w.len());
        for g in 0..self.groups {
            for (o0, n) in blocks(cout_g) {
                for ii in 0..cin_g {
                    for j in 0..self.k {
                        for o in 0..n {
                            out.push(w[((g * cout_g + o0 + o) * cin_g + ii) * self.k + j]);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Copies `rows` rows of `src` (each `len` long) into `dst` as padded rows of
/// `row_len`: zeros, the signal from `pad_left`, zeros.
fn pad_rows(src: &[f32], rows: usize, len: usize, pad_left: usize, row_len: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(rows * row_len, 0.0);
    let n = len.min(row_len - pad_left);
    for r in 0..rows {
        dst[r * row_len + pad_left..][..n].copy_from_slice(&src[r * len..][..n]);
    }
}

/// Output-channel blocks: `(first, size)`, `OB` at a time, the rest singly.
fn blocks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / OB;
    (0..full).map(|b| (b * OB, OB)).chain((full * OB..n).map(|o| (o, 1)))
}

/// The blocked kernels for one vector instruction set, written with its
/// intrinsics so that the accumulators stay in registers (left to itself the
/// compiler vectorised these loops across channels, with gathers).
macro_rules! simd_kernels {
    ($name:ident, $feat:literal, $lanes:literal, $v:ty, $zero:ident, $set1:ident, $loadu:ident, $storeu:ident, $fmadd:ident,
     forward: ($nv:literal, $nv1:literal), weight: ($ow:literal, $jw:literal)) => {
        #[cfg(target_arch = "x86_64")]
        mod $name {
            use super::{OB, Plan, blocks, pad_rows};
            #[allow(clippy::wildcard_imports)]
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;

            #[inline]
            #[target_feature(enable = $feat)]
            fn load(s: &[f32]) -> $v {
                let s = &s[..LANES];
                // SAFETY: `s` holds LANES floats (checked just above); unaligned loads are allowed.
                unsafe { $loadu(s.as_ptr()) }
            }

            /// One tile: `O` output channels × `NV` vectors of positions from
            /// `t0`, summed over the group's rows and taps.
            #[inline]
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            fn tile<const O: usize, const NV: usize>(
                rows: &[f32],
                row_len: usize,
                cin_g: usize,
                k: usize,
                dilation: usize,
                t0: usize,
                wb: &[f32],
            ) -> [[$v; NV]; O] {
                let mut acc = [[$zero(); NV]; O];
                for ii in 0..cin_g {
                    let row = &rows[ii * row_len..(ii + 1) * row_len];
                    let taps = &wb[ii * k * O..(ii + 1) * k * O];
                    for j in 0..k {
                        let xs = &row[t0 + j * dilation..][..NV * LANES];
                        let mut xv = [$zero(); NV];
                        for n in 0..NV {
                            xv[n] = load(&xs[n * LANES..]);
                        }
                        let ws = &taps[j * O..][..O];
                        for o in 0..O {
                            let wv = $set1(ws[o]);
                            for n in 0..NV {
                                acc[o][n] = $fmadd(wv, xv[n], acc[o][n]);
                            }
                        }
                    }
                }
                acc
            }

            #[inline]
            #[target_feature(enable = $feat)]
            fn store<const NV: usize>(acc: &[$v; NV], out: &mut [f32]) {
                // `out` may end inside the last vector (the row's end).
                for (n, part) in out.chunks_mut(LANES).enumerate() {
                    let mut buf = [0f32; LANES];
                    // SAFETY: `buf` holds LANES floats.
                    unsafe { $storeu(buf.as_mut_ptr(), acc[n]) };
                    part.copy_from_slice(&buf[..part.len()]);
                }
            }

            /// The forward pass of one batch item: `x [cin, l]` → `y [cout, lout]`.
            #[target_feature(enable = $feat)]
            pub(super) fn forward_item(p: &Plan, x: &[f32], wt: &[f32], y: &mut [f32], xp: &mut Vec<f32>) {
                const W: usize = $nv * LANES;
                const W1: usize = $nv1 * LANES;
                let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
                let row_len = p.row_len();
                pad_rows(x, p.cin, p.l, p.pad_left, row_len, xp);
                let mut woff = 0;
                for g in 0..p.groups {
                    let rows = &xp[g * cin_g * row_len..(g + 1) * cin_g * row_len];
                    for (o0, n) in blocks(cout_g) {
                        let wb = &wt[woff..woff + n * cin_g * p.k];
                        woff += n * cin_g * p.k;
                        let first = g * cout_g + o0;
                        if n == OB {
                            for t0 in (0..p.lout).step_by(W) {
                                let acc = tile::<OB, $nv>(rows, row_len, cin_g, p.k, p.dilation, t0, wb);
                                let m = W.min(p.lout - t0);
                                for (o, a) in acc.iter().enumerate() {
                                    store(a, &mut y[(first + o) * p.lout + t0..][..m]);
                                }
                            }
                        } else {
                            for t0 in (0..p.lout).step_by(W1) {
                                let acc = tile::<1, $nv1>(rows, row_len, cin_g, p.k, p.dilation, t0, wb);
                                let m = W1.min(p.lout - t0);
                                store(&acc[0], &mut y[first * p.lout + t0..][..m]);
                            }
                        }
                    }
                }
            }

            /// One tile of the weight gradient: `O` output channels × `J`
            /// columns (input row, tap), each a vector of partial sums over
            /// positions; returns the sums (lanes added in a fixed order).
            #[inline]
            #[target_feature(enable = $feat)]
            fn gw_tile<const O: usize, const J: usize>(gyp: &[f32], gy_len: usize, xp: &[f32], cols: &[usize; J]) -> [[f32; J]; O] {
                let mut acc = [[$zero(); J]; O];
                let gs_rows: [&[f32]; O] = std::array::from_fn(|o| &gyp[o * gy_len..(o + 1) * gy_len]);
                let xs_rows: [&[f32]; J] = std::array::from_fn(|c| &xp[cols[c]..cols[c] + gy_len]);
                for t0 in (0..gy_len).step_by(LANES) {
                    let mut gs = [$zero(); O];
                    for o in 0..O {
                        gs[o] = load(&gs_rows[o][t0..]);
                    }
                    for c in 0..J {
                        let xv = load(&xs_rows[c][t0..]);
                        for o in 0..O {
                            acc[o][c] = $fmadd(gs[o], xv, acc[o][c]);
                        }
                    }
                }
                let mut out = [[0f32; J]; O];
                for o in 0..O {
                    for c in 0..J {
                        let mut lanes = [0f32; LANES];
                        // SAFETY: `lanes` holds LANES floats.
                        unsafe { $storeu(lanes.as_mut_ptr(), acc[o][c]) };
                        out[o][c] = lanes.iter().sum();
                    }
                }
                out
            }

            /// Adds one batch item's weight gradient into `gw [cout, cin/groups, k]`.
            #[target_feature(enable = $feat)]
            pub(super) fn grad_weight_item(p: &Plan, gy: &[f32], x: &[f32], gw: &mut [f32], xp: &mut Vec<f32>, gyp: &mut Vec<f32>) {
                const OW: usize = $ow;
                const JW: usize = $jw;
                let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
                let gy_len = p.lout.div_ceil(LANES) * LANES;
                let row_len = p.row_len();
                pad_rows(x, p.cin, p.l, p.pad_left, row_len, xp);
                pad_rows(gy, p.cout, p.lout, 0, gy_len, gyp);
                let ncols = cin_g * p.k;
                for g in 0..p.groups {
                    // Column c = (ii, j) starts at row ii's offset plus j taps.
                    let col = |c: usize| (g * cin_g + c / p.k) * row_len + (c % p.k) * p.dilation;
                    let mut o = 0;
                    while o < cout_g {
                        let n = if cout_g - o >= OW { OW } else { 1 };
                        let rows = &gyp[(g * cout_g + o) * gy_len..(g * cout_g + o + n) * gy_len];
                        let out = &mut gw[(g * cout_g + o) * ncols..(g * cout_g + o + n) * ncols];
                        let mut c = 0;
                        while c < ncols {
                            if ncols - c >= JW {
                                let cols: [usize; JW] = std::array::from_fn(|q| col(c + q));
                                if n == OW {
                                    let s = gw_tile::<OW, JW>(rows, gy_len, xp, &cols);
                                    for (oo, r) in s.iter().enumerate() {
                                        for (cc, v) in r.iter().enumerate() {
                                            out[oo * ncols + c + cc] += *v;
                                        }
                                    }
                                } else {
                                    let s = gw_tile::<1, JW>(rows, gy_len, xp, &cols);
                                    for (cc, v) in s[0].iter().enumerate() {
                                        out[c + cc] += *v;
                                    }
                                }
                                c += JW;
                            } else {
                                for oo in 0..n {
                                    let row = &rows[oo * gy_len..(oo + 1) * gy_len];
                                    out[oo * ncols + c] += gw_tile::<1, 1>(row, gy_len, xp, &[col(c)])[0][0];
                                }
                                c += 1;
                            }
                        }
                        o += n;
                    }
                }
            }
        }
    };
}

simd_kernels!(avx512, "avx512f,avx2,fma", 16, __m512, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
    forward: (2, 8), weight: (4, 5));
simd_kernels!(avx2, "avx2,fma", 8, __m256, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
    forward: (1, 8), weight: (2, 5));

fn forward_item(isa: Isa, p: &Plan, x: &[f32], wt: &[f32], y: &mut [f32], xp: &mut Vec<f32>) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found AVX-512F and FMA on this CPU at run time.
        Isa::Avx512 => unsafe { avx512::forward_item(p, x, wt, y, xp) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found AVX2 and FMA on this CPU at run time.
        Isa::Avx2 => unsafe { avx2::forward_item(p, x, wt, y, xp) },
    }
}

/// Stride-1 forward over the batch, in parallel over batch items.
fn forward_blocked(x: &[f32], w: &[f32], b: usize, p: &Plan, isa: Isa) -> Vec<f32> {
    let wt = p.pack_weights(w);
    let mut y = vec![0f32; b * p.cout * p.lout];
    y.par_chunks_mut(p.cout * p.lout)
        .enumerate()
        .for_each_init(Vec::new, |xp, (bi, yb)| forward_item(isa, p, &x[bi * p.cin * p.l..(bi + 1) * p.cin * p.l], &wt, yb, xp));
    y
}

/// Stride-1 weight gradient: fixed chunks of the batch in parallel, each
/// summing its items into a partial; the partials are added in chunk order.
fn grad_weight_blocked(gy: &[f32], x: &[f32], b: usize, p: &Plan, isa: Isa) -> Vec<f32> {
    /// The batch is cut into this many chunks whatever the thread count, so
    /// the order of the sum (and so the result) does not depend on it.
    const CHUNKS: usize = 16;
    let n = p.cout * (p.cin / p.groups) * p.k;
    let per = b.div_ceil(CHUNKS).max(1);
    let starts: Vec<usize> = (0..b).step_by(per).collect();
    let partials: Vec<Vec<f32>> = starts
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(xp, gyp), &start| {
                let mut part = vec![0f32; n];
                for bi in start..(start + per).min(b) {
                    let gyb = &gy[bi * p.cout * p.lout..(bi + 1) * p.cout * p.lout];
                    let xb = &x[bi * p.cin * p.l..(bi + 1) * p.cin * p.l];
                    match isa {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `isa()` found AVX-512F and FMA on this CPU at run time.
                        Isa::Avx512 => unsafe { avx512::grad_weight_item(p, gyb, xb, &mut part, xp, gyp) },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `isa()` found AVX2 and FMA on this CPU at run time.
                        Isa::Avx2 => unsafe { avx2::grad_weight_item(p, gyb, xb, &mut part, xp, gyp) },
                    }
                }
                part
            },
        )
        .collect();
    let mut gw = vec![0f32; n];
    for part in &partials {
        for (a, v) in gw.iter_mut().zip(part) {
            *a += *v;
        }
    }
    gw
}

/// Stride-1 input gradient: the forward kernel on `gy` with each kernel
/// transposed (`[cin, cout/groups, k]`) and flipped, and the padding mirrored,
/// so `gx[i, s] = Σ_o Σ_j w[o, i, j] · gy[o, s + pad_left − j·d]`.
fn grad_input_blocked(gy: &[f32], w: &[f32], b: usize, p: &Plan, isa: Isa) -> Vec<f32> {
    let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
    let mut wf = vec![0f32; w.len()];
    for g in 0..p.groups {
        for ii in 0..cin_g {
            for oo in 0..cout_g {
                for j in 0..p.k {
                    wf[((g * cin_g + ii) * cout_g + oo) * p.k + (p.k - 1 - j)] = w[((g * cout_g + oo) * cin_g + ii) * p.k + j];
                }
            }
        }
    }
    let flipped = Plan {
        cin: p.cout,
        l: p.lout,
        cout: p.cin,
        k: p.k,
        lout: p.l,
        pad_left: (p.k - 1) * p.dilation - p.pad_left,
        dilation: p.dilation,
        groups: p.groups,
    };
    forward_blocked(gy, &wf, b, &flipped, isa)
}

fn forward<T: Num>(x: &[T], w: &[T], d: &Dims, spec: &Conv1dSpec) -> Vec<T> {
    if let Some(y) = T::blocked_forward(x, w, d, spec) {
        return y;
    }
    let (cin_g, cout_g) = (d.cin / spec.groups, d.cout / spec.groups);
    let mut y = vec![T::default(); d.b * d.cout * d.lout];
    y.par_chunks_mut(d.cout * d.lout).enumerate().for_each(|(b, yb)| {
        for o in 0..d.cout {
            let g = o / cout_g;
            let row = &mut yb[o * d.lout..(o + 1) * d.lout];
            for ii in 0..cin_g {
                let i = g * cin_g + ii;
                let xr = &x[(b * d.cin + i) * d.l..(b * d.cin + i + 1) * d.l];
                for j in 0..d.k {
                    let wv = w[(o * cin_g + ii) * d.k + j];
                    let (lo, hi) = spec.valid(j, d.l, d.lout);
                    let off = j * spec.dilation;
                    if spec.stride == 1 {
                        let start = lo + off - spec.pad_left;
                        for (yv, xv) in row[lo..hi].iter_mut().zip(&xr[start..start + (hi - lo)]) {
                            *yv += wv * *xv;
                        }
                    } else {
                        for t in lo..hi {
                            row[t] += wv * xr[t * spec.stride + off - spec.pad_left];
                        }
                    }
                }
            }
        }
    });
    y
}

fn grad_input<T: Num>(gy: &[T], w: &[T], d: &Dims, spec: &Conv1dSpec) -> Vec<T> {
    if let Some(gx) = T::blocked_grad_input(gy, w, d, spec) {
        return gx;
    }
    let (cin_g, cout_g) = (d.cin / spec.groups, d.cout / spec.groups);
    let mut gx = vec![T::default(); d.b * d.cin * d.l];
    gx.par_chunks_mut(d.cin * d.l).enumerate().for_each(|(b, gxb)| {
        for i in 0..d.cin {
            let g = i / cin_g;
            let ii = i % cin_g;
            let row = &mut gxb[i * d.l..(i + 1) * d.l];
            for oo in 0..cout_g {
                let o = g * cout_g + oo;
                let gr = &gy[(b * d.cout + o) * d.lout..(b * d.cout + o + 1) * d.lout];
                for j in 0..d.k {
                    let wv = w[(o * cin_g + ii) * d.k + j];
                    let (lo, hi) = spec.valid(j, d.l, d.lout);
                    let off = j * spec.dilation;
                    if spec.stride == 1 {
                        let start = lo + off - spec.pad_left;
                        for (xv, gv) in row[start..start + (hi - lo)].iter_mut().zip(&gr[lo..hi]) {
                            *xv += wv * *gv;
                        }
                    } else {
                        for t in lo..hi {
                            row[t * spec.stride + off - spec.pad_left] += wv * gr[t];
                        }
                    }
                }
            }
        }
    });
    gx
}

fn grad_weight<T: Num>(gy: &[T], x: &[T], d: &Dims, spec: &Conv1dSpec) -> Vec<T> {
    if let Some(gw) = T::blocked_grad_weight(gy, x, d, spec) {
        return gw;
    }
    let (cin_g, cout_g) = (d.cin / spec.groups, d.cout / spec.groups);
    let mut gw = vec![T::default(); d.cout * cin_g * d.k];
    gw.par_chunks_mut(cin_g * d.k).enumerate().for_each(|(o, gwo)| {
        let g = o / cout_g;
        for ii in 0..cin_g {
            let i = g * cin_g + ii;
            for j in 0..d.k {
                let (lo, hi) = spec.valid(j, d.l, d.lout);
                let off = j * spec.dilation;
                // Eight partial sums, so the reduction vectorises.
                let mut acc = [T::default(); 8];
                let mut tail = T::default();
                for b in 0..d.b {
                    let gr = &gy[(b * d.cout + o) * d.lout..(b * d.cout + o + 1) * d.lout];
                    let xr = &x[(b * d.cin + i) * d.l..(b * d.cin + i + 1) * d.l];
                    if spec.stride == 1 {
                        let start = lo + off - spec.pad_left;
                        let gs = &gr[lo..hi];
                        let xs = &xr[start..start + (hi - lo)];
                        let mut gc = gs.chunks_exact(8);
                        let mut xc = xs.chunks_exact(8);
                        for (ga, xa) in (&mut gc).zip(&mut xc) {
                            for q in 0..8 {
                                acc[q] += ga[q] * xa[q];
                            }
                        }
                        for (gv, xv) in gc.remainder().iter().zip(xc.remainder()) {
                            tail += *gv * *xv;
                        }
                    } else {
                        for t in lo..hi {
                            tail += gr[t] * xr[t * spec.stride + off - spec.pad_left];
                        }
                    }
                }
                let mut sum = tail;
                for a in acc {
                    sum += a;
                }
                gwo[ii * d.k + j] = sum;
            }
        }
    });
    gw
}

/// `conv1d(x, w)`: x `[B, Cin, L]`, w `[Cout, Cin/groups, K]`.
struct Forward(Conv1dSpec);
/// `(grad_y, w) ↦ grad_x`; carries the input length.
struct GradInput(Conv1dSpec, usize);
/// `(grad_y, x) ↦ grad_w`; carries the kernel size.
struct GradWeight(Conv1dSpec, usize);

fn dims_from(x: &Layout, w: &Layout, spec: &Conv1dSpec) -> Result<Dims> {
    let (b, cin, l) = x.shape().dims3()?;
    let (cout, _, k) = w.shape().dims3()?;
    Ok(Dims { b, cin, l, cout, k, lout: spec.out_len(l, k) })
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "lpn-conv1d"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = dims_from(l1, l2, &self.0)?;
        let out = dispatch!(s1, l1, s2, l2, |x, w| forward(x, w, &d, &self.0));
        Ok((out, Shape::from((d.b, d.cout, d.lout))))
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let gx = grad.apply_op2_no_bwd(w, &GradInput(self.0, x.dim(2)?))?;
        let gw = grad.apply_op2_no_bwd(x, &GradWeight(self.0, w.dim(2)?))?;
        Ok((Some(gx), Some(gw)))
    }
}

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "lpn-conv1d-grad-input"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cout, lout) = l1.shape().dims3()?;
        let (_, cin_g, k) = l2.shape().dims3()?;
        let d = Dims { b, cin: cin_g * self.0.groups, l: self.1, cout, k, lout };
        let out = dispatch!(s1, l1, s2, l2, |gy, w| grad_input(gy, w, &d, &self.0));
        Ok((out, Shape::from((d.b, d.cin, d.l))))
    }
}

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "lpn-conv1d-grad-weight"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, cout, lout) = l1.shape().dims3()?;
        let (_, cin, l) = l2.shape().dims3()?;
        let d = Dims { b, cin, l, cout, k: self.1, lout };
        let out = dispatch!(s1, l1, s2, l2, |gy, x| grad_weight(gy, x, &d, &self.0));
        Ok((out, Shape::from((d.cout, d.cin / self.0.groups, d.k))))
    }
}

/// `conv1d(x, w) + bias` (per output channel) as one op: the bias is added
/// to the output in place, and its gradient (the output gradient summed over
/// batch and positions, in a fixed order) costs one pass, where a broadcast
/// add would cost a new tensor forward and a strided reduction backward.
struct ForwardBias(Conv1dSpec);
/// `grad_y [B, C, L] ↦ Σ_b Σ_t grad_y[b, :, t]`, the bias gradient.
struct BiasGrad;

fn add_bias<T: Num>(y: &mut [T], bias: &[T], lout: usize) {
    for (row, &b) in y.chunks_mut(lout).zip(bias.iter().cycle()) {
        for v in row {
            *v += b;
        }
    }
}

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
        let d = dims_from(l1, l2, &self.0)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let mut y = forward(slice(x, l1)?, slice(w, l2)?, &d, &self.0);
                add_bias(&mut y, slice(b, l3)?, d.lout);
                CpuStorage::F32(y)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let mut y = forward(slice(x, l1)?, slice(w, l2)?, &d, &self.0);
                add_bias(&mut y, slice(b, l3)?, d.lout);
                CpuStorage::F64(y)
            }
            _ => candle_core::bail!("conv1d kernel supports f32 and f64"),
        };
        Ok((out, Shape::from((d.b, d.cout, d.lout))))
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
        let gx = grad.apply_op2_no_bwd(w, &GradInput(self.0, x.dim(2)?))?;
        let gw = grad.apply_op2_no_bwd(x, &GradWeight(self.0, w.dim(2)?))?;
        let gb = grad.apply_op1_no_bwd(&BiasGrad)?;
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}

fn bias_grad<T: Num>(gy: &[T], c: usize, l: usize) -> Vec<T> {
    let mut gb = vec![T::default(); c];
    for (r, row) in gy.chunks(l).enumerate() {
        let mut s = T::default();
        for &v in row {
            s += v;
        }
        gb[r % c] += s;
    }
    gb
}

impl CustomOp1 for BiasGrad {
    fn name(&self) -> &'static str {
        "lpn-conv1d-bias-grad"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, len) = l.shape().dims3()?;
        let out = match s {
            CpuStorage::F32(g) => CpuStorage::F32(bias_grad(slice(g, l)?, c, len)),
            CpuStorage::F64(g) => CpuStorage::F64(bias_grad(slice(g, l)?, c, len)),
            _ => candle_core::bail!("conv1d kernel supports f32 and f64"),
        };
        Ok((out, Shape::from(c)))
    }
}

/// The 1-D convolution with its backward pass, and an optional bias `[Cout]`
/// added in the same op. Shapes that do not fit are errors, never panics.
pub fn conv1d_bias(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, spec: Conv1dSpec) -> Result<Tensor> {
    match bias {
        None => conv1d(x, w, spec),
        Some(b) => {
            check_fits(x, w, spec)?;
            if b.dims() != [w.dim(0)?] {
                candle_core::bail!("conv1d: bias {:?} does not fit weight {:?}", b.dims(), w.dims());
            }
            x.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, ForwardBias(spec))
        }
    }
}

fn check_fits(x: &Tensor, w: &Tensor, spec: Conv1dSpec) -> Result<()> {
    let (_, cin, l) = x.dims3()?;
    let (cout, cin_g, k) = w.dims3()?;
    let fits = spec.stride > 0
        && spec.dilation > 0
        && spec.groups > 0
        && k > 0
        && cin == cin_g * spec.groups
        && cout % spec.groups == 0
        && l + spec.pad_left + spec.pad_right > spec.dilation * (k - 1);
    if !fits {
        candle_core::bail!("conv1d: input {:?} and weight {:?} do not fit {spec:?}", x.dims(), w.dims());
    }
    Ok(())
}

/// The 1-D convolution with its backward pass (bias not included). Shapes that
/// do not fit are errors, never panics.
pub fn conv1d(x: &Tensor, w: &Tensor, spec: Conv1dSpec) -> Result<Tensor> {
    check_fits(x, w, spec)?;
    x.contiguous()?.apply_op2(&w.contiguous()?, Forward(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_shapes_are_errors() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::zeros((1, 2, 4), candle_core::DType::F32, &dev).unwrap();
        let spec = Conv1dSpec { stride: 1, pad_left: 0, pad_right: 0, dilation: 1, groups: 1 };
        let long = Tensor::zeros((1, 2, 9), candle_core::DType::F32, &dev).unwrap();
        assert!(conv1d(&x, &long, spec).is_err());
        let wrong_channels = Tensor::zeros((1, 3, 3), candle_core::DType::F32, &dev).unwrap();
        assert!(conv1d(&x, &wrong_channels, spec).is_err());
        let fine = Tensor::zeros((1, 2, 3), candle_core::DType::F32, &dev).unwrap();
        assert_eq!(conv1d(&x, &fine, spec).unwrap().dims(), &[1, 1, 2]);
    }
}
