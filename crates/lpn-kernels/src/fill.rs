//! Fresh output vectors written once, without a zero fill first.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The part of a fresh vector one task writes: values are appended in order
/// and counted, so [`build`] knows that every element was written.
pub(crate) struct Out<'a, T> {
    dst: &'a mut [MaybeUninit<T>],
    written: usize,
}

impl<T: Copy> Out<'_, T> {
    /// Appends `values`, as many as fit.
    #[inline]
    pub(crate) fn extend(&mut self, values: impl IntoIterator<Item = T>) {
        let mut n = 0;
        for (d, v) in self.dst[self.written..].iter_mut().zip(values) {
            d.write(v);
            n += 1;
        }
        self.written += n;
    }

    /// Elements still to write.
    pub(crate) fn remaining(&self) -> usize {
        self.dst.len() - self.written
    }
}

/// A fresh vector of `len` elements, written by `fill(first row, out)` over
/// groups of whole rows of `row` elements (about `chunk` elements per group)
/// in parallel. Panics unless `fill` writes its whole part.
pub(crate) fn build<T: Copy + Send + Sync>(len: usize, row: usize, chunk: usize, fill: impl Fn(usize, &mut Out<T>) + Sync) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    let rows_per_task = (chunk / row.max(1)).max(1);
    let step = rows_per_task * row.max(1);
    out.spare_capacity_mut()[..len].par_chunks_mut(step).enumerate().for_each(|(task, dst)| {
        let mut part = Out { dst, written: 0 };
        fill(task * rows_per_task, &mut part);
        assert_eq!(part.remaining(), 0, "a task left part of its output unwritten");
    });
    // SAFETY: every task wrote all of its part (asserted above: `Out` only
    // counts elements it wrote), and the parts cover 0..len.
    unsafe { out.set_len(len) };
    out
}

/// A fresh vector of `len` elements cut into runs of `run` elements, run `r`
/// belonging to group `r % groups` (a `[B, C, plane]` tensor's channels, for
/// runs of a plane): `fill(group, outs)` writes each of its group's runs
/// (in order) and returns a value; groups in parallel. Returns the vector
/// and the groups' values in group order. Panics unless `fill` writes all
/// of every run.
pub(crate) fn build_runs<T: Copy + Send + Sync, R: Send>(
    len: usize,
    run: usize,
    groups: usize,
    fill: impl Fn(usize, &mut [Out<T>]) -> R + Sync,
) -> (Vec<T>, Vec<R>) {
    assert!(run > 0 && groups > 0 && len.is_multiple_of(run * groups), "{len} values are not whole runs of {run} in {groups} groups");
    let mut out: Vec<T> = Vec::with_capacity(len);
    let mut by_group: Vec<Vec<Out<T>>> = (0..groups).map(|_| Vec::with_capacity(len / (run * groups))).collect();
    for (r, dst) in out.spare_capacity_mut()[..len].chunks_mut(run).enumerate() {
        by_group[r % groups].push(Out { dst, written: 0 });
    }
    let values = by_group
        .par_iter_mut()
        .enumerate()
        .map(|(g, outs)| {
            let value = fill(g, outs);
            assert!(outs.iter().all(|o| o.remaining() == 0), "a task left part of its output unwritten");
            value
        })
        .collect();
    drop(by_group);
    // SAFETY: every run was written whole (asserted above: `Out` only counts
    // elements it wrote), and the runs cover 0..len.
    unsafe { out.set_len(len) };
    (out, values)
}

/// A fresh vector of `len` zeros (`T::default()`) in parts of `part`
/// elements, each zeroed and then handed to `f(part index, part)` by the
/// same task, in parallel: the zero fill is spread over the threads and
/// leaves each part in cache for `f`, where `vec![zero; len]` is one
/// thread's memset first.
pub(crate) fn zeroed_parts<T: Copy + Default + Send + Sync>(len: usize, part: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(part.max(1)).enumerate().for_each(|(i, dst)| {
        for d in dst.iter_mut() {
            d.write(T::default());
        }
        // SAFETY: every element of `dst` was just written.
        let part = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<T>(), dst.len()) };
        f(i, part);
    });
    // SAFETY: the parts cover 0..len and each was written whole before `f`.
    unsafe { out.set_len(len) };
    out
}

/// A vector of `len` elements written by `fill` (no zero fill first).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(crate) unsafe fn filled<T>(len: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees that `fill` wrote all `len` elements.
    unsafe { v.set_len(len) };
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_written_once() {
        let v = build(10_000, 7, 64, |first_row, out| {
            let start = first_row * 7;
            out.extend((start..start + out.remaining()).map(|i| i as f64));
        });
        assert_eq!(v, (0..10_000).map(|i| i as f64).collect::<Vec<_>>());
    }

    #[test]
    fn parts_start_as_zeros_and_keep_what_they_are_given() {
        let v = zeroed_parts(1000, 64, |i, part: &mut [f64]| {
            assert!(part.iter().all(|&x| x == 0.0));
            part[0] = i as f64 + 1.0;
        });
        assert_eq!(v.len(), 1000);
        for (k, x) in v.iter().enumerate() {
            assert_eq!(*x, if k % 64 == 0 { (k / 64) as f64 + 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn runs_are_written_by_their_groups() {
        // Runs of 3 in 4 groups: run r holds r's group, then its place.
        let (v, values) = build_runs(36, 3, 4, |g, outs| {
            for (i, out) in outs.iter_mut().enumerate() {
                out.extend([g as f64, i as f64, -1.0]);
            }
            outs.len()
        });
        assert_eq!(values, [3, 3, 3, 3]);
        for (r, run) in v.chunks(3).enumerate() {
            assert_eq!(run, [(r % 4) as f64, (r / 4) as f64, -1.0]);
        }
    }

    #[test]
    #[should_panic(expected = "unwritten")]
    fn a_run_left_unwritten_panics() {
        build_runs(12, 3, 2, |_, outs: &mut [Out<f32>]| outs[0].extend([1.0; 3]));
    }

    /// A part left unwritten is a panic, never a vector with uninitialised
    /// values in it.
    #[test]
    #[should_panic(expected = "unwritten")]
    fn a_part_left_unwritten_panics() {
        build(100, 10, 20, |_, out: &mut Out<f32>| out.extend([1.0; 15]));
    }
}
