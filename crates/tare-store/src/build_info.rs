//! What the builder records about how an image was made: [`BuildInfo`], kept in the image
//! record (`images/<id>.json`, key `build_info`). tare-build writes it, `tare squash` carries
//! it over ([`BuildInfo::squashed`]); tare-size, `tare history` and `tare inspect` read it.
//! Images from anywhere else (pull, load, import, commit) have none.

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;

/// The builder's record of an image.
///
/// Stored as JSON; every field may be missing (records written by older versions), and a
/// record that does not have this shape reads as no record at all (the image record reads it
/// leniently).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The Dockerfile's name as given to the build (`-f`, default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// The build context directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// How many of the image's layers (bottom first) came from the base image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_layers: Option<usize>,
    /// One item per entry of the config's history, in order: the step that made it, `None`
    /// for entries no Dockerfile step made (the base image's, a squash's).
    #[serde(default)]
    pub history: Vec<Option<StepOrigin>>,
    /// Set when `tare squash` (or `build --squash`) made this image from another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub squash: Option<SquashOrigin>,
}

/// The Dockerfile step that made one history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOrigin {
    /// The Dockerfile's name (as [`BuildInfo::dockerfile`]).
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// The stage the step belongs to: its `AS` name, else its 0-based index as text (as the
    /// build's progress names it). Absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// Where a squashed image came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquashOrigin {
    /// The image that was squashed.
    pub image: Digest,
    /// Index of its first squashed layer.
    pub from: usize,
}

impl BuildInfo {
    /// The Dockerfile line of each of `entries` history entries (`None` where unknown).
    pub fn history_lines(&self, entries: usize) -> Vec<Option<usize>> {
        let mut out = vec![None; entries];
        for (slot, origin) in out.iter_mut().zip(&self.history) {
            *slot = origin.as_ref().map(|o| o.line);
        }
        out
    }

    /// The record of the image made by squashing `image`'s layers from `from` on into one
    /// (one history entry appended, which no step made): the base layer count is cut to
    /// `from`, and the squash is noted.
    pub fn squashed(&self, image: &Digest, from: usize) -> BuildInfo {
        let mut info = self.clone();
        if !info.history.is_empty() {
            info.history.push(None);
        }
        info.base_layers = info.base_layers.map(|b| b.min(from));
        info.squash = Some(SquashOrigin {
            image: *image,
            from,
        });
        info
    }
}

/// Reads an optional [`BuildInfo`], taking anything that is not one (a record edited by hand,
/// or written by a tare that stored another shape) as none: the image stays readable, only
/// the builder's details are lost.
pub(crate) fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BuildInfo>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What tare-build wrote before `BuildInfo` was typed (and `tare squash` then added).
    const OLD_RECORD: &str = r#"{
        "dockerfile": "Dockerfile.web",
        "context": "/src/app",
        "base_layers": 1,
        "history": [null, {"file": "Dockerfile.web", "line": 3}, {"file": "Dockerfile.web", "line": 4}],
        "squash": {"image": "sha256:0000000000000000000000000000000000000000000000000000000000000001", "from": 1}
    }"#;

    #[test]
    fn old_records_read_as_typed() {
        let info: BuildInfo = serde_json::from_str(OLD_RECORD).unwrap();
        assert_eq!(info.dockerfile.as_deref(), Some("Dockerfile.web"));
        assert_eq!(info.context.as_deref(), Some("/src/app"));
        assert_eq!(info.base_layers, Some(1));
        assert_eq!(info.history_lines(4), vec![None, Some(3), Some(4), None]);
        assert_eq!(info.history[1].as_ref().unwrap().stage, None);
        assert_eq!(info.squash.as_ref().unwrap().from, 1);
    }

    #[test]
    fn written_records_keep_the_old_keys() {
        let info = BuildInfo {
            dockerfile: Some("Dockerfile".into()),
            context: Some("/c".into()),
            base_layers: Some(2),
            history: vec![
                None,
                Some(StepOrigin {
                    file: "Dockerfile".into(),
                    line: 5,
                    stage: Some("build".into()),
                }),
            ],
            squash: None,
        };
        let value = serde_json::to_value(&info).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "dockerfile": "Dockerfile",
                "context": "/c",
                "base_layers": 2,
                "history": [null, {"file": "Dockerfile", "line": 5, "stage": "build"}],
            })
        );
        assert_eq!(serde_json::from_value::<BuildInfo>(value).unwrap(), info);
    }

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "lenient")]
        build_info: Option<BuildInfo>,
    }

    #[test]
    fn a_record_of_another_shape_reads_as_none() {
        let read = |json: &str| serde_json::from_str::<Holder>(json).unwrap().build_info;
        assert_eq!(read(r#"{"build_info": {"history": "not a list"}}"#), None);
        assert_eq!(read(r#"{"build_info": 7}"#), None);
        assert_eq!(read(r#"{"build_info": null}"#), None);
        assert_eq!(read(r#"{}"#), None);
        assert!(read(r#"{"build_info": {"base_layers": 3, "other": true}}"#).is_some());
    }

    #[test]
    fn squashing_appends_an_anonymous_entry_and_cuts_the_base() {
        let info: BuildInfo = serde_json::from_str(OLD_RECORD).unwrap();
        let id = Digest::of(b"x");
        let squashed = info.squashed(&id, 0);
        assert_eq!(squashed.history.len(), 4);
        assert_eq!(squashed.history[3], None);
        assert_eq!(squashed.base_layers, Some(0));
        assert_eq!(squashed.squash, Some(SquashOrigin { image: id, from: 0 }));
    }
}
