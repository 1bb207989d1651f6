//! The syntax tree of a `.lpn` file, as written, with a byte span on every node.
//!
//! Nothing here knows which layers or constraints exist: names are plain
//! identifiers, and the checker (`crate::language::check`) gives them meaning.

use serde::Serialize;

/// A half-open byte range `[start, end)` into the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub sections: Vec<Section>,
}

/// `model NAME { … }`, `data { … }`, `train { … }` or the one-line `data SOURCE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    pub keyword: Ident,
    pub name: Option<Ident>,
    pub body: SectionBody,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SectionBody {
    Block(Block),
    Inline(Value),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `input [1, 1024]`
    Input { dims: Vec<Value>, span: Span },
    /// `epochs = 20`
    Setting(Setting),
    /// A layer, or a structure with a body (`repeat 3 { … }`, `residual { … }`).
    Layer(Layer),
    /// `phase warmup { … }`: a named block of a train section.
    Named(NamedBlock),
    /// A line that did not parse (already reported); later phases know
    /// something stood here, so they do not guess shapes across it.
    Error { span: Span },
}

#[derive(Clone, Debug, PartialEq)]
pub struct NamedBlock {
    pub kind: Ident,
    pub name: Ident,
    pub block: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    pub key: Ident,
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: Ident,
    /// The `3` of `repeat 3 { … }`.
    pub count: Option<Value>,
    pub args: Option<Args>,
    pub annotations: Vec<Annotation>,
    pub body: Option<Block>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Annotation {
    pub name: Ident,
    pub args: Option<Args>,
    /// From `@` to the closing parenthesis.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub items: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub key: Option<Ident>,
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    /// A number; `integer` when written without `.` or an exponent.
    Number {
        value: f64,
        integer: bool,
        text: String,
    },
    Str(String),
    Ident(String),
    List(Vec<Value>),
    Call {
        name: Ident,
        args: Args,
    },
    /// `warmup(steps=500) then cosine(min_lr=1e-5)`: two or more values of a
    /// setting joined by `then`.
    Chain(Vec<Value>),
}

impl Value {
    /// A number literal too large for f64 (`1e400`): it reads as ±∞, and
    /// `syntax::parse` reports it (E0071), so checks of ranges pass over it.
    pub fn overflows(&self) -> bool {
        matches!(self.kind, ValueKind::Number { value, .. } if value.is_infinite())
    }
}

impl ValueKind {
    /// How the value reads in a message: "a number", "a list", …
    pub fn describe(&self) -> String {
        match self {
            ValueKind::Number { text, .. } => format!("`{text}`"),
            ValueKind::Str(s) => format!("the string \"{s}\""),
            ValueKind::Ident(name) => format!("the name `{name}`"),
            ValueKind::List(_) => "a list".into(),
            ValueKind::Call { name, .. } => format!("a call to `{}`", name.name),
            ValueKind::Chain(_) => "a chain `… then …`".into(),
        }
    }
}
