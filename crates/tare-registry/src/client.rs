//! One connection to one registry: scheme and TLS roots, the auth handshake (anonymous, basic,
//! bearer token), and requests with bounded retries.
//!
//! Credentials go only where they belong, as docker's authorizer does (it authorizes a request
//! only for the scheme, host and port it pinged): the registry's own origin gets the session's
//! `Authorization`, the token realm gets the user's password for the token request, and every
//! other URL (an upload `Location` on another host, a blob redirect to a storage host) gets
//! nothing. Redirects are followed here rather than by reqwest, because reqwest keeps
//! `Authorization` when only the scheme changes.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, Request, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::auth::Credentials;
use crate::error::{printable, Error, Result};
use crate::Options;

/// Redirects followed for one request, at most (the limit of Go's and reqwest's clients).
const MAX_REDIRECTS: usize = 10;

/// The largest token server answer read.
const MAX_TOKEN_REPLY: u64 = 1 << 20;

/// The most of an error answer read for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;

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
    /// The API's origin (`https://host[:port]/`): the only one that gets the session's
    /// `Authorization`.
    base: Url,
    transport: Transport,
    creds: Option<Credentials>,
    challenge: Challenge,
    scopes: Vec<String>,
    /// `Bearer <token>`, once granted.
    token: Mutex<Option<HeaderValue>>,
    retries: u32,
}

/// The HTTP client and the rules for where requests may go.
struct Transport {
    http: Client,
    /// The registry, for messages.
    registry: String,
    /// `host[:port]`s that may be reached over plain HTTP besides loopback ones.
    insecure: Vec<String>,
}

/// Why a request got no answer to use.
enum Failure {
    /// The network: worth another try.
    Network(reqwest::Error),
    /// An answer tare refuses to follow (a redirect to plain HTTP, too many redirects).
    Refused(Error),
}

impl Transport {
    /// HTTPS may go anywhere; plain HTTP only to loopback hosts and insecure registries, as
    /// for the registry itself.
    fn plain_http_allowed(&self, url: &Url) -> bool {
        let authority = authority(url);
        is_loopback(&authority) || self.insecure.contains(&authority)
    }

    /// Refuses a plain-HTTP URL that [`Transport::plain_http_allowed`] does not allow, and
    /// any scheme but HTTP(S). `what` says what the URL is for.
    fn check_scheme(&self, url: &Url, what: &str) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.plain_http_allowed(url) => Ok(()),
            "http" => Err(Error::PlainHttp {
                what: what.to_string(),
                registry: self.registry.clone(),
                url: strip_query(url),
                host: authority(url),
            }),
            other => Err(Error::Invalid {
                what: what.to_string(),
                registry: self.registry.clone(),
                reason: format!("unsupported URL scheme {other:?} in {}", strip_query(url)),
            }),
        }
    }

    /// Sends `req`, following the redirects of GET and HEAD requests (other requests carry
    /// bodies or state: their redirects are returned as they are). `auth` is an
    /// `Authorization` value and the origin it belongs to: only requests to that origin
    /// (scheme, host and port) carry it, the first one and every redirect alike.
    fn execute(
        &self,
        mut req: Request,
        auth: Option<(&Url, &HeaderValue)>,
    ) -> std::result::Result<Response, Failure> {
        let mut hops = 0;
        loop {
            req.headers_mut().remove(AUTHORIZATION);
            if let Some((origin, value)) = auth {
                if same_origin(req.url(), origin) {
                    req.headers_mut().insert(AUTHORIZATION, value.clone());
                }
            }
            let from = req.url().clone();
            let again = match *req.method() {
                Method::GET | Method::HEAD => req.try_clone(),
                _ => None,
            };
            let resp = self.http.execute(req).map_err(Failure::Network)?;
            let redirect = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(mut next) = again.filter(|_| redirect) else {
                return Ok(resp);
            };
            hops += 1;
            let target = self.redirect_target(&from, &resp, hops)?;
            tracing::debug!(from = %strip_query(&from), to = %strip_query(&target), "redirected");
            *next.url_mut() = target;
            req = next;
        }
    }

    /// Where a redirect answer sends the request next, if tare may go there.
    fn redirect_target(
        &self,
        from: &Url,
        resp: &Response,
        hops: usize,
    ) -> std::result::Result<Url, Failure> {
        let invalid = |reason: String| {
            Failure::Refused(Error::Invalid {
                what: format!("redirect from {}", strip_query(from)),
                registry: self.registry.clone(),
                reason,
            })
        };
        if hops > MAX_REDIRECTS {
            return Err(invalid(format!("more than {MAX_REDIRECTS} redirects")));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| invalid("no Location header".into()))?;
        let target = from
            .join(location)
            .map_err(|e| invalid(format!("bad Location header: {e}")))?;
        self.check_scheme(&target, "redirect target")
            .map_err(Failure::Refused)?;
        Ok(target)
    }

    /// `GET /v2/` with a short timeout: a server that swallows the TLS hello must not stall
    /// the plain-HTTP fallback. The body is never read.
    fn ping(&self, base: &Url) -> std::result::Result<Response, Failure> {
        let url = base.join("v2/").expect("a constant path joins any base");
        let req = self
            .http
            .get(url)
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(Failure::Network)?;
        self.execute(req, None)
    }
}

/// `host[:port]` of a URL, as registries are named (the port only when the URL has one).
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Same scheme, host and port: where one origin's credentials may go.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// `Basic base64(user:password)`, marked sensitive (never logged by the HTTP stack).
fn basic_header(creds: &Credentials) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", creds.username, creds.password));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
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

/// What every HTTP client of tare starts from: its user agent, the system's TLS roots, and
/// timeouts that bound each read and write (and the sending of one request body), so a
/// server that stops answering fails the transfer instead of hanging it.
pub(crate) fn client_builder() -> reqwest::blocking::ClientBuilder {
    Client::builder()
        .user_agent(concat!("tare/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(300))
}

fn http_client(domain: &str, options: &Options, insecure: bool) -> Result<Client> {
    let mut builder = client_builder()
        .pool_max_idle_per_host(options.jobs.max(1) + 1)
        // Followed by `Transport::execute`, which decides where credentials go.
        .redirect(reqwest::redirect::Policy::none());
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
    pub(crate) fn connect(
        domain: &str,
        options: &Options,
        creds: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Registry> {
        let insecure = options.insecure_registries.iter().any(|r| r == domain);
        let plain_allowed = insecure || is_loopback(domain);
        let transport = Transport {
            http: http_client(domain, options, insecure)?,
            registry: domain.to_string(),
            insecure: options.insecure_registries.clone(),
        };
        let host = api_host(domain);
        let https = Url::parse(&format!("https://{host}/")).map_err(|e| Error::Invalid {
            what: "registry host".into(),
            registry: domain.to_string(),
            reason: e.to_string(),
        })?;
        let (base, ping) = match transport.ping(&https) {
            Ok(resp) => (https, resp),
            Err(Failure::Refused(e)) => return Err(e),
            Err(Failure::Network(tls_error)) if plain_allowed => {
                let plain = Url::parse(&format!("http://{host}/")).map_err(|e| Error::Invalid {
                    what: "registry host".into(),
                    registry: domain.to_string(),
                    reason: e.to_string(),
                })?;
                match transport.ping(&plain) {
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
            Err(Failure::Network(source)) => return Err(connect_error(domain, options, source)),
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
            transport,
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
    pub(crate) fn verify_login(&self) -> Result<()> {
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
        // The password (or refresh token) goes to the realm: never in clear over a network.
        self.transport.check_scheme(&url, "token realm")?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for scope in &self.scopes {
                q.append_pair("scope", scope);
            }
        }
        let http = &self.transport.http;
        let basic = self.creds.as_ref().map(basic_header);
        let (method, req, auth) = match &self.creds {
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
                ("POST", http.post(base).form(&form), None)
            }
            // The user's password, to the realm's origin only (also across its redirects).
            Some(_) => ("GET", http.get(url.clone()), basic.as_ref()),
            None => ("GET", http.get(url.clone()), None),
        };
        let http_error = |source| Error::Http {
            method,
            url: strip_query(&url),
            source,
        };
        let req = req.build().map_err(http_error)?;
        let resp = match self.transport.execute(req, auth.map(|a| (&url, a))) {
            Ok(resp) => resp,
            Err(Failure::Network(source)) => return Err(http_error(source)),
            Err(Failure::Refused(e)) => return Err(e),
        };
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.creds.is_some() => {
                return Err(Error::LoginFailed {
                    registry: self.name.clone(),
                    reason: "the token server rejected the user name or password".into(),
                })
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(self.unauthorized()),
            s => return Err(status_error(method, &url, s, resp)),
        }
        #[derive(serde::Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let what = format!("the token answer of {}", self.name);
        let body = read_limited(resp, MAX_TOKEN_REPLY, &what, &self.name)?;
        let reply: TokenReply = serde_json::from_slice(&body).map_err(|e| Error::Invalid {
            what: "token reply".into(),
            registry: self.name.clone(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: &str| Error::Invalid {
            what: "token reply".into(),
            registry: self.name.clone(),
            reason: reason.into(),
        };
        let token = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("no token in it"))?;
        let mut token = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| invalid("the token has characters an HTTP header cannot carry"))?;
        token.set_sensitive(true);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    pub(crate) fn unauthorized(&self) -> Error {
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
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Invalid {
            what: format!("path {path:?}"),
            registry: self.name.clone(),
            reason: e.to_string(),
        })
    }

    /// Resolves a `Location` header (absolute or relative) against the registry.
    pub(crate) fn location(&self, resp: &Response) -> Result<Url> {
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

    /// The `Authorization` value for the registry's own origin, if the session has one.
    fn authorization(&self) -> Option<HeaderValue> {
        match &self.challenge {
            Challenge::None => None,
            Challenge::Basic => self.creds.as_ref().map(basic_header),
            Challenge::Bearer { .. } => {
                self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    /// Sends a request with the session's credentials (to the registry's origin only).
    fn execute(&self, req: RequestBuilder) -> std::result::Result<Response, Failure> {
        let req = req.build().map_err(Failure::Network)?;
        let auth = self.authorization();
        self.transport
            .execute(req, auth.as_ref().map(|value| (&self.base, value)))
    }

    /// Sends a request, retrying dropped connections, 5xx and 429 answers with backoff
    /// (at most `retries` more times), and renewing an expired token once on 401.
    /// `build` is called once per attempt, so request bodies can be reopened.
    pub(crate) fn send(
        &self,
        method: &'static str,
        url: &Url,
        build: impl Fn(&Client) -> Result<RequestBuilder>,
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            match self.execute(build(&self.transport.http)?) {
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED
                        && !renewed
                        && matches!(self.challenge, Challenge::Bearer { .. })
                        && same_origin(resp.url(), &self.base) =>
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
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Network(e)) if attempt < self.retries && !e.is_builder() => {
                    attempt += 1;
                    tracing::info!(%url, error = %e, attempt, "retrying");
                    backoff(attempt);
                }
                Err(Failure::Network(source)) => {
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
    pub(crate) fn send_once(
        &self,
        method: &'static str,
        url: &Url,
        req: RequestBuilder,
    ) -> Result<Response> {
        match self.execute(req) {
            Ok(resp) => Ok(resp),
            Err(Failure::Refused(e)) => Err(e),
            Err(Failure::Network(source)) => Err(Error::Http {
                method,
                url: strip_query(url),
                source,
            }),
        }
    }

    /// The HTTP client, for requests sent with [`Registry::send_once`].
    pub(crate) fn client(&self) -> &Client {
        &self.transport.http
    }

    pub(crate) fn retries(&self) -> u32 {
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
    if let Ok(body) = read_limited(resp, MAX_ERROR_BODY, "an error answer", "") {
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
                    printable(&format!(
                        "{} {}",
                        x.code.as_deref().unwrap_or(""),
                        x.message.as_deref().unwrap_or("")
                    ))
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

/// Reads a whole small body, failing beyond `limit` bytes (never holding more than
/// `limit + 1` of them). `what` names the body in errors: "the manifest of REF".
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
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
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

    fn transport(insecure: &[&str]) -> Transport {
        Transport {
            http: Client::new(),
            registry: "reg.example".into(),
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn plain_http_realms_and_redirects_are_refused_off_loopback() {
        let t = transport(&["lan.example:5000"]);
        let url = |u: &str| Url::parse(u).unwrap();
        let err = t
            .check_scheme(&url("http://auth.example/token?scope=x"), "token realm")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing plain HTTP to http://auth.example/token (token realm of reg.example): \
             auth.example is neither a loopback host nor an --insecure-registry"
        );
        for ok in [
            "https://auth.example/token",
            "http://127.0.0.1:5000/token",
            "http://localhost/token",
            "http://[::1]:80/token",
            "http://lan.example:5000/token",
        ] {
            t.check_scheme(&url(ok), "token realm").expect(ok);
        }
        for bad in [
            "http://lan.example/token",
            "http://lan.example:5001/x",
            "ftp://auth.example/x",
        ] {
            assert!(
                t.check_scheme(&url(bad), "redirect target").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn credentials_belong_to_one_scheme_host_and_port() {
        let url = |u: &str| Url::parse(u).unwrap();
        let base = url("https://reg.example/");
        assert!(same_origin(&url("https://reg.example:443/v2/x?y"), &base));
        assert!(same_origin(&url("https://REG.example/v2/"), &base));
        for other in [
            "http://reg.example/v2/",
            "https://reg.example:5000/v2/",
            "https://storage.reg.example/v2/",
            "https://reg.example.evil/v2/",
        ] {
            assert!(!same_origin(&url(other), &base), "{other}");
        }
    }

    #[test]
    fn registry_text_in_errors_is_made_printable() {
        assert_eq!(printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
        let long = "x".repeat(1000);
        assert_eq!(printable(&long).len(), 303);
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
