//! DNS for the test bed: an authoritative server (hickory-server) on 127.0.0.1, UDP and TCP on
//! the same port, serving the editable [`Zone`], plus the resolver the SES stand-in uses to
//! check published records.
//!
//! The SES stand-in never looks at the zone directly: it queries this server over the network,
//! like SES queries the public DNS, so a record only counts once it is really served.

pub mod records;
pub mod resolve;
pub mod zone;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use hickory_server::Server;
use hickory_server::zone_handler::{Catalog, ZoneHandler};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;

pub use records::DnsRecord;
pub use zone::Zone;

/// How long a TCP client may stay idle before the server drops the connection.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses buffered per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 64;

/// A running DNS server. Dropping it stops the server.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Zone,
    _shutdown: oneshot::Sender<()>,
}

impl DnsServer {
    /// Starts serving `zone` on `bind` (use port 0 for an ephemeral port; UDP and TCP then
    /// share the port the UDP socket got).
    pub async fn start(bind: SocketAddr, zone: Zone) -> io::Result<Self> {
        let (udp, tcp) = bind_pair(bind).await?;
        let addr = udp.local_addr()?;

        let mut catalog = Catalog::new();
        let handler: std::sync::Arc<dyn ZoneHandler> = zone.handler();
        catalog.upsert(LowerName::new(&Name::root()), vec![handler]);

        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);

        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            // Resolves when the DnsServer is dropped (sender gone) or told to stop.
            let _ = stopped.await;
            if let Err(error) = server.shutdown_gracefully().await {
                tracing::debug!(%error, "dns server stopped with an error");
            }
        });
        tracing::info!(%addr, "dns server listening (udp+tcp)");
        Ok(Self {
            addr,
            zone,
            _shutdown: shutdown,
        })
    }

    /// The address queries go to (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone this server serves.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }
}

/// Binds UDP and TCP to the same port. With port 0 the kernel picks the UDP port; if that port
/// is taken for TCP, try again with another one.
async fn bind_pair(bind: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    if bind.port() != 0 {
        let udp = UdpSocket::bind(bind).await?;
        let tcp = TcpListener::bind(bind).await?;
        return Ok((udp, tcp));
    }
    let mut last_error = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(bind).await?;
        let port_addr = udp.local_addr()?;
        match TcpListener::bind(port_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("could not bind UDP and TCP to one port")))
}
