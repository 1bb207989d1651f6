//! The 2×2 max pool of a convolution block (`crate::block`) and its
//! gradient with AVX-512: 16 windows per step.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

use crate::Isa;

/// Pools one row of 2×2 windows over input rows `r0` and `r1` (at least
/// `2·y.len()` each) after adding `bias` and, when `relu`, the ReLU: the
/// maxima into `y`, each window's winning cell (0..4, row-major) into `win`.
/// Panics if the operands do not fit or the CPU lacks AVX-512.
pub(crate) fn pool2_row(r0: &[f32], r1: &[f32], bias: f32, relu: bool, y: &mut [MaybeUninit<f32>], win: &mut [u8]) {
    let n = y.len();
    assert!(Isa::Avx512.runs_here(), "AVX-512 kernels on a CPU without AVX-512");
    assert!(win.len() == n && r0.len() >= 2 * n && r1.len() >= 2 * n, "pool row operands do not fit");
    // SAFETY: AVX-512F is present and the lengths are as the contract asks (both asserted).
    unsafe { pool2_row_impl(r0.as_ptr(), r1.as_ptr(), n, bias, relu, y.as_mut_ptr().cast(), win.as_mut_ptr()) }
}

/// Puts one row of 2×2 windows' gradient `g` on rows `d0` and `d1` (at least
/// `2·g.len()` each), each on its window's winning cell, masked where `y` is
/// not positive when `relu`; returns the sum of what it put. Panics if the
/// operands do not fit or the CPU lacks AVX-512.
pub(crate) fn unpool2_row(g: &[f32], y: &[f32], win: &[u8], relu: bool, d0: &mut [MaybeUninit<f32>], d1: &mut [MaybeUninit<f32>]) -> f32 {
    let n = g.len();
    assert!(Isa::Avx512.runs_here(), "AVX-512 kernels on a CPU without AVX-512");
    assert!(y.len() == n && win.len() == n && d0.len() >= 2 * n && d1.len() >= 2 * n, "unpool row operands do not fit");
    // SAFETY: AVX-512F is present and the lengths are as the contract asks (both asserted).
    unsafe { unpool2_row_impl(g.as_ptr(), y.as_ptr(), win.as_ptr(), n, relu, d0.as_mut_ptr().cast(), d1.as_mut_ptr().cast()) }
}

#[inline]
fn mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 { 0xffff } else { ((1u32 << lanes) - 1) as __mmask16 }
}

/// Up to 16 winner bytes as 32-bit lanes.
///
/// # Safety
/// AVX-512F must be present; `min(k, 16)` bytes readable at `p`.
#[target_feature(enable = "avx512f")]
unsafe fn load_bytes(p: *const u8, k: usize) -> __m512i {
    let mut bytes = [0u8; 16];
    // SAFETY: the caller guarantees `k` readable bytes at `p`.
    unsafe { std::ptr::copy_nonoverlapping(p, bytes.as_mut_ptr(), k.min(16)) };
    // SAFETY: `bytes` holds the 16 bytes read; unaligned loads are allowed.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) })
}

/// See [`pool2_row`]; `n` windows, rows of `2n`.
///
/// # Safety
/// AVX-512F must be present; `r0`, `r1` readable for `2n` floats, `y`
/// writable for `n` floats and `win` for `n` bytes.
#[target_feature(enable = "avx512f")]
unsafe fn pool2_row_impl(r0: *const f32, r1: *const f32, n: usize, bias: f32, relu: bool, y: *mut f32, win: *mut u8) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (bias, zero) = (_mm512_set1_ps(bias), _mm512_setzero_ps());
    // v + bias, then ReLU as `relu_of` (v ≤ 0 → 0; NaN stays).
    let act = |v: __m512| {
        let v = _mm512_add_ps(v, bias);
        if relu { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero), v, zero) } else { v }
    };
    // `beats`: NaN wins once seen, else strictly larger.
    let keep = |best: __m512, at: __m512i, v: __m512, i: i32| {
        let take = _mm512_mask_cmp_ps_mask::<_CMP_ORD_Q>(
            _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v),
            best,
            best,
        );
        (_mm512_mask_blend_ps(take, best, v), _mm512_mask_blend_epi32(take, at, _mm512_set1_epi32(i)))
    };
    let mut j = 0;
    while j < n {
        let k = (n - j).min(16);
        let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(16)));
        // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
        let (a_lo, a_hi, b_lo, b_hi) = unsafe {
            (
                _mm512_maskz_loadu_ps(m_lo, r0.add(2 * j)),
                _mm512_maskz_loadu_ps(m_hi, r0.add(2 * j + 16)),
                _mm512_maskz_loadu_ps(m_lo, r1.add(2 * j)),
                _mm512_maskz_loadu_ps(m_hi, r1.add(2 * j + 16)),
            )
        };
        let best = act(_mm512_permutex2var_ps(a_lo, even, a_hi));
        let at = _mm512_setzero_si512();
        let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(a_lo, odd, a_hi)), 1);
        let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(b_lo, even, b_hi)), 2);
        let (best, at) = keep(best, at, act(_mm512_permutex2var_ps(b_lo, odd, b_hi)), 3);
        // SAFETY: k outputs from j, within the n the caller guarantees.
        unsafe {
            _mm512_mask_storeu_ps(y.add(j), m, best);
            _mm512_mask_cvtepi32_storeu_epi8(win.add(j).cast(), m, at);
        }
        j += k;
    }
}

/// See [`unpool2_row`]; `n` windows, rows of `2n`.
///
/// # Safety
/// AVX-512F must be present; `g`, `y` readable for `n` floats, `win` for
/// `n` bytes, `d0`, `d1` writable for `2n` floats.
#[target_feature(enable = "avx512f")]
unsafe fn unpool2_row_impl(g: *const f32, y: *const f32, win: *const u8, n: usize, relu: bool, d0: *mut f32, d1: *mut f32) -> f32 {
    let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let zero = _mm512_setzero_ps();
    let mut total = zero;
    let mut j = 0;
    while j < n {
        let k = (n - j).min(16);
        let (m, m_lo, m_hi) = (mask(k), mask(2 * k), mask((2 * k).saturating_sub(16)));
        // SAFETY: k values from j, within the n the caller guarantees.
        let (mut gv, at) = unsafe { (_mm512_maskz_loadu_ps(m, g.add(j)), load_bytes(win.add(j), k)) };
        if relu {
            // Masked by the ReLU's output > 0 (false for NaN).
            // SAFETY: k values from j, within the n the caller guarantees.
            let yv = unsafe { _mm512_maskz_loadu_ps(m, y.add(j)) };
            gv = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(yv, zero), gv);
        }
        total = _mm512_add_ps(total, gv);
        let cell = |i: i32| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(i)), gv);
        let (c0, c1, c2, c3) = (cell(0), cell(1), cell(2), cell(3));
        // SAFETY: 2k floats from 2j in each row, within the 2n the caller guarantees.
        unsafe {
            _mm512_mask_storeu_ps(d0.add(2 * j), m_lo, _mm512_permutex2var_ps(c0, lo, c1));
            _mm512_mask_storeu_ps(d0.add(2 * j + 16), m_hi, _mm512_permutex2var_ps(c0, hi, c1));
            _mm512_mask_storeu_ps(d1.add(2 * j), m_lo, _mm512_permutex2var_ps(c2, lo, c3));
            _mm512_mask_storeu_ps(d1.add(2 * j + 16), m_hi, _mm512_permutex2var_ps(c2, hi, c3));
        }
        j += k;
    }
    _mm512_reduce_add_ps(total)
}
