"""Reference fixtures for lpn's own tensor ops (forward values and gradients).

What it makes
-------------
* tests/fixtures/ops/NAME.json, one per case, each a single object

      {"op": "<op name>",
       "params": {<op parameters>},
       "tensors": {"x": {"shape": [...], "data": [flat row-major floats]},
                   "w": ..., "b": ..., "out": ..., "grad_out": ...,
                   "grad_x": ..., "grad_w": ..., "grad_b": ...}}

  `out` is the forward output, `grad_out` a fixed random tensor of out's
  shape, and every `grad_<name>` is dL/d<name> for L = sum(out * grad_out).
  A tensor with shape [] (a scalar) has a one-element `data` list.
  Everything is float64 and follows PyTorch's documented conventions
  (cross-correlation convolutions, zero padding, max pools padded with -inf,
  avg pools with count_include_pad=True, floor mode, biased batch variance).
  Some fixtures carry extra input tensors ("target" for losses, "Q" for the
  stopband ratio) or extra outputs ("batch_mean", "batch_var" for batch norm).

* tests/fixtures/filters.json: scipy.signal.firwin taps and the
  eigendecomposition/projector of the stopband operator Q of
  shared/notes/constraints.md for a few constraint specs.

How it is computed
------------------
Forward passes are plain numpy (explicit loops where that is clearer).
Gradients are computed twice: analytically / with an explicit adjoint
(transposed) implementation, and by central finite differences with h=1e-6.
The script asserts the two agree to 1e-6 relative (max abs difference over
the tensor divided by the tensor's max abs value) and stores the analytic
ones.  Inputs are chosen so the ops are differentiable where evaluated
(distinct values for max pools, |x| > 1e-3 for relu-like ops and mae).

How to run
----------
    python3 tests/reference/make_op_fixtures.py

(from the repository root; needs numpy and scipy).  The generated fixtures
are committed, so CI and `cargo test` need no Python.
"""
import json
import math
import os
import zlib

import numpy as np
import scipy.signal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/
OPS_DIR = os.path.join(ROOT, "fixtures", "ops")
FILTERS_PATH = os.path.join(ROOT, "fixtures", "filters.json")

FD_H = 1e-6
FD_RTOL = 1e-6


def rng_for(name):
    """A fixed, order-independent seed per fixture."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def tensor(a):
    a = np.asarray(a, dtype=np.float64)
    return {"shape": list(a.shape), "data": [float(v) for v in a.reshape(-1)]}


def distinct(rng, shape, spacing=0.05):
    """Values with pairwise gaps >= ~spacing (no ties), randomly placed."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2.0) * spacing + rng.uniform(0, spacing / 5, n)
    return v.reshape(shape)


def away_from_zero(rng, shape, lo=0.05, hi=2.0):
    mag = rng.uniform(lo, hi, shape)
    sign = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0)
    return mag * sign


# ---------------------------------------------------------------------------
# Finite differences


def check_grads(name, fwd, inputs, grad_out, analytic):
    """Central differences of L = sum(fwd(inputs) * grad_out) versus `analytic`."""
    for key, g_an in analytic.items():
        base = inputs[key]
        g_fd = np.zeros_like(base)
        flat = base.reshape(-1)
        for i in range(flat.size):
            vals = []
            for s in (+1.0, -1.0):
                pert = dict(inputs)
                p = flat.copy()
                p[i] += s * FD_H
                pert[key] = p.reshape(base.shape)
                vals.append(float(np.sum(fwd(**pert) * grad_out)))
            g_fd.reshape(-1)[i] = (vals[0] - vals[1]) / (2 * FD_H)
        scale = max(float(np.max(np.abs(g_an))), 1e-12)
        err = float(np.max(np.abs(g_an - g_fd))) / scale
        assert err <= FD_RTOL, f"{name}: grad_{key} finite-difference mismatch, rel err {err:.3e}"


def emit(name, op, params, inputs, fwd, grad_fn, extra_inputs=None, extra_out=None, fd=True):
    """Run fwd, the analytic gradient and the FD check; write NAME.json.

    fd=False skips the finite-difference check, for inputs where the op is not
    differentiable (tied maxima): the gradient is then the convention's.

    inputs: differentiable tensors (name -> array)
    extra_inputs: non-differentiable inputs passed to fwd/grad_fn (targets, Q)
    """
    extra_inputs = extra_inputs or {}
    rng = rng_for(name + "/grad_out")

    def f(**kw):
        return np.asarray(fwd(**kw, **extra_inputs), dtype=np.float64)

    out = f(**inputs)
    grad_out = rng.standard_normal(out.shape)
    grads = grad_fn(grad_out, **inputs, **extra_inputs)
    assert set(grads) == set(inputs), (name, set(grads), set(inputs))
    for k, g in grads.items():
        assert g.shape == inputs[k].shape, (name, k, g.shape, inputs[k].shape)
    assert np.all(np.isfinite(out)), name
    if fd:
        check_grads(name, f, inputs, grad_out, grads)
    tensors = {}
    for k, v in inputs.items():
        tensors[k] = tensor(v)
    for k, v in extra_inputs.items():
        tensors[k] = tensor(v)
    tensors["out"] = tensor(out)
    tensors["grad_out"] = tensor(grad_out)
    for k, v in grads.items():
        tensors["grad_" + k] = tensor(v)
    for k, v in (extra_out or {}).items():
        tensors[k] = tensor(v)
    obj = {"op": op, "params": params, "tensors": tensors}
    with open(os.path.join(OPS_DIR, name + ".json"), "w") as fh:
        json.dump(obj, fh)
    shapes = {k: v["shape"] for k, v in tensors.items()}
    print(f"{name}: {op} {shapes}")


# ---------------------------------------------------------------------------
# Convolutions (PyTorch semantics: cross-correlation, zero padding)


def conv1d_out_len(L, left, right, k, stride, dilation):
    return (L + left + right - dilation * (k - 1) - 1) // stride + 1


def conv1d_fwd(x, w, b, stride, padding, dilation, groups):
    B, Cin, L = x.shape
    Cout, cig, k = w.shape
    left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    Lout = conv1d_out_len(L, left, right, k, stride, dilation)
    cog = Cout // groups
    out = np.zeros((B, Cout, Lout))
    for bb in range(B):
        for o in range(Cout):
            g = o // cog
            for t in range(Lout):
                s = b[o]
                for ii in range(cig):
                    i = g * cig + ii
                    for j in range(k):
                        s += w[o, ii, j] * xp[bb, i, t * stride + j * dilation]
                out[bb, o, t] = s
    return out


def conv1d_adjoint(gout, x, w, b, stride, padding, dilation, groups):
    B, Cin, L = x.shape
    Cout, cig, k = w.shape
    left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (left, right)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    cog = Cout // groups
    Lout = gout.shape[2]
    for bb in range(B):
        for o in range(Cout):
            g = o // cog
            for t in range(Lout):
                go = gout[bb, o, t]
                for ii in range(cig):
                    i = g * cig + ii
                    for j in range(k):
                        pos = t * stride + j * dilation
                        gxp[bb, i, pos] += w[o, ii, j] * go
                        gw[o, ii, j] += xp[bb, i, pos] * go
    gx = gxp[:, :, left:left + L]
    gb = gout.sum(axis=(0, 2))
    return {"x": gx, "w": gw, "b": gb}


def conv2d_fwd(x, w, b, stride, padding, dilation, groups):
    B, Cin, H, W = x.shape
    Cout, cig, kh, kw = w.shape
    (pt, pb), (pl, pr) = padding
    sh, sw = stride
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    Ho = conv1d_out_len(H, pt, pb, kh, sh, dh)
    Wo = conv1d_out_len(W, pl, pr, kw, sw, dw)
    cog = Cout // groups
    out = np.zeros((B, Cout, Ho, Wo))
    for bb in range(B):
        for o in range(Cout):
            g = o // cog
            for u in range(Ho):
                for v in range(Wo):
                    s = b[o]
                    for ii in range(cig):
                        i = g * cig + ii
                        for p in range(kh):
                            for q in range(kw):
                                s += w[o, ii, p, q] * xp[bb, i, u * sh + p * dh, v * sw + q * dw]
                    out[bb, o, u, v] = s
    return out


def conv2d_adjoint(gout, x, w, b, stride, padding, dilation, groups):
    B, Cin, H, W = x.shape
    Cout, cig, kh, kw = w.shape
    (pt, pb), (pl, pr) = padding
    sh, sw = stride
    dh, dw = dilation
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    cog = Cout // groups
    _, _, Ho, Wo = gout.shape
    for bb in range(B):
        for o in range(Cout):
            g = o // cog
            for u in range(Ho):
                for v in range(Wo):
                    go = gout[bb, o, u, v]
                    for ii in range(cig):
                        i = g * cig + ii
                        for p in range(kh):
                            for q in range(kw):
                                r, c = u * sh + p * dh, v * sw + q * dw
                                gxp[bb, i, r, c] += w[o, ii, p, q] * go
                                gw[o, ii, p, q] += xp[bb, i, r, c] * go
    gx = gxp[:, :, pt:pt + H, pl:pl + W]
    gb = gout.sum(axis=(0, 2, 3))
    return {"x": gx, "w": gw, "b": gb}


def make_conv1d(name, B, Cin, L, Cout, k, stride=1, padding=(0, 0), dilation=1, groups=1):
    rng = rng_for(name)
    params = {"stride": stride, "padding": list(padding), "dilation": dilation, "groups": groups}
    inputs = {
        "x": rng.standard_normal((B, Cin, L)),
        "w": rng.standard_normal((Cout, Cin // groups, k)) * 0.5,
        "b": rng.standard_normal(Cout),
    }
    emit(name, "conv1d", params, inputs,
         lambda x, w, b: conv1d_fwd(x, w, b, stride, padding, dilation, groups),
         lambda g, x, w, b: conv1d_adjoint(g, x, w, b, stride, padding, dilation, groups))


def make_conv2d(name, B, Cin, H, W, Cout, k, stride=(1, 1), padding=((0, 0), (0, 0)),
                dilation=(1, 1), groups=1):
    rng = rng_for(name)
    params = {"stride": list(stride), "padding": [list(p) for p in padding],
              "dilation": list(dilation), "groups": groups}
    inputs = {
        "x": rng.standard_normal((B, Cin, H, W)),
        "w": rng.standard_normal((Cout, Cin // groups, k[0], k[1])) * 0.5,
        "b": rng.standard_normal(Cout),
    }
    emit(name, "conv2d", params, inputs,
         lambda x, w, b: conv2d_fwd(x, w, b, stride, padding, dilation, groups),
         lambda g, x, w, b: conv2d_adjoint(g, x, w, b, stride, padding, dilation, groups))


# ---------------------------------------------------------------------------
# Linear


def make_linear(name, B, n_in, n_out):
    rng = rng_for(name)
    inputs = {
        "x": rng.standard_normal((B, n_in)),
        "w": rng.standard_normal((n_out, n_in)),
        "b": rng.standard_normal(n_out),
    }

    def fwd(x, w, b):
        return x @ w.T + b

    def grad(g, x, w, b):
        return {"x": g @ w, "w": g.T @ x, "b": g.sum(axis=0)}

    emit(name, "linear", {}, inputs, fwd, grad)


# ---------------------------------------------------------------------------
# Pools (PyTorch: max pool pads with -inf, avg pool with zeros,
# count_include_pad=True, ceil_mode=False)


def pool_windows_1d(L, k, stride, pad):
    Lout = (L + 2 * pad - k) // stride + 1
    # window t covers padded positions [t*stride, t*stride+k), i.e. original
    # positions t*stride-pad .. t*stride-pad+k-1
    return Lout, [[t * stride - pad + j for j in range(k)] for t in range(Lout)]


def pool1d_fwd(x, kind, k, stride, pad):
    B, C, L = x.shape
    Lout, wins = pool_windows_1d(L, k, stride, pad)
    out = np.zeros((B, C, Lout))
    for bb in range(B):
        for c in range(C):
            for t, win in enumerate(wins):
                inside = [p for p in win if 0 <= p < L]
                if kind == "max":
                    # padded positions are -inf: they never win
                    out[bb, c, t] = max(x[bb, c, p] for p in inside)
                else:
                    out[bb, c, t] = sum(x[bb, c, p] for p in inside) / k
    return out


def pool1d_adjoint(g, x, kind, k, stride, pad):
    B, C, L = x.shape
    _, wins = pool_windows_1d(L, k, stride, pad)
    gx = np.zeros_like(x)
    for bb in range(B):
        for c in range(C):
            for t, win in enumerate(wins):
                inside = [p for p in win if 0 <= p < L]
                if kind == "max":
                    vals = [x[bb, c, p] for p in inside]
                    am = inside[int(np.argmax(vals))]
                    assert sorted(vals)[-1] - (sorted(vals)[-2] if len(vals) > 1 else -np.inf) > 1e-3
                    gx[bb, c, am] += g[bb, c, t]
                else:
                    for p in inside:
                        gx[bb, c, p] += g[bb, c, t] / k
    return gx


def pool2d_fwd(x, kind, k, stride, pad):
    B, C, H, W = x.shape
    Ho, wr = pool_windows_1d(H, k[0], stride[0], pad[0])
    Wo, wc = pool_windows_1d(W, k[1], stride[1], pad[1])
    out = np.zeros((B, C, Ho, Wo))
    for bb in range(B):
        for c in range(C):
            for u in range(Ho):
                for v in range(Wo):
                    inside = [(r, s) for r in wr[u] for s in wc[v] if 0 <= r < H and 0 <= s < W]
                    vals = [x[bb, c, r, s] for r, s in inside]
                    if kind == "max":
                        out[bb, c, u, v] = max(vals)
                    else:
                        out[bb, c, u, v] = sum(vals) / (k[0] * k[1])
    return out


def pool2d_adjoint(g, x, kind, k, stride, pad):
    B, C, H, W = x.shape
    Ho, wr = pool_windows_1d(H, k[0], stride[0], pad[0])
    Wo, wc = pool_windows_1d(W, k[1], stride[1], pad[1])
    gx = np.zeros_like(x)
    for bb in range(B):
        for c in range(C):
            for u in range(Ho):
                for v in range(Wo):
                    inside = [(r, s) for r in wr[u] for s in wc[v] if 0 <= r < H and 0 <= s < W]
                    if kind == "max":
                        vals = [x[bb, c, r, s] for r, s in inside]
                        r, s = inside[int(np.argmax(vals))]
                        gx[bb, c, r, s] += g[bb, c, u, v]
                    else:
                        for r, s in inside:
                            gx[bb, c, r, s] += g[bb, c, u, v] / (k[0] * k[1])
    return gx


def make_pool1d(name, kind, B, C, L, k, stride=None, padding=0):
    stride = k if stride is None else stride
    assert padding <= k // 2  # PyTorch's requirement
    rng = rng_for(name)
    x = distinct(rng, (B, C, L)) if kind == "max" else rng.standard_normal((B, C, L))
    params = {"k": k, "stride": stride, "padding": padding}
    emit(name, kind + "pool1d", params, {"x": x},
         lambda x: pool1d_fwd(x, kind, k, stride, padding),
         lambda g, x: {"x": pool1d_adjoint(g, x, kind, k, stride, padding)})


def make_pool2d(name, kind, B, C, H, W, k, stride=None, padding=(0, 0)):
    stride = k if stride is None else stride
    assert padding[0] <= k[0] // 2 and padding[1] <= k[1] // 2
    rng = rng_for(name)
    x = distinct(rng, (B, C, H, W)) if kind == "max" else rng.standard_normal((B, C, H, W))
    params = {"k": list(k), "stride": list(stride), "padding": list(padding)}
    emit(name, kind + "pool2d", params, {"x": x},
         lambda x: pool2d_fwd(x, kind, k, stride, padding),
         lambda g, x: {"x": pool2d_adjoint(g, x, kind, k, stride, padding)})


def make_global(name, kind, shape, ties=False):
    """ties: small integers, so most rows have tied maxima. PyTorch's
    x.flatten(2).max(2) gives the whole gradient to the first maximum
    (np.argmax picks the same one); no finite differences then."""
    rng = rng_for(name)
    if ties:
        x = rng.integers(0, 3, shape).astype(np.float64)
    elif kind == "max":
        x = distinct(rng, shape)
    else:
        x = rng.standard_normal(shape)
    axes = tuple(range(2, len(shape)))
    n = int(np.prod(shape[2:]))

    def fwd(x):
        return x.max(axis=axes) if kind == "max" else x.mean(axis=axes)

    def grad(g, x):
        gx = np.zeros_like(x)
        B, C = shape[:2]
        for bb in range(B):
            for c in range(C):
                if kind == "max":
                    idx = np.unravel_index(np.argmax(x[bb, c]), shape[2:])
                    gx[(bb, c) + idx] = g[bb, c]
                else:
                    gx[bb, c] = g[bb, c] / n
        return {"x": gx}

    emit(name, f"global_{kind}pool{len(shape) - 2}d", {}, {"x": x}, fwd, grad, fd=not ties)


# ---------------------------------------------------------------------------
# Activations

GELU_C = math.sqrt(2.0 / math.pi)


def sigmoid(x):
    # stable for large |x|
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def act_fwd(kind, x, slope=None):
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, slope * x)
    if kind == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(GELU_C * (x + 0.044715 * x ** 3)))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return sigmoid(x)
    if kind == "silu":
        return x * sigmoid(x)
    raise ValueError(kind)


def act_deriv(kind, x, slope=None):
    if kind == "relu":
        return (x > 0).astype(float)
    if kind == "leaky_relu":
        return np.where(x > 0, 1.0, slope)
    if kind == "gelu_tanh":
        u = GELU_C * (x + 0.044715 * x ** 3)
        t = np.tanh(u)
        du = GELU_C * (1.0 + 3 * 0.044715 * x ** 2)
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du
    if kind == "tanh":
        return 1.0 - np.tanh(x) ** 2
    if kind == "sigmoid":
        s = sigmoid(x)
        return s * (1.0 - s)
    if kind == "silu":
        s = sigmoid(x)
        return s * (1.0 + x * (1.0 - s))
    raise ValueError(kind)


def make_act(name, kind, slope=None):
    rng = rng_for(name)
    if kind in ("relu", "leaky_relu"):
        x = away_from_zero(rng, (3, 8), lo=0.01, hi=3.0)
        assert np.all(np.abs(x) > 1e-3)
    else:
        x = rng.uniform(-4.0, 4.0, (3, 8))
    params = {} if slope is None else {"slope": slope}
    emit(name, kind, params, {"x": x},
         lambda x: act_fwd(kind, x, slope),
         lambda g, x: {"x": g * act_deriv(kind, x, slope)})


# ---------------------------------------------------------------------------
# Losses (reduction = mean, scalar output of shape [])


def make_mse(name):
    rng = rng_for(name)
    x = rng.standard_normal((3, 4))
    t = rng.standard_normal((3, 4))
    emit(name, "mse", {"reduction": "mean"}, {"x": x},
         lambda x, target: np.mean((x - target) ** 2),
         lambda g, x, target: {"x": g * 2.0 * (x - target) / x.size},
         extra_inputs={"target": t})


def make_mae(name):
    rng = rng_for(name)
    t = rng.standard_normal((3, 4))
    x = t + away_from_zero(rng, (3, 4), lo=0.05, hi=1.5)
    emit(name, "mae", {"reduction": "mean"}, {"x": x},
         lambda x, target: np.mean(np.abs(x - target)),
         lambda g, x, target: {"x": g * np.sign(x - target) / x.size},
         extra_inputs={"target": t})


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))


def make_cross_entropy(name, x, target):
    B, C = x.shape

    def fwd(x, target):
        ls = log_softmax(x)
        return -np.mean(ls[np.arange(B), target.astype(int)])

    def grad(g, x, target):
        p = np.exp(log_softmax(x))
        p[np.arange(B), target.astype(int)] -= 1.0
        return {"x": g * p / B}

    emit(name, "cross_entropy", {"reduction": "mean"}, {"x": x}, fwd, grad,
         extra_inputs={"target": target.astype(np.float64)})


def make_bce(name, x, y):
    n = x.size

    def fwd(x, target):
        return np.mean(np.maximum(x, 0.0) - x * target + np.log1p(np.exp(-np.abs(x))))

    def grad(g, x, target):
        return {"x": g * (sigmoid(x) - target) / n}

    emit(name, "bce_logits", {"reduction": "mean"}, {"x": x}, fwd, grad,
         extra_inputs={"target": y.astype(np.float64)})


# ---------------------------------------------------------------------------
# Batch norm, training mode (batch statistics, biased variance)


def make_batchnorm(name, shape, eps=1e-5):
    rng = rng_for(name)
    C = shape[1]
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, C) + (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape) * 1.5 + rng.standard_normal(bshape)
    gamma = rng.uniform(0.5, 1.5, C)
    beta = rng.standard_normal(C)

    def fwd(x, w, b):
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        xh = (x - mu) / np.sqrt(var + eps)
        return w.reshape(bshape) * xh + b.reshape(bshape)

    def grad(g, x, w, b):
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(var + eps)
        xh = (x - mu) * inv
        gxh = g * w.reshape(bshape)
        gx = inv * (gxh - gxh.mean(axis=axes, keepdims=True)
                    - xh * (gxh * xh).mean(axis=axes, keepdims=True))
        return {"x": gx, "w": (g * xh).sum(axis=axes), "b": g.sum(axis=axes)}

    mu = x.mean(axis=axes)
    var = ((x - mu.reshape(bshape)) ** 2).mean(axis=axes)
    emit(name, f"batchnorm{len(shape) - 2}d", {"eps": eps, "training": True},
         {"x": x, "w": gamma, "b": beta}, fwd, grad,
         extra_out={"batch_mean": mu, "batch_var": var})


# ---------------------------------------------------------------------------
# Stopband energy ratio (shared/notes/constraints.md)


def k_band(k, W):
    m = np.arange(k)
    return W * np.sinc(W * (m[:, None] - m[None, :]))


def stopband_q(k, family, cutoff, transition):
    """Returns (edge, Q). Edges clamped to [0, 1]."""
    if transition is None:
        transition = 6.6 / k
    if family == "lowpass":
        edge = min(max(cutoff + transition / 2, 0.0), 1.0)
        return edge, np.eye(k) - k_band(k, edge)
    if family == "highpass":
        edge = min(max(cutoff - transition / 2, 0.0), 1.0)
        return edge, k_band(k, edge)
    raise ValueError(family)


def rho(Q, h):
    return float(h @ Q @ h / (h @ h))


def make_stopband(name, family, k, cutoff, transition, shape):
    rng = rng_for(name)
    edge, Q = stopband_q(k, family, cutoff, transition)
    x = rng.standard_normal(shape)
    n = int(np.prod(shape[:-1]))

    def fwd(x, Q):
        H = x.reshape(n, k)
        return np.mean([h @ Q @ h / (h @ h) for h in H])

    def grad(g, x, Q):
        H = x.reshape(n, k)
        G = np.zeros_like(H)
        for r, h in enumerate(H):
            hh = h @ h
            G[r] = 2.0 * (Q @ h - (h @ Q @ h / hh) * h) / hh
        return {"x": g * G.reshape(x.shape) / n}

    params = {"family": family, "k": k, "cutoff": cutoff, "transition": transition,
              "edge": edge}
    emit(name, "stopband_ratio", params, {"x": x}, fwd, grad, extra_inputs={"Q": Q})


# ---------------------------------------------------------------------------
# filters.json


def make_filters():
    firwin = []
    for numtaps, cutoff in [(15, 0.2), (31, 0.25), (21, 0.5), (16, 0.3)]:
        taps = scipy.signal.firwin(numtaps, cutoff)
        firwin.append({"kind": "lowpass", "numtaps": numtaps, "cutoff": cutoff,
                       "taps": [float(t) for t in taps]})
    for numtaps, cutoff in [(15, 0.3), (21, 0.6)]:
        taps = scipy.signal.firwin(numtaps, cutoff, pass_zero=False)
        firwin.append({"kind": "highpass", "numtaps": numtaps, "cutoff": cutoff,
                       "taps": [float(t) for t in taps]})

    # Cross-check the windowed-sinc formula of constraints.md against firwin.
    for f in firwin:
        k, c = f["numtaps"], f["cutoff"]
        n = np.arange(k)
        M = (k - 1) / 2
        h = np.hamming(k) * c * np.sinc(c * (n - M))
        h /= h.sum()
        if f["kind"] == "highpass":
            d = np.zeros(k)
            d[int(M)] = 1.0
            # firwin's high-pass is delta minus the *unnormalised* windowed
            # sinc, then scaled to unit gain at Nyquist (sum h[n] cos(pi (n-M))).
            # Note: this differs (by ~3e-3 per tap for these cases) from
            # constraints.md's "delta - h_lowpass" with h_lowpass normalised
            # to unit DC gain; the fixtures store firwin's taps.
            raw = np.hamming(k) * c * np.sinc(c * (n - M))
            h = d - raw
            h /= np.sum(h * np.cos(np.pi * (n - M)))
        assert np.allclose(h, f["taps"], rtol=0, atol=1e-12), (k, c, f["kind"])

    projections = []
    for k, family, cutoff, transition, tol in [(15, "lowpass", 0.2, 0.1, 0.01),
                                               (31, "lowpass", 0.1, None, 0.01),
                                               (15, "highpass", 0.4, 0.1, 0.01)]:
        rng = rng_for(f"projection/{k}/{family}/{cutoff}/{transition}")
        edge, Q = stopband_q(k, family, cutoff, transition)
        lam, U = np.linalg.eigh(Q)
        V = U[:, lam <= tol]
        rank = V.shape[1]
        assert rank > 0
        P = V @ V.T
        assert np.allclose(P @ P, P, atol=1e-12), "P not idempotent"
        assert np.allclose(P, P.T, atol=1e-14)
        h = rng.standard_normal(k)
        ph = P @ h
        rho_h, rho_ph = rho(Q, h), rho(Q, ph)
        assert rho_ph <= tol, (rho_ph, tol)
        projections.append({
            "k": k, "family": family, "cutoff": cutoff, "transition": transition,
            "tol": tol, "edge": edge, "Q": tensor(Q),
            "eigenvalues": [float(v) for v in lam], "P": tensor(P),
            "h": [float(v) for v in h], "rho_h": rho_h, "rho_ph": rho_ph, "rank": rank,
        })
    with open(FILTERS_PATH, "w") as fh:
        json.dump({"firwin": firwin, "projections": projections}, fh)
    print(f"filters.json: {len(firwin)} firwin designs, {len(projections)} projections "
          f"(ranks {[p['rank'] for p in projections]})")


# ---------------------------------------------------------------------------


def main():
    os.makedirs(OPS_DIR, exist_ok=True)

    # conv1d
    make_conv1d("conv1d_basic", 2, 3, 17, 4, 5)
    make_conv1d("conv1d_stride2_pad2", 2, 3, 17, 4, 5, stride=2, padding=(2, 2))
    make_conv1d("conv1d_dilation2", 2, 3, 17, 4, 5, dilation=2)
    make_conv1d("conv1d_groups3", 2, 3, 17, 6, 5, groups=3)
    make_conv1d("conv1d_same_even_k", 2, 3, 17, 4, 4, padding=(1, 2))
    make_conv1d("conv1d_single_out", 2, 3, 17, 1, 5)
    make_conv1d("conv1d_many_out", 2, 2, 17, 8, 7)

    # conv2d
    make_conv2d("conv2d_basic", 2, 2, 7, 6, 3, (3, 2))
    make_conv2d("conv2d_stride_pad", 2, 2, 7, 6, 3, (3, 2), stride=(2, 1),
                padding=((1, 1), (0, 0)))
    make_conv2d("conv2d_groups2", 2, 2, 7, 6, 4, (3, 2), dilation=(1, 2), groups=2)

    make_linear("linear_basic", 3, 5, 4)

    # pools
    make_pool1d("maxpool1d_k2", "max", 2, 3, 10, 2)
    make_pool1d("maxpool1d_k3_s2_uneven", "max", 2, 3, 11, 3, stride=2)
    make_pool1d("maxpool1d_pad1", "max", 2, 3, 11, 3, stride=2, padding=1)
    make_pool1d("avgpool1d_k3_s2_uneven", "avg", 2, 3, 11, 3, stride=2)
    make_pool1d("avgpool1d_pad1", "avg", 2, 3, 11, 3, stride=2, padding=1)
    make_pool2d("maxpool2d_k2", "max", 2, 2, 6, 5, (2, 2))
    make_pool2d("avgpool2d_k3_s2_pad1", "avg", 2, 2, 7, 6, (3, 3), stride=(2, 2),
                padding=(1, 1))
    make_global("global_avgpool1d", "avg", (2, 3, 7))
    make_global("global_maxpool1d", "max", (2, 3, 7))
    make_global("global_avgpool2d", "avg", (2, 3, 4, 5))
    make_global("global_maxpool2d", "max", (2, 3, 4, 5))
    make_global("global_maxpool1d_ties", "max", (2, 3, 6), ties=True)
    make_global("global_maxpool2d_ties", "max", (2, 3, 3, 4), ties=True)

    # activations
    for kind in ("relu", "gelu_tanh", "tanh", "sigmoid", "silu"):
        make_act(kind, kind)
    make_act("leaky_relu_0.1", "leaky_relu", slope=0.1)

    # losses
    make_mse("mse")
    make_mae("mae")
    rng = rng_for("cross_entropy/data")
    make_cross_entropy("cross_entropy", rng.standard_normal((4, 5)) * 2.0,
                       np.array([0, 3, 4, 1]))
    rng = rng_for("cross_entropy_large/data")
    xl = rng.uniform(-300.0, 300.0, (4, 5))
    xl[0, 2], xl[1, 0], xl[2, 4], xl[3, 1] = 300.0, -300.0, 299.0, -299.5
    # targets: one at the row max, one at the row min (loss ~ 600), two others
    make_cross_entropy("cross_entropy_large", xl,
                       np.array([2, int(np.argmin(xl[1])), 0, 3]))
    rng = rng_for("bce_logits/data")
    make_bce("bce_logits", rng.standard_normal(8) * 2.0,
             np.array([0, 1, 1, 0, 1, 0, 0, 1]))
    make_bce("bce_logits_large",
             np.array([80.0, -80.0, 200.0, -200.0, 80.0, -80.0, 200.0, -200.0]),
             np.array([1, 0, 1, 0, 0, 1, 0, 1]))

    make_batchnorm("batchnorm1d_train", (4, 3, 5))
    make_batchnorm("batchnorm2d_train", (2, 3, 4, 4))

    make_stopband("stopband_ratio_lowpass", "lowpass", 15, 0.2, 0.1, (4, 3, 15))
    make_stopband("stopband_ratio_highpass", "highpass", 9, 0.5, 0.2, (2, 2, 9))

    make_filters()


if __name__ == "__main__":
    main()
