//! lpn: declarative structural constraints for neural-network layers.
//!
//! The pipeline, one folder per room (see ARCHITECTURE.md):
//! - [`language`]: source → [`language::syntax`] (pest) → [`language::ast`]
//!   → [`language::check`] → [`language::ir`], with diagnostics as data and
//!   their rendering. No tensors.
//! - [`constraint`]: the maths of each constraint family, in plain `f64`.
//! - [`data`]: the data a program declares, materialised without tensors.
//! - [`model`]: the IR lowered to Candle tensors, constraints enforced.
//! - [`train`]: the training loop, checkpoints and the report.
//!
//! `model`, `train` and `threads` need Candle and the kernels' thread pools:
//! they exist with the `train` feature (on by default). Without it the crate
//! is the front end alone, which CI builds to keep Candle out of it.

// All the kernels' `unsafe` lives in `crates/lpn-kernels`; the one block
// here (`threads::configure`, the process environment at start-up) says why
// it is sound.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod constraint;
pub mod data;
pub mod language;
#[cfg(feature = "train")]
pub mod model;
pub mod rng;
#[cfg(feature = "train")]
pub mod threads;
#[cfg(feature = "train")]
pub mod train;

pub use language::check::{Checked, Environment, FakeEnvironment, RealEnvironment, check_source, check_source_with};
