"""A second, independent PyTorch timing of the benchmark nets, as an outside
harness would do it: its own twins written from the nets' descriptions (not
`benches/torch_step.py`'s), PyTorch's default initialisation, random data
made here, and PyTorch's own timer (`torch.utils.benchmark.Timer`, which
sets the thread count and times whole steps in blocks). It shares nothing
with lpn's export, so if `benches/torch_step.py` handicapped PyTorch (data
layout, threads, the timing around the step), its figures would disagree with
these. `benches/compare_pytorch.sh` runs it in every round and reports both.

    python3 benches/torch_outside.py NET --threads 2 [--seconds 2]

NET is conv1d, conv2d, fcn or conv2d_bn. Prints one JSON line: median
ms/step over the timer's blocks, and the blocks' spread.
"""

import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

# Each net: (input shape without the batch, batch, classes or None for MSE, builder).
NETS = {
    # benches/nets/conv1d.lpn: conv 1→16→16→1, k=15, every one "same" (lpn's
    # default padding); MSE.
    "conv1d": ((1, 1024), 64, None, lambda: nn.Sequential(
        nn.Conv1d(1, 16, 15, padding=7), nn.ReLU(),
        nn.Conv1d(16, 16, 15, padding=7), nn.ReLU(),
        nn.Conv1d(16, 1, 15, padding=7))),
    # benches/nets/conv2d.lpn: conv 5×5 1→16, pool, conv 16→32, pool, linear → 10.
    "conv2d": ((1, 28, 28), 64, 10, lambda: nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))),
    # benches/nets/fcn.lpn: the FCN of Wang et al. (2017).
    "fcn": ((1, 512), 16, 4, lambda: nn.Sequential(
        nn.Conv1d(1, 128, 8, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Conv1d(128, 256, 5, padding="same"), nn.BatchNorm1d(256), nn.ReLU(),
        nn.Conv1d(256, 128, 3, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(128, 4))),
    # benches/nets/conv2d_bn.lpn: conv2d.lpn with batch norm after each conv.
    "conv2d_bn": ((1, 28, 28), 64, 10, lambda: nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("net", choices=sorted(NETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0, help="timing budget after the warm-up")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape, batch, classes, build = NETS[args.net]
    net = build()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    # Ten different batches, cycled, as an epoch of the benchmark has.
    xs = [torch.randn(batch, *shape) for _ in range(10)]
    if classes is None:
        ys = [torch.randn(batch, 1, shape[-1]) for _ in range(10)]
        loss_fn = F.mse_loss
    else:
        ys = [torch.randint(0, classes, (batch,)) for _ in range(10)]
        loss_fn = F.cross_entropy
    it = [0]

    def step():
        i = it[0] % 10
        it[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xs[i]), ys[i])
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(10):  # warm-up: allocator, one-time kernel choices
        step()
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=args.threads)
    m = timer.blocked_autorange(min_run_time=args.seconds)
    times = sorted(m.times)
    print(json.dumps({
        "side": "torch-outside",
        "model": args.net,
        "threads": torch.get_num_threads(),
        "ms_per_step": 1e3 * m.median,
        "ms_blocks": [1e3 * t for t in times],
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
