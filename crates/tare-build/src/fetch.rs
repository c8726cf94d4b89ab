//! ADD of an http(s) URL: the file is streamed to a temporary file (never held in memory)
//! up to a size limit (`tare build --max-download-size`), hashed as it arrives, checked
//! against `--checksum`, and copied like a local file (never extracted, as Docker does for
//! URLs). The HTTP client is the registries' (`tare_registry::get_url`): the same TLS roots.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::Error;

/// The default of `tare build --max-download-size`: 2 GiB.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 2 << 30;

/// A downloaded file, in a temporary file.
pub struct Download {
    /// The name it gets in a destination directory: the URL path's last component,
    /// percent-decoded, as BuildKit names it (`__unnamed__` when the path names none).
    pub name: String,
    /// The content, in a temporary file removed when this is dropped.
    pub file: tempfile::NamedTempFile,
    /// The content's length in bytes.
    pub size: u64,
    /// From `Last-Modified`, else 0.
    pub mtime: i64,
}

/// True when `source` is an http(s) URL.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name a URL gives, validated: never empty, `.`, `..`, nor holding `/` or NUL.
pub fn file_name(url: &str) -> Result<String, Error> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let decoded = percent_decode(path);
    // Go's path.Base: the last element after trailing slashes are dropped.
    let base = decoded.trim_end_matches('/');
    let base = base.rsplit('/').next().unwrap_or("");
    match base {
        "" | "." => Ok("__unnamed__".to_string()),
        ".." => Err(Error::Fetch {
            url: url.to_string(),
            reason: "the URL's last path component is \"..\", which names no file".into(),
        }),
        b if b.contains('\0') => Err(Error::Fetch {
            url: url.to_string(),
            reason: "the URL's file name holds a NUL byte".into(),
        }),
        b => Ok(b.to_string()),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Downloads `url` into a temporary file in `dir`, refusing more than `max_size` bytes;
/// `progress(done, total)` is called as bytes arrive.
pub fn download(
    url: &str,
    checksum: Option<&str>,
    max_size: u64,
    dir: &Path,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<Download, Error> {
    let fail = |reason: String| Error::Fetch {
        url: url.to_string(),
        reason,
    };
    let name = file_name(url)?;
    if let Some(expected) = checksum {
        if !expected.starts_with("sha256:") {
            return Err(fail(format!(
                "unsupported checksum {expected:?} (only sha256:<hex>)"
            )));
        }
    }
    let too_big = || {
        fail(format!(
            "larger than the download limit of {max_size} bytes (--max-download-size)"
        ))
    };
    let response = tare_registry::get_url(url).map_err(|e| fail(tare_store::error_chain(&e)))?;
    let total = response.length;
    if total.is_some_and(|t| t > max_size) {
        return Err(too_big());
    }
    let mtime = response
        .last_modified
        .as_deref()
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map_or(0, |t| t.timestamp());
    let mut file = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(dir)
        .map_err(|e| {
            fail(format!(
                "creating a temporary file in {}: {e}",
                dir.display()
            ))
        })?;
    let mut reader = response.take(max_size + 1);
    let mut hasher = tare_store::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > max_size {
            return Err(too_big());
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| fail(format!("writing {}: {e}", file.path().display())))?;
        progress(size, total);
    }
    if let Some(expected) = checksum {
        let actual = hasher.finish().to_string();
        if actual != expected {
            return Err(Error::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok(Download {
        name,
        file,
        size,
        mtime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_path_base_and_are_validated() {
        assert_eq!(file_name("http://h/a/b.tar.gz?x=1#f").unwrap(), "b.tar.gz");
        assert_eq!(file_name("http://h/dir/").unwrap(), "dir");
        assert_eq!(file_name("http://h").unwrap(), "__unnamed__");
        assert_eq!(file_name("http://h/x/.").unwrap(), "__unnamed__");
        assert_eq!(file_name("http://h/a%20b").unwrap(), "a b");
        assert_eq!(
            file_name("http://h/a%2F..%2F..%2Fescape").unwrap(),
            "escape"
        );
        assert!(file_name("http://h/x/..").is_err());
        assert!(file_name("http://h/%2e%2e").is_err());
        assert!(file_name("http://h/a%00b").is_err());
    }
}
