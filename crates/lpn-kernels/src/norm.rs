//! Batch normalisation over `[B, C, plane]` (plane = the product of the
//! spatial axes, 1 for `[B, C]`), with an optional ReLU after it, and its
//! gradients: PyTorch's `BatchNorm1d/2d` in training mode (batch statistics,
//! biased variance in the normalisation, unbiased variance handed back for
//! the running statistics) and in evaluation mode (a per-channel scale and
//! shift).
//!
//! Statistics are exact to f64 rounding whatever the input's mean: each
//! channel's sums are two passes in f64 (the mean, then the squares of the
//! deviations from it), and each output is `(x − mean)·invstd·γ + β`
//! evaluated in f64, so an input of large mean and small spread loses
//! nothing to cancellation. The sums run over contiguous runs of the plane
//! in [`LANES`] interleaved partial sums (vectorisable), added in a fixed
//! order.
//!
//! Work is split with rayon as elsewhere in the crate: the per-channel sums
//! in parallel over channels, each channel summed by one thread in sample
//! order; the elementwise passes in fixed chunks of whole planes. Results do
//! not depend on the thread count.

use rayon::prelude::*;

use crate::Num;
use crate::act::{masked, relu_of};
use crate::fill::build;

/// Elements per parallel task of the elementwise passes.
const CHUNK: usize = 1 << 14;
/// Interleaved partial sums per channel: wide enough for an AVX-512 register
/// of f64.
const LANES: usize = 8;

/// What a training pass leaves for its backward pass and for the running
/// statistics, one value per channel, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f64>,
    /// `1 / sqrt(biased variance + eps)`.
    pub invstd: Vec<f64>,
    /// The variance with Bessel's correction, `N / (N − 1)` (1 when N = 1),
    /// as PyTorch's running variance takes it.
    pub unbiased_var: Vec<f64>,
}

/// The layout of a batch-norm operand: `[batch, channels, plane]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    channels: usize,
    plane: usize,
    /// Values per channel: batch · plane.
    count: usize,
}

impl Layout {
    /// Panics unless `len` is whole, non-empty `[B, channels, plane]` blocks.
    fn of(len: usize, channels: usize, plane: usize) -> Layout {
        assert!(
            channels > 0 && plane > 0 && len > 0 && len.is_multiple_of(channels * plane),
            "a batch-norm operand of {len} values does not fit {channels} channels of {plane}"
        );
        Layout { channels, plane, count: len / channels }
    }

    /// Channel `c`'s runs of `v`, one per sample, in sample order.
    fn runs<'a, T>(&self, v: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> {
        v.chunks_exact(self.plane).skip(c).step_by(self.channels)
    }
}

/// `Σ term(a[i], b[i])` over two runs of one length, in [`LANES`] partial
/// sums added in a fixed order.
#[inline(always)]
fn lane_sum<T: Num>(a: &[T], b: &[T], term: impl Fn(T, T) -> f64) -> [f64; LANES] {
    let mut acc = [0f64; LANES];
    let (a_whole, b_whole) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_whole.remainder(), b_whole.remainder());
    for (ca, cb) in a_whole.zip(b_whole) {
        for k in 0..LANES {
            acc[k] += term(ca[k], cb[k]);
        }
    }
    for (k, (&va, &vb)) in a_rest.iter().zip(b_rest).enumerate() {
        acc[k] += term(va, vb);
    }
    acc
}

/// The lanes' total, in a fixed order.
fn total(lanes: [f64; LANES]) -> f64 {
    lanes.iter().sum()
}

/// One channel's `(mean, biased variance)`: two passes in f64.
fn channel_moments<T: Num>(x: &[T], lay: &Layout, c: usize) -> (f64, f64) {
    let n = lay.count as f64;
    let mean = lay.runs(x, c).map(|run| total(lane_sum(run, run, |v, _| v.to_f64()))).sum::<f64>() / n;
    let squares = lay.runs(x, c).map(|run| total(lane_sum(run, run, |v, _| (v.to_f64() - mean) * (v.to_f64() - mean)))).sum::<f64>();
    (mean, squares / n)
}

/// `out[i] = f(channel, a[i], b[i])` over `[B, C, plane]`, written once, in
/// parallel chunks of whole planes.
fn map_planes<T: Num>(a: &[T], b: &[T], lay: &Layout, f: impl Fn(usize, T, T) -> T + Sync) -> Vec<T> {
    build(a.len(), lay.plane, CHUNK, |first_row, out| {
        let start = first_row * lay.plane;
        let rows = a[start..].chunks(lay.plane).zip(b[start..].chunks(lay.plane));
        for (r, (ra, rb)) in rows.enumerate() {
            if out.remaining() == 0 {
                break;
            }
            let c = (first_row + r) % lay.channels;
            out.extend(ra.iter().zip(rb).map(|(&va, &vb)| f(c, va, vb)));
        }
    })
}

/// Training-mode batch norm of `x [B, C, plane]` (C = `gamma.len()`):
/// `y = (x − mean)·invstd·γ + β` per channel with the batch's mean and
/// biased variance, then ReLU when `relu`; returns `y` and the statistics
/// for the backward pass and the running averages. Panics unless `x` is made
/// of whole, non-empty planes and `beta` has `gamma`'s length.
pub fn train_forward<T: Num>(x: &[T], gamma: &[T], beta: &[T], plane: usize, eps: f64, relu: bool) -> (Vec<T>, BatchStats) {
    assert_eq!(gamma.len(), beta.len(), "γ and β differ in length");
    let lay = Layout::of(x.len(), gamma.len(), plane);
    let moments: Vec<(f64, f64)> = (0..lay.channels).into_par_iter().map(|c| channel_moments(x, &lay, c)).collect();
    let n = lay.count as f64;
    let stats = BatchStats {
        mean: moments.iter().map(|m| m.0).collect(),
        invstd: moments.iter().map(|m| 1.0 / (m.1 + eps).sqrt()).collect(),
        unbiased_var: moments.iter().map(|m| m.1 * n / (n - 1.0).max(1.0)).collect(),
    };
    // y = (x − mean)·a + β with a = invstd·γ, in f64.
    let scale: Vec<f64> = stats.invstd.iter().zip(gamma).map(|(s, g)| s * g.to_f64()).collect();
    let shift: Vec<f64> = beta.iter().map(|b| b.to_f64()).collect();
    let mean = &stats.mean;
    let y = map_planes(x, x, &lay, |c, v, _| {
        let out = T::from_f64((v.to_f64() - mean[c]) * scale[c] + shift[c]);
        if relu { relu_of(out) } else { out }
    });
    (y, stats)
}

/// The gradients `(dx, dγ, dβ)` of a training-mode batch norm from the
/// gradient `gy` of its output, its input `x`, its γ (as f64) and the
/// statistics of its forward pass; with `relu_out` (the output of a fused
/// ReLU) `gy` is first masked by `output > 0`. One pass per channel for
/// `dβ = Σ dy`, `dγ = Σ dy·x̂`, then
/// `dx = γ·invstd/N · (N·dy − dβ − x̂·dγ)`. Panics on operands that do not fit.
pub fn train_backward<T: Num>(
    gy: &[T],
    x: &[T],
    relu_out: Option<&[T]>,
    gamma: &[f64],
    stats: &BatchStats,
    plane: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let lay = Layout::of(x.len(), gamma.len(), plane);
    assert!(gy.len() == x.len() && relu_out.is_none_or(|y| y.len() == x.len()), "gradient, input and output differ in length");
    assert!(stats.mean.len() == lay.channels && stats.invstd.len() == lay.channels, "statistics do not fit {} channels", lay.channels);
    let g = masked_grad(gy, relu_out, &lay);
    let gy = g.as_deref().unwrap_or(gy);
    let sums: Vec<(f64, f64)> = (0..lay.channels)
        .into_par_iter()
        .map(|c| {
            let mean = stats.mean[c];
            let (mut dbeta, mut dcentered) = (0.0, 0.0);
            for (rg, rx) in lay.runs(gy, c).zip(lay.runs(x, c)) {
                dbeta += total(lane_sum(rg, rg, |d, _| d.to_f64()));
                dcentered += total(lane_sum(rg, rx, |d, v| d.to_f64() * (v.to_f64() - mean)));
            }
            (dbeta, dcentered)
        })
        .collect();
    let n = lay.count as f64;
    // dx = a·(dy − dβ/N − (x − mean)·k), a = γ·invstd, k = invstd²·Σdy(x − mean)/N.
    let coef: Vec<[f64; 4]> = (0..lay.channels)
        .map(|c| {
            let s = stats.invstd[c];
            [gamma[c] * s, sums[c].0 / n, s * s * sums[c].1 / n, stats.mean[c]]
        })
        .collect();
    let gx = map_planes(gy, x, &lay, |c, d, v| {
        let [a, shift, k, mean] = coef[c];
        T::from_f64(a * (d.to_f64() - shift - (v.to_f64() - mean) * k))
    });
    let dgamma = sums.iter().zip(&stats.invstd).map(|(s, i)| T::from_f64(s.1 * i)).collect();
    let dbeta = sums.iter().map(|s| T::from_f64(s.0)).collect();
    (gx, dgamma, dbeta)
}

/// `gy · [output > 0]` when a ReLU was fused (`relu_out` its output), else None.
fn masked_grad<T: Num>(gy: &[T], relu_out: Option<&[T]>, lay: &Layout) -> Option<Vec<T>> {
    relu_out.map(|y| map_planes(gy, y, lay, |_, g, v| masked(g, v)))
}

/// Evaluation-mode batch norm as a per-channel affine map of `x [B, C,
/// plane]` (C = `scale.len()`): `x·scale + shift`, then ReLU when `relu`
/// (the caller makes `scale = γ/sqrt(var + eps)`, `shift = β − mean·scale`
/// from the running statistics). Panics on operands that do not fit.
pub fn affine<T: Num>(x: &[T], scale: &[T], shift: &[T], plane: usize, relu: bool) -> Vec<T> {
    assert_eq!(scale.len(), shift.len(), "scale and shift differ in length");
    let lay = Layout::of(x.len(), scale.len(), plane);
    map_planes(x, x, &lay, |c, v, _| {
        let out = v * scale[c] + shift[c];
        if relu { relu_of(out) } else { out }
    })
}

/// The gradients `(dx, dscale, dshift)` of [`affine`] from the gradient `gy`
/// of its output, its input `x` and its scale (as f64: an f32 product is
/// exact in f64, so `dx` is the product in `T`); with `relu_out` (the output
/// of a fused ReLU) `gy` is first masked by `output > 0`. Panics on operands
/// that do not fit.
pub fn affine_backward<T: Num>(gy: &[T], x: &[T], relu_out: Option<&[T]>, scale: &[f64], plane: usize) -> (Vec<T>, Vec<T>, Vec<T>) {
    let lay = Layout::of(x.len(), scale.len(), plane);
    assert!(gy.len() == x.len() && relu_out.is_none_or(|y| y.len() == x.len()), "gradient, input and output differ in length");
    let g = masked_grad(gy, relu_out, &lay);
    let gy = g.as_deref().unwrap_or(gy);
    let sums: Vec<(f64, f64)> = (0..lay.channels)
        .into_par_iter()
        .map(|c| {
            let (mut dshift, mut dscale) = (0.0, 0.0);
            for (rg, rx) in lay.runs(gy, c).zip(lay.runs(x, c)) {
                dshift += total(lane_sum(rg, rg, |d, _| d.to_f64()));
                dscale += total(lane_sum(rg, rx, |d, v| d.to_f64() * v.to_f64()));
            }
            (dscale, dshift)
        })
        .collect();
    let gx = map_planes(gy, gy, &lay, |c, d, _| T::from_f64(d.to_f64() * scale[c]));
    (gx, sums.iter().map(|s| T::from_f64(s.0)).collect(), sums.iter().map(|s| T::from_f64(s.1)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Rng, assert_close, on_threads, wide};

    /// Batch norm straight from the definition, in f64, element by element:
    /// `(y, dx, dγ, dβ, unbiased variance)` for output gradient `gy` (ReLU
    /// after it when `relu`, its gradient masked by `y > 0`).
    fn reference(x: &[f64], gamma: &[f64], beta: &[f64], gy: &[f64], plane: usize, eps: f64, relu: bool) -> [Vec<f64>; 5] {
        let c_n = gamma.len();
        let n = (x.len() / c_n) as f64;
        let chan = |i: usize| (i / plane) % c_n;
        let mut mean = vec![0.0; c_n];
        for (i, &v) in x.iter().enumerate() {
            mean[chan(i)] += v / n;
        }
        let mut var = vec![0.0; c_n];
        for (i, &v) in x.iter().enumerate() {
            var[chan(i)] += (v - mean[chan(i)]).powi(2) / n;
        }
        let xhat: Vec<f64> = x.iter().enumerate().map(|(i, &v)| (v - mean[chan(i)]) / (var[chan(i)] + eps).sqrt()).collect();
        let pre: Vec<f64> = xhat.iter().enumerate().map(|(i, &h)| h * gamma[chan(i)] + beta[chan(i)]).collect();
        let y: Vec<f64> = pre.iter().map(|&v| if relu { v.max(0.0) } else { v }).collect();
        let g: Vec<f64> = gy.iter().zip(&y).map(|(&d, &v)| if !relu || v > 0.0 { d } else { 0.0 }).collect();
        let (mut dgamma, mut dbeta) = (vec![0.0; c_n], vec![0.0; c_n]);
        for i in 0..x.len() {
            dbeta[chan(i)] += g[i];
            dgamma[chan(i)] += g[i] * xhat[i];
        }
        let dx = (0..x.len())
            .map(|i| {
                let c = chan(i);
                gamma[c] / (var[c] + eps).sqrt() / n * (n * g[i] - dbeta[c] - xhat[i] * dgamma[c])
            })
            .collect();
        let unbiased = var.iter().map(|v| v * n / (n - 1.0)).collect();
        [y, dx, dgamma, dbeta, unbiased]
    }

    fn run_train<T: Num>(x: &[T], gamma: &[T], beta: &[T], gy: &[T], plane: usize, relu: bool) -> [Vec<f64>; 5] {
        let (y, stats) = train_forward(x, gamma, beta, plane, 1e-5, relu);
        let gamma64 = wide(gamma);
        let (dx, dgamma, dbeta) = train_backward(gy, x, relu.then_some(&y[..]), &gamma64, &stats, plane);
        [wide(&y), wide(&dx), wide(&dgamma), wide(&dbeta), stats.unbiased_var]
    }

    /// Training forward and backward against the definition, f64 and f32,
    /// with and without ReLU, on `[B, C]` (plane 1), a 1-D plane that is no
    /// multiple of the lanes and one that crosses parallel chunks.
    #[test]
    fn training_matches_the_definition() {
        let mut rng = Rng::new(3);
        for (b, c, plane) in [(8, 5, 1), (3, 4, 37), (2, 3, CHUNK / 2 + 5)] {
            let n = b * c * plane;
            let x: Vec<f64> = rng.values::<f64>(n).iter().map(|v| v * 3.0 + 0.5).collect();
            let (gamma, beta, gy): (Vec<f64>, Vec<f64>, Vec<f64>) = (rng.values(c), rng.values(c), rng.values(n));
            for relu in [false, true] {
                let want = reference(&x, &gamma, &beta, &gy, plane, 1e-5, relu);
                let got = run_train(&x, &gamma, &beta, &gy, plane, relu);
                let narrow = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
                let got32 = run_train(&narrow(&x), &narrow(&gamma), &narrow(&beta), &narrow(&gy), plane, relu);
                let want32 =
                    reference(&wide(&narrow(&x)), &wide(&narrow(&gamma)), &wide(&narrow(&beta)), &wide(&narrow(&gy)), plane, 1e-5, relu);
                for k in 0..5 {
                    assert_close(&got[k], &want[k], 1e-10, &format!("f64 {b}×{c}×{plane} relu {relu}: output {k}"));
                    assert_close(&got32[k], &want32[k], 2e-6, &format!("f32 {b}×{c}×{plane} relu {relu}: output {k}"));
                }
            }
        }
    }

    /// An f32 input of mean 10⁴ and spread 10⁻¹ (values exact in f32): the
    /// statistics and output keep their accuracy, where f32 sums of x and x²
    /// (E[x²] − E[x]²) lose every digit of the variance.
    #[test]
    fn a_large_mean_loses_nothing_to_cancellation() {
        let (b, c, plane) = (4, 2, 300);
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..b * c * plane).map(|_| 10_000.0 + (rng.uniform() * 100.0).round() as f32 / 1024.0).collect();
        let (gamma, beta, gy) = (vec![1.0f32, 2.0], vec![0.0f32, -1.0], rng.values::<f32>(x.len()));
        let want = reference(&wide(&x), &wide(&gamma), &wide(&beta), &wide(&gy), plane, 1e-5, false);
        let got = run_train(&x, &gamma, &beta, &gy, plane, false);
        for k in 0..5 {
            assert_close(&got[k], &want[k], 1e-6, &format!("output {k}"));
        }
        assert!(want[4].iter().all(|&v| v > 1e-3), "the spread is not tiny: {:?}", want[4]);
    }

    /// Evaluation's affine map and its gradients against the definition.
    #[test]
    fn affine_matches_the_definition() {
        let (b, c, plane) = (3, 4, 19);
        let mut rng = Rng::new(4);
        let (x, scale, shift, gy): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) =
            (rng.values(b * c * plane), rng.values(c), rng.values(c), rng.values(b * c * plane));
        for relu in [false, true] {
            let y = affine(&x, &scale, &shift, plane, relu);
            let (dx, dscale, dshift) = affine_backward(&gy, &x, relu.then_some(&y[..]), &scale, plane);
            let (mut want_dscale, mut want_dshift) = (vec![0.0; c], vec![0.0; c]);
            for i in 0..x.len() {
                let ch = (i / plane) % c;
                let pre = x[i] * scale[ch] + shift[ch];
                assert_eq!(y[i], if relu { pre.max(0.0) } else { pre });
                let g = if !relu || pre > 0.0 { gy[i] } else { 0.0 };
                assert_eq!(dx[i], g * scale[ch]);
                want_dscale[ch] += g * x[i];
                want_dshift[ch] += g;
            }
            assert_close(&dscale, &want_dscale, 1e-12, "dscale");
            assert_close(&dshift, &want_dshift, 1e-12, "dshift");
        }
    }

    /// Every output and gradient is the same bits on 1 and 3 threads.
    #[test]
    fn same_bits_on_any_thread_count() {
        let (b, c, plane) = (5, 7, CHUNK / 3 + 1);
        let mut rng = Rng::new(12);
        let (x, gamma, beta, gy): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) =
            (rng.values(b * c * plane), rng.values(c), rng.values(c), rng.values(b * c * plane));
        let run = || run_train(&x, &gamma, &beta, &gy, plane, true);
        assert_eq!(on_threads(1, run), on_threads(3, run));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn operands_that_do_not_fit_panic() {
        train_forward(&[1f32; 10], &[1.0; 3], &[0.0; 3], 1, 1e-5, false);
    }
}
