//! `RUN --mount=type=...,target=...`: BuildKit's mount options.

/// One `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=` (bind by default).
    pub kind: MountKind,
    /// Where the mount appears in the container (defaulted for secret and ssh).
    pub target: String,
    /// Path in the `from` stage/image or in the build context (bind), or in the cache.
    pub source: Option<String>,
    /// Stage name, index or image to take `source` from.
    pub from: Option<String>,
    /// `ro`, `readonly` or `rw=false`; bind, secret and ssh mounts are read-only by default.
    pub read_only: bool,
    /// Cache, secret or ssh id.
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Sharing,
    /// `mode=` (octal) of a cache, secret or ssh mount's file or directory.
    pub mode: Option<u32>,
    /// `uid=` owning the cache directory, secret file or ssh socket.
    pub uid: Option<u32>,
    /// `gid=` owning the cache directory, secret file or ssh socket.
    pub gid: Option<u32>,
    /// Secret/ssh: fail when missing.
    pub required: bool,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as this environment variable.
    pub env: Option<String>,
}

/// `--mount=type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Files of the context, a stage or an image, read-only by default.
    Bind,
    /// A directory kept by the builder across builds, keyed by `id`.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A `--secret` as a file (or environment variable), never in the image.
    Secret,
    /// An `--ssh` agent socket.
    Ssh,
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Concurrent steps use the same directory (the default).
    Shared,
    /// A step that finds it in use gets a fresh directory of its own.
    Private,
    /// A step waits until the other one has finished with it.
    Locked,
}

impl Mount {
    /// Parses one `--mount` value; `expand` is applied to every value (identity at
    /// evaluation, the stage's variables in [`crate::Stage::expand`]).
    pub(crate) fn parse(
        spec: &str,
        expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<Mount, String> {
        let mut m = Mount {
            kind: MountKind::Bind,
            target: String::new(),
            source: None,
            from: None,
            read_only: true,
            id: None,
            sharing: Sharing::Shared,
            mode: None,
            uid: None,
            gid: None,
            required: false,
            size: None,
            env: None,
        };
        let fields = split_csv(spec)?;
        // The type decides defaults, so read it first.
        let kind = fields
            .iter()
            .filter_map(|f| f.split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case("type"));
        if let Some((_, v)) = kind {
            m.kind = match v.to_ascii_lowercase().as_str() {
                "bind" => MountKind::Bind,
                "cache" => MountKind::Cache,
                "tmpfs" => MountKind::Tmpfs,
                "secret" => MountKind::Secret,
                "ssh" => MountKind::Ssh,
                other => return Err(format!("unsupported mount type {other:?}")),
            };
        }
        m.read_only = matches!(m.kind, MountKind::Bind | MountKind::Secret | MountKind::Ssh);
        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
                None => (field.to_ascii_lowercase(), None),
            };
            let need = |v: Option<&str>| {
                v.map(str::to_string)
                    .ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"))
            };
            let boolean = |v: Option<&str>| match v.map(str::to_ascii_lowercase).as_deref() {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(other) => Err(format!("invalid value for {key}: {other}")),
            };
            match key.as_str() {
                "type" => {}
                "readonly" | "ro" => {
                    m.read_only = boolean(value)?;
                }
                "readwrite" | "rw" => {
                    m.read_only = !boolean(value)?;
                }
                "required" => m.required = boolean(value)?,
                _ => {
                    let v = expand(&need(value)?)?;
                    match key.as_str() {
                        "target" | "dst" | "destination" => m.target = v,
                        "source" | "src" => m.source = Some(v),
                        "from" => m.from = Some(v),
                        "id" => m.id = Some(v),
                        "env" => m.env = Some(v),
                        "sharing" => {
                            m.sharing = match v.to_ascii_lowercase().as_str() {
                                "shared" => Sharing::Shared,
                                "private" => Sharing::Private,
                                "locked" => Sharing::Locked,
                                _ => return Err(format!("unsupported sharing value {v:?}")),
                            }
                        }
                        "mode" => {
                            m.mode = Some(
                                u32::from_str_radix(&v, 8)
                                    .map_err(|_| format!("invalid mode {v:?}"))?,
                            )
                        }
                        "uid" => m.uid = Some(v.parse().map_err(|_| format!("invalid uid {v:?}"))?),
                        "gid" => m.gid = Some(v.parse().map_err(|_| format!("invalid gid {v:?}"))?),
                        "size" => m.size = Some(parse_size(&v)?),
                        _ => return Err(format!("unexpected key '{key}' in '{field}'")),
                    }
                }
            }
        }
        match m.kind {
            MountKind::Secret if m.target.is_empty() => {
                let id =
                    m.id.clone()
                        .filter(|i| !i.is_empty())
                        .ok_or("secret mount requires an id or a target")?;
                if m.env.is_none() {
                    m.target = format!("/run/secrets/{id}");
                }
            }
            MountKind::Secret if m.id.is_none() => {
                m.id = m.target.rsplit('/').next().map(str::to_string)
            }
            MountKind::Ssh if m.target.is_empty() => m.target = "/run/buildkit/ssh_agent.0".into(),
            _ if m.target.is_empty() => return Err("mount destination (target) not set".into()),
            _ => {}
        }
        if m.kind == MountKind::Tmpfs && (m.source.is_some() || m.from.is_some()) {
            return Err("tmpfs mounts take no source or from".into());
        }
        Ok(m)
    }
}

/// Comma-separated fields; a field may be double-quoted (`"a,b"`, `""` for a quote).
fn split_csv(spec: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = spec.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if at_start && c == '"' {
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("unterminated quote in mount {spec:?}")),
                }
            }
            at_start = false;
            continue;
        }
        if c == ',' {
            fields.push(std::mem::take(&mut field));
            at_start = true;
            continue;
        }
        at_start = false;
        field.push(c);
    }
    fields.push(field);
    Ok(fields.into_iter().filter(|f| !f.is_empty()).collect())
}

/// `100`, `64k`, `10m`, `1g` (binary units, like Docker's RAMInBytes).
fn parse_size(v: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let t = lower.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<Mount, String> {
        Mount::parse(spec, &mut |v| Ok(v.to_string()))
    }

    #[test]
    fn bind_cache_tmpfs_secret_ssh() {
        let m = parse("type=bind,source=/src,target=/dst,from=build,rw").unwrap();
        assert_eq!(
            (
                m.kind,
                m.source.as_deref(),
                m.target.as_str(),
                m.from.as_deref(),
                m.read_only
            ),
            (MountKind::Bind, Some("/src"), "/dst", Some("build"), false)
        );
        let m = parse("target=/x").unwrap();
        assert!(m.kind == MountKind::Bind && m.read_only);
        let m = parse("type=cache,target=/root/.cache,id=c,sharing=locked,mode=0755,uid=1,gid=2")
            .unwrap();
        assert_eq!(
            (m.read_only, m.sharing, m.mode, m.uid, m.gid),
            (false, Sharing::Locked, Some(0o755), Some(1), Some(2))
        );
        assert_eq!(
            parse("type=tmpfs,dst=/t,size=64m").unwrap().size,
            Some(64 << 20)
        );
        let m = parse("type=secret,id=tok,required").unwrap();
        assert_eq!((m.target.as_str(), m.required), ("/run/secrets/tok", true));
        assert_eq!(
            parse("type=secret,target=/a/key").unwrap().id.as_deref(),
            Some("key")
        );
        assert_eq!(
            parse("type=ssh").unwrap().target,
            "/run/buildkit/ssh_agent.0"
        );
        assert_eq!(parse("\"target=/a,b\"").unwrap().target, "/a,b");
    }

    #[test]
    fn bad_mounts_are_rejected() {
        assert!(parse("type=nfs,target=/x").is_err());
        assert!(parse("source=/x").is_err());
        assert!(parse("target=/x,bogus=1").is_err());
        assert!(parse("type=cache,target=/x,sharing=all").is_err());
        assert!(parse("type=cache,target=/x,mode=9").is_err());
        assert!(parse("type=tmpfs,target=/x,source=/y").is_err());
        assert!(parse("target").is_err());
    }
}
