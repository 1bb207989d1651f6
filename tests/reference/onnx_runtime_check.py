#!/usr/bin/env python3
"""Runs lpn's ONNX exports in onnxruntime and compares with lpn's own outputs.

Not part of `cargo test` (it needs `pip install onnxruntime numpy`). Run from
the repository root:

    python3 tests/reference/onnx_runtime_check.py [FOLDER]

It asks cargo to train every example one epoch, export it and save lpn's
eval-mode outputs on a batch of 5 (the ignored test
`write_onnx_reference_outputs` in tests/export_onnx.rs), then runs each
NAME.onnx in onnxruntime (CPU) on the same inputs and prints the largest
absolute difference. Exits 1 if one exceeds 1e-5. With the `onnx` package
installed, each file first goes through `onnx.checker.check_model` with
`full_check=True` (the schema of every node, and shape inference).
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

try:
    import onnx
except ImportError:  # the checker is a bonus; onnxruntime is the test
    onnx = None

TOLERANCE = 1e-5


def main() -> int:
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="lpn-onnx-")
    env = dict(os.environ, LPN_ONNX_REFERENCE_DIR=folder)
    subprocess.run(
        ["cargo", "test", "--release", "--locked", "--test", "export_onnx", "--",
         "--ignored", "--exact", "write_onnx_reference_outputs"],
        check=True, env=env,
    )
    worst_overall = 0.0
    names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".onnx"))
    assert names, f"no .onnx file in {folder}"
    for name in names:
        with open(os.path.join(folder, name + ".json")) as f:
            ref = json.load(f)
        x = np.asarray(ref["input"], dtype=np.float32).reshape(ref["input_shape"])
        want = np.asarray(ref["output"], dtype=np.float32).reshape(ref["output_shape"])
        if onnx is not None:
            onnx.checker.check_model(onnx.load(os.path.join(folder, name + ".onnx")), full_check=True)
        session = ort.InferenceSession(os.path.join(folder, name + ".onnx"), providers=["CPUExecutionProvider"])
        (got,) = session.run(["output"], {"input": x})
        assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
        diff = float(np.max(np.abs(got - want)))
        worst_overall = max(worst_overall, diff)
        checked = f", onnx.checker {onnx.__version__} ok" if onnx is not None else ""
        print(f"{name:32} max |lpn - onnxruntime| = {diff:.3e}  (onnxruntime {ort.__version__}{checked})")
    print(f"largest difference: {worst_overall:.3e} (tolerance {TOLERANCE:g})")
    return 0 if worst_overall <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
