"""PyTorch's side of the lpn-vs-PyTorch benchmark (benches/compare_pytorch.sh).

The reference nets of benches/nets/*.lpn written in PyTorch, trained from the
weights and on the data lpn exported (`cargo bench --bench step_time -- export
NET.lpn DIR`): the same batches in the same order, Adam with the same learning
rate. A constrained variant is done the way a PyTorch user would write it, from
the operators lpn exported:

- penalty: loss += weight * mean over kernels of rho(h) = h'Qh / h'h;
- project: the gradient projected (h P) before the step, the weight after it;
- reparam: torch.nn.utils.parametrize with weight = c V' (trainable c).

Prints one JSON line: median ms/step over the timed epochs, the per-epoch mean
training loss (to compare with lpn's report), the peak RSS.

    benches/.venv/bin/python benches/torch_step.py DIR --threads 1 --epochs 3 --warmup 1
"""

import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def load_safetensors(path):
    """A safetensors file as a dict of tensors (the format is small enough to
    read here, so the venv needs only torch and numpy)."""
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U32": np.uint32, "U8": np.uint8}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        arr = np.frombuffer(blob[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


class Conv1dNet(nn.Module):
    """benches/nets/conv1d.lpn"""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 16, 15, padding="same")
        self.conv2 = nn.Conv1d(16, 16, 15, padding="same")
        self.conv3 = nn.Conv1d(16, 1, 15, padding="same")

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)


class Conv2dNet(nn.Module):
    """benches/nets/conv2d.lpn"""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding="same")
        self.conv2 = nn.Conv2d(16, 32, 5, padding="same")
        self.linear1 = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.linear1(torch.flatten(x, 1))


class FcnNet(nn.Module):
    """benches/nets/fcn.lpn: the FCN of Wang et al. (2017), batch norm with
    lpn's defaults (eps 1e-5, momentum 0.1, PyTorch's too)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 128, 8, padding="same")
        self.batchnorm1 = nn.BatchNorm1d(128, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv1d(128, 256, 5, padding="same")
        self.batchnorm2 = nn.BatchNorm1d(256, eps=1e-5, momentum=0.1)
        self.conv3 = nn.Conv1d(256, 128, 3, padding="same")
        self.batchnorm3 = nn.BatchNorm1d(128, eps=1e-5, momentum=0.1)
        self.linear1 = nn.Linear(128, 4)

    def forward(self, x):
        x = F.relu(self.batchnorm1(self.conv1(x)))
        x = F.relu(self.batchnorm2(self.conv2(x)))
        x = F.relu(self.batchnorm3(self.conv3(x)))
        return self.linear1(x.mean(-1))


class Conv2dBnNet(nn.Module):
    """benches/nets/conv2d_bn.lpn: Conv2dNet with a batch norm after each
    convolution (eps 1e-5, momentum 0.1)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding="same")
        self.batchnorm1 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(16, 32, 5, padding="same")
        self.batchnorm2 = nn.BatchNorm2d(32, eps=1e-5, momentum=0.1)
        self.linear1 = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.batchnorm1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.batchnorm2(self.conv2(x))), 2)
        return self.linear1(torch.flatten(x, 1))


def make_net(meta):
    """The twin of the exported net: by model name for the nets with batch
    norm, else by input rank (conv1d*, conv2d*)."""
    by_name = {"fcn": FcnNet, "conv2d_bn": Conv2dBnNet}
    if meta["model"] in by_name:
        return by_name[meta["model"]]()
    return Conv1dNet() if len(meta["input"]) == 2 else Conv2dNet()


class Basis(nn.Module):
    """weight = c V' reshaped: c is [kernels, r], V [taps, r] orthonormal."""

    def __init__(self, basis, shape):
        super().__init__()
        self.register_buffer("basis", basis)
        self.shape = tuple(shape)

    def forward(self, c):
        return (c @ self.basis.T).reshape(self.shape)

    def right_inverse(self, w):
        return w.reshape(-1, self.basis.shape[0]) @ self.basis


def peak_rss_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="what `step_time export` wrote")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    data = load_safetensors(os.path.join(args.dir, "data.safetensors"))
    init = load_safetensors(os.path.join(args.dir, "init.safetensors"))
    ops_path = os.path.join(args.dir, "operators.safetensors")
    operators = load_safetensors(ops_path) if os.path.exists(ops_path) else {}

    net = make_net(meta)
    # lpn keeps no batch counter (its momentum is never None).
    missing = {k for k in net.state_dict() if not k.endswith("num_batches_tracked")} ^ set(init)
    if missing:
        sys.exit(f"weights do not match the PyTorch net: {sorted(missing)}")
    net.load_state_dict(init, strict=False)

    penalties, projections = [], []
    for c in meta["constraints"]:
        layer = getattr(net, c["layer"])
        taps = c["taps"]
        if c["mode"] == "penalty":
            penalties.append((layer, operators[c["layer"] + ".q"], c["weight"], taps))
        elif c["mode"] == "project":
            projections.append((layer, operators[c["layer"] + ".p"], taps))
        elif c["mode"] == "reparam":
            basis = operators[c["layer"] + ".basis"]
            torch.nn.utils.parametrize.register_parametrization(layer, "weight", Basis(basis, layer.weight.shape))
        else:
            sys.exit(f"mode {c['mode']} is not in this benchmark")

    opt = torch.optim.Adam(net.parameters(), lr=meta["lr"])
    x, y = data["x"], data["y"]
    loss_fn = F.mse_loss if meta["loss"] == "mse" else F.cross_entropy
    batch = meta["batch"]
    n = x.shape[0]
    batches = [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        task = loss_fn(net(xb), yb)
        loss = task
        for layer, q, weight, taps in penalties:
            h = layer.weight.reshape(-1, taps)
            rho = ((h @ q) * h).sum(1) / (h.square().sum(1) + 1e-30)
            loss = loss + weight * rho.mean()
        loss.backward()
        for layer, p, taps in projections:
            g = layer.weight.grad
            layer.weight.grad = (g.reshape(-1, taps) @ p).reshape(g.shape)
        opt.step()
        with torch.no_grad():
            for layer, p, taps in projections:
                w = layer.weight
                w.copy_((w.reshape(-1, taps) @ p).reshape(w.shape))
        return task.item()

    per_step, losses = [], []
    for _ in range(args.warmup + args.epochs):
        start = time.perf_counter()
        total = 0.0
        for xb, yb in batches:
            total += step(xb, yb) * xb.shape[0]
        per_step.append(1e3 * (time.perf_counter() - start) / len(batches))
        losses.append(total / n)
    print(
        json.dumps(
            {
                "side": "torch",
                "model": meta["model"],
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "steps_per_epoch": len(batches),
                "warmup_epochs": args.warmup,
                "epoch_ms_per_step": per_step,
                "ms_per_step": statistics.median(per_step[args.warmup :]),
                "train_loss": losses,
                "peak_rss_kib": peak_rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main()
