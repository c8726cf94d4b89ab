//! Manifests and indexes as the registry serves them: Docker v2 schema 2 and OCI, single-image
//! manifests and multi-platform lists. Only the fields tare needs are parsed; the bytes are
//! kept as received, so digests never change.

use serde::Deserialize;
use tare_store::Digest;

use crate::error::{printable, Error, Result};
use crate::platform::Platform;

/// Media type of a Docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker manifest list (one manifest per platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of a Docker image config blob.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of an OCI image config blob.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// What `Accept` asks for: every manifest kind tare understands.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or config tare accepts (registries cap manifests at 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config tare accepts, in bytes (configs with long histories run to a few MiB).
pub const MAX_CONFIG: u64 = 16 << 20;

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content it points to; empty when the registry left it out.
    #[serde(default)]
    pub media_type: String,
    /// The content's digest as sent, not yet parsed (the `digest` method parses it).
    pub digest: String,
    /// The content's length in bytes.
    pub size: u64,
    /// For an index entry, the platform of the manifest it points to; `None` otherwise.
    #[serde(default)]
    pub platform: Option<PlatformField>,
}

/// The platform of an index entry, as the registry sent it.
#[derive(Clone, Debug, Deserialize)]
pub struct PlatformField {
    /// The operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// The CPU architecture in Go's names (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// The CPU variant (`v8`); `None` when not given.
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// A parsed manifest body.
#[derive(Debug)]
pub enum Parsed {
    /// A single-image manifest.
    Image(ImageManifest),
    /// A manifest list or OCI index: its entries.
    Index(Vec<Descriptor>),
}

/// A single-image manifest.
#[derive(Debug)]
pub struct ImageManifest {
    /// The manifest's media type (Docker or OCI).
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// Parses a manifest; `content_type` is the registry's header, used when the body does not
/// name its own media type (allowed for OCI).
pub fn parse(bytes: &[u8], content_type: Option<&str>, registry: &str) -> Result<Parsed> {
    let invalid = |reason: String| Error::Invalid {
        what: "manifest".into(),
        registry: registry.to_string(),
        reason,
    };
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if raw.schema_version != Some(2) {
        return Err(Error::Unsupported {
            what: "manifest schema version".into(),
            media_type: format!("{:?} (only schema 2 is supported)", raw.schema_version),
        });
    }
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| c != "application/json" && !c.is_empty());
    let media_type = raw.media_type.or(header).unwrap_or_else(|| {
        if raw.manifests.is_some() {
            OCI_INDEX.to_string()
        } else {
            OCI_MANIFEST.to_string()
        }
    });
    match media_type.as_str() {
        DOCKER_LIST | OCI_INDEX => {
            Ok(Parsed::Index(raw.manifests.ok_or_else(|| {
                invalid("an index without manifests".into())
            })?))
        }
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let config = raw
                .config
                .ok_or_else(|| invalid("no config descriptor".into()))?;
            if config.media_type != DOCKER_CONFIG && config.media_type != OCI_CONFIG {
                return Err(Error::Unsupported {
                    what: "config type (not a container image)".into(),
                    media_type: printable(&config.media_type),
                });
            }
            Ok(Parsed::Image(ImageManifest {
                media_type,
                config,
                layers: raw.layers.unwrap_or_default(),
            }))
        }
        other => Err(Error::Unsupported {
            what: "manifest type".into(),
            media_type: printable(other),
        }),
    }
}

impl Descriptor {
    /// The digest as tare's type; only sha256 is supported.
    pub fn digest(&self, registry: &str) -> Result<Digest> {
        self.digest.parse().map_err(|_| Error::Invalid {
            what: "descriptor".into(),
            registry: registry.to_string(),
            reason: format!("unsupported digest {:?}", self.digest),
        })
    }
}

/// Picks the entry of an index that runs on `platform`.
pub fn select<'a>(
    entries: &'a [Descriptor],
    platform: &Platform,
    reference: &str,
) -> Result<&'a Descriptor> {
    let found = entries.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            platform.matches(&p.os, &p.architecture, p.variant.as_deref())
                && matches!(d.media_type.as_str(), DOCKER_MANIFEST | OCI_MANIFEST | "")
        })
    });
    found.ok_or_else(|| {
        let available: Vec<String> = entries
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(|p| match &p.variant {
                Some(v) if !v.is_empty() => format!("{}/{}/{}", p.os, p.architecture, v),
                _ => format!("{}/{}", p.os, p.architecture),
            })
            .map(|p| printable(&p))
            .collect();
        Error::NoPlatform {
            reference: reference.to_string(),
            platform: platform.to_string(),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn an_index_resolves_to_the_requested_platform() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":2,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,"platform":{{"os":"unknown","architecture":"unknown"}}}}]}}"#,
            "1".repeat(64)
        );
        let Parsed::Index(entries) = parse(text.as_bytes(), None, "r").unwrap() else {
            panic!("not an index")
        };
        let arm = select(&entries, &"linux/arm64".parse().unwrap(), "x").unwrap();
        assert_eq!(arm.size, 2);
        let amd = select(&entries, &"linux/amd64".parse().unwrap(), "x").unwrap();
        assert_eq!(amd.size, 1);
        let err = select(&entries, &"linux/s390x".parse().unwrap(), "x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x has no image for platform linux/s390x (it has: linux/amd64, linux/arm64/v8)"
        );
    }

    #[test]
    fn manifests_without_a_media_type_use_the_header_or_their_shape() {
        let text = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D}","size":0}},"layers":[]}}"#
        );
        match parse(text.as_bytes(), Some("application/json"), "r").unwrap() {
            Parsed::Image(m) => assert_eq!(m.media_type, OCI_MANIFEST),
            Parsed::Index(_) => panic!("an image manifest parsed as an index"),
        }
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert!(parse(schema1, None, "r").is_err());
        assert!(parse(b"not json", None, "r").is_err());
    }
}
