//! Where Hubble is: the agent's Unix socket or a TCP address (Hubble Relay, or an agent's
//! :4244), plain, TLS or mutual TLS; and the gRPC channel to it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

use crate::Error;

/// The socket a Cilium agent serves Hubble on.
pub const DEFAULT_SOCKET: &str = "/var/run/cilium/hubble.sock";

/// Time allowed to open a TCP connection (and finish the TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: a follow stream can stay quiet for long, and a peer that vanished without a
/// reset must still be noticed. Kernel probes, unlike HTTP/2 pings, never trip gRPC servers'
/// ping limits.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 4;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Unix socket path (the agent's local socket).
    Unix(PathBuf),
    /// `host:port` or `scheme://host:port`. The scheme is decided by `tls`: `https` when it is
    /// set, `http` otherwise.
    Tcp { uri: String, tls: Option<Tls> },
}

impl Default for Target {
    fn default() -> Self {
        Target::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "unix://{}", path.display()),
            Target::Tcp { uri, .. } => f.write_str(uri),
        }
    }
}

/// TLS settings of a TCP target. Without `ca` the system's roots are trusted; `cert` and `key`
/// (PEM files, both or neither) are the client identity for mutual TLS; `server_name`
/// overrides the name the server's certificate must carry (the agents' certificates name
/// `*.<cluster>.hubble-grpc.cilium.io`, not an address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// Reads an address: `unix:///path` (or `unix:path`), `host:port` and `http://host:port`
/// (plain), `https://host:port` and `tls://host:port` (TLS with default settings, to be
/// completed with a CA or client certificate by the caller).
pub fn target_from_str(s: &str) -> Result<Target, Error> {
    let invalid = |reason| Error::InvalidTarget {
        address: s.to_string(),
        reason,
    };
    if let Some(rest) = s.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(invalid("no socket path"));
        }
        return Ok(Target::Unix(PathBuf::from(path)));
    }
    let (tls, authority) = match s.split_once("://") {
        None => (false, s),
        Some(("http", rest)) => (false, rest),
        Some(("https" | "tls", rest)) => (true, rest),
        Some(_) => return Err(invalid("the scheme is not unix, http, https or tls")),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let uri = tcp_uri(authority, tls).map_err(invalid)?;
    Ok(Target::Tcp {
        uri,
        tls: tls.then(Tls::default),
    })
}

/// `scheme://host:port` from the authority part of a TCP address.
fn tcp_uri(authority: &str, tls: bool) -> Result<String, &'static str> {
    if authority.is_empty() {
        return Err("no host");
    }
    let uri: Uri = format!("http://{authority}")
        .parse()
        .map_err(|_| "not a host:port address")?;
    if uri.path() != "/" || uri.query().is_some() {
        return Err("an address takes no path");
    }
    let Some(found) = uri.authority() else {
        return Err("no host");
    };
    if found.port_u16().is_none() {
        return Err("no port (Hubble Relay listens on 4245, agents on 4244)");
    }
    if found.as_str().contains('@') {
        return Err("an address takes no user name");
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{found}"))
}

/// A checked target, ready to dial again after every failure.
pub(crate) enum Connector {
    Unix(PathBuf),
    /// The endpoint is built again, reading any TLS files, before each dial, so that rotated
    /// certificates are used from the next connection on.
    Tcp {
        uri: String,
        tls: Option<Tls>,
    },
}

impl Connector {
    /// Checks the address and the TLS files, naming the address or file on error.
    pub(crate) async fn new(target: &Target) -> Result<Self, Error> {
        match target {
            Target::Unix(path) => Ok(Connector::Unix(path.clone())),
            Target::Tcp { uri, tls } => {
                endpoint(uri, tls.as_ref()).await?;
                Ok(Connector::Tcp {
                    uri: uri.clone(),
                    tls: tls.clone(),
                })
            }
        }
    }

    /// Opens a connection; the error says why, with its causes.
    pub(crate) async fn connect(&self) -> Result<Channel, String> {
        let dialled = match self {
            Connector::Tcp { uri, tls } => {
                let endpoint = endpoint(uri, tls.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
                endpoint.connect().await
            }
            Connector::Unix(path) => {
                let path = path.clone();
                // The URI is required by the API but never dialled: the connector is.
                Endpoint::from_static("http://localhost")
                    .connect_with_connector(tower::service_fn(move |_| {
                        let path = path.clone();
                        async move { UnixStream::connect(path).await.map(TokioIo::new) }
                    }))
                    .await
            }
        };
        dialled.map_err(|e| error_chain(&e))
    }
}

/// The endpoint of a TCP target, with its TLS files read now.
async fn endpoint(uri: &str, tls: Option<&Tls>) -> Result<Endpoint, Error> {
    let invalid = |reason| Error::InvalidTarget {
        address: uri.to_string(),
        reason,
    };
    let authority = match uri.split_once("://") {
        None => uri,
        Some(("http" | "https" | "tls", rest)) => rest,
        Some(_) => return Err(invalid("the scheme is not http, https or tls")),
    };
    let uri = tcp_uri(authority, tls.is_some()).map_err(invalid)?;
    let endpoint = Endpoint::from_shared(uri.clone())
        .map_err(|_| invalid("not a host:port address"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .tcp_keepalive(Some(KEEPALIVE_IDLE))
        .tcp_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .tcp_keepalive_retries(Some(KEEPALIVE_RETRIES));
    let Some(tls) = tls else {
        return Ok(endpoint);
    };
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca {
        Some(path) => config.ca_certificate(Certificate::from_pem(
            read_pem(path, "CA certificate", "CERTIFICATE").await?,
        )),
        None => config.with_native_roots(),
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let cert = read_pem(cert, "client certificate", "CERTIFICATE").await?;
            let key = read_pem(key, "client key", "PRIVATE KEY").await?;
            config = config.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => {
            return Err(Error::Tls {
                address: uri,
                reason: "a client certificate and its key go together".to_string(),
            })
        }
    }
    if let Some(name) = &tls.server_name {
        config = config.domain_name(name.clone());
    }
    endpoint.tls_config(config).map_err(|e| Error::Tls {
        address: uri,
        reason: error_chain(&e),
    })
}

/// An error and its sources, `: `-separated (tonic's own message is only "transport error").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Reads a PEM file that must hold at least one `label` block (`CERTIFICATE`, or any
/// `... PRIVATE KEY`): a wrong file is reported here, not as a failed handshake later.
async fn read_pem(path: &Path, what: &'static str, label: &str) -> Result<Vec<u8>, Error> {
    let pem = tokio::fs::read(path)
        .await
        .map_err(|source| Error::ReadFile {
            what,
            path: path.to_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&pem);
    let end = format!("{label}-----");
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&end));
    if !found {
        return Err(Error::NotPem {
            what,
            path: path.to_owned(),
        });
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(uri: &str, tls: bool) -> Target {
        Target::Tcp {
            uri: uri.to_string(),
            tls: tls.then(Tls::default),
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            target_from_str("unix:///var/run/cilium/hubble.sock").unwrap(),
            Target::default()
        );
        assert_eq!(
            target_from_str("unix:rel/h.sock").unwrap(),
            Target::Unix(PathBuf::from("rel/h.sock"))
        );
        assert_eq!(
            target_from_str("localhost:4245").unwrap(),
            tcp("http://localhost:4245", false)
        );
        assert_eq!(
            target_from_str("http://10.0.0.1:4245/").unwrap(),
            tcp("http://10.0.0.1:4245", false)
        );
        assert_eq!(
            target_from_str("https://relay.example:443").unwrap(),
            tcp("https://relay.example:443", true)
        );
        assert_eq!(
            target_from_str("tls://[::1]:4245").unwrap(),
            tcp("https://[::1]:4245", true)
        );
        for bad in [
            "unix://",
            "",
            "relay",
            "ftp://relay:21",
            "relay:4245/path",
            "user@relay:4245",
            "relay:notaport",
        ] {
            let err = target_from_str(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidTarget { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
