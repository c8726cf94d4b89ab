//! Content size of a diff: the number docker shows as a layer's size.
//!
//! Docker (overlay2) sizes a layer by walking the extracted directory and adding up `lstat`
//! sizes of everything that is not a directory, each hard-linked inode once. For a tar that
//! means: regular files count their length, symlinks the length of their target, hard links,
//! directories, devices, FIFOs and whiteouts nothing. Headers, padding, pax/GNU extension
//! records and the end-of-archive blocks are not content, so this differs from the tar's size.
//!
//! [`ContentSize`] computes it from the uncompressed tar bytes as they stream past (it is fed
//! the same bytes that are hashed for the diffID), without buffering file data.
//! [`content_size`] returns it for a stored layer, computing and recording it when the store
//! has none (layers pulled, or stored before tare recorded it).
//!
//! Known difference from docker: a path written twice in one tar counts twice here; docker
//! counts the file once (the second write replaces the first). Tar writers do not do that.

use std::io::{self, Read};

use tare_store::{LayerInfo, Store};

use crate::error::{Error, Result};

const BLOCK: usize = 512;
/// pax extension records larger than this are skipped rather than parsed (bad input must not
/// make us hold gigabytes); real ones are a few hundred bytes, xattr-heavy ones a few KiB.
const MAX_EXTENSION: u64 = 16 << 20;

/// A streaming counter of a tar's content size; feed it with [`ContentSize::update`] or wrap a
/// reader in [`ContentSizeReader`].
#[derive(Debug, Default)]
pub struct ContentSize {
    total: u64,
    header: Vec<u8>,
    state: State,
    /// Overrides for the next entry, from pax 'x' records and GNU 'L'/'K' entries.
    next: Overrides,
    /// The data of an old GNU sparse entry, entered after its extension blocks.
    sparse_data: State,
}

#[derive(Debug, Default)]
enum State {
    /// Collecting the next 512-byte header block in `header`.
    #[default]
    Header,
    /// Old GNU sparse extension blocks follow the header.
    SparseExtension,
    /// Skipping or capturing `remaining` data bytes, then `padding` bytes.
    Data {
        remaining: u64,
        padding: u64,
        capture: Option<Capture>,
    },
    /// The end-of-archive marker was seen; the rest is ignored.
    End,
}

#[derive(Debug)]
enum Capture {
    Pax(Vec<u8>),
    LongName(Vec<u8>),
    LongLink(Vec<u8>),
}

#[derive(Debug, Default)]
struct Overrides {
    size: Option<u64>,
    real_size: Option<u64>,
    link_len: Option<u64>,
    name: Option<Vec<u8>>,
}

impl ContentSize {
    /// A counter that has seen no byte yet.
    pub fn new() -> ContentSize {
        ContentSize::default()
    }

    /// Content bytes counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether the end-of-archive marker has been seen.
    pub fn ended(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// Feeds the next bytes of the uncompressed tar stream.
    pub fn update(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            match &mut self.state {
                State::End => return,
                State::Header | State::SparseExtension => {
                    let take = (BLOCK - self.header.len()).min(buf.len());
                    self.header.extend_from_slice(&buf[..take]);
                    buf = &buf[take..];
                    if self.header.len() == BLOCK {
                        let block = std::mem::take(&mut self.header);
                        if matches!(self.state, State::SparseExtension) {
                            // Byte 504 says whether another extension block follows.
                            if block[504] == 0 {
                                let data = std::mem::take(&mut self.sparse_data);
                                self.enter(data);
                            }
                        } else {
                            self.header_block(&block);
                        }
                        self.header = block;
                        self.header.clear();
                    }
                }
                State::Data {
                    remaining,
                    padding,
                    capture,
                } => {
                    let take = remaining.saturating_add(*padding).min(buf.len() as u64) as usize;
                    let data = (*remaining).min(take as u64) as usize;
                    if let Some(Capture::Pax(v) | Capture::LongName(v) | Capture::LongLink(v)) =
                        capture
                    {
                        v.extend_from_slice(&buf[..data]);
                    }
                    *remaining -= data as u64;
                    *padding -= (take - data) as u64;
                    buf = &buf[take..];
                    if *remaining == 0 {
                        if let Some(c) = capture.take() {
                            self.captured(c);
                        }
                    }
                    if let State::Data {
                        remaining: 0,
                        padding: 0,
                        ..
                    } = self.state
                    {
                        self.state = State::Header;
                    }
                }
            }
        }
    }

    /// Moves to `data`, finishing at once when the entry has no data.
    fn enter(&mut self, data: State) {
        self.state = data;
        if let State::Data {
            remaining: 0,
            padding: 0,
            capture,
        } = &mut self.state
        {
            if let Some(c) = capture.take() {
                self.captured(c);
            }
            self.state = State::Header;
        }
    }

    fn header_block(&mut self, h: &[u8]) {
        if h.iter().all(|&b| b == 0) {
            self.state = State::End;
            return;
        }
        let kind = h[156];
        let header_size = numeric(&h[124..136]);
        let (size, capture) = match kind {
            // Extension headers: their data describes the next entry and is not content.
            b'x' | b'g' | b'L' | b'K' => {
                let capture = match kind {
                    _ if header_size > MAX_EXTENSION => None,
                    b'x' => Some(Capture::Pax(Vec::new())),
                    b'L' => Some(Capture::LongName(Vec::new())),
                    b'K' => Some(Capture::LongLink(Vec::new())),
                    _ => None,
                };
                (header_size, capture)
            }
            _ => {
                let next = std::mem::take(&mut self.next);
                let size = next.size.unwrap_or(header_size);
                self.total = self
                    .total
                    .saturating_add(entry_content(h, kind, size, next));
                (size, None)
            }
        };
        let data = State::Data {
            remaining: size,
            padding: (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64,
            capture,
        };
        if kind == b'S' && h[482] != 0 {
            self.sparse_data = data;
            self.state = State::SparseExtension;
        } else {
            self.enter(data);
        }
    }

    fn captured(&mut self, c: Capture) {
        match c {
            Capture::LongName(v) => self.next.name = Some(trim_nul(&v).to_vec()),
            Capture::LongLink(v) => self.next.link_len = Some(trim_nul(&v).len() as u64),
            Capture::Pax(v) => {
                for (key, value) in pax_records(&v) {
                    let number = || std::str::from_utf8(value).ok()?.parse::<u64>().ok();
                    match key {
                        b"size" => self.next.size = number().or(self.next.size),
                        b"linkpath" => self.next.link_len = Some(value.len() as u64),
                        b"path" => self.next.name = Some(value.to_vec()),
                        b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                            self.next.real_size = number().or(self.next.real_size)
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// What one entry adds: the size `lstat` would report for it once extracted, or 0 for what
/// docker does not count (directories, hard links, devices, FIFOs, whiteouts).
fn entry_content(h: &[u8], kind: u8, size: u64, next: Overrides) -> u64 {
    let name = next.name.unwrap_or_else(|| trim_nul(&h[..100]).to_vec());
    let base = name
        .split(|&b| b == b'/')
        .rfind(|c| !c.is_empty())
        .unwrap_or(&[]);
    if base.starts_with(b".wh.") {
        return 0;
    }
    match kind {
        // pax sparse files (GNU.sparse.*) are stored as regular entries with a real size.
        b'0' | 0 | b'7' => next.real_size.unwrap_or(size),
        b'S' => next.real_size.unwrap_or_else(|| numeric(&h[483..495])),
        b'2' => next
            .link_len
            .unwrap_or_else(|| trim_nul(&h[157..257]).len() as u64),
        _ => 0,
    }
}

fn trim_nul(v: &[u8]) -> &[u8] {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    &v[..end]
}

/// `"<len> <key>=<value>\n"` records; stops at the first malformed one.
fn pax_records(mut data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some(space) = data.iter().position(|&b| b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            break;
        }
        let record = &data[space + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((&record[..eq], &record[eq + 1..]));
        }
        data = &data[len..];
    }
    out
}

/// A tar numeric field: octal text, or base-256 when the top bit of the first byte is set
/// (negative base-256 values are not sizes and read as 0).
fn numeric(field: &[u8]) -> u64 {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return 0;
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n.saturating_mul(256).saturating_add(u64::from(b));
        }
        return n;
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .fold(0u64, |n, &b| {
            n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
        })
}

/// A reader that counts the content size of the tar read through it.
pub struct ContentSizeReader<R> {
    inner: R,
    counter: ContentSize,
}

impl<R> ContentSizeReader<R> {
    /// Wraps `inner`; the tar read through it is counted.
    pub fn new(inner: R) -> Self {
        ContentSizeReader {
            inner,
            counter: ContentSize::new(),
        }
    }

    /// The content size of what was read so far.
    pub fn total(&self) -> u64 {
        self.counter.total()
    }

    /// The inner reader and the content size.
    pub fn finish(self) -> (R, u64) {
        (self.inner, self.counter.total())
    }
}

impl<R: Read> Read for ContentSizeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.update(&buf[..n]);
        Ok(n)
    }
}

/// The content size of a stored layer (docker's size for it). Read from the store's layer
/// record when there; otherwise computed once by reading the layer (decompressing it) and
/// recorded for next time.
pub fn content_size(store: &Store, layer: &LayerInfo) -> Result<u64> {
    if let Some(n) = store.recorded_content_size(&layer.diff_id)? {
        return Ok(n);
    }
    let mut reader = ContentSizeReader::new(crate::open_layer(store, layer)?);
    io::copy(&mut reader, &mut io::sink()).map_err(|e| Error::Stream {
        what: format!("reading layer {} to size its content", layer.digest),
        source: e,
    })?;
    let n = reader.total();
    store.record_content_size(&layer.diff_id, n)?;
    Ok(n)
}

/// An image's size as docker shows it: the content sizes of its layers added up.
pub fn image_content_size(store: &Store, image: &tare_store::Image) -> Result<u64> {
    layers_content_size(store, &image.layers)
}

/// The content sizes of `layers` added up (a diff listed twice counts twice, as in docker's
/// layer chain): the size docker shows for an image made of these layers.
pub fn layers_content_size(store: &Store, layers: &[LayerInfo]) -> Result<u64> {
    layers.iter().try_fold(0u64, |total, l| {
        Ok(total.saturating_add(content_size(store, l)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    /// Counts `tar` fed in chunks of `chunk` bytes.
    fn count(tar: &[u8], chunk: usize) -> u64 {
        let mut c = ContentSize::new();
        for part in tar.chunks(chunk) {
            c.update(part);
        }
        c.total()
    }

    fn count_every_way(tar: &[u8]) -> u64 {
        let n = count(tar, tar.len().max(1));
        for chunk in [1, 7, 511, 512, 513, 4096] {
            assert_eq!(count(tar, chunk), n, "chunk {chunk}");
        }
        n
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    #[test]
    fn files_count_their_length_and_links_their_target() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut header(tar::EntryType::Directory, 0), "etc/", &[][..])
            .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 5),
            "etc/a",
            &b"hello"[..],
        )
        .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 0),
            "etc/empty",
            &[][..],
        )
        .unwrap();
        let big = vec![7u8; 1500];
        b.append_data(&mut header(tar::EntryType::Regular, 1500), "big", &big[..])
            .unwrap();
        // Hard link: the inode was counted with its first name.
        b.append_link(&mut header(tar::EntryType::Link, 0), "etc/b", "etc/a")
            .unwrap();
        // Symlink: lstat's size is the target's length (6).
        b.append_link(&mut header(tar::EntryType::Symlink, 0), "sh", "bin/sh")
            .unwrap();
        // A target over 100 bytes goes in a GNU 'K' entry; a long name in an 'L' entry.
        let long_target = "t/".repeat(80);
        let long_name = format!("{}/link", "d".repeat(120));
        b.append_link(
            &mut header(tar::EntryType::Symlink, 0),
            &long_name,
            &long_target,
        )
        .unwrap();
        b.append_data(&mut header(tar::EntryType::Fifo, 0), "fifo", &[][..])
            .unwrap();
        b.append_data(&mut header(tar::EntryType::Char, 0), "null", &[][..])
            .unwrap();
        // Whiteouts delete; docker stores them as 0/0 devices, which count nothing.
        b.append_data(
            &mut header(tar::EntryType::Regular, 0),
            "etc/.wh.old",
            &[][..],
        )
        .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 0),
            "etc/.wh..wh..opq",
            &[][..],
        )
        .unwrap();
        let mut tar = b.into_inner().unwrap();
        // After the end-of-archive blocks nothing counts, even what looks like an entry.
        let mut trailer = tar::Builder::new(Vec::new());
        trailer
            .append_data(&mut header(tar::EntryType::Regular, 3), "late", &b"abc"[..])
            .unwrap();
        tar.extend(trailer.into_inner().unwrap());
        assert_eq!(count_every_way(&tar), 5 + 1500 + 6 + 160);
        let mut c = ContentSize::new();
        c.update(&tar);
        assert!(c.ended());
    }

    #[test]
    fn pax_records_override_size_link_and_name_and_are_not_content() {
        let mut b = tar::Builder::new(Vec::new());
        // A global header: its data is not content.
        let global = b"30 comment=global header text\n";
        b.append_data(
            &mut header(tar::EntryType::XGlobalHeader, global.len() as u64),
            "pax_global_header",
            &global[..],
        )
        .unwrap();
        let target = "x".repeat(300);
        b.append_pax_extensions([
            ("linkpath", target.as_bytes()),
            ("SCHILY.xattr.user.k", &b"value"[..]),
        ])
        .unwrap();
        b.append_link(&mut header(tar::EntryType::Symlink, 0), "s", "short")
            .unwrap();
        // A pax path naming a whiteout makes the entry a whiteout.
        b.append_pax_extensions([("path", &b"dir/.wh.gone"[..])])
            .unwrap();
        b.append_data(
            &mut header(tar::EntryType::Regular, 4),
            "dir/kept",
            &b"data"[..],
        )
        .unwrap();
        // A pax size replaces the header's.
        b.append_pax_extensions([("size", &b"700"[..])]).unwrap();
        let mut h = header(tar::EntryType::Regular, 0);
        h.set_path("f").unwrap();
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        let mut tar = b.into_inner().unwrap();
        // The 700 bytes the pax size promised, padded, then the end blocks.
        tar.truncate(tar.len() - 1024);
        tar.extend(vec![1u8; 700]);
        tar.extend(vec![0u8; 1024 - 700 % 512 + 1024]);
        assert_eq!(count_every_way(&tar), 300 + 700);
        let mut archive = tar::Archive::new(&tar[..]);
        let sizes: Vec<u64> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().size())
            .collect();
        assert_eq!(
            sizes.last(),
            Some(&700),
            "the tar crate agrees on the layout"
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        // Headers whose size fields are huge (base-256 all ones but the sign bit).
        let mut block = [0x7fu8; 512];
        block[124] = 0x80;
        block[125..136].fill(0xff);
        let mut input = block.to_vec();
        input.extend(block);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        input.extend((0..100_000).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        }));
        for chunk in [1, 512, 100_000] {
            count(&input, chunk);
            count(&input[1024..], chunk);
        }
    }

    #[test]
    fn numeric_fields_read_octal_and_base_256() {
        assert_eq!(numeric(b"00000001750\0"), 1000);
        assert_eq!(numeric(b"   1750 \0\0\0\0"), 1000);
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[7] = 0x01; // 2^32
        field[11] = 0x05;
        assert_eq!(numeric(&field), (1 << 32) + 5);
        assert_eq!(numeric(&[0xff; 12]), 0, "negative is not a size");
    }

    #[test]
    fn base_256_size_in_a_stream() {
        // A 600-byte file whose size field is written in base-256.
        let mut h = header(tar::EntryType::Regular, 600);
        h.set_path("f").unwrap();
        let raw = h.as_mut_bytes();
        raw[124..136].fill(0);
        raw[124] = 0x80;
        raw[134] = 0x02;
        raw[135] = 0x58;
        let mut tar = raw.to_vec();
        tar.extend(vec![b'a'; 600]);
        tar.extend(vec![0u8; 424]);
        let mut next = header(tar::EntryType::Regular, 3);
        next.set_path("g").unwrap();
        tar.extend(next.as_bytes());
        tar.extend(b"abc");
        tar.extend(vec![0u8; 509 + 1024]);
        assert_eq!(count_every_way(&tar), 603);
    }

    /// What overlay2's `directory.Size` sums for an extracted tree: lstat sizes of everything
    /// but directories, each inode once.
    fn du_apparent(dir: &Path) -> u64 {
        fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                if m.is_dir() {
                    walk(&e.path(), seen, total);
                } else if seen.insert((m.dev(), m.ino())) {
                    *total += m.len();
                }
            }
        }
        let mut total = 0;
        walk(dir, &mut HashSet::new(), &mut total);
        total
    }

    #[test]
    fn gnu_tar_archives_count_what_du_counts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let deep = root.join("a".repeat(90)).join("b".repeat(90));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join("small"), b"12345").unwrap();
        std::fs::write(deep.join("c".repeat(60)), vec![3u8; 70_000]).unwrap();
        std::fs::hard_link(root.join("small"), root.join("hard")).unwrap();
        std::os::unix::fs::symlink("small", root.join("sym")).unwrap();
        std::os::unix::fs::symlink("z".repeat(200), deep.join("long-sym")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        let want = du_apparent(&root);
        assert_eq!(want, 5 + 70_000 + 5 + 200);
        for format in ["gnu", "pax", "ustar", "v7"] {
            let out = dir.path().join(format!("{format}.tar"));
            let status = std::process::Command::new("tar")
                .args(["--format", format, "-cf"])
                .arg(&out)
                .arg("-C")
                .arg(&root)
                .arg(".")
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if !status.success() {
                // ustar and v7 cannot hold the long names; gnu and pax must work.
                assert!(format == "ustar" || format == "v7", "tar --format {format}");
                continue;
            }
            let tar = std::fs::read(&out).unwrap();
            assert_eq!(count_every_way(&tar), want, "tar --format {format}");
        }
    }
}
