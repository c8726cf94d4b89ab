//! `tare build -o/--output`: where a build's result goes, parsed from buildx's notation
//! (`type=local,dest=DIR`, `type=tar,dest=FILE|-`, `type=oci|docker,dest=FILE`,
//! `type=image,name=N,push=true`, `type=registry`; `-o DIR` and `-o -` as shorthands), and
//! the writer of the final stage's files into a directory.
//!
//! The archive kinds reuse `tare save`'s exporters (`tare_layer::archive`) and `tare export`'s
//! flattening (`tare_layer::export`); this module only adds `type=local`, which streams that
//! flattened tar into the same fd-relative applier that unpacks layers, so a symlink in the
//! image can never make tare write outside DIR.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use tare_store::{Image, Reference, Store};

use crate::error::{io_err, Error};
use crate::fsops;

/// Where an archive goes: a file, or standard output (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A file (`dest=PATH`).
    File(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

/// One `-o` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=image` (and `type=registry`, which pushes): the image in the store, named by
    /// `names` besides the `-t` tags.
    Image {
        /// `name=`: the names besides the `-t` tags.
        names: Vec<Reference>,
        /// `push=true` (or `type=registry`): push the names after the build.
        push: bool,
    },
    /// `type=local,dest=DIR`: the final stage's files, owned by the user running tare.
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// `type=tar,dest=FILE|-`: the final stage's files as one tar.
    Tar {
        /// Where the tar goes.
        dest: Dest,
    },
    /// `type=oci,dest=...`: an OCI image layout tar, as `tare save --format oci`.
    Oci {
        /// Where the archive goes.
        dest: Dest,
        /// `name=`: the names it records (besides the `-t` tags).
        names: Vec<Reference>,
    },
    /// `type=docker,dest=...`: a `docker load` archive, as `tare save`.
    Docker {
        /// Where the archive goes.
        dest: Dest,
        /// `name=`: the names it records (besides the `-t` tags).
        names: Vec<Reference>,
    },
}

impl Output {
    /// Whether the image stays in the store (with its tags) after the build.
    pub fn stores_image(&self) -> bool {
        matches!(self, Output::Image { .. })
    }

    /// Parses one `-o` value the way buildx does: comma-separated `key=value` pairs, or a bare
    /// `-` (a tar on standard output) or directory (`type=local`).
    pub fn parse(spec: &str) -> Result<Output, Error> {
        let bad = |reason: String| Error::BadOption {
            flag: "--output",
            value: format!("{spec:?}"),
            reason,
        };
        if spec == "-" {
            return Ok(Output::Tar { dest: Dest::Stdout });
        }
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(bad("empty".into()));
            }
            return Ok(Output::Local {
                dest: PathBuf::from(spec),
            });
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut push = None;
        for field in spec.split(',') {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("{field:?} is not key=value")))?;
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => kind = Some(value.to_string()),
                "dest" => dest = Some(value.to_string()),
                "name" => {
                    for n in value.split(',').filter(|n| !n.is_empty()) {
                        names.push(
                            Reference::parse(n).map_err(|e| bad(format!("name {n:?}: {e}")))?,
                        );
                    }
                }
                "push" => {
                    push = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => return Err(bad(format!("push={other}: expected true or false"))),
                    })
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        let kind = kind.unwrap_or_else(|| "local".to_string());
        let need_dest = |d: Option<String>| -> Result<Dest, Error> {
            match d.as_deref() {
                None | Some("") => Err(bad(format!("type={kind} needs dest=FILE (or dest=-)"))),
                Some("-") => Ok(Dest::Stdout),
                Some(path) => Ok(Dest::File(PathBuf::from(path))),
            }
        };
        let no_push = |push: Option<bool>| match push {
            Some(true) => Err(bad(format!("type={kind} cannot push"))),
            _ => Ok(()),
        };
        let out = match kind.as_str() {
            "local" => {
                no_push(push)?;
                match need_dest(dest)? {
                    Dest::File(dest) => Output::Local { dest },
                    Dest::Stdout => {
                        return Err(bad("type=local needs a directory, not -".into()));
                    }
                }
            }
            "tar" => {
                no_push(push)?;
                Output::Tar {
                    dest: need_dest(dest)?,
                }
            }
            "oci" | "docker" => {
                no_push(push)?;
                match dest {
                    // Without dest, buildx loads a docker image into the engine: here, the store.
                    None if kind == "docker" => Output::Image { names, push: false },
                    d => {
                        let dest = need_dest(d)?;
                        if kind == "oci" {
                            Output::Oci { dest, names }
                        } else {
                            Output::Docker { dest, names }
                        }
                    }
                }
            }
            "image" | "registry" => {
                if dest.is_some() {
                    return Err(bad(format!("type={kind} takes no dest")));
                }
                Output::Image {
                    names,
                    push: kind == "registry" || push == Some(true),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown type {other:?} (local, tar, oci, docker, image or registry)"
                )))
            }
        };
        Ok(out)
    }
}

/// Writes the merged filesystem of `image` into `dest` (created when missing; what it holds
/// already stays unless the image has the same path), every entry owned by the user running
/// tare, as buildx's local exporter writes them. Returns the number of regular-file bytes.
pub fn write_local(store: &Store, image: &Image, dest: &Path) -> Result<u64, Error> {
    std::fs::create_dir_all(dest).map_err(io_err(dest))?;
    let owner = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let (reader, writer) = std::io::pipe().map_err(io_err(dest))?;
    let name = format!("the files of image {}", image.id);
    std::thread::scope(|s| {
        let export = s.spawn(move || -> Result<(), Error> {
            let w = std::io::BufWriter::with_capacity(1 << 20, writer);
            let mut w = tare_layer::export::export(store, &image.layers, w)?;
            w.flush().map_err(io_err(dest))?;
            Ok(())
        });
        let mut make_dir = |parent: &OwnedFd, name: &std::ffi::OsStr, _: &Path| {
            let name = name.to_str().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "non-UTF-8 directory name")
            })?;
            fsops::mkdir_at(parent, name, 0o755, owner).map(drop)
        };
        let opts = tare_layer::apply::ExtractOptions {
            dest: Path::new(""),
            chown: Some(owner),
            make_dir: &mut make_dir,
        };
        let applied = tare_layer::apply::extract(reader, dest, opts, &name);
        let exported = export.join().unwrap_or_else(|_| {
            Err(Error::Panicked {
                what: "the export thread".into(),
            })
        });
        // The applier's error first: when it stops reading, the exporter only sees a closed pipe.
        let stats = applied?;
        exported?;
        Ok(stats.bytes)
    })
}

/// Writes the merged filesystem of `image` as one tar to `out`.
pub fn write_tar<W: Write>(store: &Store, image: &Image, out: W) -> Result<W, Error> {
    Ok(tare_layer::export::export(store, &image.layers, out)?)
}

/// The directory of one platform's files when a build writes several (`linux_arm64`,
/// `linux_arm_v7`), as BuildKit's local and tar exporters name them.
pub fn platform_dir(platform: &crate::Platform) -> String {
    platform.to_string().replace('/', "_")
}

/// Writes several platforms' merged filesystems as one tar to `out`, each under its own
/// directory (`linux_amd64/...`, a 0755 directory entry first), as BuildKit's tar exporter
/// writes a multi-platform build.
pub fn write_tar_platforms<W: Write>(
    store: &Store,
    images: &[(&crate::Platform, &Image)],
    out: W,
) -> Result<W, Error> {
    let mut tar = tar::Builder::new(out);
    for (platform, image) in images {
        let dir = platform_dir(platform);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        tar.append_data(&mut header, format!("{dir}/"), std::io::empty())
            .map_err(io_err(Path::new(&dir)))?;
        tare_layer::export::export_into(store, &image.layers, Path::new(&dir), &mut tar)?;
    }
    tar.into_inner().map_err(io_err(Path::new("the tar")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(p: &str) -> Output {
        Output::Local { dest: p.into() }
    }

    #[test]
    fn buildx_notation_parses_to_outputs() {
        assert_eq!(Output::parse("out").unwrap(), local("out"));
        assert_eq!(Output::parse("type=local,dest=a/b").unwrap(), local("a/b"));
        assert_eq!(Output::parse("dest=d").unwrap(), local("d"));
        assert_eq!(
            Output::parse("-").unwrap(),
            Output::Tar { dest: Dest::Stdout }
        );
        assert_eq!(
            Output::parse("type=tar,dest=x.tar").unwrap(),
            Output::Tar {
                dest: Dest::File("x.tar".into())
            }
        );
        let name = Reference::parse("reg.example:5000/a:1").unwrap();
        assert_eq!(
            Output::parse("type=image,name=reg.example:5000/a:1,push=true").unwrap(),
            Output::Image {
                names: vec![name.clone()],
                push: true
            }
        );
        assert_eq!(
            Output::parse("type=registry").unwrap(),
            Output::Image {
                names: vec![],
                push: true
            }
        );
        assert_eq!(
            Output::parse("type=oci,dest=-,name=reg.example:5000/a:1").unwrap(),
            Output::Oci {
                dest: Dest::Stdout,
                names: vec![name]
            }
        );
        assert_eq!(
            Output::parse("type=docker").unwrap(),
            Output::Image {
                names: vec![],
                push: false
            }
        );
        assert!(Output::parse("type=image").unwrap().stores_image());
        assert!(!Output::parse("type=tar,dest=-").unwrap().stores_image());
    }

    #[test]
    fn bad_output_specs_name_what_is_wrong() {
        for (spec, why) in [
            ("type=tar", "needs dest"),
            ("type=oci", "needs dest"),
            ("type=local,dest=-", "needs a directory"),
            ("type=cacheonly", "unknown type"),
            ("type=local,dest=x,colour=red", "unknown key"),
            ("type=tar,dest=x,push=true", "cannot push"),
            ("type=image,push=maybe", "expected true or false"),
            ("type=image,name=UPPER", "name"),
            ("type=local,dest", "not key=value"),
            ("", "empty"),
        ] {
            let e = Output::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
            assert!(e.contains("--output"), "{spec}: {e}");
        }
    }
}
