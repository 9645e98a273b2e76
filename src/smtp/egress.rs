//! Where a tenant's connection test may go. A tenant writes the SMTP host (and an OAuth 2.0
//! token URL); without a check the operator would connect, from inside the cluster, to
//! whatever that names — its own loopback, the cloud metadata service at 169.254.169.254, the
//! cluster's pods and services — and report what it found. So names are resolved first, every
//! resolved address is checked (the connection then goes to a checked address, so a second
//! resolution cannot point it elsewhere), and at most [`MAX_ADDRESSES`] are tried.
//!
//! Denied always: unspecified, loopback, link-local, private (RFC 1918, ULA), shared
//! (100.64/10), benchmarking, multicast and reserved ranges, and whatever the platform adds
//! (`--egress-deny`, e.g. the cluster's pod and service ranges). Allowed despite that: what the
//! platform names (`--egress-allow`, e.g. an internal relay), optionally on one port only.
//!
//! The platform's `--connect-to` routes ([`super::connect_to`]) decide which address and port a
//! connection to a host goes to; the address actually connected to is the one checked.

use super::Failure;
use super::connect_to::{self, ConnectTo};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// At most this many resolved addresses are tried.
pub const MAX_ADDRESSES: usize = 2;

/// An IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or an address alone (a /32 or /128).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The ranges no tenant connection goes to unless allowed.
const ALWAYS_DENIED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// An allowed destination: a network, on any port or on one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub net: Cidr,
    pub port: Option<u16>,
}

impl Allowed {
    /// `CIDR` or `CIDR:PORT` (`[v6-CIDR]:PORT` for IPv6 with a port).
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix('[') {
            let (net, port) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{s:?}: write [IPv6-network]:PORT"))?;
            return Ok(Self {
                net: Cidr::parse(net)?,
                port: Some(parse_port(s, port)?),
            });
        }
        match s.rsplit_once(':') {
            Some((net, port)) if !net.contains(':') => Ok(Self {
                net: Cidr::parse(net)?,
                port: Some(parse_port(s, port)?),
            }),
            _ => Ok(Self {
                net: Cidr::parse(s)?,
                port: None,
            }),
        }
    }
}

fn parse_port(s: &str, port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{s:?}: {port:?} is not a TCP port"))
}

/// The A and AAAA answers of `server` for `host` (none when it has none or does not answer).
async fn lookup_at(server: SocketAddr, host: &str) -> Vec<IpAddr> {
    use crate::dns::lookup::{Answer, DnsLookup, HickoryLookup};
    let Ok(resolver) = HickoryLookup::new(Some(server)) else {
        return vec![];
    };
    let mut ips = vec![];
    for record_type in ["A", "AAAA"] {
        if let Answer::Found(values) = resolver.lookup(host, record_type).await {
            ips.extend(values.iter().filter_map(|v| v.parse::<IpAddr>().ok()));
        }
    }
    ips
}

/// Where tenants' connection tests may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    denied: Vec<Cidr>,
    allowed: Vec<Allowed>,
    /// Where host names are resolved (`--dns-server`); None: the system's resolver.
    dns_server: Option<SocketAddr>,
    /// The platform's `--connect-to` routes, first match wins.
    connect_to: Vec<ConnectTo>,
}

impl Default for Egress {
    fn default() -> Self {
        Self::new(vec![], vec![])
    }
}

impl Egress {
    /// The built-in deny list plus `deny`, with the exceptions `allow`.
    pub fn new(deny: Vec<Cidr>, allow: Vec<Allowed>) -> Self {
        let mut denied: Vec<Cidr> = ALWAYS_DENIED
            .iter()
            .filter_map(|c| Cidr::parse(c).ok())
            .collect();
        denied.extend(deny);
        Self {
            denied,
            allowed: allow,
            dns_server: None,
            connect_to: vec![],
        }
    }

    /// Resolves host names through `server` (the operator's `--dns-server`, which it also
    /// checks DNS records against) instead of the system's resolver.
    pub fn with_dns_server(mut self, server: Option<SocketAddr>) -> Self {
        self.dns_server = server;
        self
    }

    /// Sends connections through `rules` (the operator's `--connect-to`): a connection meant
    /// for a host and port goes to the first matching rule's address and port instead.
    pub fn with_connect_to(mut self, rules: Vec<ConnectTo>) -> Self {
        self.connect_to = rules;
        self
    }

    /// Where a connection to `host:port` goes: the first matching `--connect-to` rule's address
    /// and port, else `host:port` itself.
    pub fn route<'a>(&'a self, host: &'a str, port: u16) -> (&'a str, u16) {
        connect_to::route(&self.connect_to, host, port)
    }

    /// The addresses a connection to `host:port` may go to: [`Egress::route`]d, resolved
    /// ([`Egress::lookup`]) and checked ([`Egress::addresses`]) — by these rules when the host
    /// is a tenant's (`restricted`), by none when the platform configured it. A name that does
    /// not resolve is `UnknownHost` for `host`, whatever it was routed to.
    pub async fn connect_addresses(
        &self,
        host: &str,
        port: u16,
        restricted: bool,
        within: Duration,
    ) -> Result<Vec<SocketAddr>, Failure> {
        let (to_host, to_port) = self.route(host, port);
        let ips = self.lookup(to_host, within).await.map_err(|e| match e {
            Failure::UnknownHost(_) if to_host != host => {
                Failure::UnknownHost(format!("{host} cannot be resolved"))
            }
            other => other,
        })?;
        if (to_host, to_port) != (host, port) {
            tracing::debug!(
                host,
                port,
                to_host,
                to_port,
                "connection routed by --connect-to"
            );
        }
        let checked = if restricted {
            self.addresses(host, &ips, to_port)
        } else {
            Egress::unrestricted().addresses(host, &ips, to_port)
        };
        // The tenant reads the host and port it wrote, not where the route leads.
        checked.map_err(|e| match e {
            Failure::HostNotAllowed(_) => Failure::HostNotAllowed(format!("{host}:{port}")),
            other => other,
        })
    }

    /// Whether a tenant's connection may go to `addr`.
    pub fn permits(&self, addr: SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        let allowed = self
            .allowed
            .iter()
            .any(|a| a.net.contains(ip) && a.port.is_none_or(|p| p == addr.port()));
        allowed || !self.denied.iter().any(|d| d.contains(ip))
    }

    /// The addresses `host` resolves to (an address written as such, as it is); a name that
    /// does not resolve is `UnknownHost`.
    ///
    /// With a DNS server set, it is asked first; a name it does not answer (an authoritative
    /// server for the mail domains only, say) is asked of the system's resolvers.
    pub async fn lookup(&self, host: &str, within: Duration) -> Result<Vec<IpAddr>, Failure> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let mut ips = match self.dns_server {
            Some(server) => tokio::time::timeout(within, lookup_at(server, host))
                .await
                .unwrap_or_default(),
            None => vec![],
        };
        if ips.is_empty() {
            ips = match tokio::time::timeout(within, tokio::net::lookup_host((host, 0))).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                Ok(Err(_)) | Err(_) => vec![],
            };
        }
        if ips.is_empty() {
            return Err(Failure::UnknownHost(format!("{host} cannot be resolved")));
        }
        Ok(ips)
    }

    /// Of `ips` (what `host` resolved to), the ones a connection to `port` may go to, at most
    /// [`MAX_ADDRESSES`]; none is `HostNotAllowed` (the addresses are logged, not told to the
    /// tenant).
    pub fn addresses(
        &self,
        host: &str,
        ips: &[IpAddr],
        port: u16,
    ) -> Result<Vec<SocketAddr>, Failure> {
        let permitted: Vec<SocketAddr> = ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .filter(|a| self.permits(*a))
            .take(MAX_ADDRESSES)
            .collect();
        if permitted.is_empty() {
            tracing::info!(host, port, addresses = ?ips, "connection refused: every address of the host is denied to tenants");
            return Err(Failure::HostNotAllowed(format!("{host}:{port}")));
        }
        Ok(permitted)
    }

    /// [`Egress::lookup`] then [`Egress::addresses`].
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<Vec<SocketAddr>, Failure> {
        let ips = self.lookup(host, within).await?;
        self.addresses(host, &ips, port)
    }

    /// Egress for what the platform itself configured (the default relay, the SES endpoint):
    /// nothing is denied.
    pub fn unrestricted() -> Self {
        Self {
            denied: vec![],
            allowed: vec![],
            dns_server: None,
            connect_to: vec![],
        }
    }
}

/// Whether an IP is one no tenant connection may reach by default (for a host written as an
/// address, refused at once).
pub fn is_internal(ip: IpAddr) -> bool {
    !Egress::default().permits(SocketAddr::new(ip, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn internal_ranges_are_denied_and_public_ones_permitted() {
        let e = Egress::default();
        for denied in [
            "127.0.0.1:25",
            "169.254.169.254:80",
            "10.96.0.1:443",
            "172.20.3.4:587",
            "192.168.1.1:25",
            "100.64.0.10:25",
            "0.0.0.0:25",
            "[::1]:25",
            "[fe80::1]:25",
            "[fd00::5]:25",
            "[::ffff:127.0.0.1]:25",
            "[::ffff:169.254.169.254]:80",
        ] {
            assert!(!e.permits(addr(denied)), "{denied}");
        }
        for permitted in ["203.0.114.7:587", "8.8.8.8:25", "[2606:4700::1]:587"] {
            assert!(e.permits(addr(permitted)), "{permitted}");
        }
        assert!(is_internal("169.254.169.254".parse().unwrap()));
        assert!(!is_internal("1.1.1.1".parse().unwrap()));
    }

    #[test]
    fn the_platform_adds_ranges_and_allows_internal_relays_by_port() {
        let e = Egress::new(
            vec![Cidr::parse("34.118.224.0/20").unwrap()],
            vec![
                Allowed::parse("10.1.2.3:2525").unwrap(),
                Allowed::parse("192.168.7.0/24").unwrap(),
                Allowed::parse("[fd00::/8]:25").unwrap(),
            ],
        );
        assert!(
            !e.permits(addr("34.118.230.1:587")),
            "a cluster range added"
        );
        assert!(e.permits(addr("10.1.2.3:2525")));
        assert!(!e.permits(addr("10.1.2.3:25")), "allowed on its port only");
        assert!(e.permits(addr("192.168.7.9:25")));
        assert!(e.permits(addr("[fd00::9]:25")));
        assert!(!e.permits(addr("[fd00::9]:587")));
    }

    #[test]
    fn networks_and_allowances_parse_or_say_why_not() {
        assert_eq!(
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        );
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
        assert!(Cidr::parse("relay").unwrap_err().contains("not an IP"));
        assert!(
            Allowed::parse("10.0.0.1:0")
                .unwrap_err()
                .contains("not a TCP port")
        );
        assert_eq!(
            Allowed::parse("::1").unwrap().port,
            None,
            "an IPv6 address alone"
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_host_resolving_only_to_denied_addresses_is_not_allowed_and_at_most_two_are_tried() {
        let e = Egress::default();
        let refused = e
            .resolve("localhost", 25, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(refused, Failure::HostNotAllowed(_)), "{refused:?}");
        assert!(
            !refused.to_string().contains("127.0.0.1"),
            "no address told"
        );
        let literal = e
            .resolve("169.254.169.254", 80, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(literal, Failure::HostNotAllowed(_)));
        let allowed = Egress::new(vec![], vec![Allowed::parse("127.0.0.0/8").unwrap()]);
        let addrs = allowed
            .resolve("127.0.0.1", 2525, Duration::from_secs(5))
            .await
            .expect("allowed");
        assert_eq!(addrs, [addr("127.0.0.1:2525")]);
        assert!(addrs.len() <= MAX_ADDRESSES);
    }
}
