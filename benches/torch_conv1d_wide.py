"""PyTorch's side of `benches/conv1d_wide.sh`: the wide 1-D convolution cases
of `cargo bench --bench conv1d -- wide`, each op alone: the forward pass
(`F.conv1d` under `no_grad`), and the input and weight gradients separately
(`aten.convolution_backward` with one output each, what autograd calls).
One JSON line per case, median of 9 after 2 warm-ups, in milliseconds.

    python3 benches/torch_conv1d_wide.py --threads 2
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

# (B, Cin, Cout, L, k), padding (k - 1) // 2 on each side: benches/conv1d.rs's WIDE.
WIDE = [(16, 1, 128, 512, 8), (16, 128, 256, 512, 5), (16, 256, 128, 512, 3), (16, 64, 64, 1000, 8), (16, 128, 128, 150, 5), (16, 64, 128, 100, 3)]


def median_ms(f):
    f()
    f()
    ms = []
    for _ in range(9):
        start = time.perf_counter()
        f()
        ms.append(1e3 * (time.perf_counter() - start))
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for b, cin, cout, l, k in WIDE:
        pad = (k - 1) // 2
        x = torch.randn(b, cin, l)
        w = torch.randn(cout, cin, k) * 0.1
        with torch.no_grad():
            y = F.conv1d(x, w, padding=pad)
        gy = torch.randn_like(y)

        def forward():
            with torch.no_grad():
                F.conv1d(x, w, padding=pad)

        def backward(mask):
            torch.ops.aten.convolution_backward(gy, x, w, None, [1], [pad], [1], False, [0], 1, mask)

        fwd = median_ms(forward)
        gx = median_ms(lambda: backward([True, False, False]))
        gw = median_ms(lambda: backward([False, True, False]))
        print(json.dumps({"side": "torch", "case": [b, cin, cout, l, k], "forward": fwd, "grad_input": gx, "grad_weight": gw}))


if __name__ == "__main__":
    main()
