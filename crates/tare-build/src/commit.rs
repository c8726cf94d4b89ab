//! `tare commit`: a container's changes as one more layer on the image it was started from,
//! like `docker commit`.
//!
//! The new image's config is the image's own (changed by the caller, `--change`), with one
//! more history entry created by the container's command, as docker writes it. Unlike docker,
//! the run's command line and `-e` values do not become the image's CMD and ENV: tare's
//! container records keep only the command, and a commit that silently swaps the image's CMD
//! is a common surprise.

use std::path::{Path, PathBuf};

use tare_layer::copy_snapshot::CopySnapshot;
use tare_layer::diff::{self, DiffOptions};
use tare_layer::{Compression, LayerSink};
use tare_sandbox::containers::{Container, Containers};
use tare_store::config::History;
use tare_store::{Digest, Image, ImageConfig, LayerInfo, Reference, Store};

use crate::error::Error;

/// What a commit records besides the container's changes.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The author, stored in the config and the history entry.
    pub author: Option<String>,
    /// The history entry's comment.
    pub message: Option<String>,
    /// `created` of the image and its new history entry (RFC 3339).
    pub created: String,
    /// Tags given to the new image (none: it is known by its ID).
    pub tags: Vec<Reference>,
}

/// A container's changes as an overlayfs upper directory, for reading: its writable layer, or,
/// while it runs on a copy-based snapshot, hard links to what changed in its copy
/// (`CopySnapshot::link_upper`, in `containers/ID/changes-XXXXXX`, removed when dropped).
pub struct Changes {
    path: PathBuf,
    _links: Option<tempfile::TempDir>,
}

impl Changes {
    /// The upper directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The changes of the container `record` (see [`Changes`]).
pub fn container_changes(containers: &Containers, record: &Container) -> Result<Changes, Error> {
    let fail = |e: tare_layer::Error| Error::ContainerChanges {
        container: record.name.clone(),
        what: "reading its changes",
        source: Box::new(e.into()),
    };
    let copy = containers.copy_root_dir(&record.id);
    let stamps = containers.stamps_path(&record.id);
    let Some(snap) = CopySnapshot::open(&copy, &stamps).map_err(fail)? else {
        return Ok(Changes {
            path: containers.upper_dir(&record.id),
            _links: None,
        });
    };
    let dir = containers.dir(&record.id);
    let links = tempfile::Builder::new()
        .prefix("changes-")
        .tempdir_in(&dir)
        .map_err(crate::error::io_err(&dir))?;
    snap.link_upper(links.path()).map_err(fail)?;
    Ok(Changes {
        path: links.path().to_path_buf(),
        _links: Some(links),
    })
}

/// The image `record` was started from, checked to still have the layers it was started from.
pub fn container_image(store: &Store, record: &Container) -> Result<Image, Error> {
    let gone = |reason: &'static str| Error::ContainerImage {
        container: record.name.clone(),
        image: format!("{} ({})", record.image, record.image_id),
        reason,
    };
    let image_id: Digest = record
        .image_id
        .parse()
        .map_err(|_| gone("has a malformed ID"))?;
    let image = store
        .image_by_id(&image_id)
        .map_err(|_| gone("is no longer in the store"))?;
    let same_layers = image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.to_string())
        .eq(record.image_layers.iter().cloned());
    if !same_layers {
        return Err(gone("no longer has the layers it was started from"));
    }
    Ok(image)
}

/// Commits the changes of the container `record` (of `containers`) over `image` (from
/// [`container_image`]) with `config` (the image's config, already changed by the caller).
/// An unchanged container adds a history entry and no layer, as docker does.
pub fn commit_container(
    store: &Store,
    containers: &Containers,
    record: &Container,
    image: &Image,
    mut config: ImageConfig,
    options: CommitOptions,
) -> Result<Image, Error> {
    let changes = container_changes(containers, record)?;
    let upper = changes.path();
    let mut layers = image.layers.clone();
    let empty = diff::overlay_diff_is_empty(upper, DiffOptions::default()).map_err(|e| {
        Error::ContainerChanges {
            container: record.name.clone(),
            what: "reading its changes",
            source: Box::new(e.into()),
        }
    })?;
    if !empty {
        let layer = store_diff(store, record, upper)?;
        config.rootfs.diff_ids.push(layer.diff_id);
        layers.push(layer);
    }
    config.created = Some(options.created.clone());
    if options.author.is_some() {
        config.author.clone_from(&options.author);
    }
    config.history.push(History {
        created: Some(options.created),
        created_by: Some(record.command.join(" ")),
        author: options.author,
        comment: options.message,
        empty_layer: empty,
        ..History::default()
    });
    Ok(store.commit_image(&config, &layers, &options.tags, None)?)
}

/// Writes a container's writable layer (`upper`, in overlayfs form) into the store as an
/// uncompressed layer (as build layers are stored: exporters and pushes compress once).
pub fn store_diff(store: &Store, record: &Container, upper: &Path) -> Result<LayerInfo, Error> {
    let write = || -> Result<LayerInfo, Error> {
        let mut sink = LayerSink::new(store, Compression::None)?;
        diff::write_overlay_diff(upper, &mut sink, DiffOptions::default())?;
        Ok(sink.finish()?)
    };
    write().map_err(|e| Error::ContainerChanges {
        container: record.name.clone(),
        what: "writing its changes as a layer",
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with a one-layer image (`/base` holding "b") and a container started from it.
    fn setup(root: &Path) -> (Store, Containers, Container, Image) {
        let store = Store::open(root.join("store")).expect("store");
        let base = root.join("base");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("base"), "b").unwrap();
        let mut sink = LayerSink::new(&store, Compression::None).unwrap();
        diff::write_overlay_diff(&base, &mut sink, DiffOptions::default()).unwrap();
        let layer = sink.finish().unwrap();
        let mut config = ImageConfig::default();
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids.push(layer.diff_id);
        let image = store.commit_image(&config, &[layer], &[], None).unwrap();
        let containers = Containers::open(root).unwrap();
        let record = containers
            .create(
                Container {
                    id: String::new(),
                    name: String::new(),
                    image: "base".into(),
                    image_id: image.id.to_string(),
                    image_layers: vec![image.config.rootfs.diff_ids[0].to_string()],
                    command: vec!["sh".into(), "-c".into(), "true".into()],
                    created: 0,
                    owner_pid: None,
                    exit_code: Some(0),
                    finished: Some(0),
                    exec: Default::default(),
                },
                Some("c1"),
            )
            .unwrap();
        (store, containers, record, image)
    }

    fn options() -> CommitOptions {
        CommitOptions {
            author: Some("me".into()),
            message: Some("why".into()),
            created: "2026-01-02T03:04:05Z".into(),
            tags: vec![Reference::parse("committed:1").unwrap()],
        }
    }

    #[test]
    fn a_changed_container_adds_a_layer_and_a_history_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, containers, record, image) = setup(tmp.path());
        std::fs::write(containers.upper_dir(&record.id).join("new"), "n").unwrap();
        let base = container_image(&store, &record).unwrap();
        let out = commit_container(
            &store,
            &containers,
            &record,
            &base,
            base.config.clone(),
            options(),
        )
        .unwrap();
        assert_eq!(out.layers.len(), 2);
        assert_eq!(out.layers[0], image.layers[0]);
        assert_eq!(out.config.rootfs.diff_ids[1], out.layers[1].diff_id);
        let entry = out.config.history.last().unwrap();
        assert_eq!(entry.created_by.as_deref(), Some("sh -c true"));
        assert_eq!(entry.comment.as_deref(), Some("why"));
        assert_eq!(entry.author.as_deref(), Some("me"));
        assert!(!entry.empty_layer);
        assert_eq!(out.config.author.as_deref(), Some("me"));
        assert_eq!(out.config.created.as_deref(), Some("2026-01-02T03:04:05Z"));
        assert_eq!(
            store.resolve("committed:1").unwrap().id,
            out.id,
            "the tag names the new image"
        );
    }

    #[test]
    fn an_unchanged_container_adds_only_an_empty_history_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, containers, record, image) = setup(tmp.path());
        let out = commit_container(
            &store,
            &containers,
            &record,
            &image,
            image.config.clone(),
            CommitOptions::default(),
        )
        .unwrap();
        assert_eq!(out.layers, image.layers);
        assert!(out.config.history.last().unwrap().empty_layer);
        assert_ne!(out.id, image.id);
    }

    #[test]
    fn a_container_whose_image_changed_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _containers, mut record, _image) = setup(tmp.path());
        let mut other = record.clone();
        record.image_layers.push(record.image_layers[0].clone());
        let e = container_image(&store, &record).unwrap_err().to_string();
        assert!(
            e.contains("container c1: its image base (sha256:") && e.contains("layers"),
            "{e}"
        );
        other.image_id = format!("sha256:{}", "0".repeat(64));
        let e = container_image(&store, &other).unwrap_err().to_string();
        assert!(e.contains("is no longer in the store"), "{e}");
        other.image_id = "nonsense".into();
        let e = container_image(&store, &other).unwrap_err().to_string();
        assert!(e.contains("malformed"), "{e}");
    }
}
