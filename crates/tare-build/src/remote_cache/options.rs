//! The `--cache-to` and `--cache-from` values, parsed as buildx writes them.

use std::collections::BTreeMap;

use tare_store::Reference;

use crate::error::Error;

/// Which steps an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The steps of the final image: the target stage and the stages it is built FROM.
    #[default]
    Min,
    /// Every step the build ran or found, intermediate stages included.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository of a registry (the tag of the reference is not used).
    Registry(Reference),
    /// An OCI image layout directory (`type=local,dest=DIR` / `src=DIR`).
    Local(std::path::PathBuf),
    /// `--cache-to type=inline`: the final image's steps ride in the manifest of the image
    /// the build makes (read back with `--cache-from type=registry,ref=IMAGE`).
    Inline,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Registry(r) => write!(f, "{}", r.name()),
            Location::Local(dir) => write!(f, "{}", dir.display()),
            Location::Inline => write!(f, "type=inline"),
        }
    }
}

/// A `--cache-to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    /// Where the entries are written.
    pub location: Location,
    /// Which steps are written (`mode=min|max`).
    pub mode: Mode,
}

/// A `--cache-from` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom {
    /// Where the entries are read from.
    pub location: Location,
}

/// The error for a cache option `text` of `flag` that does not parse.
fn bad(flag: &'static str, text: &str, reason: String) -> Error {
    Error::BadOption {
        flag,
        value: format!("{text:?}"),
        reason,
    }
}

/// `key=value,...` as buildx writes cache options; a bare value is `ref=` (buildx's short
/// form `--cache-from user/app:cache`).
fn fields(flag: &'static str, text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut map = BTreeMap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None if !text.contains('=') => ("ref".to_string(), part.trim().to_string()),
            None => return Err(bad(flag, text, format!("{part:?} is not key=value"))),
        };
        if map.insert(k.clone(), v).is_some() {
            return Err(bad(flag, text, format!("{k} given twice")));
        }
    }
    if !map.contains_key("type") && map.contains_key("ref") {
        map.insert("type".into(), "registry".into());
    }
    Ok(map)
}

/// The location `map` names; `dir_key` is the option that names a `type=local` directory
/// (`dest` for `--cache-to`, `src` for `--cache-from`, as buildx spells them).
fn location(
    flag: &'static str,
    text: &str,
    map: &mut BTreeMap<String, String>,
    dir_key: &str,
) -> Result<Location, Error> {
    let kind = map.remove("type").unwrap_or_default();
    match kind.as_str() {
        "registry" => {
            let r = map
                .remove("ref")
                .ok_or_else(|| bad(flag, text, "type=registry needs ref=REPOSITORY".into()))?;
            let reference =
                Reference::parse(&r).map_err(|e| bad(flag, text, format!("ref {r:?}: {e}")))?;
            Ok(Location::Registry(reference))
        }
        "local" => {
            let dir = map
                .remove(dir_key)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| bad(flag, text, format!("type=local needs {dir_key}=DIRECTORY")))?;
            Ok(Location::Local(dir.into()))
        }
        // Only an export: an image's inline cache is read with type=registry,ref=IMAGE (as
        // BuildKit's registry importer reads an image's inline cache).
        "inline" if dir_key == "dest" => Ok(Location::Inline),
        "inline" => Err(bad(
            flag,
            text,
            "type=inline is only for --cache-to; read an image's inline cache with \
             type=registry,ref=IMAGE"
                .into(),
        )),
        "gha" | "s3" | "azblob" => Err(bad(
            flag,
            text,
            format!(
                "type={kind} is not supported by tare (type=registry, type=local and \
                 type=inline are)"
            ),
        )),
        other => Err(bad(
            flag,
            text,
            format!("unknown cache type {other:?} (type=registry, type=local or type=inline)"),
        )),
    }
}

fn no_more(flag: &'static str, text: &str, map: BTreeMap<String, String>) -> Result<(), Error> {
    match map.keys().next() {
        None => Ok(()),
        Some(k) => Err(bad(flag, text, format!("unknown option {k:?}"))),
    }
}

impl CacheTo {
    /// Parses `type=registry,ref=R[,mode=min|max]`.
    pub fn parse(text: &str) -> Result<CacheTo, Error> {
        let flag = "--cache-to";
        let mut map = fields(flag, text)?;
        let location = location(flag, text, &mut map, "dest")?;
        let mode = match map.remove("mode").as_deref() {
            None | Some("min") => Mode::Min,
            Some("max") => Mode::Max,
            Some(other) => {
                return Err(bad(
                    flag,
                    text,
                    format!("mode must be min or max, not {other:?}"),
                ))
            }
        };
        // buildx's exporter options that mean nothing for tare's format.
        for ignored in ["image-manifest", "oci-mediatypes", "ignore-error", "tag"] {
            map.remove(ignored);
        }
        no_more(flag, text, map)?;
        if location == Location::Inline && mode == Mode::Max {
            // BuildKit's inline exporter keeps only the image's own layers whatever the mode
            // says; tare says so instead of writing less than asked.
            return Err(bad(
                flag,
                text,
                "type=inline holds only the final image's steps (mode=min); export mode=max \
                 with type=registry,ref=REPOSITORY or type=local,dest=DIR"
                    .into(),
            ));
        }
        Ok(CacheTo { location, mode })
    }
}

impl CacheFrom {
    /// Parses `type=registry,ref=R` (or just `R`).
    pub fn parse(text: &str) -> Result<CacheFrom, Error> {
        let flag = "--cache-from";
        let mut map = fields(flag, text)?;
        let location = location(flag, text, &mut map, "src")?;
        // buildx's local importer picks a manifest by tag or digest; tare reads every entry.
        map.remove("tag");
        map.remove("digest");
        no_more(flag, text, map)?;
        Ok(CacheFrom { location })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_options_parse_as_buildx_writes_them() {
        let to = CacheTo::parse("type=registry,ref=localhost:5000/app:cache,mode=max").expect("to");
        assert_eq!(to.mode, Mode::Max);
        assert_eq!(to.location.to_string(), "localhost:5000/app");
        let from = CacheFrom::parse("localhost:5000/app:cache").expect("short form");
        assert_eq!(from.location, to.location);
        for bad in [
            "type=registry",
            "type=registry,ref=r,mode=all",
            "type=registry,ref=r,colour=red",
            "type=nope,ref=r",
            "type=registry,ref=r,ref=s",
            "type=inline,mode=max",
        ] {
            assert!(CacheTo::parse(bad).is_err(), "{bad}");
        }
        let inline = CacheTo::parse("type=inline").expect("inline");
        assert_eq!(inline.location, Location::Inline);
        assert!(CacheTo::parse("type=inline,mode=min").is_ok());
        let from = CacheFrom::parse("type=inline").expect_err("inline is not a source");
        assert!(
            from.to_string().contains("type=registry,ref=IMAGE"),
            "{from}"
        );
    }

    #[test]
    fn a_bad_cache_option_names_the_flag_and_its_value() {
        let err = CacheFrom::parse("type=local").expect_err("no src");
        assert!(
            matches!(
                err,
                Error::BadOption {
                    flag: "--cache-from",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            r#"--cache-from "type=local": type=local needs src=DIRECTORY"#
        );
    }
}
