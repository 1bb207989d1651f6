//! The products of [`super::gemm512`] for CPUs with AVX2 and FMA but not
//! AVX-512 (Zen 3, most Intel desktop parts): the same three shapes and
//! the transpose, with tiles cut for 16 registers of 8 lanes, and lane
//! masks as integer vectors (`vmaskmovps`) where AVX-512 has mask
//! registers. A module of its own rather than one template over both
//! instruction sets: the tile sizes, masks and transposes differ, and the
//! AVX-512 module stays exactly the code its tests ran on.
//!
//! - `C (+)= A·B` (B's rows contiguous): tiles of up to 6 rows × 16 columns
//!   (12 accumulators, two B vectors and the broadcast A value).
//! - `C (+)= A·Bᵀ` (rows contiguous along the sum): tiles of 3 × 3 dot
//!   products (nine accumulators, six loads), reduced at the end.
//! - The direct correlation (`direct_rows`): up to 6 positions × 16 channels,
//!   or 12 × 8 when 8 or fewer channels remain.
//!
//! As there, every element is summed in one fixed order, so results depend
//! on the shapes alone, never on threads (they differ from the AVX-512
//! path's in the last bits: its vectors are twice as wide). The safe
//! functions check the operands' lengths and that the CPU has AVX2 and FMA.

use std::arch::x86_64::*;

use super::gemm512::{Direct, Dst, Strided};
use crate::Isa;

fn assert_avx2() {
    assert!(Isa::Avx2.runs_here(), "AVX2 kernels on a CPU without AVX2 and FMA");
}

/// Lanes `0..lanes` (all 8 from 8 on) set, as `vmaskmovps` reads them.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn lane_mask(lanes: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// The masked lanes from `p` (zero elsewhere); a plain load when all are set
/// (`full`), the common case, which is cheaper than `vmaskmovps` on AMD.
///
/// # Safety
/// AVX2 must be present; the lanes `mask` sets (all 8 when `full`) readable at `p`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load(p: *const f32, mask: __m256i, full: bool) -> __m256 {
    // SAFETY: the lanes read are readable (contract).
    unsafe { if full { _mm256_loadu_ps(p) } else { _mm256_maskload_ps(p, mask) } }
}

/// Stores the masked lanes of `v` at `p`; a plain store when all are set
/// (a masked store is slow on AMD).
///
/// # Safety
/// AVX2 must be present; the lanes `mask` sets (all 8 when `full`) writable at `p`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store(p: *mut f32, mask: __m256i, full: bool, v: __m256) {
    // SAFETY: the lanes written are writable (contract).
    unsafe { if full { _mm256_storeu_ps(p, v) } else { _mm256_maskstore_ps(p, mask, v) } }
}

/// The masks of a run of up to `2 × 8` lanes, and whether each is full.
#[derive(Clone, Copy)]
struct Lanes {
    masks: [__m256i; 2],
    full: [bool; 2],
}

#[inline]
#[target_feature(enable = "avx2")]
fn lanes(width: usize) -> Lanes {
    Lanes { masks: [lane_mask(width), lane_mask(width.saturating_sub(8))], full: [width >= 8, width >= 16] }
}

/// `C (+)= A·B` (k columns of A), `b[k, j] = b[k·ldb + j]`. Panics if an
/// operand is too short for its shape or the CPU lacks AVX2.
pub(crate) fn matmul_rows(dst: Dst, a: Strided, k: usize, b: &[f32], ldb: usize, accumulate: bool) {
    let (m, n) = (dst.rows, dst.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert_avx2();
    assert!(dst.ld >= n && dst.data.len() >= (m - 1) * dst.ld + n, "destination too short");
    if k > 0 {
        assert!(a.data.len() > (m - 1) * a.row_stride + (k - 1) * a.col_stride && (k - 1) * ldb + n <= b.len(), "operands too short");
    }
    let tiles =
        Outer { c: dst.data.as_mut_ptr(), ldc: dst.ld, k, a_rs: a.row_stride, a_cs: a.col_stride, b: b.as_ptr(), ldb, acc: accumulate };
    // SAFETY: AVX2 and FMA are present (asserted); `outer_tiles` touches rows
    // < m and columns < n of C (inside `dst.data`, asserted), A's elements
    // i·a_rs + kk·a_cs for i < m, kk < k (inside `a.data`, asserted), and B's
    // kk·ldb + j for j < n (inside `b`, asserted), masking the lanes past n.
    unsafe { outer_tiles(tiles, m, n, a.data.as_ptr()) }
}

/// `C (+)= A·Bᵀ`: `a[i, k] = a[i·lda + k]`, `b[j, k] = b[j·ldb + k]` (both
/// rows contiguous along k). Same checks as [`matmul_rows`].
pub(crate) fn matmul_rows_t(dst: Dst, a: &[f32], lda: usize, k: usize, b: &[f32], ldb: usize, accumulate: bool) {
    matmul_rows_t_segments(dst, &[a], lda, k, &[b], ldb, accumulate)
}

/// `C (+)= Σ_s A_s·B_sᵀ` over segments `s` (as [`matmul_rows_t`] each, all
/// of the same shape): one reduction per element for the whole sum.
pub(crate) fn matmul_rows_t_segments(dst: Dst, a: &[&[f32]], lda: usize, k: usize, b: &[&[f32]], ldb: usize, accumulate: bool) {
    let (m, n) = (dst.rows, dst.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert_avx2();
    assert!(a.len() == b.len() && dst.ld >= n && dst.data.len() >= (m - 1) * dst.ld + n, "destination or segments do not fit");
    if k > 0 {
        assert!(a.iter().all(|s| s.len() >= (m - 1) * lda + k) && b.iter().all(|s| s.len() >= (n - 1) * ldb + k), "operands too short");
    }
    let a: Vec<*const f32> = a.iter().map(|s| s.as_ptr()).collect();
    let b: Vec<*const f32> = b.iter().map(|s| s.as_ptr()).collect();
    let tiles = Dot { c: dst.data.as_mut_ptr(), ldc: dst.ld, k, lda, ldb, acc: accumulate };
    // SAFETY: AVX2 and FMA are present (asserted); `dot_tiles` reads rows < m
    // of each A_s and rows < n of each B_s (k values each, inside each
    // segment, asserted), k-chunks masked at the end, and writes rows < m,
    // columns < n of C (asserted).
    unsafe { dot_tiles(tiles, m, n, &a, &b) }
}

/// The parts of an outer-product problem every tile shares.
#[derive(Clone, Copy)]
struct Outer {
    c: *mut f32,
    ldc: usize,
    k: usize,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    ldb: usize,
    acc: bool,
}

/// Rows of A per outer-product tile.
const OUTER_ROWS: usize = 6;

/// # Safety
/// AVX2 and FMA must be present, and for i < m, j < n, kk < k: `c + i·ldc +
/// j` writable, `a + i·a_rs + kk·a_cs` and `b + kk·ldb + j` readable.
#[target_feature(enable = "avx2,fma")]
unsafe fn outer_tiles(t: Outer, m: usize, n: usize, a: *const f32) {
    // Column panels outer: B's k × 16 panel stays in cache across the row tiles.
    let mut j = 0;
    while j < n {
        let width = (n - j).min(16);
        let lanes = lanes(width);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(OUTER_ROWS);
            // SAFETY: i < m and j < n: inside C and B's rows (the caller's contract).
            let tile = unsafe { Outer { c: t.c.add(i * t.ldc + j), b: t.b.add(j), ..t } };
            // Rows past `rows` repeat the last row (read, never stored).
            // SAFETY: row i + r ≤ m − 1 of A.
            let at = |r: usize| unsafe { a.add((i + r.min(rows - 1)) * t.a_rs) };
            // SAFETY: the tile's rows i..i + rows < m, columns j..j + width ≤ n
            // (the masks cover `width` lanes), all inside the caller's bounds.
            unsafe {
                match rows {
                    6 => outer_tile::<6>(tile, std::array::from_fn(at), lanes),
                    5 => outer_tile::<5>(tile, std::array::from_fn(at), lanes),
                    4 => outer_tile::<4>(tile, std::array::from_fn(at), lanes),
                    3 => outer_tile::<3>(tile, std::array::from_fn(at), lanes),
                    2 => outer_tile::<2>(tile, std::array::from_fn(at), lanes),
                    _ => outer_tile::<1>(tile, std::array::from_fn(at), lanes),
                }
            }
            i += rows;
        }
        j += width;
    }
}

/// R rows × up to 16 columns (two vectors, masked) of `C (+)= A·B`.
///
/// # Safety
/// AVX2 and FMA must be present; for r < R, kk < k and the lanes the masks
/// set: `t.c + r·ldc + lane` writable, `a[r] + kk·a_cs` and `t.b + kk·ldb +
/// lane` readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn outer_tile<const R: usize>(t: Outer, a: [*const f32; R], l: Lanes) {
    let mut lo = [_mm256_setzero_ps(); R];
    let mut hi = [_mm256_setzero_ps(); R];
    for kk in 0..t.k {
        // SAFETY: row kk < k of B, the masked lanes (contract).
        let (b0, b1) = unsafe {
            let row = t.b.add(kk * t.ldb);
            (load(row, l.masks[0], l.full[0]), load(row.add(8), l.masks[1], l.full[1]))
        };
        for r in 0..R {
            // SAFETY: a[r] + kk·a_cs is readable for kk < k (contract).
            let av = _mm256_set1_ps(unsafe { *a[r].add(kk * t.a_cs) });
            lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
        }
    }
    for r in 0..R {
        // SAFETY: row r < R of the tile, the masked lanes of it (contract).
        unsafe {
            let out = t.c.add(r * t.ldc);
            if t.acc {
                lo[r] = _mm256_add_ps(lo[r], load(out, l.masks[0], l.full[0]));
                hi[r] = _mm256_add_ps(hi[r], load(out.add(8), l.masks[1], l.full[1]));
            }
            store(out, l.masks[0], l.full[0], lo[r]);
            store(out.add(8), l.masks[1], l.full[1], hi[r]);
        }
    }
}

/// The parts of a dot-product problem every tile shares: C at `c` (row
/// stride `ldc`), sums of length k, A's rows `lda` apart, B's `ldb`.
#[derive(Clone, Copy)]
struct Dot {
    c: *mut f32,
    ldc: usize,
    k: usize,
    lda: usize,
    ldb: usize,
    acc: bool,
}

/// Rows and columns of a dot-product tile.
const DOT: usize = 3;

/// # Safety
/// AVX2 and FMA must be present; for every segment s, i < m, j < n: `a[s] +
/// i·lda` and `b[s] + j·ldb` have k readable values, and `c + i·ldc + j` is
/// writable.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tiles(t: Dot, m: usize, n: usize, a: &[*const f32], b: &[*const f32]) {
    // Columns outer: B's rows (of every segment) stay in L1 while every row
    // tile of A passes over them.
    let mut j = 0;
    while j < n {
        let cols = (n - j).min(DOT);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(DOT);
            // SAFETY: rows i..i + rows < m and columns j..j + cols ≤ n, inside
            // the caller's bounds.
            let sums = unsafe { dot_tile([rows, cols], t, a, i * t.lda, b, j * t.ldb) };
            for (r, row) in sums.iter().enumerate().take(rows) {
                for (q, &v) in row.iter().enumerate().take(cols) {
                    // SAFETY: i + r < m, j + q < n: writable (contract).
                    let out = unsafe { &mut *t.c.add((i + r) * t.ldc + j + q) };
                    *out = if t.acc { *out + v } else { v };
                }
            }
            i += rows;
        }
        j += cols;
    }
}

/// The eight lanes of `v` added in a fixed order: halves, then pairs, then the last two.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn reduce(v: __m256) -> f32 {
    let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<1>(pair, pair)))
}

/// Up to 3 × 3 dot products of length k, summed over the segments (`a[s]`
/// from `a_off`, rows `lda` apart; `b[s]` from `b_off`, rows `ldb` apart);
/// rows or columns past `rows`/`cols` read the tile's first one again (in
/// bounds) and are not stored.
///
/// # Safety
/// AVX2 and FMA must be present; for every segment, `a[s] + a_off + r·lda` (r
/// < rows) and `b[s] + b_off + q·ldb` (q < cols) have k readable values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_tile([rows, cols]: [usize; 2], t: Dot, a: &[*const f32], a_off: usize, b: &[*const f32], b_off: usize) -> [[f32; DOT]; DOT] {
    let mut acc = [[_mm256_setzero_ps(); DOT]; DOT];
    for (&a, &b) in a.iter().zip(b) {
        // SAFETY: offsets of rows < rows and columns < cols (contract).
        let ar: [*const f32; DOT] = std::array::from_fn(|r| unsafe { a.add(a_off + if r < rows { r * t.lda } else { 0 }) });
        // SAFETY: as above.
        let br: [*const f32; DOT] = std::array::from_fn(|q| unsafe { b.add(b_off + if q < cols { q * t.ldb } else { 0 }) });
        let mut kk = 0;
        while kk < t.k {
            let (mask, full) = (lane_mask(t.k - kk), t.k - kk >= 8);
            // SAFETY: the masked lanes are kk..min(kk + 8, k) of a row of k readable values.
            let av: [__m256; DOT] = std::array::from_fn(|r| unsafe { load(ar[r].add(kk), mask, full) });
            // SAFETY: as above.
            let bv: [__m256; DOT] = std::array::from_fn(|q| unsafe { load(br[q].add(kk), mask, full) });
            for r in 0..DOT {
                for q in 0..DOT {
                    acc[r][q] = _mm256_fmadd_ps(av[r], bv[q], acc[r][q]);
                }
            }
            kk += 8;
        }
    }
    std::array::from_fn(|r| std::array::from_fn(|q| reduce(acc[r][q])))
}

/// `dst[c·rows + r] = src[r·cols + c]`: the transpose of the row-major
/// `rows × cols` matrix `src`, by 8 × 8 blocks in registers (the edges
/// element by element). Panics if a slice is too short or the CPU lacks AVX2.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert_avx2();
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose operands too short");
    let (rows8, cols8) = (rows / 8 * 8, cols / 8 * 8);
    for r in (0..rows8).step_by(8) {
        for c in (0..cols8).step_by(8) {
            // SAFETY: AVX2 is present (asserted); the block's 8 rows of 8 lie
            // inside both matrices (r + 8 ≤ rows, c + 8 ≤ cols, and both
            // slices hold rows·cols values, asserted).
            unsafe { transpose8(src.as_ptr().add(r * cols + c), cols, dst.as_mut_ptr().add(c * rows + r), rows) };
        }
    }
    for r in 0..rows {
        let first = if r < rows8 { cols8 } else { 0 };
        for c in first..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// One 8 × 8 block: rows of `src` (stride `lds`) become rows of `dst`
/// (stride `ldd`): pairs of rows interleaved, then quads, then the 128-bit
/// halves swapped across.
///
/// # Safety
/// AVX2 must be present; 8 rows of 8 readable at `src` (stride `lds`) and
/// writable at `dst` (stride `ldd`).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn transpose8(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    // SAFETY: row i < 8 of the readable block (contract).
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * lds)) });
    // t[2i], t[2i + 1]: rows 2i and 2i + 1 interleaved, low and high pairs.
    let t: [__m256; 8] =
        std::array::from_fn(|i| if i % 2 == 0 { _mm256_unpacklo_ps(r[i], r[i + 1]) } else { _mm256_unpackhi_ps(r[i - 1], r[i]) });
    // s[4h + c]: column c (low half) and c + 4 (high half) of rows 4h..4h + 4.
    let s: [__m256; 8] = std::array::from_fn(|i| {
        let (h, c) = (i / 4 * 4, i % 4);
        let (x, y) = (t[h + c / 2], t[h + 2 + c / 2]);
        if c % 2 == 0 { _mm256_shuffle_ps::<0x44>(x, y) } else { _mm256_shuffle_ps::<0xEE>(x, y) }
    });
    for c in 0..8 {
        let (x, y) = (s[c % 4], s[4 + c % 4]);
        let col = if c < 4 { _mm256_permute2f128_ps::<0x20>(x, y) } else { _mm256_permute2f128_ps::<0x31>(x, y) };
        // SAFETY: row c < 8 of the writable block (contract).
        unsafe { _mm256_storeu_ps(dst.add(c * ldd), col) };
    }
}

/// Direct correlation over a padded input, channels last, as
/// [`super::gemm512::direct_rows`]: `out[(oh·wo + ow)·ldo + j] (+)= Σ_t
/// x[oh·wp + ow + offs[t]] · w[t·ldw + j]`, in register tiles of up to 6
/// positions of one output row × 16 channels, or 12 × 8 when 8 or fewer
/// channels remain. Panics if an operand is too short or the CPU lacks AVX2.
pub(crate) fn direct_rows(out: &mut [f32], x: &[f32], offs: &[usize], w: &[f32], d: Direct) {
    if d.is_empty() {
        return;
    }
    assert_avx2();
    d.assert_fits(out, x, offs, w);
    // SAFETY: AVX2 and FMA are present (asserted); `direct_impl` reads x at
    // oh·wp + ow + offs[t] (oh < ho, ow < wo: inside x, asserted), w at
    // t·ldw + j (j < n, masked: inside w, asserted) and writes out at
    // (oh·wo + ow)·ldo + j (inside out, asserted).
    unsafe { direct_impl(out.as_mut_ptr(), x.as_ptr(), offs, w.as_ptr(), d) }
}

/// # Safety
/// AVX2 and FMA must be present; the accesses [`direct_rows`] bounds are in bounds.
#[target_feature(enable = "avx2,fma")]
unsafe fn direct_impl(out: *mut f32, x: *const f32, offs: &[usize], w: *const f32, d: Direct) {
    macro_rules! tile {
        ($v:literal, $r:expr, ($o:expr, $xp:expr, $wj:expr, $l:expr), $($k:literal)*) => {
            match $r {
                // SAFETY: the tile's r positions of row oh and its channels
                // j..j + width lie inside the caller's bounds.
                $($k => unsafe { direct_tile::<$k, $v>($o, $xp, offs, $wj, $l, d) },)*
                _ => unreachable!("tile rows are 1..=12"),
            }
        };
    }
    let mut j = 0;
    while j < d.n {
        let width = (d.n - j).min(16);
        let l = lanes(width);
        let two = width > 8;
        let rmax = if two { 6 } else { 12 };
        // Near-equal tiles across the row: 14 columns run as 7 + 7, not 12 + 2.
        let tiles = d.wo.div_ceil(rmax);
        for oh in 0..d.ho {
            let mut ow = 0;
            for t in 0..tiles {
                let r = (d.wo - ow).div_ceil(tiles - t);
                // SAFETY: oh < ho, ow < wo, j < n: offsets inside the caller's bounds.
                let (o, xp, wj) = unsafe { (out.add((oh * d.wo + ow) * d.ldo + j), x.add(oh * d.wp + ow), w.add(j)) };
                if two {
                    tile!(2, r, (o, xp, wj, l), 1 2 3 4 5 6);
                } else {
                    tile!(1, r, (o, xp, wj, l), 1 2 3 4 5 6 7 8 9 10 11 12);
                }
                ow += r;
            }
        }
        j += width;
    }
}

/// R positions (consecutive in one output row) × V vectors of channels.
///
/// # Safety
/// AVX2 and FMA must be present; `x + offs[t] + r` readable for r < R, `w +
/// t·ldw + lane` readable and `out + r·ldo + lane` writable for the lanes
/// the masks set.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn direct_tile<const R: usize, const V: usize>(out: *mut f32, x: *const f32, offs: &[usize], w: *const f32, l: Lanes, d: Direct) {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    let mut wr = w;
    for &off in offs {
        // SAFETY: tap `off` of the readable input (contract).
        let p = unsafe { x.add(off) };
        // SAFETY: the masked lanes of the tap's kernel row (contract).
        let b: [__m256; V] = std::array::from_fn(|v| unsafe { load(wr.add(8 * v), l.masks[v], l.full[v]) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: position r < R of the tap (contract).
            let a = _mm256_set1_ps(unsafe { *p.add(r) });
            for v in 0..V {
                acc_r[v] = _mm256_fmadd_ps(a, b[v], acc_r[v]);
            }
        }
        wr = wr.wrapping_add(d.ldw);
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, &part) in acc_r.iter().enumerate() {
            let o = out.wrapping_add(r * d.ldo + 8 * v);
            // SAFETY: the masked lanes of output position r < R (contract).
            unsafe {
                let sum = if d.accumulate { _mm256_add_ps(part, load(o, l.masks[v], l.full[v])) } else { part };
                store(o, l.masks[v], l.full[v], sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::gemm512::tests::{Products, check_products};

    /// The shared check of `gemm512`'s tests, on sizes cut for 8 lanes:
    /// partial tiles of 6 rows, 16 columns and 3 × 3 dot products, k = 0,
    /// 1, 7 and 31, and rows of 14 (7 + 7 at 8 channels).
    #[test]
    fn products_match_a_reference() {
        if !Isa::Avx2.runs_here() {
            return; // nothing to test on this CPU; the gemm crate path runs instead
        }
        let products = Products { matmul_rows, matmul_rows_t, matmul_rows_t_segments, direct_rows, transpose };
        check_products(
            &products,
            5,
            &[(1, 1, 1), (6, 16, 8), (7, 17, 9), (32, 196, 400), (7, 5, 0), (13, 70, 3), (400, 196, 32), (5, 4, 31), (3, 9, 7)],
        );
    }
}
