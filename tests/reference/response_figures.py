"""Reference values for the response figures of report.json
(`stopband_gain_db`, `passband_ripple_db`, `dc_gain`; src/bands.rs,
`BandSpec::figures`), computed independently with numpy's FFT.

Definitions (README, report.json):
* |H| on the grid ν_i = i/1023, i = 0..1023 (Nyquist units): the bins of a
  2046-point real FFT of the zero-padded kernel.
* stopband: each edge half a transition Δ beyond its cutoff, on the
  stopband's side, clamped to [0, 1] (Δ = 6.6/k unless given).
* stopband_gain_db = 20·log10(max |H| over the stopband / max |H| over the
  passband as written, i.e. the cutoffs' band before any trimming).
* passband_ripple_db = 20·log10(max |H| / min |H|) over the passband trimmed
  by Δ/2 at each inner edge; null when no grid point is left.
* dc_gain = Σ h.

Kernels: firwin designs and seeded random ones, for the specs that matter:
k = 7, cutoff 0.2 at the default transition (trimmed passband empty), the
shipped denoiser's two layers (k = 15, low-pass 0.2 and 0.3), and one of each
other family. Run `python3 tests/reference/response_figures.py`; it writes
tests/fixtures/response_figures.json, read by tests/reference_values.rs.
"""
import json
import os

import numpy as np
from scipy.signal import firwin

GRID = 1024


def edges(family, low, high, k, transition):
    half = (transition if transition is not None else 6.6 / k) / 2
    clamp = lambda x: min(max(x, 0.0), 1.0)
    if family == "lowpass":
        stop = [(clamp(low + half), 1.0)]
        written = [(0.0, low)]
    elif family == "highpass":
        stop = [(0.0, clamp(low - half))]
        written = [(low, 1.0)]
    elif family == "bandpass":
        stop = [(0.0, clamp(low - half)), (clamp(high + half), 1.0)]
        written = [(low, high)]
    elif family == "bandstop":
        stop = [(clamp(low + half), clamp(high - half))]
        written = [(0.0, low), (high, 1.0)]
    else:
        raise ValueError(family)
    stop = [(a, b) for a, b in stop if b - a > 1e-12]
    trimmed = [(a + (half if a > 0 else 0.0), b - (half if b < 1 else 0.0)) for a, b in written]
    return stop, written, trimmed


def mask(nu, intervals):
    m = np.zeros_like(nu, dtype=bool)
    for a, b in intervals:
        m |= (nu >= a) & (nu <= b)
    return m


def figures(h, family, low, high, transition):
    k = len(h)
    mag = np.abs(np.fft.rfft(h, n=2 * (GRID - 1)))
    nu = np.arange(GRID) / (GRID - 1)
    stop, written, trimmed = edges(family, low, high, k, transition)
    s, w, t = mask(nu, stop), mask(nu, written), mask(nu, trimmed)
    reference = mag[w].max() if w.any() else mag.max()
    gain = 20 * np.log10(mag[s].max() / reference) if s.any() and reference > 0 else None
    ripple = 20 * np.log10(mag[t].max() / mag[t].min()) if t.any() and mag[t].max() > 0 else None
    return gain, ripple, float(np.sum(h))


def main():
    rng = np.random.default_rng(12)
    cases = []

    def add(name, h, family, low, high=None, transition=None):
        high = low if high is None else high
        gain, ripple, dc = figures(np.asarray(h, dtype=float), family, low, high, transition)
        cases.append(
            {
                "name": name,
                "family": family,
                "low": low,
                "high": high,
                "transition": transition,
                "h": [float(x) for x in h],
                "stopband_gain_db": gain,
                "passband_ripple_db": ripple,
                "dc_gain": dc,
            }
        )

    add("k7 cutoff 0.2 firwin", firwin(7, 0.2), "lowpass", 0.2)
    add("k7 cutoff 0.2 random", rng.uniform(-1, 1, 7), "lowpass", 0.2)
    # The shipped denoiser (examples/denoiser.lpn): conv1 k=15 @lowpass(0.2), conv2 k=15 @lowpass(0.3).
    add("denoiser conv1 firwin", firwin(15, 0.2), "lowpass", 0.2)
    for i in range(3):
        add(f"denoiser conv1 random {i}", rng.uniform(-1, 1, 15) / np.sqrt(15), "lowpass", 0.2)
    add("denoiser conv2 firwin", firwin(15, 0.3), "lowpass", 0.3)
    for i in range(3):
        add(f"denoiser conv2 random {i}", rng.uniform(-1, 1, 15) / np.sqrt(15), "lowpass", 0.3)
    add("k31 lowpass 0.2 firwin", firwin(31, 0.2), "lowpass", 0.2)
    add("k31 lowpass 0.2 transition 0.1", firwin(31, 0.2), "lowpass", 0.2, transition=0.1)
    add("k21 highpass 0.5 firwin", firwin(21, 0.5, pass_zero=False), "highpass", 0.5)
    add("k21 highpass 0.5 random", rng.uniform(-1, 1, 21), "highpass", 0.5)
    add("k41 bandpass firwin", firwin(41, [0.3, 0.6], pass_zero=False), "bandpass", 0.3, 0.6)
    add("k41 bandstop firwin", firwin(41, [0.3, 0.7]), "bandstop", 0.3, 0.7)
    add("k41 bandstop random", rng.uniform(-1, 1, 41), "bandstop", 0.3, 0.7)

    out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "response_figures.json")
    with open(out, "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    for c in cases:
        print(c["name"], c["stopband_gain_db"], c["passband_ripple_db"], c["dc_gain"])


if __name__ == "__main__":
    main()
