//! The /etc files a run gets: /etc/hostname, /etc/hosts and /etc/resolv.conf.

use crate::Network;

/// The contents of /etc/hostname, /etc/hosts and /etc/resolv.conf for a run.
pub(crate) fn etc_files(
    hostname: &str,
    network: Network,
    extra_hosts: &[crate::ExtraHost],
) -> Vec<(&'static str, Vec<u8>)> {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    // `--add-host` entries after the defaults, as BuildKit writes them.
    for h in extra_hosts {
        hosts.push_str(&h.line());
    }
    let host = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let resolv = match network {
        Network::Host | Network::None => host,
        Network::Private => private_resolv_conf(&host),
    };
    vec![
        ("resolv.conf", resolv),
        ("hosts", hosts.into_bytes()),
        ("hostname", format!("{hostname}\n").into_bytes()),
    ]
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
