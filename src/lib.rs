//! lpn: declarative structural constraints for neural-network layers.
//!
//! The front end is a pipeline: [`syntax`] (pest) → [`ast`] → [`check`] →
//! [`ir`]; [`report`] turns problems into miette reports or JSON. None of it
//! uses tensors. See ARCHITECTURE.md.

pub mod ast;
pub mod bands;
pub mod check;
pub mod codes;
pub mod confusables;
pub mod data;
pub mod diagnostic;
pub mod inspect;
pub mod ir;
pub mod lower;
pub mod report;
pub mod rng;
pub mod schema;
pub mod shape;
pub mod suggest;
pub mod syntax;
pub mod threads;
pub mod train;

pub use check::{Checked, Machine, check_source, check_source_on};
