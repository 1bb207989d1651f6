//! Our CPU kernels for 2-D convolution and pooling (`lpn::model::ops::conv`,
//! `ops::max_pool`, `ops::avg_pool`) against the Candle-op paths that other
//! devices use (`ops::conv_by_matmuls`, `ops::*_pool_by_windows`) and against
//! Candle's own `conv2d` / `max_pool2d` / `avg_pool2d`, on the shapes of the
//! 2-D reference net (MNIST-sized, batch 64), f32, forward and forward +
//! backward, side by side in one run. Medians of many runs; the thread count
//! is rayon's (`RAYON_NUM_THREADS`).
//!
//!   RAYON_NUM_THREADS=1 cargo bench --bench conv2d
//!   RAYON_NUM_THREADS=2 cargo bench --bench conv2d
//!   cargo bench --bench conv2d -- --json   # one JSON object per case (benches/torch_ops.py reads it)
//!   cargo bench --bench conv2d -- --only-ours   # for a profiler

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use lpn::model::ops;

/// CPU time of every thread of this process, in ns (Linux; 0 elsewhere): on a
/// shared machine, wall time measures the neighbours too.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Medians of wall time and CPU time per run, in ms.
fn median_ms<F: FnMut() -> Result<()>>(mut f: F, reps: usize) -> Result<(f64, f64)> {
    f()?; // warm up (also grows the kernels' scratch buffers)
    let mut wall = Vec::with_capacity(reps);
    let mut cpu = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (start, start_cpu) = (Instant::now(), cpu_ns());
        f()?;
        wall.push(start.elapsed().as_secs_f64() * 1e3);
        cpu.push((cpu_ns() - start_cpu) as f64 * 1e-6);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Ok((wall[reps / 2], cpu[reps / 2]))
}

enum Case {
    /// x `[b, cin, h, h]`, w `[cout, cin, k, k]`, padding `pad`; whether x needs a gradient.
    Conv { b: usize, cin: usize, h: usize, cout: usize, k: usize, pad: usize, grad_x: bool },
    /// x `[b, c, h, h]`, window and stride `k`.
    Pool { max: bool, b: usize, c: usize, h: usize, k: usize },
}

fn main() -> Result<()> {
    let json = std::env::args().any(|a| a == "--json");
    // For profiling: time only our kernels.
    let only_ours = std::env::args().any(|a| a == "--only-ours");
    let dev = Device::Cpu;
    let reps = 31;
    let cases = [
        ("conv1 1→16 5×5 28²", Case::Conv { b: 64, cin: 1, h: 28, cout: 16, k: 5, pad: 2, grad_x: false }),
        ("conv2 16→32 5×5 14²", Case::Conv { b: 64, cin: 16, h: 14, cout: 32, k: 5, pad: 2, grad_x: true }),
        ("maxpool1 2×2 16×28²", Case::Pool { max: true, b: 64, c: 16, h: 28, k: 2 }),
        ("maxpool2 2×2 32×14²", Case::Pool { max: true, b: 64, c: 32, h: 14, k: 2 }),
        ("avgpool1 2×2 16×28²", Case::Pool { max: false, b: 64, c: 16, h: 28, k: 2 }),
    ];
    if !json {
        println!("threads: {}", rayon::current_num_threads());
        println!(
            "{:<22} {:>29} | {:>29} | {:>29} | {:>21}",
            "", "forward, wall ms", "forward + backward, wall ms", "forward + backward, CPU ms", "f+b wall, vs ours"
        );
        println!(
            "{:<22} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>10} {:>10}",
            "case", "ours", "path", "candle", "ours", "path", "candle", "ours", "path", "candle", "path", "candle"
        );
    }
    for (label, case) in &cases {
        let (x, w, g) = match *case {
            Case::Conv { b, cin, h, cout, k, pad, grad_x } => {
                let x = Tensor::randn(0f32, 1.0, (b, cin, h, h), &dev)?;
                // The network's input needs no gradient: time the first conv as the net runs it.
                let x = if grad_x { Var::from_tensor(&x)?.as_tensor().clone() } else { x };
                let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, cin, k, k), &dev)?)?;
                let ho = h + 2 * pad - k + 1;
                (x, Some(w), Tensor::randn(0f32, 1.0, (b, cout, ho, ho), &dev)?)
            }
            Case::Pool { b, c, h, k, .. } => {
                let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, c, h, h), &dev)?)?.as_tensor().clone();
                (x, None, Tensor::randn(0f32, 1.0, (b, c, h / k, h / k), &dev)?)
            }
        };
        let x_in = x;
        let forward = |which: usize| -> Result<Tensor> {
            match *case {
                Case::Conv { pad, .. } => {
                    let w = w.as_ref().unwrap().as_tensor();
                    let conv = lpn::language::ir::Conv {
                        in_channels: w.dim(1)?,
                        out_channels: w.dim(0)?,
                        kernel: w.dims()[2..].to_vec(),
                        stride: vec![1, 1],
                        padding: vec![(pad, pad); 2],
                        dilation: vec![1, 1],
                        groups: 1,
                        bias: false,
                    };
                    match which {
                        0 => ops::conv(&x_in, w, None, &conv),
                        1 => ops::conv_by_matmuls(&x_in, w, None, &conv),
                        _ => x_in.conv2d(w, pad, 1, 1, 1),
                    }
                }
                Case::Pool { max, k, .. } => match (which, max) {
                    (0, true) => ops::max_pool(&x_in, &[k, k], &[k, k], &[0, 0]),
                    (0, false) => ops::avg_pool(&x_in, &[k, k], &[k, k], &[0, 0]),
                    (1, true) => ops::max_pool_by_windows(&x_in, &[k, k], &[k, k], &[0, 0]),
                    (1, false) => ops::avg_pool_by_windows(&x_in, &[k, k], &[k, k], &[0, 0]),
                    (_, true) => x_in.max_pool2d(k),
                    (_, false) => x_in.avg_pool2d(k),
                },
            }
        };
        let mut fwd = [(0.0, 0.0); 3];
        let mut both = [(0.0, 0.0); 3];
        // Interleaved so that a noisy neighbour hits every implementation alike.
        for which in 0..if only_ours { 1 } else { 3 } {
            fwd[which] = median_ms(|| forward(which).map(drop), reps)?;
            both[which] = median_ms(|| (forward(which)? * &g)?.sum_all()?.backward().map(drop), reps)?;
        }
        if json {
            println!(
                "{{\"case\":\"{label}\",\"threads\":{},\"ours_fwd_ms\":{:.4},\"ours_ms\":{:.4},\"ours_cpu_ms\":{:.4},\"path_ms\":{:.4},\"candle_ms\":{:.4}}}",
                rayon::current_num_threads(),
                fwd[0].0,
                both[0].0,
                both[0].1,
                both[1].0,
                both[2].0
            );
        } else {
            println!(
                "{:<22} {:>9.3} {:>9.3} {:>9.3} | {:>9.3} {:>9.3} {:>9.3} | {:>9.3} {:>9.3} {:>9.3} | {:>9.2}x {:>9.2}x",
                label,
                fwd[0].0,
                fwd[1].0,
                fwd[2].0,
                both[0].0,
                both[1].0,
                both[2].0,
                both[0].1,
                both[1].1,
                both[2].1,
                both[1].0 / both[0].0,
                both[2].0 / both[0].0
            );
        }
    }
    if !json {
        println!(
            "median of {reps} runs; CPU ms = all threads' CPU time; path = the Candle-op path other devices use; candle = Candle's own conv2d/pool ops (wrong gradients in 0.11, timed only); ratios > 1: ours is faster"
        );
    }
    Ok(())
}
