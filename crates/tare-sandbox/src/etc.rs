//! The /etc files a run gets: /etc/hostname, /etc/hosts and /etc/resolv.conf.

use crate::{EtcFiles, Network};

/// One file bind-mounted on `/etc/{name}` for a run.
pub(crate) struct EtcFile {
    pub name: &'static str,
    pub content: Vec<u8>,
    pub readonly: bool,
}

/// The files mounted on `/etc/{name}` with `mode`, and whether they are read-only: a build
/// step ([`EtcFiles::BuildStep`]) gets resolv.conf and hosts read-only and no hostname, as
/// BuildKit gives them; a container all three, writable.
pub(crate) fn mounted(mode: EtcFiles) -> (&'static [&'static str], bool) {
    match mode {
        EtcFiles::Container => (&["resolv.conf", "hosts", "hostname"], false),
        EtcFiles::BuildStep => (&["resolv.conf", "hosts"], true),
    }
}

/// The /etc files of a run ([`mounted`]) with their contents.
pub(crate) fn etc_files(
    hostname: &str,
    network: Network,
    extra_hosts: &[crate::ExtraHost],
    mode: EtcFiles,
) -> Vec<EtcFile> {
    let (names, readonly) = mounted(mode);
    names
        .iter()
        .map(|&name| {
            let content = match name {
                "resolv.conf" => resolv_conf(network),
                "hosts" => hosts(hostname, extra_hosts),
                _ => format!("{hostname}\n").into_bytes(),
            };
            EtcFile {
                name,
                content,
                readonly,
            }
        })
        .collect()
}

fn hosts(hostname: &str, extra_hosts: &[crate::ExtraHost]) -> Vec<u8> {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    // `--add-host` entries after the defaults, as BuildKit writes them.
    for h in extra_hosts {
        hosts.push_str(&h.line());
    }
    hosts.into_bytes()
}

fn resolv_conf(network: Network) -> Vec<u8> {
    let host = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    match network {
        Network::Host | Network::None => host,
        Network::Private => private_resolv_conf(&host),
    }
}

/// The host's resolv.conf for the private network: every nameserver line becomes one line
/// naming pasta's DNS forwarder, which asks the host's first resolver through a host socket.
/// A loopback resolver (systemd-resolved's 127.0.0.53, a local dnsmasq) is not reachable from
/// the namespace's own loopback, and neither is a resolver that only the host's own routing
/// reaches (seen here: 10.255.255.53 answered the host and timed out from the namespace, so
/// `apt-get update` failed). Search and option lines are kept.
pub(crate) fn private_resolv_conf(host: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(host);
    let mut out = String::new();
    let mut forwarded = false;
    for line in text.lines() {
        if line.split_whitespace().next() == Some("nameserver") {
            if !forwarded {
                out.push_str(&format!("nameserver {}\n", crate::net::DNS_FORWARD));
                forwarded = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod resolv_tests {
    use super::private_resolv_conf;

    #[test]
    fn every_nameserver_becomes_the_forwarder_once_and_the_rest_is_kept() {
        let host = b"# comment\nsearch example\nnameserver 10.255.255.53\nnameserver 127.0.0.53\noptions ndots:2\n";
        let out = String::from_utf8(private_resolv_conf(host)).unwrap();
        assert_eq!(
            out,
            "# comment\nsearch example\nnameserver 169.254.1.1\noptions ndots:2\n"
        );
    }
}
