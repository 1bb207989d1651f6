"""Writes tests/fixtures/npy_train/reg_y_half.npy (<f4, [32, 1, 8]): the
clean sines of reg_y.npy (make_npy_train_fixtures.py) downsampled 2x, the
mean of each pair of neighbours: float targets shorter than the inputs, for
a regression whose output is not the input's shape. Run from the repository
root after make_npy_train_fixtures.py:

    python3 tests/reference/make_npy_regression_fixture.py
"""
import numpy as np

out = "tests/fixtures/npy_train/"
clean = np.load(out + "reg_y.npy")
np.save(out + "reg_y_half.npy", clean.reshape(32, 1, 8, 2).mean(axis=-1).astype(np.float32))
