//! The layer tar reader and the safe applier on arbitrary input: `tare_layer::apply` into a
//! fresh temporary directory, in both whiteout modes, optionally through the compression
//! detection that callers put in front of it. Any panic, overflow or hang is a bug; errors are
//! fine. Run it in the sandbox fuzz/README.md describes: a bug here could write outside the
//! target directory.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tare_layer::ApplyMode;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the mode and whether the stream goes through `decompress`.
    let Some((&flags, tar)) = data.split_first() else {
        return;
    };
    let mode = if flags & 1 == 0 {
        ApplyMode::Flatten
    } else {
        ApplyMode::Overlay
    };
    let target = tempfile::tempdir().expect("temporary directory");
    let reader: Box<dyn Read> = if flags & 2 == 0 {
        Box::new(tar)
    } else {
        match tare_layer::decompress(tar) {
            Ok((_, decoded)) => Box::new(decoded),
            Err(_) => return,
        }
    };
    let _ = tare_layer::apply(reader, target.path(), mode, "fuzz");
});
