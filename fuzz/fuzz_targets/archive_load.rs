//! The image archive loaders (docker archives, OCI layouts and archives) on arbitrary input:
//! `tare_layer::archive::load` into a fresh temporary store, and the layer ingester that
//! `import` and the loaders share. Any panic, overflow or hang is a bug; errors are fine, and a
//! failed load must leave no blob behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tare_store::Store;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path()).expect("open the store");
    let count = |sub: &str| {
        std::fs::read_dir(dir.path().join(sub))
            .expect("read a store directory")
            .count()
    };
    // A failed load that committed no image takes back every blob it added.
    if tare_layer::archive::load(&store, data, "fuzz").is_err() && count("images") == 0 {
        assert_eq!(
            count("blobs/sha256"),
            0,
            "a failed load left blobs in the store"
        );
    }
    let _ = tare_layer::ingest_layer(&store, data, None, "fuzz");
});
