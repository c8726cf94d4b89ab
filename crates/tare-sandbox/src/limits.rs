//! The run settings of buildx's `--add-host`, `--ulimit` and `--shm-size` (and docker run's):
//! parsed and checked in the parent, applied by the child (`setrlimit`, the `/dev/shm` mount)
//! or written into the run's `/etc/hosts`.

use std::net::IpAddr;

use crate::Error;

/// An extra `/etc/hosts` entry (`--add-host HOST:IP`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    /// The name (no whitespace).
    pub host: String,
    /// The address it resolves to.
    pub ip: IpAddr,
}

impl ExtraHost {
    /// Parses buildx's `HOST:IP` or `HOST=IP` (an IPv6 address may be in brackets).
    /// `host-gateway` is refused: the private network deliberately has no route to the host.
    pub fn parse(spec: &str) -> Result<ExtraHost, Error> {
        let invalid = |reason: &'static str| Error::Invalid {
            what: "host",
            value: spec.to_string(),
            reason,
        };
        let (host, ip) = spec
            .split_once('=')
            .or_else(|| spec.split_once(':'))
            .ok_or_else(|| invalid("expected HOST:IP"))?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(invalid("expected HOST:IP with a host name"));
        }
        if ip == "host-gateway" {
            return Err(invalid(
                "host-gateway is not supported: RUN steps have no route to the host by design \
                 (give the host's address, or use --network host)",
            ));
        }
        let ip = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        let ip = ip
            .parse::<IpAddr>()
            .map_err(|_| invalid("not an IP address after the host name"))?;
        Ok(ExtraHost {
            host: host.to_string(),
            ip,
        })
    }

    /// The `/etc/hosts` line, as BuildKit writes it (`IP<TAB>HOST`).
    pub fn line(&self) -> String {
        format!("{}\t{}\n", self.ip, self.host)
    }
}

/// A resource limit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// The kernel's resource number (`RLIMIT_NOFILE`).
    pub resource: rustix::process::Resource,
    /// The name as docker spells it (`nofile`).
    pub name: &'static str,
    /// `None` is unlimited (`-1`).
    pub soft: Option<u64>,
    /// The ceiling the process may raise `soft` to; `None` is unlimited.
    pub hard: Option<u64>,
}

/// docker's ulimit names (go-units), with the resource each sets.
pub(crate) const RESOURCES: [(&str, rustix::process::Resource); 15] = {
    use rustix::process::Resource as R;
    [
        ("core", R::Core),
        ("cpu", R::Cpu),
        ("data", R::Data),
        ("fsize", R::Fsize),
        ("locks", R::Locks),
        ("memlock", R::Memlock),
        ("msgqueue", R::Msgqueue),
        ("nice", R::Nice),
        ("nofile", R::Nofile),
        ("nproc", R::Nproc),
        ("rss", R::Rss),
        ("rtprio", R::Rtprio),
        ("rttime", R::Rttime),
        ("sigpending", R::Sigpending),
        ("stack", R::Stack),
    ]
};

impl Ulimit {
    /// Parses docker's `NAME=SOFT[:HARD]` (`-1` is unlimited; without HARD, HARD is SOFT).
    pub fn parse(spec: &str) -> Result<Ulimit, Error> {
        let invalid = |reason: &'static str| Error::Invalid {
            what: "ulimit",
            value: spec.to_string(),
            reason,
        };
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| invalid("expected NAME=SOFT[:HARD]"))?;
        let (name, resource) = RESOURCES
            .iter()
            .find(|(n, _)| *n == name)
            .copied()
            .ok_or_else(|| {
                invalid(
                    "unknown name (core, cpu, data, fsize, locks, memlock, msgqueue, nice, \
                     nofile, nproc, rss, rtprio, rttime, sigpending, stack)",
                )
            })?;
        let value = |v: &str| -> Result<Option<u64>, Error> {
            match v {
                "-1" => Ok(None),
                v => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| invalid("a limit is a number, or -1 for unlimited")),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        // Unlimited is the largest value.
        if soft.unwrap_or(u64::MAX) > hard.unwrap_or(u64::MAX) {
            return Err(invalid("the soft limit is above the hard limit"));
        }
        Ok(Ulimit {
            resource,
            name,
            soft,
            hard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_takes_buildx_notations_and_refuses_the_rest() {
        let h = ExtraHost::parse("db:10.0.0.2").unwrap();
        assert_eq!(h.line(), "10.0.0.2\tdb\n");
        let h = ExtraHost::parse("v6=[2001:db8::1]").unwrap();
        assert_eq!(h.line(), "2001:db8::1\tv6\n");
        let h = ExtraHost::parse("v6:2001:db8::1").unwrap();
        assert_eq!(h.line(), "2001:db8::1\tv6\n");
        for bad in ["db", "db:", ":1.2.3.4", "db:notanip", "a b:1.2.3.4"] {
            assert!(ExtraHost::parse(bad).is_err(), "{bad}");
        }
        let e = ExtraHost::parse("h:host-gateway").unwrap_err().to_string();
        assert!(e.contains("host-gateway is not supported"), "{e}");
    }

    #[test]
    fn ulimits_parse_as_docker_writes_them() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.name, u.soft, u.hard), ("nofile", Some(1024), Some(2048)));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (None, None));
        let u = Ulimit::parse("stack=8192:-1").unwrap();
        assert_eq!((u.soft, u.hard), (Some(8192), None));
        for bad in [
            "nofile",
            "files=1",
            "nofile=x",
            "nofile=10:5",
            "nofile=-1:5",
        ] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
    }
}
