//! lpn's CPU kernels: convolution (1-D, 2-D, and the 2-D block of
//! convolution, bias, ReLU and max pool), pooling, ReLU and per-channel bias,
//! batch normalisation (+ ReLU), and the band-penalty ratio, each with its
//! gradients. Slices in, slices out: no tensor library here (lpn's Candle
//! glue lives in `src/model/kernels/`).
//!
//! Every `unsafe` of lpn's kernels is in this crate, each block with a
//! `// SAFETY:` comment (denied otherwise). The instruction-set paths live in
//! their own modules, compiled only on their target (`x86` on x86-64); the
//! portable path is always compiled, so the crate builds on any CPU. Which
//! path runs is decided in one place ([`Isa`], detected at run time), and
//! [`with_isa`] forces one, so tests compare every path with the portable one.
//! Only the x86-64 toolchain is installed where this was written, so the
//! other targets' build was checked by compiling and testing a copy with
//! every `target_arch = "x86_64"` cfg made false: no warnings, tests pass.
//!
//! Each layer kind has one configuration type ([`ConvGeometry`],
//! [`BlockGeometry`], [`PoolGeometry`]) built once by the caller and passed
//! to all of its kernels; [`out_len`] is the one output-length formula.
//! Kernels panic on operands that do not fit their geometry: callers check
//! the geometry first (`check()`), which returns an error instead.
//!
//! Results never depend on the number of threads: sums over the batch are
//! cut into fixed chunks, added in order.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

mod fill;
mod geometry;
mod isa;
mod num;
#[cfg(test)]
mod testing;
#[cfg(target_arch = "x86_64")]
mod x86;

pub mod act;
pub mod band;
pub mod block;
pub mod conv1d;
pub mod conv2d;
pub mod norm;
pub mod pool;

pub use geometry::{BlockGeometry, ConvGeometry, Convolution, GeometryError, MAX_POOL_WINDOW, PoolGeometry, PoolKind, out_len};
pub use isa::{Isa, with_isa};
pub use num::Num;
