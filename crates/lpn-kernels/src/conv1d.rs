//! A direct 1-D convolution: forward, and the two backward products (input
//! gradient, weight gradient), plus the bias's gradient. Nothing is allocated
//! but the outputs and small per-thread scratch rows.
//!
//! Stride 1 (the common case, any padding, dilation and groups) has blocked
//! kernels for f32: the input rows are copied once into zero-padded scratch
//! rows, so the hot loops have no bounds to test, and each output tile keeps
//! several output channels × positions in registers, so every loaded value
//! feeds many multiply-adds. The input gradient is the forward kernel run on
//! the output gradient with the kernels transposed and flipped. The weight
//! gradient of a wide layer (one group, at least two vectors of output
//! channels, four input channels) transposes the output gradient and the
//! input to positions × channels and sums outer products per position in
//! register tiles of output × input channels; narrow layers use dot-product
//! tiles along the positions. The hot loops
//! and their drivers are written for AVX-512 and AVX2+FMA (`x86::conv1d`),
//! picked at run time ([`crate::Isa`]). Other strides, f64 and the portable path take plain
//! loops over contiguous rows.
//!
//! Determinism: every output value is computed by one thread in a fixed order;
//! the weight gradient sums per-chunk partials over a fixed cut of the batch
//! (independent of the thread count) in chunk order.
//!
//! Semantics: PyTorch's cross-correlation with padding, stride, dilation and
//! groups.

use rayon::prelude::*;

use crate::{ConvGeometry, Num};

/// Which blocked kernel [`blocked`] runs.
#[derive(Clone, Copy)]
enum Blocked<'a, T> {
    /// With the bias to add, if any (read by the x86 kernels only: elsewhere
    /// nothing is blocked).
    Forward(#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] Option<&'a [T]>),
    GradInput,
    GradWeight,
}

/// The blocked kernel `which` on `(a, b)`, where it applies: f32 operands,
/// a vector instruction set (`x86::conv1d`), stride 1; None elsewhere.
fn blocked<T: Num>(which: Blocked<T>, (a, b): (&[T], &[T]), g: &ConvGeometry<1>) -> Option<Vec<T>> {
    #[cfg(target_arch = "x86_64")]
    if let (Some(a), Some(b)) = (T::as_f32(a), T::as_f32(b)) {
        use crate::x86::conv1d as simd;
        let isa = crate::isa::current();
        let out = match which {
            Blocked::Forward(bias) => match bias.map(T::as_f32) {
                Some(None) => return None,
                Some(Some(bias)) => simd::forward(isa, (a, b), Some(bias), g),
                None => simd::forward(isa, (a, b), None, g),
            },
            Blocked::GradInput => simd::grad_input(isa, (a, b), g),
            Blocked::GradWeight => simd::grad_weight(isa, (a, b), g),
        };
        return out.map(T::from_f32_vec);
    }
    let _ = (which, a, b, g);
    None
}

/// `y = conv1d(x, w) (+ bias per output channel)`: x `[B, Cin, L]`, w `[Cout,
/// Cin/groups, K]`, y `[B, Cout, Lout]`. Panics if the operands do not fit `g`.
pub fn forward<T: Num>(x: &[T], w: &[T], bias: Option<&[T]>, g: &ConvGeometry<1>) -> Vec<T> {
    g.assert_fits(x.len(), w.len());
    assert!(bias.is_none_or(|b| b.len() == g.out_channels), "bias does not fit {g:?}");
    // The blocked path adds the bias as it stores each tile.
    if let Some(y) = blocked(Blocked::Forward(bias), (x, w), g) {
        return y;
    }
    let mut y = forward_portable(x, w, g);
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
    if let Some(gx) = blocked(Blocked::<T>::GradInput, (gy, w), g) {
        return gx;
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
    if let Some(gw) = blocked(Blocked::<T>::GradWeight, (gy, x), g) {
        return gw;
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
/// channel: each row in lanes added in f64 (`norm`'s sums), the rows of a
/// channel in batch order, channels in parallel (one thread summed every
/// row in order before: 3 % of the FCN's step, serial).
pub fn grad_bias<T: Num>(gy: &[T], channels: usize, len: usize) -> Vec<T> {
    let items = gy.len().checked_div(channels * len).unwrap_or(0);
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let total: f64 = (0..items)
                .map(|b| {
                    let row = &gy[(b * channels + c) * len..][..len];
                    crate::norm::lane_sum(row, row, |v, _| v)
                })
                .sum();
            T::from_f64(total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Isa;
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
    /// dilation and groups (the plain loops), and wide layers.
    fn cases() -> Vec<ConvGeometry<1>> {
        vec![
            geometry(3, (4, 16, 1), 15, (1, (7, 7), 1), 150),
            geometry(2, (3, 11, 1), 5, (1, (0, 0), 1), 37),
            geometry(2, (4, 6, 2), 3, (1, (2, 1), 2), 20),
            geometry(17, (2, 9, 1), 7, (1, (3, 3), 1), 300),
            geometry(2, (4, 4, 4), 3, (2, (1, 1), 1), 19),
            geometry(3, (2, 3, 1), 4, (3, (0, 2), 2), 23),
            // Every tap count the blocked tiles unroll (1–9) and one past
            // them (15, above), each with a full and a partial block of
            // output channels.
            geometry(2, (3, 9, 1), 1, (1, (0, 0), 1), 40),
            geometry(2, (3, 9, 1), 2, (1, (0, 1), 1), 40),
            geometry(2, (3, 9, 1), 4, (1, (1, 2), 1), 40),
            geometry(2, (3, 9, 1), 6, (1, (2, 3), 3), 60),
            geometry(2, (3, 9, 1), 9, (1, (4, 4), 1), 40),
            // Rows that end one and two vectors into a three-vector tile.
            geometry(2, (3, 9, 1), 3, (1, (1, 1), 1), 64),
            geometry(2, (3, 9, 1), 3, (1, (1, 1), 1), 80),
            // Wide layers (the channels-last weight gradient): a partial
            // vector of channels, column tails, several position blocks.
            geometry(3, (5, 40, 1), 5, (1, (2, 2), 1), 150),
            geometry(2, (7, 64, 1), 8, (1, (3, 4), 1), 300),
            geometry(2, (3, 33, 1), 3, (1, (2, 2), 2), 50),
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
        for g in [cases()[3], cases()[12]] {
            for isa in Isa::available() {
                let (one, three) = crate::with_isa(isa, || (on_threads(1, || run::<f32>(&g, 9)), on_threads(3, || run::<f32>(&g, 9))));
                assert_eq!(one, three, "{isa:?} {g:?}");
            }
        }
    }
}
