//! [`Model`]: a checked program's network with its weights, on the device a
//! caller chose, as a Candle module (`candle_nn::ModuleT`, and
//! `candle_nn::Module` through [`Model::eval`]).

use std::cell::RefCell;
use std::path::Path;

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};

use super::{LowerError, Net, Pass, ops, params};
use crate::language::ir::Program;
use crate::rng::Rng;

/// A network built from a [`Program`](crate::Program) with its weights:
/// trained ones from a weights file ([`Model::load`]) or a fresh seeded
/// start ([`Model::init`]), on a [`Device`] the caller passes in.
///
/// It takes a batch `[B, …input]` (the program's input shape after the batch
/// axis) of `f32` values on its device and gives `[B, …output]`.
///
/// On the CPU the convolutions, pooling and ReLU run lpn's own kernels; on
/// any other device Candle's own ops (a build of `candle-core` with that
/// device's feature), which the tests compare with the kernels on the CPU.
///
/// A `Model` is a [`ModuleT`]: `forward_t(x, true)` is a training pass
/// (batch statistics, which it adds to the running ones, and dropout),
/// `forward_t(x, false)` evaluation, as `train()`/`eval()` in PyTorch.
/// Candle implements `ModuleT` for every [`Module`], so one type cannot be
/// both without the train flag being ignored: [`Model::eval`] gives the
/// evaluation view as a `Module` (for `Tensor::apply` and
/// `candle_nn::Sequential`). The traits are Candle's (`candle_core`),
/// which `candle_nn` re-exports under the same names.
///
/// The constraints of the program shape the weights while lpn trains them
/// ([`Trainer`](crate::train::Trainer)); a `Model` runs the network and does
/// not enforce them if a caller trains it with an optimizer of their own.
pub struct Model {
    net: Net,
    input: Vec<usize>,
    output: Vec<usize>,
    /// Dropout's masks in training passes.
    dropout: RefCell<Rng>,
}

impl Model {
    /// The network of `program` with the weights `lpnc train` wrote
    /// (`model.safetensors`), on `device`. The file must hold every tensor
    /// of this network with its shape, and nothing else.
    pub fn load(program: &Program, weights: impl AsRef<Path>, device: &Device) -> std::result::Result<Model, LowerError> {
        let mut net = Net::new_on(&program.model, 0, ops::TRAIN_DTYPE, device)?;
        let tensors = params::read(weights.as_ref(), params::Source::WeightsFile)?;
        net.load(&tensors)?;
        Ok(Model::wrap(program, net, 0))
    }

    /// The network of `program` as training starts it with `seed`: the same
    /// initial weights as `lpnc train --seed SEED` (projected and frozen
    /// constraints already applied), on `device`.
    pub fn init(program: &Program, seed: u64, device: &Device) -> std::result::Result<Model, LowerError> {
        let built = crate::train::trainer::build_net(&program.model, seed, device)?;
        Ok(Model::wrap(program, built.net, seed))
    }

    fn wrap(program: &Program, net: Net, seed: u64) -> Model {
        Model {
            net,
            input: program.model.input.0.clone(),
            output: program.model.output.0.clone(),
            dropout: RefCell::new(Rng::derive(seed, "model/dropout")),
        }
    }

    /// Evaluation: the output for a batch `[B, …input]`, with the running
    /// batch-norm statistics and no dropout. The same as `forward_t(x, false)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }

    /// The model in evaluation mode as a [`Module`].
    pub fn eval(&self) -> Eval<'_> {
        Eval(self)
    }

    pub fn device(&self) -> &Device {
        &self.net.device
    }

    /// The type of the values it computes with (`f32`).
    pub fn dtype(&self) -> DType {
        self.net.dtype
    }

    /// One example's input shape, without the batch axis.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// One example's output shape, without the batch axis.
    pub fn output_shape(&self) -> &[usize] {
        &self.output
    }

    /// The network inside (for the tests' comparisons of op paths).
    #[doc(hidden)]
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// An error, in the user's terms, unless `x` is a batch this model takes.
    fn check_input(&self, x: &Tensor) -> Result<()> {
        if x.rank() != self.input.len() + 1 || x.dims()[1..] != self.input[..] {
            candle_core::bail!("the model takes a batch [B, {}], not a tensor {:?}", join(&self.input), x.dims());
        }
        if x.dtype() != self.net.dtype {
            candle_core::bail!("the model computes in {:?}, not {:?}: convert the input with `to_dtype`", self.net.dtype, x.dtype());
        }
        if !x.device().same_device(&self.net.device) {
            candle_core::bail!("the input is on {:?} and the model on {:?}: move it with `to_device`", x.device(), self.net.device);
        }
        Ok(())
    }
}

fn join(dims: &[usize]) -> String {
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

impl ModuleT for Model {
    /// `train`: a training pass (batch statistics, dropout), as PyTorch's
    /// `model.train()`; otherwise evaluation.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_input(x)?;
        if train {
            let mut dropout = self.dropout.borrow_mut();
            self.net.forward(x, &mut Pass::Train { dropout: &mut dropout })
        } else {
            self.net.forward(x, &mut Pass::Eval)
        }
    }
}

/// A [`Model`] in evaluation mode, as a [`Module`] ([`Model::eval`]).
#[derive(Clone, Copy)]
pub struct Eval<'a>(&'a Model);

impl Module for Eval<'_> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward_t(x, false)
    }
}
