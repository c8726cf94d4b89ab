//! Parallel, deterministic gzip (the pigz scheme).
//!
//! The input is cut into fixed 1 MiB blocks. Each block is deflated by a fresh compressor primed
//! with the last 32 KiB of the block before it and ended with a sync flush, so the blocks
//! concatenate into one deflate stream; the CRC-32s are combined in order. The bytes depend only
//! on the input, the level and the block size, never on the number of threads or on timing.
//! Blocks are compressed a batch at a time, one block per core.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

const BLOCK: usize = 1 << 20;
const WINDOW: usize = 32 << 10;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A gzip writer that compresses on every core.
pub struct ParGzip<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    /// Input not yet compressed (up to `threads` blocks).
    pending: Vec<u8>,
    /// The last 32 KiB of input already compressed: the dictionary for the next block.
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> ParGzip<W> {
    /// Writes the gzip header to `out` and compresses at `level` (0 to 9) on up to `threads`
    /// threads.
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        out.write_all(&HEADER)?;
        let threads = threads.max(1);
        Ok(ParGzip {
            out,
            level,
            threads,
            pending: Vec::with_capacity(BLOCK * threads),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
        })
    }

    /// Compresses the whole blocks in `pending` (all of it when `last`).
    fn flush_blocks(&mut self, last: bool) -> io::Result<()> {
        let whole = if last {
            self.pending.len()
        } else {
            self.pending.len() / BLOCK * BLOCK
        };
        if whole == 0 && !last {
            return Ok(());
        }
        let data = &self.pending[..whole];
        let mut blocks: Vec<&[u8]> = data.chunks(BLOCK).collect();
        if blocks.is_empty() {
            blocks.push(&[]);
        }
        let mut dicts = Vec::with_capacity(blocks.len());
        let mut prev: &[u8] = &self.dict;
        for b in &blocks {
            dicts.push(prev);
            prev = &b[b.len().saturating_sub(WINDOW)..];
        }
        let level = self.level;
        let n = blocks.len();
        let results: Vec<io::Result<(Vec<u8>, crc32fast::Hasher)>> = std::thread::scope(|s| {
            let handles: Vec<_> = blocks
                .iter()
                .zip(&dicts)
                .enumerate()
                .map(|(i, (b, d))| {
                    let is_last = last && i + 1 == n;
                    s.spawn(move || deflate_block(level, d, b, is_last))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))
                })
                .collect()
        });
        for r in results {
            let (bytes, crc) = r?;
            self.out.write_all(&bytes)?;
            self.crc.combine(&crc);
        }
        // The next dictionary: the last 32 KiB of everything compressed so far.
        let mut dict = std::mem::take(&mut self.dict);
        dict.extend_from_slice(&data[data.len().saturating_sub(WINDOW)..]);
        let cut = dict.len().saturating_sub(WINDOW);
        dict.drain(..cut);
        self.dict = dict;
        self.pending.drain(..whole);
        Ok(())
    }

    /// Writes the last block and the trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_blocks(true)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.len as u32).to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK * self.threads - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        self.len += n as u64;
        if self.pending.len() == BLOCK * self.threads {
            self.flush_blocks(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing mid-stream would change the block boundaries, hence the bytes: only whole
        // blocks are ever compressed before `finish`.
        self.out.flush()
    }
}

/// Deflates one block with a fresh compressor: sync-flushed, or finished when `last`.
fn deflate_block(
    level: u32,
    dict: &[u8],
    input: &[u8],
    last: bool,
) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_in = c.total_in() as usize == input.len();
        match status {
            Status::StreamEnd => break,
            _ if done_in && !last && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok((out, crc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn output_is_valid_gzip_and_independent_of_thread_count() {
        let input: Vec<u8> = (0..3_500_000u32)
            .map(|i| ((i % 253) ^ (i >> 12)) as u8)
            .collect();
        let mut outs = Vec::new();
        for threads in [1, 2, 3, 4, 8] {
            let mut gz = ParGzip::new(Vec::new(), 6, threads).unwrap();
            for chunk in input.chunks(77_777) {
                gz.write_all(chunk).unwrap();
            }
            outs.push(gz.finish().unwrap());
        }
        assert!(outs.iter().all(|o| *o == outs[0]));
        // The header names no file and no time (FLG and MTIME zero), so the bytes do not
        // depend on when or from what they were made.
        assert_eq!(&outs[0][..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&outs[0][4..8], &[0, 0, 0, 0]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&outs[0][..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == input);
        let empty = ParGzip::new(Vec::new(), 6, 2).unwrap().finish().unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
