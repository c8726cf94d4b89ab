//! OCI layout directories into the store: the directory is streamed as a tar built on the fly,
//! so [`crate::archive::load`] checks it like any archive. One image of the layout can be
//! picked by tag or digest (`--build-context NAME=oci-layout://PATH@TAG`).

use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;
use tare_store::{Image, Store};

use crate::archive::LoadedImage;
use crate::error::{Error, Result};

/// The most bytes of a layout's `index.json` read to pick an image.
const MAX_INDEX: u64 = 4 << 20;

/// Loads every image of the OCI layout `dir` (as `tare load DIR` does).
pub fn load_dir(store: &Store, dir: &Path, name: &str) -> Result<Vec<LoadedImage>> {
    load_with_index(store, dir, None, name)
}

/// Loads the one image of the OCI layout `dir` that `pick` names: a tag (the
/// `org.opencontainers.image.ref.name` annotation, or the tag of `io.containerd.image.name`),
/// a digest (`sha256:…`), or `None` when the layout holds one image. The image is stored
/// without a name.
pub fn load_one(store: &Store, dir: &Path, pick: Option<&str>, name: &str) -> Result<Image> {
    let bad = |reason: String| Error::BadArchive {
        archive: name.to_string(),
        reason,
    };
    let path = dir.join("index.json");
    let file = std::fs::File::open(&path).map_err(|e| Error::Stream {
        what: format!("opening {}", path.display()),
        source: e,
    })?;
    let mut text = Vec::new();
    file.take(MAX_INDEX + 1)
        .read_to_end(&mut text)
        .map_err(|e| Error::Stream {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
    if text.len() as u64 > MAX_INDEX {
        return Err(bad(format!("index.json is larger than {MAX_INDEX} bytes")));
    }
    let mut index: Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("index.json: {e}")))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names = |d: &Value| -> Vec<String> {
        let ann = &d["annotations"];
        let mut out = Vec::new();
        for key in [
            "org.opencontainers.image.ref.name",
            "io.containerd.image.name",
        ] {
            if let Some(name) = ann[key].as_str() {
                out.push(name.to_string());
                // A full name (`reg/app:1`) also answers to its tag.
                if let Some((_, tag)) = name.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                    out.push(tag.to_string());
                }
            }
        }
        out
    };
    let chosen: Vec<&Value> = match pick {
        Some(p) if p.starts_with("sha256:") => manifests
            .iter()
            .filter(|d| d["digest"].as_str() == Some(p))
            .collect(),
        Some(p) => manifests
            .iter()
            .filter(|d| names(d).iter().any(|n| n == p))
            .collect(),
        None => manifests.iter().collect(),
    };
    let mut desc = match chosen.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let have: Vec<String> = manifests.iter().flat_map(names).collect();
            return Err(bad(match pick {
                Some(p) => format!("no image {p:?} in the layout (it has: {})", have.join(", ")),
                None => "the layout holds no image".to_string(),
            }));
        }
        _ => {
            return Err(bad(
                "the layout holds several images: name one with @TAG or @sha256:…".into(),
            ))
        }
    };
    // Without a name, the loader does not tag the image.
    if let Some(obj) = desc.as_object_mut() {
        obj.remove("annotations");
    }
    index["manifests"] = Value::Array(vec![desc]);
    let index = serde_json::to_vec(&index).map_err(|e| bad(format!("index.json: {e}")))?;
    load_with_index(store, dir, Some(index), name)?
        .into_iter()
        .next()
        .map(|loaded| loaded.image)
        .ok_or_else(|| bad("the chosen manifest made no image".into()))
}

/// Streams `dir` as a tar into the loader; `index` replaces its `index.json`.
fn load_with_index(
    store: &Store,
    dir: &Path,
    index: Option<Vec<u8>>,
    name: &str,
) -> Result<Vec<LoadedImage>> {
    let (reader, writer) = std::io::pipe().map_err(|e| Error::Stream {
        what: "making a pipe".into(),
        source: e,
    })?;
    let dir = dir.to_path_buf();
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut tar = tar::Builder::new(writer);
        tar.follow_symlinks(false);
        match index {
            None => tar.append_dir_all(".", &dir)?,
            Some(index) => {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    let file_name = entry.file_name();
                    if file_name == "index.json" {
                        continue;
                    }
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        tar.append_dir_all(&file_name, &path)?;
                    } else {
                        tar.append_path_with_name(&path, &file_name)?;
                    }
                }
                let mut header = tar::Header::new_gnu();
                header.set_size(index.len() as u64);
                header.set_mode(0o644);
                header.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut header, "index.json", index.as_slice())?;
            }
        }
        tar.into_inner()?.flush()
    });
    let result = crate::archive::load(store, Box::new(reader) as Box<dyn Read>, name);
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("tar thread panicked")));
    let images = result?;
    produced.map_err(|e| Error::Stream {
        what: format!("reading {name}"),
        source: e,
    })?;
    Ok(images)
}
