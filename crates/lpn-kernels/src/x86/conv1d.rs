//! The stride-1 blocked 1-D convolution kernels (see `crate::conv1d`) for
//! AVX-512 and AVX2+FMA, one module each from one template, written with
//! intrinsics so that the accumulators stay in registers (left to itself the
//! compiler vectorised these loops across channels, with gathers). Their
//! entry points are safe functions compiled for their instruction set:
//! calling one is sound only on a CPU that has it, which the caller states.

/// The blocked kernels for one vector instruction set, written with its
/// intrinsics so that the accumulators stay in registers (left to itself the
/// compiler vectorised these loops across channels, with gathers).
macro_rules! simd_kernels {
    ($name:ident, $feat:literal, $lanes:literal, $v:ty, $zero:ident, $set1:ident, $loadu:ident, $storeu:ident, $fmadd:ident,
     forward: ($nv:literal, $nv1:literal), weight: ($ow:literal, $jw:literal)) => {
        pub(crate) mod $name {
            use crate::conv1d::{OB, Plan, blocks, pad_rows};
            #[allow(clippy::wildcard_imports)]
            use std::arch::x86_64::*;

            const LANES: usize = $lanes;

            #[inline]
            #[target_feature(enable = $feat)]
            fn load(s: &[f32]) -> $v {
                let s = &s[..LANES];
                // SAFETY: `s` holds LANES floats (checked just above); unaligned loads are allowed.
                unsafe { $loadu(s.as_ptr()) }
            }

            /// One tile: `O` output channels × `NV` vectors of positions from
            /// `t0`, summed over the group's rows and taps.
            #[inline]
            #[target_feature(enable = $feat)]
            fn tile<const O: usize, const NV: usize>(p: &Plan, rows: &[f32], row_len: usize, t0: usize, wb: &[f32]) -> [[$v; NV]; O] {
                let (cin_g, k, dilation) = (p.cin / p.groups, p.k, p.dilation);
                let mut acc = [[$zero(); NV]; O];
                for ii in 0..cin_g {
                    let row = &rows[ii * row_len..(ii + 1) * row_len];
                    let taps = &wb[ii * k * O..(ii + 1) * k * O];
                    for j in 0..k {
                        let xs = &row[t0 + j * dilation..][..NV * LANES];
                        let mut xv = [$zero(); NV];
                        for n in 0..NV {
                            xv[n] = load(&xs[n * LANES..]);
                        }
                        let ws = &taps[j * O..][..O];
                        for o in 0..O {
                            let wv = $set1(ws[o]);
                            for n in 0..NV {
                                acc[o][n] = $fmadd(wv, xv[n], acc[o][n]);
                            }
                        }
                    }
                }
                acc
            }

            #[inline]
            #[target_feature(enable = $feat)]
            fn store<const NV: usize>(acc: &[$v; NV], out: &mut [f32]) {
                // `out` may end inside the last vector (the row's end).
                for (n, part) in out.chunks_mut(LANES).enumerate() {
                    let mut buf = [0f32; LANES];
                    // SAFETY: `buf` holds LANES floats; unaligned stores are allowed.
                    unsafe { $storeu(buf.as_mut_ptr(), acc[n]) };
                    part.copy_from_slice(&buf[..part.len()]);
                }
            }

            /// The forward pass of one batch item: `x [cin, l]` → `y [cout, lout]`.
            #[target_feature(enable = $feat)]
            pub(crate) fn forward_item(p: &Plan, x: &[f32], wt: &[f32], y: &mut [f32], xp: &mut Vec<f32>) {
                const W: usize = $nv * LANES;
                const W1: usize = $nv1 * LANES;
                let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
                let row_len = p.row_len();
                pad_rows(x, p.cin, p.l, p.pad_left, row_len, xp);
                let mut woff = 0;
                for g in 0..p.groups {
                    let rows = &xp[g * cin_g * row_len..(g + 1) * cin_g * row_len];
                    for (o0, n) in blocks(cout_g) {
                        let wb = &wt[woff..woff + n * cin_g * p.k];
                        woff += n * cin_g * p.k;
                        let first = g * cout_g + o0;
                        if n == OB {
                            for t0 in (0..p.lout).step_by(W) {
                                let acc = tile::<OB, $nv>(p, rows, row_len, t0, wb);
                                let m = W.min(p.lout - t0);
                                for (o, a) in acc.iter().enumerate() {
                                    store(a, &mut y[(first + o) * p.lout + t0..][..m]);
                                }
                            }
                        } else {
                            for t0 in (0..p.lout).step_by(W1) {
                                let acc = tile::<1, $nv1>(p, rows, row_len, t0, wb);
                                let m = W1.min(p.lout - t0);
                                store(&acc[0], &mut y[first * p.lout + t0..][..m]);
                            }
                        }
                    }
                }
            }

            /// One tile of the weight gradient: `O` output channels × `J`
            /// columns (input row, tap), each a vector of partial sums over
            /// positions; returns the sums (lanes added in a fixed order).
            #[inline]
            #[target_feature(enable = $feat)]
            fn gw_tile<const O: usize, const J: usize>(gyp: &[f32], gy_len: usize, xp: &[f32], cols: &[usize; J]) -> [[f32; J]; O] {
                let mut acc = [[$zero(); J]; O];
                let gs_rows: [&[f32]; O] = std::array::from_fn(|o| &gyp[o * gy_len..(o + 1) * gy_len]);
                let xs_rows: [&[f32]; J] = std::array::from_fn(|c| &xp[cols[c]..cols[c] + gy_len]);
                for t0 in (0..gy_len).step_by(LANES) {
                    let mut gs = [$zero(); O];
                    for o in 0..O {
                        gs[o] = load(&gs_rows[o][t0..]);
                    }
                    for c in 0..J {
                        let xv = load(&xs_rows[c][t0..]);
                        for o in 0..O {
                            acc[o][c] = $fmadd(gs[o], xv, acc[o][c]);
                        }
                    }
                }
                let mut out = [[0f32; J]; O];
                for o in 0..O {
                    for c in 0..J {
                        let mut lanes = [0f32; LANES];
                        // SAFETY: `lanes` holds LANES floats; unaligned stores are allowed.
                        unsafe { $storeu(lanes.as_mut_ptr(), acc[o][c]) };
                        out[o][c] = lanes.iter().sum();
                    }
                }
                out
            }

            /// Adds one batch item's weight gradient into `gw [cout, cin/groups, k]`.
            #[target_feature(enable = $feat)]
            pub(crate) fn grad_weight_item(p: &Plan, gy: &[f32], x: &[f32], gw: &mut [f32], xp: &mut Vec<f32>, gyp: &mut Vec<f32>) {
                const OW: usize = $ow;
                const JW: usize = $jw;
                let (cin_g, cout_g) = (p.cin / p.groups, p.cout / p.groups);
                let gy_len = p.lout.div_ceil(LANES) * LANES;
                let row_len = p.row_len();
                pad_rows(x, p.cin, p.l, p.pad_left, row_len, xp);
                pad_rows(gy, p.cout, p.lout, 0, gy_len, gyp);
                let ncols = cin_g * p.k;
                for g in 0..p.groups {
                    // Column c = (ii, j) starts at row ii's offset plus j taps.
                    let col = |c: usize| (g * cin_g + c / p.k) * row_len + (c % p.k) * p.dilation;
                    let mut o = 0;
                    while o < cout_g {
                        let n = if cout_g - o >= OW { OW } else { 1 };
                        let rows = &gyp[(g * cout_g + o) * gy_len..(g * cout_g + o + n) * gy_len];
                        let out = &mut gw[(g * cout_g + o) * ncols..(g * cout_g + o + n) * ncols];
                        let mut c = 0;
                        while c < ncols {
                            if ncols - c >= JW {
                                let cols: [usize; JW] = std::array::from_fn(|q| col(c + q));
                                if n == OW {
                                    let s = gw_tile::<OW, JW>(rows, gy_len, xp, &cols);
                                    for (oo, r) in s.iter().enumerate() {
                                        for (cc, v) in r.iter().enumerate() {
                                            out[oo * ncols + c + cc] += *v;
                                        }
                                    }
                                } else {
                                    let s = gw_tile::<1, JW>(rows, gy_len, xp, &cols);
                                    for (cc, v) in s[0].iter().enumerate() {
                                        out[c + cc] += *v;
                                    }
                                }
                                c += JW;
                            } else {
                                for oo in 0..n {
                                    let row = &rows[oo * gy_len..(oo + 1) * gy_len];
                                    out[oo * ncols + c] += gw_tile::<1, 1>(row, gy_len, xp, &[col(c)])[0][0];
                                }
                                c += 1;
                            }
                        }
                        o += n;
                    }
                }
            }
        }
    };
}

simd_kernels!(avx512, "avx512f,avx2,fma", 16, __m512, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps,
    forward: (2, 8), weight: (4, 5));
simd_kernels!(avx2, "avx2,fma", 8, __m256, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps,
    forward: (1, 8), weight: (2, 5));
