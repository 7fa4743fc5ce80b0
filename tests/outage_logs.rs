//! Logs fit for operators: while no node answers, one ERROR when the outage
//! starts, a WARN summary at most every interval, INFO when it ends; a
//! required module's address changes at INFO, a few in full; a server that
//! floods the session with frames it cannot use costs a few WARN lines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, ModuleInfo, MODULE_SEND_CONFIG_SCHEMA,
};

mod common;
mod peer;
use common::{wait_until, Recorder};
use peer::ScriptedPeer;

/// Every record at INFO or above, with its time, as `LEVEL message`.
struct Capture(Mutex<Vec<(Instant, String)>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push((Instant::now(), line));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Installs [`CAPTURE`] once for every test of this file.
fn capture_logs() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The lines of `module` at `level`, with their times.
fn lines(module: &str, level: &str) -> Vec<(Instant, String)> {
    let tag = format!("[module={module} ");
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.starts_with(level) && l.contains(&tag))
        .cloned()
        .collect()
}

/// What the INFO line that ends an outage says.
const OUTAGE_ENDED: &str = "session with the config-service again after";

/// The lines of `module` at `level` that contain `text`.
fn containing(module: &str, level: &str, text: &str) -> Vec<String> {
    lines(module, level)
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.contains(text))
        .collect()
}

fn info(name: &str) -> ModuleInfo {
    ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("10.0.0.4", "9004"))
}

#[actix::test]
async fn an_outage_is_one_error_a_few_summaries_and_one_info() {
    capture_logs();

    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_host = dead.local_addr().unwrap().to_string();
    drop(dead);
    let summary = Duration::from_millis(300);
    let (rec, seen) = Recorder::start_new();
    let client = ClusterClient::builder(info("outage"), ConfigData::default())
        .hosts([dead_host])
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        // A refused port is retried at this pace (the default is 1 s).
        .down_retry(Duration::from_millis(20))
        .connect_timeout(Duration::from_millis(300))
        .outage_summary_interval(summary)
        .require_module("auth", rec.recipient())
        .start()
        .unwrap();
    let started = Instant::now();
    actix::clock::sleep(Duration::from_millis(1000)).await;
    let attempts = client.status().connect_attempts;
    assert!(attempts >= 10, "only {attempts} attempts");

    // One ERROR for the whole outage, not one per attempt.
    let errors = lines("outage", "ERROR");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].1.contains("no session with the config-service"),
        "{errors:?}"
    );
    assert!(errors[0].1.contains("cannot connect to"), "{errors:?}");
    // Summaries, at most one per interval, each with the count and reason.
    let warns = lines("outage", "WARN");
    let elapsed = started.elapsed();
    let most = (elapsed.as_millis() / summary.as_millis()) as usize;
    assert!(
        !warns.is_empty() && warns.len() <= most,
        "{} in {elapsed:?}: {warns:#?}",
        warns.len()
    );
    for pair in warns.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= summary, "{warns:#?}");
    }
    assert!(warns[0].1.contains("attempts in"), "{warns:?}");
    assert!(warns[0].1.contains("last: cannot connect to"), "{warns:?}");
    // Attempts during the outage say nothing at INFO.
    let connecting = containing("outage", "INFO", "connecting");
    assert_eq!(connecting.len(), 1, "{connecting:#?}");

    // A node comes: one INFO ends the outage.
    let server = ConfigServer::builder().start().await.unwrap();
    client.update_hosts([server.addr().to_string()]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let ended = containing("outage", "INFO", OUTAGE_ENDED);
    assert_eq!(ended.len(), 1, "{ended:#?}");
    assert_eq!(lines("outage", "ERROR").len(), 1);

    // The required module's addresses: the empty list, then one instance.
    assert!(wait_until(Duration::from_secs(5), || !seen.hosts().is_empty()).await);
    let auth = ClusterClient::builder(info("auth"), ConfigData::default())
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen.hosts().len() >= 2).await);
    let addresses = containing("outage", "INFO", "addresses of auth");
    assert!(
        addresses
            .iter()
            .any(|l| l.ends_with("none (no live instance)")),
        "{addresses:#?}"
    );
    assert!(
        addresses.iter().any(|l| l.ends_with("1 [10.0.0.4:9004]")),
        "{addresses:#?}"
    );
    auth.close().await;
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn attempts_that_reach_a_refusing_node_say_nothing_at_info_during_an_outage() {
    capture_logs();
    // A node that answers and refuses every registration, as the surviving
    // nodes of an electing cluster do.
    let server = ConfigServer::builder().start().await.unwrap();
    let refusal = "resolve module id: value for key moduleId not found";
    server.fail_event("electing", MODULE_SEND_CONFIG_SCHEMA, Some(refusal));
    let client = ClusterClient::builder(info("electing"), ConfigData::default())
        .hosts([server.addr().to_string()])
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .start()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || client.status().sessions_failed
            >= 6)
        .await,
        "{:?}",
        client.status()
    );
    // Only the first attempt, before the outage began, is an INFO line;
    // every later one is DEBUG, and the outage's ERROR says why.
    let registering = containing("electing", "INFO", "connected; registering");
    assert_eq!(registering.len(), 1, "{registering:#?}");
    let errors = lines("electing", "ERROR");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].1.contains(refusal), "{errors:?}");

    server.fail_event("electing", MODULE_SEND_CONFIG_SCHEMA, None);
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let ended = containing("electing", "INFO", OUTAGE_ENDED);
    assert_eq!(ended.len(), 1, "{ended:#?}");
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_server_flooding_unknown_events_costs_a_few_warn_lines() {
    capture_logs();
    let peer = ScriptedPeer::start(|mut conn| async move {
        if !conn.first_session().await {
            return;
        }
        for i in 0..1000 {
            conn.send_event(&format!("NOT_AN_ETP_EVENT_{i}"), "{}")
                .await;
        }
        conn.close(1000, "done").await;
        conn.until_closed().await;
    })
    .await;
    let client = ClusterClient::builder(info("flooded"), ConfigData::default())
        .hosts([peer.host()])
        .start()
        .unwrap();
    let ended = || !containing("flooded", "WARN", "before the session ended").is_empty();
    assert!(
        wait_until(Duration::from_secs(10), ended).await,
        "{:#?}",
        lines("flooded", "WARN")
    );
    let unknown = containing("flooded", "WARN", "unknown event");
    assert_eq!(unknown.len(), 10, "the first ten in full: {unknown:#?}");
    let summary = containing("flooded", "WARN", "before the session ended");
    assert_eq!(summary.len(), 1, "{summary:#?}");
    assert!(summary[0].contains("990 more warnings"), "{summary:?}");
    // Every WARN of that session: the ten, the note that further ones are
    // counted, the count at the end, and the session's end.
    let all = lines("flooded", "WARN").len();
    assert!(all <= 14, "{all}: {:#?}", lines("flooded", "WARN"));
    client.close().await;
}

/// A config the receiver rejects at start-up fails every handshake, and
/// every retry brings it again: one ERROR line says so (that no config has
/// been applied yet, not that a last good one stays), the repeats are held
/// back to debug for a minute.
#[actix::test]
async fn a_config_rejected_at_start_is_one_error_line_however_often_it_comes_back() {
    capture_logs();
    let server = ConfigServer::builder()
        .config("picky", serde_json::json!({"limit": 0}))
        .start()
        .await
        .unwrap();
    let mut builder = ClusterClient::builder(
        info("picky"),
        ConfigData::new(
            "1.0.0",
            isp_cluster::RawJson::empty_object(),
            isp_cluster::RawJson::empty_object(),
        ),
    )
    .hosts([server.addr().to_string()])
    .backoff(Duration::from_millis(20), Duration::from_millis(100))
    .remote_config_fn(|_| Err::<(), _>("limit must be positive"));
    let mut required = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        let (recorder, _) = Recorder::start_new();
        builder = builder.require_module(name, recorder.clone().recipient());
        required.push(recorder);
    }
    let client = builder.start().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || client.status().configs_rejected
            >= 5)
        .await
    );
    let attempts = client.status().sessions_started;
    client.close().await;
    server.stop().await;

    // The receiver's rejection, and the supervisor's "no session" that
    // starts the outage: one line each, however many attempts.
    let rejected: Vec<String> = containing("picky", "ERROR", "remote config receiver rejected")
        .into_iter()
        .filter(|l| !l.contains("no session with the config-service"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0].contains("no config has been applied yet"),
        "{}",
        rejected[0]
    );
    assert!(!rejected[0].contains("last good config"), "{}", rejected[0]);
    let errors = lines("picky", "ERROR");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    println!(
        "{attempts} attempts, {} rejections: {} ERROR lines, {} INFO lines",
        client.status().configs_rejected,
        errors.len(),
        lines("picky", "INFO").len()
    );
}

#[actix::test]
async fn a_server_repeating_a_required_modules_addresses_costs_a_few_info_lines() {
    capture_logs();
    let peer = ScriptedPeer::start(|mut conn| async move {
        if !conn.first_session().await {
            return;
        }
        for i in 0..500 {
            let hosts = format!(r#"[{{"ip":"10.1.0.{}","port":"9000"}}]"#, i % 250);
            conn.send_event(&isp_cluster::module_connected_event("billing"), &hosts)
                .await;
        }
        conn.close(1000, "done").await;
        conn.until_closed().await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = ClusterClient::builder(info("repeated"), ConfigData::default())
        .hosts([peer.host()])
        .require_module("billing", rec.recipient())
        .start()
        .unwrap();
    let ended = || !containing("repeated", "INFO", "before the session ended").is_empty();
    assert!(
        wait_until(Duration::from_secs(10), ended).await,
        "{:#?}",
        lines("repeated", "INFO")
    );
    // The updates still reach the receiver: only the log is bounded.
    assert!(seen.hosts().iter().any(|h| !h.hosts.is_empty()));
    // In the first session: the handshake's empty list and the first nine
    // updates in full, the note that further ones are counted, and one
    // count at the end (the client reconnects at once; its second session
    // has lines of its own).
    let first = |text: &str| {
        containing("repeated", "INFO", text)
            .into_iter()
            .filter(|l| l.contains(" session=1 "))
            .collect::<Vec<_>>()
    };
    let shown = first("addresses of billing");
    assert_eq!(shown.len(), 10, "{shown:#?}");
    assert_eq!(first("further ones are counted").len(), 1);
    let summary = first("before the session ended");
    assert_eq!(summary.len(), 1, "{summary:#?}");
    assert!(
        summary[0].contains("491 more address updates of billing"),
        "{summary:?}"
    );
    let all = first("").len();
    assert!(all <= 16, "{all}: {:#?}", first(""));
    client.close().await;
}
