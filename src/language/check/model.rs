//! The model section: layer names, structures, annotations and shape inference.
//!
//! Works in two passes. `template` resolves each written layer once (its
//! parameters and annotations), so a mistake inside `repeat 4 { … }` is reported
//! once. `instantiate` then walks the templates with the inferred shape,
//! expanding repeats, naming every layer and checking shapes.

use std::collections::{HashMap, HashSet};

use crate::language::ast::{self, Span, Stmt, ValueKind};
use crate::language::check::Ctx;
use crate::language::check::annotations::{self, Attached, LayerFacts};
use crate::language::check::params::{self, Call};
use crate::language::diagnostic::Problem;
use crate::language::ir::{Activation, Conv, Layer, Model, Op, Pool};
use crate::language::schema::{self, AnnotationDef, LayerDef, LayerKind};
use crate::language::shape::Shape;

/// A statement of a model body: a layer, or a line that did not parse.
pub enum Item<'a> {
    Layer(Template<'a>),
    /// Shapes after it are unknown, so nothing is guessed across it.
    Broken,
}

pub struct Template<'a> {
    ast: &'a ast::Layer,
    /// `None` for an unknown layer: shapes are unknown after it.
    def: Option<&'static LayerDef>,
    call: Option<Call>,
    count: Option<usize>,
    body: Vec<Item<'a>>,
    annotations: Vec<(&'a ast::Annotation, &'static AnnotationDef, Call)>,
}

/// What checking the model section established: the input shape (with the
/// span of its line) even when later layers have errors, and the whole model
/// when it has none.
pub struct ModelCheck {
    pub input: Option<(Shape, Span)>,
    pub model: Option<Model>,
}

/// Checks a `model NAME { … }` section.
pub fn check_model(ctx: &mut Ctx, section: &ast::Section, block: &ast::Block) -> ModelCheck {
    let name = section.name.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| "model".to_string());
    let (input, input_span) = input_shape(ctx, section, block, section.name.as_ref().map(|n| n.name.as_str()));
    if !block.stmts.iter().any(|s| matches!(s, Stmt::Layer(_) | Stmt::Error { .. })) {
        ctx.problems.push(Problem::BadStructure {
            span: section.name.as_ref().map(|n| n.span).unwrap_or(section.keyword.span),
            reason: "this model has no layers".into(),
            help: Some("add layers after the input shape, one per line: `conv(out=8, k=9)`".into()),
        });
    }
    let templates = templates(ctx, &block.stmts);
    let mut builder = Builder { ctx, checked: HashSet::new(), expanded: 0, made: 0 };
    let mut layers = Vec::new();
    let output = builder.instantiate(&templates, input.clone(), "", Inherit::default(), &mut layers);
    let model = match (&input, output) {
        (Some(input), Some(output)) => Some(Model { name, input: input.clone(), output, layers }),
        _ => None,
    };
    ModelCheck { input: input.map(|i| (i, input_span)), model }
}

fn input_shape(ctx: &mut Ctx, section: &ast::Section, block: &ast::Block, model: Option<&str>) -> (Option<Shape>, Span) {
    let mut found: Option<(Option<Shape>, Span)> = None;
    let mut seen_layer = false;
    for stmt in &block.stmts {
        let dims_and_span = match stmt {
            Stmt::Input { dims, span } => Some((dims.clone(), *span)),
            // `input = [1, 64]` reads as a setting; take it all the same.
            Stmt::Setting(s) if s.key.name == "input" => match &s.value.kind {
                ValueKind::List(items) => Some((items.clone(), s.span)),
                _ => {
                    ctx.problems.push(Problem::BadInput {
                        span: s.value.span,
                        first: None,
                        reason: format!("expected a list of sizes, found {}", s.value.kind.describe()),
                        help: Some("write `input [channels, length]`".into()),
                    });
                    found.get_or_insert((None, s.span));
                    None
                }
            },
            Stmt::Layer(_) => {
                seen_layer = true;
                None
            }
            Stmt::Setting(_) | Stmt::Error { .. } | Stmt::Named(_) => None,
        };
        let Some((dims, span)) = dims_and_span else { continue };
        if let Some((_, first)) = &found {
            ctx.problems.push(Problem::BadInput {
                span,
                first: Some(*first),
                reason: "the input shape is given twice".into(),
                help: Some("keep one of them".into()),
            });
            continue;
        }
        if seen_layer {
            ctx.problems.push(Problem::BadInput {
                span,
                first: None,
                reason: "the input shape must come before the layers".into(),
                help: Some("move this line to the top of the model".into()),
            });
        }
        found = Some((shape_of_dims(ctx, &dims, span), span));
    }
    match found {
        Some(found) => found,
        None => {
            let span = section.name.as_ref().map(|n| n.span).unwrap_or(section.keyword.span);
            // A line that did not parse may have been the input: do not pile on.
            if !block.stmts.iter().any(|s| matches!(s, Stmt::Error { .. })) {
                ctx.problems.push(Problem::MissingInput { span, model: model.map(str::to_string) });
            }
            (None, span)
        }
    }
}

/// The sizes written on the `input` line (at `span`) as a shape, or `None`
/// after reporting what is wrong with them.
fn shape_of_dims(ctx: &mut Ctx, dims: &[ast::Value], span: Span) -> Option<Shape> {
    let mut shape = Vec::new();
    let mut ok = true;
    for d in dims {
        match d.kind {
            ValueKind::Number { value, integer: true, .. } if (1.0..1e12).contains(&value) => shape.push(value as usize),
            // Reported where it was read (E0071).
            _ if d.overflows() => ok = false,
            _ => {
                ok = false;
                ctx.problems.push(Problem::BadInput {
                    span: d.span,
                    first: None,
                    reason: format!("each size must be a positive integer, found {}", d.kind.describe()),
                    help: None,
                });
            }
        }
    }
    if ok && !(1..=3).contains(&shape.len()) {
        ok = false;
        ctx.problems.push(Problem::BadInput {
            span,
            first: None,
            reason: format!("rank {} is not supported", shape.len()),
            help: Some(
                "give the shape of one example without the batch axis: `[features]`, `[channels, length]` or `[channels, height, width]`"
                    .into(),
            ),
        });
    }
    ok.then_some(Shape(shape))
}

fn templates<'a>(ctx: &mut Ctx, stmts: &'a [Stmt]) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    for stmt in stmts {
        let layer = match stmt {
            Stmt::Layer(layer) => layer,
            Stmt::Error { .. } => {
                out.push(Item::Broken);
                continue;
            }
            Stmt::Named(n) => {
                ctx.problems.push(Problem::MisplacedStatement {
                    span: n.span,
                    what: format!("a `{}` block", n.kind.name),
                    section: "model".into(),
                    help: "`phase NAME { … }` blocks go in the train section".into(),
                });
                continue;
            }
            Stmt::Setting(s) if s.key.name != "input" => {
                ctx.problems.push(Problem::MisplacedStatement {
                    span: s.span,
                    what: format!("the setting `{}`", s.key.name),
                    section: "model".into(),
                    help: "a model holds its input shape and layers; training settings go in `train { … }`, data in `data { … }`".into(),
                });
                continue;
            }
            // The input (read before) and `input = [...]` written as a setting.
            Stmt::Input { .. } | Stmt::Setting(_) => continue,
        };
        out.push(Item::Layer(template(ctx, layer)));
    }
    out
}

fn template<'a>(ctx: &mut Ctx, layer: &'a ast::Layer) -> Template<'a> {
    let name = &layer.name.name;
    let def = schema::layer(name);
    let mut t = Template { ast: layer, def, call: None, count: None, body: Vec::new(), annotations: Vec::new() };
    let Some(def) = def else {
        ctx.problems.push(Problem::UnknownLayer { span: layer.name.span, name: name.clone(), known: schema::layer_names() });
        if let Some(body) = &layer.body {
            t.body = templates(ctx, &body.stmts);
        }
        return t;
    };
    t.call = Some(params::resolve(&def.schema, layer.args.as_ref(), layer.name.span, name, &mut ctx.problems));

    // Structure: `repeat N { … }` needs both, `residual { … }` a body, others neither.
    match def.kind {
        LayerKind::Repeat => t.count = check_repeat(ctx, layer),
        LayerKind::Residual => check_residual(ctx, layer),
        LayerKind::Conv
        | LayerKind::Linear
        | LayerKind::Activation
        | LayerKind::MaxPool
        | LayerKind::AvgPool
        | LayerKind::GlobalAvgPool
        | LayerKind::GlobalMaxPool
        | LayerKind::BatchNorm
        | LayerKind::Dropout
        | LayerKind::Flatten => check_no_structure(ctx, layer, name),
    }
    if let Some(body) = &layer.body {
        t.body = templates(ctx, &body.stmts);
    }
    t.annotations = resolve_annotations(ctx, layer);
    t
}

/// The annotations written on a layer with their parameters; unknown ones are reported.
fn resolve_annotations<'a>(ctx: &mut Ctx, layer: &'a ast::Layer) -> Vec<(&'a ast::Annotation, &'static AnnotationDef, Call)> {
    let mut resolved = Vec::new();
    for annotation in &layer.annotations {
        match schema::annotation(&annotation.name.name) {
            Some(adef) => {
                let owner = format!("@{}", adef.schema.name);
                let call = params::resolve(&adef.schema, annotation.args.as_ref(), annotation.span, &owner, &mut ctx.problems);
                resolved.push((annotation, adef, call));
            }
            None => ctx.problems.push(Problem::UnknownAnnotation {
                span: annotation.name.span,
                name: annotation.name.name.clone(),
                known: schema::annotation_names(),
            }),
        }
    }
    resolved
}

/// `repeat N { … }`: its count (when valid) and its body must both be there.
fn check_repeat(ctx: &mut Ctx, layer: &ast::Layer) -> Option<usize> {
    let mut copies = None;
    match &layer.count {
        Some(count) => match count.kind {
            ValueKind::Number { value, integer: true, .. } if (1.0..=MAX_REPEAT as f64).contains(&value) => copies = Some(value as usize),
            // Reported where it was read (E0071).
            _ if count.overflows() => {}
            _ => ctx.problems.push(Problem::BadStructure {
                span: count.span,
                reason: format!(
                    "`repeat {}`: the count must be an integer between 1 and {MAX_REPEAT}",
                    count.kind.describe().trim_matches('`')
                ),
                help: None,
            }),
        },
        None => ctx.problems.push(Problem::BadStructure {
            span: layer.name.span,
            reason: "`repeat` needs a count: how many copies of its body to stack".into(),
            help: Some("write `repeat 3 { … }`".into()),
        }),
    }
    if layer.body.is_none() {
        ctx.problems.push(Problem::BadStructure {
            span: layer.name.span,
            reason: "`repeat` needs a body in `{ … }`".into(),
            help: Some("write `repeat 3 { … }` with the layers to repeat inside, one per line".into()),
        });
    }
    copies
}

/// `residual { … }` takes a body and no count.
fn check_residual(ctx: &mut Ctx, layer: &ast::Layer) {
    if let Some(count) = &layer.count {
        ctx.problems.push(Problem::BadStructure {
            span: count.span,
            reason: "`residual` takes no count".into(),
            help: Some("to stack several residual blocks, wrap it: `repeat 3 { residual { … } }`".into()),
        });
    }
    if layer.body.is_none() {
        ctx.problems.push(Problem::BadStructure {
            span: layer.name.span,
            reason: "`residual` needs a body in `{ … }`".into(),
            help: Some("write `residual { conv(k=3) }`".into()),
        });
    }
}

/// A layer that is not a structure takes neither a body nor a count.
fn check_no_structure(ctx: &mut Ctx, layer: &ast::Layer, name: &str) {
    if let Some(body) = &layer.body {
        ctx.problems.push(Problem::BadStructure {
            span: body.span,
            reason: format!("`{name}` is a layer, not a structure: it takes no `{{ … }}` body"),
            help: Some("only `repeat N { … }` and `residual { … }` have bodies".into()),
        });
    }
    if let Some(count) = &layer.count {
        ctx.problems.push(Problem::BadStructure {
            span: count.span,
            reason: format!("`{name}` takes no count"),
            help: Some("only `repeat N { … }` takes a count".into()),
        });
    }
}

/// Largest `repeat` count, and largest number of layers a model may expand to:
/// beyond these a file is a mistake, and expanding it would take minutes.
const MAX_REPEAT: usize = 10_000;
const MAX_LAYERS: usize = 100_000;

/// `@freeze` and `@lr` written on a structure apply to every layer inside.
#[derive(Clone, Copy, Default)]
struct Inherit {
    /// The structure's `@freeze`.
    frozen_by: Option<Span>,
    lr_scale: Option<f64>,
}

struct Builder<'c, 'env> {
    ctx: &'c mut Ctx<'env>,
    /// Templates whose annotations were already checked (repeats visit them again).
    checked: HashSet<usize>,
    /// Layers made so far, against MAX_LAYERS.
    expanded: usize,
    /// Layers given a shape so far (0: the next one sees the model's input).
    made: usize,
}

impl Builder<'_, '_> {
    fn instantiate(
        &mut self,
        items: &[Item],
        mut shape: Option<Shape>,
        prefix: &str,
        inherit: Inherit,
        out: &mut Vec<Layer>,
    ) -> Option<Shape> {
        let mut counters: HashMap<&str, usize> = HashMap::new();
        for item in items {
            let t = match item {
                Item::Layer(t) => t,
                Item::Broken => {
                    shape = None;
                    continue;
                }
            };
            let Some(def) = t.def else {
                // Unknown layer: still look inside its body for more mistakes.
                let mut ignored = Vec::new();
                self.instantiate(&t.body, None, prefix, inherit, &mut ignored);
                shape = None;
                continue;
            };
            if self.past_layer_limit(t) {
                return None;
            }
            let counter = counters.entry(def.schema.name).or_insert(0);
            *counter += 1;
            let name = format!("{prefix}{}{}", def.schema.name, counter);
            match def.kind {
                LayerKind::Repeat => {
                    let inherit = self.structure_annotations(t, &name, inherit);
                    for i in 1..=t.count.unwrap_or(1) {
                        // Past the limit, stop: nested repeats would otherwise
                        // still make an exponential number of (empty) visits.
                        if self.expanded > MAX_LAYERS {
                            return None;
                        }
                        shape = self.instantiate(&t.body, shape, &format!("{name}.{i}."), inherit, out);
                    }
                }
                LayerKind::Residual => shape = self.instantiate_residual(t, name, shape, inherit, out),
                LayerKind::Conv
                | LayerKind::Linear
                | LayerKind::Activation
                | LayerKind::MaxPool
                | LayerKind::AvgPool
                | LayerKind::GlobalAvgPool
                | LayerKind::GlobalMaxPool
                | LayerKind::BatchNorm
                | LayerKind::Dropout
                | LayerKind::Flatten => shape = self.instantiate_layer(t, def, name, shape, inherit, out),
            }
        }
        shape
    }

    /// Counts one more layer; past MAX_LAYERS reports it (once) and says to stop.
    fn past_layer_limit(&mut self, t: &Template) -> bool {
        self.expanded += 1;
        if self.expanded > MAX_LAYERS {
            if self.expanded == MAX_LAYERS + 1 {
                self.ctx.problems.push(Problem::BadStructure {
                    span: t.ast.name.span,
                    reason: format!("the model expands to more than {MAX_LAYERS} layers"),
                    help: Some("lower the `repeat` counts".into()),
                });
            }
            return true;
        }
        false
    }

    /// A `residual { … }` block, whose body must give back its input's shape;
    /// returns the shape after it.
    fn instantiate_residual(
        &mut self,
        t: &Template,
        name: String,
        shape: Option<Shape>,
        inherit: Inherit,
        out: &mut Vec<Layer>,
    ) -> Option<Shape> {
        let inherit = self.structure_annotations(t, &name, inherit);
        let mut body = Vec::new();
        let result = self.instantiate(&t.body, shape.clone(), &format!("{name}."), inherit, &mut body);
        match (shape, result) {
            (Some(input), Some(output)) if input == output => {
                out.push(Layer {
                    name,
                    op: Op::Residual { body },
                    input: input.clone(),
                    output: input.clone(),
                    parameters: 0,
                    constraints: vec![],
                    frozen: false,
                    lr_scale: 1.0,
                    init: None,
                    span: t.ast.name.span,
                });
                Some(input)
            }
            (Some(input), Some(output)) => {
                self.ctx.problems.push(Problem::ResidualMismatch { span: t.ast.name.span, layer: name, input, output });
                None
            }
            _ => None,
        }
    }

    /// One layer (not a structure): its operation, its annotations, and the
    /// shape after it (`None` once unknown).
    fn instantiate_layer(
        &mut self,
        t: &Template,
        def: &LayerDef,
        name: String,
        shape: Option<Shape>,
        inherit: Inherit,
        out: &mut Vec<Layer>,
    ) -> Option<Shape> {
        let call = t.call.as_ref().expect("known layers have a call");
        let built = shape.as_ref().and_then(|input| self.layer_op(def, call, input, &name, t.ast.name.span));
        self.made += 1;
        let facts = layer_facts(def, call, name.clone(), t.ast.name.span, built.as_ref().map(|(op, _, _)| op), inherit);
        // A repeat visits a template again: report its annotations once.
        let first_visit = self.checked.insert(t.ast.span.start);
        let saved = (!first_visit).then(|| std::mem::take(&mut self.ctx.problems));
        let attached = annotations::check(self.ctx, &facts, &t.annotations);
        if let Some(saved) = saved {
            self.ctx.problems = saved;
        }
        let (op, output, parameters) = built?;
        out.push(layer_with(name, op, shape.unwrap(), output.clone(), parameters, attached, inherit, t.ast.name.span));
        Some(output)
    }

    /// `@freeze` / `@lr` on a structure pass down to its layers; nothing else fits there.
    fn structure_annotations(&mut self, t: &Template, name: &str, mut inherit: Inherit) -> Inherit {
        let first_visit = self.checked.insert(t.ast.span.start);
        for (annotation, adef, call) in &t.annotations {
            match adef.role {
                schema::AnnotationRole::Freeze => inherit.frozen_by = Some(annotation.span),
                schema::AnnotationRole::LearningRate => inherit.lr_scale = call.f64("scale").or(inherit.lr_scale),
                schema::AnnotationRole::Constraint { .. } | schema::AnnotationRole::Init if first_visit => {
                    self.ctx.problems.push(Problem::NotApplicable {
                        span: annotation.span,
                        layer_span: t.ast.name.span,
                        annotation: adef.schema.name.into(),
                        layer: name.into(),
                        reason: "a structure has no weights of its own".into(),
                        help: Some("put it on the layers inside; only `@freeze` and `@lr` can be given to a whole structure".into()),
                    })
                }
                // Reported on the first visit of a repeated structure.
                schema::AnnotationRole::Constraint { .. } | schema::AnnotationRole::Init => {}
            }
        }
        inherit
    }

    /// The operation, output shape and parameter count of a layer on `input`,
    /// or `None` after reporting why it does not fit.
    fn layer_op(&mut self, def: &LayerDef, call: &Call, input: &Shape, name: &str, span: Span) -> Option<(Op, Shape, usize)> {
        let site = Site { name, span, input, at_model_input: self.made == 0 };
        let problems = &mut self.ctx.problems;
        match def.kind {
            LayerKind::Conv => conv_op(problems, call, &site),
            LayerKind::Linear => linear_op(problems, call, &site),
            LayerKind::Activation => Some((Op::Activation(activation(def, call)), input.clone(), 0)),
            LayerKind::MaxPool | LayerKind::AvgPool => pool_op(problems, def, call, &site),
            LayerKind::GlobalAvgPool | LayerKind::GlobalMaxPool => {
                site.require_spatial(problems, def.schema.name)?;
                let op = if def.kind == LayerKind::GlobalAvgPool { Op::GlobalAvgPool } else { Op::GlobalMaxPool };
                Some((op, Shape(vec![input.channels()]), 0))
            }
            LayerKind::BatchNorm => {
                let channels = input.channels();
                Some((
                    Op::BatchNorm { channels, momentum: call.f64("momentum").unwrap_or(0.1), eps: call.f64("eps").unwrap_or(1e-5) },
                    input.clone(),
                    2 * channels,
                ))
            }
            LayerKind::Dropout => Some((Op::Dropout { p: call.f64("p").unwrap_or(0.5) }, input.clone(), 0)),
            LayerKind::Flatten => Some((Op::Flatten, Shape(vec![input.numel()]), 0)),
            LayerKind::Repeat | LayerKind::Residual => unreachable!("structures are expanded by instantiate"),
        }
    }
}

/// Where a layer is being built: what its operation needs to word a problem.
struct Site<'a> {
    name: &'a str,
    span: Span,
    input: &'a Shape,
    /// The first layer gets a hint about the `input` line instead of the layers before it.
    at_model_input: bool,
}

impl Site<'_> {
    /// Reports (as `what`) an input that is not `[channels, length]` or `[channels, height, width]`.
    fn require_spatial(&self, problems: &mut Vec<Problem>, what: &str) -> Option<()> {
        let rank = self.input.rank();
        if rank == 2 || rank == 3 {
            return Some(());
        }
        let help = match (rank, self.at_model_input) {
            (1, true) => Some(format!("`{what}` needs a channel axis: for a 1-channel signal write `input [1, {}]`", self.input.0[0])),
            (1, false) => Some(format!("`{what}` needs a channel axis: move `flatten` / `global_avgpool` after the last `{what}`")),
            _ => None,
        };
        problems.push(Problem::BadRank {
            span: self.span,
            layer: self.name.into(),
            found: self.input.clone(),
            expected: "a `[channels, length]` or `[channels, height, width]` input".into(),
            help,
        });
        None
    }
}

fn conv_op(problems: &mut Vec<Problem>, call: &Call, site: &Site) -> Option<(Op, Shape, usize)> {
    let (name, input) = (site.name, site.input);
    site.require_spatial(problems, "conv")?;
    let axes = input.rank() - 1;
    let kernel = per_axis(problems, call, "k", axes, name)?;
    let stride = per_axis(problems, call, "stride", axes, name)?;
    let dilation = per_axis(problems, call, "dilation", axes, name)?;
    let in_channels = input.channels();
    let out_channels = call.int("out").map(|o| o as usize).unwrap_or(in_channels);
    let groups = call.int("groups").unwrap_or(1) as usize;
    let padding = conv_padding(problems, call, axes, name, &kernel, &dilation)?;
    if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        problems.push(Problem::BadGroups { span: call.span_of("groups"), layer: name.into(), groups, in_channels, out_channels });
        return None;
    }
    let mut out = vec![out_channels];
    for a in 0..axes {
        // Saturating: absurd sizes are refused as too large, never wrap.
        let window = dilation[a].saturating_mul(kernel[a].saturating_sub(1)).saturating_add(1);
        match lpn_kernels::out_len(input.0[a + 1], padding[a], kernel[a], stride[a], dilation[a]) {
            Some(len) => out.push(len),
            None => {
                problems.push(too_long(name, site.span, kernel[a], dilation[a], window, input, padding[a], a, false));
                return None;
            }
        }
    }
    let bias = call.bool("bias").unwrap_or(true);
    let taps = kernel.iter().fold(1usize, |n, &k| n.saturating_mul(k));
    let parameters =
        out_channels.saturating_mul(in_channels / groups.max(1)).saturating_mul(taps).saturating_add(if bias { out_channels } else { 0 });
    let conv = Conv { in_channels, out_channels, kernel, stride, padding, dilation, groups, bias };
    Some((Op::Conv(conv), Shape(out), parameters))
}

/// A conv's (before, after) padding per axis: `valid` is none, `same` (the
/// default) splits the dilated window's overhang, a number pads both sides.
fn conv_padding(
    problems: &mut Vec<Problem>,
    call: &Call,
    axes: usize,
    name: &str,
    kernel: &[usize],
    dilation: &[usize],
) -> Option<Vec<(usize, usize)>> {
    Some(match call.get("padding").map(|g| &g.val) {
        Some(params::Val::Word(w)) if w == "valid" => vec![(0, 0); axes],
        Some(params::Val::Word(_)) | None => (0..axes)
            .map(|a| {
                let total = dilation[a] * (kernel[a] - 1);
                (total / 2, total - total / 2)
            })
            .collect(),
        Some(_) => per_axis(problems, call, "padding", axes, name)?.into_iter().map(|p| (p, p)).collect(),
    })
}

fn linear_op(problems: &mut Vec<Problem>, call: &Call, site: &Site) -> Option<(Op, Shape, usize)> {
    let input = site.input;
    if input.rank() != 1 {
        problems.push(Problem::BadRank {
            span: site.span,
            layer: site.name.into(),
            found: input.clone(),
            expected: "a `[features]` input".into(),
            help: Some(format!("add `flatten` (→ [{}]) or `global_avgpool` (→ [{}]) before it", input.numel(), input.channels())),
        });
        return None;
    }
    let out_features = call.int("out")? as usize;
    let bias = call.bool("bias").unwrap_or(true);
    let parameters = input.0[0].saturating_mul(out_features).saturating_add(if bias { out_features } else { 0 });
    Some((Op::Linear { in_features: input.0[0], out_features, bias }, Shape(vec![out_features]), parameters))
}

fn activation(def: &LayerDef, call: &Call) -> Activation {
    match def.schema.name {
        "relu" => Activation::Relu,
        "gelu" => Activation::Gelu,
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "silu" => Activation::Silu,
        "leaky_relu" => Activation::LeakyRelu(call.f64("slope").unwrap_or(0.01)),
        other => unreachable!("activation {other} missing from the lowering table"),
    }
}

/// `maxpool` / `avgpool`: the stride defaults to the window.
fn pool_op(problems: &mut Vec<Problem>, def: &LayerDef, call: &Call, site: &Site) -> Option<(Op, Shape, usize)> {
    let (name, input) = (site.name, site.input);
    site.require_spatial(problems, def.schema.name)?;
    let axes = input.rank() - 1;
    let kernel = per_axis(problems, call, "k", axes, name)?;
    let stride = if call.given("stride") { per_axis(problems, call, "stride", axes, name)? } else { kernel.clone() };
    let padding = per_axis(problems, call, "padding", axes, name)?;
    let mut out = vec![input.channels()];
    for a in 0..axes {
        if 2 * padding[a] > kernel[a] {
            problems.push(Problem::OutOfRange {
                span: call.span_of("padding"),
                param: "padding".into(),
                owner: def.schema.name.into(),
                value: padding[a].to_string(),
                allowed: format!("at most half the window ({})", kernel[a] / 2),
                help: Some("a window could then hold nothing but padding".into()),
            });
            return None;
        }
        match lpn_kernels::out_len(input.0[a + 1], (padding[a], padding[a]), kernel[a], stride[a], 1) {
            Some(len) => out.push(len),
            None => {
                problems.push(too_long(name, site.span, kernel[a], 1, kernel[a], input, (padding[a], padding[a]), a, true));
                return None;
            }
        }
    }
    let pool = Pool { kernel, stride, padding };
    let op = if def.kind == LayerKind::MaxPool { Op::MaxPool(pool) } else { Op::AvgPool(pool) };
    Some((op, Shape(out), 0))
}

/// A window longer than its padded input, along axis `axis` of a 1-D or 2-D layer.
#[allow(clippy::too_many_arguments)]
fn too_long(
    name: &str,
    span: Span,
    k: usize,
    dilation: usize,
    window: usize,
    input: &Shape,
    padding: (usize, usize),
    axis: usize,
    pool: bool,
) -> Problem {
    let along = match (input.rank(), axis) {
        (3, 0) => " in height",
        (3, _) => " in width",
        _ => "",
    };
    let unit = if input.rank() == 3 { "pixels" } else { "samples" };
    let what = if dilation > 1 {
        format!("{window} {unit}{along} (k={k}, dilation={dilation})")
    } else {
        format!("{window} {unit}{along} (k={k})")
    };
    let pad = if padding == (0, 0) { "no padding".to_string() } else { format!("padding {} + {}", padding.0, padding.1) };
    let help = if pool {
        "use a smaller window, or remove a downsampling step before it".to_string()
    } else {
        "use a smaller kernel, pad the input (`padding=same`), or remove a downsampling step before it".to_string()
    };
    Problem::KernelTooLong { span, layer: name.into(), window: what, input: format!("{input} ({pad})"), help }
}

/// An int-or-pair parameter as one value per spatial axis; a pair on a 1-D layer
/// is reported.
fn per_axis(problems: &mut Vec<Problem>, call: &Call, param: &str, axes: usize, layer: &str) -> Option<Vec<usize>> {
    let values = call.axes(param)?;
    match (values.len(), axes) {
        (1, _) => Some(vec![values[0] as usize; axes]),
        (2, 2) => Some(values.iter().map(|&v| v as usize).collect()),
        _ => {
            problems.push(Problem::TwoDOption { span: call.span_of(param), param: param.into(), layer: layer.into() });
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn layer_with(
    name: String,
    op: Op,
    input: Shape,
    output: Shape,
    parameters: usize,
    attached: Attached,
    inherit: Inherit,
    span: Span,
) -> Layer {
    Layer {
        name,
        op,
        input,
        output,
        parameters,
        constraints: attached.constraints,
        frozen: attached.frozen || inherit.frozen_by.is_some(),
        lr_scale: attached.lr_scale.or(inherit.lr_scale).unwrap_or(1.0),
        init: attached.init,
        span,
    }
}

/// What the annotation checks need to know about a layer; `built` is its
/// operation when the input shape is known.
fn layer_facts(def: &LayerDef, call: &Call, name: String, span: Span, built: Option<&Op>, inherit: Inherit) -> LayerFacts {
    let kernel = if let Some(Op::Conv(c)) = built {
        Some(c.kernel.clone())
    } else if built.is_none() && def.kind == LayerKind::Conv {
        // Shape unknown: take the kernel as written.
        call.axes("k").map(|k| k.iter().map(|&x| x.max(1) as usize).collect())
    } else {
        None
    };
    LayerFacts {
        kind: def.kind,
        layer: def.schema.name,
        name,
        span,
        weights: def.weights,
        bias: def.weights && call.bool("bias").unwrap_or(true),
        kernel,
        dilated: call.axes("dilation").is_some_and(|d| d.iter().any(|&x| x > 1)),
        frozen_by: inherit.frozen_by,
        units: built.and_then(units_of),
        weight_shape: built.and_then(|op| op.weight_shape()),
    }
}

/// A layer's weight as the norm constraints see it: output units and weights
/// per unit (in/groups·taps for a conv, in features for a linear).
pub fn units_of(op: &Op) -> Option<crate::language::check::feasible_set::Units> {
    use crate::language::check::feasible_set::Units;
    match op {
        Op::Conv(c) => Some(Units { count: c.out_channels, width: c.in_channels / c.groups.max(1) * c.kernel.iter().product::<usize>() }),
        Op::Linear { in_features, out_features, .. } => Some(Units { count: *out_features, width: *in_features }),
        Op::Activation(_)
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::GlobalAvgPool
        | Op::GlobalMaxPool
        | Op::BatchNorm { .. }
        | Op::Dropout { .. }
        | Op::Flatten
        | Op::Residual { .. } => None,
    }
}
