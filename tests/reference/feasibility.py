"""Reference values for the feasibility bound λ_min(Q), computed independently
of lpn's sinc-matrix formula.

* Low-pass: from scipy's DPSS concentration ratios (Slepian): the best share
  of energy a length-M sequence keeps in |f| ≤ W cycles/sample is the first
  ratio, so λ_min = 1 − ratio with W = ν_s/2 (ν in Nyquist units).
* Every band, 1-D and 2-D: Q assembled from a dense DFT grid over the stopband,
  Q ≈ (1/N) Σ_{f in stop} e(f) e(f)ᴴ, then its smallest eigenvalue.

Run `python3 tests/reference/feasibility.py` (numpy, scipy) and paste the
printed table into tests/reference_values.rs.
"""
import numpy as np
from scipy.signal.windows import dpss

GRID = 1 << 16


def stop_mask(nu, family, low, high):
    a = np.abs(nu)
    if family == "lowpass":
        return a >= low
    if family == "highpass":
        return a <= low
    if family == "bandpass":
        return (a <= low) | (a >= high)
    if family == "bandstop":
        return (a >= low) & (a <= high)
    raise ValueError(family)


def q_dense_1d(k, family, low, high):
    # Frequencies in Nyquist units over (-1, 1]; midpoints avoid edge bias.
    nu = -1 + (np.arange(GRID) + 0.5) * 2 / GRID
    e = np.exp(-1j * np.pi * np.outer(nu, np.arange(k)))
    w = stop_mask(nu, family, low, high).astype(float)
    return (e.conj().T * w) @ e / GRID


def lam_min(q):
    return float(np.linalg.eigvalsh((q + q.conj().T).real / 2)[0])


def q_dense_2d_lowpass(k, edge):
    # Separable box passband |ν1| < edge and |ν2| < edge; stopband its complement.
    g = GRID
    nu = -1 + (np.arange(g) + 0.5) * 2 / g
    e = np.exp(-1j * np.pi * np.outer(nu, np.arange(k)))
    inside = (np.abs(nu) < edge).astype(float)
    p1 = (e.conj().T * inside) @ e / g
    return np.eye(k * k) - np.kron(p1, p1).real


# (family, k, low_edge, high_edge): edges are the stopband edges already
# moved by half a transition (transition=0 in the Rust tests).
CASES = [
    ("lowpass", 15, 0.06, 0.06),
    ("lowpass", 15, 0.2, 0.2),
    ("lowpass", 31, 0.1, 0.1),
    ("lowpass", 64, 0.05, 0.05),
    ("highpass", 15, 0.3, 0.3),
    ("highpass", 9, 0.5, 0.5),
    ("bandpass", 21, 0.2, 0.5),
    ("bandstop", 21, 0.3, 0.6),
]

print("// family, k, low, high, lambda_min (dense DFT), lambda_min (DPSS, low-pass only)")
for family, k, low, high in CASES:
    dense = lam_min(q_dense_1d(k, family, low, high))
    slepian = float("nan")
    if family == "lowpass":
        _, ratios = dpss(k, k * low / 2, Kmax=1, return_ratios=True)
        slepian = 1 - float(np.atleast_1d(ratios)[0])
    print(f'    ("{family}", {k}, {low}, {high}, {dense:.10e}, {slepian:.10e}),')

print("// 2-D separable low-pass: k, edge, lambda_min")
for k, edge in [(3, 0.7), (5, 0.4), (7, 0.3)]:
    print(f"    ({k}, {edge}, {lam_min(q_dense_2d_lowpass(k, edge)):.10e}),")


# ρ of fixed kernels h[n] = cos(a·n)·exp(−b·n) (easy to rebuild in Rust) from a
# dense FFT: energy of |H|² over the stopband / total energy.
def rho_fft(h, family, low, high):
    n = 1 << 16
    H = np.fft.fft(h, n)
    nu = np.abs(np.fft.fftfreq(n) * 2)  # Nyquist units, |ν| in [0, 1]
    e = np.abs(H) ** 2
    return float(e[stop_mask(nu, family, low, high)].sum() / e.sum())


print("// rho on a dense FFT: family, k, a, b, low, high, rho")
for family, k, a, b, low, high in [
    ("lowpass", 15, 0.3, 0.1, 0.4, 0.4),
    ("lowpass", 31, 1.5, 0.05, 0.25, 0.25),
    ("highpass", 21, 2.5, 0.02, 0.5, 0.5),
    ("bandpass", 25, 1.2, 0.03, 0.2, 0.6),
    ("bandstop", 17, 0.9, 0.0, 0.3, 0.7),
]:
    h = np.cos(a * np.arange(k)) * np.exp(-b * np.arange(k))
    print(f'    ("{family}", {k}, {a}, {b}, {low}, {high}, {rho_fft(h, family, low, high):.10e}),')
