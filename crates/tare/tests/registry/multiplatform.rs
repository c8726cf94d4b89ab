//! A multi-platform build pushed as one OCI index (`tare build --platform A,B --push`), read
//! back by skopeo.

use crate::harness::RegistryServer;
use crate::util::TestContext;

#[test]
fn a_cross_compiled_two_platform_index_is_pushed_and_skopeo_copies_all_of_it() {
    let reg = RegistryServer::open();
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    // The cross-compiling pattern: the work runs on this machine for each target.
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS build\nARG TARGETARCH\n\
         RUN echo $TARGETARCH > /arch\n\
         FROM scratch\nCOPY --from=build /bin/busybox /bin/busybox\nCOPY --from=build /arch /arch\n",
    );
    let name = format!("127.0.0.1:{}/multi:1", reg.port);
    let ctx = t.path().join("ctx");
    let meta = t.path().join("meta.json");
    let digest = t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        &name,
        "--push",
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    let digest = digest.trim();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.digest"], digest, "{m}");
    assert_eq!(
        m["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let raw = crate::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // skopeo fetches every manifest, config and layer of the index, checking each digest.
    let layout = t.path().join("layout");
    crate::skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("oci:{}:1", layout.display()),
    ]);
    assert!(layout.join("index.json").is_file());
    // Each platform's file says which platform it was built for.
    assert_eq!(
        t.ok(&["run", "--rm", &name, "/bin/busybox", "cat", "/arch"]),
        "amd64\n"
    );
}
