//! The functions templates call: Go's builtins, docker's, and Go's Sprintf and tabwriter.

use std::fmt::Write as _;

use serde_json::Value;

use super::value::{arity, as_int, as_str, compare, go_print, truthy};

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
pub(super) fn printf(format: &str, args: &[Value]) -> String {
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
