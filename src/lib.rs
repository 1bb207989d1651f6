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

pub mod constraint;
pub mod data;
pub mod language;
pub mod model;
pub mod rng;
pub mod threads;
pub mod train;

pub use language::check::{Checked, Machine, check_source, check_source_on};
