//! Batch normalisation over `[B, C, plane]` (plane = the product of the
//! spatial axes, 1 for `[B, C]`), with an optional ReLU after it, and its
//! gradients: PyTorch's `BatchNorm1d/2d` in training mode (batch statistics,
//! biased variance in the normalisation, unbiased variance handed back for
//! the running statistics) and in evaluation mode (a per-channel scale and
//! shift).
//!
//! Statistics keep their accuracy whatever the input's mean: each channel's
//! sums are two passes (the mean, then the squares of the deviations from
//! it), each contiguous run of a plane summed in [`LANES`] interleaved
//! partial sums in `T` (vectorisable), the runs' sums added in f64 in a fixed
//! order; and deviations are taken from the mean split as `hi + lo` in `T`
//! ([`Centre`]), so an input of large mean and small spread loses nothing to
//! cancellation. The elementwise passes compute in `T` with the per-channel
//! constants hoisted, one pass each: the forward output, the backward's
//! sums (the fused ReLU's mask applied on the fly) and the input gradient.
//!
//! Work is split with rayon as elsewhere in the crate: the per-channel sums
//! in parallel over channels, each channel summed by one thread in sample
//! order; the elementwise passes in fixed chunks of whole planes. Results do
//! not depend on the thread count.

use rayon::prelude::*;

use crate::Num;
use crate::act::{masked, relu_of};
use crate::fill::{build, build_runs};

/// Elements per parallel task of the elementwise passes.
const CHUNK: usize = 1 << 14;
/// Interleaved partial sums per run: one AVX-512 register of f32.
const LANES: usize = 16;

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

    /// The offsets of channel `c`'s runs (one per sample, in sample order).
    fn runs(&self, c: usize) -> impl Iterator<Item = usize> {
        let (plane, stride) = (self.plane, self.plane * self.channels);
        (0..self.count / plane).map(move |b| b * stride + c * plane)
    }
}

/// A channel's mean split as `hi + lo` in `T` (`hi` the mean rounded, `lo`
/// what rounding lost), so `(x − hi) − lo` is `x − mean` to `T`'s precision
/// even for a large mean: `x − hi` is exact for `x` near the mean.
#[derive(Clone, Copy)]
struct Centre<T> {
    hi: T,
    lo: T,
}

impl<T: Num> Centre<T> {
    fn of(mean: f64) -> Centre<T> {
        let hi = T::from_f64(mean);
        Centre { hi, lo: T::from_f64(mean - hi.to_f64()) }
    }

    #[inline(always)]
    fn dev(self, v: T) -> T {
        (v - self.hi) - self.lo
    }
}

/// `Σ term(a[i], b[i])` over two runs of one length: [`lane_sum_3`].
#[inline(always)]
pub(crate) fn lane_sum<T: Num>(a: &[T], b: &[T], term: impl Fn(T, T) -> T) -> f64 {
    lane_sum_3(a, b, b, |va, vb, _| term(va, vb))
}

/// One channel's `(mean, biased variance)`: two passes, the first summing
/// the deviations from the channel's first value (exact for values near it,
/// and small, so `T`'s partial sums lose nothing to a large mean).
fn channel_moments<T: Num>(x: &[T], lay: &Layout, c: usize) -> (f64, f64) {
    let n = lay.count as f64;
    let run = |o: usize| &x[o..o + lay.plane];
    let first = x[c * lay.plane];
    let mean = first.to_f64() + lay.runs(c).map(|o| lane_sum(run(o), run(o), |v, _| v - first)).sum::<f64>() / n;
    let centre = Centre::<T>::of(mean);
    let squares = lay
        .runs(c)
        .map(|o| {
            lane_sum(run(o), run(o), |v, _| {
                let d = centre.dev(v);
                d * d
            })
        })
        .sum::<f64>();
    (mean, squares / n)
}

/// `out[i] = f(a[i], b[i], m[i])` over `[B, C, plane]` (`m` the fused ReLU's
/// output, or `a` again) with `f = row(channel)` made once per plane, so its
/// per-channel constants are hoisted out of the loop; written once, in
/// parallel chunks of whole planes.
fn map_planes<T: Num, F: Fn(T, T, T) -> T>(a: &[T], b: &[T], m: &[T], lay: &Layout, row: impl Fn(usize) -> F + Sync) -> Vec<T> {
    build(a.len(), lay.plane, CHUNK, |first_row, out| {
        let start = first_row * lay.plane;
        let rows = a[start..].chunks(lay.plane).zip(b[start..].chunks(lay.plane)).zip(m[start..].chunks(lay.plane));
        for (r, ((ra, rb), rm)) in rows.enumerate() {
            if out.remaining() == 0 {
                break;
            }
            let f = row((first_row + r) % lay.channels);
            out.extend(ra.iter().zip(rb).zip(rm).map(|((&va, &vb), &vm)| f(va, vb, vm)));
        }
    })
}

/// Training-mode batch norm of `x [B, C, plane]` (C = `gamma.len()`):
/// `y = (x − mean)·invstd·γ + β` per channel with the batch's mean and
/// biased variance, then ReLU when `relu`; returns `y` and the statistics
/// for the backward pass and the running averages. Panics unless `x` is made
/// of whole, non-empty planes and `beta` has `gamma`'s length.
pub fn train_forward<T: Num>(x: &[T], gamma: &[T], beta: &[T], plane: usize, eps: f64, relu: bool) -> (Vec<T>, BatchStats) {
    train_forward_on(x, gamma, beta, (plane, eps, relu), by_channel(gamma.len(), plane))
}

/// Whether a pass over a batch-norm operand of `channels` planes of `plane`
/// goes channel by channel (each channel's statistics and then its output in
/// one task, its values read from cache the second time) rather than
/// statistics first and then the output by chunks of planes (two reads from
/// memory): where the channels are enough to keep every thread busy and the
/// planes long enough that a task's runs are not single values. The values
/// are the same either way.
fn by_channel(channels: usize, plane: usize) -> bool {
    channels >= 4 * rayon::current_num_threads() && plane >= 64
}

/// [`train_forward`], channel by channel or not as `by_channel` says.
fn train_forward_on<T: Num>(
    x: &[T],
    gamma: &[T],
    beta: &[T],
    (plane, eps, relu): (usize, f64, bool),
    by_channel: bool,
) -> (Vec<T>, BatchStats) {
    assert_eq!(gamma.len(), beta.len(), "γ and β differ in length");
    let lay = Layout::of(x.len(), gamma.len(), plane);
    let n = lay.count as f64;
    let stats_of = |moments: &[(f64, f64)]| BatchStats {
        mean: moments.iter().map(|m| m.0).collect(),
        invstd: moments.iter().map(|m| invstd_of(m.1, eps)).collect(),
        unbiased_var: moments.iter().map(|m| m.1 * n / (n - 1.0).max(1.0)).collect(),
    };
    // Channel `c`'s output of one value, from its mean and inverse std.
    let output = |c: usize, mean: f64, invstd: f64| {
        let (centre, scale, shift) = (Centre::<T>::of(mean), T::from_f64(invstd * gamma[c].to_f64()), beta[c]);
        move |v: T| {
            let out = centre.dev(v) * scale + shift;
            if relu { relu_of(out) } else { out }
        }
    };
    if by_channel {
        let (y, moments) = build_runs(x.len(), plane, lay.channels, |c, outs| {
            let (mean, var) = channel_moments(x, &lay, c);
            let f = output(c, mean, invstd_of(var, eps));
            for (o, out) in lay.runs(c).zip(outs) {
                out.extend(x[o..o + plane].iter().map(|&v| f(v)));
            }
            (mean, var)
        });
        return (y, stats_of(&moments));
    }
    let moments: Vec<(f64, f64)> = (0..lay.channels).into_par_iter().map(|c| channel_moments(x, &lay, c)).collect();
    let stats = stats_of(&moments);
    let y = map_planes(x, x, x, &lay, |c| {
        let f = output(c, stats.mean[c], stats.invstd[c]);
        move |v: T, _, _| f(v)
    });
    (y, stats)
}

/// `1 / sqrt(var + eps)`.
fn invstd_of(var: f64, eps: f64) -> f64 {
    1.0 / (var + eps).sqrt()
}

/// The gradients `(dx, dγ, dβ)` of a training-mode batch norm from the
/// gradient `gy` of its output, its input `x`, its γ (as f64) and the
/// statistics of its forward pass; with `relu_out` (the output of a fused
/// ReLU) `gy` is masked by `output > 0` as it is read. One pass per channel
/// for `dβ = Σ dy`, `dγ = Σ dy·x̂`, then one for
/// `dx = γ·invstd/N · (N·dy − dβ − x̂·dγ)`. Panics on operands that do not fit.
pub fn train_backward<T: Num>(
    gy: &[T],
    x: &[T],
    relu_out: Option<&[T]>,
    gamma: &[f64],
    stats: &BatchStats,
    plane: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    train_backward_on((gy, x, relu_out), gamma, stats, plane, by_channel(gamma.len(), plane))
}

/// [`train_backward`], channel by channel or not as `by_channel` says.
fn train_backward_on<T: Num>(
    (gy, x, relu_out): (&[T], &[T], Option<&[T]>),
    gamma: &[f64],
    stats: &BatchStats,
    plane: usize,
    by_channel: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let lay = Layout::of(x.len(), gamma.len(), plane);
    assert!(gy.len() == x.len() && relu_out.is_none_or(|y| y.len() == x.len()), "gradient, input and output differ in length");
    assert!(stats.mean.len() == lay.channels && stats.invstd.len() == lay.channels, "statistics do not fit {} channels", lay.channels);
    let mask = relu_out.unwrap_or(gy);
    let relu = relu_out.is_some();
    let grad = move |d: T, m: T| if relu { masked(d, m) } else { d };
    // Channel `c`'s `(Σ dy, Σ dy·(x − mean))`.
    let sums_of = |c: usize| {
        let centre = Centre::<T>::of(stats.mean[c]);
        let (mut dbeta, mut dcentered) = (0.0, 0.0);
        for o in lay.runs(c) {
            let (rg, rm, rx) = (&gy[o..o + plane], &mask[o..o + plane], &x[o..o + plane]);
            dbeta += lane_sum(rg, rm, grad);
            dcentered += lane_sum_3(rg, rm, rx, |d, m, v| grad(d, m) * centre.dev(v));
        }
        (dbeta, dcentered)
    };
    let n = lay.count as f64;
    // dx = a·(dy − dβ/N − (x − mean)·k), a = γ·invstd, k = invstd²·Σdy(x − mean)/N.
    let dx_of = |c: usize, (dbeta, dcentered): (f64, f64)| {
        let s = stats.invstd[c];
        let (a, shift, k) = (T::from_f64(gamma[c] * s), T::from_f64(dbeta / n), T::from_f64(s * s * dcentered / n));
        let centre = Centre::<T>::of(stats.mean[c]);
        move |d: T, v: T, m: T| a * (grad(d, m) - shift - centre.dev(v) * k)
    };
    let (gx, sums) = if by_channel {
        build_runs(x.len(), plane, lay.channels, |c, outs| {
            let sums = sums_of(c);
            let f = dx_of(c, sums);
            for (o, out) in lay.runs(c).zip(outs) {
                out.extend(gy[o..o + plane].iter().zip(&x[o..o + plane]).zip(&mask[o..o + plane]).map(|((&d, &v), &m)| f(d, v, m)));
            }
            sums
        })
    } else {
        let sums: Vec<(f64, f64)> = (0..lay.channels).into_par_iter().map(sums_of).collect();
        (map_planes(gy, x, mask, &lay, |c| dx_of(c, sums[c])), sums)
    };
    let dgamma = sums.iter().zip(&stats.invstd).map(|(s, i)| T::from_f64(s.1 * i)).collect();
    let dbeta = sums.iter().map(|s| T::from_f64(s.0)).collect();
    (gx, dgamma, dbeta)
}

/// `Σ term(a[i], b[i], c[i])` over three runs of one length in [`LANES`]
/// partial sums in `T` (vectorisable), the lanes then added in f64 in a
/// fixed order.
#[inline(always)]
fn lane_sum_3<T: Num>(a: &[T], b: &[T], c: &[T], term: impl Fn(T, T, T) -> T) -> f64 {
    let mut acc = [T::ZERO; LANES];
    let whole = a.len() - a.len() % LANES;
    for ((ca, cb), cc) in a[..whole].chunks_exact(LANES).zip(b[..whole].chunks_exact(LANES)).zip(c[..whole].chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += term(ca[k], cb[k], cc[k]);
        }
    }
    let mut total: f64 = acc.iter().map(|v| v.to_f64()).sum();
    for ((&va, &vb), &vc) in a[whole..].iter().zip(&b[whole..]).zip(&c[whole..]) {
        total += term(va, vb, vc).to_f64();
    }
    total
}

/// Evaluation-mode batch norm as a per-channel affine map of `x [B, C,
/// plane]` (C = `scale.len()`): `x·scale + shift`, then ReLU when `relu`
/// (the caller makes `scale = γ/sqrt(var + eps)`, `shift = β − mean·scale`
/// from the running statistics). Panics on operands that do not fit.
pub fn affine<T: Num>(x: &[T], scale: &[T], shift: &[T], plane: usize, relu: bool) -> Vec<T> {
    assert_eq!(scale.len(), shift.len(), "scale and shift differ in length");
    let lay = Layout::of(x.len(), scale.len(), plane);
    map_planes(x, x, x, &lay, |c| {
        let (a, b) = (scale[c], shift[c]);
        move |v: T, _, _| {
            let out = v * a + b;
            if relu { relu_of(out) } else { out }
        }
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
    let mask = relu_out.unwrap_or(gy);
    let relu = relu_out.is_some();
    let grad = move |d: T, m: T| if relu { masked(d, m) } else { d };
    let sums: Vec<(f64, f64)> = (0..lay.channels)
        .into_par_iter()
        .map(|c| {
            let (mut dshift, mut dscale) = (0.0, 0.0);
            for o in lay.runs(c) {
                let (rg, rm, rx) = (&gy[o..o + plane], &mask[o..o + plane], &x[o..o + plane]);
                dshift += lane_sum(rg, rm, grad);
                dscale += lane_sum_3(rg, rm, rx, |d, m, v| grad(d, m) * v);
            }
            (dscale, dshift)
        })
        .collect();
    let gx = map_planes(gy, gy, mask, &lay, |c| {
        let a = T::from_f64(scale[c]);
        move |d: T, _, m: T| grad(d, m) * a
    });
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

    /// Channel by channel or statistics first, the passes give the same
    /// bits (output, statistics and every gradient), with and without ReLU.
    #[test]
    fn both_orders_of_the_passes_agree() {
        let mut rng = Rng::new(21);
        for (b, c, plane) in [(3, 9, 37), (2, 12, 1), (4, 5, CHUNK / 4 + 3)] {
            let n = b * c * plane;
            let (x, gamma, beta, gy): (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) =
                (rng.values(n), rng.values(c), rng.values(c), rng.values(n));
            let gamma64 = wide(&gamma);
            for relu in [false, true] {
                let run = |by_channel: bool| {
                    let (y, stats) = train_forward_on(&x, &gamma, &beta, (plane, 1e-5, relu), by_channel);
                    let grads = train_backward_on((&gy, &x, relu.then_some(&y[..])), &gamma64, &stats, plane, by_channel);
                    (y, stats, grads)
                };
                assert_eq!(run(true), run(false), "{b}×{c}×{plane} relu {relu}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn operands_that_do_not_fit_panic() {
        train_forward(&[1f32; 10], &[1.0; 3], &[0.0; 3], 1, 1e-5, false);
    }
}
