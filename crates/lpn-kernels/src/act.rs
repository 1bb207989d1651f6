//! ReLU and a convolution's per-channel bias (+ ReLU), each with a one-pass
//! gradient: the forward pass writes its output once (no zero fill first),
//! the backward pass masks the gradient by `output > 0` (PyTorch's rule,
//! also at 0) and sums the bias gradient per channel. Results do not depend
//! on the thread count: elementwise work is split in fixed chunks and each
//! channel's bias gradient is summed in sample order by one thread.

use rayon::prelude::*;

use crate::Num;
use crate::fill::build;

/// Elements per parallel task: large enough that rayon's overhead vanishes.
const CHUNK: usize = 1 << 14;

/// ReLU of one value; NaN stays NaN, as in PyTorch.
#[inline]
pub fn relu_of<T: Num>(v: T) -> T {
    if v <= T::ZERO { T::ZERO } else { v }
}

/// `grad` where the op's output was positive, else 0.
#[inline]
pub(crate) fn masked<T: Num>(g: T, out: T) -> T {
    if out > T::ZERO { g } else { T::ZERO }
}

/// `out[i] = f(a[i])`.
fn map<T: Num>(a: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    build(a.len(), CHUNK, CHUNK, |first, out| {
        let start = first * CHUNK;
        out.extend(a[start..start + out.remaining()].iter().map(|&v| f(v)));
    })
}

/// `relu(x)`.
pub fn relu<T: Num>(x: &[T]) -> Vec<T> {
    map(x, relu_of)
}

/// `grad · [output > 0]`: the gradient through a ReLU whose output was `y`.
/// Panics unless both have the same length.
pub fn relu_grad<T: Num>(grad: &[T], y: &[T]) -> Vec<T> {
    assert_eq!(grad.len(), y.len(), "gradient and output differ in length");
    build(grad.len(), CHUNK, CHUNK, |first, out| {
        let range = first * CHUNK..first * CHUNK + out.remaining();
        out.extend(grad[range.clone()].iter().zip(&y[range]).map(|(&g, &v)| masked(g, v)));
    })
}

/// `y + bias[c]` over `[B, C, plane]` (C = `bias.len()`), then ReLU when
/// `relu`. Panics unless `y` is made of whole planes.
pub fn bias_act<T: Num>(y: &[T], bias: &[T], plane: usize, relu: bool) -> Vec<T> {
    let channels = bias.len();
    assert!(channels > 0 && plane > 0 && y.len().is_multiple_of(channels * plane), "bias does not fit the input");
    build(y.len(), plane, CHUNK, |first_row, out| {
        for (r, src) in y[first_row * plane..].chunks(plane).enumerate() {
            if out.remaining() == 0 {
                break;
            }
            let b = bias[(first_row + r) % channels];
            if relu {
                out.extend(src.iter().map(|&v| relu_of(v + b)));
            } else {
                out.extend(src.iter().map(|&v| v + b));
            }
        }
    })
}

/// Sum of `g [B, C, plane]` over samples and positions, per channel: a
/// bias's gradient. Each plane is summed in order, planes in sample order.
pub fn channel_sums<T: Num>(g: &[T], channels: usize, plane: usize) -> Vec<T> {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut total = T::ZERO;
            for row in g.chunks_exact(plane.max(1)).skip(c).step_by(channels) {
                let mut s = T::ZERO;
                for &v in row {
                    s += v;
                }
                total += s;
            }
            total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    #[test]
    fn relu_keeps_nan_and_masks_its_gradient_at_zero() {
        let x = [-1f32, 0.0, 2.0, f32::NAN];
        let y = relu(&x);
        assert_eq!(&y[..3], &[0.0, 0.0, 2.0]);
        assert!(y[3].is_nan());
        assert_eq!(relu_grad(&[1.0; 4], &y), vec![0.0, 0.0, 1.0, 0.0]);
    }

    /// Against the definitions, on sizes that cut rows across parallel tasks.
    #[test]
    fn bias_act_and_sums_match_the_definitions() {
        let (b, c, plane) = (3, 5, CHUNK / 3 + 7);
        let mut rng = Rng::new(5);
        let y: Vec<f64> = rng.values(b * c * plane);
        let bias: Vec<f64> = rng.values(c);
        for relu in [false, true] {
            let out = bias_act(&y, &bias, plane, relu);
            for (i, (&o, &v)) in out.iter().zip(&y).enumerate() {
                let shifted = v + bias[(i / plane) % c];
                assert_eq!(o, if relu { relu_of(shifted) } else { shifted });
            }
        }
        let sums = channel_sums(&y, c, plane);
        for (ch, &s) in sums.iter().enumerate() {
            let want: f64 = (0..b).map(|n| y[(n * c + ch) * plane..(n * c + ch + 1) * plane].iter().sum::<f64>()).sum();
            assert!((s - want).abs() < 1e-9, "{s} vs {want}");
        }
    }
}
