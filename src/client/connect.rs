//! Connecting: TCP (with `TCP_NODELAY`, as every Go ETP peer runs), the
//! WebSocket upgrade within the connect timeout, and the read-limited codec.

use std::time::Duration;

use actix_service::ServiceExt;
use actix_tls::connect::{Connection, ConnectorService};
use awc::http::Uri;
use awc::BoxedSocket;

use super::end_reason::EndReason;
use super::Settings;
use crate::etp::ws::LimitedCodec;

/// An upgraded connection, framed with the read-limited codec.
pub(crate) type Framed = actix_codec::Framed<BoxedSocket, LimitedCodec>;

/// A config-service host as written: `host:port`, `ws://host:port` or
/// `wss://host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint<'a> {
    /// `wss://`: TLS, never downgraded.
    pub(crate) secure: bool,
    /// `host:port`.
    pub(crate) authority: &'a str,
}

impl<'a> Endpoint<'a> {
    /// Splits the scheme off; `None` for a scheme other than ws/wss.
    pub(crate) fn parse(host: &'a str) -> Option<Self> {
        if let Some(authority) = host.strip_prefix("wss://") {
            return Some(Self {
                secure: true,
                authority,
            });
        }
        let authority = host.strip_prefix("ws://").unwrap_or(host);
        if authority.contains("://") {
            return None;
        }
        Some(Self {
            secure: false,
            authority,
        })
    }

    /// The ETP endpoint for `module`.
    pub(crate) fn url(&self, module: &str) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}/isp-etp/?module_name={}",
            self.authority,
            encode_query(module)
        )
    }
}

/// A connection attempt that failed.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    /// What went wrong, naming the host.
    pub(crate) reason: String,
    /// Which way it failed: [`EndReason::NodeDown`] when the connection was
    /// refused, the host is unreachable or its name does not resolve
    /// (trying it cost the node nothing, unlike an attempt that reached it:
    /// paced apart, `pacing.rs`).
    pub(crate) end: EndReason,
}

impl ConnectFailure {
    fn new(end: EndReason, reason: String) -> Self {
        Self { reason, end }
    }
}

/// Connects to `host` and upgrades, within the connect timeout.
pub(crate) async fn connect(settings: &Settings, host: &str) -> Result<Framed, ConnectFailure> {
    let failed = |reason: String| ConnectFailure::new(EndReason::ConnectFailed, reason);
    let endpoint =
        Endpoint::parse(host).ok_or_else(|| failed(format!("{host} is not ws:// or wss://")))?;
    let timeout = settings.connect_timeout;
    // Nagle's algorithm plus the peer's delayed ACK holds a small frame
    // back for up to 40 ms; the Go client and servers turn it off.
    let tcp = ConnectorService::default().map(|conn: Connection<Uri, _>| {
        if let Err(e) = conn.io_ref().set_nodelay(true) {
            log::debug!("cannot set TCP_NODELAY: {e}");
        }
        conn
    });
    let connector = awc::Connector::new()
        .connector(tcp)
        // Our own timeout below bounds connect, TLS and upgrade; awc's must
        // not fire first with a vaguer message.
        .timeout(timeout.saturating_add(Duration::from_secs(1)))
        .handshake_timeout(timeout.saturating_add(Duration::from_secs(1)));
    #[cfg(feature = "tls")]
    let connector = if endpoint.secure {
        let tls = settings
            .tls_client_config()
            .await
            .map_err(|e| failed(format!("cannot connect to {host}: tls: {e}")))?;
        connector.rustls_0_23(tls)
    } else {
        connector.max_http_version(awc::http::Version::HTTP_11)
    };
    #[cfg(not(feature = "tls"))]
    if endpoint.secure {
        return Err(failed(format!(
            "cannot connect to {host}: wss:// needs the `tls` feature"
        )));
    }
    // No `max_http_version` here: awc would rebuild the TLS connector with
    // its own defaults, dropping ours. A plain connection is HTTP/1.1 anyway
    // and our TLS configuration offers only HTTP/1.1 by ALPN.
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(timeout.saturating_add(Duration::from_secs(1)))
        .finish();
    let request = client
        .ws(endpoint.url(&settings.module))
        .max_frame_size(settings.read_limit);
    match actix::clock::timeout(timeout, request.connect()).await {
        Ok(Ok((_response, framed))) => {
            let limit = settings.read_limit;
            Ok(framed.into_map_codec(|_| LimitedCodec::client(limit)))
        }
        Ok(Err(awc::error::WsClientError::InvalidResponseStatus(status))) => {
            Err(ConnectFailure::new(
                EndReason::UpgradeRefused,
                format!("cannot connect to {host}: websocket upgrade refused with HTTP {status}"),
            ))
        }
        Ok(Err(e)) => Err(ConnectFailure::new(
            if node_down(&e) {
                EndReason::NodeDown
            } else {
                EndReason::ConnectFailed
            },
            format!("cannot connect to {host}: {}", describe(&e)),
        )),
        // TCP may or may not have been accepted: paced as a node reached.
        Err(_) => Err(ConnectFailure::new(
            EndReason::ConnectTimeout,
            if endpoint.secure {
                format!(
                    "cannot connect to {host}: no tls handshake and websocket upgrade within \
                     {timeout:?}"
                )
            } else {
                format!("cannot connect to {host}: no websocket upgrade within {timeout:?}")
            },
        )),
    }
}

/// Whether the attempt failed before it reached the node: refused,
/// unreachable, or a name that does not resolve.
fn node_down(error: &awc::error::WsClientError) -> bool {
    use awc::error::{ConnectError, SendRequestError, WsClientError};
    use std::io::ErrorKind;
    let WsClientError::SendRequest(SendRequestError::Connect(connect)) = error else {
        return false;
    };
    match connect {
        ConnectError::Resolver(_) | ConnectError::NoRecords | ConnectError::Unresolved => true,
        ConnectError::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}

/// A connection failure in words, naming what TLS refused when it did.
fn describe(error: &awc::error::WsClientError) -> String {
    #[cfg(feature = "tls")]
    {
        use awc::error::{ConnectError, SendRequestError, WsClientError};
        if let WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Io(io))) = error {
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return format!("tls: {}", super::tls::describe(tls));
            }
        }
    }
    error.to_string()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_url_encoded() {
        assert_eq!(encode_query("auth-service"), "auth-service");
        assert_eq!(encode_query("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        let plain = Endpoint::parse("127.0.0.1:9001").unwrap();
        assert_eq!(
            plain.url("a b"),
            "ws://127.0.0.1:9001/isp-etp/?module_name=a%20b"
        );
        assert_eq!(Endpoint::parse("ws://127.0.0.1:9001"), Some(plain));
        let secure = Endpoint::parse("wss://node.example:443").unwrap();
        assert!(secure.secure);
        assert_eq!(
            secure.url("m"),
            "wss://node.example:443/isp-etp/?module_name=m"
        );
        assert_eq!(Endpoint::parse("http://127.0.0.1:9001"), None);
    }
}
