//! Our conv1d — the direct kernel (`lpn::lower::ops::conv`) and the sum of
//! shifted matmuls (`ops::conv_by_matmuls`) — against Candle's own
//! `Tensor::conv1d`, forward + backward, side by side in one run, reported as
//! ratios. Also reports how far Candle's weight gradient is from ours (ours
//! matches numpy, see tests/ops_reference.rs).
//!
//!   cargo bench --bench conv1d

use std::time::Instant;

use candle_core::{Device, Tensor, Var};

fn time<F: FnMut()>(mut f: F, reps: usize) -> f64 {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    start.elapsed().as_secs_f64() / reps as f64
}

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    println!(
        "{:<28} {:>10} {:>13} {:>12} {:>13} {:>14} {:>12}",
        "case (B, Cin→Cout, L, k)", "ours (ms)", "matmuls (ms)", "candle (ms)", "candle/ours", "candle/matmuls", "grad_w diff"
    );
    for &(b, cin, cout, l, k) in
        &[(32, 1, 16, 1024, 15), (32, 16, 16, 1024, 15), (32, 16, 1, 1024, 15), (16, 32, 32, 150, 5), (64, 8, 16, 256, 9)]
    {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, cin, l), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, k), &dev)?)?;
        let pad = (k - 1) / 2;
        let g = Tensor::randn(0f32, 1.0, (b, cout, l + 2 * pad - k + 1), &dev)?;
        let ours = || -> candle_core::Result<Tensor> {
            let y = lpn::lower::ops::conv(x.as_tensor(), w.as_tensor(), None, &[1], &[(pad, pad)], &[1], 1)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let shifted = || -> candle_core::Result<Tensor> {
            let y = lpn::lower::ops::conv_by_matmuls(x.as_tensor(), w.as_tensor(), None, &[1], &[(pad, pad)], &[1], 1)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let theirs = || -> candle_core::Result<Tensor> {
            let y = x.as_tensor().conv1d(w.as_tensor(), pad, 1, 1, 1)?;
            let grads = (y * &g)?.sum_all()?.backward()?;
            Ok(grads.get(w.as_tensor()).unwrap().clone())
        };
        let reps = 5;
        let t_ours = time(|| drop(ours().unwrap()), reps);
        let t_theirs = time(|| drop(theirs().unwrap()), reps);
        let t_shifted = time(|| drop(shifted().unwrap()), reps);
        let diff = (ours()? - theirs()?)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = ours()?.abs()?.max_all()?.to_scalar::<f32>()?;
        println!(
            "{:<28} {:>10.2} {:>13.2} {:>12.2} {:>12.2}x {:>13.2}x {:>11.1}%",
            format!("({b}, {cin}→{cout}, {l}, {k})"),
            t_ours * 1e3,
            t_shifted * 1e3,
            t_theirs * 1e3,
            t_theirs / t_ours,
            t_theirs / t_shifted,
            100.0 * diff / scale
        );
    }
    println!(
        "forward + backward, mean of 5 after a warm-up; ratios > 1 mean Candle is slower; grad_w diff = max |ours − Candle's| / max |ours|"
    );
    Ok(())
}
