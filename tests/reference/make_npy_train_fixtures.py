"""Writes tests/fixtures/npy_train/* with numpy itself, for the `npy` and
`npz` training sources (src/data/numpy.rs) and their UI tests. Run from the
repository root:

    python3 tests/reference/make_npy_train_fixtures.py

- cls_x.npy (<f4, [40, 1, 16]) and cls_y.npy (<i8, [40]): two classes,
  labelled 3 and 7, a slow and a fast sine with noise; cls_x_be.npy (>f8)
  and cls_y_be.npy (>i2) hold the same values in other types and byte orders.
- reg_x.npy / reg_y.npy (<f4, [32, 1, 16]): noisy sines and the clean ones
  (regression targets with the input's shape).
- train.npz (np.savez: stored members `x`, `y`) with the cls arrays;
  compressed.npz (np.savez_compressed, refused).
- bad_*: labels of another count, a one-class set, float labels of the
  wrong shape, a truncated file.
"""
import numpy as np

out = "tests/fixtures/npy_train/"
rng = np.random.default_rng(15)
n, length = 40, 16
t = np.arange(length)
labels = np.where(np.arange(n) % 2 == 0, 3, 7).astype(np.int64)
freq = np.where(labels == 3, 0.05, 0.35)[:, None]
x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1))) + 0.1 * rng.standard_normal((n, length))
x = x[:, None, :].astype(np.float32)
np.save(out + "cls_x.npy", x)
np.save(out + "cls_y.npy", labels)
np.save(out + "cls_x_be.npy", x.astype(">f8"))
np.save(out + "cls_y_be.npy", labels.astype(">i2"))
np.savez(out + "train.npz", x=x, y=labels)
np.savez_compressed(out + "compressed.npz", x=x, y=labels)

clean = np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi, (32, 1)))[:, None, :]
np.save(out + "reg_x.npy", (clean + 0.3 * rng.standard_normal(clean.shape)).astype(np.float32))
np.save(out + "reg_y.npy", clean.astype(np.float32))

np.save(out + "bad_y_count.npy", labels[:30])
np.save(out + "bad_y_one_class.npy", np.full(n, 3, dtype=np.int64))
np.save(out + "bad_y_float_shape.npy", np.zeros((n, 5), dtype=np.float32))
with open(out + "cls_x.npy", "rb") as f:
    whole = f.read()
with open(out + "bad_x_truncated.npy", "wb") as f:
    f.write(whole[: len(whole) - 100])
