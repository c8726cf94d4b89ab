//! Where `tare build`'s context comes from when it is not a directory: a git URL
//! (`tare build https://host/repo.git#ref:subdir`) or standard input (`tare build - < ctx.tar`),
//! as `docker build` takes them.
//!
//! - A git URL is fetched as ADD fetches one ([`crate::git`]), without `.git`, into the
//!   store's temporary area.
//! - Standard input is streamed to a temporary file first, then told apart by its first bytes
//!   as Docker's CLI does: a tar (plain, gzip, bzip2, xz or zstd) is the context, extracted
//!   with `tare-layer`'s fd-relative applier (it is a hostile archive: `..` entries are refused,
//!   symlinks resolve inside the directory); anything else is a Dockerfile, with an empty
//!   context.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error};
use crate::git::{FetchOptions, GitRef};
use crate::tree::MAX_DOCKERFILE;

/// A context made for one build; its files go when this is dropped.
pub struct PreparedContext {
    /// The context directory.
    pub dir: PathBuf,
    /// The Dockerfile standard input held when it was not an archive.
    pub dockerfile: Option<String>,
    _tmp: tare_store::TempDir,
}

/// `tare build URL`: the repository's ref checked out, its subdir as the context.
pub fn from_git(
    store: &tare_store::Store,
    git: &GitRef,
    opts: &FetchOptions,
) -> Result<PreparedContext, Error> {
    let tmp = store.temp_dir("context-")?;
    let checkout = crate::git::fetch(git, tmp.path(), opts)?;
    Ok(PreparedContext {
        dir: checkout.dir,
        dockerfile: None,
        _tmp: tmp,
    })
}

/// `tare build -`: a context archive or a Dockerfile from `input`.
pub fn from_stdin(
    store: &tare_store::Store,
    input: &mut dyn Read,
) -> Result<PreparedContext, Error> {
    let tmp = store.temp_dir("context-")?;
    let spool = tmp.path().join("stdin");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&spool)
        .map_err(io_err(&spool))?;
    std::io::copy(input, &mut file).map_err(io_err(&spool))?;
    file.rewind().map_err(io_err(&spool))?;
    let dir = tmp.path().join("context");
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    let stdin_name = Path::new("standard input");
    let dockerfile = match crate::copy::archive_kind(&mut file, stdin_name)? {
        Some(kind) => {
            let reader = crate::copy::decoder(kind, file).map_err(io_err(stdin_name))?;
            let mut make_dir = |parent: &std::os::fd::OwnedFd,
                                name: &std::ffi::OsStr,
                                _: &Path|
             -> std::io::Result<()> {
                let name = name.to_string_lossy();
                crate::fsops::mkdir_at(parent, &name, 0o755, (0, 0)).map(drop)
            };
            let opts = tare_layer::apply::ExtractOptions {
                dest: Path::new(""),
                chown: None,
                make_dir: &mut make_dir,
            };
            tare_layer::apply::extract(reader, &dir, opts, "the context from standard input")?;
            None
        }
        None => {
            let mut bytes = Vec::new();
            file.take(MAX_DOCKERFILE + 1)
                .read_to_end(&mut bytes)
                .map_err(|source| Error::Stdin { source })?;
            // Bytes that are not UTF-8 are replaced, as for a Dockerfile in a file.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if bytes.len() as u64 > MAX_DOCKERFILE {
                return Err(Error::TooLarge {
                    what: "the Dockerfile on standard input".into(),
                    limit: MAX_DOCKERFILE,
                });
            }
            Some(text)
        }
    };
    let _ = std::fs::remove_file(&spool);
    Ok(PreparedContext {
        dir,
        dockerfile,
        _tmp: tmp,
    })
}
