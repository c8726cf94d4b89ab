//! A step's directory becomes a layer in the store and a snapshot for the next steps.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tare_layer::diff::{self, DiffOptions};
use tare_layer::{Compression, LayerSink};
use tare_store::{LayerInfo, Store};

use crate::error::{io_err, Error};
use crate::tree::{Layers, SourceTree};

/// What kind of directory a step left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upper {
    /// An overlayfs upper directory (RUN): whiteouts and opaque markers to convert.
    Overlay,
    /// A plain tree (COPY, ADD, WORKDIR).
    Plain,
}

/// Writes `upper` as a layer (uncompressed) into the store and registers the directory as the
/// snapshot of its diff. A step that changed nothing still adds an (empty) layer, as the
/// BuildKit of the reference docker (20.10) does; the layer count must match it.
/// `mtime_clamp` (`--rewrite-timestamp`, [`crate::Build::mtime_clamp`]) lowers later mtimes to
/// the epoch in the tar and in `upper`, which becomes the snapshot.
pub fn commit(
    store: &Store,
    upper: &Path,
    kind: Upper,
    lower: &Layers,
    mtime_clamp: Option<u64>,
) -> Result<(LayerInfo, PathBuf), Error> {
    // A directory the step only copied up (overlayfs does that for parents of new files)
    // is kept only if something below it changed, or its own metadata did.
    let unchanged = |rel: &Path, meta: &fs::Metadata| -> bool {
        let Some(rel) = rel.to_str() else {
            return false;
        };
        match lower.lstat(rel) {
            Ok(Some(node)) => {
                node.meta.is_dir()
                    && node.meta.mode() == meta.mode()
                    && node.meta.uid() == meta.uid()
                    && node.meta.gid() == meta.gid()
            }
            _ => false,
        }
    };
    let options = DiffOptions {
        unchanged_dir: Some(&unchanged),
        mtime_clamp,
    };
    // Stored uncompressed, as docker's own image store keeps build layers: compressing a
    // 150 MB layer costs seconds on every build, while exporters and pushes compress once.
    let mut sink = LayerSink::new(store, Compression::None)?;
    match kind {
        Upper::Overlay => diff::write_overlay_diff(upper, &mut sink, options)?,
        Upper::Plain => diff::write_tree_with(
            upper,
            &mut sink,
            DiffOptions {
                mtime_clamp,
                ..DiffOptions::default()
            },
        )?,
    };
    let info = finish(store, sink)?;
    let snapshot = register_snapshot(store, &info, upper)?;
    Ok((info, snapshot))
}

/// Writes a COPY held in memory as a layer into the store, streaming its sources into the
/// tar. Its snapshot is not made here: the returned path is where [`snapshot_of`] extracts
/// it when a later step reads the tree (see `StageOut::tree`), so a COPY that nothing builds
/// on writes no file but the blob, and a rebuild whose snapshot exists writes nothing more.
/// `mtime_clamp` lowers later mtimes to it, as [`commit`] does. With `streamed`, the content
/// digest of every source file read is kept there (a cold COPY's key is made from them).
/// `progress` is told the bytes written so far, a few times a second.
pub fn commit_plan(
    store: &Store,
    plan: &crate::plan::Plan,
    mtime_clamp: Option<u64>,
    streamed: Option<&mut crate::plan::Streamed>,
    progress: &dyn Fn(u64),
) -> Result<(LayerInfo, PathBuf), Error> {
    let mut sink = LayerSink::new(store, Compression::None)?;
    let mut counting = Counting {
        inner: &mut sink,
        done: 0,
        last: std::time::Instant::now(),
        progress,
    };
    plan.write(&mut counting, mtime_clamp, streamed)?;
    progress(counting.done);
    let info = finish(store, sink)?;
    let snapshot = store.snapshot_path(&info.diff_id);
    Ok((info, snapshot))
}

/// A writer that tells `progress` how many bytes went through it, at most ten times a second.
struct Counting<'a, W> {
    inner: W,
    done: u64,
    last: std::time::Instant,
    progress: &'a dyn Fn(u64),
}

impl<W: std::io::Write> std::io::Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        if self.last.elapsed() >= std::time::Duration::from_millis(100) {
            (self.progress)(self.done);
            self.last = std::time::Instant::now();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Commits the blob and records the layer.
fn finish(store: &Store, sink: LayerSink) -> Result<LayerInfo, Error> {
    let started = std::time::Instant::now();
    let info = sink.finish()?;
    store.record_layer(&info)?;
    tracing::debug!(
        diff_id = %info.diff_id,
        size = info.size,
        finish_ms = started.elapsed().as_millis() as u64,
        "layer committed"
    );
    Ok(info)
}

/// Makes `dir` the snapshot of `layer` (renamed into the store's snapshot directory), unless
/// one exists already; returns the snapshot's path.
fn register_snapshot(store: &Store, layer: &LayerInfo, dir: &Path) -> Result<PathBuf, Error> {
    let dest = store.snapshot_path(&layer.diff_id);
    if dest.is_dir() {
        remove_dir(dir)?;
        return Ok(dest);
    }
    // The same directory layout as tare_layer::snapshot's extraction: world-readable root.
    fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(io_err(dir))?;
    match fs::rename(dir, &dest) {
        Ok(()) => Ok(dest),
        // Another build registered the same diff first: use theirs.
        Err(_) if dest.is_dir() => {
            remove_dir(dir)?;
            Ok(dest)
        }
        Err(e) => Err(io_err(&dest)(e)),
    }
}

/// The snapshot directory of a stored layer, extracting it when needed.
pub fn snapshot_of(store: &Store, diff_id: &tare_store::Digest) -> Result<PathBuf, Error> {
    Ok(tare_layer::snapshot(store, diff_id)?)
}

pub(crate) fn remove_dir(dir: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}
