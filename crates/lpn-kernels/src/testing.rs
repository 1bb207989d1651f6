//! Seeded data and comparisons for the kernels' tests.

use crate::{Isa, Num, with_isa};

/// A small seeded generator (xorshift64*): the tests' data, the same on
/// every run.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 52) as f64 - 1.0
    }

    pub(crate) fn values<T: Num>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::from_f64(self.uniform())).collect()
    }

    /// Values on a grid of 1/4 in [-2, 2]: ties in pooling windows, exact zeros.
    pub(crate) fn grid<T: Num>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::from_f64((self.uniform() * 8.0).round() / 4.0)).collect()
    }
}

/// Asserts `got` ≈ `want` elementwise, within `tol` relative to the largest
/// value (sums in another order differ by rounding relative to their terms).
pub(crate) fn assert_close<T: Num>(got: &[T], want: &[T], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().map(|w| w.to_f64().abs()).filter(|w| w.is_finite()).fold(1.0, f64::max);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        let same = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * scale;
        assert!(same, "{what}[{i}]: {g} vs {w}");
    }
}

/// `f` on every path this CPU runs, each result against the portable one's.
pub(crate) fn on_every_path<T: Num>(tol: f64, what: &str, f: impl Fn() -> Vec<Vec<T>>) {
    let portable = with_isa(Isa::Portable, &f);
    for isa in Isa::available() {
        let got = with_isa(isa, &f);
        for (k, (g, p)) in got.iter().zip(&portable).enumerate() {
            assert_close(g, p, tol, &format!("{what} on {isa:?}, output {k}"));
        }
    }
}

/// The convolution and both its gradients straight from the definition, in
/// f64: `(y, gx, gw)` for input `x`, weight `w` and output gradient `gy`.
pub(crate) fn reference_conv2d(g: &crate::ConvGeometry<2>, x: &[f64], w: &[f64], gy: &[f64]) -> [Vec<f64>; 3] {
    let ([h, wd], [kh, kw], [ho, wo]) = (g.input, g.kernel, g.output());
    let (cin_g, cout_g) = (g.in_per_group(), g.out_per_group());
    let (mut y, mut gx, mut gw) = (vec![0.0; g.output_len()], vec![0.0; g.input_len()], vec![0.0; g.weight_len()]);
    for b in 0..g.batch {
        for o in 0..g.out_channels {
            for (oh, ow) in (0..ho).flat_map(|oh| (0..wo).map(move |ow| (oh, ow))) {
                let yi = ((b * g.out_channels + o) * ho + oh) * wo + ow;
                for ci in 0..cin_g {
                    let c = (o / cout_g) * cin_g + ci;
                    for (jh, jw) in (0..kh).flat_map(|jh| (0..kw).map(move |jw| (jh, jw))) {
                        let ih = (oh * g.stride[0] + jh * g.dilation[0]) as isize - g.padding[0].0 as isize;
                        let iw = (ow * g.stride[1] + jw * g.dilation[1]) as isize - g.padding[1].0 as isize;
                        if ih < 0 || iw < 0 || ih >= h as isize || iw >= wd as isize {
                            continue;
                        }
                        let xi = ((b * g.in_channels + c) * h + ih as usize) * wd + iw as usize;
                        let wi = ((o * cin_g + ci) * kh + jh) * kw + jw;
                        y[yi] += w[wi] * x[xi];
                        gx[xi] += w[wi] * gy[yi];
                        gw[wi] += gy[yi] * x[xi];
                    }
                }
            }
        }
    }
    [y, gx, gw]
}

/// A 1-D geometry as the 2-D one of height 1.
pub(crate) fn as_2d(g: &crate::ConvGeometry<1>) -> crate::ConvGeometry<2> {
    crate::ConvGeometry {
        batch: g.batch,
        in_channels: g.in_channels,
        out_channels: g.out_channels,
        groups: g.groups,
        kernel: [1, g.kernel[0]],
        stride: [1, g.stride[0]],
        padding: [(0, 0), g.padding[0]],
        dilation: [1, g.dilation[0]],
        input: [1, g.input[0]],
    }
}

/// `f` on a pool of `threads` threads.
pub(crate) fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool").install(f)
}

/// Converts to f64.
pub(crate) fn wide<T: Num>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64()).collect()
}
