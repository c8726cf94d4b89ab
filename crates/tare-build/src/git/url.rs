//! Git URLs in BuildKit's notation, parsed and checked before any git command sees them.

use crate::error::Error;

/// A parsed git source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The repository, as given to git (the URL without fragment and query).
    pub remote: String,
    /// A branch, tag or commit; the remote's default branch when absent.
    pub reference: Option<String>,
    /// A directory of the repository to use instead of its root.
    pub subdir: Option<String>,
    /// A commit hash, or a prefix of one, that the resolved commit must match.
    pub checksum: Option<String>,
    /// `keep-git-dir=` from the query.
    pub keep_git_dir: Option<bool>,
    /// `submodules=` from the query; submodules are checked out unless it is false.
    pub submodules: Option<bool>,
}

impl GitRef {
    /// Parses `source` as BuildKit's Dockerfile front end does: `None` when it is not a git
    /// URL (a local path, an http URL not ending in `.git`), an error when it is one but is
    /// malformed or could reach git as an option.
    pub fn parse(source: &str) -> Option<Result<GitRef, Error>> {
        if source.starts_with("./")
            || source.starts_with("../")
            || source.starts_with("github.com/")
        {
            return None;
        }
        let (rest, fragment) = match source.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (source, None),
        };
        let (base, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let parts = match scheme_of(base) {
            Some(scheme) => {
                if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
                    return None;
                }
                let after = &base[scheme.len() + 3..];
                let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
                if scheme.starts_with("http") && !path.ends_with(".git") {
                    return None;
                }
                let (user, host) = match authority.rsplit_once('@') {
                    Some((u, h)) => (Some(u), h),
                    None => (None, authority),
                };
                (user, host, path)
            }
            None => {
                // scp-like: user@host:path, BuildKit's regex
                // `^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$`.
                let (user, after) = base.split_once('@')?;
                let (host, path) = after.split_once(':')?;
                let user_ok = !user.is_empty()
                    && user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                let host_ok = !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !user_ok || !host_ok {
                    return None;
                }
                (Some(user), host, path)
            }
        };
        Some(Self::build(source, base, parts, fragment, query))
    }

    fn build(
        source: &str,
        remote: &str,
        (user, host, path): (Option<&str>, &str, &str),
        fragment: Option<&str>,
        query: Option<&str>,
    ) -> Result<GitRef, Error> {
        let bad = |reason: String| Error::Git {
            url: redact(source),
            reason,
        };
        // git refuses most of these itself ("strange hostname"); tare refuses them before
        // running anything, so no part of a URL can ever be read as an option.
        if user.is_some_and(|u| u.starts_with('-')) || host.starts_with('-') {
            return Err(bad(
                "a host or user name starting with \"-\" is refused".into()
            ));
        }
        if path.starts_with('-') || path.trim_start_matches('/').starts_with('-') {
            return Err(bad(
                "a repository path starting with \"-\" is refused".into()
            ));
        }
        if remote.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("the URL holds spaces or control characters".into()));
        }
        let mut git = GitRef {
            remote: remote.to_string(),
            reference: None,
            subdir: None,
            checksum: None,
            keep_git_dir: None,
            submodules: None,
        };
        if let Some(f) = fragment.filter(|f| !f.is_empty()) {
            let (r, s) = f.split_once(':').unwrap_or((f, ""));
            git.reference = Some(r.to_string()).filter(|r| !r.is_empty());
            git.subdir = Some(s.to_string()).filter(|s| !s.is_empty());
        }
        if let Some(q) = query {
            git.load_query(q).map_err(bad)?;
        }
        if let Some(r) = &git.reference {
            check_ref(r).map_err(bad)?;
        }
        if let Some(c) = &git.checksum {
            check_checksum(c).map_err(bad)?;
        }
        if let Some(s) = &git.subdir {
            clean_subdir(s).map_err(bad)?;
        }
        Ok(git)
    }

    /// BuildKit's `loadQuery`: each key once, only known keys, `tag`/`branch` as full refs.
    fn load_query(&mut self, query: &str) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        let (mut tag, mut branch) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (query_decode(k), query_decode(v));
            if !seen.insert(k.clone()) {
                return Err(format!("query {k:?} has multiple values"));
            }
            let flag = |v: &str| -> Result<bool, String> {
                match v {
                    "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                    "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                    _ => Err(format!("invalid {k} value: {v:?}")),
                }
            };
            if v.is_empty() && !matches!(k.as_str(), "submodules" | "keep-git-dir") {
                return Err(format!("query {k:?} has no value"));
            }
            let conflict = |old: &Option<String>, new: &str, what: &str| match old {
                Some(o) if o != new => Err(format!("{what} conflicts: {o:?} vs {new:?}")),
                _ => Ok(Some(new.to_string())),
            };
            match k.as_str() {
                "ref" => self.reference = conflict(&self.reference, &v, "ref")?,
                "tag" => tag = Some(v),
                "branch" => branch = Some(v),
                "subdir" => self.subdir = conflict(&self.subdir, &v, "subdir")?,
                "checksum" | "commit" => self.checksum = Some(v),
                "keep-git-dir" => self.keep_git_dir = Some(flag(&v)?),
                "submodules" => self.submodules = Some(flag(&v)?),
                _ => return Err(format!("unexpected query {k:?}")),
            }
        }
        if let Some(t) = tag {
            let full = if t.starts_with("refs/tags/") {
                t
            } else {
                format!("refs/tags/{t}")
            };
            self.reference = conflict_ref(&self.reference, full)?;
        }
        if let Some(b) = branch {
            if self
                .reference
                .as_deref()
                .is_some_and(|r| r.starts_with("refs/tags/"))
            {
                return Err("branch conflicts with tag".into());
            }
            let full = if b.starts_with("refs/heads/") {
                b
            } else {
                format!("refs/heads/{b}")
            };
            self.reference = conflict_ref(&self.reference, full)?;
        }
        Ok(())
    }
}

fn conflict_ref(old: &Option<String>, new: String) -> Result<Option<String>, String> {
    match old {
        Some(o) if *o != new => Err(format!("ref conflicts: {o:?} vs {new:?}")),
        _ => Ok(Some(new)),
    }
}

/// `scheme` of `scheme://...`: letters and digits before `://` (BuildKit's `^[a-zA-Z0-9]+://`).
fn scheme_of(s: &str) -> Option<String> {
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()))
        .then(|| scheme.to_ascii_lowercase())
}

fn query_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A ref git can only read as a ref: not an option, nothing `git check-ref-format` refuses.
fn check_ref(r: &str) -> Result<(), String> {
    let bad = r.starts_with('-')
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with('.')
        || r.ends_with(".lock")
        || r.contains("..")
        || r.contains("@{")
        || r.contains("//")
        || r.chars().any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(format!("invalid git ref {r:?}"));
    }
    Ok(())
}

/// BuildKit takes a git checksum as hex, a commit hash or a prefix of one.
pub(super) fn check_checksum(c: &str) -> Result<(), String> {
    if c.is_empty() || c.len() > 64 || !c.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid checksum {c} for a git URL, expected a hex commit hash"
        ));
    }
    Ok(())
}

/// The subdir as a relative path without `.` components; `..` is refused.
pub(super) fn clean_subdir(s: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in s.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(format!(
                "subdir {s:?} has a \"..\" component; it must stay inside the repository"
            ));
        }
        parts.push(part);
    }
    Ok(parts.join("/"))
}

pub(super) fn is_commit_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The URL with the password of its user part replaced, as BuildKit's `RedactCredentials`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:xxxxx@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}
