//! Registry manifests and indexes on arbitrary input: `tare_registry::manifest::parse` with
//! each content type a registry may send, then platform selection and descriptor digests.
//! Any panic, overflow or hang is a bug; errors are fine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tare_registry::manifest::{self, Parsed};
use tare_registry::Platform;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some(manifest::DOCKER_MANIFEST),
    Some(manifest::DOCKER_LIST),
    Some(manifest::OCI_MANIFEST),
    Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let platforms: Vec<Platform> = ["linux/amd64", "linux/arm64/v8", "windows/amd64"]
        .iter()
        .map(|p| p.parse().expect("a valid platform"))
        .collect();
    for content_type in CONTENT_TYPES {
        match manifest::parse(data, content_type, "fuzz") {
            Ok(Parsed::Index(entries)) => {
                for platform in &platforms {
                    if let Ok(entry) = manifest::select(&entries, platform, "fuzz") {
                        let _ = entry.digest("fuzz");
                    }
                }
            }
            Ok(Parsed::Image(image)) => {
                let _ = image.config.digest("fuzz");
                for layer in &image.layers {
                    let _ = layer.digest("fuzz");
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
