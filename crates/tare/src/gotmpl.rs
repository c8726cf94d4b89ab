//! Go's `text/template`, the part of it that docker's `--format` flags use, over JSON values.
//!
//! Why not a crate: gtmpl (0.7, the Rust port) prints arrays and maps with Rust's `Debug`
//! (`[String("a")]`) where Go prints `[a]` and `map[k:v]`, and `{{.RepoTags}}` or
//! `{{.Config.Env}}` are what scripts print most. The engine is small: actions, pipelines,
//! variables, `if`/`else if`/`range`/`with`, trim markers, comments, Go's builtin functions
//! and docker's (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`).
//!
//! Values are `serde_json::Value`: an object's keys are the fields (`.Config.Env`).

use std::fmt::Write as _;

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// `$x :=` or `$i, $e :=` (range), `$x =` (assignment).
    decl: Vec<String>,
    commands: Vec<Vec<Operand>>,
}

#[derive(Debug, Clone)]
enum Operand {
    /// `.A.B` (empty for `.`), relative to dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Func(String),
    Literal(Value),
    Sub(Box<Pipeline>, Vec<String>),
}

/// What went wrong, quoting the part of the template.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

// ---- lexing -------------------------------------------------------------------------------

/// Splits the text into literal text and action bodies, applying `{{-` and `-}}`.
fn split_actions(text: &str) -> Result<Vec<(bool, String)>, Error> {
    let mut parts: Vec<(bool, String)> = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut lit = &rest[..start];
        if trim_next {
            lit = lit.trim_start();
        }
        let after = &rest[start + 2..];
        let (trim_before, body_start) = match after.strip_prefix("- ") {
            Some(_) => (true, &after[2..]),
            None => (false, after),
        };
        if trim_before {
            lit = lit.trim_end();
        }
        parts.push((false, lit.to_string()));
        let end = find_close(body_start)
            .ok_or_else(|| Error(format!("unclosed action in {:?}", truncate_for_error(text))))?;
        let mut body = &body_start[..end];
        trim_next = body.ends_with(" -");
        if trim_next {
            body = &body[..body.len() - 2];
        }
        parts.push((true, body.to_string()));
        rest = &body_start[end + 2..];
    }
    let mut lit = rest;
    if trim_next {
        lit = lit.trim_start();
    }
    parts.push((false, lit.to_string()));
    Ok(parts)
}

/// The offset of the `}}` that ends an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn truncate_for_error(s: &str) -> String {
    s.chars().take(60).collect()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Num(f64),
    Pipe,
    Open,
    Close(Vec<String>),
    Declare,
    Assign,
    Comma,
}

fn lex(body: &str) -> Result<Vec<Tok>, Error> {
    let chars: Vec<char> = body.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let fields = |chars: &[char], i: &mut usize| -> Vec<String> {
        let mut out = Vec::new();
        while *i < chars.len() && chars[*i] == '.' {
            *i += 1;
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            if *i == start {
                break;
            }
            out.push(chars[start..*i].iter().collect());
        }
        out
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                toks.push(Tok::Close(fields(&chars, &mut i)));
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '.' => {
                if chars
                    .get(i + 1)
                    .is_some_and(|c| c.is_alphabetic() || *c == '_')
                {
                    toks.push(Tok::Field(fields(&chars, &mut i)));
                } else {
                    toks.push(Tok::Field(Vec::new()));
                    i += 1;
                }
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                toks.push(Tok::Var(name, fields(&chars, &mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err(format!("unterminated quoted string in {body:?}")),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('\\') => s.push('\\'),
                                Some('"') => s.push('"'),
                                Some(c) => return err(format!("unknown escape \\{c} in {body:?}")),
                                None => {
                                    return err(format!("unterminated quoted string in {body:?}"))
                                }
                            }
                        }
                        Some(c) => s.push(*c),
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i == chars.len() {
                    return err(format!("unterminated raw string in {body:?}"));
                }
                toks.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| Error(format!("bad number {text:?}")))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return err(format!("unexpected {other:?} in action {{{{{body}}}}}")),
        }
    }
    Ok(toks)
}

// ---- parsing ------------------------------------------------------------------------------

impl Template {
    pub fn parse(text: &str) -> Result<Template, Error> {
        let parts = split_actions(text)?;
        let mut items = parts.into_iter().peekable();
        let (nodes, end) = parse_list(&mut items)?;
        if let Some(end) = end {
            return err(format!("unexpected {{{{{end}}}}}"));
        }
        Ok(Template { nodes })
    }
}

type Items = std::iter::Peekable<std::vec::IntoIter<(bool, String)>>;

/// Parses nodes up to an `{{end}}` or `{{else...}}` (returned) or the end of the text.
fn parse_list(items: &mut Items) -> Result<(Vec<Node>, Option<String>), Error> {
    let mut nodes = Vec::new();
    while let Some((is_action, text)) = items.next() {
        if !is_action {
            if !text.is_empty() {
                nodes.push(Node::Text(text));
            }
            continue;
        }
        let body = text.trim();
        if body.starts_with("/*") {
            if !body.ends_with("*/") {
                return err(format!("unclosed comment {body:?}"));
            }
            continue;
        }
        let (word, rest) = match body.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (body, ""),
        };
        match word {
            "end" | "else" => return Ok((nodes, Some(body.to_string()))),
            "if" => {
                let mut branches = vec![(parse_pipeline(rest)?, Vec::new())];
                let mut otherwise = Vec::new();
                loop {
                    let (body_nodes, end) = parse_list(items)?;
                    let end = end.ok_or_else(|| Error("missing {{end}} after {{if}}".into()))?;
                    branches.last_mut().expect("one branch").1 = body_nodes;
                    if end == "end" {
                        break;
                    }
                    let cond = end.strip_prefix("else").unwrap_or("").trim();
                    if let Some(cond) = cond.strip_prefix("if ") {
                        branches.push((parse_pipeline(cond)?, Vec::new()));
                        continue;
                    }
                    let (else_nodes, end) = parse_list(items)?;
                    if end.as_deref() != Some("end") {
                        return err("missing {{end}} after {{else}}");
                    }
                    otherwise = else_nodes;
                    break;
                }
                nodes.push(Node::If(branches, otherwise));
            }
            "range" | "with" => {
                let pipe = parse_pipeline(rest)?;
                let (body_nodes, end) = parse_list(items)?;
                let end =
                    end.ok_or_else(|| Error(format!("missing {{{{end}}}} after {{{{{word}}}}}")))?;
                let mut otherwise = Vec::new();
                if end != "end" {
                    let (else_nodes, end) = parse_list(items)?;
                    if end.as_deref() != Some("end") {
                        return err("missing {{end}} after {{else}}");
                    }
                    otherwise = else_nodes;
                }
                nodes.push(if word == "range" {
                    Node::Range(pipe, body_nodes, otherwise)
                } else {
                    Node::With(pipe, body_nodes, otherwise)
                });
            }
            "define" | "template" | "block" | "break" | "continue" => {
                return err(format!("{{{{{word}}}}} is not supported in --format"))
            }
            _ => nodes.push(Node::Action(parse_pipeline(body)?)),
        }
    }
    Ok((nodes, None))
}

fn parse_pipeline(text: &str) -> Result<Pipeline, Error> {
    let toks = lex(text)?;
    let mut pos = 0;
    let pipe = pipeline_from(&toks, &mut pos, text)?;
    if pos != toks.len() {
        return err(format!("unexpected {:?} in {{{{{text}}}}}", toks[pos]));
    }
    Ok(pipe)
}

fn pipeline_from(toks: &[Tok], pos: &mut usize, text: &str) -> Result<Pipeline, Error> {
    let mut decl = Vec::new();
    // `$x :=`, `$i, $e :=` or `$x =`.
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Tok::Var(name, f)) = toks.get(look) {
        if !f.is_empty() {
            break;
        }
        names.push(name.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare) | Some(Tok::Assign) => {
                decl = names.clone();
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut commands = Vec::new();
    let mut current = Vec::new();
    while let Some(tok) = toks.get(*pos) {
        *pos += 1;
        match tok {
            Tok::Pipe => {
                if current.is_empty() {
                    return err(format!("missing command before | in {{{{{text}}}}}"));
                }
                commands.push(std::mem::take(&mut current));
            }
            Tok::Open => {
                let inner = pipeline_from(toks, pos, text)?;
                match toks.get(*pos) {
                    Some(Tok::Close(fields)) => {
                        *pos += 1;
                        current.push(Operand::Sub(Box::new(inner), fields.clone()));
                    }
                    _ => return err(format!("unclosed ( in {{{{{text}}}}}")),
                }
            }
            Tok::Close(_) => {
                *pos -= 1;
                break;
            }
            Tok::Field(f) => current.push(Operand::Field(f.clone())),
            Tok::Var(n, f) => current.push(Operand::Var(n.clone(), f.clone())),
            Tok::Str(s) => current.push(Operand::Literal(Value::String(s.clone()))),
            Tok::Num(n) => current.push(Operand::Literal(number(*n))),
            Tok::Ident(id) => current.push(match id.as_str() {
                "true" => Operand::Literal(Value::Bool(true)),
                "false" => Operand::Literal(Value::Bool(false)),
                "nil" => Operand::Literal(Value::Null),
                _ => Operand::Func(id.clone()),
            }),
            Tok::Comma | Tok::Declare | Tok::Assign => {
                return err(format!("unexpected {tok:?} in {{{{{text}}}}}"))
            }
        }
    }
    if current.is_empty() {
        return err(format!("missing value in {{{{{text}}}}}"));
    }
    commands.push(current);
    Ok(Pipeline { decl, commands })
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

// ---- execution ----------------------------------------------------------------------------

/// The functions a template can call, by name.
pub type Funcs = fn(&str, &[Value]) -> Option<Result<Value, String>>;

/// What a missing key gives: an error (docker's listings are Go structs), or Go's
/// `<no value>` (`docker inspect` renders decoded JSON, a map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Error,
    NoValue,
}

/// A missing map key: prints `<no value>`, is false, compares unequal to everything.
const NO_VALUE: &str = "\u{0}<no value>";

struct Exec<'a> {
    missing: Missing,
    vars: Vec<(String, Value)>,
    out: String,
    funcs: Funcs,
    root: &'a Value,
}

impl Template {
    /// Renders the template with `data` as dot, docker's functions available.
    #[cfg(test)]
    pub fn render(&self, data: &Value) -> Result<String, Error> {
        self.render_with(data, docker_funcs, Missing::Error)
    }

    /// Renders with another function set (docker's header rendering uses identity functions)
    /// and missing-key rule.
    pub fn render_with(
        &self,
        data: &Value,
        funcs: Funcs,
        missing: Missing,
    ) -> Result<String, Error> {
        let mut ex = Exec {
            missing,
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
            funcs,
            root: data,
        };
        ex.nodes(&self.nodes, data)?;
        Ok(ex.out)
    }
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), Error> {
        for n in nodes {
            self.node(n, dot)?;
        }
        Ok(())
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Result<(), Error> {
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.pipeline(p, dot)?;
                if p.decl.is_empty() {
                    let text = go_print(&v);
                    self.out.push_str(&text);
                }
            }
            Node::If(branches, otherwise) => {
                let depth = self.vars.len();
                let mut done = false;
                for (cond, body) in branches {
                    if truthy(&self.pipeline(cond, dot)?) {
                        self.nodes(body, dot)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    self.nodes(otherwise, dot)?;
                }
                self.vars.truncate(depth);
            }
            Node::With(p, body, otherwise) => {
                let depth = self.vars.len();
                let v = self.pipeline(p, dot)?;
                if truthy(&v) {
                    self.nodes(body, &v)?;
                } else {
                    self.nodes(otherwise, dot)?;
                }
                self.vars.truncate(depth);
            }
            Node::Range(p, body, otherwise) => {
                let depth = self.vars.len();
                let mut plain = p.clone();
                let decl = std::mem::take(&mut plain.decl);
                let v = self.pipeline(&plain, dot)?;
                let items: Vec<(Value, Value)> = match &v {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (Value::from(i), e.clone()))
                        .collect(),
                    Value::Object(o) => {
                        let mut keys: Vec<&String> = o.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .map(|k| (Value::String(k.clone()), o[k].clone()))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    Value::Number(n) => (0..n.as_u64().unwrap_or(0))
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect(),
                    other => return err(format!("range can't iterate over {}", go_print(other))),
                };
                if items.is_empty() {
                    self.nodes(otherwise, dot)?;
                }
                for (k, e) in items {
                    let inner = self.vars.len();
                    match decl.as_slice() {
                        [] => {}
                        [one] => self.vars.push((one.clone(), e.clone())),
                        [key, elem, ..] => {
                            self.vars.push((key.clone(), k));
                            self.vars.push((elem.clone(), e.clone()));
                        }
                    }
                    self.nodes(body, &e)?;
                    self.vars.truncate(inner);
                }
                self.vars.truncate(depth);
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, Error> {
        let mut value: Option<Value> = None;
        for cmd in &p.commands {
            value = Some(self.command(cmd, dot, value)?);
        }
        let v = value.unwrap_or(Value::Null);
        match p.decl.as_slice() {
            [] => {}
            [name] => self.set_var(name, v.clone()),
            _ => return err("only range may declare two variables"),
        }
        Ok(v)
    }

    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            // `$x =` assigns; `$x :=` in an inner scope would shadow, which templates in
            // --format never need: both update the nearest.
            slot.1 = v;
        } else {
            self.vars.push((name.to_string(), v));
        }
    }

    fn command(
        &mut self,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, Error> {
        if let Operand::Func(name) = &cmd[0] {
            let mut args = Vec::with_capacity(cmd.len());
            for op in &cmd[1..] {
                args.push(self.operand(op, dot)?);
            }
            args.extend(piped);
            return match (self.funcs)(name, &args) {
                Some(r) => r.map_err(|e| Error(format!("error calling {name}: {e}"))),
                None => err(format!("function {name:?} not defined")),
            };
        }
        if cmd.len() > 1 || piped.is_some() {
            return err(format!("can't give argument to non-function {:?}", cmd[0]));
        }
        self.operand(&cmd[0], dot)
    }

    fn operand(&mut self, op: &Operand, dot: &Value) -> Result<Value, Error> {
        match op {
            Operand::Field(path) => walk(dot, path, self.missing),
            Operand::Var(name, path) => {
                let base = if name == "$" {
                    self.root.clone()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| Error(format!("undefined variable {name:?}")))?
                };
                walk(&base, path, self.missing)
            }
            Operand::Literal(v) => Ok(v.clone()),
            Operand::Func(name) => match (self.funcs)(name, &[]) {
                Some(r) => r.map_err(|e| Error(format!("error calling {name}: {e}"))),
                None => err(format!("function {name:?} not defined")),
            },
            Operand::Sub(p, path) => {
                let v = self.pipeline(p, dot)?;
                walk(&v, path, self.missing)
            }
        }
    }
}

fn walk(v: &Value, path: &[String], missing: Missing) -> Result<Value, Error> {
    let mut cur = v.clone();
    for field in path {
        cur = match &cur {
            Value::Object(o) => match o.get(field) {
                Some(x) => x.clone(),
                None if missing == Missing::NoValue => Value::String(NO_VALUE.into()),
                None => {
                    return err(format!(
                        "can't evaluate field {field}: it is not one of {}",
                        {
                            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                            keys.sort_unstable();
                            keys.join(", ")
                        }
                    ))
                }
            },
            Value::Null => Value::Null,
            other => {
                return err(format!(
                    "can't evaluate field {field} in {}",
                    go_print(other)
                ))
            }
        };
    }
    Ok(cur)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty() && s != NO_VALUE,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Go's `%v` for a value: strings bare, `[a b]`, `map[k:v]`, `<nil>`.
pub fn go_print(v: &Value) -> String {
    let mut s = String::new();
    go_print_into(v, &mut s);
    s
}

fn go_print_into(v: &Value, s: &mut String) {
    match v {
        Value::Null => s.push_str("<nil>"),
        Value::Bool(b) => {
            let _ = write!(s, "{b}");
        }
        Value::Number(n) => {
            let _ = write!(s, "{n}");
        }
        Value::String(t) if t == NO_VALUE => s.push_str("<no value>"),
        Value::String(t) => s.push_str(t),
        Value::Array(a) => {
            s.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                go_print_into(e, s);
            }
            s.push(']');
        }
        Value::Object(o) => {
            s.push_str("map[");
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    s.push(' ');
                }
                s.push_str(k);
                s.push(':');
                go_print_into(&o[k], s);
            }
            s.push(']');
        }
    }
}

fn as_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => go_print(other),
    }
}

fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        other => Err(format!("{} is not an integer", go_print(other))),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "incomparable numbers".to_string()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            go_print(a),
            go_print(b)
        )),
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("{name} takes {n} arguments, got {}", args.len()))
    }
}

/// Go's builtins and docker's template functions.
pub fn docker_funcs(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    use std::cmp::Ordering::*;
    let r = match name {
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "not" => arity(name, args, 1).map(|_| Value::Bool(!truthy(&args[0]))),
        "len" => arity(name, args, 1).and_then(|_| match &args[0] {
            Value::String(s) => Ok(Value::from(s.len())),
            Value::Array(a) => Ok(Value::from(a.len())),
            Value::Object(o) => Ok(Value::from(o.len())),
            other => Err(format!("len of {}", go_print(other))),
        }),
        "index" => {
            if args.is_empty() {
                return Some(Err("index needs a value".into()));
            }
            let mut cur = args[0].clone();
            for key in &args[1..] {
                cur = match (&cur, key) {
                    (Value::Array(a), k) => match as_int(k) {
                        Ok(i) if i >= 0 && (i as usize) < a.len() => a[i as usize].clone(),
                        Ok(i) => return Some(Err(format!("index out of range: {i}"))),
                        Err(e) => return Some(Err(e)),
                    },
                    (Value::Object(o), k) => o.get(&as_str(k)).cloned().unwrap_or(Value::Null),
                    (Value::Null, _) => Value::Null,
                    (other, _) => {
                        return Some(Err(format!("can't index item of {}", go_print(other))))
                    }
                };
            }
            Ok(cur)
        }
        "eq" => {
            if args.len() < 2 {
                return Some(Err("eq needs two arguments".into()));
            }
            Ok(Value::Bool(args[1..].iter().any(|b| match (&args[0], b) {
                (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
                (a, b) => a == b,
            })))
        }
        "ne" => arity(name, args, 2).map(|_| Value::Bool(args[0] != args[1])),
        "lt" | "le" | "gt" | "ge" => arity(name, args, 2).and_then(|_| {
            compare(&args[0], &args[1]).map(|o| {
                Value::Bool(match name {
                    "lt" => o == Less,
                    "le" => o != Greater,
                    "gt" => o == Greater,
                    _ => o != Less,
                })
            })
        }),
        "print" => {
            // fmt.Sprint: a space between operands when neither is a string.
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0
                    && !matches!(a, Value::String(_))
                    && !matches!(args[i - 1], Value::String(_))
                {
                    s.push(' ');
                }
                s.push_str(&go_print(a));
            }
            Ok(Value::String(s))
        }
        "println" => Ok(Value::String(
            args.iter().map(go_print).collect::<Vec<_>>().join(" ") + "\n",
        )),
        "printf" => match args.split_first() {
            Some((Value::String(f), rest)) => Ok(Value::String(printf(f, rest))),
            _ => Err("printf needs a format string".into()),
        },
        "json" => arity(name, args, 1).map(|_| Value::String(args[0].to_string())),
        "split" => arity(name, args, 2).map(|_| {
            let (s, sep) = (as_str(&args[0]), as_str(&args[1]));
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Value::Array(parts)
        }),
        "join" => arity(name, args, 2).and_then(|_| match &args[0] {
            Value::Array(a) => Ok(Value::String(
                a.iter()
                    .map(as_str)
                    .collect::<Vec<_>>()
                    .join(&as_str(&args[1])),
            )),
            other => Err(format!("join of {}", go_print(other))),
        }),
        "lower" => arity(name, args, 1).map(|_| Value::String(as_str(&args[0]).to_lowercase())),
        "upper" => arity(name, args, 1).map(|_| Value::String(as_str(&args[0]).to_uppercase())),
        "title" => arity(name, args, 1).map(|_| {
            let mut out = String::new();
            let mut start = true;
            for c in as_str(&args[0]).chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            Value::String(out)
        }),
        "pad" => arity(name, args, 3).and_then(|_| {
            let (before, after) = (as_int(&args[1])?, as_int(&args[2])?);
            Ok(Value::String(format!(
                "{}{}{}",
                " ".repeat(before.max(0) as usize),
                as_str(&args[0]),
                " ".repeat(after.max(0) as usize)
            )))
        }),
        "truncate" => arity(name, args, 2).and_then(|_| {
            let n = as_int(&args[1])?.max(0) as usize;
            Ok(Value::String(as_str(&args[0]).chars().take(n).collect()))
        }),
        _ => return None,
    };
    Some(r)
}

/// The functions for a `table` header: docker's functions return their argument, so
/// `{{upper .Repository}}` still heads its column with REPOSITORY.
pub fn header_funcs(name: &str, args: &[Value]) -> Option<Result<Value, String>> {
    match name {
        "json" | "split" | "join" | "title" | "lower" | "upper" | "pad" | "truncate" => {
            Some(Ok(args.first().cloned().unwrap_or(Value::Null)))
        }
        _ => docker_funcs(name, args),
    }
}

/// Go's Sprintf for the verbs scripts use: %s %v %d %q %%.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit() || **d == '-') {
            width.push(*d);
            chars.next();
        }
        let verb = chars.next();
        let text = match verb {
            Some('%') => {
                out.push('%');
                continue;
            }
            Some('q') => args.next().map_or("%!q(MISSING)".to_string(), |a| {
                Value::String(as_str(a)).to_string()
            }),
            Some('s' | 'v' | 'd') => args
                .next()
                .map_or_else(|| format!("%!{}(MISSING)", verb.unwrap_or('v')), go_print),
            Some(other) => format!("%!{other}(unsupported)"),
            None => "%!(NOVERB)".to_string(),
        };
        match width.parse::<i64>() {
            Ok(w) if w < 0 => {
                let _ = write!(out, "{text:<0$}", (-w) as usize);
            }
            Ok(w) => {
                let _ = write!(out, "{text:>0$}", w as usize);
            }
            Err(_) => out.push_str(&text),
        }
    }
    out
}

/// Go's text/tabwriter as docker configures it (minimum width 10, padding 3, spaces): cells end
/// at tabs; a column is as wide as its widest cell plus the padding. The last cell of a line
/// is not aligned.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            if widths.len() <= i {
                widths.push(10);
            }
            widths[i] = widths[i].max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for cells in &lines {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: Value) -> String {
        Template::parse(t).unwrap().render(&v).unwrap()
    }

    #[test]
    fn fields_arrays_and_maps_print_as_go_does() {
        let v = json!({"Repository": "busybox", "Tag": "latest",
                       "RepoTags": ["a:1", "b:2"], "Labels": {"z": "1", "a": "2"}, "N": 3});
        assert_eq!(
            render("{{.Repository}}:{{.Tag}}", v.clone()),
            "busybox:latest"
        );
        assert_eq!(render("{{.RepoTags}}", v.clone()), "[a:1 b:2]");
        assert_eq!(render("{{.Labels}}", v.clone()), "map[a:2 z:1]");
        assert_eq!(render("{{.N}}", v.clone()), "3");
        assert_eq!(render("{{index .RepoTags 1}}", v.clone()), "b:2");
        assert_eq!(render("{{index .Labels \"z\"}}", v.clone()), "1");
        assert_eq!(
            render("{{json .Labels}}", v.clone()),
            r#"{"a":"2","z":"1"}"#
        );
        assert_eq!(render("{{.Missing.X}}", json!({"Missing": null})), "<nil>");
        assert!(Template::parse("{{.Nope}}").unwrap().render(&v).is_err());
    }

    #[test]
    fn a_missing_key_is_no_value_for_documents() {
        let t = Template::parse("{{.Config.Cmd}}|{{if .Config.Cmd}}y{{else}}n{{end}}").unwrap();
        let doc = json!({"Config": {"Env": []}});
        let out = t.render_with(&doc, docker_funcs, Missing::NoValue).unwrap();
        assert_eq!(out, "<no value>|n");
        assert!(t.render(&doc).is_err());
    }

    #[test]
    fn control_flow_variables_and_trim_markers() {
        let v = json!({"Env": ["A=1", "B=2"], "On": true, "Off": "", "None": [], "Config": {"User": "u"}});
        assert_eq!(render("{{range .Env}}{{.}};{{end}}", v.clone()), "A=1;B=2;");
        assert_eq!(
            render("{{range $i, $e := .Env}}{{$i}}={{$e}} {{end}}", v.clone()),
            "0=A=1 1=B=2 "
        );
        assert_eq!(
            render("{{if .Off}}x{{else if .On}}y{{else}}z{{end}}", v.clone()),
            "y"
        );
        assert_eq!(render("{{with .Config}}{{.User}}{{end}}", v.clone()), "u");
        assert_eq!(render("a  {{- .Config.User -}}  b", v.clone()), "aub");
        assert_eq!(
            render("{{/* note */}}{{$u := .Config.User}}{{$u}}", v.clone()),
            "u"
        );
        assert_eq!(
            render("{{range .None}}x{{else}}none{{end}}", v.clone()),
            "none"
        );
        assert_eq!(render("{{.Config.User | upper}}", v.clone()), "U");
        assert_eq!(render("{{join .Env \",\"}}", v.clone()), "A=1,B=2");
        assert_eq!(
            render("{{len .Env}} {{eq .Config.User \"u\"}}", v.clone()),
            "2 true"
        );
        assert_eq!(render("{{(index .Env 0) | lower}}", v.clone()), "a=1");
        assert_eq!(
            render("{{printf \"%-5s|%3d\" .Config.User 7}}", v.clone()),
            "u    |  7"
        );
        assert_eq!(render("{{split \"a:b\" \":\"}}", v.clone()), "[a b]");
        assert_eq!(
            render("{{truncate \"abcdef\" 3}}{{pad \"x\" 1 1}}", v),
            "abc x "
        );
    }

    #[test]
    fn bad_templates_are_errors_not_panics() {
        for t in [
            "{{",
            "{{.A",
            "{{if .A}}",
            "{{end}}",
            "{{range}}",
            "{{nofunc .A}}",
            "{{\"x}}",
            "{{.A | }}",
            "{{(.A}}",
            "{{ - }}",
            "{{1 2}}",
            "{{else}}",
            "{{$x}}",
        ] {
            let r = Template::parse(t).and_then(|tp| tp.render(&json!({"A": 1})));
            assert!(r.is_err(), "{t:?} rendered {r:?}");
        }
    }

    #[test]
    fn tabwriter_aligns_like_docker() {
        assert_eq!(
            tabwrite("REPOSITORY\tTAG\tSIZE\nbusybox\tlatest\t4MB\n"),
            "REPOSITORY   TAG       SIZE\nbusybox      latest    4MB\n"
        );
    }
}
