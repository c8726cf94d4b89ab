//! `-o`, `--annotation` and `--metadata-file` of a one-platform build: the image as files or
//! an archive, its annotated manifest, and buildx's metadata keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use tare_build::annotations::{Annotations, Kind};
use tare_build::output::{Dest, Output};
use tare_layer::archive::{Format, SaveImage};
use tare_layer::Compression;
use tare_store::Reference;

/// `--metadata-file`: the keys buildx writes for an image result. The manifest (the
/// `containerimage.digest` and its descriptor) is the stored one, which `--push` sends as
/// is; for an archive output (`oci`, `docker`) it is the manifest as the archive holds it
/// (`saved`: its `index.json` entry, layers re-encoded), as BuildKit's oci exporter reports
/// it; a file output (`local`, `tar`) has no image keys, as with buildx.
pub(super) fn metadata_json(
    store: &tare_store::Store,
    image: &tare_store::Image,
    output: Option<&Output>,
    names: &[Reference],
    saved: Option<&serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    if matches!(output, Some(Output::Local { .. } | Output::Tar { .. })) {
        return Ok(out.into());
    }
    out.insert(
        "containerimage.config.digest".into(),
        image.id.to_string().into(),
    );
    if !names.is_empty() {
        let names: Vec<String> = names.iter().map(Reference::to_string).collect();
        out.insert("image.name".into(), names.join(",").into());
    }
    if let Some(saved) = saved.filter(|_| output.is_some_and(|o| !o.stores_image())) {
        archive_keys(&mut out, saved);
    } else if output.is_none_or(Output::stores_image) {
        let manifest = store
            .read_blob(&image.manifest_digest)
            .with_context(|| format!("reading the manifest {}", image.manifest_digest))?;
        let media_type = tare_store::manifest_media_type(&manifest);
        out.insert(
            "containerimage.descriptor".into(),
            serde_json::json!({
                "mediaType": media_type,
                "digest": image.manifest_digest.to_string(),
                "size": manifest.len(),
            }),
        );
        out.insert(
            "containerimage.digest".into(),
            image.manifest_digest.to_string().into(),
        );
    }
    Ok(out.into())
}

/// The path `write_file_or_stdout` takes for an archive's destination.
pub(super) fn path(dest: &Dest) -> PathBuf {
    match dest {
        Dest::Stdout => PathBuf::from("-"),
        Dest::File(p) => p.clone(),
    }
}

/// `-o type=docker` of several platforms, refused as BuildKit 0.25 refuses it ("docker
/// exporter does not support exporting manifest lists").
pub(super) const DOCKER_MANIFEST_LIST: &str =
    "-o type=docker writes a `docker load` archive, which holds \
     one image per name and no manifest list (index): build one --platform, or write every \
     platform with -o type=oci";

/// Where an annotated manifest goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keep {
    /// The image is stored with it.
    Stored,
    /// Only the manifest blob the push sends is made: a push-only build's image is not stored
    /// (its layers stayed in the registry).
    BlobOnly,
}

/// `--annotation manifest:` (and untyped) values for this platform's image, added to its
/// manifest, kept as `keep` says; the image as it is when there are none.
pub(super) fn annotate(
    store: &tare_store::Store,
    image: &tare_store::Image,
    annotations: &Annotations,
    platform: Option<&tare_build::Platform>,
    keep: Keep,
) -> anyhow::Result<tare_store::Image> {
    let host = tare_build::Platform::host();
    let wanted = annotations.of(Kind::Manifest, Some(platform.unwrap_or(&host)));
    if wanted.is_empty() {
        return Ok(image.clone());
    }
    let annotated = match keep {
        Keep::Stored => store.annotate_manifest(image, &wanted),
        Keep::BlobOnly => store
            .annotated_manifest(image, &wanted)
            .and_then(|bytes| store.put_bytes(&bytes))
            .map(|manifest_digest| tare_store::Image {
                manifest_digest,
                ..image.clone()
            }),
    };
    annotated.with_context(|| format!("annotating the manifest of {}", image.id))
}

pub(super) fn writes_stdout(output: &Output) -> bool {
    matches!(
        output,
        Output::Tar { dest: Dest::Stdout }
            | Output::Oci {
                dest: Dest::Stdout,
                ..
            }
            | Output::Docker {
                dest: Dest::Stdout,
                ..
            }
    )
}

/// buildx's keys for an archive's image: `saved` is its `index.json` entry (without the
/// names), the manifest or, with several platforms, the index.
pub(super) fn archive_keys(
    out: &mut serde_json::Map<String, serde_json::Value>,
    saved: &serde_json::Value,
) {
    out.insert("containerimage.digest".into(), saved["digest"].clone());
    out.insert("containerimage.descriptor".into(), saved.clone());
}

/// Writes one archive item to `dest`; returns its `index.json` entry without the names.
pub(super) fn save_archive(
    store: &tare_store::Store,
    item: SaveImage,
    format: Format,
    compression: Option<Compression>,
    dest: &Dest,
) -> anyhow::Result<serde_json::Value> {
    let mut saved = None;
    crate::cmd::save::write_file_or_stdout(&path(dest), |w| {
        let (_, entries) = tare_layer::archive::save(store, &[item], format, compression, w)?;
        saved = entries.into_iter().next();
        Ok(())
    })?;
    saved.context("the archive has no index.json entry")
}

/// `-o` other than `type=image`: the final stage's files, or the image as an archive (then
/// its `index.json` entry, for `--metadata-file`).
pub(super) fn write_output(
    store: &tare_store::Store,
    image: &tare_store::Image,
    output: &Output,
    names: &[Reference],
    descriptor: &BTreeMap<String, String>,
) -> anyhow::Result<Option<serde_json::Value>> {
    let item = || SaveImage {
        image: image.clone(),
        tags: names.to_vec(),
        index: None,
        descriptor: descriptor.clone(),
    };
    match output {
        Output::Image { .. } => Ok(None),
        Output::Local { dest } => {
            tare_build::output::write_local(store, image, dest)
                .with_context(|| format!("writing the files to {}", dest.display()))?;
            Ok(None)
        }
        Output::Tar { dest } => {
            crate::cmd::save::write_file_or_stdout(&path(dest), |w| {
                tare_build::output::write_tar(store, image, w)?;
                Ok(())
            })?;
            Ok(None)
        }
        Output::Oci { dest, .. } => {
            save_archive(store, item(), Format::Oci, Some(Compression::Gzip), dest).map(Some)
        }
        Output::Docker { dest, .. } => {
            save_archive(store, item(), Format::Docker, None, dest).map(Some)
        }
    }
}
