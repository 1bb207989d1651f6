//! A direct 1-D convolution for the CPU, as Candle custom ops: forward, and the
//! two backward products (input gradient, weight gradient) as loops over
//! contiguous rows, so the compiler vectorises the inner loops and nothing is
//! allocated but the outputs. Parallel over the batch (forward, input
//! gradient) or over output channels (weight gradient); each output value is
//! computed by one thread in a fixed order, so results are deterministic.
//!
//! Same semantics as `ops::conv` (PyTorch's cross-correlation with padding,
//! stride, dilation and groups); tested against the numpy fixtures.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
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

fn slice<'a, T: candle_core::WithDType>(s: &'a [T], l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("conv1d kernel needs contiguous inputs"),
    }
}

trait Num: candle_core::WithDType + Copy + Send + Sync + std::ops::Mul<Output = Self> + std::ops::AddAssign + Default {}
impl Num for f32 {}
impl Num for f64 {}

fn forward<T: Num>(x: &[T], w: &[T], d: &Dims, spec: &Conv1dSpec) -> Vec<T> {
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

macro_rules! dispatch {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let ($a, $b) = (slice(a, $l1)?, slice(b, $l2)?);
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let ($a, $b) = (slice(a, $l1)?, slice(b, $l2)?);
                CpuStorage::F64($body)
            }
            _ => candle_core::bail!("conv1d kernel supports f32 and f64"),
        }
    };
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

/// The 1-D convolution with its backward pass (bias not included). Shapes that
/// do not fit are errors, never panics.
pub fn conv1d(x: &Tensor, w: &Tensor, spec: Conv1dSpec) -> Result<Tensor> {
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
