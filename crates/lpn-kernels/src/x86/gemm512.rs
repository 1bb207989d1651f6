//! f32 matrix products and direct correlations with AVX-512 register tiles
//! (the portable path uses the `gemm` crate, which has no AVX-512 code on
//! stable Rust).
//!
//! Three shapes: `C (+)= A·B` with B's rows contiguous (the im2col path's
//! W·col and Wᵀ·grad), an outer-product tile of 8 rows × 32 columns that
//! reads B in place without packing it; `C (+)= A·Bᵀ` with A's and B's rows
//! contiguous along the sum (the im2col path's grad·colᵀ), a dot-product
//! tile of 4 × 4 reduced at the end; and the direct correlation of padded
//! planes with a kernel laid channels last (`direct_rows`), tiles of up to
//! 12 positions × 32 channels with each input value broadcast from its
//! place, which computes only the wanted positions. Every element is summed
//! in order within a tile, so results depend on the shapes alone, never on
//! threads.
//!
//! The safe functions here check the operands' lengths and that the CPU has
//! AVX-512 (they panic otherwise); the `unsafe fn`s below them rely on those
//! checks, as their `# Safety` sections say.

use std::arch::x86_64::*;

use crate::Isa;

fn assert_avx512() {
    assert!(Isa::Avx512.runs_here(), "AVX-512 kernels on a CPU without AVX-512");
}

/// A row-major destination `rows × cols` with row stride `ld`.
pub(crate) struct Dst<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

/// A matrix operand `a[i, k] = data[i·row_stride + k·col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// `C (+)= A·B` (k columns of A), `b[k, j] = b[k·ldb + j]`. Panics if an
/// operand is too short for its shape or the CPU lacks AVX-512.
pub(crate) fn matmul_rows(dst: Dst, a: Strided, k: usize, b: &[f32], ldb: usize, accumulate: bool) {
    let offsets: Vec<usize> = (0..k).map(|kk| kk * ldb).collect();
    matmul_offsets(dst, a, &offsets, b, accumulate)
}

/// `C (+)= A·B` with B's row `kk` at `b[offsets[kk]..]` (k = offsets.len()).
pub(crate) fn matmul_offsets(dst: Dst, a: Strided, offsets: &[usize], b: &[f32], accumulate: bool) {
    let (m, n, k) = (dst.rows, dst.cols, offsets.len());
    if m == 0 || n == 0 {
        return;
    }
    assert_avx512();
    assert!(dst.ld >= n && dst.data.len() >= (m - 1) * dst.ld + n, "destination too short");
    if k > 0 {
        assert!(
            a.data.len() > (m - 1) * a.row_stride + (k - 1) * a.col_stride && offsets.iter().all(|&o| o + n <= b.len()),
            "operands too short"
        );
    }
    let a_offs: Vec<usize> = (0..m).map(|i| i * a.row_stride).collect();
    let tiles =
        Outer { c: dst.data.as_mut_ptr(), ldc: dst.ld, k, a_cs: a.col_stride, b: b.as_ptr(), b_offs: offsets.as_ptr(), acc: accumulate };
    // SAFETY: AVX-512F is present (asserted); `outer_tiles` touches rows < m
    // and columns < n of C (inside `dst.data`, asserted), A's elements
    // a_offs[i] + kk·a_cs for i < m, kk < k (inside `a.data`, asserted), and
    // B's rows offsets[kk] + j for j < n (inside `b`, asserted), masking the
    // lanes past n.
    unsafe { outer_tiles(tiles, m, n, a.data.as_ptr(), &a_offs) }
}

/// `C (+)= A·Bᵀ`: `a[i, k] = a[i·lda + k]`, `b[j, k] = b[j·ldb + k]` (both
/// rows contiguous along k). Same checks as [`matmul_rows`].
pub(crate) fn matmul_rows_t(dst: Dst, a: &[f32], lda: usize, k: usize, b: &[f32], ldb: usize, accumulate: bool) {
    let offsets: Vec<usize> = (0..dst.cols).map(|j| j * ldb).collect();
    matmul_t_offsets(dst, &[a], lda, k, &[b], &offsets, accumulate)
}

/// `C (+)= Σ_s A_s·B_sᵀ` over segments `s` (as [`matmul_rows_t`] each, all
/// of the same shape): one reduction per element for the whole sum, so a
/// weight gradient over several samples pays its horizontal sums once.
pub(crate) fn matmul_rows_t_segments(dst: Dst, a: &[&[f32]], lda: usize, k: usize, b: &[&[f32]], ldb: usize, accumulate: bool) {
    let offsets: Vec<usize> = (0..dst.cols).map(|j| j * ldb).collect();
    matmul_t_offsets(dst, a, lda, k, b, &offsets, accumulate)
}

/// `C (+)= Σ_s A_s·B_sᵀ` with B_s's row `j` at `b[s][offsets[j]..]`
/// (n = offsets.len() rows of k).
fn matmul_t_offsets(dst: Dst, a: &[&[f32]], lda: usize, k: usize, b: &[&[f32]], offsets: &[usize], accumulate: bool) {
    let (m, n) = (dst.rows, dst.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert_avx512();
    assert!(
        a.len() == b.len() && offsets.len() == n && dst.ld >= n && dst.data.len() >= (m - 1) * dst.ld + n,
        "destination or segments do not fit"
    );
    if k > 0 {
        assert!(
            a.iter().all(|s| s.len() >= (m - 1) * lda + k) && b.iter().all(|s| offsets.iter().all(|&o| o + k <= s.len())),
            "operands too short"
        );
    }
    let a: Vec<*const f32> = a.iter().map(|s| s.as_ptr()).collect();
    let b: Vec<*const f32> = b.iter().map(|s| s.as_ptr()).collect();
    let tiles = Dot { c: dst.data.as_mut_ptr(), ldc: dst.ld, k, lda, acc: accumulate };
    // SAFETY: AVX-512F is present (asserted); `dot_tiles` reads rows < m of
    // each A_s (k values from i·lda, inside each segment, asserted), rows
    // offsets[j] of each B_s for j < n (k values each, asserted), k-chunks
    // masked at the end, and writes rows < m, columns < n of C (asserted).
    unsafe { dot_tiles(tiles, m, n, &a, &b, offsets) }
}

#[inline]
fn lane_mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 { 0xffff } else { ((1u32 << lanes) - 1) as __mmask16 }
}

/// The parts of an outer-product problem every tile shares: C at `c` (row
/// stride `ldc`), k steps, A's column stride, B's rows at `b + b_offs[kk]`.
#[derive(Clone, Copy)]
struct Outer {
    c: *mut f32,
    ldc: usize,
    k: usize,
    a_cs: usize,
    b: *const f32,
    b_offs: *const usize,
    acc: bool,
}

/// # Safety
/// AVX-512F must be present, and for i < m, j < n, kk < k: `c + i·ldc + j`
/// writable, `a + a_offs[i] + kk·a_cs` readable, `b + b_offs[kk] + j`
/// readable (`b_offs` holding k offsets).
#[target_feature(enable = "avx512f")]
unsafe fn outer_tiles(t: Outer, m: usize, n: usize, a: *const f32, a_offs: &[usize]) {
    // Column panels outer: B's k × 32 panel stays in cache across the row tiles.
    let mut j = 0;
    while j < n {
        let width = (n - j).min(32);
        let masks = [lane_mask(width), lane_mask(width.saturating_sub(16))];
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(8);
            // SAFETY: i < m and j < n: inside C and B's rows (the caller's contract).
            let tile = unsafe { Outer { c: t.c.add(i * t.ldc + j), b: t.b.add(j), ..t } };
            // Rows past `rows` repeat the last row (read, never stored).
            // SAFETY: a_offs[i + r] for r < rows is one of A's m rows.
            let at = |r: usize| unsafe { a.add(a_offs[i + r.min(rows - 1)]) };
            // SAFETY: the tile's rows i..i + rows < m, columns j..j + width ≤ n
            // (the masks cover `width` lanes), all inside the caller's bounds.
            unsafe {
                match rows {
                    8 => outer_tile::<8>(tile, std::array::from_fn(at), masks),
                    7 => outer_tile::<7>(tile, std::array::from_fn(at), masks),
                    6 => outer_tile::<6>(tile, std::array::from_fn(at), masks),
                    5 => outer_tile::<5>(tile, std::array::from_fn(at), masks),
                    4 => outer_tile::<4>(tile, std::array::from_fn(at), masks),
                    3 => outer_tile::<3>(tile, std::array::from_fn(at), masks),
                    2 => outer_tile::<2>(tile, std::array::from_fn(at), masks),
                    _ => outer_tile::<1>(tile, std::array::from_fn(at), masks),
                }
            }
            i += rows;
        }
        j += width;
    }
}

/// R rows × up to 32 columns (two vectors, masked) of `C (+)= A·B`.
///
/// # Safety
/// AVX-512F must be present; for r < R, kk < k and the lanes the masks set:
/// `t.c + r·ldc + lane` writable, `a[r] + kk·a_cs` and `t.b + b_offs[kk] + lane` readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn outer_tile<const R: usize>(t: Outer, a: [*const f32; R], [m0, m1]: [__mmask16; 2]) {
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    for kk in 0..t.k {
        // SAFETY: b_offs holds k offsets (contract); masked loads read only
        // the lanes the masks set, which the contract makes readable.
        let (b0, b1) = unsafe {
            let row = t.b.add(*t.b_offs.add(kk));
            (_mm512_maskz_loadu_ps(m0, row), _mm512_maskz_loadu_ps(m1, row.add(16)))
        };
        for r in 0..R {
            // SAFETY: a[r] + kk·a_cs is readable for kk < k (contract).
            let av = _mm512_set1_ps(unsafe { *a[r].add(kk * t.a_cs) });
            lo[r] = _mm512_fmadd_ps(av, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(av, b1, hi[r]);
        }
    }
    for r in 0..R {
        // SAFETY: row r < R of the tile, the masked lanes of it (contract).
        unsafe {
            let out = t.c.add(r * t.ldc);
            if t.acc {
                lo[r] = _mm512_add_ps(lo[r], _mm512_maskz_loadu_ps(m0, out));
                hi[r] = _mm512_add_ps(hi[r], _mm512_maskz_loadu_ps(m1, out.add(16)));
            }
            _mm512_mask_storeu_ps(out, m0, lo[r]);
            _mm512_mask_storeu_ps(out.add(16), m1, hi[r]);
        }
    }
}

/// The parts of a dot-product problem every tile shares: C at `c` (row
/// stride `ldc`), sums of length k, A's rows `lda` apart.
#[derive(Clone, Copy)]
struct Dot {
    c: *mut f32,
    ldc: usize,
    k: usize,
    lda: usize,
    acc: bool,
}

/// # Safety
/// AVX-512F must be present; for every segment s, i < m, j < n: `a[s] +
/// i·lda` and `b[s] + b_offs[j]` have k readable values, and `c + i·ldc + j`
/// is writable.
#[target_feature(enable = "avx512f")]
unsafe fn dot_tiles(t: Dot, m: usize, n: usize, a: &[*const f32], b: &[*const f32], b_offs: &[usize]) {
    // Columns outer: B's four rows (of every segment) stay in L1 while every
    // row tile of A, small enough for L2, passes over them.
    let mut j = 0;
    while j < n {
        let cols = (n - j).min(4);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let mut sums = [[0f32; 4]; 4];
            // SAFETY: rows i..i + rows < m and columns j..j + cols ≤ n, inside
            // the caller's bounds.
            unsafe { dot_tile(&mut sums, [rows, cols], t, a, i * t.lda, b, &b_offs[j..j + cols]) };
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

/// Up to 4 × 4 dot products of length k, summed over the segments (`a[s]`
/// from `a_off`, rows `lda` apart; `b[s]`'s rows at `b_offs`); rows or
/// columns past `rows`/`cols` read the tile's first row again (in bounds)
/// and are not stored.
///
/// # Safety
/// AVX-512F must be present; for every segment, `a[s] + a_off + r·lda` (r <
/// rows) and `b[s] + b_offs[q]` (q < cols) have k readable values.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn dot_tile(
    sums: &mut [[f32; 4]; 4],
    [rows, cols]: [usize; 2],
    t: Dot,
    a: &[*const f32],
    a_off: usize,
    b: &[*const f32],
    b_offs: &[usize],
) {
    let mut acc = [[_mm512_setzero_ps(); 4]; 4];
    for (&a, &b) in a.iter().zip(b) {
        // SAFETY: offsets of rows < rows and columns < cols (contract).
        let ar: [*const f32; 4] = std::array::from_fn(|r| unsafe { a.add(a_off + if r < rows { r * t.lda } else { 0 }) });
        // SAFETY: as above.
        let br: [*const f32; 4] = std::array::from_fn(|q| unsafe { b.add(b_offs[if q < cols { q } else { 0 }]) });
        let mut kk = 0;
        while kk < t.k {
            let mask = lane_mask(t.k - kk);
            // SAFETY: the masked lanes are kk..min(kk + 16, k) of a row of k readable values.
            let av: [__m512; 4] = std::array::from_fn(|r| unsafe { _mm512_maskz_loadu_ps(mask, ar[r].add(kk)) });
            // SAFETY: as above.
            let bv: [__m512; 4] = std::array::from_fn(|q| unsafe { _mm512_maskz_loadu_ps(mask, br[q].add(kk)) });
            for r in 0..4 {
                for q in 0..4 {
                    acc[r][q] = _mm512_fmadd_ps(av[r], bv[q], acc[r][q]);
                }
            }
            kk += 16;
        }
    }
    for r in 0..4 {
        for q in 0..4 {
            sums[r][q] = _mm512_reduce_add_ps(acc[r][q]);
        }
    }
}

/// `dst[c·rows + r] = src[r·cols + c]`: the transpose of the row-major
/// `rows × cols` matrix `src`, by 16 × 16 blocks in registers (the edges
/// element by element). Panics if a slice is too short or the CPU lacks AVX-512.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert_avx512();
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols, "transpose operands too short");
    let (rows16, cols16) = (rows / 16 * 16, cols / 16 * 16);
    for r in (0..rows16).step_by(16) {
        for c in (0..cols16).step_by(16) {
            // SAFETY: AVX-512F is present (asserted); the block's 16 rows of
            // 16 lie inside both matrices (r + 16 ≤ rows, c + 16 ≤ cols, and
            // both slices hold rows·cols values, asserted).
            unsafe { transpose_block(src.as_ptr().add(r * cols + c), cols, dst.as_mut_ptr().add(c * rows + r), rows) };
        }
    }
    for r in 0..rows {
        let first = if r < rows16 { cols16 } else { 0 };
        for c in first..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// One 16 × 16 block: rows of `src` (stride `lds`) become rows of `dst`
/// (stride `ldd`) by three rounds of shuffles.
///
/// # Safety
/// AVX-512F must be present; 16 rows of 16 readable at `src` (stride `lds`)
/// and writable at `dst` (stride `ldd`).
#[target_feature(enable = "avx512f")]
unsafe fn transpose_block(src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    // SAFETY: row i < 16 of the readable block (contract).
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * lds)) });
    // Pairs of rows interleaved, then pairs of pairs: each 128-bit lane of
    // u[4i + j] holds column (lane·4 + j) of rows 4i..4i + 4.
    let t: [__m512; 16] =
        std::array::from_fn(|i| if i % 2 == 0 { _mm512_unpacklo_ps(r[i], r[i + 1]) } else { _mm512_unpackhi_ps(r[i - 1], r[i]) });
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (base, j) = (i / 4 * 4, i % 4);
        let (a, b) = (t[base + j / 2], t[base + 2 + j / 2]);
        if j % 2 == 0 { _mm512_shuffle_ps::<0x44>(a, b) } else { _mm512_shuffle_ps::<0xEE>(a, b) }
    });
    // 128-bit lanes regrouped across the four groups of rows.
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (half, j) = (i / 8, i % 8);
        let (a, b) = (u[half * 8 + j % 4], u[half * 8 + 4 + j % 4]);
        if j < 4 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
    });
    for i in 0..16 {
        let (a, b) = (v[i % 8], v[8 + i % 8]);
        let out = if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) };
        // SAFETY: row i < 16 of the writable block (contract).
        unsafe { _mm512_storeu_ps(dst.add(i * ldd), out) };
    }
}

/// The shape of a direct correlation (see [`direct_rows`]): `ho × wo` output
/// positions on input rows `wp` apart, `n` channels, output rows `ldo` apart,
/// kernel rows `ldw` apart; `+=` when `accumulate`.
#[derive(Clone, Copy)]
pub(crate) struct Direct {
    pub ho: usize,
    pub wo: usize,
    pub wp: usize,
    pub n: usize,
    pub ldo: usize,
    pub ldw: usize,
    pub accumulate: bool,
}

impl Direct {
    /// Whether there is nothing to compute.
    pub(crate) fn is_empty(&self) -> bool {
        self.ho == 0 || self.wo == 0 || self.n == 0
    }

    /// Panics unless `out`, `x` (read from `offs`) and `w` hold every
    /// element a direct correlation of this shape touches (see
    /// [`direct_rows`]); for a shape that is not empty.
    pub(crate) fn assert_fits(&self, out: &[f32], x: &[f32], offs: &[usize], w: &[f32]) {
        let d = self;
        assert!(d.wo <= d.wp && d.n <= d.ldo && out.len() >= (d.ho * d.wo - 1) * d.ldo + d.n, "destination too short");
        if let Some(&last) = offs.iter().max() {
            assert!(
                last + (d.ho - 1) * d.wp + d.wo <= x.len() && d.n <= d.ldw && w.len() >= (offs.len() - 1) * d.ldw + d.n,
                "operands too short"
            );
        }
    }
}

/// Direct correlation over a padded input, channels last:
/// `out[(oh·wo + ow)·ldo + j] (+)= Σ_t x[oh·wp + ow + offs[t]] · w[t·ldw + j]`
/// for `oh < ho`, `ow < wo`, `j < n`. Only the `ho × wo` wanted positions are
/// computed (the padded-grid products also compute the `wp − wo` columns
/// between rows), in register tiles of up to 12 positions of one output row
/// × 32 channels, or 24 × 16 when 16 or fewer channels remain. Panics if an
/// operand is too short or the CPU lacks AVX-512.
pub(crate) fn direct_rows(out: &mut [f32], x: &[f32], offs: &[usize], w: &[f32], d: Direct) {
    if d.is_empty() {
        return;
    }
    assert_avx512();
    d.assert_fits(out, x, offs, w);
    // SAFETY: AVX-512F is present (asserted); `direct_impl` reads x at
    // oh·wp + ow + offs[t] (oh < ho, ow < wo: inside x, asserted), w at
    // t·ldw + j (j < n, masked: inside w, asserted) and writes out at
    // (oh·wo + ow)·ldo + j (inside out, asserted).
    unsafe { direct_impl(out.as_mut_ptr(), x.as_ptr(), offs, w.as_ptr(), d) }
}

/// # Safety
/// AVX-512F must be present; the accesses [`direct_rows`] bounds are in bounds.
#[target_feature(enable = "avx512f")]
unsafe fn direct_impl(out: *mut f32, x: *const f32, offs: &[usize], w: *const f32, d: Direct) {
    macro_rules! tile {
        ($v:literal, $r:expr, ($o:expr, $xp:expr, $wj:expr, $m:expr), $($k:literal)*) => {
            match $r {
                // SAFETY: the tile's r positions of row oh and its channels
                // j..j + width lie inside the caller's bounds.
                $($k => unsafe { direct_tile::<$k, $v>($o, $xp, offs, $wj, $m, d) },)*
                _ => unreachable!("tile rows are 1..=24"),
            }
        };
    }
    let mut j = 0;
    while j < d.n {
        let width = (d.n - j).min(32);
        let masks = [lane_mask(width), lane_mask(width.saturating_sub(16))];
        let two = width > 16;
        let rmax = if two { 12 } else { 24 };
        // Near-equal tiles across the row: 14 columns run as 7 + 7, not 12 + 2.
        let tiles = d.wo.div_ceil(rmax);
        for oh in 0..d.ho {
            let mut ow = 0;
            for t in 0..tiles {
                let r = (d.wo - ow).div_ceil(tiles - t);
                // SAFETY: oh < ho, ow < wo, j < n: offsets inside the caller's bounds.
                let (o, xp, wj) = unsafe { (out.add((oh * d.wo + ow) * d.ldo + j), x.add(oh * d.wp + ow), w.add(j)) };
                if two {
                    tile!(2, r, (o, xp, wj, masks), 1 2 3 4 5 6 7 8 9 10 11 12);
                } else {
                    tile!(1, r, (o, xp, wj, masks), 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24);
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
/// AVX-512F must be present; `x + offs[t] + r` readable for r < R, `w +
/// t·ldw + lane` readable and `out + r·ldo + lane` writable for the lanes
/// the masks set.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn direct_tile<const R: usize, const V: usize>(
    out: *mut f32,
    x: *const f32,
    offs: &[usize],
    w: *const f32,
    masks: [__mmask16; 2],
    d: Direct,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let mut wr = w;
    for &off in offs {
        // SAFETY: tap `off` of the readable input (contract).
        let p = unsafe { x.add(off) };
        // SAFETY: the masked lanes of the tap's kernel row (contract).
        let b: [__m512; V] = std::array::from_fn(|v| unsafe { _mm512_maskz_loadu_ps(masks[v], wr.add(16 * v)) });
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: position r < R of the tap (contract).
            let a = _mm512_set1_ps(unsafe { *p.add(r) });
            for v in 0..V {
                acc_r[v] = _mm512_fmadd_ps(a, b[v], acc_r[v]);
            }
        }
        wr = wr.wrapping_add(d.ldw);
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for v in 0..V {
            let o = out.wrapping_add(r * d.ldo + 16 * v);
            // SAFETY: the masked lanes of output position r < R (contract).
            let sum = if d.accumulate { _mm512_add_ps(acc_r[v], unsafe { _mm512_maskz_loadu_ps(masks[v], o) }) } else { acc_r[v] };
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(o, masks[v], sum) };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: impl Fn(usize, usize) -> f32, b: impl Fn(usize, usize) -> f32) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|kk| a(i, kk) as f64 * b(kk, j) as f64).sum();
            }
        }
        c
    }

    fn close(got: &[f32], want: &[f64], ld: usize, m: usize, n: usize) {
        for i in 0..m {
            for j in 0..n {
                let (g, w) = (got[i * ld + j] as f64, want[i * n + j]);
                assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "({i}, {j}): {g} vs {w}");
            }
        }
    }

    type MatmulRows = fn(Dst, Strided, usize, &[f32], usize, bool);
    type MatmulRowsT = fn(Dst, &[f32], usize, usize, &[f32], usize, bool);
    type MatmulSegments = fn(Dst, &[&[f32]], usize, usize, &[&[f32]], usize, bool);
    type DirectRows = fn(&mut [f32], &[f32], &[usize], &[f32], Direct);
    type Transpose = fn(&[f32], usize, usize, &mut [f32]);

    /// One instruction set's products (this module's or `gemm256`'s), for
    /// [`check_products`].
    pub(crate) struct Products {
        pub matmul_rows: MatmulRows,
        pub matmul_rows_t: MatmulRowsT,
        pub matmul_rows_t_segments: MatmulSegments,
        pub direct_rows: DirectRows,
        pub transpose: Transpose,
    }

    /// Every product against an f64 reference on `sizes` `(m, n, k)` (to be
    /// chosen for partial tiles in every direction, k = 0, 1, and k not a
    /// multiple of the lanes), with accumulation and a destination row
    /// stride wider than its rows.
    pub(crate) fn check_products(p: &Products, seed: u64, sizes: &[(usize, usize, usize)]) {
        let mut rng = crate::testing::Rng::new(seed);
        for &(m, n, k) in sizes {
            let a: Vec<f32> = (0..m * k.max(1) + 7).map(|_| rng.uniform() as f32).collect();
            let b: Vec<f32> = (0..k.max(1) * n.max(1) * 2 + 7).map(|_| rng.uniform() as f32).collect();
            let ld = n + 3;
            let start: Vec<f32> = (0..m * ld).map(|_| rng.uniform() as f32).collect();
            // C += A·B with A transposed in memory (a_rs = 1, a_cs = m) and B rows of stride n + 2.
            let want = reference(m, n, k, |i, kk| a[kk * m + i], |kk, j| b[kk * (n + 2) + j]);
            let mut c = start.clone();
            (p.matmul_rows)(
                Dst { data: &mut c, rows: m, cols: n, ld },
                Strided { data: &a, row_stride: 1, col_stride: m },
                k,
                &b,
                n + 2,
                true,
            );
            let with_start: Vec<f64> = (0..m * n).map(|x| want[x] + start[(x / n) * ld + x % n] as f64).collect();
            close(&c, &with_start, ld, m, n);
            // C = A·Bᵀ with rows of A (stride k + 1) and of B (stride k) contiguous along k.
            let a_long: Vec<f32> = (0..m * (k + 1)).map(|x| a[x % a.len()]).collect();
            let want_long = reference(m, n, k, |i, kk| a_long[i * (k + 1) + kk], |kk, j| b[j * k + kk]);
            let mut c = start.clone();
            (p.matmul_rows_t)(Dst { data: &mut c, rows: m, cols: n, ld }, &a_long, k + 1, k, &b, k, false);
            close(&c, &want_long, ld, m, n);
            // Direct correlation rows: k taps at scattered offsets, m × 3 positions (rows of 3 on a grid 5 wide), n channels.
            // Rows of 3, 14 (two tiles of 7 at the widest channel tiles) and 29 (two or three tiles).
            for wo in [3, 14, 29] {
                if k == 0 {
                    break;
                }
                let (ho, wp) = (m.min(40), wo + 2);
                let offs: Vec<usize> = (0..k).map(|t| (t * 7) % 23).collect();
                let x: Vec<f32> = (0..23 + ho * wp).map(|_| rng.uniform() as f32).collect();
                let want = reference(ho * wo, n, k, |pos, t| x[(pos / wo) * wp + pos % wo + offs[t]], |t, j| b[t * (n + 2) + j]);
                let mut c = vec![0.0; ho * wo * ld];
                let shape = Direct { ho, wo, wp, n, ldo: ld, ldw: n + 2, accumulate: false };
                (p.direct_rows)(&mut c, &x, &offs, &b, shape);
                close(&c, &want, ld, ho * wo, n);
                (p.direct_rows)(&mut c, &x, &offs, &b, Direct { accumulate: true, ..shape });
                close(&c, &want.iter().map(|v| 2.0 * v).collect::<Vec<_>>(), ld, ho * wo, n);
            }
            // Transpose of the m × ld matrix `start` (register blocks and edges).
            let mut t = vec![0f32; m * ld];
            (p.transpose)(&start, m, ld, &mut t);
            for i in 0..m {
                for j in 0..ld {
                    assert_eq!(t[j * m + i], start[i * ld + j], "transpose ({i}, {j}) of {m} × {ld}");
                }
            }
            // Three segments: the same product three times, added to C.
            let mut c = start.clone();
            (p.matmul_rows_t_segments)(Dst { data: &mut c, rows: m, cols: n, ld }, &[&a_long[..]; 3], k + 1, k, &[&b[..]; 3], k, true);
            let thrice: Vec<f64> = (0..m * n).map(|x| 3.0 * want_long[x] + start[(x / n) * ld + x % n] as f64).collect();
            close(&c, &thrice, ld, m, n);
        }
    }

    #[test]
    fn products_match_a_reference() {
        if !Isa::Avx512.runs_here() {
            return; // nothing to test on this CPU; the gemm crate path runs instead
        }
        let products = Products { matmul_rows, matmul_rows_t, matmul_rows_t_segments, direct_rows, transpose };
        check_products(
            &products,
            3,
            &[(1, 1, 1), (8, 32, 16), (9, 33, 17), (32, 196, 400), (7, 5, 0), (13, 70, 3), (400, 196, 32), (5, 4, 31)],
        );
    }
}
