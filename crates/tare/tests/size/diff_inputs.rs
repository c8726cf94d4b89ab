//! `tare diff` beyond two store images: archives as either side, the layer and Dockerfile line
//! of each changed file, the HTML page in headless Chromium, and `tare build --baseline
//! IMAGE --max-growth SIZE`.

use std::path::Path;

use serde_json::Value;

use crate::diff::{diff_json, variants};
use crate::util::TestContext;

/// The files part of a diff, without the steps (an archive's image has no build info).
fn files(d: &Value) -> Vec<(String, String, i64)> {
    d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["change"].as_str().unwrap().to_string(),
                f["delta"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The store's images and what its temporary directory holds.
fn store_state(t: &TestContext) -> (String, Vec<String>) {
    let images = t.ok(&["images", "-a", "-q", "--no-trunc"]);
    let mut tmp = Vec::new();
    let dir = t.root.path().join("tmp");
    for owner in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(owner.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            tmp.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    (images, tmp)
}

#[test]
fn archives_diff_like_the_store_images_they_hold_and_leave_the_store_alone() {
    let t = variants();
    let docker = t.path().join("base-docker.tar");
    let oci = t.path().join("content-oci.tar");
    t.ok(&["save", "-o", docker.to_str().unwrap(), "base:1"]);
    t.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "content:1",
    ]);
    let from_store = diff_json(&t, "base:1", "content:1");
    let before = store_state(&t);

    // Both sides archives, by path and with the explicit prefixes; and one side of each kind.
    let docker_s = docker.to_str().unwrap().to_string();
    let oci_s = oci.to_str().unwrap().to_string();
    let prefixed = (
        format!("docker-archive:{docker_s}"),
        format!("oci-archive:{oci_s}"),
    );
    for (a, b) in [
        (docker_s.as_str(), oci_s.as_str()),
        (prefixed.0.as_str(), prefixed.1.as_str()),
        ("base:1", oci_s.as_str()),
        (docker_s.as_str(), "content:1"),
    ] {
        let d = diff_json(&t, a, b);
        assert_eq!(files(&d), files(&from_store), "{a} {b}: {d:#}");
        assert_eq!(d["size_a"], from_store["size_a"], "{a} {b}");
        assert_eq!(d["size_b"], from_store["size_b"], "{a} {b}");
        assert_eq!(d["files"][0]["delta"], 1190, "{a} {b}");
        assert_eq!(d["layers"][0]["verdict"], "different", "{a} {b}");
    }
    // The OCI archive recompresses nothing that was gzip: the docker archive of base:1
    // against base:1 itself is the same image.
    let same = diff_json(&t, &docker_s, "base:1");
    assert!(same["files"].as_array().unwrap().is_empty(), "{same:#}");
    assert!(same["config"].as_array().unwrap().is_empty(), "{same:#}");
    // --why reads the archives' blobs too.
    let w = t.ok(&["diff", "--why", &docker_s, &oci_s]);
    assert!(w.starts_with("first: layer 0: ./app/data: content"), "{w}");

    // Nothing was added to the store, and the temporary store is gone.
    assert_eq!(store_state(&t), before);

    // An archive of two images: refused, naming the file and the images.
    let two = t.path().join("two.tar");
    t.ok(&["save", "-o", two.to_str().unwrap(), "base:1", "mode:1"]);
    let err = t.fails(&["diff", two.to_str().unwrap(), "base:1"]);
    assert!(err.contains(two.to_str().unwrap()), "{err}");
    assert!(err.contains("2 images") && err.contains("mode:1"), "{err}");
    // A missing file with a prefix is named; so is a name that is neither image nor file.
    let err = t.fails(&["diff", "docker-archive:/nonexistent/x.tar", "base:1"]);
    assert!(err.contains("/nonexistent/x.tar"), "{err}");
    let err = t.fails(&["diff", "base:1", "no-such-image-or-file:2"]);
    assert!(err.contains("no-such-image-or-file:2"), "{err}");
    assert_eq!(store_state(&t), before);
}

/// A busybox image and a build on it with a context, for the line and baseline tests.
fn build_context(t: &TestContext, dockerfile: &str, payload: usize) -> String {
    let dir = t.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("payload"), "p".repeat(payload)).unwrap();
    dir.to_str().unwrap().to_string()
}

const DOCKERFILE: &str = "FROM busybox:latest\n\
                          RUN echo one > /one\n\
                          COPY payload /srv/payload\n\
                          RUN chmod 600 /srv/payload\n";

#[test]
fn each_file_names_its_layer_and_dockerfile_line() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let ctx = build_context(&t, DOCKERFILE, 3000);
    t.ok(&["build", "-q", "-t", "app:1", &ctx]);
    let d = diff_json(&t, "busybox:latest", "app:1");
    let by_path = |p: &str| -> Value {
        d["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("no {p} in {d:#}"))
            .clone()
    };
    let one = by_path("one");
    assert_eq!(one["change"], "added");
    assert_eq!(
        (one["layer"].as_u64(), one["line"].as_u64()),
        (Some(1), Some(2))
    );
    // The payload's final version comes from the chmod at line 4, in layer 3.
    let payload = by_path("srv/payload");
    assert_eq!(payload["delta"], 3000);
    assert_eq!(
        (payload["layer"].as_u64(), payload["line"].as_u64()),
        (Some(3), Some(4)),
        "{payload:#}"
    );
    assert!(
        payload["step"]
            .as_str()
            .unwrap()
            .starts_with("line 4 (RUN chmod 600"),
        "{payload:#}"
    );
    let text = t.ok(&["diff", "busybox:latest", "app:1"]);
    let row = text
        .lines()
        .find(|l| l.contains("/srv/payload"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("+3kB") && row.contains("line 4"), "{row}");
}

/// Renders `html` in headless Chromium and returns the DOM it built.
fn chromium_dom(html: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = crate::headless_chromium(profile.path())
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn diff_html_renders_in_headless_chromium_with_the_changed_file_and_its_delta() {
    let t = variants();
    let html = t.path().join("diff.html");
    t.ok(&[
        "diff",
        "--html",
        html.to_str().unwrap(),
        "base:1",
        "content:1",
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    let dom = chromium_dom(&html);
    // Chromium parsed the whole page: the tables after the chart are in its DOM.
    let files_table = dom
        .split("<table id=\"files\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no files table in the DOM:\n{dom}"));
    let row = files_table
        .split("</tr>")
        .find(|r| r.contains("/app/data"))
        .unwrap_or_else(|| panic!("no /app/data row:\n{files_table}"));
    assert!(
        row.contains("+1.19kB") && row.contains("changed (content)"),
        "{row}"
    );
    assert!(dom.contains("<svg"), "no chart");
    assert!(
        dom.contains("<title>/app/data +1.19kB"),
        "no bar for the file:\n{dom}"
    );
    assert!(dom.contains("id=\"layers\"") && dom.contains("different"));
    // A config difference is shown in its own table.
    t.ok(&[
        "diff",
        "--html",
        html.to_str().unwrap(),
        "base:1",
        "config:1",
    ]);
    let dom = chromium_dom(&html);
    assert!(
        dom.contains("id=\"config\"") && dom.contains("MODE=prod"),
        "{dom}"
    );
}

#[test]
fn build_baseline_max_growth_fails_after_the_build_naming_the_largest_files() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let ctx = build_context(&t, DOCKERFILE, 3000);
    t.ok(&["build", "-q", "-t", "app:1", &ctx]);
    let v1 = t.ok(&["images", "-q", "--no-trunc", "app:1"]);

    // Within the limit: the comparison is printed and the build succeeds.
    std::fs::write(Path::new(&ctx).join("payload"), "p".repeat(3500)).unwrap();
    let out = t.ok(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "app:2",
        "--baseline",
        "app:1",
        "--max-growth",
        "1kB",
        &ctx,
    ]);
    assert!(out.contains("compared with app:1: files +500B"), "{out}");

    // Over the limit, with the baseline being the tag the build moves: exit 1 after the
    // build, the new image stored and tagged, the largest contributor named with its line.
    std::fs::write(Path::new(&ctx).join("payload"), "p".repeat(50_000)).unwrap();
    let run = t.run(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "app:1",
        "--baseline",
        "app:1",
        "--max-growth",
        "10kB",
        &ctx,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("grew by 47kB") && stderr.contains("--max-growth 10kB"),
        "{stderr}"
    );
    let first = stderr
        .lines()
        .skip_while(|l| !l.contains("largest contributors"))
        .nth(1)
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        first.contains("/srv/payload") && first.contains("line 4"),
        "{first}"
    );
    assert_ne!(t.ok(&["images", "-q", "--no-trunc", "app:1"]), v1);

    // --max-growth needs --baseline; an unknown baseline fails before building.
    let err = t.fails(&["build", "--max-growth", "1kB", &ctx]);
    assert!(err.contains("--baseline"), "{err}");
    let err = t.fails(&["build", "--baseline", "nosuch:1", &ctx]);
    assert!(err.contains("nosuch:1"), "{err}");
}
