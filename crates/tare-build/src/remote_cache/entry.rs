//! One cache entry: its config blob ([`Entry`]), the checks before it is used, and its manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tare_store::{Digest, LayerInfo};

use super::{
    ANNOTATION_CREATED, ANNOTATION_KEY, ANNOTATION_PARENT, CHILD_PREFIX, ENTRY_FORMAT,
    ENTRY_MEDIA_TYPE, OCI_MANIFEST, TAG_PREFIX,
};
use crate::cache::Record;
use crate::error::Error;
use crate::key::{digest_of, CACHE_FORMAT};

/// The tag of a key's entry.
pub fn tag_of(key: &str) -> String {
    format!("{TAG_PREFIX}{key}")
}

/// The prefix of the second tags ([`child_tag`]) of the entries made on the state `parent`.
pub(super) fn children_prefix(parent: &str) -> String {
    let hex = Digest::of(parent.as_bytes()).hex();
    format!("{CHILD_PREFIX}{}-", &hex[..32])
}

/// The second tag of the entry of `key` on the state `parent` (format 2): what
/// `--explain-cache` lists to find the entries made after the same previous step.
pub fn child_tag(parent: &str, key: &str) -> String {
    format!("{}{key}", children_prefix(parent))
}

/// One cache entry: the config blob of the entry's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// [`ENTRY_FORMAT`].
    pub format: u32,
    /// The local cache's [`CACHE_FORMAT`] (the keys' version).
    pub cache_format: u32,
    /// The step's key (the entry's tag is [`TAG_PREFIX`](super::TAG_PREFIX) and this).
    pub key: String,
    /// The key of the state the step ran on.
    pub parent: String,
    /// The step's encoded `StepKey`, which hashes to `key`.
    pub inputs: Value,
    /// The layer blob (as it is in the registry), `None` for a step without a layer.
    pub layer: Option<LayerInfo>,
    /// File bytes of the layer, as docker counts a layer's size.
    #[serde(default)]
    pub content_size: Option<u64>,
    /// RFC 3339 time the step first ran (the image's history keeps it).
    pub created: String,
}

impl Entry {
    pub(super) fn of(record: &Record, content_size: Option<u64>) -> Entry {
        Entry {
            format: ENTRY_FORMAT,
            cache_format: CACHE_FORMAT,
            key: record.key.clone(),
            parent: record.parent.clone(),
            inputs: record.inputs.clone(),
            layer: record.layer.clone(),
            content_size,
            created: record.created.clone(),
        }
    }

    /// Why this entry may not answer the step with `key` on the state `parent`, if it may not.
    pub(super) fn refuse(&self, key: &str, parent: &str) -> Option<String> {
        if self.format == 0 || self.format > ENTRY_FORMAT {
            return Some(format!(
                "entry format {} (this tare reads 1 to {ENTRY_FORMAT})",
                self.format
            ));
        }
        if self.cache_format != CACHE_FORMAT {
            return Some(format!(
                "cache format {} (this tare keys steps with {CACHE_FORMAT})",
                self.cache_format
            ));
        }
        if self.key != key {
            return Some(format!(
                "it is filed under {key} but claims key {}",
                self.key
            ));
        }
        if self.parent != parent {
            return Some(format!(
                "it claims the parent {}, but the step runs on {parent}",
                self.parent
            ));
        }
        if digest_of(&self.inputs) != key {
            return Some("its inputs do not hash to its key".into());
        }
        if chrono::DateTime::parse_from_rfc3339(&self.created).is_err() {
            return Some(format!("its time {:?} is not RFC 3339", self.created));
        }
        if let Some(layer) = &self.layer {
            match tare_layer::Compression::from_media_type(&layer.media_type) {
                None => return Some(format!("unknown layer type {:?}", layer.media_type)),
                Some(tare_layer::Compression::None)
                    if layer.digest != layer.diff_id || layer.size != layer.compressed_size =>
                {
                    return Some("an uncompressed layer whose digest is not its diffID".into())
                }
                Some(_) => {}
            }
        }
        None
    }

    pub(super) fn record(&self) -> Record {
        Record {
            format: CACHE_FORMAT,
            key: self.key.clone(),
            parent: self.parent.clone(),
            inputs: self.inputs.clone(),
            layer: self.layer.clone(),
            created: self.created.clone(),
            used: 0,
        }
    }
}

/// The fields of an entry's manifest that are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EntryManifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// The manifest of an entry whose config blob is `config` (`size` bytes).
pub(super) fn manifest_of(entry: &Entry, config: &Digest, size: usize) -> Result<Vec<u8>, Error> {
    let layers: Vec<Value> = entry
        .layer
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.compressed_size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": ENTRY_MEDIA_TYPE, "digest": config.to_string(), "size": size},
        "layers": layers,
        "annotations": {
            ANNOTATION_KEY: entry.key,
            ANNOTATION_PARENT: entry.parent,
            ANNOTATION_CREATED: entry.created,
        },
    });
    serde_json::to_vec(&manifest).map_err(|error| Error::Encode {
        what: "a cache entry's manifest",
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let inputs = json!({"run": {"parent": "p", "argv": ["true"]}});
        let layer = LayerInfo {
            digest: Digest::of(b"tar"),
            diff_id: Digest::of(b"tar"),
            size: 3,
            compressed_size: 3,
            media_type: tare_store::MEDIA_TYPE_LAYER_TAR.into(),
        };
        Entry {
            format: ENTRY_FORMAT,
            cache_format: CACHE_FORMAT,
            key: digest_of(&inputs),
            parent: "p".into(),
            inputs,
            layer: Some(layer),
            content_size: Some(0),
            created: "2026-11-30T00:00:00Z".into(),
        }
    }

    #[test]
    fn an_entry_answers_only_its_own_key_on_its_own_parent() {
        let e = entry();
        let key = e.key.clone();
        assert_eq!(e.refuse(&key, "p"), None);
        assert!(e.refuse(&key, "q").is_some_and(|r| r.contains("parent")));
        assert!(e.refuse("other", "p").is_some());
        let mut forged = entry();
        forged.inputs = json!({"run": {"parent": "p", "argv": ["false"]}});
        assert!(forged.refuse(&key, "p").is_some_and(|r| r.contains("hash")));
        let mut future = entry();
        future.format = ENTRY_FORMAT + 1;
        assert!(future.refuse(&key, "p").is_some());
        let mut old = entry();
        old.format = 1;
        assert_eq!(
            old.refuse(&key, "p"),
            None,
            "format 1 entries are still read"
        );
        let mut layer = entry();
        if let Some(l) = layer.layer.as_mut() {
            l.diff_id = Digest::of(b"other");
        }
        assert!(layer.refuse(&key, "p").is_some());
    }
}
