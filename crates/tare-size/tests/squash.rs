//! Squash and analysis against a real store: images made from hand-written layer tars,
//! flattened with tare-layer's apply before and after squashing, compared file by file.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tare_layer::{apply, ApplyMode, Compression, LayerSink};
use tare_size::{SquashFrom, WasteKind};
use tare_store::config::{History, ImageConfig};
use tare_store::{Image, LayerInfo, Reference, Store};

/// The date of the squash's history entry.
const CREATED: &str = "2024-01-02T03:04:05Z";

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Whiteout(&'a str),
    Opaque(&'a str),
}

fn layer(store: &Store, entries: &[E<'_>], compression: Compression) -> LayerInfo {
    let mut b = tar::Builder::new(LayerSink::new(store, compression).unwrap());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        let (path, kind, mode, data, link): (String, _, u32, &[u8], Option<&str>) = match e {
            E::Dir(p, m) => (format!("{p}/"), tar::EntryType::Directory, *m, b"", None),
            E::File(p, d, m) => (p.to_string(), tar::EntryType::Regular, *m, d, None),
            E::Symlink(p, t) => (p.to_string(), tar::EntryType::Symlink, 0o777, b"", Some(t)),
            E::Hardlink(p, t) => (p.to_string(), tar::EntryType::Link, 0o644, b"", Some(t)),
            E::Whiteout(p) => {
                let (d, n) = p
                    .rsplit_once('/')
                    .map(|(d, n)| (format!("{d}/"), n))
                    .unwrap_or((String::new(), p));
                (format!("{d}.wh.{n}"), tar::EntryType::Regular, 0, b"", None)
            }
            E::Opaque(d) => (
                format!("{d}/.wh..wh..opq"),
                tar::EntryType::Regular,
                0,
                b"",
                None,
            ),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        match link {
            Some(t) => b.append_link(&mut h, &path, t).unwrap(),
            None => b.append_data(&mut h, &path, data).unwrap(),
        }
    }
    let mut sink = b.into_inner().unwrap();
    sink.flush().unwrap();
    sink.finish().unwrap()
}

fn image(store: &Store, layers: Vec<LayerInfo>, tag: &str, base_layers: Option<usize>) -> Image {
    let mut config = ImageConfig::new_for_host();
    config.config.cmd = Some(vec!["sh".into()]);
    config.config.env = Some(vec!["A=b".into()]);
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id).collect();
    for (i, _) in layers.iter().enumerate() {
        config.history.push(History {
            created_by: Some(format!("RUN step {i}")),
            ..History::default()
        });
        config.history.push(History {
            created_by: Some(format!("ENV after {i}")),
            empty_layer: true,
            ..History::default()
        });
    }
    let info = base_layers.map(|b| tare_store::BuildInfo {
        dockerfile: Some("Dockerfile".into()),
        base_layers: Some(b),
        history: (1..=config.history.len())
            .map(|line| {
                Some(tare_store::StepOrigin {
                    file: "Dockerfile".into(),
                    line,
                    stage: None,
                })
            })
            .collect(),
        ..tare_store::BuildInfo::default()
    });
    store
        .commit_image(&config, &layers, &[Reference::parse(tag).unwrap()], info)
        .unwrap()
}

/// path -> "kind mode uid content-or-target"
fn flatten(store: &Store, img: &Image) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    for l in &img.layers {
        let r = tare_layer::open_layer(store, l).unwrap();
        apply(r, dir.path(), ApplyMode::Flatten, "test").unwrap();
    }
    let mut map = BTreeMap::new();
    walk(dir.path(), dir.path(), &mut map);
    map
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let v = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            walk(root, &p, map);
            format!("dir {mode:o} {}", m.uid())
        } else {
            format!(
                "file {mode:o} {} {:?}",
                m.uid(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap())
            )
        };
        map.insert(rel, v);
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    image: Image,
}

const BIG: usize = 1 << 20;

fn fixture(compression: Compression, base_layers: Option<usize>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let zeros = vec![0u8; BIG];
    let l0 = layer(
        &store,
        &[
            E::Dir("bin", 0o755),
            E::File("bin/tool", b"tool\n", 0o755),
            E::Symlink("bin/t", "tool"),
            E::Dir("etc", 0o755),
            E::File("etc/passwd", b"root\n", 0o644),
            E::File("etc/old", b"old\n", 0o644),
            E::Dir("opt/keep", 0o755),
            E::File("opt/keep/a", b"a\n", 0o644),
            E::Dir("srv", 0o750),
            E::File("srv/s", b"s\n", 0o644),
            E::File("base-link-target", b"shared\n", 0o644),
            E::Hardlink("base-link", "base-link-target"),
        ],
        compression,
    );
    let l1 = layer(
        &store,
        &[
            E::File("bigfile", &zeros, 0o644),
            E::Dir("app", 0o755),
            E::File("app/data.txt", b"data\n", 0o644),
            E::File("app/script.sh", b"echo run\n", 0o644),
            E::Hardlink("app/hl", "app/data.txt"),
            E::Hardlink("app/hl2", "app/data.txt"),
            E::Whiteout("etc/old"),
            E::Dir("opt", 0o755),
            E::Opaque("opt"),
            E::File("opt/new", b"new\n", 0o644),
        ],
        compression,
    );
    let l2 = layer(
        &store,
        &[
            E::Whiteout("bigfile"),
            E::File("app/script.sh", b"echo run\n", 0o755),
            E::File("app/data.txt", b"data 2\n", 0o644),
            E::Dir("tmp", 0o1777),
            E::File("tmp/x", b"x\n", 0o644),
            E::Whiteout("srv"),
        ],
        compression,
    );
    let l3 = layer(
        &store,
        &[
            E::Whiteout("tmp"),
            E::Dir("tmp", 0o1777),
            E::File("tmp/y", b"y\n", 0o644),
            E::File("srv/again", b"again\n", 0o600),
            E::File("etc/passwd", b"root\napp\n", 0o644),
        ],
        compression,
    );
    let image = image(&store, vec![l0, l1, l2, l3], "fixture:1", base_layers);
    Fixture {
        _dir: dir,
        store,
        image,
    }
}

#[test]
fn analysis_attributes_waste_to_steps_and_lines() {
    let f = fixture(Compression::Gzip, Some(1));
    let a = tare_size::analyze(&f.store, &f.image).unwrap();
    let big = a.wasted.iter().find(|w| w.path == "/bigfile").unwrap();
    assert_eq!((big.size, big.kind), (BIG as u64, WasteKind::Deleted));
    assert_eq!((big.added_layer, big.removed_layer), (1, 2));
    // History: RUN 0 (line 1), ENV (2), RUN 1 (3), ENV (4), RUN 2 (5) ...
    assert_eq!((big.added_line, big.removed_line), (Some(3), Some(5)));
    assert_eq!(big.added_by.as_deref(), Some("RUN step 1"));
    let script = a
        .wasted
        .iter()
        .find(|w| w.path == "/app/script.sh")
        .unwrap();
    assert_eq!(script.kind, WasteKind::Metadata);
    assert_eq!(a.metadata_only_bytes, 9);
    assert_eq!(a.dockerfile.as_deref(), Some("Dockerfile"));
    // Docker's measure: file bytes, not tar bytes.
    let content = tare_layer::image_content_size(&f.store, &f.image).unwrap();
    assert_eq!(a.image_size, content);
    assert!(content < f.image.layers.iter().map(|l| l.size).sum::<u64>());
    let summary = tare_size::build_summary(
        &f.store,
        &f.image,
        &tare_size::Budgets {
            max_waste: Some(1000),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(summary.failed());
    let lines = summary.lines(3);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("added at line 3, deleted at line 5 (/bigfile)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("budget exceeded: --max-waste 1kB"),
        "{lines:#?}"
    );
}

fn check_squash(compression: Compression, from: SquashFrom, expect_layers: usize) {
    let f = fixture(compression, Some(1));
    let before = flatten(&f.store, &f.image);
    let tag = Reference::parse("fixture:squashed").unwrap();
    let s = tare_size::squash(
        &f.store,
        &f.image,
        from,
        compression,
        &[tag],
        CREATED.into(),
    )
    .unwrap();
    assert_eq!(s.image.layers.len(), expect_layers);
    assert_eq!(
        s.image.layers[..expect_layers - 1],
        f.image.layers[..expect_layers - 1]
    );
    let after = flatten(&f.store, &s.image);
    assert_eq!(before, after);
    // Config kept; squashed history entries marked empty, one added.
    assert_eq!(s.image.config.config, f.image.config.config);
    let non_empty = s
        .image
        .config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .count();
    assert_eq!(non_empty, expect_layers);
    assert_eq!(
        s.image.config.history.len(),
        f.image.config.history.len() + 1
    );
    let a = tare_size::analyze(&f.store, &s.image).unwrap();
    assert!(
        a.wasted.iter().all(|w| w.added_layer < expect_layers - 1),
        "{:#?}",
        a.wasted
    );
    if expect_layers <= 2 {
        // The big file's layers were squashed: its bytes are gone.
        assert!(a.image_size < f.image.size() - BIG as u64);
    }
    // Again: the cached layer.
    let again =
        tare_size::squash(&f.store, &f.image, from, compression, &[], CREATED.into()).unwrap();
    assert!(again.cached);
    assert_eq!(again.layer, s.layer);
}

#[test]
fn squash_above_the_base_gives_the_same_filesystem() {
    check_squash(Compression::Gzip, SquashFrom::Base, 2);
}

#[test]
fn squash_all_gives_the_same_filesystem() {
    check_squash(Compression::Zstd, SquashFrom::All, 1);
}

#[test]
fn squash_from_each_layer_gives_the_same_filesystem() {
    for from in 0..4 {
        check_squash(Compression::None, SquashFrom::Layer(from), from + 1);
    }
}

#[test]
fn squash_past_the_last_layer_is_an_error() {
    let f = fixture(Compression::None, None);
    let err = tare_size::squash(
        &f.store,
        &f.image,
        SquashFrom::Layer(4),
        Compression::None,
        &[],
        CREATED.into(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot squash from layer 4: the image has 4 layers"
    );
}

#[test]
fn finish_build_squashes_the_new_layers_and_checks_budgets() {
    let f = fixture(Compression::Gzip, Some(1));
    let tag = Reference::parse("built:1").unwrap();
    let budgets = tare_size::Budgets {
        max_layers: Some(1),
        ..Default::default()
    };
    let done = tare_size::finish_build(
        &f.store,
        &f.image,
        1,
        &[tag],
        Some(tare_size::BuildSquash::New),
        &budgets,
    )
    .unwrap();
    assert_eq!(done.image.layers.len(), 2);
    assert_eq!(done.image.layers[0], f.image.layers[0]);
    assert!(done.summary.failed());
    assert_eq!(
        done.summary.budgets.violations[0].to_string(),
        "--max-layers 1: the image has 2 layers, 1 too many"
    );
    assert_eq!(f.store.resolve("built:1").unwrap().id, done.image.id);
    let plain =
        tare_size::finish_build(&f.store, &f.image, 1, &[], None, &Default::default()).unwrap();
    assert!(!plain.summary.failed());
    assert_eq!(plain.image.id, f.image.id);
    assert!(plain.summary.analysis.wasted_bytes >= BIG as u64);
}

#[test]
fn an_index_saved_by_a_loader_is_used_without_reading_the_blob() {
    let f = fixture(Compression::Gzip, None);
    let layer = &f.image.layers[1];
    let r = tare_layer::open_layer(&f.store, layer).unwrap();
    let mut index = tare_size::index::index_tar(r).unwrap();
    index.entries.retain(|e| e.path != "bigfile");
    tare_size::index::save_index(&f.store, &layer.diff_id, &index).unwrap();
    let a = tare_size::analyze(&f.store, &f.image).unwrap();
    assert!(
        a.wasted.iter().all(|w| w.path != "/bigfile"),
        "the saved index was not used"
    );
}
