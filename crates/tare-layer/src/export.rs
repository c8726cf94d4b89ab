//! Flattening an image's layers into one rootfs tar, whiteouts honoured, without extracting:
//! the layers replayed by [`crate::replay`] with nothing below them. A one-layer image needs
//! only the writing pass; more layers are read twice (headers, then content), and a tampered
//! blob fails the first pass, before anything is written.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use tare_store::{LayerInfo, Store};

use crate::error::{Error, Result};
use crate::replay::{self, Plan};

/// Writes the merged filesystem of `layers` (bottom first) as a tar to `out`.
pub fn export<W: Write>(store: &Store, layers: &[LayerInfo], out: W) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    export_into(store, layers, Path::new(""), &mut tar)?;
    tar.into_inner().map_err(|e| Error::Stream {
        what: "writing the exported tar".into(),
        source: e,
    })
}

/// Appends the merged filesystem of `layers` to `tar`, every path (and hard link target)
/// under `prefix` (empty: at the top), for one tar of several filesystems, as BuildKit's
/// tar exporter writes each platform of a multi-platform build under its own directory.
/// The caller writes the prefix's own directory entry.
pub fn export_into<W: Write>(
    store: &Store,
    layers: &[LayerInfo],
    prefix: &Path,
    tar: &mut tar::Builder<W>,
) -> Result<()> {
    let plan = if layers.len() == 1 {
        Plan::one_layer()
    } else {
        replay::plan(store, layers, &BTreeSet::new(), &|_| true)?
    };
    replay::write(store, layers, &plan, prefix, tar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, LayerSink};
    use std::io::Read;

    fn layer(store: &Store, entries: &[(&str, &[u8])]) -> LayerInfo {
        let mut b = tar::Builder::new(LayerSink::new(store, Compression::None).unwrap());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let layer = b.into_inner().unwrap().finish().unwrap();
        store.record_layer(&layer).unwrap();
        layer
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn whiteouts_hide_lower_paths_and_a_nameless_whiteout_hides_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lower = layer(&store, &[("d/f", b"f"), ("d/gone", b"g"), ("e/x", b"x")]);
        // `.wh.` names no path: it must not hide its parent directory `d`.
        let upper = layer(
            &store,
            &[
                ("d/.wh.gone", b""),
                ("d/.wh.", b""),
                ("e/.wh..wh..opq", b""),
            ],
        );
        let out = export(&store, &[lower, upper], Vec::new()).unwrap();
        assert_eq!(names(&out), ["d/f"]);
    }

    #[test]
    fn a_hard_link_keeps_the_content_its_replaced_target_had() {
        // Layer 1: `a` and `b`, a hard link to it. Layer 2 rewrites `a` (overlay copies it up,
        // so `b` keeps the old bytes). The flattened tar must give `b` the old content and
        // must not make it a link to the new `a` (nor to a path written after it).
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = tar::Builder::new(LayerSink::new(&store, Compression::None).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(3);
        b.append_data(&mut h, "a", &b"old"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_mode(0o644);
        l.set_size(0);
        b.append_link(&mut l, "b", "a").unwrap();
        let lower = b.into_inner().unwrap().finish().unwrap();
        store.record_layer(&lower).unwrap();
        let upper = layer(&store, &[("a", b"new")]);

        let out = export(&store, &[lower, upper], Vec::new()).unwrap();
        let mut contents = std::collections::BTreeMap::new();
        let mut archive = tar::Archive::new(&out[..]);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            assert_ne!(
                entry.header().entry_type(),
                tar::EntryType::Link,
                "{path} must not be a link to the replaced target"
            );
            let mut data = String::new();
            entry.read_to_string(&mut data).unwrap();
            contents.insert(path, data);
        }
        assert_eq!(contents.get("a").map(String::as_str), Some("new"));
        assert_eq!(contents.get("b").map(String::as_str), Some("old"));
    }
}
