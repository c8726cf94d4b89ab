//! HEALTHCHECK NONE | HEALTHCHECK [--interval ...] CMD command.

use std::time::Duration;

use super::Cx;
use crate::flags::Kind;
use crate::model::Healthcheck;
use crate::Error;

pub(super) fn convert(cx: &Cx<'_>) -> Result<Healthcheck, Error> {
    let flags = cx.flags(&[
        ("interval", Kind::String),
        ("timeout", Kind::String),
        ("start-period", Kind::String),
        ("start-interval", Kind::String),
        ("retries", Kind::String),
    ])?;
    let node = cx.node;
    let Some(kind) = node.args.first() else {
        return Err(cx.error("HEALTHCHECK requires at least one argument"));
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" => {
            if node.args.len() > 1 || !node.flags.is_empty() {
                return Err(cx.error("HEALTHCHECK NONE takes no arguments"));
            }
            Ok(Healthcheck::None)
        }
        "CMD" => {
            let args = &node.args[1..];
            if args.is_empty() {
                return Err(cx.error("missing command after HEALTHCHECK CMD"));
            }
            let test = if node.json {
                std::iter::once("CMD".to_string())
                    .chain(args.iter().cloned())
                    .collect()
            } else {
                vec!["CMD-SHELL".to_string(), args.join(" ")]
            };
            let duration = |name: &str| -> Result<Option<Duration>, Error> {
                // An empty value means "not set", as in BuildKit.
                let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
                    return Ok(None);
                };
                let d = parse_go_duration(&v).map_err(|e| cx.error(format!("--{name}: {e}")))?;
                if d != Duration::ZERO && d < Duration::from_millis(1) {
                    return Err(cx.error(format!("--{name} cannot be less than 1ms")));
                }
                Ok(Some(d))
            };
            let retries = match flags.string("retries") {
                None => None,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if n < 0 => return Err(cx.error("--retries cannot be negative")),
                    Ok(n) => Some(
                        u32::try_from(n)
                            .map_err(|_| cx.error(format!("--retries {v:?} is too large")))?,
                    ),
                    Err(_) => return Err(cx.error(format!("--retries: invalid number {v:?}"))),
                },
            };
            Ok(Healthcheck::Cmd {
                test,
                interval: duration("interval")?,
                timeout: duration("timeout")?,
                start_period: duration("start-period")?,
                start_interval: duration("start-interval")?,
                retries,
            })
        }
        _ => Err(cx.error(format!("unknown type {kind:?} in HEALTHCHECK (try CMD)"))),
    }
}

/// Go's `time.ParseDuration` for non-negative durations: `300ms`, `1.5h`, `1m30s`, `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let body = s.strip_prefix('+').unwrap_or(s);
    if let Some(negative) = body.strip_prefix('-') {
        return if !negative.is_empty() && negative.trim_start_matches('0').is_empty() {
            Ok(Duration::ZERO)
        } else {
            Err(format!("duration {s:?} cannot be negative"))
        };
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid());
    }
    let mut rest = body;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        total += value * nanos;
        rest = &rest[unit_len..];
    }
    if total > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "1..2s", "-5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
