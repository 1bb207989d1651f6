"""Reference fixtures from PyTorch for the CPU kernels of 2-D convolution and
pooling (crates/lpn-kernels/src/conv2d.rs, pool.rs).

What it makes
-------------
tests/fixtures/torch/NAME.json, one per case, in the format of
tests/fixtures/ops (see make_op_fixtures.py):

    {"op": "conv2d" | "conv2d_block" | "maxpool1d" | "maxpool2d" | "avgpool1d" | "avgpool2d",
     "params": {...},
     "tensors": {"x", "w", "b", "out", "grad_out", "grad_x", "grad_w", "grad_b"}}

with every `grad_<name>` = dL/d<name> for L = sum(out * grad_out), computed by
torch.autograd in float64. Conv params: "stride" [sh, sw], "padding"
[[top, bottom], [left, right]] (an asymmetric one is applied with F.pad
first), "dilation" [dh, dw], "groups". Pool params: "k", "stride", "padding",
one entry per pooled axis; max pools pad with -inf, avg pools count the
padding (PyTorch's defaults), floor mode. A conv2d_block (lpn's fused
convolution, bias, ReLU and max pool, crates/lpn-kernels/src/block.rs) has the
conv params plus "relu" and "pool" ([kh, kw], window = stride, or null):
F.max_pool2d(F.relu(F.conv2d(...)), pool).

Inputs are multiples of 1/256 (exact in f32 and f64, and they survive the
JSON round trip); max-pool inputs are distinct so every window has one
argmax. Outputs are written with 12 significant digits.

How to run
----------
    benches/.venv/bin/python tests/reference/make_torch_fixtures.py

(from the repository root; needs torch). The fixtures are committed, so
`cargo test` needs no Python.
"""
import json
import os
import zlib

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
OUT_DIR = os.path.join(ROOT, "fixtures", "torch")


def gen_for(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def dyadic(gen, shape, scale=1.0):
    return torch.round(torch.randn(shape, generator=gen, dtype=torch.float64) * scale * 256) / 256


def distinct(gen, shape):
    """Distinct multiples of 1/256 in random order (no ties in a max pool)."""
    n = 1
    for s in shape:
        n *= s
    return ((torch.randperm(n, generator=gen).to(torch.float64) - n / 2) * 3 / 256).reshape(shape)


def tensor(t):
    return {"shape": list(t.shape), "data": [float("%.12g" % v) for v in t.detach().reshape(-1).tolist()]}


def emit(name, op, params, inputs, fwd):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = fwd(**leaves)
    grad_out = dyadic(gen_for(name + "/grad_out"), out.shape)
    (out * grad_out).sum().backward()
    tensors = {k: tensor(v) for k, v in inputs.items()}
    tensors["out"] = tensor(out)
    tensors["grad_out"] = tensor(grad_out)
    for k, v in leaves.items():
        tensors["grad_" + k] = tensor(v.grad)
    with open(os.path.join(OUT_DIR, name + ".json"), "w") as fh:
        json.dump({"op": op, "params": params, "tensors": tensors}, fh, separators=(",", ":"))
    print(f"{name}: {op} {params} out {list(out.shape)}")


def make_conv2d(name, B, Cin, H, W, Cout, k, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1, bias=True):
    gen = gen_for(name)
    inputs = {"x": dyadic(gen, (B, Cin, H, W)), "w": dyadic(gen, (Cout, Cin // groups, k[0], k[1]), 0.5)}
    if bias:
        inputs["b"] = dyadic(gen, (Cout,))
    (top, bottom), (left, right) = padding

    def fwd(x, w, b=None):
        if top == bottom and left == right:
            return F.conv2d(x, w, b, stride=stride, padding=(top, left), dilation=dilation, groups=groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride, dilation=dilation, groups=groups)

    params = {"stride": list(stride), "padding": [list(padding[0]), list(padding[1])], "dilation": list(dilation), "groups": groups}
    emit(name, "conv2d", params, inputs, fwd)


def make_block(name, B, Cin, H, W, Cout, k, padding, relu, pool, stride=(1, 1), groups=1):
    gen = gen_for(name)
    inputs = {"x": dyadic(gen, (B, Cin, H, W)), "w": dyadic(gen, (Cout, Cin // groups, k[0], k[1]), 0.5), "b": dyadic(gen, (Cout,))}
    (top, bottom), (left, right) = padding

    def fwd(x, w, b):
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride, groups=groups)
        if relu:
            y = F.relu(y)
        return F.max_pool2d(y, tuple(pool)) if pool else y

    params = {"stride": list(stride), "padding": [list(padding[0]), list(padding[1])], "dilation": [1, 1], "groups": groups, "relu": relu, "pool": pool}
    emit(name, "conv2d_block", params, inputs, fwd)


def make_pool(name, kind, shape, k, stride, padding):
    gen = gen_for(name)
    x = distinct(gen, shape) if kind == "max" else dyadic(gen, shape)
    axes = len(shape) - 2
    fn = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("avg", 1): F.avg_pool1d, ("avg", 2): F.avg_pool2d}[(kind, axes)]
    params = {"k": list(k), "stride": list(stride), "padding": list(padding)}
    emit(name, f"{kind}pool{axes}d", params, {"x": x}, lambda x: fn(x, tuple(k), tuple(stride), tuple(padding)))


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    # 2-D convolution: strides, padding (symmetric and not), dilation, groups,
    # odd sizes, non-square kernels, 1x1 (no im2col), and batches that do not
    # divide into the weight gradient's chunks.
    make_conv2d("conv2d_ref_net_small", 3, 1, 9, 9, 4, (5, 5), padding=((2, 2), (2, 2)))
    make_conv2d("conv2d_nonsquare_odd", 2, 3, 7, 6, 4, (3, 2))
    make_conv2d("conv2d_stride_pad", 2, 2, 9, 8, 3, (3, 3), stride=(2, 3), padding=((1, 1), (2, 2)))
    make_conv2d("conv2d_asymmetric_pad", 2, 2, 6, 7, 3, (4, 2), padding=((1, 2), (0, 1)))
    make_conv2d("conv2d_dilation", 2, 2, 9, 8, 3, (3, 2), dilation=(2, 3), padding=((2, 2), (1, 1)))
    make_conv2d("conv2d_groups2", 2, 4, 6, 5, 6, (3, 3), padding=((1, 1), (1, 1)), groups=2)
    make_conv2d("conv2d_depthwise", 2, 3, 6, 6, 3, (3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), groups=3)
    make_conv2d("conv2d_pointwise", 3, 4, 5, 3, 5, (1, 1))
    make_conv2d("conv2d_pointwise_stride2", 2, 3, 5, 6, 2, (1, 1), stride=(2, 2))
    make_conv2d("conv2d_batch11", 11, 2, 5, 4, 3, (2, 3), padding=((1, 1), (1, 1)), bias=False)
    make_conv2d("conv2d_stride_over_kernel", 2, 2, 10, 9, 2, (2, 2), stride=(3, 4), padding=((3, 3), (0, 0)))
    make_conv2d("conv2d_pad_over_kernel", 1, 2, 4, 3, 2, (2, 3), padding=((3, 3), (4, 4)))

    # The fused block: the reference net's shape, a row of 20 pooled windows
    # (a whole 16-window step and a partial one), a 3x2 window with rows and
    # columns left over, strides and groups (the im2col path), ReLU alone.
    make_block("conv2d_block_ref_net", 3, 2, 12, 12, 4, (5, 5), ((2, 2), (2, 2)), True, [2, 2])
    make_block("conv2d_block_wide", 2, 2, 6, 40, 3, (3, 3), ((1, 1), (1, 1)), True, [2, 2])
    make_block("conv2d_block_odd_window", 2, 3, 9, 7, 5, (3, 2), ((1, 0), (1, 1)), True, [3, 2])
    make_block("conv2d_block_stride_groups", 2, 4, 9, 8, 4, (3, 3), ((1, 1), (1, 1)), False, [2, 2], stride=(2, 1), groups=2)
    make_block("conv2d_block_relu_only", 2, 3, 7, 9, 5, (3, 3), ((1, 1), (1, 1)), True, None)

    # Pooling, 1-D and 2-D.
    make_pool("maxpool2d_ref_net", "max", (2, 3, 8, 8), (2, 2), (2, 2), (0, 0))
    make_pool("maxpool2d_k3_s2_pad1_odd", "max", (2, 2, 7, 9), (3, 3), (2, 2), (1, 1))
    make_pool("maxpool2d_nonsquare", "max", (2, 2, 7, 6), (3, 2), (2, 1), (1, 0))
    make_pool("maxpool2d_stride_over_kernel", "max", (1, 2, 9, 10), (2, 2), (3, 4), (1, 1))
    make_pool("maxpool1d_k3_s2_pad1", "max", (2, 3, 11), (3,), (2,), (1,))
    make_pool("maxpool1d_overlap", "max", (2, 2, 10), (4,), (1,), (2,))
    make_pool("avgpool2d_ref_net", "avg", (2, 3, 8, 8), (2, 2), (2, 2), (0, 0))
    make_pool("avgpool2d_nonsquare_pad", "avg", (2, 2, 7, 6), (3, 2), (2, 2), (1, 1))
    make_pool("avgpool2d_overlap", "avg", (1, 2, 6, 7), (3, 3), (1, 2), (1, 0))
    make_pool("avgpool1d_k4_s3_pad2", "avg", (2, 3, 13), (4,), (3,), (2,))


if __name__ == "__main__":
    main()
