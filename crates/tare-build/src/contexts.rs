//! Named build contexts (`--build-context NAME=PATH|docker-image://REF|oci-layout://PATH[@TAG]`):
//! what `FROM NAME`, `COPY --from=NAME` and `RUN --mount from=NAME` read instead of the image or
//! stage of that name. The steps resolve them (`steps::from::lookup`); this module only holds
//! and parses the values, so the options can name it without a cycle.

use std::path::PathBuf;

use crate::error::Error;

/// One `--build-context` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory: its files, as the main context's (COPY --from, RUN --mount).
    Dir(PathBuf),
    /// `docker-image://REF`: an image, from the store or its registry.
    Image(String),
    /// `oci-layout://PATH[@TAG|@sha256:…]`: the image of an OCI layout directory.
    OciLayout {
        /// The layout directory.
        path: PathBuf,
        /// The tag or digest after `@`, choosing among the layout's images.
        pick: Option<String>,
    },
}

impl NamedContext {
    /// Parses `NAME=VALUE` as buildx does; the name is matched without regard to case.
    pub fn parse(spec: &str) -> Result<(String, NamedContext), Error> {
        let bad = |why: &str| Error::BadOption {
            flag: "--build-context",
            value: format!("{spec:?}"),
            reason: why.to_string(),
        };
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            bad("expected NAME=PATH, NAME=docker-image://REF or NAME=oci-layout://PATH")
        })?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || value.is_empty() {
            return Err(bad("empty name or value"));
        }
        let context = if let Some(reference) = value.strip_prefix("docker-image://") {
            tare_store::Reference::parse(reference)
                .map_err(|e| bad(&format!("invalid image reference: {e}")))?;
            NamedContext::Image(reference.to_string())
        } else if let Some(rest) = value.strip_prefix("oci-layout://") {
            let (path, pick) = match rest.rsplit_once('@') {
                Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
                _ => (rest, None),
            };
            let path = PathBuf::from(path);
            if !path.join("index.json").is_file() {
                return Err(bad(&format!(
                    "{} is not an OCI layout (no index.json)",
                    path.display()
                )));
            }
            NamedContext::OciLayout { path, pick }
        } else if let Some((scheme, _)) = value.split_once("://") {
            return Err(bad(&format!(
                "unsupported kind {scheme}:// (a directory, docker-image:// or oci-layout://)"
            )));
        } else {
            let path = PathBuf::from(value);
            if !path.is_dir() {
                return Err(bad(&format!("{} is not a directory", path.display())));
            }
            NamedContext::Dir(path)
        };
        Ok((name, context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_context_values_parse_as_buildx_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(
            NamedContext::parse(&format!("Src={d}")).unwrap(),
            ("src".to_string(), NamedContext::Dir(d.into()))
        );
        assert_eq!(
            NamedContext::parse("alpine=docker-image://reg.example:5000/alpine:3").unwrap(),
            (
                "alpine".to_string(),
                NamedContext::Image("reg.example:5000/alpine:3".into())
            )
        );
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        assert_eq!(
            NamedContext::parse(&format!("base=oci-layout://{d}@v1"))
                .unwrap()
                .1,
            NamedContext::OciLayout {
                path: d.into(),
                pick: Some("v1".into())
            }
        );
        for (spec, why) in [
            ("noequals", "expected NAME=PATH"),
            ("a=", "empty"),
            ("a=/nonexistent/dir", "is not a directory"),
            ("a=docker-image://UPPER", "invalid image reference"),
            ("a=oci-layout:///nonexistent", "not an OCI layout"),
            (
                "a=https://example.invalid/x.git",
                "unsupported kind https://",
            ),
        ] {
            let e = NamedContext::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
        }
    }
}
