"""Reference fixtures from PyTorch for lpn's batch norm (the `batchnorm` layer,
alone or followed by `relu`; crates/lpn-kernels/src/norm.rs and the
Candle-op path of src/model/ops.rs), checked by tests/batchnorm_reference.rs.

What it makes
-------------
tests/fixtures/batchnorm/NAME.json, one per case:

    {"params": {"input": [C, *spatial], "eps", "momentum", "relu"},
     "gamma": T, "beta": T,
     "steps": [{"x", "grad_out", "out", "grad_x", "grad_gamma", "grad_beta",
                "running_mean", "running_var"}, ...],
     "eval": {"x", "grad_out", "out", "grad_x", "grad_gamma", "grad_beta"}}

with T = {"shape": [...], "data": [...]} (row-major). Each step is one
training-mode forward pass of nn.BatchNorm1d (input [B, C] or [B, C, L]) or
nn.BatchNorm2d ([B, C, H, W]) with the given eps and momentum, followed by
F.relu when "relu", on a new batch `x`; the gradients are those of
L = sum(out * grad_out) (γ and β are not updated between steps), and the
running statistics are the module's after the step (PyTorch's update, with
the unbiased batch variance). "eval" is a pass in evaluation mode (running
statistics) after the steps. Everything is computed in float64.

Inputs are multiples of 1/256 plus an offset per case (exact in f32 and f64,
and they survive the JSON round trip); one case has a mean of 1000 and a
spread of about 0.5, where a variance from E[x²] − E[x]² in f32 loses every
digit. Outputs are written with 12 significant digits (the helpers of
make_torch_fixtures.py).

How to run
----------
    python3 tests/reference/make_batchnorm_fixtures.py

(from the repository root; needs torch). The fixtures are committed, so
`cargo test` needs no Python.
"""
import json
import os

import torch
import torch.nn.functional as F

from make_torch_fixtures import dyadic, gen_for, tensor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
OUT_DIR = os.path.join(ROOT, "fixtures", "batchnorm")


def run_pass(bn, relu, x, grad_out):
    """One pass; returns the output and the gradients of x, γ and β."""
    bn.zero_grad()
    x = x.clone().requires_grad_(True)
    out = bn(x)
    if relu:
        out = F.relu(out)
    (out * grad_out).sum().backward()
    return {
        "x": tensor(x),
        "grad_out": tensor(grad_out),
        "out": tensor(out),
        "grad_x": tensor(x.grad),
        "grad_gamma": tensor(bn.weight.grad),
        "grad_beta": tensor(bn.bias.grad),
    }


def make(name, shape, relu, eps=1e-5, momentum=0.1, steps=3, offset=2.0, scale=1.5):
    gen = gen_for(name)
    channels = shape[1]
    module = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    bn = module(channels, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(1.0 + dyadic(gen, (channels,), 0.5))
        bn.bias.copy_(dyadic(gen, (channels,), 0.5))
    gamma, beta = bn.weight.detach().clone(), bn.bias.detach().clone()
    bn.train()
    records = []
    for _ in range(steps):
        x = offset + dyadic(gen, shape, scale)
        record = run_pass(bn, relu, x, dyadic(gen, shape))
        record["running_mean"] = tensor(bn.running_mean)
        record["running_var"] = tensor(bn.running_var)
        records.append(record)
    bn.eval()
    evaluation = run_pass(bn, relu, offset + dyadic(gen, shape, scale), dyadic(gen, shape))
    params = {"input": list(shape[1:]), "eps": eps, "momentum": momentum, "relu": relu}
    fixture = {"params": params, "gamma": tensor(gamma), "beta": tensor(beta), "steps": records, "eval": evaluation}
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as fh:
        json.dump(fixture, fh, separators=(",", ":"))
    print(f"{name}: {module.__name__} {list(shape)} {params}")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    # BatchNorm1d on [B, C] and [B, C, L], BatchNorm2d on [B, C, H, W]; each
    # alone and followed by a ReLU (lpn fuses the two into one op); default
    # and other eps and momentum; planes that are no multiple of the
    # kernel's 8 lanes.
    make("bn1d_flat", (8, 5), relu=False)
    make("bn1d_flat_relu", (6, 4), relu=True, eps=1e-3, momentum=0.3)
    make("bn1d_seq", (4, 3, 17), relu=False)
    make("bn1d_seq_relu", (4, 6, 33), relu=True, momentum=0.25)
    make("bn2d", (2, 3, 5, 7), relu=False)
    make("bn2d_relu", (3, 4, 6, 5), relu=True, eps=1e-4, momentum=0.5)
    # A large mean and a small spread.
    make("bn1d_large_mean", (4, 2, 50), relu=False, offset=1000.0, scale=0.5)


if __name__ == "__main__":
    main()
