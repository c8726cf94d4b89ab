//! Instruction flags (`--from=x`, `--link`, `--mount=...`), checked against the flags each
//! instruction accepts, like BuildKit's `BFlags`.

use std::collections::BTreeMap;

use crate::suggest::did_you_mean;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--name=value`, at most once.
    String,
    /// `--name`, `--name=true|false`.
    Bool,
    /// `--name=value`, any number of times.
    Strings,
}

/// Parsed flags: values by name, with the raw flag that set each for error locations.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<&'static str, Vec<String>>,
    bools: BTreeMap<&'static str, bool>,
}

/// A flag error: the message and the flag as written (to point at it).
pub(crate) struct FlagError {
    pub message: String,
    pub flag: String,
}

impl Flags {
    pub fn parse(raw: &[String], allowed: &[(&'static str, Kind)]) -> Result<Flags, FlagError> {
        let mut flags = Flags::default();
        for arg in raw {
            let fail = |message: String| FlagError {
                message,
                flag: arg.clone(),
            };
            let Some(body) = arg.strip_prefix("--") else {
                return Err(fail(format!("arg should start with -- : {arg}")));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                let mut message = format!("unknown flag: --{name}");
                if let Some(s) = did_you_mean(name, &names) {
                    message.push_str(&format!(" (did you mean --{s}?)"));
                }
                return Err(fail(message));
            };
            let seen = flags.values.contains_key(key) || flags.bools.contains_key(key);
            if seen && kind != Kind::Strings {
                return Err(fail(format!("duplicate flag specified: --{name}")));
            }
            match kind {
                Kind::Bool => {
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            return Err(fail(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            )))
                        }
                    };
                    flags.bools.insert(key, v);
                }
                Kind::String | Kind::Strings => {
                    let Some(v) = value else {
                        return Err(fail(format!("missing a value on flag: --{name}")));
                    };
                    flags.values.entry(key).or_default().push(v.to_string());
                }
            }
        }
        Ok(flags)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.bools.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &[(&str, Kind)] = &[
        ("from", Kind::String),
        ("link", Kind::Bool),
        ("exclude", Kind::Strings),
    ];

    fn parse(raw: &[&str]) -> Result<Flags, String> {
        let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
        Flags::parse(&raw, ALLOWED).map_err(|e| e.message)
    }

    #[test]
    fn known_flags_parse() {
        let f = parse(&["--from=a", "--link", "--exclude=x", "--exclude=y"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.bool("link"), Some(true));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        let f = parse(&["--link=FALSE"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.bool("link"), Some(false));
    }

    #[test]
    fn bad_flags_are_rejected_with_a_reason() {
        assert_eq!(
            parse(&["--form=a"]).err().as_deref(),
            Some("unknown flag: --form (did you mean --from?)")
        );
        assert_eq!(
            parse(&["--from"]).err().as_deref(),
            Some("missing a value on flag: --from")
        );
        assert_eq!(
            parse(&["--from=a", "--from=b"]).err().as_deref(),
            Some("duplicate flag specified: --from")
        );
        assert_eq!(
            parse(&["--link=yes"]).err().as_deref(),
            Some("expecting boolean value for flag --link, not: yes")
        );
        assert!(parse(&["-x"]).is_err());
    }
}
