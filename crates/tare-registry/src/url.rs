//! Downloads of plain URLs (a Dockerfile's `ADD https://…`), through the same HTTP client set-up
//! as the registries', so ADD trusts exactly the CAs a pull trusts.

use std::io::Read;

use crate::client::client_builder;
use crate::error::{Error, Result};

/// The body of a URL being downloaded, with what its headers said.
pub struct UrlBody {
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
    /// `Last-Modified`, as sent.
    pub last_modified: Option<String>,
    response: reqwest::blocking::Response,
}

impl Read for UrlBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.response.read(buf)
    }
}

/// GETs `url`, following at most 10 redirects (as BuildKit's HTTP source), and fails unless
/// the final answer is a success.
pub fn get_url(url: &str) -> Result<UrlBody> {
    let http = |source| Error::Http {
        method: "GET",
        url: url.to_string(),
        source,
    };
    let client = client_builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .build()
        .map_err(Error::Client)?;
    let response = client.get(url).send().map_err(http)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Error::UrlStatus {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Ok(UrlBody {
        length: header(reqwest::header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        last_modified: header(reqwest::header::LAST_MODIFIED),
        response,
    })
}
