//! Where credentials come from: tare's own login file first, then docker's config.json
//! (`credHelpers`, `credsStore`, `auths`), the way docker looks them up.
//!
//! Secrets never appear in `Debug` output or errors.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{io, Error, Result};

/// The key docker uses for Docker Hub in config.json and with credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (`<token>` for an identity token).
    pub username: String,
    /// The password, or the token.
    pub password: String,
}

/// The user name docker's credential helpers give for an identity (OAuth refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// An identity token (from config.json's `identitytoken` or a helper's `<token>` user)
    /// rather than a user name and password.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where credentials are read from and written to.
#[derive(Clone, Debug)]
pub struct AuthFiles {
    /// tare's own login file (`tare login` writes it).
    pub tare: PathBuf,
    /// docker's configuration directory (holds config.json).
    pub docker: PathBuf,
}

impl AuthFiles {
    /// `$TARE_AUTH_FILE`, else `$XDG_CONFIG_HOME/tare/auth.json` (or `~/.config/...`);
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub fn from_env() -> AuthFiles {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let tare = env("TARE_AUTH_FILE").map(PathBuf::from).unwrap_or_else(|| {
            env("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".config"))
                .join("tare/auth.json")
        });
        let docker = env("DOCKER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".docker"));
        AuthFiles { tare, docker }
    }

    /// Credentials for `registry` (a reference domain such as `docker.io` or `host:5000`).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(file) = read_config(&self.tare)? {
            if let Some(c) = file.find(registry)? {
                return Ok(Some(c));
            }
        }
        let Some(docker) = read_config(&self.docker.join("config.json"))? else {
            return Ok(None);
        };
        if let Some(helper) = docker.cred_helpers.get(&server_key(registry)).or_else(|| {
            docker
                .cred_helpers
                .iter()
                .find(|(k, _)| normalise_key(k) == registry)
                .map(|(_, v)| v)
        }) {
            return run_helper(helper, registry);
        }
        if let Some(store) = docker.creds_store.as_deref().filter(|s| !s.is_empty()) {
            if let Some(c) = run_helper(store, registry)? {
                return Ok(Some(c));
            }
        }
        docker.find(registry)
    }

    /// Saves credentials for `registry` in tare's login file (mode 0600).
    pub fn store(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let mut file = read_config(&self.tare)?.unwrap_or_default();
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        file.auths.retain(|k, _| normalise_key(k) != registry);
        file.auths.insert(
            server_key(registry),
            AuthEntry {
                auth: Some(auth),
                ..AuthEntry::default()
            },
        );
        write_config(&self.tare, &file)
    }

    /// Removes `registry` from tare's login file; false when it was not there.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        let Some(mut file) = read_config(&self.tare)? else {
            return Ok(false);
        };
        let before = file.auths.len();
        file.auths.retain(|k, _| normalise_key(k) != registry);
        if file.auths.len() == before {
            return Ok(false);
        }
        write_config(&self.tare, &file)?;
        Ok(true)
    }
}

/// The subset of docker's config.json (and tare's auth.json) read here; other fields are kept.
#[derive(Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(
        default,
        rename = "credHelpers",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    cred_helpers: BTreeMap<String, String>,
    #[serde(
        default,
        rename = "credsStore",
        skip_serializing_if = "Option::is_none"
    )]
    creds_store: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identitytoken: Option<String>,
}

impl ConfigFile {
    fn find(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some((key, entry)) = self
            .auths
            .iter()
            .find(|(k, _)| normalise_key(k) == registry)
        else {
            return Ok(None);
        };
        if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials {
                username: IDENTITY_TOKEN_USER.to_string(),
                password: token.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = || Error::Invalid {
                what: format!("auth entry {key:?} in the credentials file"),
                registry: registry.to_string(),
                reason: "expected base64 of user:password".into(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (u, p) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        Ok(None)
    }
}

/// The key docker files a registry under: Docker Hub's historical URL, else the host.
fn server_key(registry: &str) -> String {
    if registry == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// The registry a login key or argument names, as a reference domain:
/// `https://index.docker.io/v1/` -> `docker.io`, `http://host:5000/v2/` -> `host:5000`.
pub fn registry_name(key: &str) -> String {
    normalise_key(key)
}

fn normalise_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_string(),
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                what: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "reading",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Writes the credentials file whole, mode 0600 (it holds secrets), synced before it replaces
/// the old one.
fn write_config(path: &Path, file: &ConfigFile) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let json = serde_json::to_vec_pretty(file).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })?;
    Ok(tare_store::write_atomic(path, &json)?)
}

/// Runs `docker-credential-<helper> get` with the server on stdin.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::CredentialHelper {
        helper: program.clone(),
        reason,
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server_key(registry).as_bytes())
            .map_err(|e| fail(format!("writing its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        // The protocol's answer for "no credentials for this server".
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("it exited with {}", out.status)));
    }
    #[derive(Deserialize)]
    struct Reply {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let reply: Reply = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its output is not the JSON the protocol expects".into()))?;
    Ok(Some(Credentials {
        username: reply.username,
        password: reply.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_to_reference_domains() {
        assert_eq!(normalise_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalise_key("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalise_key("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn login_file_round_trips_and_debug_hides_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let files = AuthFiles {
            tare: dir.path().join("tare/auth.json"),
            docker: dir.path().join("docker"),
        };
        let creds = Credentials {
            username: "me".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{creds:?}").contains("s3cret"));
        files.store("localhost:5000", &creds).unwrap();
        assert_eq!(files.lookup("localhost:5000").unwrap(), Some(creds));
        assert_eq!(files.lookup("other:5000").unwrap(), None);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&files.tare).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(files.remove("localhost:5000").unwrap());
        assert!(!files.remove("localhost:5000").unwrap());
        assert_eq!(files.lookup("localhost:5000").unwrap(), None);
    }

    #[test]
    fn docker_config_auths_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"other":1}"#,
        )
        .unwrap();
        let files = AuthFiles {
            tare: dir.path().join("none.json"),
            docker: dir.path().to_path_buf(),
        };
        let c = files.lookup("docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    }
}
