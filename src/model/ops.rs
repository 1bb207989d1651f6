//! The tensor operations the lowering uses, written from Candle's basic ops
//! (narrow, reshape, contiguous 2-D matmul, elementwise maths) whose gradients
//! are checked against numpy references in `tests/ops_reference.rs`.
//!
//! Why not Candle's own conv and pooling: in 0.11 on CPU its conv1d weight
//! gradient is wrong with more than one output channel, max-pool backward is
//! scaled by 1/(kh·kw), pooling backward is wrong when the size is not divisible
//! by the kernel, and a transposed left matmul operand with a broadcast right one
//! gives wrong values. Everything here avoids those paths: windows are cut with
//! `narrow`, every matmul is 2-D on contiguous operands. On the CPU,
//! convolution, pooling, ReLU, batch norm and the band ratio run our own kernels instead
//! (`super::kernels`, the Candle glue of the `lpn-kernels` crate), tested
//! against the same references.

use candle_core::{D, DType, Result, Tensor};
use lpn_kernels::{BlockGeometry, PoolKind};

use super::kernels::{self, Pooling};
use crate::language::ir;

/// Cuts the sliding windows of a `[B, C, *spatial]` input (already padded) as
/// one tensor per kernel tap, each `[B, C, P]` with `P` the number of output
/// positions; also returns the output's spatial shape.
pub fn windows(x: &Tensor, kernel: &[usize], stride: &[usize], dilation: &[usize]) -> Result<(Vec<Tensor>, Vec<usize>)> {
    let dims = x.dims();
    let (b, c) = (dims[0], dims[1]);
    let spatial = &dims[2..];
    let out = output_size(spatial, kernel, stride, dilation)?;
    let positions: usize = out.iter().product();
    let mut taps = Vec::with_capacity(kernel.iter().product());
    match kernel.len() {
        1 => {
            for j in 0..kernel[0] {
                let t = strided(x, 2, j * dilation[0], out[0], stride[0])?;
                taps.push(t.reshape((b, c, positions))?);
            }
        }
        2 => {
            for jh in 0..kernel[0] {
                let rows = strided(x, 2, jh * dilation[0], out[0], stride[0])?;
                for jw in 0..kernel[1] {
                    let t = strided(&rows, 3, jw * dilation[1], out[1], stride[1])?;
                    taps.push(t.contiguous()?.reshape((b, c, positions))?);
                }
            }
        }
        n => candle_core::bail!("windows over {n} spatial axes are not supported"),
    }
    Ok((taps, out))
}

/// The output's spatial size of windows `kernel` over an (already padded)
/// input of size `spatial`: `lpn_kernels::out_len` per axis.
fn output_size(spatial: &[usize], kernel: &[usize], stride: &[usize], dilation: &[usize]) -> Result<Vec<usize>> {
    (0..kernel.len())
        .map(|a| match lpn_kernels::out_len(spatial[a], (0, 0), kernel[a], stride[a], dilation[a]) {
            Some(n) => Ok(n),
            None => candle_core::bail!("windows {kernel:?} (stride {stride:?}, dilation {dilation:?}) do not fit {spatial:?}"),
        })
        .collect()
}

/// `x[.., start :: step][..count]` along `dim`, contiguous.
fn strided(x: &Tensor, dim: usize, start: usize, count: usize, step: usize) -> Result<Tensor> {
    if step == 1 {
        return x.narrow(dim, start, count)?.contiguous();
    }
    // Take count·step elements (padding the end if the last window needs fewer),
    // fold them into [count, step] and keep the first of each step.
    let available = x.dim(dim)? - start;
    let want = count * step;
    let slab = if available >= want {
        x.narrow(dim, start, want)?
    } else {
        x.narrow(dim, start, available)?.pad_with_zeros(dim, 0, want - available)?
    };
    let mut shape = slab.dims().to_vec();
    shape[dim] = count;
    shape.insert(dim + 1, step);
    slab.contiguous()?.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)?.contiguous()
}

/// Zero padding of the spatial axes: `padding[a] = (before, after)`.
pub fn pad(x: &Tensor, padding: &[(usize, usize)]) -> Result<Tensor> {
    let mut x = x.clone();
    for (a, &(before, after)) in padding.iter().enumerate() {
        if before + after > 0 {
            x = x.pad_with_zeros(2 + a, before, after)?;
        }
    }
    Ok(x)
}

/// Padding with a constant (−∞ for max-pooling).
fn pad_with(x: &Tensor, padding: &[(usize, usize)], value: f64) -> Result<Tensor> {
    let mut x = x.clone();
    for (a, &(before, after)) in padding.iter().enumerate() {
        let axis = 2 + a;
        let mut parts = Vec::new();
        let block = |n: usize| -> Result<Tensor> {
            let mut shape = x.dims().to_vec();
            shape[axis] = n;
            Tensor::full(value, shape, x.device())?.to_dtype(x.dtype())
        };
        if before > 0 {
            parts.push(block(before)?);
        }
        parts.push(x.clone());
        if after > 0 {
            parts.push(block(after)?);
        }
        if parts.len() > 1 {
            x = Tensor::cat(&parts, axis)?;
        }
    }
    Ok(x)
}

/// Whether our CPU kernels (`super::kernels`) can take `x`: on other devices, and for other dtypes, Candle's basic ops do.
/// Inside [`with_candle_ops`] never, so the tests run the other devices' path on the CPU.
fn own_kernel(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && !CANDLE_OPS_ONLY.get()
}

thread_local! {
    /// Set by [`with_candle_ops`]: this thread's forward passes use Candle's ops only.
    static CANDLE_OPS_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every op on Candle's own ops, as on a device other than the
/// CPU, though the tensors are on the CPU: how the tests compare that path
/// with our kernels. The choice is made when an op runs forward (its
/// gradient follows the graph it built), on this thread only, and is undone
/// when `f` returns or panics.
pub fn with_candle_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CANDLE_OPS_ONLY.set(self.0);
        }
    }
    let _restore = Restore(CANDLE_OPS_ONLY.replace(true));
    f()
}

/// Runs `f` on one of rayon's threads (inline when called from one), with
/// this thread's [`with_candle_ops`] choice. A training step runs so: each
/// of its parallel ops then starts from inside the pool, where the caller's
/// thread would wake a worker and sleep until it had finished, twice per op.
/// On a 2-core Intel Xeon VM a tenth of the CPU time of the 2-D batch-norm
/// net's step went to those wake-ups, and its step took a sixth longer
/// (`cargo bench --bench step_time -- time benches/nets/conv2d_bn.lpn`).
pub fn on_rayon_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let candle_ops_only = CANDLE_OPS_ONLY.get();
    rayon::scope(move |_| if candle_ops_only { with_candle_ops(f) } else { f() })
}

/// Convolution (cross-correlation, as PyTorch) of `x [B, Cin, *spatial]` with
/// `w [Cout, Cin/groups, *kernel]` as `conv` declares it: on the CPU, 1-D by
/// the direct kernel and 2-D by the 2-D kernels (as a block with neither
/// ReLU nor pool); elsewhere by `conv_by_matmuls`.
pub fn conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, conv: &ir::Conv) -> Result<Tensor> {
    conv_block(x, w, bias, conv, false, None)
}

/// [`conv`], then ReLU when `relu`, then, when `pool` is given, a max pool
/// whose windows tile its input (`pool` is the window and the stride; no
/// padding). On the CPU a 1-D convolution and its bias are one op, and a 2-D
/// block (convolution, bias, ReLU, pool) is one op, which never writes the
/// convolution's full output.
pub fn conv_block(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, conv: &ir::Conv, relu: bool, pool: Option<&[usize]>) -> Result<Tensor> {
    let activate = |y: Tensor| if relu { self::relu(&y) } else { Ok(y) };
    let y = match x.rank() {
        // Conv and bias in one op: no broadcast add, one pass for the bias gradient.
        3 if own_kernel(x) => activate(kernels::conv1d(x, w, bias, kernels::conv_geometry(conv, x, w)?)?)?,
        4 if own_kernel(x) && pool.is_none_or(|k| k.len() == 2) => {
            let block = BlockGeometry { conv: kernels::conv_geometry(conv, x, w)?, relu, pool: pool.map(|k| [k[0], k[1]]) };
            return kernels::conv2d_block(x, w, bias, block);
        }
        _ => activate(conv_by_matmuls(x, w, bias, conv)?)?,
    };
    match pool {
        Some(k) => max_pool(&y, k, k, &vec![0; k.len()]),
        None => Ok(y),
    }
}

/// Adds a per-channel bias `[C]` to `[B, C, *spatial]`.
fn add_channel_bias(y: Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(bias) => {
            let mut shape = vec![1; y.rank()];
            shape[1] = bias.elem_count();
            y.broadcast_add(&bias.reshape(shape)?)
        }
        None => Ok(y),
    }
}

/// Convolution (cross-correlation, as PyTorch) of `x [B, Cin, *spatial]` with
/// `w [Cout, Cin/groups, *kernel]`, as a sum over kernel taps of shifted
/// 2-D matmuls: with the input laid out `[Cin, B, *spatial]`, tap j's shifted
/// view is `[Cin, B·P]` and contributes `W[:, :, j] · view`. No im2col buffer,
/// and every matmul is 2-D on contiguous operands.
pub fn conv_by_matmuls(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, conv: &ir::Conv) -> Result<Tensor> {
    let (stride, dilation, groups) = (&conv.stride, &conv.dilation, conv.groups);
    let b = x.dim(0)?;
    let cin = x.dim(1)?;
    let cout = w.dim(0)?;
    let kernel: Vec<usize> = w.dims()[2..].to_vec();
    let taps: usize = kernel.iter().product();
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let xp = pad(x, &conv.padding)?;
    let out = output_size(&xp.dims()[2..], &kernel, stride, dilation)?;
    let positions: usize = out.iter().product();
    // [Cin, B, *spatial]: a shifted view flattens to [Cin, B·P] rows per channel.
    let xt = xp.transpose(0, 1)?.contiguous()?;
    // [taps, Cout, Cin_g]: one contiguous matrix per tap.
    let wt = w.reshape((cout, cin_g, taps))?.permute((2, 0, 1))?.contiguous()?;
    let mut acc: Vec<Option<Tensor>> = vec![None; groups];
    for tap in 0..taps {
        // The tap's offset along each spatial axis (row-major over the kernel).
        let mut rest = tap;
        let mut offsets = vec![0; kernel.len()];
        for a in (0..kernel.len()).rev() {
            offsets[a] = rest % kernel[a];
            rest /= kernel[a];
        }
        let mut view = xt.clone();
        for a in 0..kernel.len() {
            view = strided(&view, 2 + a, offsets[a] * dilation[a], out[a], stride[a])?;
        }
        let view = view.reshape((cin, b * positions))?;
        let w_tap = wt.get(tap)?;
        for (g, slot) in acc.iter_mut().enumerate() {
            let (wg, vg) = if groups == 1 {
                (w_tap.clone(), view.clone())
            } else {
                (w_tap.narrow(0, g * cout_g, cout_g)?, view.narrow(0, g * cin_g, cin_g)?)
            };
            let term = wg.matmul(&vg)?; // [cout_g, B·P]
            *slot = Some(match slot.take() {
                Some(sum) => (sum + term)?,
                None => term,
            });
        }
    }
    let parts: Vec<Tensor> = acc.into_iter().map(|t| t.expect("at least one tap")).collect();
    let y = if groups == 1 { parts.into_iter().next().unwrap() } else { Tensor::cat(&parts, 0)? }; // [Cout, B·P]
    let mut shape = vec![cout, b];
    shape.extend(&out);
    add_channel_bias(y.reshape(shape)?.transpose(0, 1)?.contiguous()?, bias)
}

/// `x [B, in] · wᵀ + b` with `w [out, in]`.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let wt = w.t()?.contiguous()?;
    let y = x.contiguous()?.matmul(&wt)?;
    match bias {
        Some(bias) => y.broadcast_add(&bias.unsqueeze(0)?),
        None => Ok(y),
    }
}

fn restore(y: &Tensor, b: usize, c: usize, out: &[usize]) -> Result<Tensor> {
    let mut shape = vec![b, c];
    shape.extend(out);
    y.reshape(shape)
}

/// Max-pooling with −∞ padding (PyTorch semantics, floor mode): on the CPU by
/// our kernel, elsewhere from windows cut with `narrow`.
pub fn max_pool(x: &Tensor, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    if own_kernel(x) {
        return kernels::pool(x, PoolKind::Max, kernel, stride, padding);
    }
    max_pool_by_windows(x, kernel, stride, padding)
}

/// `max_pool` from windows cut with `narrow` (any device).
pub fn max_pool_by_windows(x: &Tensor, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let pads: Vec<(usize, usize)> = padding.iter().map(|&p| (p, p)).collect();
    let x = pad_with(x, &pads, f64::NEG_INFINITY)?;
    let ones = vec![1; kernel.len()];
    let (taps, out) = windows(&x, kernel, stride, &ones)?;
    let mut y = taps[0].clone();
    for t in &taps[1..] {
        y = y.maximum(t)?;
    }
    restore(&y, b, c, &out)
}

/// Average pooling with zero padding counted in the mean (PyTorch's default):
/// on the CPU by our kernel, elsewhere from windows cut with `narrow`.
pub fn avg_pool(x: &Tensor, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    if own_kernel(x) {
        return kernels::pool(x, PoolKind::Avg, kernel, stride, padding);
    }
    avg_pool_by_windows(x, kernel, stride, padding)
}

/// `avg_pool` from windows cut with `narrow` (any device).
pub fn avg_pool_by_windows(x: &Tensor, kernel: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    let (b, c) = (x.dim(0)?, x.dim(1)?);
    let pads: Vec<(usize, usize)> = padding.iter().map(|&p| (p, p)).collect();
    let x = pad(x, &pads)?;
    let ones = vec![1; kernel.len()];
    let (taps, out) = windows(&x, kernel, stride, &ones)?;
    let mut y = taps[0].clone();
    for t in &taps[1..] {
        y = (y + t)?;
    }
    restore(&(y / taps.len() as f64)?, b, c, &out)
}

pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(2)?.mean(2)
}

/// Max over every spatial position of `[B, C, *spatial]`, as `[B, C]`, with
/// PyTorch's gradient (`x.flatten(2).max(2)`): the whole gradient goes to one
/// position, the first NaN if there is one, else the first maximum in
/// row-major order; tied maxima do not each get it. On the CPU the windowed
/// max pool of our kernel with one window over the whole length or plane,
/// elsewhere [`global_max_pool_by_index`].
pub fn global_max_pool(x: &Tensor) -> Result<Tensor> {
    if own_kernel(x) && (3..=4).contains(&x.rank()) {
        let spatial = &x.dims()[2..];
        let zeros = vec![0; spatial.len()];
        let y = kernels::pool(x, PoolKind::Max, spatial, spatial, &zeros)?;
        return y.flatten_from(1);
    }
    global_max_pool_by_index(x)
}

/// `global_max_pool` from Candle ops (any device): the winner's index per
/// row (the first NaN, else the first maximum: Candle's `argmax` keeps the
/// first of equal values), then a `gather`, whose gradient goes to that one
/// index. Candle's `max` would give the full gradient to every tied maximum.
pub fn global_max_pool_by_index(x: &Tensor) -> Result<Tensor> {
    let flat = x.flatten_from(2)?.contiguous()?;
    let nan = flat.ne(&flat)?;
    let first_nan = nan.argmax_keepdim(2)?;
    let has_nan = nan.max_keepdim(2)?;
    let first_max = flat.argmax_keepdim(2)?;
    let winner = has_nan.where_cond(&first_nan, &first_max)?.contiguous()?;
    flat.gather(&winner, 2)?.squeeze(2)
}

pub fn relu(x: &Tensor) -> Result<Tensor> {
    if own_kernel(x) { kernels::relu(x) } else { x.relu() }
}

/// Stable logistic function: ½(tanh(x/2) + 1) never overflows.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    ((x * 0.5)?.tanh()? + 1.0)? * 0.5
}

pub fn silu(x: &Tensor) -> Result<Tensor> {
    x * sigmoid(x)?
}

/// GELU, tanh approximation (PyTorch's `approximate="tanh"`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let inner = ((x + (x.powf(3.0)? * 0.044715)?)? * c)?;
    ((inner.tanh()? + 1.0)? * x)? * 0.5
}

pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    x.relu()? - (x.neg()?.relu()? * slope)?
}

/// Mean squared error over every element.
pub fn mse(x: &Tensor, target: &Tensor) -> Result<Tensor> {
    (x - target)?.sqr()?.mean_all()
}

/// Mean absolute error over every element.
pub fn mae(x: &Tensor, target: &Tensor) -> Result<Tensor> {
    (x - target)?.abs()?.mean_all()
}

/// Log-softmax over the last axis, from basic ops (Candle's softmax op has no
/// gradient); the max is subtracted for stability and carries no gradient.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// Mean cross-entropy of logits `[B, C]` against class indices.
pub fn cross_entropy(logits: &Tensor, classes: &[usize]) -> Result<Tensor> {
    let (b, c) = logits.dims2()?;
    let mut onehot = vec![0f64; b * c];
    for (i, &k) in classes.iter().enumerate() {
        onehot[i * c + k] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, c), logits.device())?.to_dtype(logits.dtype())?;
    (log_softmax(logits)? * onehot)?.sum_all()?.neg()? / b as f64
}

/// Mean binary cross-entropy of logits `[B]` (or `[B, 1]`) against 0/1 labels:
/// `max(x, 0) − x·y + log(1 + e^−|x|)`, finite for any logit.
pub fn bce_with_logits(logits: &Tensor, labels: &[usize]) -> Result<Tensor> {
    let x = logits.flatten_all()?;
    let y: Vec<f64> = labels.iter().map(|&l| l as f64).collect();
    let y = Tensor::from_vec(y, labels.len(), x.device())?.to_dtype(x.dtype())?;
    let softplus = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((x.relu()? - (&x * y)?)? + softplus)?.mean_all()
}

/// Batch normalisation in training mode over axes 0 and 2.. of `[B, C, …]`
/// (or `[B, C]`), with the biased variance, then ReLU when `relu`; returns
/// the output and the batch mean and unbiased variance per channel (for the
/// running statistics). On the CPU one op of our kernel (batch norm and ReLU
/// fused), elsewhere [`batch_norm_train_by_ops`] and [`relu`].
pub fn batch_norm_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, relu: bool) -> Result<(Tensor, Tensor, Tensor)> {
    if own_kernel(x) && x.rank() >= 2 {
        return kernels::batch_norm_train(x, gamma, beta, eps, relu);
    }
    let (y, mean, var) = batch_norm_train_by_ops(x, gamma, beta, eps)?;
    Ok((if relu { self::relu(&y)? } else { y }, mean, var))
}

/// [`conv`] with a bias, then [`batch_norm_train`], then `pool` when given:
/// on the CPU one op (the same values as the ops in sequence, bit for bit;
/// see `kernels::conv_batch_norm_train`).
#[allow(clippy::too_many_arguments)]
pub fn conv_batch_norm_train(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    conv: &ir::Conv,
    (gamma, beta): (&Tensor, &Tensor),
    eps: f64,
    relu: bool,
    pool: Option<Pooling<'_>>,
) -> Result<(Tensor, Tensor, Tensor)> {
    if own_kernel(x) {
        let fused = match x.rank() {
            3 => Some(kernels::Conv::OneD(kernels::conv_geometry::<1>(conv, x, w)?)),
            4 => Some(kernels::Conv::TwoD(kernels::conv_geometry::<2>(conv, x, w)?)),
            _ => None,
        };
        if let Some(fused) = fused {
            return kernels::conv_batch_norm_train(x, w, [bias, gamma, beta], fused, (eps, relu), pool);
        }
    }
    let (y, mean, var) = batch_norm_train(&self::conv(x, w, Some(bias), conv)?, gamma, beta, eps, relu)?;
    let y = match pool {
        Some(p) => self::pool(&y, p)?,
        None => y,
    };
    Ok((y, mean, var))
}

/// The pooling `p` of `x`.
pub fn pool(x: &Tensor, p: Pooling<'_>) -> Result<Tensor> {
    match p.kind {
        PoolKind::Max => max_pool(x, p.kernel, p.stride, p.padding),
        PoolKind::Avg => avg_pool(x, p.kernel, p.stride, p.padding),
    }
}

/// `batch_norm_train` (without ReLU) from Candle's basic ops (any device).
pub fn batch_norm_train_by_ops(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    let dims = x.dims().to_vec();
    let (b, c) = (dims[0], dims[1]);
    let x3 = x.reshape((b, c, ()))?;
    let n = (b * x3.dim(2)?) as f64;
    let mean = x3.mean_keepdim(2)?.mean_keepdim(0)?; // [1, C, 1]
    let centered = x3.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
    let xhat = centered.broadcast_div(&(var.clone() + eps)?.sqrt()?)?;
    let y = xhat.broadcast_mul(&gamma.reshape((1, c, 1))?)?.broadcast_add(&beta.reshape((1, c, 1))?)?;
    let unbiased = (var.flatten_all()? * (n / (n - 1.0).max(1.0)))?;
    Ok((y.reshape(dims)?, mean.flatten_all()?, unbiased))
}

/// Batch normalisation with fixed (running) statistics, for evaluation, then
/// ReLU when `relu`: `x·scale + shift` per channel with `scale = γ/√(var +
/// eps)`, `shift = β − mean·scale`; on the CPU one op of our kernel.
pub fn batch_norm_eval(x: &Tensor, gamma: &Tensor, beta: &Tensor, mean: &Tensor, var: &Tensor, eps: f64, relu: bool) -> Result<Tensor> {
    let scale = (gamma / (var + eps)?.sqrt()?)?;
    let shift = (beta - (mean * &scale)?)?;
    if own_kernel(x) && x.rank() >= 2 {
        return kernels::channel_affine(x, &scale, &shift, relu);
    }
    let dims = x.dims().to_vec();
    let (b, c) = (dims[0], dims[1]);
    let x3 = x.reshape((b, c, ()))?;
    let y = x3.broadcast_mul(&scale.reshape((1, c, 1))?)?.broadcast_add(&shift.reshape((1, c, 1))?)?.reshape(dims)?;
    if relu { self::relu(&y) } else { Ok(y) }
}

/// Mean over the kernels of a weight (the weight reshaped to `[kernels,
/// taps]`) of a quadratic family's ratio `ρ = hᵀQh / hᵀh` (a band's stopband
/// energy, a kernel's roughness), or with `tol` of max(0, ρ − tol), as a
/// scalar with its gradient: on the CPU one op with an analytic gradient
/// (our kernel).
pub fn mean_quadratic_ratio(w: &Tensor, q: &Tensor, tol: Option<f64>) -> Result<Tensor> {
    if own_kernel(w) && w.dtype() == q.dtype() {
        return kernels::mean_quadratic_ratio(w, q, tol);
    }
    let ratios = quadratic_ratios(w, q)?;
    match tol {
        Some(t) => (ratios - t)?.relu()?.mean_all(),
        None => ratios.mean_all(),
    }
}

/// `ρ = hᵀQh / hᵀh` of every kernel (row of the weight reshaped to `[kernels, taps]`).
pub fn quadratic_ratios(w: &Tensor, q: &Tensor) -> Result<Tensor> {
    let taps = q.dim(0)?;
    let h = w.reshape(((), taps))?;
    let num = (h.matmul(q)? * &h)?.sum(1)?;
    let den = (h.sqr()?.sum(1)? + 1e-30)?;
    num / den
}

/// The dtype used for training.
pub const TRAIN_DTYPE: DType = DType::F32;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// NaN wins global max pooling on both paths, as in PyTorch: the output
    /// is NaN and the whole gradient goes to the first NaN; a row of −∞ gives
    /// its gradient to its first element.
    #[test]
    fn global_max_pool_nan_and_infinity() {
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let rows = [[1.0, nan, 3.0, nan], [-inf, -inf, -inf, -inf], [2.0, inf, inf, 0.0]];
        let data: Vec<f64> = rows.iter().flatten().copied().collect();
        for dtype in [DType::F64, DType::F32] {
            for by_index in [false, true] {
                let x =
                    Var::from_tensor(&Tensor::from_vec(data.clone(), (1, 3, 4), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
                let y = if by_index { global_max_pool_by_index(&x) } else { global_max_pool(&x) }.unwrap();
                let out: Vec<f64> = y.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                assert!(out[0].is_nan() && out[1] == -inf && out[2] == inf, "{dtype:?} by index {by_index}: {out:?}");
                let g = y.sum_all().unwrap().backward().unwrap();
                let gx: Vec<f64> = g.get(&x).unwrap().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                let want = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
                assert_eq!(gx, want, "{dtype:?} by index {by_index}");
            }
        }
    }
}
