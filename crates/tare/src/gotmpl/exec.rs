//! Executing a parsed template over a JSON value: dot, variables, pipelines, control flow.

use serde_json::Value;

#[cfg(test)]
use super::funcs::docker_funcs;
use super::value::{go_print, truthy, NO_VALUE};
use super::{err, Error, Node, Operand, Pipeline, Template};

/// The functions a template can call, by name.
pub type Funcs = fn(&str, &[Value]) -> Option<Result<Value, String>>;

/// What a missing key gives: an error (docker's listings are Go structs), or Go's
/// `<no value>` (`docker inspect` renders decoded JSON, a map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Error,
    NoValue,
}

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
