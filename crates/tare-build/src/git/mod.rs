//! Git sources: `ADD <git url> DEST` and a build context from a git URL.
//!
//! A source is a git URL in BuildKit's notation (`dfgitutil.ParseGitRef` of BuildKit 0.25):
//! `https://host/repo.git#ref:subdir`, `git@host:org/repo.git#ref`, `ssh://...`, `git://...`,
//! `http://...`, and the query form `?ref=&tag=&branch=&subdir=&checksum=&keep-git-dir=&
//! submodules=`. An http(s) URL is git only when its path ends in `.git`.
//!
//! The work is done by the `git` program on `PATH` (Debian's), as BuildKit runs its git CLI,
//! with a clean environment: no system or global config, `HOME` an empty scratch directory,
//! no hooks (an empty template and `core.hooksPath=/dev/null`), no credential helper, no
//! prompt, and `GIT_ALLOW_PROTOCOL` limited to https, http, ssh and git, which also binds
//! submodules (no `file://`, no `ext::`). Every command has a deadline and runs in its own
//! process group, killed when the deadline passes; the checkout's size is checked from the
//! tree listing before any file is written.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

mod url;

use url::{check_checksum, clean_subdir, is_commit_sha};
pub use url::{redact, GitRef};

/// The default deadline of one git command (`tare build --git-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How a git source is fetched.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Keep `.git` in the checkout (`ADD --keep-git-dir`), when no subdir is used.
    pub keep_git_dir: bool,
    /// The most bytes the checkout's files may hold.
    pub max_size: u64,
    /// The deadline of each git command.
    pub timeout: Duration,
    /// An ssh agent's socket for `ssh://` and `git@` remotes (`tare build --ssh default`).
    pub ssh_auth_sock: Option<PathBuf>,
}

/// A checked-out git source.
#[derive(Debug)]
pub struct Checkout {
    /// The commit that was checked out.
    pub commit: String,
    /// The directory whose contents are the source (the subdir when one is given).
    pub dir: PathBuf,
}

/// Runs git commands in a fixed environment, each with a deadline.
struct Git<'a> {
    home: PathBuf,
    opts: &'a FetchOptions,
    /// The remote as given, for messages (redacted) and to hide its password in git's output.
    remote: &'a str,
}

impl Git<'_> {
    fn fail(&self, reason: String) -> Error {
        Error::Git {
            url: redact(self.remote),
            reason: self.hide(&reason),
        }
    }

    /// `text` with the remote's password replaced.
    fn hide(&self, text: &str) -> String {
        let redacted = redact(self.remote);
        if redacted == self.remote {
            return text.to_string();
        }
        text.replace(self.remote, &redacted)
    }

    fn command(&self, dir: Option<&Path>) -> Command {
        let mut cmd = Command::new("git");
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "no_proxy",
            "all_proxy",
        ] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", "https:http:ssh:git")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("LC_ALL", "C")
            .env(
                "GIT_SSH_COMMAND",
                "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
                 -o UserKnownHostsFile=/dev/null",
            );
        if let Some(sock) = &self.opts.ssh_auth_sock {
            cmd.env("SSH_AUTH_SOCK", sock);
        }
        cmd.args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "credential.helper=",
            "-c",
            "core.fsmonitor=false",
            "-c",
            "protocol.file.allow=never",
            "-c",
            "transfer.fsckObjects=true",
            "-c",
            "init.defaultBranch=master",
            "-c",
            "advice.detachedHead=false",
        ]);
        if let Some(dir) = dir {
            cmd.arg("-C").arg(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so the deadline ends git's helpers (ssh, remote-https) too.
        cmd.process_group(0);
        cmd
    }

    /// Runs git with `args` in `dir`, returning its standard output.
    fn run(&self, dir: Option<&Path>, args: &[&str]) -> Result<String, Error> {
        let what = args.first().copied().unwrap_or("git");
        let mut child = self
            .command(dir)
            .args(args)
            .spawn()
            .map_err(|e| self.fail(format!("running git {what}: {e} (is git installed?)")))?;
        let read = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(p) = pipe {
                    // At most 1 MiB is kept; the rest is read and dropped so git never blocks.
                    let _ = p.take(1 << 20).read_to_end(&mut out);
                }
                out
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + self.opts.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                        let _ =
                            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.fail(format!(
                        "git {what} did not finish within {} s (--git-timeout)",
                        self.opts.timeout.as_secs_f64()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(self.fail(format!("waiting for git {what}: {e}"))),
            }
        };
        let out = stdout.join().unwrap_or_default();
        let err = stderr.join().unwrap_or_default();
        if !status.success() {
            let err = String::from_utf8_lossy(&err);
            let last: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = last[last.len().saturating_sub(5)..].join("; ");
            return Err(self.fail(format!("git {what} failed ({status}): {tail}")));
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// The commit `reference` names on the remote, found with `git ls-remote` as BuildKit's
/// `CacheKey` finds it: a branch wins over a tag of the same name, an annotated tag gives its
/// commit; no ref is the remote's default branch.
fn resolve(git: &Git<'_>, src: &GitRef) -> Result<String, Error> {
    if let Some(r) = src.reference.as_deref().filter(|r| is_commit_sha(r)) {
        return Ok(r.to_ascii_lowercase());
    }
    let reference = match &src.reference {
        Some(r) => r.clone(),
        None => {
            let out = git.run(None, &["ls-remote", "--symref", "--", &src.remote, "HEAD"])?;
            out.lines()
                .find_map(|l| l.strip_prefix("ref: ")?.split_once('\t'))
                .map(|(r, _)| r.to_string())
                .ok_or_else(|| git.fail("could not find the default branch".into()))?
        }
    };
    let peeled = format!("{reference}^{{}}");
    let out = git.run(None, &["ls-remote", "--", &src.remote, &reference, &peeled])?;
    let short = reference.trim_start_matches("refs/");
    let partial = format!("refs/{short}");
    let head = format!("refs/heads/{}", reference.trim_start_matches("refs/heads/"));
    let tag = format!("refs/tags/{}", reference.trim_start_matches("refs/tags/"));
    let tag_peeled = format!("{tag}^{{}}");
    let (mut exact, mut head_sha, mut tag_sha) = (None, None, None);
    for line in out.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        if name == head {
            head_sha = Some(sha);
        }
        if name == tag || name == tag_peeled {
            tag_sha = Some(sha);
        }
        if name == partial {
            exact = Some(sha);
        }
    }
    let sha = exact
        .or(head_sha)
        .or(tag_sha)
        .ok_or_else(|| git.fail(format!("the repository has no ref {reference:?}")))?;
    if !is_commit_sha(sha) {
        return Err(git.fail(format!("invalid commit {sha:?} for ref {reference:?}")));
    }
    Ok(sha.to_ascii_lowercase())
}

/// Fetches `src` into `dir` (a new directory is made there) and checks it out: the remote's
/// ref resolved to a commit, compared with the checksum, fetched shallow where the server
/// allows, its tree's size checked, checked out (modes as git gives them under umask 022),
/// submodules updated unless `submodules=false`, `.git` removed unless kept.
pub fn fetch(src: &GitRef, dir: &Path, opts: &FetchOptions) -> Result<Checkout, Error> {
    let home = dir.join("home");
    let work = dir.join("checkout");
    for d in [&home, &work] {
        std::fs::create_dir_all(d).map_err(crate::error::io_err(d))?;
    }
    let git = Git {
        home,
        opts,
        remote: &src.remote,
    };
    let commit = resolve(&git, src)?;
    let check_sum = |actual: &str| match &src.checksum {
        Some(want) if !actual.starts_with(&want.to_ascii_lowercase()) => {
            Err(git.fail(format!("expected checksum to match {want}, got {actual}")))
        }
        _ => Ok(()),
    };
    check_sum(&commit)?;
    let object_format = if commit.len() == 64 { "sha256" } else { "sha1" };
    git.run(
        Some(&work),
        &[
            "init",
            "-q",
            "--template=",
            &format!("--object-format={object_format}"),
        ],
    )?;
    // A named ref is fetched by name (every server allows that); a commit by its hash, which
    // needs a server that allows it (protocol v2 or allowReachableSHA1InWant), else the
    // whole history is fetched as BuildKit falls back to.
    let wanted = match &src.reference {
        Some(r) if !is_commit_sha(r) => r.clone(),
        None => commit.clone(),
        Some(r) => r.to_ascii_lowercase(),
    };
    let shallow = git.run(
        Some(&work),
        &[
            "fetch",
            "-q",
            "--depth=1",
            "--no-tags",
            "--",
            &src.remote,
            &wanted,
        ],
    );
    if let Err(first) = shallow {
        if !is_commit_sha(&wanted) {
            return Err(first);
        }
        git.run(
            Some(&work),
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--",
                &src.remote,
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
            ],
        )?;
    }
    let fetched = git
        .run(
            Some(&work),
            &["rev-parse", "--verify", &format!("{commit}^{{commit}}")],
        )
        .map_err(|_| {
            git.fail(format!(
                "the remote did not send commit {commit} (did the ref move during the build?)"
            ))
        })?;
    check_sum(fetched.trim())?;
    check_tree_size(&git, &work, &commit)?;
    git.run(Some(&work), &["checkout", "-q", "--detach", &commit])?;
    if src.submodules != Some(false) && work.join(".gitmodules").exists() {
        git.run(
            Some(&work),
            &["submodule", "update", "--init", "--recursive", "--depth=1"],
        )?;
    }
    let subdir = match &src.subdir {
        Some(s) => clean_subdir(s).map_err(|r| git.fail(r))?,
        None => String::new(),
    };
    if opts.keep_git_dir && subdir.is_empty() {
        // As BuildKit leaves it: origin is the (redacted) remote, no reflog, no FETCH_HEAD.
        git.run(
            Some(&work),
            &["remote", "add", "origin", &redact(&src.remote)],
        )?;
        git.run(Some(&work), &["reflog", "expire", "--all", "--expire=now"])?;
        let _ = std::fs::remove_file(work.join(".git/FETCH_HEAD"));
    } else {
        let dot_git = work.join(".git");
        std::fs::remove_dir_all(&dot_git).map_err(crate::error::io_err(&dot_git))?;
    }
    normalize_modes(&work)?;
    let dir = if subdir.is_empty() {
        work
    } else {
        subdir_beneath(&git, &work, &subdir)?
    };
    Ok(Checkout { commit, dir })
}

/// The git sources of one ADD, fetched before the step's cache key is made (their files are
/// part of it by content, and the commit besides), in the store's temporary area.
pub(crate) struct AddSources {
    /// For each source of the instruction, its checkout when it is a git URL.
    pub trees: Vec<Option<crate::tree::ContextTree>>,
    /// `(source, commit)` for the cache key.
    pub commits: Vec<(String, String)>,
    _dirs: Vec<tare_store::TempDir>,
}

/// Fetches the git sources of `c` (BuildKit: only ADD takes them; COPY of one is an error).
pub(crate) fn add_sources(
    cx: &crate::context::StepCtx<'_>,
    c: &tare_dockerfile::Copy,
    add: bool,
) -> Result<AddSources, Error> {
    let build = cx.build;
    let mut out = AddSources {
        trees: Vec::new(),
        commits: Vec::new(),
        _dirs: Vec::new(),
    };
    for src in &c.sources {
        let parsed = match src {
            tare_dockerfile::CopySource::Path(p) if c.from.is_none() => {
                GitRef::parse(p).map(|r| (p, r))
            }
            _ => None,
        };
        let Some((text, parsed)) = parsed else {
            out.trees.push(None);
            continue;
        };
        let git = parsed?;
        if !add {
            return Err(Error::Git {
                url: redact(text),
                reason: "source can't be a git ref for COPY (ADD takes one)".into(),
            });
        }
        let keep = match (c.keep_git_dir, git.keep_git_dir) {
            (true, Some(false)) => {
                return Err(Error::Git {
                    url: redact(text),
                    reason: "inconsistent keep-git-dir configuration (--keep-git-dir and \
                             keep-git-dir=false)"
                        .into(),
                })
            }
            (flag, query) => flag || query == Some(true),
        };
        let mut git = git;
        match (&c.checksum, &git.checksum) {
            (Some(flag), Some(query)) if flag != query => {
                return Err(Error::Git {
                    url: redact(text),
                    reason: format!("checksum mismatch {flag:?} != {query:?}"),
                })
            }
            (Some(flag), _) => {
                check_checksum(flag).map_err(|reason| Error::Git {
                    url: redact(text),
                    reason,
                })?;
                git.checksum = Some(flag.clone());
            }
            _ => {}
        }
        let ssh_auth_sock = build
            .opts
            .ssh
            .iter()
            .find_map(|s| match (&s.source, s.id.as_str()) {
                (crate::secrets::SshSource::Socket(p), "default") => Some(p.clone()),
                _ => None,
            });
        let opts = FetchOptions {
            keep_git_dir: keep,
            max_size: build.opts.max_download_size,
            timeout: effective_timeout(build.opts.git_timeout),
            ssh_auth_sock,
        };
        let dir = build.scratch_dir()?;
        let checkout = fetch(&git, dir.path(), &opts)?;
        out.commits.push((redact(text), checkout.commit.clone()));
        out.trees.push(Some(crate::tree::ContextTree::open_all(
            &checkout.dir,
            format!("git repository {}", redact(&git.remote)),
        )?));
        out._dirs.push(dir);
    }
    Ok(out)
}

/// A zero timeout (an unset option) is the default one.
pub fn effective_timeout(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        timeout
    }
}

/// Refuses a tree whose files hold more than the size limit, before anything is checked out.
fn check_tree_size(git: &Git<'_>, work: &Path, commit: &str) -> Result<(), Error> {
    let listing = git.run(Some(work), &["ls-tree", "-r", "-l", "--full-tree", commit])?;
    let mut total = 0u64;
    for line in listing.lines() {
        // `<mode> <type> <object> <size>\t<path>`; trees and submodules have `-`.
        let meta = line.split('\t').next().unwrap_or("");
        if let Some(size) = meta
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<u64>().ok())
        {
            total = total.saturating_add(size);
        }
    }
    if total > git.opts.max_size {
        return Err(git.fail(format!(
            "the checkout of {commit} holds {total} bytes, more than the limit of {} bytes \
             (--max-download-size)",
            git.opts.max_size
        )));
    }
    Ok(())
}

/// Gives files 0644 or 0755 and directories 0755, as a checkout under BuildKit's umask 022
/// does whatever this process's umask is. Symlinks are left alone and never followed; only
/// real directories are entered.
fn normalize_modes(dir: &Path) -> Result<(), Error> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(crate::error::io_err(&d))? {
            let entry = entry.map_err(crate::error::io_err(&d))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(crate::error::io_err(&path))?;
            let mode = if meta.is_dir() {
                stack.push(path.clone());
                0o755
            } else if meta.is_file() {
                if meta.permissions().mode() & 0o100 != 0 {
                    0o755
                } else {
                    0o644
                }
            } else {
                continue;
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(crate::error::io_err(&path))?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(crate::error::io_err(dir))
}

/// The subdir of the checkout, refused when it is missing, not a directory, or reached
/// through a symlink that leaves the checkout.
fn subdir_beneath(git: &Git<'_>, work: &Path, subdir: &str) -> Result<PathBuf, Error> {
    let root = std::fs::canonicalize(work).map_err(crate::error::io_err(work))?;
    let resolved = std::fs::canonicalize(root.join(subdir))
        .map_err(|_| git.fail(format!("subdir {subdir:?} is not in the repository")))?;
    if !resolved.starts_with(&root) {
        return Err(git.fail(format!(
            "subdir {subdir:?} leads outside the repository through a symlink"
        )));
    }
    if !resolved.is_dir() {
        return Err(git.fail(format!("subdir {subdir:?} is not a directory")));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> GitRef {
        GitRef::parse(s)
            .unwrap_or_else(|| panic!("{s} is not git"))
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn buildkit_url_forms_parse() {
        let g = parsed("https://github.com/moby/buildkit.git#v0.25.0:frontend/dockerfile");
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.25.0"));
        assert_eq!(g.subdir.as_deref(), Some("frontend/dockerfile"));
        let g = parsed("git@github.com:moby/buildkit.git#main");
        assert_eq!(g.remote, "git@github.com:moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("main"));
        assert!(parsed("ssh://git@host:2222/r.git").reference.is_none());
        assert_eq!(parsed("git://host/r").remote, "git://host/r");
        let g = parsed("https://h/r.git?tag=v1&subdir=docs&checksum=abc1&keep-git-dir");
        assert_eq!(g.remote, "https://h/r.git");
        assert_eq!(g.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        assert_eq!(g.checksum.as_deref(), Some("abc1"));
        assert_eq!(g.keep_git_dir, Some(true));
        assert_eq!(
            parsed("https://h/r.git?branch=dev").reference.as_deref(),
            Some("refs/heads/dev")
        );
    }

    #[test]
    fn what_is_not_git_is_left_to_the_other_sources() {
        for s in [
            "https://example.com/file.tar.gz",
            "http://h/r",
            "./r.git",
            "../x",
            "github.com/a/b",
            "file:///srv/r.git",
            "ext::sh -c touch% /tmp/pwned",
            "src/",
            "a:b",
        ] {
            assert!(GitRef::parse(s).is_none(), "{s}");
        }
    }

    #[test]
    fn option_injection_and_escapes_are_refused() {
        for s in [
            "https://h/r.git#--upload-pack=touch /tmp/x",
            "https://h/r.git#-cfoo",
            "https://h/r.git#main:../../etc",
            "https://h/r.git?subdir=a/../../b",
            "ssh://-oProxyCommand=touch%20x/r.git",
            "git://h/r?ref=a&ref=b",
            "git://h/r?unknown=1",
            "git://h/r?ref=",
            "git://h/r#main?x",
            "https://h/r.git?checksum=sha256:abcd",
            "https://h/r.git#a..b",
        ] {
            match GitRef::parse(s) {
                Some(Err(_)) => {}
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("https://user:token@h/r.git"),
            "https://user:xxxxx@h/r.git"
        );
        assert_eq!(redact("git@h:r.git"), "git@h:r.git");
    }
}
