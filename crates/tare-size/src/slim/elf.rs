//! The ELF headers slim reads: the interpreter and the dynamic section (`DT_NEEDED`,
//! `DT_RPATH`, `DT_RUNPATH`) of 32- and 64-bit files of either byte order, with every read
//! bounded.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The largest dynamic section and string table read from an ELF file.
const MAX_ELF_TABLE: u64 = 16 << 20;

/// What the loader needs from an ELF file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ElfNeeds {
    /// `PT_INTERP`: the program interpreter (dynamic loader); `None` for static files and
    /// libraries.
    pub interp: Option<String>,
    /// `DT_NEEDED`: the libraries to load, as named.
    pub needed: Vec<String>,
    /// `DT_RPATH` directories, split at `:`.
    pub rpath: Vec<String>,
    /// `DT_RUNPATH` directories, split at `:`.
    pub runpath: Vec<String>,
}

/// Reads the interpreter and the dynamic section of an ELF file (32 or 64 bits, either byte
/// order). `None` when it is not ELF or is malformed. Reads are bounded: the program headers,
/// the interpreter name, the dynamic section and its string table.
pub fn read_elf(f: &File) -> Option<ElfNeeds> {
    let mut ident = [0u8; 64];
    let got = f.read_at(&mut ident, 0).ok()?;
    if got < 52 || &ident[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let r = Reader { big };
    let (phoff, phentsize, phnum) = if wide {
        (
            r.u64(&ident[32..40]),
            r.u16(&ident[54..56]) as u64,
            r.u16(&ident[56..58]) as u64,
        )
    } else {
        (
            r.u32(&ident[28..32]) as u64,
            r.u16(&ident[42..44]) as u64,
            r.u16(&ident[44..46]) as u64,
        )
    };
    let min = if wide { 56 } else { 32 };
    if phentsize < min || phnum == 0 || phnum > 4096 {
        return None;
    }
    let table = read_exact_at(f, phoff, phentsize * phnum)?;
    let mut loads = Vec::new();
    let mut interp = None;
    let mut dynamic = None;
    for i in 0..phnum as usize {
        let h = &table[i * phentsize as usize..];
        let kind = r.u32(&h[0..4]);
        let (offset, vaddr, filesz) = if wide {
            (r.u64(&h[8..16]), r.u64(&h[16..24]), r.u64(&h[32..40]))
        } else {
            (
                r.u32(&h[4..8]) as u64,
                r.u32(&h[8..12]) as u64,
                r.u32(&h[16..20]) as u64,
            )
        };
        match kind {
            1 => loads.push((vaddr, offset, filesz)),
            2 => dynamic = Some((offset, filesz)),
            3 if filesz <= 4096 => {
                let bytes = read_exact_at(f, offset, filesz)?;
                let name = bytes.split(|b| *b == 0).next()?;
                interp = Some(String::from_utf8_lossy(name).into_owned());
            }
            _ => {}
        }
    }
    let mut needs = ElfNeeds {
        interp,
        ..ElfNeeds::default()
    };
    let Some((offset, size)) = dynamic else {
        return Some(needs);
    };
    if size > MAX_ELF_TABLE {
        return None;
    }
    let dynamic = read_exact_at(f, offset, size)?;
    let entry = if wide { 16 } else { 8 };
    let (mut strtab, mut strsz) = (None, 0u64);
    let mut wanted: Vec<(u64, u64)> = Vec::new();
    for e in dynamic.chunks_exact(entry) {
        let (tag, val) = if wide {
            (r.u64(&e[0..8]), r.u64(&e[8..16]))
        } else {
            (r.u32(&e[0..4]) as u64, r.u32(&e[4..8]) as u64)
        };
        match tag {
            0 => break,
            5 => strtab = Some(val),
            10 => strsz = val,
            1 | 15 | 29 => wanted.push((tag, val)),
            _ => {}
        }
    }
    let strtab = strtab?;
    if strsz == 0 || strsz > MAX_ELF_TABLE {
        return Some(needs);
    }
    let file_offset = loads
        .iter()
        .find(|(vaddr, _, filesz)| strtab >= *vaddr && strtab < vaddr.saturating_add(*filesz))
        .map(|(vaddr, offset, _)| strtab - vaddr + offset)?;
    let strings = read_exact_at(f, file_offset, strsz)?;
    for (tag, at) in wanted {
        let Some(rest) = strings.get(at as usize..) else {
            continue;
        };
        let s = String::from_utf8_lossy(rest.split(|b| *b == 0).next().unwrap_or(&[])).into_owned();
        match tag {
            1 => needs.needed.push(s),
            15 => needs.rpath.extend(s.split(':').map(String::from)),
            _ => needs.runpath.extend(s.split(':').map(String::from)),
        }
    }
    Some(needs)
}

fn read_exact_at(f: &File, offset: u64, len: u64) -> Option<Vec<u8>> {
    if len > MAX_ELF_TABLE {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

struct Reader {
    big: bool,
}

impl Reader {
    fn u16(&self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        if self.big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    }
    fn u32(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }
    fn u64(&self, b: &[u8]) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_needs_libc() {
        let exe = File::open("/proc/self/exe").unwrap();
        let needs = read_elf(&exe).unwrap();
        assert!(
            needs.needed.iter().any(|n| n.starts_with("libc.so")),
            "{needs:?}"
        );
        assert!(needs.interp.is_some());
        let not_elf = File::open("/proc/self/cmdline").unwrap();
        assert!(read_elf(&not_elf).is_none());
    }
}
