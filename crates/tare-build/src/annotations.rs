//! `tare build --annotation`: OCI annotations on the manifests and the index a build makes,
//! in buildx's notation: `KEY=VALUE` (the manifest's), or `TYPES[PLATFORMS]:KEY=VALUE` where
//! TYPES is a comma-separated list of `manifest`, `manifest-descriptor`, `index` and
//! `index-descriptor`, and `[linux/amd64,...]` limits a manifest kind to those platforms.
//!
//! Where each goes, as BuildKit's image exporter puts it: `manifest` into each image
//! manifest (so into its digest), `manifest-descriptor` onto each manifest's descriptor in the
//! index, `index` into the index. A single-platform image has no index, so `index` and
//! `index-descriptor` are refused for it, as BuildKit refuses them ("not supported for
//! single platform export"). The descriptors in an OCI layout's `index.json` (`-o type=oci`)
//! carry `index-descriptor` (several platforms: the index's) or `manifest-descriptor` (one
//! platform: the manifest's), as BuildKit 0.25's oci exporter writes them; without a layout
//! there is no such descriptor, so these are refused (the store keeps none).

use std::collections::BTreeMap;

use crate::error::Error;
use crate::Platform;

/// Where an annotation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `manifest`: into each image manifest.
    Manifest,
    /// `manifest-descriptor`: onto each manifest's descriptor in the index.
    ManifestDescriptor,
    /// `index`: into the index.
    Index,
    /// `index-descriptor`: onto the index's descriptor in an OCI layout's `index.json`.
    IndexDescriptor,
}

/// One `--annotation` value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Annotation {
    kinds: Vec<Kind>,
    /// Empty: every platform.
    platforms: Vec<Platform>,
    key: String,
    value: String,
}

/// Every `--annotation` of a build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Annotations(Vec<Annotation>);

impl Annotations {
    /// Parses the values and checks them against the number of platforms built and whether
    /// the build writes an OCI layout (`-o type=oci`).
    pub fn parse(specs: &[String], platforms: usize, layout: bool) -> Result<Annotations, Error> {
        let mut out = Vec::new();
        for spec in specs {
            let a = parse_one(spec)?;
            let refuse = |why: &str| {
                Err(Error::BadOption {
                    flag: "--annotation",
                    value: spec.clone(),
                    reason: why.to_string(),
                })
            };
            if platforms < 2
                && (a.kinds.contains(&Kind::Index) || a.kinds.contains(&Kind::IndexDescriptor))
            {
                return refuse(
                    "index annotations are not supported for a single-platform image (it has \
                     no index; BuildKit refuses them the same way): use manifest:, or build \
                     several platforms",
                );
            }
            if a.kinds.contains(&Kind::IndexDescriptor) && !layout {
                return refuse(
                    "index-descriptor annotations go on the index's descriptor in an OCI \
                     layout's index.json, which only -o type=oci writes; use index: for the \
                     index itself",
                );
            }
            if platforms < 2 && a.kinds.contains(&Kind::ManifestDescriptor) && !layout {
                return refuse(
                    "a single-platform image has no index whose descriptor of the manifest \
                     could carry it, and only -o type=oci writes a layout whose index.json \
                     does: use manifest:, or build several platforms",
                );
            }
            out.push(a);
        }
        Ok(Annotations(out))
    }

    /// The annotations of the descriptor an OCI layout's `index.json` holds: the index's
    /// (`index-descriptor`) with several platforms, the manifest's (`manifest-descriptor`)
    /// with one, `platform`.
    pub fn layout_descriptor(
        &self,
        platforms: usize,
        platform: &Platform,
    ) -> BTreeMap<String, String> {
        if platforms > 1 {
            self.of(Kind::IndexDescriptor, None)
        } else {
            self.of(Kind::ManifestDescriptor, Some(platform))
        }
    }

    /// True when no `--annotation` was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The annotations of `kind` for `platform` (`None`: the index, which has none), a later
    /// value of a key winning.
    pub fn of(&self, kind: Kind, platform: Option<&Platform>) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|a| a.kinds.contains(&kind))
            .filter(|a| {
                a.platforms.is_empty()
                    || platform.is_some_and(|p| {
                        a.platforms
                            .iter()
                            .any(|w| w.matches(&p.os, &p.architecture, p.variant.as_deref()))
                    })
            })
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }
}

fn parse_one(spec: &str) -> Result<Annotation, Error> {
    let bad = |reason: String| Error::BadOption {
        flag: "--annotation",
        value: spec.to_string(),
        reason,
    };
    let (left, value) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected [TYPE:]KEY=VALUE".into()))?;
    let (types, key) = match left.split_once(':') {
        Some((types, key)) => (Some(types), key),
        None => (None, left),
    };
    if key.is_empty() {
        return Err(bad("the key is empty".into()));
    }
    let mut kinds = Vec::new();
    let mut platforms = Vec::new();
    if let Some(types) = types {
        let (names, list) = match types.split_once('[') {
            Some((names, rest)) => {
                let list = rest
                    .strip_suffix(']')
                    .ok_or_else(|| bad(format!("{types:?}: a platform list ends with ]")))?;
                (names, Some(list))
            }
            None => (types, None),
        };
        for name in names.split(',') {
            kinds.push(match name {
                "manifest" => Kind::Manifest,
                "manifest-descriptor" => Kind::ManifestDescriptor,
                "index" => Kind::Index,
                "index-descriptor" => Kind::IndexDescriptor,
                other => {
                    return Err(bad(format!(
                        "unknown type {other:?} (use manifest, manifest-descriptor, index or \
                         index-descriptor)"
                    )))
                }
            });
        }
        for p in list.into_iter().flat_map(|l| l.split(',')) {
            platforms.push(
                p.parse::<Platform>()
                    .map_err(|e| bad(format!("platform {p:?}: {e}")))?,
            );
        }
        if !platforms.is_empty()
            && kinds
                .iter()
                .any(|k| matches!(k, Kind::Index | Kind::IndexDescriptor))
        {
            return Err(bad("an index belongs to no single platform".into()));
        }
    } else {
        // BuildKit's `annotation.KEY`: each image manifest's.
        kinds.push(Kind::Manifest);
    }
    Ok(Annotation {
        kinds,
        platforms,
        key: key.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(specs: &[&str], platforms: usize) -> Result<Annotations, Error> {
        parse_for(specs, platforms, false)
    }

    fn parse_for(specs: &[&str], platforms: usize, layout: bool) -> Result<Annotations, Error> {
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        Annotations::parse(&specs, platforms, layout)
    }

    #[test]
    fn buildx_notation_picks_the_kinds_and_platforms() {
        let a = parse(
            &[
                "org.opencontainers.image.source=https://x/y",
                "index,manifest-descriptor:v=1",
                "manifest[linux/arm64]:only=arm",
            ],
            2,
        )
        .unwrap();
        let amd: Platform = "linux/amd64".parse().unwrap();
        let arm: Platform = "linux/arm64".parse().unwrap();
        let m = a.of(Kind::Manifest, Some(&amd));
        assert_eq!(m.len(), 1);
        assert_eq!(m["org.opencontainers.image.source"], "https://x/y");
        assert_eq!(a.of(Kind::Manifest, Some(&arm))["only"], "arm");
        assert_eq!(a.of(Kind::Index, None)["v"], "1");
        assert_eq!(a.of(Kind::ManifestDescriptor, Some(&amd))["v"], "1");
    }

    #[test]
    fn index_kinds_need_several_platforms_and_bad_values_are_named() {
        let err = parse(&["index:a=b"], 1).unwrap_err().to_string();
        assert!(err.contains("--annotation index:a=b"), "{err}");
        assert!(err.contains("single-platform"), "{err}");
        assert!(parse(&["manifest-descriptor:a=b"], 1).is_err());
        assert!(parse(&["index-descriptor:a=b"], 2).is_err());
        // An OCI layout's index.json has the descriptor they go on (BuildKit 0.25's oci
        // exporter): the manifest's with one platform, the index's with several.
        let amd: Platform = "linux/amd64".parse().unwrap();
        let one = parse_for(&["manifest-descriptor:a=b"], 1, true).unwrap();
        assert_eq!(one.layout_descriptor(1, &amd)["a"], "b");
        let two = parse_for(
            &["index-descriptor:c=d", "manifest-descriptor:a=b"],
            2,
            true,
        )
        .unwrap();
        let d = two.layout_descriptor(2, &amd);
        assert_eq!((d.len(), d["c"].as_str()), (1, "d"));
        let err = parse_for(&["index-descriptor:a=b"], 1, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("single-platform"), "{err}");
        let err = parse(&["bogus:a=b"], 2).unwrap_err().to_string();
        assert!(err.contains("unknown type \"bogus\""), "{err}");
        assert!(parse(&["novalue"], 1).is_err());
        assert!(parse(&["index[linux/amd64]:a=b"], 2).is_err());
        assert!(parse(&["manifest[linux/amd64:a=b"], 2).is_err());
    }
}
