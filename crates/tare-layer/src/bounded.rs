//! Tar streams with bounded header records.
//!
//! The `tar` crate reads a GNU long name ('L'), long link ('K') or pax record ('x', and 'g'
//! when asked for its extensions) into memory whole, whatever size its header claims: a
//! 4.6 MB gzip layer whose long name is 1 GiB made import use 3.2 GB. [`BoundedTar`] wraps
//! the reader the tar crate reads from and follows the same stream structure (headers, pax
//! sizes, GNU sparse extension blocks, the end-of-archive block) as the bytes pass. A header
//! record larger than [`MAX_HEADER_RECORD`] fails the read that would deliver its header, so
//! the tar crate never gets to allocate for it.
//!
//! The parse mirrors tar 0.4's (`EntriesFields::next_entry`) rule by rule: if both disagreed on
//! where the next header starts, a crafted archive could hide a header from this check. Where
//! the tar crate would fail anyway (a malformed size field, two pax records for one entry),
//! this fails first with the same meaning.

use std::io::{self, Read};

/// The largest GNU long name/link or pax extension record accepted. Real ones are a few
/// hundred bytes (PATH_MAX is 4096); xattr-heavy pax records a few KiB.
pub(crate) const MAX_HEADER_RECORD: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Opens a tar stream whose header records are bounded (see the module overview).
pub fn tar_archive<R: Read>(reader: R) -> tar::Archive<BoundedTar<R>> {
    tar::Archive::new(BoundedTar::new(reader))
}

/// A reader that passes a tar stream through unchanged and fails on oversized header
/// records. See the module overview.
pub struct BoundedTar<R> {
    inner: R,
    /// The header block being collected.
    header: Vec<u8>,
    state: State,
    /// A pax record ('x') read for the next entry: its `size` replaces the header's.
    pax: Option<Vec<u8>>,
    /// Offset in the stream of the byte after the last one passed on.
    offset: u64,
}

enum State {
    /// Collecting a 512-byte header block.
    Header,
    /// GNU sparse extension blocks, then `data` bytes of data and padding.
    SparseExtension { data: u64 },
    /// Skipping data and padding.
    Skip { remaining: u64 },
    /// Keeping a pax record's `remaining` bytes, then skipping `padding`.
    Capture { remaining: u64, padding: u64 },
    /// After the end-of-archive block (the tar crate stops reading there).
    End,
}

impl<R: Read> BoundedTar<R> {
    /// Wraps a raw (uncompressed) tar stream.
    pub fn new(inner: R) -> BoundedTar<R> {
        BoundedTar {
            inner,
            header: Vec::with_capacity(BLOCK as usize),
            state: State::Header,
            pax: None,
            offset: 0,
        }
    }

    /// The wrapped stream, positioned after the bytes passed on so far.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn feed(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header | State::SparseExtension { .. } => {
                    let take = (BLOCK as usize - self.header.len()).min(buf.len());
                    self.header.extend_from_slice(&buf[..take]);
                    buf = &buf[take..];
                    self.offset += take as u64;
                    if self.header.len() == BLOCK as usize {
                        let block = std::mem::take(&mut self.header);
                        self.state = match self.state {
                            // Byte 504 says whether another extension block follows.
                            State::SparseExtension { data } if block[504] != 1 => skip(data),
                            State::SparseExtension { data } => State::SparseExtension { data },
                            _ => self.header_block(&block)?,
                        };
                        self.header = block;
                        self.header.clear();
                    }
                }
                State::Skip { remaining } => {
                    let take = (*remaining).min(buf.len() as u64);
                    *remaining -= take;
                    buf = &buf[take as usize..];
                    self.offset += take;
                    if *remaining == 0 {
                        self.state = State::Header;
                    }
                }
                State::Capture { remaining, padding } => {
                    let take = (*remaining).min(buf.len() as u64) as usize;
                    self.pax
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(&buf[..take]);
                    *remaining -= take as u64;
                    buf = &buf[take..];
                    self.offset += take as u64;
                    if *remaining == 0 {
                        self.state = skip(*padding);
                    }
                }
            }
        }
        Ok(())
    }

    /// The state after header block `h`, or the error that stops the stream.
    fn header_block(&mut self, h: &[u8]) -> io::Result<State> {
        if h.iter().all(|&b| b == 0) {
            return Ok(State::End);
        }
        let at = self.offset - BLOCK;
        let kind = h[156];
        let ustar = &h[257..263] == b"ustar\0" && &h[263..265] == b"00";
        let gnu = &h[257..263] == b"ustar " && &h[263..265] == b" \0";
        let recognized = ustar || gnu;
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let mut size = numeric(&h[124..136]).ok_or_else(|| {
            invalid(format!(
                "tar header at offset {at}: the size field is not a number"
            ))
        })?;
        if extension && size > MAX_HEADER_RECORD {
            let what = match kind {
                b'L' => "GNU long name",
                b'K' => "GNU long link name",
                _ => "pax extension record",
            };
            return Err(invalid(format!(
                "tar header at offset {at}: {what} of {size} bytes exceeds the limit of \
                 {MAX_HEADER_RECORD} bytes"
            )));
        }
        if !extension {
            if let Some(pax) = &self.pax {
                size = pax_size(pax).unwrap_or(size);
            }
        }
        // The tar crate collects recognized L, K and x entries for the entry that follows;
        // any other entry is returned and takes the pending pax record with it.
        let collected = recognized && matches!(kind, b'L' | b'K' | b'x');
        if recognized && kind == b'x' {
            if self.pax.is_some() {
                return Err(invalid(format!(
                    "tar header at offset {at}: two pax extension records for one entry"
                )));
            }
            self.pax = Some(Vec::new());
            return Ok(State::Capture {
                remaining: size,
                padding: padding(size)?,
            });
        }
        if !collected {
            self.pax = None;
        }
        let data = size
            .checked_add(padding(size)?)
            .ok_or_else(|| invalid(format!("tar header at offset {at}: size overflow")))?;
        Ok(if kind == b'S' && gnu && h[482] == 1 {
            State::SparseExtension { data }
        } else {
            skip(data)
        })
    }
}

impl<R: Read> Read for BoundedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

fn skip(remaining: u64) -> State {
    if remaining == 0 {
        State::Header
    } else {
        State::Skip { remaining }
    }
}

fn padding(size: u64) -> io::Result<u64> {
    size.checked_add(BLOCK - 1)
        .map(|s| (s & !(BLOCK - 1)) - size)
        .ok_or_else(|| invalid("tar entry size overflow".into()))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A tar numeric field as the tar crate reads it: base-256 when the top bit is set (the last
/// eight bytes), else octal text up to the first NUL, surrounding spaces trimmed.
fn numeric(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let start = field.len() - 8;
        return Some(
            field[start..]
                .iter()
                .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
        );
    }
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

/// The `size` record of a pax extension as the tar crate reads it: records are lines of
/// `"<len> <key>=<value>"`; the first `size` wins, and a malformed record before it means none.
fn pax_size(pax: &[u8]) -> Option<u64> {
    for line in pax.split(|&b| b == b'\n') {
        if line.is_empty() {
            return None;
        }
        let space = line.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
        if line.len() + 1 != len {
            return None;
        }
        let record = &line[space + 1..];
        let eq = record.iter().position(|&b| b == b'=')?;
        if &record[..eq] == b"size" {
            return std::str::from_utf8(&record[eq + 1..]).ok()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, name: &str, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_cksum();
        h
    }

    /// A tar whose first entry is a GNU long name (or other record) claiming `size` bytes,
    /// followed by that many bytes (streamed, never held) and a file.
    fn oversized(kind: u8, size: u64) -> impl Read {
        let h = header(kind, "././@LongLink", size);
        let mut file = tar::Builder::new(Vec::new());
        let fh = header(b'0', "f", 1);
        file.append(&fh, &b"x"[..]).unwrap();
        let pad = padding(size).unwrap();
        io::Cursor::new(h.as_bytes().to_vec())
            .chain(io::repeat(b'a').take(size))
            .chain(io::repeat(0).take(pad))
            .chain(io::Cursor::new(file.into_inner().unwrap()))
    }

    #[test]
    fn oversized_long_names_links_and_pax_records_fail_before_they_are_read() {
        for kind in [b'L', b'K', b'x', b'g'] {
            let mut archive = tar_archive(oversized(kind, 1 << 30));
            let err = archive
                .entries()
                .unwrap()
                .map(|e| e.and_then(|mut e| e.pax_extensions().map(|_| ())))
                .find_map(|r| r.err())
                .expect("an error");
            assert!(err.to_string().contains("exceeds the limit"), "{err}");
        }
    }

    #[test]
    fn records_within_the_limit_and_pax_sizes_pass() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(3000));
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        b.append_pax_extensions([("size", &b"700"[..]), ("SCHILY.xattr.user.a", b"1")])
            .unwrap();
        let mut h = header(b'0', "big", 0);
        h.set_cksum();
        b.append(&h, &[7u8; 700][..]).unwrap();
        // A header record that sits inside the 700 data bytes must not be mistaken for one.
        let tar = b.into_inner().unwrap();
        let mut archive = tar_archive(&tar[..]);
        let names: Vec<(String, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.size())
            })
            .collect();
        assert_eq!(names, vec![(long, 3), ("big".into(), 700)]);
    }
}
