//! The stride-1 blocked 1-D convolution (see `crate::conv1d`) for AVX-512
//! and AVX2+FMA: the driver (padded scratch rows, packed weights, the batch
//! in parallel), and the tile kernels, one module per instruction set from
//! one template, written with intrinsics so that the accumulators stay in
//! registers (left to itself the compiler vectorised these loops across
//! channels, with gathers). The tile kernels' entry points are safe
//! functions compiled for their instruction set: calling one is sound only
//! on a CPU that has it, which the caller states.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::{ConvGeometry, Isa};

/// A stride-1 convolution as the blocked kernels see it: `x [B, cin, l]`
/// zero-padded by `pad_left` (and by zeros on the right as far as needed),
/// `w [cout, cin/groups, k]`, output `[B, cout, lout]`.
#[derive(Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) cin: usize,
    pub(crate) l: usize,
    pub(crate) cout: usize,
    pub(crate) k: usize,
    pub(crate) lout: usize,
    pub(crate) pad_left: usize,
    pub(crate) dilation: usize,
    pub(crate) groups: usize,
}

/// The blocked kernels' view of `g`, where they apply: stride 1, and the
/// input gradient mirrors the padding, which needs pad_left ≤ (k−1)·d.
fn plan(g: &ConvGeometry<1>) -> Option<Plan> {
    let (k, dilation, pad_left) = (g.kernel[0], g.dilation[0], g.padding[0].0);
    (g.stride[0] == 1 && pad_left <= (k - 1) * dilation).then_some(Plan {
        cin: g.in_channels,
        l: g.input[0],
        cout: g.out_channels,
        k,
        lout: g.out_len(0),
        pad_left,
        dilation,
        groups: g.groups,
    })
}

/// Output channels per register tile of the forward kernel.
pub(crate) const OB: usize = 8;
/// Widest tile, in positions: scratch rows are padded to a multiple of it.
const MAX_WIDTH: usize = 128;

impl Plan {
    /// Length of a padded scratch row: a tile of up to `MAX_WIDTH` outputs
    /// starting at any output reads inside it, and it holds the signal from
    /// `pad_left` on.
    pub(crate) fn row_len(&self) -> usize {
        self.lout + MAX_WIDTH + (self.k - 1) * self.dilation
    }

    /// The weights regrouped for the tiles: for each group and block of output
    /// channels (`OB` at a time, then one by one), `[ii][j][o in block]`, so a
    /// tile reads its block's weights for one tap as one contiguous run.
    /// `w` is `[cout, cin/groups, k]`, or with `flipped` the forward pass's
    /// weights that this plan's input gradient runs on: `[cin, cout/groups,
    /// k]` in this plan's terms, each kernel read backwards. Blocks in
    /// parallel (one thread took 2 % of the FCN's step).
    fn pack_weights(&self, w: &[f32], flipped: bool) -> Vec<f32> {
        let (cin_g, cout_g, k) = (self.cin / self.groups, self.cout / self.groups, self.k);
        let tap = |g: usize, o: usize, ii: usize, j: usize| {
            if flipped { w[((g * cin_g + ii) * cout_g + o) * k + (k - 1 - j)] } else { w[((g * cout_g + o) * cin_g + ii) * k + j] }
        };
        let mut out = vec![0f32; self.cout * cin_g * k];
        let mut runs = Vec::new();
        let mut rest = out.as_mut_slice();
        for g in 0..self.groups {
            for (o0, n) in blocks(cout_g) {
                let (run, tail) = std::mem::take(&mut rest).split_at_mut(n * cin_g * k);
                runs.push((g, o0, n, run));
                rest = tail;
            }
        }
        runs.into_par_iter().for_each(|(g, o0, n, run)| {
            for ii in 0..cin_g {
                for j in 0..k {
                    for o in 0..n {
                        run[(ii * k + j) * n + o] = tap(g, o0 + o, ii, j);
                    }
                }
            }
        });
        out
    }
}

/// Copies `rows` rows of `src` (each `len` long) into `dst` as padded rows of
/// `row_len`: zeros, the signal from `pad_left`, zeros.
pub(crate) fn pad_rows(src: &[f32], rows: usize, len: usize, pad_left: usize, row_len: usize, dst: &mut Vec<f32>) {
    // Each row is written whole below, so a reused buffer is not zeroed
    // first (that wrote every row twice).
    dst.resize(rows * row_len, 0.0);
    let n = len.min(row_len - pad_left);
    for (r, row) in dst.chunks_exact_mut(row_len).enumerate() {
        let (left, rest) = row.split_at_mut(pad_left);
        let (signal, right) = rest.split_at_mut(n);
        left.fill(0.0);
        signal.copy_from_slice(&src[r * len..][..n]);
        right.fill(0.0);
    }
}

/// What the narrow weight gradient's tiles read for one block of output
/// rows: the rows of the (padded) output gradient, `gy_len` apart, the padded
/// input `xp`, where column `c` (input row, tap) starts in it, and the
/// columns per output row.
struct GwBlock<'a, F> {
    rows: &'a [f32],
    gy_len: usize,
    xp: &'a [f32],
    col: &'a F,
    ncols: usize,
}

/// Output-channel blocks: `(first, size)`, `OB` at a time, the rest singly.
pub(crate) fn blocks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / OB;
    (0..full).map(|b| (b * OB, OB)).chain((full * OB..n).map(|o| (o, 1)))
}

/// A vector path of the blocked kernels.
#[derive(Clone, Copy)]
enum Simd {
    Avx512,
    Avx2,
}

/// The blocked kernels' path for `isa` (from `isa::current`, so it runs here).
fn simd(isa: Isa) -> Option<Simd> {
    match isa {
        Isa::Portable => None,
        Isa::Avx2 => Some(Simd::Avx2),
        Isa::Avx512 => Some(Simd::Avx512),
    }
}

fn forward_item(simd: Simd, p: &Plan, (x, wt, bias): (&[f32], &[f32], Option<&[f32]>), y: &mut [MaybeUninit<f32>], xp: &mut Vec<f32>) {
    match simd {
        // SAFETY: `Simd::Avx512` comes from `isa::current()`, which returns
        // AVX-512 only where the CPU has AVX-512F, AVX2 and FMA (run-time check).
        Simd::Avx512 => unsafe { avx512::forward_item(p, (x, wt, bias), y, xp) },
        // SAFETY: `Simd::Avx2` comes from `isa::current()`, which returns AVX2
        // only where the CPU has AVX2 and FMA (run-time check).
        Simd::Avx2 => unsafe { avx2::forward_item(p, (x, wt, bias), y, xp) },
    }
}

fn grad_weight_wide_task(simd: Simd, p: &Plan, t: &Transposed, slab: &mut [f32], at: (usize, usize)) {
    match simd {
        // SAFETY: as in `forward_item`: the CPU has AVX-512F, AVX2 and FMA.
        Simd::Avx512 => unsafe { avx512::grad_weight_wide_task(p, t, slab, at) },
        // SAFETY: as in `forward_item`: the CPU has AVX2 and FMA.
        Simd::Avx2 => unsafe { avx2::grad_weight_wide_task(p, t, slab, at) },
    }
}

impl Simd {
    /// f32 lanes of one vector.
    fn lanes(self) -> usize {
        match self {
            Simd::Avx512 => 16,
            Simd::Avx2 => 8,
        }
    }
}

/// `src [channels, len]` transposed into `dst [rows, ld]` (`ld ≥ channels`)
/// with its positions from row `first` on; the rows before `first` and past
/// the signal stay zero, as do the channels past `channels` (`dst` is zero
/// there on entry, and only the signal's cells are written). On the calling
/// thread: it runs beside the weight gradient's tasks.
fn transpose_into(simd: Simd, src: &[f32], (channels, len): (usize, usize), first: usize, ld: usize, dst: &mut [f32]) {
    /// Rows per block: its writes stay within a few cache lines per channel.
    const RB: usize = 16;
    let n = len.min(dst.len() / ld - first);
    dst[first * ld..(first + n) * ld].chunks_mut(RB * ld).enumerate().for_each(|(blk, out)| {
        let (t0, rows) = (blk * RB, out.len() / ld);
        let mut c0 = 0;
        match simd {
            Simd::Avx512 if rows == RB => {
                while c0 + RB <= channels {
                    // SAFETY: `Simd::Avx512` comes from `isa::current()`, which
                    // returns it only where the CPU has AVX-512F (run-time check).
                    unsafe { transpose16_avx512(src, len, (t0, c0), ld, out) };
                    c0 += RB;
                }
            }
            Simd::Avx2 if rows == RB => {
                while c0 + 8 <= channels {
                    // SAFETY: `Simd::Avx2` comes from `isa::current()`, which
                    // returns it only where the CPU has AVX2 (run-time check).
                    unsafe { transpose8x16_avx2(src, len, (t0, c0), ld, out) };
                    c0 += 8;
                }
            }
            // A last block of fewer than 16 positions: element by element.
            Simd::Avx512 | Simd::Avx2 => {}
        }
        for c in c0..channels {
            for (t, v) in src[c * len + t0..][..rows].iter().enumerate() {
                out[t * ld + c] = *v;
            }
        }
    });
}

/// The 16×16 block of `src` (rows `c0..c0 + 16` of `len` values, columns
/// `t0..t0 + 16`) transposed into rows `0..16` of `out` (`ld` apart),
/// columns `c0..c0 + 16`: in registers, four rounds of shuffles (pairs,
/// quads, then 128-bit lanes twice). Element by element, these transposes
/// took an eighth of the FCN's step.
#[target_feature(enable = "avx512f")]
fn transpose16_avx512(src: &[f32], len: usize, (t0, c0): (usize, usize), ld: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!((c0 + 15) * len + t0 + 16 <= src.len() && 15 * ld + c0 + 16 <= out.len());
    // SAFETY: row `c0 + i` from column `t0` holds 16 values (the assert
    // above); unaligned loads are allowed.
    let a: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.as_ptr().add((c0 + i) * len + t0)) });
    // Pairs: per 128-bit lane, [a0 b0 a1 b1] and [a2 b2 a3 b3].
    let b: [__m512; 16] = std::array::from_fn(|i| {
        let (x, y) = (a[i & !1], a[i | 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(x, y) } else { _mm512_unpackhi_ps(x, y) }
    });
    // Quads: per lane, one column of four rows, [a0 b0 c0 d0] … [a3 b3 c3 d3].
    let c: [__m512; 16] = std::array::from_fn(|i| {
        let (q, r) = (i / 4 * 4, i % 4);
        let (x, y) = (b[q + r / 2], b[q + 2 + r / 2]);
        if r % 2 == 0 { _mm512_shuffle_ps::<0x44>(x, y) } else { _mm512_shuffle_ps::<0xEE>(x, y) }
    });
    // Lanes 0, 2 (0x88) or 1, 3 (0xDD) of two groups of four rows.
    let d: [__m512; 16] = std::array::from_fn(|i| {
        let (h, r) = (i / 8 * 8, i % 8);
        let (x, y) = (c[h + r % 4], c[h + 4 + r % 4]);
        if r < 4 { _mm512_shuffle_f32x4::<0x88>(x, y) } else { _mm512_shuffle_f32x4::<0xDD>(x, y) }
    });
    // Once more across the two halves: `e[j]` is column `j`, all 16 rows.
    let e: [__m512; 16] = std::array::from_fn(|j| {
        let (x, y) = (d[j % 8], d[8 + j % 8]);
        if j < 8 { _mm512_shuffle_f32x4::<0x88>(x, y) } else { _mm512_shuffle_f32x4::<0xDD>(x, y) }
    });
    for (j, v) in e.iter().enumerate() {
        // SAFETY: row `j` from column `c0` has room for 16 values (the
        // assert above); unaligned stores are allowed.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(j * ld + c0), *v) };
    }
}

/// Rows `c0..c0 + 8` of `src` (rows of `len` values), columns `t0..t0 + 16`,
/// transposed into rows `0..16` of `out` (`ld` apart), columns `c0..c0 + 8`:
/// two 8 × 8 blocks in registers.
#[target_feature(enable = "avx2")]
fn transpose8x16_avx2(src: &[f32], len: usize, (t0, c0): (usize, usize), ld: usize, out: &mut [f32]) {
    assert!((c0 + 7) * len + t0 + 16 <= src.len() && 15 * ld + c0 + 8 <= out.len());
    for half in 0..2 {
        // SAFETY: AVX2 is present (this function's feature); rows c0..c0 + 8
        // hold columns t0 + 8·half..+8 (the assert above), and rows 8·half..+8
        // of `out` have room for columns c0..c0 + 8.
        unsafe {
            super::gemm256::transpose8(src.as_ptr().add(c0 * len + t0 + 8 * half), len, out.as_mut_ptr().add(8 * half * ld + c0), ld)
        };
    }
}

fn grad_weight_item(simd: Simd, p: &Plan, (gy, x): (&[f32], &[f32]), gw: &mut [f32], (xp, gyp): &mut (Vec<f32>, Vec<f32>)) {
    match simd {
        // SAFETY: as in `forward_item`: the CPU has AVX-512F, AVX2 and FMA.
        Simd::Avx512 => unsafe { avx512::grad_weight_item(p, gy, x, gw, xp, gyp) },
        // SAFETY: as in `forward_item`: the CPU has AVX2 and FMA.
        Simd::Avx2 => unsafe { avx2::grad_weight_item(p, gy, x, gw, xp, gyp) },
    }
}

/// The blocked forward pass, where it applies (a vector path, stride 1),
/// plus `bias` per output channel, added as each tile is stored.
pub(crate) fn forward(isa: Isa, (x, w): (&[f32], &[f32]), bias: Option<&[f32]>, g: &ConvGeometry<1>) -> Option<Vec<f32>> {
    Some(forward_blocked((x, w, bias), false, g.batch, &plan(g)?, simd(isa)?))
}

/// The blocked input gradient, where it applies.
pub(crate) fn grad_input(isa: Isa, (gy, w): (&[f32], &[f32]), g: &ConvGeometry<1>) -> Option<Vec<f32>> {
    Some(grad_input_blocked(gy, w, g.batch, &plan(g)?, simd(isa)?))
}

/// The blocked weight gradient, where it applies.
pub(crate) fn grad_weight(isa: Isa, (gy, x): (&[f32], &[f32]), g: &ConvGeometry<1>) -> Option<Vec<f32>> {
    Some(grad_weight_blocked(gy, x, g.batch, &plan(g)?, simd(isa)?))
}

/// Stride-1 forward over the batch, in parallel over batch items.
fn forward_blocked((x, w, bias): (&[f32], &[f32], Option<&[f32]>), flipped: bool, b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
    let wt = p.pack_weights(w, flipped);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut((p.cout * p.lout).max(1)).enumerate().for_each_init(Vec::new, |xp, (bi, yb)| {
            forward_item(simd, p, (&x[bi * p.cin * p.l..(bi + 1) * p.cin * p.l], &wt, bias), yb, xp)
        });
    };
    // SAFETY: `forward_item` writes every output of its item: its tiles cover
    // every output channel (the blocks of each group) and every position (the
    // tiles from 0 to lout, the last cut at the row's end). The output is
    // written once, without a zero fill first.
    unsafe { crate::fill::filled(b * p.cout * p.lout, fill) }
}

/// Stride-1 weight gradient. Wide layers (one group, at least two vectors
/// of output channels) take [`grad_weight_wide`]; narrow ones fixed chunks of
/// the batch in parallel, each summing its items into a partial with
/// dot-product tiles, the partials added in chunk order.
fn grad_weight_blocked(gy: &[f32], x: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
    /// The batch is cut into this many chunks whatever the thread count, so
    /// the order of the sum (and so the result) does not depend on it.
    const CHUNKS: usize = 16;
    if p.groups == 1 && p.cout >= 2 * simd.lanes() && p.cin >= 4 {
        return grad_weight_wide(gy, x, b, p, simd);
    }
    let n = p.cout * (p.cin / p.groups) * p.k;
    let per = b.div_ceil(CHUNKS).max(1);
    let starts: Vec<usize> = (0..b).step_by(per).collect();
    let partials: Vec<Vec<f32>> = starts
        .par_iter()
        .map_init(
            || (Vec::new(), Vec::new()),
            |scratch, &start| {
                let mut part = vec![0f32; n];
                for bi in start..(start + per).min(b) {
                    let gyb = &gy[bi * p.cout * p.lout..(bi + 1) * p.cout * p.lout];
                    let xb = &x[bi * p.cin * p.l..(bi + 1) * p.cin * p.l];
                    grad_weight_item(simd, p, (gyb, xb), &mut part, scratch);
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

/// [`grad_weight_wide`]'s sum over the items `items`: `[k, cin, ld]`, `ld`
/// the output channels padded to whole vectors.
fn grad_weight_wide_run(gy: &[f32], x: &[f32], items: std::ops::Range<usize>, p: &Plan, simd: Simd) -> Vec<f32> {
    /// Input channels per task.
    const IB: usize = 32;
    let ld = p.cout.next_multiple_of(simd.lanes());
    let rows = p.lout + (p.k - 1) * p.dilation;
    // `[k, cin, ld]`: each task a run of input channels of one tap.
    let mut part = vec![0f32; p.k * p.cin * ld];
    if items.is_empty() {
        return part;
    }
    let mut tasks: Vec<(usize, usize, &mut [f32])> = part
        .chunks_mut(p.cin * ld)
        .enumerate()
        .flat_map(|(j, tap)| tap.chunks_mut(IB * ld).enumerate().map(move |(n, slab)| (j, n * IB, slab)))
        .collect();
    // Items one after the other, each transposed into one of two pairs of
    // buffers, which stay in cache for all its tasks. An item's transposes
    // run beside the tasks of the item before (one parallel step per item).
    let mut bufs = [(vec![0f32; p.lout * ld], vec![0f32; rows * p.cin]), (vec![0f32; p.lout * ld], vec![0f32; rows * p.cin])];
    let transpose = |bi: usize, (gyt, xt): &mut (Vec<f32>, Vec<f32>)| {
        transpose_into(simd, &gy[bi * p.cout * p.lout..][..p.cout * p.lout], (p.cout, p.lout), 0, ld, gyt);
        transpose_into(simd, &x[bi * p.cin * p.l..][..p.cin * p.l], (p.cin, p.l), p.pad_left, p.cin, xt);
    };
    transpose(items.start, &mut bufs[0]);
    for bi in items.clone() {
        let [even, odd] = &mut bufs;
        let (now, next) = if (bi - items.start).is_multiple_of(2) { (even, odd) } else { (odd, even) };
        let t = Transposed { gyt: &now.0, ld, xt: &now.1 };
        rayon::join(
            || tasks.par_iter_mut().for_each(|(j, i0, slab)| grad_weight_wide_task(simd, p, &t, slab, (*j, *i0))),
            || {
                if bi + 1 < items.end {
                    transpose(bi + 1, next);
                }
            },
        );
    }
    part
}

/// The channels-last weight gradient of a wide layer: the output gradient
/// and the (zero-padded) input transposed to positions × channels, then
/// `gw[o, i, j] = Σ_b Σ_t gy[b, o, t] · x[b, i, t + j·d]` as outer products
/// per position, tiles of vectors of output channels × input channels held
/// in registers over the whole sum (no horizontal reduction, which dominated
/// the dot-product tiles on short rows). The batch is cut into `PARTS` runs
/// of items, whatever the thread count, summed in parallel and then added in
/// order; within a run the work is cut by tap and block of input channels,
/// each output summed by one thread in one order (items, then positions). So
/// the result does not depend on the thread count.
fn grad_weight_wide(gy: &[f32], x: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
    /// Runs of the batch: with two threads, each sums its own run with its
    /// own transposes in its own cache, one parallel step for the layer (one
    /// per item before, each waiting for the second thread).
    const PARTS: usize = 2;
    let ld = p.cout.next_multiple_of(simd.lanes());
    let per = b.div_ceil(PARTS).max(1);
    let parts: Vec<Vec<f32>> =
        (0..PARTS).into_par_iter().map(|n| grad_weight_wide_run(gy, x, (n * per).min(b)..((n + 1) * per).min(b), p, simd)).collect();
    let mut parts = parts.into_iter();
    let mut part = parts.next().unwrap_or_default();
    for other in parts {
        for (a, v) in part.iter_mut().zip(other) {
            *a += v;
        }
    }
    // `[k, cin, cout padded]` → `[cout, cin, k]`, blocks of output channels
    // in parallel (each reads runs of its rows of `part`).
    let mut gw = vec![0f32; p.cout * p.cin * p.k];
    let block = simd.lanes();
    gw.par_chunks_mut(block * p.cin * p.k).enumerate().for_each(|(bo, out)| {
        let o0 = bo * block;
        for (r, row) in part.chunks_exact(ld).enumerate() {
            let (j, i) = (r / p.cin, r % p.cin);
            for (o, v) in row[o0..].iter().take(out.len() / (p.cin * p.k)).enumerate() {
                out[(o * p.cin + i) * p.k + j] = *v;
            }
        }
    });
    gw
}

/// One item's output gradient `gyt [lout, ld]` and padded input `xt [rows,
/// cin]`, positions × channels.
pub(crate) struct Transposed<'a> {
    pub(crate) gyt: &'a [f32],
    pub(crate) ld: usize,
    pub(crate) xt: &'a [f32],
}

/// Stride-1 input gradient: the forward kernel on `gy` with each kernel
/// transposed (`[cin, cout/groups, k]`) and flipped, and the padding mirrored,
/// so `gx[i, s] = Σ_o Σ_j w[o, i, j] · gy[o, s + pad_left − j·d]`.
fn grad_input_blocked(gy: &[f32], w: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
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
    forward_blocked((gy, w, None), true, b, &flipped, simd)
}

/// `wide_tile::<nv, nj>(args)` for run-time `nv` ≤ `OW` vectors of output
/// channels and `nj` ≤ `JW` input channels (the tile sizes a layer's edges
/// need), dispatched to the monomorphic tiles.
macro_rules! wide_tiles {
    ($nv:expr, $nj:expr; $ow:expr, $jw:expr; $args:tt) => {
        match ($nv, $nj) {
            (4, 6) => wide_tiles!(@call 4, 6, $args),
            (4, 5) => wide_tiles!(@call 4, 5, $args),
            (4, 4) => wide_tiles!(@call 4, 4, $args),
            (4, 3) => wide_tiles!(@call 4, 3, $args),
            (4, 2) => wide_tiles!(@call 4, 2, $args),
            (4, 1) => wide_tiles!(@call 4, 1, $args),
            (3, 6) => wide_tiles!(@call 3, 6, $args),
            (3, 5) => wide_tiles!(@call 3, 5, $args),
            (3, 4) => wide_tiles!(@call 3, 4, $args),
            (3, 3) => wide_tiles!(@call 3, 3, $args),
            (3, 2) => wide_tiles!(@call 3, 2, $args),
            (3, 1) => wide_tiles!(@call 3, 1, $args),
            (2, 6) => wide_tiles!(@call 2, 6, $args),
            (2, 5) => wide_tiles!(@call 2, 5, $args),
            (2, 4) => wide_tiles!(@call 2, 4, $args),
            (2, 3) => wide_tiles!(@call 2, 3, $args),
            (2, 2) => wide_tiles!(@call 2, 2, $args),
            (2, 1) => wide_tiles!(@call 2, 1, $args),
            (1, 6) => wide_tiles!(@call 1, 6, $args),
            (1, 5) => wide_tiles!(@call 1, 5, $args),
            (1, 4) => wide_tiles!(@call 1, 4, $args),
            (1, 3) => wide_tiles!(@call 1, 3, $args),
            (1, 2) => wide_tiles!(@call 1, 2, $args),
            (1, 1) => wide_tiles!(@call 1, 1, $args),
            (nv, nj) => unreachable!("wide tile {nv}×{nj} past {}×{}", $ow, $jw),
        }
    };
    (@call $o:literal, $j:literal, ($($a:expr),*)) => {
        wide_tile::<$o, $j>($($a),*)
    };
}

/// The blocked kernels for one vector instruction set, written with its
/// intrinsics so that the accumulators stay in registers (left to itself the
/// compiler vectorised these loops across channels, with gathers).
macro_rules! simd_kernels {
    ($name:ident, $feat:literal, $lanes:literal, $v:ty, $zero:ident, $set1:ident, $loadu:ident, $storeu:ident, $fmadd:ident, $add:ident,
     forward: ($ot:literal, $nv:literal, $nv1:literal), weight: ($ow:literal, $jw:literal), wide: ($owide:literal, $jwide:literal)) => {
        pub(crate) mod $name {
            use super::{GwBlock, OB, Plan, blocks, pad_rows};
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
            /// `t0`, summed over the group's rows and taps; the block's packed
            /// weights hold `S` output channels per tap (`O` ≤ `S`: a tile may
            /// take part of a block). `K` is the tap
            /// count where it is known at compile time (0: `p.k`, read at run
            /// time), so that the common kernel sizes unroll their taps: left
            /// as a run-time loop, the compiler spilled an accumulator and
            /// shuffled the others between taps, at two thirds of the speed.
            #[inline]
            #[target_feature(enable = $feat)]
            fn tile<const O: usize, const NV: usize, const K: usize, const S: usize>(p: &Plan, rows: &[f32], row_len: usize, t0: usize, wb: &[f32]) -> [[$v; NV]; O] {
                let (cin_g, dilation) = (p.cin / p.groups, p.dilation);
                let k = if K == 0 { p.k } else { K };
                debug_assert_eq!(k, p.k);
                // Every read below is inside `rows` and `wb` (checked here once,
                // not per load): row `ii` is read from `ii·row_len + t0` for
                // (k−1)·dilation + NV·LANES values, and the weights are k·S a
                // row, of which the tile reads the first O per tap.
                const { assert!(O <= S) };
                assert!(cin_g > 0 && t0 + (k - 1) * dilation + NV * LANES <= row_len && cin_g * row_len <= rows.len());
                assert!((cin_g * k - 1) * S + O <= wb.len());
                let mut acc = [[$zero(); NV]; O];
                let (mut xr, mut wr) = (rows[t0..].as_ptr(), wb.as_ptr());
                for ii in 0..cin_g {
                    for j in 0..k {
                        let mut xv = [$zero(); NV];
                        for n in 0..NV {
                            // SAFETY: inside row `ii` of `rows` (the assert above);
                            // unaligned loads are allowed.
                            xv[n] = unsafe { $loadu(xr.add(j * dilation + n * LANES)) };
                        }
                        for o in 0..O {
                            // SAFETY: weight `j·S + o` of row `ii`, inside `wb` (the assert above).
                            let wv = $set1(unsafe { *wr.add(j * S + o) });
                            for n in 0..NV {
                                acc[o][n] = $fmadd(wv, xv[n], acc[o][n]);
                            }
                        }
                    }
                    if ii + 1 < cin_g {
                        // SAFETY: row `ii + 1` starts inside both slices (the asserts above).
                        unsafe {
                            xr = xr.add(row_len);
                            wr = wr.add(k * S);
                        }
                    }
                }
                acc
            }

            /// `tile` with the tap count a compile-time constant where it is
            /// one of the common kernel sizes.
            #[inline]
            #[target_feature(enable = $feat)]
            fn tile_any<const O: usize, const NV: usize, const S: usize>(p: &Plan, rows: &[f32], row_len: usize, t0: usize, wb: &[f32]) -> [[$v; NV]; O] {
                match p.k {
                    1 => tile::<O, NV, 1, S>(p, rows, row_len, t0, wb),
                    2 => tile::<O, NV, 2, S>(p, rows, row_len, t0, wb),
                    3 => tile::<O, NV, 3, S>(p, rows, row_len, t0, wb),
                    4 => tile::<O, NV, 4, S>(p, rows, row_len, t0, wb),
                    5 => tile::<O, NV, 5, S>(p, rows, row_len, t0, wb),
                    6 => tile::<O, NV, 6, S>(p, rows, row_len, t0, wb),
                    7 => tile::<O, NV, 7, S>(p, rows, row_len, t0, wb),
                    8 => tile::<O, NV, 8, S>(p, rows, row_len, t0, wb),
                    9 => tile::<O, NV, 9, S>(p, rows, row_len, t0, wb),
                    _ => tile::<O, NV, 0, S>(p, rows, row_len, t0, wb),
                }
            }

            #[inline]
            #[target_feature(enable = $feat)]
            fn store<const NV: usize>(acc: &[$v; NV], bias: Option<f32>, out: &mut [std::mem::MaybeUninit<f32>]) {
                let acc = match bias {
                    Some(b) => acc.map(|a| $add(a, $set1(b))),
                    None => *acc,
                };
                // `out` may end inside the last vector (the row's end).
                for (n, part) in out.chunks_mut(LANES).enumerate() {
                    if part.len() == LANES {
                        // SAFETY: `part` has room for LANES floats; unaligned
                        // stores are allowed, and storing initialises it.
                        unsafe { $storeu(part.as_mut_ptr().cast::<f32>(), acc[n]) };
                    } else {
                        let mut buf = [0f32; LANES];
                        // SAFETY: `buf` holds LANES floats; unaligned stores are allowed.
                        unsafe { $storeu(buf.as_mut_ptr(), acc[n]) };
                        for (d, v) in part.iter_mut().zip(buf) {
                            d.write(v);
                        }
                    }
                }
            }

            /// One tile of a full block: outputs `first..first + O` at
            /// positions `t0..t0 + m` (`m` ≤ `NV` vectors), stored in `y`.
            #[inline]
            #[target_feature(enable = $feat)]
            fn block_tile<const O: usize, const NV: usize>(
                p: &Plan,
                (rows, row_len): (&[f32], usize),
                wb: &[f32],
                bias: Option<&[f32]>,
                (t0, m, first): (usize, usize, usize),
                y: &mut [std::mem::MaybeUninit<f32>],
            ) {
                let acc = tile_any::<O, NV, OB>(p, rows, row_len, t0, wb);
                for (o, a) in acc.iter().enumerate() {
                    let o = first + o;
                    store(a, bias.map(|b| b[o]), &mut y[o * p.lout + t0..][..m]);
                }
            }

            /// The forward pass of one batch item: `x [cin, l]` → `y [cout, lout]`.
            #[target_feature(enable = $feat)]
            pub(crate) fn forward_item(p: &Plan, (x, wt, bias): (&[f32], &[f32], Option<&[f32]>), y: &mut [std::mem::MaybeUninit<f32>], xp: &mut Vec<f32>) {
                const W: usize = $nv * LANES;
                const W1: usize = $nv1 * LANES;
                // Output channels per tile of a full block (OB or a divisor of it).
                const OT: usize = $ot;
                const { assert!(OB % OT == 0) };
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
                                let m = W.min(p.lout - t0);
                                for part in (0..OB).step_by(OT) {
                                    let at = (t0, m, first + part);
                                    // A row's last tile takes only the vectors
                                    // it needs (L = 512 ended in a third of a
                                    // wasted tile): each output's sum is the same.
                                    match m.div_ceil(LANES) {
                                        1 => block_tile::<OT, 1>(p, (rows, row_len), &wb[part..], bias, at, y),
                                        2 => block_tile::<OT, 2>(p, (rows, row_len), &wb[part..], bias, at, y),
                                        _ => block_tile::<OT, $nv>(p, (rows, row_len), &wb[part..], bias, at, y),
                                    }
                                }
                            }
                        } else {
                            for t0 in (0..p.lout).step_by(W1) {
                                let acc = tile_any::<1, $nv1, 1>(p, rows, row_len, t0, wb);
                                let m = W1.min(p.lout - t0);
                                store(&acc[0], bias.map(|b| b[first]), &mut y[first * p.lout + t0..][..m]);
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
                        // SAFETY: `lanes` holds LANES floats; unaligned stores are allowed.
                        unsafe { $storeu(lanes.as_mut_ptr(), acc[o][c]) };
                        out[o][c] = lanes.iter().sum();
                    }
                }
                out
            }

            /// One tile of the channels-last weight gradient, for tap `j`: `O`
            /// vectors of output channels from `o0` × `J` input channels from
            /// `i0`, `part[j, i, o] += Σ_t gyt[t, o] · xt[t + j·d, i]` over
            /// positions `ts`: an outer product per position, the input
            /// values broadcast from one row of `xt`.
            #[inline]
            #[target_feature(enable = $feat)]
            fn wide_tile<const O: usize, const J: usize>(
                (gyt, ld): (&[f32], usize), (xt, cld): (&[f32], usize), ts: std::ops::Range<usize>, part: &mut [f32], (shift, i0, r0, o0): (usize, usize, usize, usize),
            ) {
                let mut acc = [[$zero(); O]; J];
                for c in 0..J {
                    for n in 0..O {
                        acc[c][n] = load(&part[(r0 + c) * ld + o0 + n * LANES..]);
                    }
                }
                for t in ts {
                    let gs = &gyt[t * ld + o0..][..O * LANES];
                    let xs = &xt[(t + shift) * cld + i0..][..J];
                    let mut g = [$zero(); O];
                    for n in 0..O {
                        g[n] = load(&gs[n * LANES..]);
                    }
                    for c in 0..J {
                        let xv = $set1(xs[c]);
                        for n in 0..O {
                            acc[c][n] = $fmadd(g[n], xv, acc[c][n]);
                        }
                    }
                }
                for c in 0..J {
                    for n in 0..O {
                        let dst = &mut part[(r0 + c) * ld + o0 + n * LANES..][..LANES];
                        // SAFETY: `dst` holds LANES floats; unaligned stores are allowed.
                        unsafe { $storeu(dst.as_mut_ptr(), acc[c][n]) };
                    }
                }
            }

            /// One task of the wide weight gradient on one item: tap `j`,
            /// input channels from `i0` (as many as `slab [channels, ld]`
            /// holds), summed over positions in blocks.
            #[target_feature(enable = $feat)]
            pub(crate) fn grad_weight_wide_task(p: &Plan, t: &super::Transposed, slab: &mut [f32], (j, i0): (usize, usize)) {
                /// Positions per block: the block's gradient rows stay in L1.
                const TB: usize = 128;
                const OW: usize = $owide;
                const JW: usize = $jwide;
                let (ld, shift) = (t.ld, j * p.dilation);
                let channels = slab.len() / ld;
                let (gyt, xt) = ((t.gyt, ld), (t.xt, p.cin));
                for t0 in (0..p.lout).step_by(TB) {
                    let ts = t0..(t0 + TB).min(p.lout);
                    let mut o0 = 0;
                    while o0 < ld {
                        let nv = ((ld - o0) / LANES).min(OW);
                        let mut i = 0;
                        while i < channels {
                            let nj = (channels - i).min(JW);
                            wide_tiles!(nv, nj; OW, JW; (gyt, xt, ts.clone(), slab, (shift, i0 + i, i, o0)));
                            i += nj;
                        }
                        o0 += nv * LANES;
                    }
                }
            }

            /// `out[o, c] += Σ_t gy[o, t] · x[col(c) + t]` for the `O` output rows
            /// of `block` and every column: tiles of `JW` columns, the last
            /// columns in one narrower tile (not one column at a time with a
            /// single accumulator, which ran at the FMA latency). Each sum runs
            /// in the same order whatever its tile, so the bits do not change.
            #[inline]
            #[target_feature(enable = $feat)]
            fn gw_tiles_of_rows<const O: usize, const JW: usize>(block: &GwBlock<impl Fn(usize) -> usize>, out: &mut [f32]) {
                const { assert!(JW >= 1 && JW <= 8, "the narrower tiles below cover up to 8 columns") };
                let mut c = 0;
                while c < block.ncols {
                    let j = (block.ncols - c).min(JW);
                    match j {
                        1 => gw_add_tile::<O, 1>(block, c, out),
                        2 => gw_add_tile::<O, 2>(block, c, out),
                        3 => gw_add_tile::<O, 3>(block, c, out),
                        4 => gw_add_tile::<O, 4>(block, c, out),
                        5 => gw_add_tile::<O, 5>(block, c, out),
                        6 => gw_add_tile::<O, 6>(block, c, out),
                        7 => gw_add_tile::<O, 7>(block, c, out),
                        _ => gw_add_tile::<O, 8>(block, c, out),
                    }
                    c += j;
                }
            }

            /// One [`gw_tile`] of columns `c..c + J`, added into `out`.
            #[inline]
            #[target_feature(enable = $feat)]
            fn gw_add_tile<const O: usize, const J: usize>(block: &GwBlock<impl Fn(usize) -> usize>, c: usize, out: &mut [f32]) {
                let cols: [usize; J] = std::array::from_fn(|q| (block.col)(c + q));
                let s = gw_tile::<O, J>(block.rows, block.gy_len, block.xp, &cols);
                for (oo, r) in s.iter().enumerate() {
                    for (cc, v) in r.iter().enumerate() {
                        out[oo * block.ncols + c + cc] += *v;
                    }
                }
            }

            /// Adds one batch item's weight gradient into `gw [cout, cin/groups, k]`.
            #[target_feature(enable = $feat)]
            pub(crate) fn grad_weight_item(p: &Plan, gy: &[f32], x: &[f32], gw: &mut [f32], xp: &mut Vec<f32>, gyp: &mut Vec<f32>) {
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
                        let block = GwBlock { rows, gy_len, xp, col: &col, ncols };
                        if n == OW {
                            gw_tiles_of_rows::<OW, JW>(&block, out);
                        } else {
                            gw_tiles_of_rows::<1, JW>(&block, out);
                        }
                        o += n;
                    }
                }
            }
        }
    };
}

simd_kernels!(avx512, "avx512f,avx2,fma", 16, __m512, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps,
    forward: (8, 3, 8), weight: (4, 5), wide: (4, 6));
simd_kernels!(avx2, "avx2,fma", 8, __m256, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps,
    forward: (4, 2, 8), weight: (2, 5), wide: (2, 6));
