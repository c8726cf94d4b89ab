//! Pipelines written for `docker buildx build` run unchanged with `tare build` in its place:
//! each script below calls `docker buildx build` with the flags CI pipelines pass, spelt as
//! buildx spells them, and a shell function stands `tare build` in for it.

use std::process::Command;

use crate::harness::RegistryServer;
use crate::util::TestContext;

/// Runs `script` with `docker buildx build ARGS` meaning `tare --root ROOT build ARGS`, in
/// `dir`, with `$REG` the registry; returns stdout and stderr, asserting success.
fn pipeline(t: &TestContext, reg: &RegistryServer, dir: &std::path::Path, script: &str) -> String {
    let shim = format!(
        "set -eu\n\
         docker() {{ [ \"$1 $2\" = 'buildx build' ] || {{ echo \"not a build: $*\" >&2; exit 99; }}; \
         shift 2; \"$TARE\" --root \"$ROOT\" build \"$@\"; }}\n{script}"
    );
    let out = Command::new("bash")
        .args(["-c", &shim])
        .current_dir(dir)
        .env("TARE", env!("CARGO_BIN_EXE_tare"))
        .env("ROOT", t.root.path())
        .env("REG", reg.host())
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the pipeline failed:\n{script}\n{text}"
    );
    text
}

#[test]
fn buildx_pipelines_run_unchanged_with_tare_build() {
    let reg = RegistryServer::open();
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    t.write(
        "repo/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS build\n\
         ARG TARGETARCH\n\
         ARG VERSION\n\
         RUN echo \"$VERSION $TARGETARCH\" > /version && cat /etc/hosts > /hosts \
             && ulimit -n > /nofile && df -k /dev/shm | tail -n 1 > /shm\n\
         COPY --from=extras note.txt /note.txt\n\
         FROM scratch AS bin\n\
         COPY --from=build /version /hosts /nofile /shm /note.txt /\n\
         FROM scratch\n\
         COPY --from=bin / /app/\n",
    );
    t.write("repo/extras/note.txt", "from a named context\n");
    let repo = t.path().join("repo");

    // A release: two platforms, labels, an index annotation, a named context, pushed under two
    // tags, the metadata file read by the next step, attestations turned off.
    pipeline(
        &t,
        &reg,
        &repo,
        r#"docker buildx build \
  --platform linux/amd64,linux/arm64 \
  --build-arg VERSION=1.2.3 \
  --label org.opencontainers.image.version=1.2.3 \
  --annotation "index:org.opencontainers.image.description=a demo" \
  --build-context extras=./extras \
  --add-host db:10.0.0.5 \
  --provenance=false --sbom=false \
  --metadata-file meta.json \
  --tag "$REG/app:1.2.3" --tag "$REG/app:latest" \
  --push \
  --file Dockerfile .
jq -er '."containerimage.digest"' meta.json
"#,
    );
    let raw = crate::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/app:latest", reg.host()),
    ]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "{index}"
    );
    assert_eq!(
        index["annotations"]["org.opencontainers.image.description"],
        "a demo"
    );

    // Binaries out of a build: one stage's files into a directory, with the run's limits.
    pipeline(
        &t,
        &reg,
        &repo,
        r#"docker buildx build --progress=plain \
  --target bin \
  --build-arg VERSION=2.0 \
  --build-context extras=./extras \
  --add-host db:10.0.0.5 \
  --ulimit nofile=512:512 --shm-size 32m \
  --output type=local,dest=out .
"#,
    );
    let read = |name: &str| std::fs::read_to_string(repo.join("out").join(name)).unwrap();
    assert_eq!(read("version"), "2.0 amd64\n");
    assert!(read("hosts").contains("10.0.0.5\tdb"), "{}", read("hosts"));
    assert_eq!(read("nofile"), "512\n");
    assert!(read("shm").contains(" 32768 "), "{}", read("shm"));
    assert_eq!(read("note.txt"), "from a named context\n");

    // A CI test job: the image loaded for the next step, the cache shared through the registry.
    pipeline(
        &t,
        &reg,
        &repo,
        r#"docker buildx build \
  --load \
  --build-arg VERSION=3.0 \
  --build-context extras=./extras \
  --cache-from "type=registry,ref=$REG/app:buildcache" \
  --cache-to "type=registry,ref=$REG/app:buildcache,mode=max" \
  --iidfile iid.txt \
  --tag app:test .
test -s iid.txt
"#,
    );
    assert!(t.ok(&["images"]).contains("app "), "--load stored app:test");
    let entries = t.ok(&[
        "cache",
        "ls",
        "--registry",
        &format!("{}/app:buildcache", reg.host()),
    ]);
    assert!(entries.lines().count() > 1, "{entries}");

    // What tare does not make is refused, not silently skipped.
    let out = Command::new(env!("CARGO_BIN_EXE_tare"))
        .arg("--root")
        .arg(t.root.path())
        .args(["build", "--provenance=mode=max", "."])
        .current_dir(&repo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--provenance=mode=max"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tare"))
        .arg("--root")
        .arg(t.root.path())
        .args(["build", "--load", "-o", "type=local,dest=x", "."])
        .current_dir(&repo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--load"), "{err}");
}
