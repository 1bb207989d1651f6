//! The 2×2 max pool of a convolution block (`crate::block`) and its
//! gradient with AVX2, 8 windows per step: [`super::pool512`] for CPUs
//! without AVX-512 (there the scalar loop took a third of the 2-D
//! reference net's step). The same semantics: bias, then the ReLU (v ≤ 0
//! → 0, NaN kept), then the window's first NaN, else its first maximum.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use super::gemm256::{lane_mask as mask, reduce, store as put};
use crate::Isa;

/// Pools one row of 2×2 windows over input rows `r0` and `r1` (at least
/// `2·y.len()` each) after adding `bias` and, when `relu`, the ReLU: the
/// maxima into `y`, each window's winning cell (0..4, row-major) into `win`.
/// Panics if the operands do not fit or the CPU lacks AVX2.
pub(crate) fn pool2_row(r0: &[f32], r1: &[f32], bias: f32, relu: bool, y: &mut [MaybeUninit<f32>], win: &mut [u8]) {
    let n = y.len();
    assert!(Isa::Avx2.runs_here(), "AVX2 kernels on a CPU without AVX2");
    assert!(win.len() == n && r0.len() >= 2 * n && r1.len() >= 2 * n, "pool row operands do not fit");
    // SAFETY: AVX2 is present and the lengths are as the contract asks (both asserted).
    unsafe { pool2_row_impl(r0.as_ptr(), r1.as_ptr(), n, bias, relu, y.as_mut_ptr().cast(), win) }
}

/// Puts one row of 2×2 windows' gradient `g` on rows `d0` and `d1` (at least
/// `2·g.len()` each), each on its window's winning cell, masked where `y` is
/// not positive when `relu`; returns the sum of what it put. Panics if the
/// operands do not fit or the CPU lacks AVX2.
pub(crate) fn unpool2_row(g: &[f32], y: &[f32], win: &[u8], relu: bool, d0: &mut [MaybeUninit<f32>], d1: &mut [MaybeUninit<f32>]) -> f32 {
    let n = g.len();
    assert!(Isa::Avx2.runs_here(), "AVX2 kernels on a CPU without AVX2");
    assert!(y.len() == n && win.len() == n && d0.len() >= 2 * n && d1.len() >= 2 * n, "unpool row operands do not fit");
    // SAFETY: AVX2 is present and the lengths are as the contract asks (both asserted).
    unsafe { unpool2_row_impl(g.as_ptr(), y.as_ptr(), win, n, relu, d0.as_mut_ptr().cast(), d1.as_mut_ptr().cast()) }
}

/// The even (`ODD` false) or odd elements of the 16 in `lo`, `hi`, in order.
#[inline]
#[target_feature(enable = "avx2")]
fn deinterleave<const ODD: bool>(lo: __m256, hi: __m256) -> __m256 {
    // Per 128-bit lane: lo's two then hi's two, so the 64-bit pairs come as
    // (lo 0–3, hi 0–3, lo 4–7, hi 4–7); 0xD8 puts the middle two in order.
    let mixed = if ODD { _mm256_shuffle_ps::<0xDD>(lo, hi) } else { _mm256_shuffle_ps::<0x88>(lo, hi) };
    _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(mixed)))
}

/// See [`pool2_row`]; `n` windows, rows of `2n`.
///
/// # Safety
/// AVX2 must be present; `r0`, `r1` readable for `2n` floats, `y` writable
/// for `n` floats, and `win.len() ≥ n`.
#[target_feature(enable = "avx2")]
unsafe fn pool2_row_impl(r0: *const f32, r1: *const f32, n: usize, bias: f32, relu: bool, y: *mut f32, win: &mut [u8]) {
    let (bias, zero) = (_mm256_set1_ps(bias), _mm256_setzero_ps());
    // v + bias, then ReLU as `relu_of` (v ≤ 0 → 0; NaN stays).
    let act = |v: __m256| {
        let v = _mm256_add_ps(v, bias);
        if relu { _mm256_blendv_ps(v, zero, _mm256_cmp_ps::<_CMP_LE_OQ>(v, zero)) } else { v }
    };
    // `beats`: NaN wins once seen, else strictly larger.
    let keep = |best: __m256, at: __m256, v: __m256, i: i32| {
        let wins = _mm256_or_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(v, best), _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let take = _mm256_and_ps(wins, _mm256_cmp_ps::<_CMP_ORD_Q>(best, best));
        (_mm256_blendv_ps(best, v, take), _mm256_blendv_ps(at, _mm256_castsi256_ps(_mm256_set1_epi32(i)), take))
    };
    let mut j = 0;
    while j < n {
        let k = (n - j).min(8);
        let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(8)));
        // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
        let (a_lo, a_hi, b_lo, b_hi) = unsafe {
            (
                _mm256_maskload_ps(r0.add(2 * j), m_lo),
                _mm256_maskload_ps(r0.add(2 * j + 8), m_hi),
                _mm256_maskload_ps(r1.add(2 * j), m_lo),
                _mm256_maskload_ps(r1.add(2 * j + 8), m_hi),
            )
        };
        let best = act(deinterleave::<false>(a_lo, a_hi));
        let at = _mm256_setzero_ps();
        let (best, at) = keep(best, at, act(deinterleave::<true>(a_lo, a_hi)), 1);
        let (best, at) = keep(best, at, act(deinterleave::<false>(b_lo, b_hi)), 2);
        let (best, at) = keep(best, at, act(deinterleave::<true>(b_lo, b_hi)), 3);
        let mut cells = [0i32; 8];
        // SAFETY: `cells` holds 8 values; k outputs from j, within the n
        // the caller guarantees.
        unsafe {
            put(y.add(j), m, k == 8, best);
            _mm256_storeu_si256(cells.as_mut_ptr().cast(), _mm256_castps_si256(at));
        }
        for (w, &c) in win[j..j + k].iter_mut().zip(&cells) {
            *w = c as u8;
        }
        j += k;
    }
}

/// See [`unpool2_row`]; `n` windows, rows of `2n`.
///
/// # Safety
/// AVX2 must be present; `g`, `y` readable for `n` floats, `win.len() ≥ n`,
/// `d0`, `d1` writable for `2n` floats.
#[target_feature(enable = "avx2")]
unsafe fn unpool2_row_impl(g: *const f32, y: *const f32, win: &[u8], n: usize, relu: bool, d0: *mut f32, d1: *mut f32) -> f32 {
    let zero = _mm256_setzero_ps();
    let mut total = zero;
    let mut j = 0;
    while j < n {
        let k = (n - j).min(8);
        let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(8)));
        let mut bytes = [0u8; 16];
        bytes[..k].copy_from_slice(&win[j..j + k]);
        // SAFETY: `bytes` holds 16 bytes; k values from j, within the n the caller guarantees.
        let (mut gv, at) = unsafe { (_mm256_maskload_ps(g.add(j), m), _mm256_cvtepu8_epi32(_mm_loadu_si128(bytes.as_ptr().cast()))) };
        if relu {
            // Masked by the ReLU's output > 0 (false for NaN).
            // SAFETY: k values from j, within the n the caller guarantees.
            let yv = unsafe { _mm256_maskload_ps(y.add(j), m) };
            gv = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(yv, zero), gv);
        }
        total = _mm256_add_ps(total, gv);
        let cell = |i: i32| _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(at, _mm256_set1_epi32(i))), gv);
        let (c0, c1, c2, c3) = (cell(0), cell(1), cell(2), cell(3));
        // Windows' cells side by side: (c0, c1) for row 0, (c2, c3) for row 1.
        let (lo0, hi0) = (_mm256_unpacklo_ps(c0, c1), _mm256_unpackhi_ps(c0, c1));
        let (lo1, hi1) = (_mm256_unpacklo_ps(c2, c3), _mm256_unpackhi_ps(c2, c3));
        // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
        unsafe {
            put(d0.add(2 * j), m_lo, k == 8, _mm256_permute2f128_ps::<0x20>(lo0, hi0));
            put(d0.add(2 * j + 8), m_hi, k == 8, _mm256_permute2f128_ps::<0x31>(lo0, hi0));
            put(d1.add(2 * j), m_lo, k == 8, _mm256_permute2f128_ps::<0x20>(lo1, hi1));
            put(d1.add(2 * j + 8), m_hi, k == 8, _mm256_permute2f128_ps::<0x31>(lo1, hi1));
        }
        j += k;
    }
    reduce(total)
}
