//! ADD of an http(s) URL: the file is downloaded, checked against `--checksum`, and copied
//! like a local file (never extracted, as Docker does for URLs).

use std::io::Read;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// A downloaded file.
pub struct Fetched {
    /// The file name: the last path component of the URL.
    pub name: String,
    pub content: Vec<u8>,
    /// From `Last-Modified`, else 0.
    pub mtime: i64,
}

/// True when `source` is an http(s) URL.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Downloads `url`; `progress(done, total)` is called as bytes arrive.
pub fn fetch(
    url: &str,
    checksum: Option<&str>,
    progress: &dyn Fn(u64, Option<u64>),
) -> Result<Fetched, Error> {
    let fail = |reason: String| Error::Fetch {
        url: url.to_string(),
        reason,
    };
    let response = ureq::get(url).call().map_err(|e| fail(e.to_string()))?;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok());
    let mtime = response
        .header("Last-Modified")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map_or(0, |t| t.timestamp());
    let mut reader = response.into_reader();
    let mut content = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            break;
        }
        content.extend_from_slice(&buf[..n]);
        progress(content.len() as u64, total);
    }
    if let Some(expected) = checksum {
        let actual = format!(
            "sha256:{}",
            Sha256::digest(&content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        if !expected.starts_with("sha256:") {
            return Err(fail(format!(
                "unsupported checksum {expected:?} (only sha256:<hex>)"
            )));
        }
        if actual != expected {
            return Err(Error::Checksum {
                url: url.to_string(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path
        .rsplit('/')
        .find(|s| !s.is_empty())
        .filter(|s| !s.contains(':'))
        .unwrap_or("index.html")
        .to_string();
    Ok(Fetched {
        name,
        content,
        mtime,
    })
}
