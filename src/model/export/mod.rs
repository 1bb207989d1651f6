//! Export of a trained network to other runtimes: ONNX (`lpnc export
//! --format onnx`).
//!
//! The graph is built from the checked model (`ir::Model`, one exhaustive
//! match over `ir::Op`) and the tensors the network itself uses in its
//! evaluation pass: [`Net::tensors`], the effective weights (a
//! reparametrized kernel as its coordinates make it, a frozen layer's
//! designed filter, projected and penalized weights as they are) and the
//! batch-norm running statistics, exactly what `lpnc train` saves and
//! `lpnc eval` loads. So a constraint is baked into plain weights and needs
//! nothing at run time.
//!
//! Eval mode: dropout is left out (identity) and batch norm is one
//! `BatchNormalization` node with the running statistics, not folded into
//! the layer before it: it stays correct wherever the layer stands (after an
//! activation, first, inside a residual), its tensors keep the names of the
//! weights file, and runtimes fuse it into a convolution themselves.

pub mod onnx;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use prost::Message;

use super::{Kind, LowerError, Net, ParamName};
use crate::language::ir::{Activation, Conv, Layer, Model, Op, Pool};
use onnx::{AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto};

/// The graph's input: `[batch, *input]` of the model's `input` line, float32.
pub const INPUT: &str = "input";
/// The graph's output: `[batch, *output]`, what the network's last layer
/// gives (a classifier's logits, before any softmax).
pub const OUTPUT: &str = "output";

#[derive(Debug)]
pub enum ExportError {
    /// The weights file does not fit the model, or cannot be read.
    Load(LowerError),
    Candle(candle_core::Error),
    /// A layer the format cannot express, and why.
    Unsupported {
        layer: String,
        why: String,
    },
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Load(e) => write!(f, "{e}"),
            ExportError::Candle(e) => write!(f, "tensor error: {e}"),
            ExportError::Unsupported { layer, why } => write!(f, "layer `{layer}` cannot be exported: {why}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<LowerError> for ExportError {
    fn from(e: LowerError) -> Self {
        ExportError::Load(e)
    }
}

impl From<candle_core::Error> for ExportError {
    fn from(e: candle_core::Error) -> Self {
        ExportError::Candle(e)
    }
}

/// The network of `model` with the weights of a `model.safetensors`, loaded
/// as `lpnc eval` loads it (`crate::train::evaluate_file`), as an ONNX file.
pub fn onnx_from_weights(model: &Model, weights: &Path) -> Result<Vec<u8>, ExportError> {
    let mut net = Net::new(model, 0, super::ops::TRAIN_DTYPE)?;
    let tensors = super::params::read(weights, super::Source::WeightsFile).map_err(LowerError::from)?;
    net.load(&tensors)?;
    to_onnx(model, &net)
}

/// `net` (built from `model`) as the bytes of an ONNX model: opset 17, the
/// batch axis named `batch`, input [`INPUT`] and output [`OUTPUT`].
pub fn to_onnx(model: &Model, net: &Net) -> Result<Vec<u8>, ExportError> {
    let mut graph = Graph { tensors: net.tensors()?, nodes: Vec::new(), initializers: Vec::new() };
    let last = graph.layers(&model.layers, INPUT.to_string())?;
    graph.node("Identity", OUTPUT, vec![last], vec![]);
    let doc = |what: &str| format!("{what}; the first axis is the batch (any size)");
    let graph = GraphProto {
        node: graph.nodes,
        name: Some(model.name.clone()),
        initializer: graph.initializers,
        doc_string: Some(format!("lpn model `{}`, eval mode, constraints baked into the weights", model.name)),
        input: vec![ValueInfoProto::batched_float(INPUT, &model.input.0, &doc("the model's input"))],
        output: vec![ValueInfoProto::batched_float(OUTPUT, &model.output.0, &doc("the last layer's output (logits for a classifier)"))],
    };
    let file = ModelProto {
        ir_version: Some(onnx::IR_VERSION),
        producer_name: Some("lpn".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: None,
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(onnx::OPSET) }],
        metadata_props: Vec::new(),
    };
    Ok(file.encode_to_vec())
}

/// The graph as it is written: nodes in order, and the tensors they read.
struct Graph {
    /// The network's tensors by name (`conv1.weight`, `bn1.running_var`).
    tensors: HashMap<String, Tensor>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Graph {
    /// Appends a node whose one output is named `output`; returns that name.
    fn node(&mut self, op: &str, output: &str, input: Vec<String>, attribute: Vec<AttributeProto>) -> String {
        self.nodes.push(NodeProto { input, output: vec![output.into()], name: Some(output.into()), op_type: Some(op.into()), attribute });
        output.into()
    }

    /// The network's tensor `layer.kind` as an initializer; returns its name.
    fn param(&mut self, layer: &str, kind: Kind) -> Result<String, ExportError> {
        let name = ParamName::new(layer, kind).to_string();
        let Some(t) = self.tensors.get(&name) else {
            return Err(ExportError::Unsupported { layer: layer.into(), why: format!("the network has no tensor `{name}`") });
        };
        let dims = t.dims().to_vec();
        let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(self.floats(&name, &dims, &values))
    }

    /// A float32 initializer; returns its name.
    fn floats(&mut self, name: &str, dims: &[usize], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, dims, onnx::FLOAT, raw)
    }

    /// An int64 initializer (the axes of `Unsqueeze`); returns its name.
    fn int64s(&mut self, name: &str, values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, &[values.len()], onnx::INT64, raw)
    }

    fn initializer(&mut self, name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type),
            name: Some(name.into()),
            raw_data: Some(raw),
        });
        name.into()
    }

    /// The layers in order from the tensor named `x`; returns the last output's name.
    fn layers(&mut self, layers: &[Layer], x: String) -> Result<String, ExportError> {
        layers.iter().try_fold(x, |x, layer| self.layer(layer, x))
    }

    fn layer(&mut self, layer: &Layer, x: String) -> Result<String, ExportError> {
        let name = layer.name.as_str();
        match &layer.op {
            Op::Conv(conv) => self.conv(name, conv, x),
            Op::Linear { bias, .. } => self.linear(name, *bias, x),
            Op::Activation(a) => Ok(self.activation(name, *a, x)),
            Op::MaxPool(pool) => Ok(self.pool("MaxPool", name, pool, x)),
            Op::AvgPool(pool) => Ok(self.pool("AveragePool", name, pool, x)),
            Op::GlobalAvgPool => Ok(self.global_pool("GlobalAveragePool", name, x)),
            Op::GlobalMaxPool => Ok(self.global_pool("GlobalMaxPool", name, x)),
            Op::BatchNorm { eps, .. } => self.batch_norm(layer, *eps, x),
            // Eval mode: dropout passes its input on.
            Op::Dropout { .. } => Ok(x),
            Op::Flatten => Ok(self.node("Flatten", name, vec![x], vec![AttributeProto::int("axis", 1)])),
            Op::Residual { body } => {
                let branch = self.layers(body, x.clone())?;
                Ok(self.node("Add", name, vec![x, branch], vec![]))
            }
        }
    }

    /// ONNX's `Conv` is PyTorch's (cross-correlation, weight `[out,
    /// in/groups, k…]`); `pads` lists every axis's start, then every end.
    fn conv(&mut self, name: &str, conv: &Conv, x: String) -> Result<String, ExportError> {
        let mut input = vec![x, self.param(name, Kind::Weight)?];
        if conv.bias {
            input.push(self.param(name, Kind::Bias)?);
        }
        let pads = conv.padding.iter().map(|p| p.0).chain(conv.padding.iter().map(|p| p.1));
        let attribute = vec![
            AttributeProto::ints("kernel_shape", conv.kernel.iter().copied()),
            AttributeProto::ints("strides", conv.stride.iter().copied()),
            AttributeProto::ints("pads", pads),
            AttributeProto::ints("dilations", conv.dilation.iter().copied()),
            AttributeProto::int("group", conv.groups as i64),
        ];
        Ok(self.node("Conv", name, input, attribute))
    }

    /// `Gemm` with the weight transposed (`y = x·Wᵀ + b`), on `[batch, in]`.
    ///
    /// The checker gives a linear layer a `[features]` input
    /// (`Problem::BadRank` otherwise), so `x` is `[batch, features]`.
    fn linear(&mut self, name: &str, bias: bool, x: String) -> Result<String, ExportError> {
        let mut input = vec![x, self.param(name, Kind::Weight)?];
        if bias {
            input.push(self.param(name, Kind::Bias)?);
        }
        Ok(self.node("Gemm", name, input, vec![AttributeProto::int("transB", 1)]))
    }

    /// Max pooling pads with −∞ (ONNX's and PyTorch's rule: padding never
    /// wins); average pooling counts the zero padding in the divisor
    /// (`count_include_pad=1`, PyTorch's default and lpn's); both floor the
    /// output length (`ceil_mode=0`).
    fn pool(&mut self, op: &str, name: &str, pool: &Pool, x: String) -> String {
        let pads = pool.padding.iter().chain(pool.padding.iter()).copied();
        let mut attribute = vec![
            AttributeProto::ints("kernel_shape", pool.kernel.iter().copied()),
            AttributeProto::ints("strides", pool.stride.iter().copied()),
            AttributeProto::ints("pads", pads),
            AttributeProto::int("ceil_mode", 0),
        ];
        if op == "AveragePool" {
            attribute.push(AttributeProto::int("count_include_pad", 1));
        }
        self.node(op, name, vec![x], attribute)
    }

    /// ONNX keeps the pooled axes as 1s; lpn's global pools give `[batch, channels]`.
    fn global_pool(&mut self, op: &str, name: &str, x: String) -> String {
        let pooled = self.node(op, &format!("{name}/pool"), vec![x], vec![]);
        self.node("Flatten", name, vec![pooled], vec![AttributeProto::int("axis", 1)])
    }

    /// `BatchNormalization` in inference mode with the running statistics;
    /// a `[batch, features]` input gets a length-1 axis around it, as lpn's
    /// forward pass does.
    fn batch_norm(&mut self, layer: &Layer, eps: f64, x: String) -> Result<String, ExportError> {
        let name = layer.name.as_str();
        let flat = layer.input.rank() == 1;
        let x = if flat {
            let axes = self.int64s(&format!("{name}/axes"), &[2]);
            self.node("Unsqueeze", &format!("{name}/unsqueeze"), vec![x, axes], vec![])
        } else {
            x
        };
        let input = vec![
            x,
            self.param(name, Kind::Weight)?,
            self.param(name, Kind::Bias)?,
            self.param(name, Kind::RunningMean)?,
            self.param(name, Kind::RunningVar)?,
        ];
        let attribute = vec![AttributeProto::float("epsilon", eps as f32)];
        if !flat {
            return Ok(self.node("BatchNormalization", name, input, attribute));
        }
        let y = self.node("BatchNormalization", &format!("{name}/norm"), input, attribute);
        Ok(self.node("Squeeze", name, vec![y, format!("{name}/axes")], vec![]))
    }

    /// Each activation as lpn computes it: GELU is its tanh form (ONNX's
    /// `Gelu` node needs opset 20), SiLU is `x·σ(x)`.
    fn activation(&mut self, name: &str, activation: Activation, x: String) -> String {
        match activation {
            Activation::Relu => self.node("Relu", name, vec![x], vec![]),
            Activation::Tanh => self.node("Tanh", name, vec![x], vec![]),
            Activation::Sigmoid => self.node("Sigmoid", name, vec![x], vec![]),
            Activation::LeakyRelu(slope) => self.node("LeakyRelu", name, vec![x], vec![AttributeProto::float("alpha", slope as f32)]),
            Activation::Silu => {
                let s = self.node("Sigmoid", &format!("{name}/sigmoid"), vec![x.clone()], vec![]);
                self.node("Mul", name, vec![x, s], vec![])
            }
            Activation::Gelu => self.gelu(name, x),
        }
    }

    /// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))`, `ops::gelu`'s formula.
    fn gelu(&mut self, name: &str, x: String) -> String {
        let constant = |g: &mut Graph, what: &str, v: f64| g.floats(&format!("{name}/{what}"), &[], &[v as f32]);
        let cubic = constant(self, "cubic", 0.044715);
        let scale = constant(self, "scale", (2.0 / std::f64::consts::PI).sqrt());
        let one = constant(self, "one", 1.0);
        let half = constant(self, "half", 0.5);
        let step = |what: &str| format!("{name}/{what}");
        let square = self.node("Mul", &step("square"), vec![x.clone(), x.clone()], vec![]);
        let cube = self.node("Mul", &step("cube"), vec![square, x.clone()], vec![]);
        let term = self.node("Mul", &step("term"), vec![cube, cubic], vec![]);
        let inner = self.node("Add", &step("inner"), vec![x.clone(), term], vec![]);
        let scaled = self.node("Mul", &step("scaled"), vec![inner, scale], vec![]);
        let tanh = self.node("Tanh", &step("tanh"), vec![scaled], vec![]);
        let shifted = self.node("Add", &step("shifted"), vec![tanh, one], vec![]);
        let times_x = self.node("Mul", &step("times_x"), vec![shifted, x], vec![]);
        self.node("Mul", name, vec![times_x, half], vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(source: &str) -> Model {
        let (_, checked) = crate::check_source(source, Path::new("."));
        checked.program.expect("the test model checks").model
    }

    /// A tensor the graph needs that the network lacks is an error naming
    /// the layer and the tensor, never a panic or a graph without it.
    #[test]
    fn a_layer_without_its_tensor_is_named() {
        let small = model("model m {\n  input [1, 32]\n  conv(out=1, k=3)\n}\ndata sines(n=8)\n");
        let larger = model("model m {\n  input [1, 32]\n  conv(out=1, k=3)\n  conv(out=1, k=3)\n}\ndata sines(n=8)\n");
        let net = Net::new(&small, 0, DType::F32).unwrap();
        let err = to_onnx(&larger, &net).unwrap_err().to_string();
        assert_eq!(err, "layer `conv2` cannot be exported: the network has no tensor `conv2.weight`");
        assert!(to_onnx(&small, &net).is_ok());
    }
}
