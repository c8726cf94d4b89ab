//! The size tools as an ordinary user (rootless tare, tests/util/rootless.rs): `tare analyze`
//! and `tare squash` of an image the user built report and make what root's do.

#[path = "../util/rootless.rs"]
pub(crate) mod user;

use serde_json::Value;
use user::RootlessUser;

use crate::util::TestContext;

/// The seed's waste (a big file added, then removed), a chmod-only rewrite and a file of uid
/// 1000: deleted, metadata-only and owned bytes.
const DOCKERFILE: &str = "FROM busybox
RUN dd if=/dev/zero of=/big bs=1k count=300 && echo x > /f && chown 1000:1000 /f
RUN rm /big && chmod 600 /f
RUN echo done > /done
";

/// What depends on the moment of the build (IDs, digests, compressed sizes) left out.
fn timeless(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            for key in [
                "image",
                "digest",
                "diff_id",
                "compressed_size",
                "image_size",
            ] {
                map.remove(key);
            }
            for value in map.values_mut() {
                *value = timeless(value.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = timeless(item.take());
            }
        }
        _ => {}
    }
    v
}

/// Path, type, mode, owner and content hash of every entry of an exported tar, sorted.
pub(crate) fn listing(tar_path: &std::path::Path) -> Vec<String> {
    use sha2::Digest as _;
    let mut archive = tar::Archive::new(std::fs::File::open(tar_path).expect("open export"));
    let mut out: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("read");
            format!(
                "{} {:?} {:o} {}:{} {:x}",
                e.path().expect("path").display(),
                h.entry_type(),
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                sha2::Sha256::digest(&data)
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rootless_analyze_and_squash_match_root() {
    let root = TestContext::new();
    let u = RootlessUser::ranged();
    root.import_busybox("busybox:latest");
    let saved = u.path().join("base.tar");
    root.ok(&["save", "busybox:latest", "-o", saved.to_str().unwrap()]);
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    u.ok(&["load", "-i", saved.to_str().unwrap()]);
    let dockerfile = u.write("ctx/Dockerfile", DOCKERFILE.as_bytes());
    let ctx = dockerfile.parent().unwrap().to_str().unwrap().to_string();
    root.ok(&["build", "-q", "-t", "waste:1", &ctx]);
    u.ok(&["build", "-q", "-t", "waste:1", &ctx]);

    let analyze = ["analyze", "--format", "json", "waste:1"];
    let want: Value = serde_json::from_str(&root.ok(&analyze)).expect("json");
    let got: Value = serde_json::from_str(&u.ok(&analyze)).expect("json");
    assert_eq!(want["wasted"][0]["path"], "/big", "{want:#}");
    assert_eq!(want["wasted"][0]["size"], 300 * 1024, "{want:#}");
    assert_eq!(timeless(want), timeless(got));

    let squash = ["squash", "waste:1", "-t", "squashed:1"];
    root.ok(&squash);
    u.ok(&squash);
    let (want_tar, got_tar) = (root.path().join("sq.tar"), u.path().join("sq.tar"));
    root.ok(&["export", "squashed:1", "-o", want_tar.to_str().unwrap()]);
    u.ok(&["export", "squashed:1", "-o", got_tar.to_str().unwrap()]);
    let (want, got) = (listing(&want_tar), listing(&got_tar));
    assert!(!got.iter().any(|l| l.starts_with("big ")), "{got:#?}");
    assert!(
        got.iter().any(|l| l.starts_with("f Regular 600 1000:1000")),
        "{got:#?}"
    );
    assert_eq!(want, got);
    let layers = |out: String| {
        serde_json::from_str::<Value>(&out).expect("json")["layers"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(
        layers(u.ok(&["inspect", "squashed:1"])),
        layers(root.ok(&["inspect", "squashed:1"]))
    );
    assert!(layers(u.ok(&["inspect", "squashed:1"])) < layers(u.ok(&["inspect", "waste:1"])));
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
