"""Writes examples/data/digits_x.npy (uint8, [1797, 1, 8, 8]) and
examples/data/digits_y.npy (int64, [1797]) from examples/data/digits_8x8.csv
(UCI optdigits as shipped in scikit-learn: the label first, then 64 pixel
values 0-16), for examples/digits_npy.lpn. Run from the repository root:

    python3 tests/reference/make_digits_npy.py
"""
import numpy as np

rows = np.loadtxt("examples/data/digits_8x8.csv", delimiter=",", dtype=np.int64)
np.save("examples/data/digits_x.npy", rows[:, 1:].reshape(-1, 1, 8, 8).astype(np.uint8))
np.save("examples/data/digits_y.npy", rows[:, 0])
