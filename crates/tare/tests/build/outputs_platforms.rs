//! `-o type=local` with several platforms: each platform's files in DEST/OS_ARCH, as
//! BuildKit's local exporter splits them, and no image kept.

use super::outputs_platform_archives::build_to;
use super::setup;

#[test]
fn local_output_of_two_platforms_splits_them_into_directories() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS build\n\
         ARG TARGETARCH TARGETPLATFORM\n\
         RUN echo $TARGETARCH > /arch && echo $TARGETPLATFORM > /platform\n\
         FROM scratch\n\
         COPY --from=build /arch /platform /\n",
    );
    let images_before = t.ok(&["images", "-a", "-q"]);
    let out = t.path().join("out");
    build_to(&t, &format!("type=local,dest={}", out.display()));
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("linux_amd64/arch"), "amd64\n");
    assert_eq!(read("linux_amd64/platform"), "linux/amd64\n");
    assert_eq!(read("linux_arm64/arch"), "arm64\n");
    assert_eq!(read("linux_arm64/platform"), "linux/arm64\n");
    let mut entries: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["linux_amd64", "linux_arm64"]);
    assert_eq!(
        t.ok(&["images", "-a", "-q"]),
        images_before,
        "no image kept"
    );
    t.ok(&["check"]);
}
