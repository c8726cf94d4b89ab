//! Go's `text/template`, the part of it that docker's `--format` flags use, over JSON values.
//!
//! Why not a crate: gtmpl (0.7, the Rust port) prints arrays and maps with Rust's `Debug`
//! (`[String("a")]`) where Go prints `[a]` and `map[k:v]`, and `{{.RepoTags}}` or
//! `{{.Config.Env}}` are what scripts print most. The engine is small: actions, pipelines,
//! variables, `if`/`else if`/`range`/`with`, trim markers, comments, Go's builtin functions
//! and docker's (`json`, `join`, `split`, `lower`, `upper`, `title`, `pad`, `truncate`).
//!
//! Values are `serde_json::Value`: an object's keys are the fields (`.Config.Env`).

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

mod exec;
mod funcs;
mod value;

pub use exec::Missing;
pub use funcs::{docker_funcs, header_funcs, tabwrite};

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
