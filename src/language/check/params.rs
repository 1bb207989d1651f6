//! Arguments → typed values, against a schema from `crate::language::schema`.
//!
//! One resolver serves layers, annotations, data sources, optimizers, losses and
//! the settings of `data { … }` and `train { … }`, so every parameter anywhere
//! gets the same checks: unknown names (with suggestions), duplicates, types,
//! ranges, required parameters and defaults.

use crate::language::ast::{Arg, Args, Span, Value, ValueKind};
use crate::language::diagnostic::{Problem, fmt_num};
use crate::language::schema::{self, DefaultValue, Param, ParamType, Schema, Table};

#[derive(Clone, Debug)]
pub enum Val {
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A name from a fixed set (`same`, `penalty`, `kaiming`).
    Word(String),
    Str(String),
    Pair([i64; 2]),
    /// An entry of another table: `adam(lr=1e-3)`.
    Entry(Box<Call>),
    /// Entries joined by `then`, of a table that chains (`Table::chains`).
    Chain(Vec<Call>),
}

#[derive(Clone, Debug)]
pub struct Given {
    pub val: Val,
    /// Where it was written; `None` for a default.
    pub span: Option<Span>,
}

/// A schema applied to its arguments.
#[derive(Clone, Debug)]
pub struct Call {
    pub schema: &'static Schema,
    pub span: Span,
    pub values: Vec<(&'static str, Given)>,
    /// Parameters that were written but rejected (so nothing else complains of them).
    pub rejected: Vec<&'static str>,
}

impl Call {
    pub fn get(&self, name: &str) -> Option<&Given> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, g)| g)
    }
    pub fn given(&self, name: &str) -> bool {
        self.get(name).is_some_and(|g| g.span.is_some()) || self.rejected.contains(&name)
    }
    pub fn span_of(&self, name: &str) -> Span {
        self.get(name).and_then(|g| g.span).unwrap_or(self.span)
    }
    pub fn f64(&self, name: &str) -> Option<f64> {
        match self.get(name)?.val {
            Val::Float(x) => Some(x),
            Val::Int(i) => Some(i as f64),
            _ => None,
        }
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)?.val {
            Val::Int(i) => Some(i),
            _ => None,
        }
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)?.val {
            Val::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn word(&self, name: &str) -> Option<&str> {
        match &self.get(name)?.val {
            Val::Word(w) => Some(w),
            _ => None,
        }
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        match &self.get(name)?.val {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }
    /// An entry or a chain of entries, as a list of one or more.
    pub fn entries(&self, name: &str) -> Option<Vec<&Call>> {
        match &self.get(name)?.val {
            Val::Entry(call) => Some(vec![call]),
            Val::Chain(calls) => Some(calls.iter().collect()),
            _ => None,
        }
    }
    pub fn entry(&self, name: &str) -> Option<&Call> {
        match &self.get(name)?.val {
            Val::Entry(call) => Some(call),
            _ => None,
        }
    }
    /// An int-or-pair parameter as one value per axis.
    pub fn axes(&self, name: &str) -> Option<Vec<i64>> {
        match self.get(name)?.val {
            Val::Int(i) => Some(vec![i]),
            Val::Pair(p) => Some(p.to_vec()),
            _ => None,
        }
    }
}

/// Resolves `args` against `schema`. `owner` is how the thing reads in messages
/// (`conv`, `@lowpass`, `train`).
pub fn resolve(schema: &'static Schema, args: Option<&Args>, span: Span, owner: &str, problems: &mut Vec<Problem>) -> Call {
    let items: &[Arg] = args.map(|a| a.items.as_slice()).unwrap_or(&[]);
    resolve_items(schema, items, span, owner, problems)
}

pub fn resolve_items(schema: &'static Schema, items: &[Arg], span: Span, owner: &str, problems: &mut Vec<Problem>) -> Call {
    let mut call = Call { schema, span, values: Vec::new(), rejected: Vec::new() };
    let mut reader = ArgReader {
        schema,
        owner,
        positionals: schema.params.iter().filter(|p| p.positional).collect(),
        next_positional: 0,
        keyword_seen: false,
        misplaced: false,
        meant: Vec::new(),
        seen: Vec::new(),
    };
    for arg in items {
        let Some(param) = reader.param_of(arg, problems) else { continue };
        if let Some((_, first)) = reader.seen.iter().find(|(n, _)| *n == param.name) {
            problems.push(Problem::DuplicateParameter { span: arg.span, first: *first, name: param.name.to_string() });
            continue;
        }
        reader.seen.push((param.name, arg.span));
        match convert(param, &arg.value, owner, problems) {
            Some(val) => call.values.push((param.name, Given { val, span: Some(arg.value.span) })),
            None => call.rejected.push(param.name),
        }
    }
    reader.fill_defaults(&mut call, problems);
    call
}

/// Matches the arguments of one call to parameters, left to right.
struct ArgReader<'o> {
    schema: &'static Schema,
    owner: &'o str,
    positionals: Vec<&'static Param>,
    next_positional: usize,
    keyword_seen: bool,
    /// After a misplaced argument we cannot tell which parameter it meant, so
    /// "missing parameter" would only repeat the same mistake.
    misplaced: bool,
    /// Parameters that an unknown name probably meant (`kernel_size` → `k`).
    meant: Vec<&'static str>,
    /// Parameters given so far, with the span of their argument.
    seen: Vec<(&'static str, Span)>,
}

impl ArgReader<'_> {
    /// The parameter `arg` gives a value to, or `None` after reporting why it gives none.
    fn param_of(&mut self, arg: &Arg, problems: &mut Vec<Problem>) -> Option<&'static Param> {
        let (schema, owner) = (self.schema, self.owner);
        if let Some(key) = &arg.key {
            self.keyword_seen = true;
            let param = schema.param(&key.name);
            if param.is_none() {
                self.meant.extend(crate::language::suggest::closest(&key.name, &schema.param_names()));
                problems.push(Problem::UnknownParameter {
                    span: key.span,
                    name: key.name.clone(),
                    owner: owner.to_string(),
                    known: schema.param_names(),
                });
            }
            return param;
        }
        if self.misplaced {
            return None;
        }
        if self.keyword_seen {
            self.misplaced = true;
            problems.push(Problem::MisplacedArgument {
                span: arg.span,
                reason: format!("a value without a name after named arguments in `{owner}`"),
                help: Some("put unnamed arguments first, or name this one: `name=value`".into()),
            });
            return None;
        }
        let Some(&param) = self.positionals.get(self.next_positional) else {
            self.too_many_positionals(arg, problems);
            return None;
        };
        self.next_positional += 1;
        Some(param)
    }

    fn too_many_positionals(&mut self, arg: &Arg, problems: &mut Vec<Problem>) {
        let (schema, owner) = (self.schema, self.owner);
        let help = if self.positionals.is_empty() {
            format!("`{owner}` takes only named arguments: {}", named_list(schema))
        } else {
            format!(
                "`{owner}` takes at most {} unnamed argument(s): {}",
                self.positionals.len(),
                self.positionals.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            )
        };
        self.misplaced = true;
        problems.push(Problem::MisplacedArgument {
            span: arg.span,
            reason: format!("too many unnamed arguments for `{owner}`"),
            help: Some(help),
        });
    }

    /// Gives every parameter not written its default; a required one is reported missing.
    fn fill_defaults(&self, call: &mut Call, problems: &mut Vec<Problem>) {
        let span = call.span;
        for param in self.schema.params {
            if self.seen.iter().any(|(n, _)| *n == param.name) {
                continue;
            }
            let default = match param.default {
                DefaultValue::Required if self.misplaced || self.meant.contains(&param.name) => continue,
                DefaultValue::Required => {
                    problems.push(Problem::MissingParameter {
                        span,
                        name: param.name.to_string(),
                        owner: self.owner.to_string(),
                        example: self.schema.example.to_string(),
                    });
                    continue;
                }
                DefaultValue::Absent | DefaultValue::Derived(_) => continue,
                DefaultValue::Int(i) => Val::Int(i),
                DefaultValue::Float(x) => Val::Float(x),
                DefaultValue::Bool(b) => Val::Bool(b),
                DefaultValue::Word(w) => default_word(param, w, span, problems),
            };
            call.values.push((param.name, Given { val: default, span: None }));
        }
    }
}

/// A default given as a name: an entry of a table (resolved with its own
/// defaults) or a plain word.
fn default_word(param: &Param, word: &'static str, span: Span, problems: &mut Vec<Problem>) -> Val {
    match param.ty {
        ParamType::Entry(table) => {
            let schema = schema::find(table.entries(), word).expect("default entry exists");
            Val::Entry(Box::new(resolve_items(schema, &[], span, word, problems)))
        }
        ParamType::Int { .. }
        | ParamType::Float { .. }
        | ParamType::Frequency
        | ParamType::Bool
        | ParamType::Choice { .. }
        | ParamType::Str
        | ParamType::Path
        | ParamType::IntOrPair { .. }
        | ParamType::Padding => Val::Word(word.to_string()),
    }
}

fn named_list(schema: &Schema) -> String {
    if schema.params.is_empty() { "none".into() } else { schema.param_names().join(", ") }
}

fn wrong_type(param: &Param, value: &Value, owner: &str, expected: String) -> Problem {
    Problem::WrongType { span: value.span, param: param.name.to_string(), owner: owner.to_string(), expected, found: value.kind.describe() }
}

fn out_of_range(param: &Param, value: &Value, owner: &str, shown: String) -> Problem {
    let help = match param.ty {
        ParamType::Float { .. } | ParamType::Int { .. } if param.name == "lr" || param.name == "scale" => {
            Some("a learning rate (or its scale) must be positive; to stop a layer from learning use `@freeze`".into())
        }
        _ => None,
    };
    Problem::OutOfRange {
        span: value.span,
        param: param.name.to_string(),
        owner: owner.to_string(),
        value: shown,
        allowed: param.ty.range().unwrap_or_default(),
        help,
    }
}

fn as_number(value: &Value) -> Option<(f64, bool)> {
    match value.kind {
        ValueKind::Number { value, integer, .. } => Some((value, integer)),
        _ => None,
    }
}

/// An integral number, saturated to the i64 range (the range checks then
/// report a too-large value as out of range, not as "not an integer").
fn as_int(value: &Value) -> Option<i64> {
    let (x, _) = as_number(value)?;
    (x.fract() == 0.0 || x.is_infinite()).then(|| x.clamp(-9.0e18, 9.0e18) as i64)
}

fn convert(param: &'static Param, value: &Value, owner: &str, problems: &mut Vec<Problem>) -> Option<Val> {
    if value.overflows() {
        // Reported where it was read (E0071); any range would be beside the point.
        return None;
    }
    match param.ty {
        ParamType::Int { min, max } => {
            let Some(i) = as_int(value) else {
                return fail(problems, wrong_type(param, value, owner, "an integer".into()));
            };
            if i < min || i > max {
                return fail(problems, out_of_range(param, value, owner, value.kind.describe().trim_matches('`').to_string()));
            }
            Some(Val::Int(i))
        }
        ParamType::Float { min, max, min_open, max_open } => {
            let Some((x, _)) = as_number(value) else {
                return fail(problems, wrong_type(param, value, owner, "a number".into()));
            };
            let below = if min_open { x <= min } else { x < min };
            let above = if max_open { x >= max } else { x > max };
            if below || above || x.is_nan() {
                return fail(problems, out_of_range(param, value, owner, fmt_num(x)));
            }
            Some(Val::Float(x))
        }
        ParamType::Frequency => convert_frequency(param, value, owner, problems),
        ParamType::Bool => match &value.kind {
            ValueKind::Ident(w) if w == "true" => Some(Val::Bool(true)),
            ValueKind::Ident(w) if w == "false" => Some(Val::Bool(false)),
            _ => fail(problems, wrong_type(param, value, owner, "`true` or `false`".into())),
        },
        ParamType::Choice { what, options } => match &value.kind {
            ValueKind::Ident(w) | ValueKind::Str(w) if options.contains(&w.as_str()) => Some(Val::Word(w.clone())),
            ValueKind::Ident(w) | ValueKind::Str(w) => {
                fail(problems, Problem::UnknownChoice { span: value.span, what: what.into(), name: w.clone(), known: options.to_vec() })
            }
            _ => fail(problems, wrong_type(param, value, owner, format!("one of {}", options.join(", ")))),
        },
        ParamType::Str | ParamType::Path => convert_string(param, value, owner, problems),
        ParamType::IntOrPair { min } => int_or_pair(param, value, owner, min, problems),
        ParamType::Padding => match &value.kind {
            ValueKind::Ident(w) | ValueKind::Str(w) if w == "same" || w == "valid" => Some(Val::Word(w.clone())),
            ValueKind::Ident(w) | ValueKind::Str(w) => fail(
                problems,
                Problem::UnknownChoice { span: value.span, what: "padding".into(), name: w.clone(), known: vec!["same", "valid"] },
            ),
            _ => int_or_pair(param, value, owner, 0, problems),
        },
        ParamType::Entry(table) => convert_entry(param, value, owner, table, problems),
    }
}

/// Records `problem`; the value is then rejected.
fn fail(problems: &mut Vec<Problem>, problem: Problem) -> Option<Val> {
    problems.push(problem);
    None
}

fn convert_frequency(param: &'static Param, value: &Value, owner: &str, problems: &mut Vec<Problem>) -> Option<Val> {
    let Some((x, _)) = as_number(value) else {
        return fail(problems, wrong_type(param, value, owner, "a frequency (a number)".into()));
    };
    if x <= 0.0 || !x.is_finite() {
        return fail(
            problems,
            Problem::OutOfRange {
                span: value.span,
                param: param.name.to_string(),
                owner: owner.to_string(),
                value: fmt_num(x),
                allowed: "> 0".into(),
                help: Some("frequencies are fractions of Nyquist in (0, 1), or Hz when `fs=` is given".into()),
            },
        );
    }
    Some(Val::Float(x))
}

/// A string or a file path: either must be quoted.
fn convert_string(param: &'static Param, value: &Value, owner: &str, problems: &mut Vec<Problem>) -> Option<Val> {
    match &value.kind {
        ValueKind::Str(s) => Some(Val::Str(s.clone())),
        _ => fail(
            problems,
            wrong_type(
                param,
                value,
                owner,
                if param.ty == ParamType::Path { "a file path in quotes".into() } else { "a string in quotes".into() },
            ),
        ),
    }
}

/// An entry of `table` (a data source, an optimizer, …), written as a bare name
/// or as a call with its own arguments, which are resolved against its schema.
fn convert_entry(param: &'static Param, value: &Value, owner: &str, table: Table, problems: &mut Vec<Problem>) -> Option<Val> {
    if let ValueKind::Chain(items) = &value.kind
        && table.chains()
    {
        // Every link is resolved, so each mistake in a chain is reported.
        let calls: Vec<Option<Call>> = items
            .iter()
            .map(|item| match convert_entry(param, item, owner, table, problems) {
                Some(Val::Entry(call)) => Some(*call),
                _ => None,
            })
            .collect();
        return calls.into_iter().collect::<Option<Vec<Call>>>().map(Val::Chain);
    }
    let (name, args) = match &value.kind {
        ValueKind::Ident(name) => (name.as_str(), None),
        ValueKind::Call { name, args } => (name.name.as_str(), Some(args)),
        _ => {
            return fail(problems, wrong_type(param, value, owner, format!("a {} such as `{}`", table.what(), table.entries()[0].example)));
        }
    };
    let Some(schema) = schema::find(table.entries(), name) else {
        let name_span = match &value.kind {
            ValueKind::Call { name, .. } => name.span,
            _ => value.span,
        };
        return fail(
            problems,
            Problem::UnknownChoice { span: name_span, what: table.what().into(), name: name.into(), known: schema::names(table.entries()) },
        );
    };
    Some(Val::Entry(Box::new(resolve(schema, args, value.span, schema.name, problems))))
}

/// Largest kernel, stride, dilation or padding: far beyond any real layer, and
/// small enough that shape arithmetic cannot overflow.
const MAX_SIZE: i64 = 1 << 31;

fn int_or_pair(param: &'static Param, value: &Value, owner: &str, min: i64, problems: &mut Vec<Problem>) -> Option<Val> {
    let check = |v: &Value, problems: &mut Vec<Problem>| -> Option<i64> {
        if v.overflows() {
            // Reported where it was read (E0071).
            return None;
        }
        match as_int(v) {
            None => {
                problems.push(wrong_type(param, v, owner, "an integer or a pair `[a, b]`".into()));
                None
            }
            Some(i) if i < min || i > MAX_SIZE => {
                problems.push(Problem::OutOfRange {
                    span: v.span,
                    param: param.name.into(),
                    owner: owner.into(),
                    value: v.kind.describe().trim_matches('`').to_string(),
                    allowed: if i < min { format!("≥ {min}") } else { format!("at most {MAX_SIZE}") },
                    help: None,
                });
                None
            }
            Some(i) => Some(i),
        }
    };
    match &value.kind {
        ValueKind::List(items) if items.len() == 2 => {
            let a = check(&items[0], problems);
            let b = check(&items[1], problems);
            Some(Val::Pair([a?, b?]))
        }
        ValueKind::List(_) => {
            problems.push(wrong_type(param, value, owner, "an integer or a pair `[a, b]`".into()));
            None
        }
        _ => check(value, problems).map(Val::Int),
    }
}
