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

    /// A part left unwritten is a panic, never a vector with uninitialised
    /// values in it.
    #[test]
    #[should_panic(expected = "unwritten")]
    fn a_part_left_unwritten_panics() {
        build(100, 10, 20, |_, out: &mut Out<f32>| out.extend([1.0; 15]));
    }
}
