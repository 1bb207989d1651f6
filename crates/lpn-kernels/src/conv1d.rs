//! A direct 1-D convolution: forward, and the two backward products (input
//! gradient, weight gradient), plus the bias's gradient. Nothing is allocated
//! but the outputs and small per-thread scratch rows.
//!
//! Stride 1 (the common case, any padding, dilation and groups) has blocked
//! kernels for f32: the input rows are copied once into zero-padded scratch
//! rows, so the hot loops have no bounds to test, and each output tile keeps
//! several output channels × positions in registers, so every loaded value
//! feeds many multiply-adds. The input gradient is the forward kernel run on
//! the output gradient with the kernels transposed and flipped. The hot loops
//! are written for AVX-512 and AVX2+FMA (`x86::conv1d`), picked at run time
//! ([`crate::Isa`]). Other strides, f64 and the portable path take plain
//! loops over contiguous rows.
//!
//! Determinism: every output value is computed by one thread in a fixed order;
//! the weight gradient sums per-chunk partials over a fixed cut of the batch
//! (independent of the thread count) in chunk order.
//!
//! Semantics: PyTorch's cross-correlation with padding, stride, dilation and
//! groups.

use rayon::prelude::*;

use crate::isa::{self, Isa};
use crate::{ConvGeometry, Num};

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
    /// Length of a padded scratch row: whole tiles of up to `MAX_WIDTH`
    /// outputs read inside it, and it holds the signal from `pad_left` on.
    pub(crate) fn row_len(&self) -> usize {
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
pub(crate) fn pad_rows(src: &[f32], rows: usize, len: usize, pad_left: usize, row_len: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(rows * row_len, 0.0);
    let n = len.min(row_len - pad_left);
    for r in 0..rows {
        dst[r * row_len + pad_left..][..n].copy_from_slice(&src[r * len..][..n]);
    }
}

/// Output-channel blocks: `(first, size)`, `OB` at a time, the rest singly.
pub(crate) fn blocks(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / OB;
    (0..full).map(|b| (b * OB, OB)).chain((full * OB..n).map(|o| (o, 1)))
}

/// A vector path of the blocked kernels, where this call has one.
#[derive(Clone, Copy)]
enum Simd {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// The blocked kernels' path for `isa` (from [`isa::current`], so it runs here).
fn simd(isa: Isa) -> Option<Simd> {
    match isa {
        Isa::Portable => None,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(Simd::Avx2),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(Simd::Avx512),
    }
}

fn forward_item(simd: Simd, p: &Plan, x: &[f32], wt: &[f32], y: &mut [f32], xp: &mut Vec<f32>) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx512` comes from `isa::current()`, which returns
        // AVX-512 only where the CPU has AVX-512F, AVX2 and FMA (run-time check).
        Simd::Avx512 => unsafe { crate::x86::conv1d::avx512::forward_item(p, x, wt, y, xp) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Simd::Avx2` comes from `isa::current()`, which returns AVX2
        // only where the CPU has AVX2 and FMA (run-time check).
        Simd::Avx2 => unsafe { crate::x86::conv1d::avx2::forward_item(p, x, wt, y, xp) },
    }
}

fn grad_weight_item(simd: Simd, p: &Plan, (gy, x): (&[f32], &[f32]), gw: &mut [f32], (xp, gyp): &mut (Vec<f32>, Vec<f32>)) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `forward_item`: the CPU has AVX-512F, AVX2 and FMA.
        Simd::Avx512 => unsafe { crate::x86::conv1d::avx512::grad_weight_item(p, gy, x, gw, xp, gyp) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `forward_item`: the CPU has AVX2 and FMA.
        Simd::Avx2 => unsafe { crate::x86::conv1d::avx2::grad_weight_item(p, gy, x, gw, xp, gyp) },
    }
}

/// Stride-1 forward over the batch, in parallel over batch items.
fn forward_blocked(x: &[f32], w: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
    let wt = p.pack_weights(w);
    let mut y = vec![0f32; b * p.cout * p.lout];
    y.par_chunks_mut(p.cout * p.lout)
        .enumerate()
        .for_each_init(Vec::new, |xp, (bi, yb)| forward_item(simd, p, &x[bi * p.cin * p.l..(bi + 1) * p.cin * p.l], &wt, yb, xp));
    y
}

/// Stride-1 weight gradient: fixed chunks of the batch in parallel, each
/// summing its items into a partial; the partials are added in chunk order.
fn grad_weight_blocked(gy: &[f32], x: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
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

/// Stride-1 input gradient: the forward kernel on `gy` with each kernel
/// transposed (`[cin, cout/groups, k]`) and flipped, and the padding mirrored,
/// so `gx[i, s] = Σ_o Σ_j w[o, i, j] · gy[o, s + pad_left − j·d]`.
fn grad_input_blocked(gy: &[f32], w: &[f32], b: usize, p: &Plan, simd: Simd) -> Vec<f32> {
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
    forward_blocked(gy, &wf, b, &flipped, simd)
}

/// The blocked path for this call, where it applies: f32 operands, a vector
/// instruction set, stride 1.
fn blocked<'a, T: Num>(a: &'a [T], b: &'a [T], g: &ConvGeometry<1>) -> Option<(&'a [f32], &'a [f32], Plan, Simd)> {
    Some((T::as_f32(a)?, T::as_f32(b)?, plan(g)?, simd(isa::current())?))
}

/// `y = conv1d(x, w) (+ bias per output channel)`: x `[B, Cin, L]`, w `[Cout,
/// Cin/groups, K]`, y `[B, Cout, Lout]`. Panics if the operands do not fit `g`.
pub fn forward<T: Num>(x: &[T], w: &[T], bias: Option<&[T]>, g: &ConvGeometry<1>) -> Vec<T> {
    g.assert_fits(x.len(), w.len());
    assert!(bias.is_none_or(|b| b.len() == g.out_channels), "bias does not fit {g:?}");
    let mut y = match blocked(x, w, g) {
        Some((x, w, p, simd)) => T::from_f32_vec(forward_blocked(x, w, g.batch, &p, simd)),
        None => forward_portable(x, w, g),
    };
    if let Some(bias) = bias {
        let lout = g.out_len(0);
        for (row, &b) in y.chunks_mut(lout.max(1)).zip(bias.iter().cycle()) {
            for v in row {
                *v += b;
            }
        }
    }
    y
}

fn forward_portable<T: Num>(x: &[T], w: &[T], g: &ConvGeometry<1>) -> Vec<T> {
    let (cin, l, cout, k, lout) = (g.in_channels, g.input[0], g.out_channels, g.kernel[0], g.out_len(0));
    let (cin_g, cout_g, stride, dilation, pad_left) = (g.in_per_group(), g.out_per_group(), g.stride[0], g.dilation[0], g.padding[0].0);
    let mut y = vec![T::default(); g.output_len()];
    y.par_chunks_mut((cout * lout).max(1)).enumerate().for_each(|(b, yb)| {
        for o in 0..cout {
            let grp = o / cout_g;
            let row = &mut yb[o * lout..(o + 1) * lout];
            for ii in 0..cin_g {
                let i = grp * cin_g + ii;
                let xr = &x[(b * cin + i) * l..(b * cin + i + 1) * l];
                for j in 0..k {
                    let wv = w[(o * cin_g + ii) * k + j];
                    let (lo, hi, _) = g.valid(0, j);
                    let off = j * dilation;
                    if stride == 1 {
                        let start = lo + off - pad_left;
                        for (yv, xv) in row[lo..hi].iter_mut().zip(&xr[start..start + (hi - lo)]) {
                            *yv += wv * *xv;
                        }
                    } else {
                        for t in lo..hi {
                            row[t] += wv * xr[t * stride + off - pad_left];
                        }
                    }
                }
            }
        }
    });
    y
}

/// The gradient of the input from the output's gradient `gy [B, Cout, Lout]`.
pub fn grad_input<T: Num>(gy: &[T], w: &[T], g: &ConvGeometry<1>) -> Vec<T> {
    g.assert_fits(g.input_len(), w.len());
    assert_eq!(gy.len(), g.output_len(), "gradient does not fit {g:?}");
    if let Some((gy, w, p, simd)) = blocked(gy, w, g) {
        return T::from_f32_vec(grad_input_blocked(gy, w, g.batch, &p, simd));
    }
    let (cin, l, cout, k, lout) = (g.in_channels, g.input[0], g.out_channels, g.kernel[0], g.out_len(0));
    let (cin_g, cout_g, stride, dilation, pad_left) = (g.in_per_group(), g.out_per_group(), g.stride[0], g.dilation[0], g.padding[0].0);
    let mut gx = vec![T::default(); g.input_len()];
    gx.par_chunks_mut((cin * l).max(1)).enumerate().for_each(|(b, gxb)| {
        for i in 0..cin {
            let grp = i / cin_g;
            let ii = i % cin_g;
            let row = &mut gxb[i * l..(i + 1) * l];
            for oo in 0..cout_g {
                let o = grp * cout_g + oo;
                let gr = &gy[(b * cout + o) * lout..(b * cout + o + 1) * lout];
                for j in 0..k {
                    let wv = w[(o * cin_g + ii) * k + j];
                    let (lo, hi, _) = g.valid(0, j);
                    let off = j * dilation;
                    if stride == 1 {
                        let start = lo + off - pad_left;
                        for (xv, gv) in row[start..start + (hi - lo)].iter_mut().zip(&gr[lo..hi]) {
                            *xv += wv * *gv;
                        }
                    } else {
                        for t in lo..hi {
                            row[t * stride + off - pad_left] += wv * gr[t];
                        }
                    }
                }
            }
        }
    });
    gx
}

/// The gradient of the weight from the output's gradient `gy [B, Cout, Lout]`.
pub fn grad_weight<T: Num>(gy: &[T], x: &[T], g: &ConvGeometry<1>) -> Vec<T> {
    g.assert_fits(x.len(), g.weight_len());
    assert_eq!(gy.len(), g.output_len(), "gradient does not fit {g:?}");
    if let Some((gy, x, p, simd)) = blocked(gy, x, g) {
        return T::from_f32_vec(grad_weight_blocked(gy, x, g.batch, &p, simd));
    }
    let (cin, l, cout, k, lout) = (g.in_channels, g.input[0], g.out_channels, g.kernel[0], g.out_len(0));
    let (cin_g, cout_g, stride, dilation, pad_left) = (g.in_per_group(), g.out_per_group(), g.stride[0], g.dilation[0], g.padding[0].0);
    let mut gw = vec![T::default(); g.weight_len()];
    gw.par_chunks_mut((cin_g * k).max(1)).enumerate().for_each(|(o, gwo)| {
        let grp = o / cout_g;
        for ii in 0..cin_g {
            let i = grp * cin_g + ii;
            for j in 0..k {
                let (lo, hi, _) = g.valid(0, j);
                let off = j * dilation;
                // Eight partial sums, so the reduction vectorises.
                let mut acc = [T::default(); 8];
                let mut tail = T::default();
                for b in 0..g.batch {
                    let gr = &gy[(b * cout + o) * lout..(b * cout + o + 1) * lout];
                    let xr = &x[(b * cin + i) * l..(b * cin + i + 1) * l];
                    if stride == 1 {
                        let start = lo + off - pad_left;
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
                            tail += gr[t] * xr[t * stride + off - pad_left];
                        }
                    }
                }
                let mut sum = tail;
                for a in acc {
                    sum += a;
                }
                gwo[ii * k + j] = sum;
            }
        }
    });
    gw
}

/// The bias's gradient: `gy [B, C, L]` summed over batch and positions per
/// channel, each row summed in order, rows in order.
pub fn grad_bias<T: Num>(gy: &[T], channels: usize, len: usize) -> Vec<T> {
    let mut gb = vec![T::default(); channels];
    for (r, row) in gy.chunks(len.max(1)).enumerate() {
        let mut s = T::default();
        for &v in row {
            s += v;
        }
        gb[r % channels.max(1)] += s;
    }
    gb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rng, as_2d, assert_close, on_every_path, on_threads, reference_conv2d, wide};

    fn geometry(
        batch: usize,
        (cin, cout, groups): (usize, usize, usize),
        k: usize,
        (stride, pad, dilation): (usize, (usize, usize), usize),
        l: usize,
    ) -> ConvGeometry<1> {
        ConvGeometry {
            batch,
            in_channels: cin,
            out_channels: cout,
            groups,
            kernel: [k],
            stride: [stride],
            padding: [pad],
            dilation: [dilation],
            input: [l],
        }
    }

    /// Stride 1 (the blocked kernels: full and partial output-channel blocks,
    /// tiles cut at the row's end, padding on either side), strides 2 and 3,
    /// dilation and groups (the plain loops).
    fn cases() -> Vec<ConvGeometry<1>> {
        vec![
            geometry(3, (4, 16, 1), 15, (1, (7, 7), 1), 150),
            geometry(2, (3, 11, 1), 5, (1, (0, 0), 1), 37),
            geometry(2, (4, 6, 2), 3, (1, (2, 1), 2), 20),
            geometry(17, (2, 9, 1), 7, (1, (3, 3), 1), 300),
            geometry(2, (4, 4, 4), 3, (2, (1, 1), 1), 19),
            geometry(3, (2, 3, 1), 4, (3, (0, 2), 2), 23),
        ]
    }

    fn run<T: Num>(g: &ConvGeometry<1>, seed: u64) -> Vec<Vec<T>> {
        let mut rng = Rng::new(seed);
        let (x, w, b, gy): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) =
            (rng.values(g.input_len()), rng.values(g.weight_len()), rng.values(g.out_channels), rng.values(g.output_len()));
        vec![forward(&x, &w, Some(&b), g), grad_input(&gy, &w, g), grad_weight(&gy, &x, g), grad_bias(&gy, g.out_channels, g.out_len(0))]
    }

    #[test]
    fn every_path_matches_the_definition() {
        for (n, g) in cases().iter().enumerate() {
            let seed = n as u64;
            let mut rng = Rng::new(seed);
            let (x, w, b, gy): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) =
                (rng.values(g.input_len()), rng.values(g.weight_len()), rng.values(g.out_channels), rng.values(g.output_len()));
            let [mut y, gx, gw] = reference_conv2d(&as_2d(g), &x, &w, &gy);
            let lout = g.out_len(0);
            for (i, v) in y.iter_mut().enumerate() {
                *v += b[(i / lout) % g.out_channels];
            }
            let gb: Vec<f64> = (0..g.out_channels)
                .map(|o| gy.iter().enumerate().filter(|(i, _)| (i / lout) % g.out_channels == o).map(|(_, v)| v).sum())
                .collect();
            let want = [y, gx, gw, gb];
            for (got, want) in run::<f64>(g, seed).iter().zip(&want) {
                assert_close(got, want, 1e-12, &format!("f64 {g:?}"));
            }
            on_every_path(1e-5, &format!("f32 {g:?}"), || run::<f32>(g, seed));
            for isa in Isa::available() {
                let got = crate::with_isa(isa, || run::<f32>(g, seed));
                for (got, want) in got.iter().zip(&want) {
                    assert_close(&wide(got), want, 1e-4, &format!("f32 on {isa:?} {g:?}"));
                }
            }
        }
    }

    /// The weight gradient's chunked sum gives the same bits on any number
    /// of threads, on every path.
    #[test]
    fn same_bits_on_any_thread_count() {
        let g = cases()[3];
        for isa in Isa::available() {
            let (one, three) = crate::with_isa(isa, || (on_threads(1, || run::<f32>(&g, 9)), on_threads(3, || run::<f32>(&g, 9))));
            assert_eq!(one, three, "{isa:?}");
        }
    }
}
