//! Connecting: TCP (with `TCP_NODELAY`, as every Go ETP peer runs), the
//! WebSocket upgrade within the connect timeout, and the read-limited codec.

use std::time::Duration;

use actix_service::ServiceExt;
use actix_tls::connect::{Connection, ConnectorService};
use awc::http::Uri;
use awc::BoxedSocket;

use super::Settings;
use crate::etp::ws::LimitedCodec;

/// An upgraded connection, framed with the read-limited codec.
pub(crate) type Framed = actix_codec::Framed<BoxedSocket, LimitedCodec>;

/// The ETP endpoint of `host` for `module`.
pub(crate) fn url(host: &str, module: &str) -> String {
    format!("ws://{host}/isp-etp/?module_name={}", encode_query(module))
}

/// Connects to `host` and upgrades, within the connect timeout.
pub(crate) async fn connect(settings: &Settings, host: &str) -> Result<Framed, String> {
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
        // Our own timeout below bounds connect plus upgrade; awc's must
        // not fire first with a vaguer message.
        .timeout(timeout.saturating_add(Duration::from_secs(1)));
    let client = awc::Client::builder()
        .connector(connector)
        .timeout(timeout.saturating_add(Duration::from_secs(1)))
        .max_http_version(awc::http::Version::HTTP_11)
        .finish();
    let request = client
        .ws(url(host, &settings.module))
        .max_frame_size(settings.read_limit);
    match actix::clock::timeout(timeout, request.connect()).await {
        Ok(Ok((_response, framed))) => {
            let limit = settings.read_limit;
            Ok(framed.into_map_codec(|_| LimitedCodec::client(limit)))
        }
        Ok(Err(awc::error::WsClientError::InvalidResponseStatus(status))) => Err(format!(
            "cannot connect to {host}: websocket upgrade refused with HTTP {status}"
        )),
        Ok(Err(e)) => Err(format!("cannot connect to {host}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to {host}: no websocket upgrade within {timeout:?}"
        )),
    }
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
        assert_eq!(
            url("127.0.0.1:9001", "a b"),
            "ws://127.0.0.1:9001/isp-etp/?module_name=a%20b"
        );
    }
}
