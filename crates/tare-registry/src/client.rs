//! One connection to one registry: scheme and TLS roots, the auth handshake (anonymous, basic,
//! bearer token), and requests with bounded retries.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use url::Url;

use crate::auth::Credentials;
use crate::error::{Error, Result};
use crate::Options;

/// How the registry wants requests authenticated (learnt from `GET /v2/`).
#[derive(Clone, Debug)]
enum Challenge {
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A registry session, for a fixed set of token scopes. Shared by the worker threads.
pub(crate) struct Registry {
    /// The reference domain (`docker.io`, `127.0.0.1:5000`): what messages name.
    pub name: String,
    base: Url,
    http: Client,
    creds: Option<Credentials>,
    challenge: Challenge,
    scopes: Vec<String>,
    token: Mutex<Option<String>>,
    retries: u32,
}

/// The host the API lives on: Docker Hub's API is not on `docker.io` itself.
fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        "registry-1.docker.io"
    } else {
        domain
    }
}

/// Loopback registries may speak plain HTTP, like docker allows for 127.0.0.0/8.
pub(crate) fn is_loopback(domain: &str) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn http_client(domain: &str, options: &Options, insecure: bool) -> Result<Client> {
    let mut builder = Client::builder()
        .user_agent(concat!("tare/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Applies to each read and write, and to sending one request body: chunks are bounded.
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(options.jobs.max(1) + 1);
    // docker's certs.d: every *.crt in /etc/tare/certs.d/HOST/ is a trusted CA for HOST.
    let dir = options.certs_dir.join(domain);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        paths.sort();
        for path in paths {
            builder = builder.add_root_certificate(read_cert(&path)?);
        }
    }
    if insecure {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(Error::Client)
}

fn read_cert(path: &Path) -> Result<reqwest::Certificate> {
    let pem = std::fs::read(path).map_err(crate::error::io("reading", path))?;
    reqwest::Certificate::from_pem(&pem).map_err(|source| Error::Certificate {
        path: path.to_path_buf(),
        source,
    })
}

impl Registry {
    /// Connects to the registry of `domain`, learns its auth scheme, and gets a token for
    /// `scopes` (like `repository:library/busybox:pull`) when it uses bearer tokens.
    pub fn connect(
        domain: &str,
        options: &Options,
        creds: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Registry> {
        let insecure = options.insecure_registries.iter().any(|r| r == domain);
        let plain_allowed = insecure || is_loopback(domain);
        let http = http_client(domain, options, insecure)?;
        let host = api_host(domain);
        let https = Url::parse(&format!("https://{host}/")).map_err(|e| Error::Invalid {
            what: "registry host".into(),
            registry: domain.to_string(),
            reason: e.to_string(),
        })?;
        let (base, ping) = match ping(&http, &https) {
            Ok(resp) => (https, resp),
            Err(tls_error) if plain_allowed => {
                let plain = Url::parse(&format!("http://{host}/")).map_err(|e| Error::Invalid {
                    what: "registry host".into(),
                    registry: domain.to_string(),
                    reason: e.to_string(),
                })?;
                match ping(&http, &plain) {
                    // A TLS server answers plain HTTP with 400: then the TLS error is the news.
                    Ok(resp)
                        if resp.status() == StatusCode::OK
                            || resp.status() == StatusCode::UNAUTHORIZED =>
                    {
                        (plain, resp)
                    }
                    _ => return Err(connect_error(domain, options, tls_error)),
                }
            }
            Err(source) => return Err(connect_error(domain, options, source)),
        };
        let challenge = match ping.status() {
            StatusCode::UNAUTHORIZED => parse_challenge(ping.headers()),
            s if s.is_success() => Challenge::None,
            s => {
                return Err(Error::Status {
                    method: "GET",
                    url: format!("{base}v2/"),
                    status: s.as_u16(),
                    detail: String::new(),
                })
            }
        };
        tracing::debug!(registry = domain, %base, ?challenge, "connected");
        let registry = Registry {
            name: domain.to_string(),
            base,
            http,
            creds,
            challenge,
            scopes,
            token: Mutex::new(None),
            retries: options.retries,
        };
        registry.authenticate()?;
        Ok(registry)
    }

    /// Checks that the credentials are accepted (for `tare login`).
    pub fn verify_login(&self) -> Result<()> {
        match self.challenge {
            Challenge::None => Ok(()),
            // A token was granted to these credentials in `connect`.
            Challenge::Bearer { .. } => Ok(()),
            Challenge::Basic => {
                let url = self.url("v2/")?;
                let resp = self.send("GET", &url, |c| Ok(c.get(url.clone())))?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED => Err(Error::LoginFailed {
                        registry: self.name.clone(),
                        reason: "the registry rejected the user name or password".into(),
                    }),
                    s => Err(status_error("GET", &url, s, resp)),
                }
            }
        }
    }

    /// Gets a bearer token for this session's scopes; nothing to do for other schemes.
    fn authenticate(&self) -> Result<()> {
        let Challenge::Bearer { realm, service } = &self.challenge else {
            if matches!(self.challenge, Challenge::Basic) && self.creds.is_none() {
                return Err(self.unauthorized());
            }
            return Ok(());
        };
        let mut url = Url::parse(realm).map_err(|e| Error::Invalid {
            what: "token realm".into(),
            registry: self.name.clone(),
            reason: e.to_string(),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for scope in &self.scopes {
                q.append_pair("scope", scope);
            }
        }
        let (method, req) = match &self.creds {
            // An identity (refresh) token, as docker keeps for OAuth registries: the OAuth2
            // refresh grant, posted to the realm.
            Some(c) if c.is_identity_token() => {
                let scope = self.scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", c.password.as_str()),
                    ("client_id", "tare"),
                ];
                if let Some(s) = service {
                    form.push(("service", s.as_str()));
                }
                if !scope.is_empty() {
                    form.push(("scope", scope.as_str()));
                }
                let mut base = url.clone();
                base.set_query(None);
                ("POST", self.http.post(base).form(&form))
            }
            Some(c) => (
                "GET",
                self.http
                    .get(url.clone())
                    .basic_auth(&c.username, Some(&c.password)),
            ),
            None => ("GET", self.http.get(url.clone())),
        };
        let resp = req.send().map_err(|source| Error::Http {
            method,
            url: strip_query(&url),
            source,
        })?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.creds.is_some() => {
                return Err(Error::LoginFailed {
                    registry: self.name.clone(),
                    reason: "the token server rejected the user name or password".into(),
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized()),
            s => return Err(status_error("GET", &url, s, resp)),
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = read_limited(resp, 1 << 20, "token", &self.name)?;
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| Error::Invalid {
            what: "token reply".into(),
            registry: self.name.clone(),
            reason: e.to_string(),
        })?;
        let token = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Invalid {
                what: "token reply".into(),
                registry: self.name.clone(),
                reason: "no token in it".into(),
            })?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    pub fn unauthorized(&self) -> Error {
        let what = self
            .scopes
            .first()
            .and_then(|s| s.split(':').nth(1))
            .unwrap_or("the registry")
            .to_string();
        Error::Unauthorized {
            registry: self.name.clone(),
            what,
        }
    }

    /// `base` joined with a path like `v2/library/busybox/manifests/latest`.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Invalid {
            what: format!("path {path:?}"),
            registry: self.name.clone(),
            reason: e.to_string(),
        })
    }

    /// Resolves a `Location` header (absolute or relative) against the registry.
    pub fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Invalid {
                what: "upload reply".into(),
                registry: self.name.clone(),
                reason: "no Location header".into(),
            })?;
        self.base.join(loc).map_err(|e| Error::Invalid {
            what: "upload location".into(),
            registry: self.name.clone(),
            reason: e.to_string(),
        })
    }

    fn authorize(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.challenge {
            Challenge::None => req,
            Challenge::Basic => match &self.creds {
                Some(c) => req.basic_auth(&c.username, Some(&c.password)),
                None => req,
            },
            Challenge::Bearer { .. } => {
                match self
                    .token
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_deref()
                {
                    Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
                    None => req,
                }
            }
        }
    }

    /// Sends a request, retrying dropped connections, 5xx and 429 answers with backoff
    /// (at most `retries` more times), and renewing an expired token once on 401.
    /// `build` is called once per attempt, so request bodies can be reopened.
    pub fn send(
        &self,
        method: &'static str,
        url: &Url,
        build: impl Fn(&Client) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let req = self.authorize(build(&self.http)?);
            match req.send() {
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        && !renewed
                        && matches!(self.challenge, Challenge::Bearer { .. }) =>
                {
                    renewed = true;
                    self.authenticate()?;
                }
                Ok(resp) if retryable(resp.status()) && attempt < self.retries => {
                    attempt += 1;
                    tracing::info!(%url, status = resp.status().as_u16(), attempt, "retrying");
                    backoff(attempt);
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < self.retries && !e.is_builder() => {
                    attempt += 1;
                    tracing::info!(%url, error = %e, attempt, "retrying");
                    backoff(attempt);
                }
                Err(source) => {
                    return Err(Error::Http {
                        method,
                        url: strip_query(url),
                        source,
                    })
                }
            }
        }
    }

    /// Sends a request once (its body cannot be replayed); the caller retries.
    pub fn send_once(
        &self,
        method: &'static str,
        url: &Url,
        req: RequestBuilder,
    ) -> Result<Response> {
        self.authorize(req).send().map_err(|source| Error::Http {
            method,
            url: strip_query(url),
            source,
        })
    }

    /// The HTTP client, for requests sent with [`Registry::send_once`].
    pub fn client(&self) -> &Client {
        &self.http
    }

    pub fn retries(&self) -> u32 {
        self.retries
    }
}

/// A failed first contact; an untrusted certificate gets its own advice.
fn connect_error(domain: &str, options: &Options, source: reqwest::Error) -> Error {
    let mut cause: Option<&dyn std::error::Error> = Some(&source);
    let mut certificate = false;
    while let Some(c) = cause {
        certificate |= c.to_string().to_lowercase().contains("certificate");
        cause = c.source();
    }
    if certificate {
        Error::Untrusted {
            registry: domain.to_string(),
            ca: options.certs_dir.join(domain).join("ca.crt"),
            source,
        }
    } else {
        Error::Connect {
            registry: domain.to_string(),
            source,
        }
    }
}

fn ping(http: &Client, base: &Url) -> reqwest::Result<Response> {
    let url = base.join("v2/").expect("a constant path joins any base");
    // Short: a server that swallows the TLS hello must not stall the plain-HTTP fallback.
    http.get(url).timeout(Duration::from_secs(20)).send()
}

pub(crate) fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// 200 ms, 400 ms, 800 ms, ... capped at 5 s.
pub(crate) fn backoff(attempt: u32) {
    let ms = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    std::thread::sleep(Duration::from_millis(ms));
}

/// A URL without its query (upload URLs carry state; token URLs carry scopes).
pub(crate) fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// An error for an unexpected status, with the registry's error message when it sent one.
pub(crate) fn status_error(
    method: &'static str,
    url: &Url,
    status: StatusCode,
    resp: Response,
) -> Error {
    let mut detail = String::new();
    if let Ok(body) = read_limited(resp, 64 << 10, "", "") {
        #[derive(serde::Deserialize)]
        struct Errors {
            errors: Vec<ErrorEntry>,
        }
        #[derive(serde::Deserialize)]
        struct ErrorEntry {
            code: Option<String>,
            message: Option<String>,
        }
        if let Ok(e) = serde_json::from_slice::<Errors>(&body) {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        x.code.as_deref().unwrap_or(""),
                        x.message.as_deref().unwrap_or("")
                    )
                    .trim()
                    .to_string()
                })
                .collect();
            if !parts.is_empty() {
                detail = format!(": {}", parts.join("; "));
            }
        }
    }
    Error::Status {
        method,
        url: strip_query(url),
        status: status.as_u16(),
        detail,
    }
}

/// Reads a whole small body, failing beyond `limit` bytes.
pub(crate) fn read_limited(
    resp: Response,
    limit: u64,
    what: &str,
    registry: &str,
) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    resp.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| Error::Read {
            what: what.to_string(),
            registry: registry.to_string(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(Error::Invalid {
            what: what.to_string(),
            registry: registry.to_string(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(buf)
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="..."` (or `Basic ...`).
fn parse_challenge(headers: &HeaderMap) -> Challenge {
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        let (scheme, params) = text.split_once(' ').unwrap_or((text, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Challenge::Basic;
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let params = parse_params(params);
            if let Some(realm) = params.iter().find(|(k, _)| k == "realm") {
                return Challenge::Bearer {
                    realm: realm.1.clone(),
                    service: params
                        .iter()
                        .find(|(k, _)| k == "service")
                        .map(|(_, v)| v.clone()),
                };
            }
        }
    }
    // A 401 without a usable challenge: treat it as basic, so credentials are sent if known.
    Challenge::Basic
}

/// `a="x, y",b=z` -> [(a, "x, y"), (b, z)]. Keys are lowercased.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_quoted_commas() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            r#"Bearer realm="https://auth.example/token",service="reg, one",scope="repository:a:pull""#
                .parse()
                .unwrap(),
        );
        match parse_challenge(&h) {
            Challenge::Bearer { realm, service } => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("reg, one"));
            }
            other => panic!("{other:?}"),
        }
        let mut h = HeaderMap::new();
        h.insert(WWW_AUTHENTICATE, r#"Basic realm="x""#.parse().unwrap());
        assert!(matches!(parse_challenge(&h), Challenge::Basic));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.3.2.1",
            "[::1]:5000",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["docker.io", "10.0.0.1:5000", "localhost.example.com"] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
