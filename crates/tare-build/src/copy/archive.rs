//! The archives ADD extracts, told by their first bytes, and their decoders.

use std::fs;
use std::io::{Read, Seek};
use std::path::Path;

use crate::error::{io_err, Error};

/// The kinds of archive ADD extracts, told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Tells whether `file` (read from its start) is an archive ADD extracts; `name` names it in
/// errors.
pub fn archive_kind(file: &mut fs::File, name: &Path) -> Result<Option<ArchiveKind>, Error> {
    let mut head = [0u8; 512];
    let filled = read_up_to(file, &mut head).map_err(io_err(name))?;
    let head = &head[..filled];
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(ArchiveKind::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if is_tar_header(head) {
        Some(ArchiveKind::Tar)
    } else {
        None
    };
    // A compressed file that is not a tar inside is copied as it is, as Docker does.
    if let Some(k) = kind {
        if k != ArchiveKind::Tar {
            file.rewind().map_err(io_err(name))?;
            let mut inner =
                decoder(k, file.try_clone().map_err(io_err(name))?).map_err(io_err(name))?;
            let mut buf = [0u8; 512];
            let got = read_up_to(&mut inner, &mut buf).unwrap_or(0);
            if !is_tar_header(&buf[..got]) {
                return Ok(None);
            }
        }
    }
    file.rewind().map_err(io_err(name))?;
    Ok(kind)
}

/// A tar header block: the `ustar` magic, or an old (v7) header whose checksum is right.
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    block[0] != 0 && sum == stored
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The tar stream inside an archive of `kind`.
pub fn decoder(kind: ArchiveKind, file: fs::File) -> std::io::Result<Box<dyn Read>> {
    let file = std::io::BufReader::new(file);
    Ok(match kind {
        ArchiveKind::Tar => Box::new(file),
        ArchiveKind::Gzip => tare_layer::decompress_as(tare_layer::Compression::Gzip, file)?,
        ArchiveKind::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
        ArchiveKind::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(file)),
        ArchiveKind::Zstd => tare_layer::decompress_as(tare_layer::Compression::Zstd, file)?,
    })
}
