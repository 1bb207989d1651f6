"""PyTorch's CPU conv2d and pooling against ours, on the 2-D reference net's
shapes (benches/conv2d.rs), forward + backward, f32, at 1 and 2 threads.

For each thread count it runs `cargo bench --bench conv2d -- --json` with
RAYON_NUM_THREADS set, times the same cases in torch with
torch.set_num_threads, and prints medians (ms) and the ratio lpn/torch
(< 1: ours is faster). Wall times: on a shared machine run it when idle.

    benches/.venv/bin/python benches/torch_ops.py [--threads 1 2] [--reps 31]

(from the repository root; CARGO_TARGET_DIR is honoured.)
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
import torch.nn.functional as F

# Must match benches/conv2d.rs.
CASES = [
    ("conv1 1→16 5×5 28²", "conv", dict(b=64, cin=1, h=28, cout=16, k=5, pad=2, grad_x=False)),
    ("conv2 16→32 5×5 14²", "conv", dict(b=64, cin=16, h=14, cout=32, k=5, pad=2, grad_x=True)),
    ("maxpool1 2×2 16×28²", "max", dict(b=64, c=16, h=28, k=2)),
    ("maxpool2 2×2 32×14²", "max", dict(b=64, c=32, h=14, k=2)),
    ("avgpool1 2×2 16×28²", "avg", dict(b=64, c=16, h=28, k=2)),
]


def median_ms(f, reps):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def torch_case(kind, p, reps):
    if kind == "conv":
        x = torch.randn(p["b"], p["cin"], p["h"], p["h"], requires_grad=p["grad_x"])
        w = torch.randn(p["cout"], p["cin"], p["k"], p["k"], requires_grad=True)
        fwd = lambda: F.conv2d(x, w, padding=p["pad"])  # noqa: E731
    else:
        x = torch.randn(p["b"], p["c"], p["h"], p["h"], requires_grad=True)
        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        fwd = lambda: pool(x, p["k"])  # noqa: E731
    g = torch.randn(fwd().shape)

    def both():
        (fwd() * g).sum().backward()

    with torch.no_grad():
        t_fwd = median_ms(fwd, reps)
    return t_fwd, median_ms(both, reps)


def ours(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(["cargo", "bench", "--bench", "conv2d", "--", "--json"], env=env, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["case"]: r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=31)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        lpn = ours(threads)
        print(f"\nthreads: {threads}")
        print(f"{'case':<22} {'torch fwd':>10} {'lpn fwd':>10} {'torch f+b':>10} {'lpn f+b':>10} {'lpn/torch f+b':>14}")
        for label, kind, p in CASES:
            t_fwd, t_both = torch_case(kind, p, args.reps)
            r = lpn[label]
            print(f"{label:<22} {t_fwd:>10.3f} {r['ours_fwd_ms']:>10.3f} {t_both:>10.3f} {r['ours_ms']:>10.3f} {r['ours_ms'] / t_both:>14.2f}")
    print("\nms, medians; f+b = forward + backward of sum(out * g); lpn/torch < 1: ours is faster")


if __name__ == "__main__":
    main()
