//! `COPY --chmod` / `ADD --chmod`: an octal mode, or a symbolic one as `chmod(1)` writes it
//! (`u=rwx,g=rx,o=`, `a+x`, `go-w,u+s`), which Dockerfile 1.14 and later accept.
//!
//! A symbolic mode is applied to each copied file's own mode, as BuildKit 0.25 does. Where
//! that differs from GNU chmod, BuildKit is followed (seen on BuildKit 0.25, Dockerfile 1.19):
//! - no umask: `+x` is `a+x`;
//! - `s` sets the setuid bit for `u` and the setgid bit for `g`; for `o` it does nothing;
//! - `t` (the sticky bit) counts only when the classes include `u` or `g` (or none are named):
//!   `o+t` and `o-t` do nothing, while `g+t` sets it;
//! - `=` clears the classes' rwx bits and their setuid/setgid bits, never the sticky bit;
//! - the directory a step creates for its destination keeps 0755 (an octal mode is given to it).

use std::fmt;

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// An octal mode (at most 0o7777), given to every copied file and to a destination
    /// directory the step creates.
    Octal(u32),
    /// A symbolic mode: clauses applied in order to each copied file's mode.
    Symbolic(Vec<Clause>),
}

/// One comma-separated clause: the classes it names, then its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// A bit set of `WHO_U`, `WHO_G` and `WHO_O`; 0 when none were named (all, no umask).
    who: u8,
    ops: Vec<Op>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Op {
    action: u8,
    perms: Perms,
}

/// What an operation adds, removes or sets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Perms {
    /// Letters from `rwxXst`.
    Letters {
        r: bool,
        w: bool,
        x: bool,
        big_x: bool,
        s: bool,
        t: bool,
    },
    /// The current bits of one class (`u`, `g` or `o`).
    CopyOf(u8),
}

const WHO_U: u8 = 1;
const WHO_G: u8 = 2;
const WHO_O: u8 = 4;
const WHO_ALL: u8 = WHO_U | WHO_G | WHO_O;

/// Why a `--chmod` value is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChmodError(String);

impl fmt::Display for ChmodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Chmod {
    /// Parses a `--chmod` value: digits are an octal mode, anything else a symbolic one.
    pub fn parse(text: &str) -> Result<Chmod, ChmodError> {
        if text.bytes().any(|b| b.is_ascii_digit()) {
            return u32::from_str_radix(text, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Chmod::Octal)
                .ok_or_else(|| {
                    ChmodError("expected an octal mode between 0 and 7777".to_string())
                });
        }
        text.split(',')
            .map(parse_clause)
            .collect::<Result<Vec<_>, _>>()
            .map(Chmod::Symbolic)
    }

    /// The mode a copied file or directory gets, from its own mode (`mode & 0o7777` is used).
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => clauses
                .iter()
                .fold(mode & 0o7777, |m, c| c.apply(m, is_dir)),
        }
    }

    /// The mode of a destination directory the step creates, when `--chmod` sets one.
    pub fn created_dest_mode(&self) -> Option<u32> {
        match self {
            Chmod::Octal(m) => Some(*m),
            Chmod::Symbolic(_) => None,
        }
    }
}

fn parse_clause(text: &str) -> Result<Clause, ChmodError> {
    let bad = || {
        ChmodError(format!(
            "{text:?} is not a mode: expected [ugoa]*[-+=][rwxXst]* or [ugoa]*[-+=][ugo]"
        ))
    };
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut who = 0u8;
    while let Some(&b) = bytes.get(i) {
        who |= match b {
            b'u' => WHO_U,
            b'g' => WHO_G,
            b'o' => WHO_O,
            b'a' => WHO_ALL,
            _ => break,
        };
        i += 1;
    }
    let mut ops = Vec::new();
    while let Some(&action) = bytes.get(i) {
        if !matches!(action, b'+' | b'-' | b'=') {
            return Err(bad());
        }
        i += 1;
        let perms = match bytes.get(i) {
            Some(&c @ (b'u' | b'g' | b'o')) => {
                i += 1;
                Perms::CopyOf(match c {
                    b'u' => WHO_U,
                    b'g' => WHO_G,
                    _ => WHO_O,
                })
            }
            _ => {
                let (mut r, mut w, mut x, mut big_x, mut s, mut t) =
                    (false, false, false, false, false, false);
                while let Some(&c) = bytes.get(i) {
                    match c {
                        b'r' => r = true,
                        b'w' => w = true,
                        b'x' => x = true,
                        b'X' => big_x = true,
                        b's' => s = true,
                        b't' => t = true,
                        b'+' | b'-' | b'=' => break,
                        _ => return Err(bad()),
                    }
                    i += 1;
                }
                Perms::Letters {
                    r,
                    w,
                    x,
                    big_x,
                    s,
                    t,
                }
            }
        };
        ops.push(Op { action, perms });
    }
    if ops.is_empty() {
        return Err(bad());
    }
    Ok(Clause { who, ops })
}

impl Clause {
    fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let who = if self.who == 0 { WHO_ALL } else { self.who };
        // The rwx bits of the named classes, and the special bits they reach.
        let mut rwx_mask = 0u32;
        let mut special = 0u32;
        if who & WHO_U != 0 {
            rwx_mask |= 0o700;
            special |= 0o4000;
        }
        if who & WHO_G != 0 {
            rwx_mask |= 0o070;
            special |= 0o2000;
        }
        if who & WHO_O != 0 {
            rwx_mask |= 0o007;
        }
        let sticky = if who & (WHO_U | WHO_G) != 0 {
            0o1000
        } else {
            0
        };
        let mut mode = mode;
        for op in &self.ops {
            let bits = match &op.perms {
                Perms::Letters {
                    r,
                    w,
                    x,
                    big_x,
                    s,
                    t,
                } => {
                    let exec = *x || (*big_x && (is_dir || mode & 0o111 != 0));
                    let triple = u32::from(*r) * 4 + u32::from(*w) * 2 + u32::from(exec);
                    let mut bits = (triple * 0o111) & rwx_mask;
                    if *s {
                        bits |= special;
                    }
                    if *t {
                        bits |= sticky;
                    }
                    bits
                }
                Perms::CopyOf(class) => {
                    let triple = match *class {
                        WHO_U => (mode >> 6) & 7,
                        WHO_G => (mode >> 3) & 7,
                        _ => mode & 7,
                    };
                    (triple * 0o111) & rwx_mask
                }
            };
            mode = match op.action {
                b'+' => mode | bits,
                b'-' => mode & !bits,
                _ => (mode & !(rwx_mask | special)) | bits,
            };
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(text: &str, mode: u32, is_dir: bool) -> u32 {
        Chmod::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .apply(mode, is_dir)
    }

    /// Each row was seen on BuildKit 0.25 (Dockerfile 1.19): `COPY --chmod=MODE` of a file
    /// (or a directory's subdirectory) with the first mode gave the second.
    #[test]
    fn symbolic_modes_give_what_buildkit_gives() {
        let files = [
            ("u=rwx,g=rx,o=", 0o644, 0o750),
            ("a+x", 0o644, 0o755),
            ("a+x", 0o600, 0o711),
            ("+x", 0o600, 0o711),
            ("go-w,u+s", 0o664, 0o4644),
            ("u+X", 0o644, 0o644),
            ("g=u", 0o600, 0o660),
            ("o+t,g+s", 0o644, 0o2644),
            ("a=r,u+w", 0o755, 0o644),
            ("o+X", 0o744, 0o745),
            ("o+t", 0o744, 0o744),
            ("u=rw,u+x,g-r", 0o744, 0o704),
            ("ug+rw-x", 0o744, 0o664),
            ("a-rwx,u=g", 0o744, 0o000),
            ("o=u", 0o744, 0o747),
            ("u+", 0o744, 0o744),
            ("=", 0o744, 0o000),
            ("u=g+w", 0o744, 0o644),
            ("+", 0o744, 0o744),
            ("u+s,g+t", 0o744, 0o5744),
            ("+t", 0o744, 0o1744),
            ("u+t", 0o744, 0o1744),
            ("g+t", 0o744, 0o1744),
            ("+s", 0o744, 0o6744),
            ("o+s", 0o744, 0o744),
            ("g=s", 0o744, 0o2704),
            ("u=t", 0o744, 0o1044),
            ("a=rwxst", 0o744, 0o7777),
            ("go=u-w", 0o744, 0o755),
            ("o+s", 0o7755, 0o7755),
            ("u=rw", 0o7755, 0o3655),
            ("g=r", 0o7755, 0o5745),
            ("o=r", 0o7755, 0o7754),
            ("=", 0o7755, 0o1000),
            ("a=", 0o7755, 0o1000),
            ("u-t", 0o7755, 0o6755),
            ("o-t", 0o7755, 0o7755),
            ("a-s", 0o7755, 0o1755),
            ("u+g", 0o7755, 0o7755),
            ("u+x-x+w", 0o7755, 0o7655),
            ("u=rw,o-r,g+u", 0o7755, 0o3671),
        ];
        let dirs = [
            ("o+X", 0o770, 0o771),
            ("u+X", 0o775, 0o775),
            ("go-w,u+s", 0o775, 0o4755),
            ("+t", 0o770, 0o1770),
            ("o=g", 0o770, 0o777),
            ("g=s", 0o770, 0o2700),
        ];
        let rows = files
            .iter()
            .map(|r| (r, false))
            .chain(dirs.iter().map(|r| (r, true)));
        for (&(text, before, after), is_dir) in rows {
            assert_eq!(
                sym(text, before, is_dir),
                after,
                "{text} on {before:o} (dir: {is_dir})"
            );
        }
    }

    #[test]
    fn octal_modes_and_refusals() {
        assert_eq!(Chmod::parse("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("04755"), Ok(Chmod::Octal(0o4755)));
        assert_eq!(
            Chmod::parse("600").unwrap().created_dest_mode(),
            Some(0o600)
        );
        assert_eq!(Chmod::parse("a+x").unwrap().created_dest_mode(), None);
        // Refused by BuildKit 0.25 too ("invalid syntax" / "invalid chmod parameter").
        for bad in [
            "999",
            "0755x",
            "17777",
            "u+z",
            "x=r",
            "u=rx,",
            "a",
            "u=rwx,,g=r",
            "U+x",
            "",
        ] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
