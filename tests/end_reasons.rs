//! Why a session or an attempt ended is a type, set where it ended, never
//! read back from the text (issue 25): a server's words that look like the
//! client's own reasons change neither the metrics' labels nor the pacing.

use std::time::Duration;

use isp_cluster::{
    AddressConfiguration, ClusterClient, ClusterClientBuilder, ConfigData, ModuleInfo,
    SessionEvent, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, MODULE_SEND_CONFIG_SCHEMA,
};

mod common;
mod peer;
use common::{wait_until, Recorder};
use peer::ScriptedPeer;

const WAIT: Duration = Duration::from_secs(5);

/// The value of `name{…}` whose labels include `labels`, in Prometheus text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

/// A module called `name` (the recorder is the process's: each test counts
/// under its own module), with short handshake timeouts and the default
/// pacing.
fn module(name: &str) -> ClusterClientBuilder {
    common::init_logs();
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("10.0.0.5", "9005"));
    ClusterClient::builder(info, ConfigData::default())
        .ack_timeout(common::QUICK_ACK_TIMEOUT)
        .initial_wait(Duration::from_millis(300))
        .config_initial_wait(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .backoff(DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX)
        .min_uptime(Duration::from_secs(5))
}

/// A refusing ack whose text reads like the client's own ack timeout is a
/// refused ack: counted as `ack_refused`, and paced as the service's
/// refusal (the client waits even with a node not yet tried).
#[actix::test]
async fn an_ack_text_that_reads_like_an_ack_timeout_is_a_refused_ack() {
    let handle = isp_cluster::infra::install_recorder().unwrap();
    let refusing = || {
        ScriptedPeer::start(|mut conn| async move {
            conn.upgrade().await;
            let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
            conn.ack(&schema, "no ack for MODULE:READY within 1s").await;
            conn.until_closed().await;
        })
    };
    let (a, b) = (refusing().await, refusing().await);
    let (rec, seen) = Recorder::start_new();
    let name = "reasons-ack";
    let client = module(name)
        .hosts([a.host(), b.host()])
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    let SessionEvent::Inactive {
        retry_in, reason, ..
    } = &seen.events()[0]
    else {
        panic!("{:?}", seen.events())
    };
    assert!(reason.contains("no ack for"), "{reason}");
    assert!(
        *retry_in >= Duration::from_millis(675),
        "the service refused: the client waits ({retry_in:?})"
    );
    let text = handle.render();
    let ended = |reason| {
        sample(
            &text,
            "isp_cluster_sessions_ended_total",
            &[("module", name), ("reason", reason)],
        )
    };
    assert_eq!(ended("ack_refused"), Some(1.0), "{text}");
    assert_eq!(ended("ack_timeout"), None, "{text}");
    assert_eq!(
        sample(
            &text,
            "isp_cluster_sessions_failed_total",
            &[("module", name)]
        ),
        Some(1.0),
        "{text}"
    );
    client.close().await;
}

/// A node's close frame whose text reads like a refused ack is a node's
/// close: counted as `server_close_error`, and the next node is tried at
/// once.
#[actix::test]
async fn a_close_text_that_reads_like_a_refusal_is_a_node_s_close() {
    let handle = isp_cluster::infra::install_recorder().unwrap();
    let closing = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.close(1011, "server refused MODULE:SEND_CONFIG_SCHEMA: electing")
            .await;
    })
    .await;
    let fine = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.handshake("{}").await;
        conn.until_closed().await;
    })
    .await;
    let name = "reasons-close";
    // The rotation starts at a random host: repeated until it started at
    // the closing one.
    let mut closed_first = false;
    for _ in 0..12 {
        let (rec, seen) = Recorder::start_new();
        let client = module(name)
            .hosts([closing.host(), fine.host()])
            .session_events(rec.recipient())
            .start()
            .unwrap();
        assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
        let events = seen.events();
        client.close().await;
        if let SessionEvent::Inactive {
            retry_in, reason, ..
        } = &events[0]
        {
            assert!(reason.contains("server refused"), "{reason}");
            assert_eq!(
                *retry_in,
                Duration::ZERO,
                "a node's close: the next node at once"
            );
            closed_first = true;
            break;
        }
    }
    assert!(
        closed_first,
        "12 runs, and none started at the closing node"
    );
    let text = handle.render();
    let ended = |reason| {
        sample(
            &text,
            "isp_cluster_sessions_ended_total",
            &[("module", name), ("reason", reason)],
        )
    };
    assert_eq!(ended("server_close_error"), Some(1.0), "{text}");
    assert_eq!(ended("ack_refused"), None, "{text}");
}

/// An upgrade refused with a reason phrase that reads like a timeout is an
/// upgrade refused, not a timeout.
#[actix::test]
async fn an_http_reason_that_reads_like_a_timeout_is_an_upgrade_refused() {
    let handle = isp_cluster::infra::install_recorder().unwrap();
    let refusing = ScriptedPeer::start(|mut conn| async move {
        conn.refuse("503 no websocket upgrade within 5s").await;
    })
    .await;
    let name = "reasons-upgrade";
    let (rec, seen) = Recorder::start_new();
    let client = module(name)
        .hosts([refusing.host()])
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    let text = handle.render();
    let outcome = |outcome| {
        sample(
            &text,
            "isp_cluster_connect_attempts_total",
            &[("module", name), ("outcome", outcome)],
        )
    };
    assert_eq!(outcome("upgrade_refused"), Some(1.0), "{text}");
    assert_eq!(outcome("timeout"), None, "{text}");
    client.close().await;
}
