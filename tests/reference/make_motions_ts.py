"""Writes examples/data/motions_train.ts and motions_test.ts: a small,
SYNTHETIC multivariate data set in the UEA archive's .ts format, with string
labels, for examples/motions_ts.lpn and the `ts` source's tests. Not real
recordings: three-axis "accelerometer" series of 64 samples (as if 16 Hz for
4 s) for three activities, made up to look like the UEA BasicMotions data:

- standing: gravity on the z axis, small sensor noise;
- walking: a 1.5-2.5 Hz sway on x and z, weaker on y;
- running: a 2.5-3.5 Hz sway of about three times walking's amplitude.

Random phase, frequency and gain per example, seeded. Run from the
repository root:

    python3 tests/reference/make_motions_ts.py
"""
import numpy as np

rng = np.random.default_rng(2026)
fs, length = 16.0, 64
t = np.arange(length) / fs
labels = ["standing", "walking", "running"]


def example(label):
    x = np.zeros((3, length))
    x[2] += 1.0
    if label != "standing":
        f = rng.uniform(1.5, 2.5) if label == "walking" else rng.uniform(2.5, 3.5)
        gain = rng.uniform(0.8, 1.2) * (0.3 if label == "walking" else 0.9)
        phase = rng.uniform(0, 2 * np.pi, 3)
        for axis, weight in enumerate([1.0, 0.4, 0.8]):
            x[axis] += gain * weight * np.sin(2 * np.pi * f * t + phase[axis])
    return x + 0.05 * rng.standard_normal(x.shape)


def write(path, per_class):
    rows = [(label, example(label)) for _ in range(per_class) for label in labels]
    with open(path, "w") as f:
        f.write("# SYNTHETIC three-axis motion series, made by tests/reference/make_motions_ts.py\n")
        f.write("@problemName SyntheticMotions\n@timeStamps false\n@missing false\n@univariate false\n")
        f.write(f"@dimensions 3\n@equalLength true\n@seriesLength {length}\n")
        f.write("@classLabel true " + " ".join(labels) + "\n@data\n")
        for label, x in rows:
            f.write(":".join(",".join(f"{v:.4f}" for v in channel) for channel in x) + ":" + label + "\n")


write("examples/data/motions_train.ts", 12)
write("examples/data/motions_test.ts", 10)
