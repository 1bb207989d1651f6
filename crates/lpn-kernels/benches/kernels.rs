//! The kernels on every instruction-set path this CPU runs, on the reference
//! nets' layer shapes: milliseconds per call (median of a few), forward and
//! both gradients. `cargo bench -p lpn-kernels`.

use std::time::Instant;

use lpn_kernels::{BlockGeometry, ConvGeometry, Isa, block, conv1d, conv2d, norm, with_isa};

/// Median milliseconds of `f` over a few runs, after one warm-up run.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn values(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect()
}

fn main() {
    // conv1d.lpn's middle layer and conv2d.lpn's first block.
    let c1 = ConvGeometry {
        batch: 32,
        in_channels: 16,
        out_channels: 16,
        groups: 1,
        kernel: [15],
        stride: [1],
        padding: [(7, 7)],
        dilation: [1],
        input: [1024],
    };
    let c2 = ConvGeometry {
        batch: 64,
        in_channels: 1,
        out_channels: 16,
        groups: 1,
        kernel: [5, 5],
        stride: [1, 1],
        padding: [(2, 2); 2],
        dilation: [1, 1],
        input: [28, 28],
    };
    let b2 = BlockGeometry { conv: c2, relu: true, pool: Some([2, 2]) };
    // Batch norm + ReLU on the FCN's widest layer (benches/nets/fcn.lpn):
    // [16, 256, 512], training forward and backward.
    let (bn_channels, bn_plane) = (256, 512);
    let bn_len = 16 * bn_channels * bn_plane;
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "path", "c1d fwd", "c1d gx", "c1d gw", "c2d fwd", "c2d gw", "block+unpool", "bn+relu f+b"
    );
    for isa in Isa::available() {
        let (x1, w1, gy1) = (values(c1.input_len()), values(c1.weight_len()), values(c1.output_len()));
        let (x2, w2, gy2) = (values(c2.input_len()), values(c2.weight_len()), values(c2.output_len()));
        let (bias, gyb) = (values(c2.out_channels), values(b2.output_len()));
        let (xn, gyn, gamma, beta) = (values(bn_len), values(bn_len), values(bn_channels), values(bn_channels));
        let gamma64: Vec<f64> = gamma.iter().map(|&g| f64::from(g)).collect();
        let row = with_isa(isa, || {
            [
                time(|| drop(conv1d::forward(&x1, &w1, None, &c1))),
                time(|| drop(conv1d::grad_input(&gy1, &w1, &c1))),
                time(|| drop(conv1d::grad_weight(&gy1, &x1, &c1))),
                time(|| drop(conv2d::forward(&x2, &w2, &c2))),
                time(|| drop(conv2d::grad_weight(&gy2, &x2, &c2))),
                time(|| {
                    let (y, winners) = block::forward(&x2, &w2, &bias, &b2);
                    drop(block::unpool(&gyb, &y, &winners, &b2));
                }),
                time(|| {
                    let (y, stats) = norm::train_forward(&xn, &gamma, &beta, bn_plane, 1e-5, true);
                    drop(norm::train_backward(&gyn, &xn, Some(&y), &gamma64, &stats, bn_plane));
                }),
            ]
        });
        let cells: Vec<String> = row.iter().map(|ms| format!("{ms:>12.2}")).collect();
        println!("{:<10} {}", format!("{isa:?}"), cells.join(" "));
    }
}
