//! lpn: declarative structural constraints for neural-network layers.
//!
//! A `.lpn` file declares a network whose layers carry constraints
//! (`@lowpass(cutoff=0.2, mode=project)`), its data and its training. From
//! Rust the pipeline is three calls:
//!
//! 1. [`compile`] checks the source into a [`Program`], or gives its
//!    [`Diagnostics`] (the report `lpnc check` prints);
//! 2. [`Model::load`] builds the network with trained weights (the
//!    `model.safetensors` of `lpnc train`), or [`Model::init`] with fresh
//!    seeded ones, on a Candle [`Device`](candle_core::Device) you choose;
//! 3. the model is a Candle module: [`Model::forward`] (evaluation),
//!    [`candle_core::ModuleT::forward_t`] (the train flag), or
//!    [`Model::eval`] as a [`candle_core::Module`] (`candle_nn` re-exports
//!    both traits).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use candle_core::{Device, Tensor};
//!
//! let source = r#"
//! model smoother {
//!   input [1, 64]
//!   conv(out=4, k=21) @lowpass(cutoff=0.2, mode=reparam)
//!   relu
//!   conv(out=1, k=9)
//! }
//! data sines(n=8)
//! "#;
//! let program = lpn::compile(source, &lpn::CompileOptions::default())?;
//! // Fresh weights from a seed, or trained ones: Model::load(&program, "runs/smoother/model.safetensors", &device)
//! let model = lpn::Model::init(&program, 7, &Device::Cpu)?;
//! let y = model.forward(&Tensor::randn(0f32, 1.0, (8, 1, 64), &Device::Cpu)?)?;
//! assert_eq!(y.dims(), &[8, 1, 64]);
//! # Ok(())
//! # }
//! ```
//!
//! To train, [`train::Trainer`] runs one epoch (or one step) at a time and
//! tells each event to a [`train::Observer`] you pass in (the CLI draws its
//! progress bars from them); [`train::train`] runs a whole training. The
//! library prints nothing; it writes files only into the run folder a
//! training is given (weights, checkpoint, `report.json`).
//!
//! The rest of the crate (the language, the constraint maths, the data,
//! the network's internals) is shown here only as far as this API needs
//! it; ARCHITECTURE.md maps it. `Model` and `train` need Candle: they exist
//! with the `train` feature (on by default). Without it the crate is the
//! front end alone ([`compile`], [`check`]), which CI builds to keep Candle
//! out of it.

// All the kernels' `unsafe` lives in `crates/lpn-kernels`; the blocks here
// (`threads::configure`, the process environment at start-up, and
// `allocator::configure`, the allocator's options) say why they are sound.
#![deny(clippy::undocumented_unsafe_blocks)]

mod compile;
// The rooms below are public for `lpnc` and the integration tests, and
// hidden from the documentation: the API is the re-exports at the end and
// the documented parts of `train`.
#[cfg(feature = "train")]
#[doc(hidden)]
pub mod allocator;
#[doc(hidden)]
pub mod constraint;
#[doc(hidden)]
pub mod data;
#[doc(hidden)]
pub mod language;
#[cfg(feature = "train")]
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod rng;
#[cfg(feature = "train")]
#[doc(hidden)]
pub mod threads;
#[cfg(feature = "train")]
pub mod train;

pub use compile::{CompileOptions, Diagnostics, check, compile};
pub use language::diagnostic::Severity;
pub use language::ir::Program;
pub use language::render::{JsonDiagnostic as Diagnostic, JsonLabel as DiagnosticLabel};
#[cfg(feature = "train")]
pub use model::LowerError as ModelError;
#[cfg(feature = "train")]
pub use model::module::{Eval, Model};

#[doc(hidden)]
pub use language::check::{Checked, Environment, FakeEnvironment, RealEnvironment, check_source, check_source_with};
