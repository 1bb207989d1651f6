"""PyTorch's side of the 1-D reference step (lpn's is `cargo bench --bench conv1d -- step`):
input [64, 1, 1024], conv 1→16 k=15 "same", relu, conv 16→16, relu, conv 16→1; MSE; Adam lr 1e-3.
Prints the median milliseconds per training step after a warm-up.

    benches/.venv/bin/python benches/torch_conv1d_step.py --threads 2 --steps 200
"""

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--length", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv1d(1, 16, 15, padding=7),
        torch.nn.ReLU(),
        torch.nn.Conv1d(16, 16, 15, padding=7),
        torch.nn.ReLU(),
        torch.nn.Conv1d(16, 1, 15, padding=7),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch, 1, args.length)
    y = torch.randn(args.batch, 1, args.length)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    print(f"torch {torch.__version__} threads={args.threads} median {1e3 * statistics.median(times):.3f} ms/step "
          f"(min {1e3 * min(times):.3f}, {args.steps} steps)")


if __name__ == "__main__":
    main()
