//! `wss://` end to end on loopback, with certificates made at run time: the
//! handshake to READY and a config push over TLS, failover from a `wss://`
//! node to a `ws://` one, and each certificate failure named, retried with
//! backoff and never turned into a session or a plain `ws://` connection.
#![cfg(all(feature = "tls", feature = "devserver"))]

use std::time::Duration;

use isp_cluster::server::ConfigServer;
use isp_cluster::{BuildError, ClusterClientBuilder, SessionEvent, TlsConfig, TlsError};
use rcgen::{CertifiedIssuer, KeyPair};
use serde_json::json;

mod common;
use common::{server_cert, test_ca, wait_until, Recorder};

const WAIT: Duration = Duration::from_secs(5);

async fn tls_server(chain: &str, key: &str) -> ConfigServer {
    ConfigServer::builder()
        .tls(chain.as_bytes(), key.as_bytes())
        .start()
        .await
        .unwrap()
}

fn module() -> ClusterClientBuilder {
    common::quick_module().connect_timeout(Duration::from_millis(500))
}

fn trusting(ca: &CertifiedIssuer<'static, KeyPair>) -> TlsConfig {
    TlsConfig::new()
        .without_os_roots()
        .add_ca_pem(ca.pem().as_bytes())
        .unwrap()
}

#[actix::test]
async fn wss_handshake_config_push_and_failover_to_a_ws_node() {
    let ca = test_ca();
    let (chain, key) = server_cert(&ca, &["127.0.0.1"], false);
    let secure = tls_server(&chain, &key).await;
    let plain = ConfigServer::builder().start().await.unwrap();
    let (rec, seen) = Recorder::start_new();
    let wss = format!("wss://{}", secure.addr());
    let client = module()
        .hosts([wss.clone()])
        .tls(trusting(&ca))
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(client.status().host.as_deref(), Some(wss.as_str()));
    secure
        .set_config("gateway", json!({"over": "tls"}))
        .unwrap();
    assert!(
        wait_until(WAIT, || seen
            .configs()
            .iter()
            .any(|(c, _)| c == &json!({"over": "tls"})))
        .await
    );
    // A mixed list: the wss node goes away, the ws node takes over.
    let ws = format!("ws://{}", plain.addr());
    client.update_hosts([wss.clone(), ws.clone()]).unwrap();
    secure.stop().await;
    assert!(wait_until(WAIT, || seen.active_count() == 2).await);
    assert_eq!(
        seen.events().last(),
        Some(&SessionEvent::Active { host: ws.clone() })
    );
    client.close().await;
    plain.stop().await;
}

/// Starts a client against `host` and returns the reasons of the first
/// `n` failed attempts; the client must never become active.
async fn failures(host: String, tls: TlsConfig, n: usize) -> Vec<(String, Duration)> {
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([host])
        .tls(tls)
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || seen.events().len() >= n).await);
    client.close().await;
    assert_eq!(seen.active_count(), 0, "{:?}", seen.events());
    assert!(client.status().sessions_established == 0);
    seen.events()
        .into_iter()
        .take(n)
        .map(|e| match e {
            SessionEvent::Inactive {
                reason, retry_in, ..
            } => (reason, retry_in),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn assert_named(failures: &[(String, Duration)], host: &str, what: &str) {
    for (reason, _) in failures {
        assert!(
            reason.starts_with(&format!("cannot connect to {host}: tls: {what}")),
            "{reason}"
        );
    }
    // Each failure is a failed round of this one host: backoff applies.
    assert!(failures.iter().all(|(_, retry)| !retry.is_zero()));
}

#[actix::test]
async fn an_untrusted_certificate_is_named_and_retried_never_a_session() {
    let ca = test_ca();
    let (chain, key) = server_cert(&ca, &["127.0.0.1"], false);
    let server = tls_server(&chain, &key).await;
    let host = format!("wss://{}", server.addr());
    // Trusts another CA only.
    let failed = failures(host.clone(), trusting(&test_ca()), 2).await;
    println!("{}", failed[0].0);
    assert_named(&failed, &host, "untrusted certificate");
    assert_eq!(server.session_count("gateway"), 0);
    server.stop().await;
}

#[actix::test]
async fn a_certificate_for_another_name_is_named() {
    let ca = test_ca();
    let (chain, key) = server_cert(&ca, &["config.example"], false);
    let server = tls_server(&chain, &key).await;
    let host = format!("wss://{}", server.addr());
    let failed = failures(host.clone(), trusting(&ca), 2).await;
    println!("{}", failed[0].0);
    assert_named(&failed, &host, "certificate not valid for this host name");
    server.stop().await;
}

#[actix::test]
async fn an_expired_certificate_is_named() {
    let ca = test_ca();
    let (chain, key) = server_cert(&ca, &["127.0.0.1"], true);
    let server = tls_server(&chain, &key).await;
    let host = format!("wss://{}", server.addr());
    let failed = failures(host.clone(), trusting(&ca), 2).await;
    println!("{}", failed[0].0);
    assert_named(&failed, &host, "expired certificate");
    server.stop().await;
}

#[actix::test]
async fn a_wss_host_is_never_downgraded_to_ws() {
    // A plain server behind a wss:// address: TLS fails, nothing else is
    // tried on that host.
    let ca = test_ca();
    let plain = ConfigServer::builder().start().await.unwrap();
    let host = format!("wss://{}", plain.addr());
    let failed = failures(host.clone(), trusting(&ca), 2).await;
    println!("{}", failed[0].0);
    for (reason, _) in &failed {
        assert!(
            reason.starts_with(&format!("cannot connect to {host}: tls")),
            "{reason}"
        );
    }
    assert_eq!(plain.session_count("gateway"), 0);
    plain.stop().await;
}

#[actix::test]
async fn unusable_tls_settings_fail_at_build_time() {
    assert!(matches!(
        TlsConfig::new().add_ca_pem(b"not a certificate"),
        Err(TlsError::NoCertificate(_))
    ));
    assert!(matches!(
        TlsConfig::new().add_ca_file("/nonexistent/ca.pem"),
        Err(TlsError::Pem { .. })
    ));
    let ca = test_ca();
    assert!(matches!(
        TlsConfig::new().client_auth_pem(ca.pem().as_bytes(), b"no key here"),
        Err(TlsError::Pem { .. })
    ));
    let err = module()
        .hosts(["wss://127.0.0.1:1"])
        .tls(TlsConfig::new().without_os_roots())
        .start()
        .unwrap_err();
    assert!(matches!(err, BuildError::Tls(TlsError::NoRoots)), "{err}");
    assert!(err.to_string().contains("no trusted root certificate"));
}
