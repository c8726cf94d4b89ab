//! Snapshots: each layer extracted once, in overlayfs format, for use as an overlay lowerdir.

use std::fs::{self, File};
use std::path::PathBuf;

use rustix::fs::{flock, FlockOperation};
use tare_store::{Digest, Store};

use crate::apply::{apply, ApplyMode};
use crate::error::{io, Error, Result};

/// The directory `ROOT/snapshots/<hex>/` holding the diff `diff_id` extracted, with OCI
/// whiteouts turned into overlayfs whiteouts. Extracted on first use, under a per-snapshot
/// lock, into a temporary directory renamed into place once the blob's digest is verified, so
/// concurrent callers and crashes never see a half-extracted or tampered snapshot.
pub fn snapshot(store: &Store, diff_id: &Digest) -> Result<PathBuf> {
    let path = store.snapshot_path(diff_id);
    if path.is_dir() {
        return Ok(path);
    }
    let lock_path = path.with_extension("lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("opening", &lock_path))?;
    flock(&lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
        op: "locking",
        path: lock_path.clone(),
        source: e.into(),
    })?;
    if path.is_dir() {
        return Ok(path);
    }
    let layer = store.layer(diff_id)?;
    // Extracted in the store's temporary area (reclaimed if we are killed) and renamed into
    // place only once the whole blob has been read and its digest verified.
    let tmp = store.temp_dir("extract-")?;
    fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io("chmod", tmp.path()))?;
    let mut reader = crate::open_layer(store, &layer)?;
    apply(
        &mut reader,
        tmp.path(),
        ApplyMode::Overlay,
        &format!("layer {}", layer.digest),
    )?;
    reader.finish()?;
    let tmp_path = tmp.keep();
    fs::rename(&tmp_path, &path).map_err(io("renaming into", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, LayerSink};

    #[test]
    fn a_layer_is_extracted_once_into_its_snapshot_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = tar::Builder::new(LayerSink::new(&store, Compression::Gzip).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h, "etc/hello", &b"hello"[..]).unwrap();
        let layer = b.into_inner().unwrap().finish().unwrap();
        store.record_layer(&layer).unwrap();
        let path = snapshot(&store, &layer.diff_id).unwrap();
        assert_eq!(path, store.snapshot_path(&layer.diff_id));
        assert_eq!(fs::read(path.join("etc/hello")).unwrap(), b"hello");
        fs::write(path.join("marker"), b"").unwrap();
        // The second call finds the existing snapshot rather than extracting again.
        let again = snapshot(&store, &layer.diff_id).unwrap();
        assert!(again.join("marker").exists());
        let unknown = tare_store::Digest::of(b"no such layer");
        assert!(snapshot(&store, &unknown).is_err());
        assert!(!store.snapshot_path(&unknown).exists());
    }
}
