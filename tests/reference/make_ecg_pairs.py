"""Writes examples/data/ecg_pairs_x.csv.gz and examples/data/ecg_pairs_y.csv.gz
for examples/ecg_decimator.lpn: (input, target) pairs for a 2x decimator of
the shipped ECG (examples/data/ecg_mitbih208_360hz.csv, MIT-BIH record 208,
360 Hz). The whole recording is low-passed once by SciPy (a 4th-order
Butterworth at 40 Hz, applied forwards and backwards: zero phase) and every
second sample kept (180 Hz); input i is samples 256 i .. 256 i + 255 of the
recording, target i the 128 filtered, decimated samples of the same stretch. The first 160 windows (113.8 s). Run from the
repository root:

    python3 tests/reference/make_ecg_pairs.py
"""
import gzip

import numpy as np
from scipy import signal

ecg = np.loadtxt("examples/data/ecg_mitbih208_360hz.csv", delimiter=",", skiprows=1)
b, a = signal.butter(4, 40, fs=360)
decimated = signal.filtfilt(b, a, ecg)[::2]
windows = 160


def write(path, header, rows):
    # mtime=0: the same bytes on every run.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write((",".join(header) + "\n").encode())
        for row in rows:
            f.write((",".join(f"{v:.4f}" for v in row) + "\n").encode())


write("examples/data/ecg_pairs_x.csv.gz", [f"x{i}" for i in range(256)], [ecg[256 * i : 256 * (i + 1)] for i in range(windows)])
write("examples/data/ecg_pairs_y.csv.gz", [f"y{i}" for i in range(128)], [decimated[128 * i : 128 * (i + 1)] for i in range(windows)])
