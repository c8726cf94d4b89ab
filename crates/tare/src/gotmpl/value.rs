//! Go's view of JSON values: truth, printing (`%v`), comparison and conversions.

use std::fmt::Write as _;

use serde_json::Value;

/// A missing map key: prints `<no value>`, is false, compares unequal to everything.
pub(super) const NO_VALUE: &str = "\u{0}<no value>";

pub(super) fn truthy(v: &Value) -> bool {
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

pub(super) fn go_print_into(v: &Value, s: &mut String) {
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

pub(super) fn as_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => go_print(other),
    }
}

pub(super) fn as_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        other => Err(format!("{} is not an integer", go_print(other))),
    }
}

pub(super) fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
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

pub(super) fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("{name} takes {n} arguments, got {}", args.len()))
    }
}
