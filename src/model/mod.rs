//! Lowering: the validated model (`crate::language::ir`) becomes a network of Candle
//! tensors with named parameters (`conv2.weight`), seeded initial weights, and
//! each constraint attached the way its mode says (`constraints`).
//!
//! This module and `crate::train` are the only ones that use Candle.

pub mod constraints;
pub mod export;
pub mod kernels;
pub mod module;
pub mod ops;
pub mod params;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use candle_core::{DType, Device, Result, Tensor, Var};
use kernels::Pooling;
use lpn_kernels::PoolKind;

use crate::language::ir::{Activation, Init, Layer, Model, Op};
use crate::rng::Rng;
use params::Expect;
pub use params::{Kind, LoadError, ParamName, Source, validate_weights};

/// A trainable tensor and how the optimizer may move it.
pub struct Param {
    /// Name in the weights file: `conv2.weight`.
    pub name: ParamName,
    pub var: Var,
    pub frozen: bool,
    /// Multiplies this tensor's updates (`@lr`).
    pub lr_scale: f64,
    /// Weight decay applies (weights of conv and linear, not biases or norms).
    pub decay: bool,
    /// When set, `var` holds coordinates and the layer's weight is computed
    /// from them once per step (`Net::effective`).
    pub reparam: Option<Reparam>,
}

/// How a reparametrized weight is made from its trainable tensor.
pub enum Reparam {
    /// `w = (c · Bᵀ + h0)` reshaped to `shape`: `c` is `[kernels, r]`, `B`
    /// `[taps, r]` has orthonormal columns spanning the admissible directions,
    /// `h0` (`[taps]`, orthogonal to them) is a point of an affine set.
    Subspace { basis: Tensor, offset: Option<Tensor>, shape: Vec<usize> },
    /// `w = softplus(θ)`, elementwise (non-negative weights).
    Softplus,
}

/// Whether every value of a tensor is a finite number.
/// A batch-norm node's running statistics moved toward a training batch's
/// `mean` and unbiased `var` (PyTorch's rule: `running ← (1 − momentum)·running
/// + momentum·batch`).
fn update_running(node: &Node, mean: &Tensor, var: &Tensor) -> Result<()> {
    let Node::BatchNorm { stats, momentum, .. } = node else { candle_core::bail!("a batch norm over a node of another kind") };
    let mut s = lock(stats);
    let m = *momentum;
    s.0 = ((&s.0 * (1.0 - m))? + (mean.detach() * m)?)?;
    s.1 = ((&s.1 * (1.0 - m))? + (var.detach() * m)?)?;
    Ok(())
}

pub fn finite(x: &Tensor) -> Result<bool> {
    // NaN and ±∞ survive a sum of squares as NaN or +∞.
    let s = x.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(s.is_finite() || (s.is_infinite() && x.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite()))
}

/// `log(1 + eˣ)` without overflow.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

enum Node {
    Conv { w: usize, b: Option<usize>, conv: crate::language::ir::Conv },
    Linear { w: usize, b: Option<usize> },
    Act(Activation),
    MaxPool { kernel: Vec<usize>, stride: Vec<usize>, padding: Vec<usize> },
    AvgPool { kernel: Vec<usize>, stride: Vec<usize>, padding: Vec<usize> },
    GlobalAvg,
    GlobalMax,
    BatchNorm { gamma: usize, beta: usize, stats: Mutex<(Tensor, Tensor)>, momentum: f64, eps: f64, name: String },
    Dropout { p: f64 },
    Flatten,
    Residual(Vec<Named>),
}

impl Node {
    /// The pooling a max- or average-pool node does; None for other nodes.
    fn pooling(&self) -> Option<Pooling<'_>> {
        match self {
            Node::MaxPool { kernel, stride, padding } => Some(Pooling { kind: PoolKind::Max, kernel, stride, padding }),
            Node::AvgPool { kernel, stride, padding } => Some(Pooling { kind: PoolKind::Avg, kernel, stride, padding }),
            Node::Conv { .. }
            | Node::Linear { .. }
            | Node::Act(_)
            | Node::GlobalAvg
            | Node::GlobalMax
            | Node::BatchNorm { .. }
            | Node::Dropout { .. }
            | Node::Flatten
            | Node::Residual(_) => None,
        }
    }
}

/// A node with the layer name it comes from (for messages).
struct Named {
    name: String,
    node: Node,
}

pub struct Net {
    nodes: Vec<Named>,
    pub params: Vec<Param>,
    pub device: Device,
    pub dtype: DType,
}

/// Where a forward pass runs: training (batch statistics, dropout) or not.
pub enum Pass<'a> {
    Train { dropout: &'a mut Rng },
    Eval,
}

impl Net {
    /// Builds the network with weights drawn from `seed` (PyTorch's default
    /// initialisation unless `@init` says otherwise). Each parameter draws
    /// from its own stream, derived from the seed and its name
    /// (`init/conv2.weight`), so a layer whose `@init` changes (a file,
    /// another scheme) leaves every other initial value as it was, its own
    /// bias included when that is not loaded.
    pub fn new(model: &Model, seed: u64, dtype: DType) -> std::result::Result<Net, LowerError> {
        Net::new_on(model, seed, dtype, &Device::Cpu)
    }

    /// [`Net::new`] on `device`: the initial weights are drawn and converted
    /// to `dtype` on the host, then moved there, so a seed gives the same start everywhere.
    /// Our kernels run on the CPU only; elsewhere every op is Candle's own
    /// (`ops`).
    pub fn new_on(model: &Model, seed: u64, dtype: DType, device: &Device) -> std::result::Result<Net, LowerError> {
        let mut net = Net { nodes: Vec::new(), params: Vec::new(), device: device.clone(), dtype };
        net.nodes = net.build(&model.layers, seed)?;
        Ok(net)
    }

    fn build(&mut self, layers: &[Layer], seed: u64) -> std::result::Result<Vec<Named>, LowerError> {
        let mut nodes = Vec::new();
        for layer in layers {
            let node = match &layer.op {
                Op::Conv(c) => {
                    let mut wshape = vec![c.out_channels, c.in_channels / c.groups];
                    wshape.extend(&c.kernel);
                    let fan_in = (c.in_channels / c.groups) * c.kernel.iter().product::<usize>();
                    let fan_out = (c.out_channels / c.groups) * c.kernel.iter().product::<usize>();
                    let w = self.weight(layer, &wshape, fan_in, fan_out, seed)?;
                    let b = c.bias.then(|| self.bias(layer, c.out_channels, fan_in, seed)).transpose()?;
                    Node::Conv { w, b, conv: c.clone() }
                }
                Op::Linear { in_features, out_features, bias } => {
                    let w = self.weight(layer, &[*out_features, *in_features], *in_features, *out_features, seed)?;
                    let b = bias.then(|| self.bias(layer, *out_features, *in_features, seed)).transpose()?;
                    Node::Linear { w, b }
                }
                Op::Activation(a) => Node::Act(*a),
                Op::MaxPool(p) => Node::MaxPool { kernel: p.kernel.clone(), stride: p.stride.clone(), padding: p.padding.clone() },
                Op::AvgPool(p) => Node::AvgPool { kernel: p.kernel.clone(), stride: p.stride.clone(), padding: p.padding.clone() },
                Op::GlobalAvgPool => Node::GlobalAvg,
                Op::GlobalMaxPool => Node::GlobalMax,
                Op::BatchNorm { channels, momentum, eps } => {
                    let gamma = self.add(layer, Kind::Weight, Tensor::ones(*channels, self.dtype, &self.device)?, false)?;
                    let beta = self.add(layer, Kind::Bias, Tensor::zeros(*channels, self.dtype, &self.device)?, false)?;
                    let stats = (Tensor::zeros(*channels, self.dtype, &self.device)?, Tensor::ones(*channels, self.dtype, &self.device)?);
                    Node::BatchNorm { gamma, beta, stats: Mutex::new(stats), momentum: *momentum, eps: *eps, name: layer.name.clone() }
                }
                Op::Dropout { p } => Node::Dropout { p: *p },
                Op::Flatten => Node::Flatten,
                Op::Residual { body } => Node::Residual(self.build(body, seed)?),
            };
            nodes.push(Named { name: layer.name.clone(), node });
        }
        Ok(nodes)
    }

    fn add(&mut self, layer: &Layer, kind: Kind, value: Tensor, decay: bool) -> Result<usize> {
        self.params.push(Param {
            name: ParamName::new(&layer.name, kind),
            // Converted on the host: some devices have no f64.
            var: Var::from_tensor(&value.to_dtype(self.dtype)?.to_device(&self.device)?)?,
            frozen: layer.frozen,
            lr_scale: layer.lr_scale,
            decay,
            reparam: None,
        });
        Ok(self.params.len() - 1)
    }

    fn uniform(&self, shape: &[usize], bound: f64, rng: &mut Rng) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f64> = (0..n).map(|_| rng.range(-bound, bound)).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
    }

    #[allow(clippy::too_many_arguments)]
    fn weight(
        &mut self,
        layer: &Layer,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        seed: u64,
    ) -> std::result::Result<usize, LowerError> {
        let n: usize = shape.iter().product();
        let rng = &mut Rng::derive(seed, &ParamName::new(&layer.name, Kind::Weight).init_stream());
        let value = match &layer.init {
            // PyTorch's default (kaiming_uniform with a=√5): U(±1/√fan_in).
            None | Some(Init::Kaiming) => self.uniform(shape, 1.0 / (fan_in as f64).sqrt(), rng)?,
            Some(Init::Xavier) => self.uniform(shape, (6.0 / (fan_in + fan_out) as f64).sqrt(), rng)?,
            Some(Init::Normal { std }) => Tensor::from_vec((0..n).map(|_| rng.normal() * std).collect::<Vec<f64>>(), shape, &Device::Cpu)?,
            Some(Init::Zeros) => Tensor::zeros(shape, DType::F64, &Device::Cpu)?,
            Some(Init::Designed { family, cutoff }) => {
                let spec = crate::constraint::bands::BandSpec { family: *family, low: *cutoff, high: *cutoff, transition: None, fs: None };
                constraints::designed_weight(&spec, shape, &Device::Cpu)?
            }
            Some(Init::File { path, tensor, .. }) => {
                // Already resolved against the .lpn file's folder by the checker.
                self.tensor_from_file(layer, path, tensor, shape, true)?.expect("a required tensor is loaded or an error")
            }
        };
        Ok(self.add(layer, Kind::Weight, value, true)?)
    }

    /// The bias: PyTorch's default U(±1/√fan_in) unless `@init` says
    /// otherwise; `@init(file)` loads it when the file has it (and must when
    /// the user named it), else the default.
    fn bias(&mut self, layer: &Layer, n: usize, fan_in: usize, seed: u64) -> std::result::Result<usize, LowerError> {
        let rng = &mut Rng::derive(seed, &ParamName::new(&layer.name, Kind::Bias).init_stream());
        let loaded = match &layer.init {
            Some(Init::File { path, bias, bias_required, .. }) => self.tensor_from_file(layer, path, bias, &[n], *bias_required)?,
            None | Some(Init::Kaiming | Init::Xavier | Init::Normal { .. } | Init::Zeros | Init::Designed { .. }) => None,
        };
        let value = match (loaded, &layer.init) {
            (Some(t), _) => t,
            (None, Some(Init::Zeros) | Some(Init::Designed { .. })) => Tensor::zeros(n, DType::F64, &Device::Cpu)?,
            (None, None | Some(Init::Kaiming | Init::Xavier | Init::Normal { .. } | Init::File { .. })) => {
                self.uniform(&[n], 1.0 / (fan_in as f64).sqrt(), rng)?
            }
        };
        Ok(self.add(layer, Kind::Bias, value, false)?)
    }

    /// Tensor `name` of the safetensors file `path`, checked against `shape`;
    /// `None` when the file lacks it and it is not `required`.
    fn tensor_from_file(
        &self,
        layer: &Layer,
        path: &std::path::Path,
        name: &str,
        shape: &[usize],
        required: bool,
    ) -> std::result::Result<Option<Tensor>, LowerError> {
        let source = Source::Init { layer: &layer.name, path };
        let tensors = params::read(path, source)?;
        if !required && !tensors.contains_key(name) {
            return Ok(None);
        }
        let t = params::fetch(&tensors, name, Expect { shape, dtype: None }, source)?;
        Ok(Some(t.to_dtype(DType::F64)?))
    }

    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == *name)
    }

    /// The tensor the layer uses: the parameter itself, or the weight computed
    /// from its coordinates (differentiable).
    pub fn effective(&self, i: usize) -> Result<Tensor> {
        let p = &self.params[i];
        let t = p.var.as_tensor();
        match &p.reparam {
            None => Ok(t.clone()),
            Some(Reparam::Subspace { basis, offset, shape }) => {
                let w = t.matmul(&basis.t()?.contiguous()?)?;
                let w = match offset {
                    Some(h0) => w.broadcast_add(&h0.unsqueeze(0)?)?,
                    None => w,
                };
                w.reshape(shape.as_slice())
            }
            Some(Reparam::Softplus) => softplus(t),
        }
    }

    /// Sets the layer's tensor to `w` (mapped to coordinates for a
    /// reparametrized one: the nearest point of the admissible set).
    pub fn set_effective(&self, i: usize, w: &Tensor) -> Result<()> {
        let p = &self.params[i];
        let w = w.to_dtype(self.dtype)?.to_device(&self.device)?.detach();
        match &p.reparam {
            None => p.var.set(&w),
            Some(Reparam::Subspace { basis, offset, .. }) => {
                let taps = basis.dim(0)?;
                let h = w.reshape(((), taps))?;
                let h = match offset {
                    Some(h0) => h.broadcast_sub(&h0.unsqueeze(0)?)?,
                    None => h,
                };
                p.var.set(&h.matmul(basis)?)
            }
            Some(Reparam::Softplus) => {
                // softplus⁻¹(y) = y + log(1 − e^−y), for y > 0.
                let y = w.clamp(1e-6, f64::INFINITY)?;
                let theta = (&y + ((y.neg()?.exp()? * -1.0)? + 1.0)?.log()?)?;
                p.var.set(&theta)
            }
        }
    }

    /// Makes parameter `i` trainable through `reparam`, starting from its
    /// current value mapped into the admissible set.
    pub fn reparametrize(&mut self, i: usize, reparam: Reparam) -> Result<()> {
        let current = self.effective(i)?;
        let start = match &reparam {
            Reparam::Subspace { basis, .. } => {
                Tensor::zeros((current.elem_count() / basis.dim(0)?, basis.dim(1)?), self.dtype, &self.device)?
            }
            Reparam::Softplus => current.zeros_like()?,
        };
        self.params[i].var = Var::from_tensor(&start)?;
        self.params[i].reparam = Some(reparam);
        self.set_effective(i, &current)
    }

    pub fn forward(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        self.run(&self.nodes, x, pass)
    }

    fn p(&self, i: usize) -> Result<Tensor> {
        self.effective(i)
    }

    fn run(&self, nodes: &[Named], x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let mut x = x.clone();
        let mut i = 0;
        while i < nodes.len() {
            // In training, a convolution with a bias followed by a batch norm
            // (and a ReLU, and a pool) runs as one op: Candle's backward pass
            // then keeps no gradient of the convolution's or the batch norm's
            // output.
            if let (Node::Conv { w, b: Some(b), conv }, Some(norm @ Node::BatchNorm { .. }), Pass::Train { .. }) =
                (&nodes[i].node, nodes.get(i + 1).map(|n| &n.node), &*pass)
            {
                let relu = matches!(nodes.get(i + 2).map(|n| &n.node), Some(Node::Act(Activation::Relu)));
                let after = i + if relu { 3 } else { 2 };
                let pool = nodes.get(after).and_then(|n| n.node.pooling());
                let (gamma, beta, eps) = self.norm_params(norm)?;
                let (y, mean, var) = ops::conv_batch_norm_train(&x, &self.p(*w)?, &self.p(*b)?, conv, (&gamma, &beta), eps, relu, pool)?;
                update_running(norm, &mean, &var)?;
                x = y;
                i = after + usize::from(pool.is_some());
                continue;
            }
            // A convolution followed by a ReLU (and a max pool whose windows
            // tile its input) runs as one op: bias, ReLU and pool in one pass
            // over the product's output, and one pass back for all three.
            if let (Node::Conv { w, b, conv }, Some(Node::Act(Activation::Relu))) = (&nodes[i].node, nodes.get(i + 1).map(|n| &n.node)) {
                let bias = b.map(|b| self.p(b)).transpose()?;
                // A max pool joins the block when its windows tile its input.
                let pool = if let Some(Node::MaxPool { kernel, stride, padding }) = nodes.get(i + 2).map(|n| &n.node)
                    && stride == kernel
                    && padding.iter().all(|&p| p == 0)
                {
                    Some(kernel)
                } else {
                    None
                };
                x = ops::conv_block(&x, &self.p(*w)?, bias.as_ref(), conv, true, pool.map(|k| &k[..]))?;
                i += if pool.is_some() { 3 } else { 2 };
                continue;
            }
            // A batch norm followed by a ReLU runs as one op (one pass each way).
            if let (Node::BatchNorm { .. }, Some(Node::Act(Activation::Relu))) = (&nodes[i].node, nodes.get(i + 1).map(|n| &n.node)) {
                x = self.batch_norm(&nodes[i].node, &x, pass, true)?;
                i += 2;
                continue;
            }
            x = self.step(&nodes[i], &x, pass)?;
            i += 1;
        }
        Ok(x)
    }

    /// The batch-norm node `node` on `x`, then ReLU when `relu`: in training,
    /// with the batch's statistics, which update the running ones (PyTorch's
    /// rule: `running ← (1 − momentum)·running + momentum·batch`, the batch
    /// variance unbiased); in evaluation, with the running statistics.
    fn batch_norm(&self, node: &Node, x: &Tensor, pass: &Pass, relu: bool) -> Result<Tensor> {
        let Node::BatchNorm { gamma, beta, stats, eps, .. } = node else { candle_core::bail!("a batch norm over a node of another kind") };
        let x2 = if x.rank() == 2 { x.unsqueeze(2)? } else { x.clone() };
        let y = match pass {
            Pass::Train { .. } => {
                let (y, mean, var) = ops::batch_norm_train(&x2, &self.p(*gamma)?, &self.p(*beta)?, *eps, relu)?;
                update_running(node, &mean, &var)?;
                y
            }
            Pass::Eval => {
                let s = lock(stats);
                ops::batch_norm_eval(&x2, &self.p(*gamma)?, &self.p(*beta)?, &s.0, &s.1, *eps, relu)?
            }
        };
        if x.rank() == 2 { y.squeeze(2) } else { Ok(y) }
    }

    /// A batch-norm node's `(γ, β, eps)`.
    fn norm_params(&self, node: &Node) -> Result<(Tensor, Tensor, f64)> {
        let Node::BatchNorm { gamma, beta, eps, .. } = node else { candle_core::bail!("a batch norm over a node of another kind") };
        Ok((self.p(*gamma)?, self.p(*beta)?, *eps))
    }

    /// The first layer whose output (in evaluation mode) holds a NaN or an
    /// infinity for input `x`, if any: where a numerical fault appears.
    pub fn first_non_finite(&self, x: &Tensor) -> Result<Option<String>> {
        fn walk(net: &Net, nodes: &[Named], x: &Tensor) -> Result<(Tensor, Option<String>)> {
            let mut x = x.clone();
            for named in nodes {
                if let Node::Residual(body) = &named.node {
                    let (y, found) = walk(net, body, &x)?;
                    if found.is_some() {
                        return Ok((y, found));
                    }
                }
                x = net.step(named, &x, &mut Pass::Eval)?;
                if !finite(&x)? {
                    return Ok((x, Some(named.name.clone())));
                }
            }
            Ok((x, None))
        }
        if !finite(x)? {
            return Ok(Some("the input data".into()));
        }
        Ok(walk(self, &self.nodes, x)?.1)
    }

    fn step(&self, named: &Named, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let x = x.clone();
        Ok({
            match &named.node {
                Node::Conv { w, b, conv } => {
                    let bias = b.map(|b| self.p(b)).transpose()?;
                    ops::conv(&x, &self.p(*w)?, bias.as_ref(), conv)?
                }
                Node::Linear { w, b } => {
                    let bias = b.map(|b| self.p(b)).transpose()?;
                    ops::linear(&x, &self.p(*w)?, bias.as_ref())?
                }
                Node::Act(a) => match a {
                    Activation::Relu => ops::relu(&x)?,
                    Activation::Gelu => ops::gelu(&x)?,
                    Activation::Tanh => x.tanh()?,
                    Activation::Sigmoid => ops::sigmoid(&x)?,
                    Activation::Silu => ops::silu(&x)?,
                    Activation::LeakyRelu(slope) => ops::leaky_relu(&x, *slope)?,
                },
                Node::MaxPool { kernel, stride, padding } => ops::max_pool(&x, kernel, stride, padding)?,
                Node::AvgPool { kernel, stride, padding } => ops::avg_pool(&x, kernel, stride, padding)?,
                Node::GlobalAvg => ops::global_avg_pool(&x)?,
                Node::GlobalMax => ops::global_max_pool(&x)?,
                Node::BatchNorm { .. } => self.batch_norm(&named.node, &x, pass, false)?,
                Node::Dropout { p } => match pass {
                    Pass::Train { dropout } if *p > 0.0 => {
                        let keep = 1.0 - p;
                        let mask: Vec<f64> = (0..x.elem_count()).map(|_| if dropout.uniform() < keep { 1.0 / keep } else { 0.0 }).collect();
                        let mask = Tensor::from_vec(mask, x.dims(), x.device())?.to_dtype(x.dtype())?;
                        (x * mask)?
                    }
                    Pass::Train { .. } | Pass::Eval => x,
                },
                Node::Flatten => x.flatten_from(1)?,
                Node::Residual(body) => {
                    let y = self.run(body, &x, pass)?;
                    (x + y)?
                }
            }
        })
    }

    /// Every batch-norm layer's running statistics (mean, variance), with
    /// their names, in the order of the layers.
    fn running_stats(&self) -> Vec<RunningStats<'_>> {
        fn walk<'n>(nodes: &'n [Named], out: &mut Vec<RunningStats<'n>>) {
            for named in nodes {
                match &named.node {
                    Node::BatchNorm { stats, name, .. } => out.push(RunningStats {
                        mean: ParamName::new(name, Kind::RunningMean),
                        var: ParamName::new(name, Kind::RunningVar),
                        stats,
                    }),
                    Node::Residual(body) => walk(body, out),
                    Node::Conv { .. }
                    | Node::Linear { .. }
                    | Node::Act(_)
                    | Node::MaxPool { .. }
                    | Node::AvgPool { .. }
                    | Node::GlobalAvg
                    | Node::GlobalMax
                    | Node::Dropout { .. }
                    | Node::Flatten => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, &mut out);
        out
    }

    /// Every tensor to save: parameters, then batch-norm running statistics.
    pub fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, p) in self.params.iter().enumerate() {
            out.insert(p.name.to_string(), self.effective(i)?.detach().to_dtype(DType::F32)?);
        }
        for RunningStats { mean, var, stats } in self.running_stats() {
            let s = lock(stats);
            out.insert(mean.to_string(), s.0.to_dtype(DType::F32)?);
            out.insert(var.to_string(), s.1.to_dtype(DType::F32)?);
        }
        Ok(out)
    }

    /// The training state as stored, without conversion: each parameter's own
    /// tensor (coordinates for a reparametrized one, not the kernel they make)
    /// under `param/NAME`, batch-norm statistics under `stats/NAME.running_*`.
    /// What a checkpoint needs to continue bit for bit.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> =
            self.params.iter().map(|p| (format!("{PARAM_PREFIX}{}", p.name), p.var.as_tensor().detach())).collect();
        for RunningStats { mean, var, stats } in self.running_stats() {
            let s = lock(stats);
            out.push((format!("{STATS_PREFIX}{mean}"), s.0.clone()));
            out.push((format!("{STATS_PREFIX}{var}"), s.1.clone()));
        }
        Ok(out)
    }

    /// Restores what `state_tensors` gave; every tensor must be there with
    /// the shape and type the network has.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> std::result::Result<(), LowerError> {
        let fetch = |key: String, like: &Tensor| {
            params::fetch(tensors, &key, Expect { shape: like.dims(), dtype: Some(like.dtype()) }, Source::Checkpoint)
        };
        for p in &self.params {
            p.var.set(&fetch(format!("{PARAM_PREFIX}{}", p.name), p.var.as_tensor())?)?;
        }
        for RunningStats { mean, var, stats } in self.running_stats() {
            let loaded = {
                let s = lock(stats);
                (fetch(format!("{STATS_PREFIX}{mean}"), &s.0)?, fetch(format!("{STATS_PREFIX}{var}"), &s.1)?)
            };
            *lock(stats) = loaded;
        }
        Ok(())
    }

    /// The name and shape of every tensor `tensors` writes: what a weights
    /// file of this model holds, no more and no less.
    pub fn expected_tensors(&self) -> Result<Vec<(String, Vec<usize>)>> {
        let mut out: Vec<(String, Vec<usize>)> = self.tensors()?.into_iter().map(|(name, t)| (name, t.dims().to_vec())).collect();
        out.sort();
        Ok(out)
    }

    /// Loads every tensor saved by `tensors` (for `lpnc eval`), after
    /// [`validate_weights`] has found the file to fit this model.
    pub fn load(&mut self, tensors: &HashMap<String, Tensor>) -> std::result::Result<(), LowerError> {
        let expected = self.expected_tensors()?;
        validate_weights(&expected, tensors)?;
        let shapes: HashMap<&str, &[usize]> = expected.iter().map(|(n, s)| (n.as_str(), s.as_slice())).collect();
        let fetch = |name: String| params::fetch(tensors, &name, Expect { shape: shapes[name.as_str()], dtype: None }, Source::WeightsFile);
        for (i, p) in self.params.iter().enumerate() {
            self.set_effective(i, &fetch(p.name.to_string())?)?;
        }
        for RunningStats { mean, var, stats } in self.running_stats() {
            let on_device = |t: Tensor| t.to_dtype(self.dtype)?.to_device(&self.device);
            *lock(stats) = (on_device(fetch(mean.to_string())?)?, on_device(fetch(var.to_string())?)?);
        }
        Ok(())
    }
}

/// A batch-norm node's running statistics. (A lock, not a `RefCell`: a
/// training step runs on one of rayon's threads, see `ops::on_rayon_thread`;
/// only one thread ever holds it.)
fn lock(stats: &Mutex<(Tensor, Tensor)>) -> MutexGuard<'_, (Tensor, Tensor)> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A batch-norm layer's running statistics (mean, variance) and their names.
struct RunningStats<'n> {
    mean: ParamName,
    var: ParamName,
    stats: &'n Mutex<(Tensor, Tensor)>,
}

/// Where a checkpoint keeps each parameter's own tensor, and the batch-norm statistics.
const PARAM_PREFIX: &str = "param/";
const STATS_PREFIX: &str = "stats/";

#[derive(Debug)]
pub enum LowerError {
    Candle(candle_core::Error),
    /// An initial weight that cannot be had (file, tensor name, shape).
    Init(String),
    /// A constraint mode this version cannot enforce yet.
    Unsupported(String),
    /// Tensors read back that do not fit the network (a weights file, a
    /// checkpoint, an `@init` file).
    Load(LoadError),
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LowerError::Candle(e) => write!(f, "tensor error: {e}"),
            LowerError::Init(m) | LowerError::Unsupported(m) => write!(f, "{m}"),
            LowerError::Load(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LowerError {}

impl From<LoadError> for LowerError {
    fn from(e: LoadError) -> Self {
        LowerError::Load(e)
    }
}

impl From<candle_core::Error> for LowerError {
    fn from(e: candle_core::Error) -> Self {
        LowerError::Candle(e)
    }
}
