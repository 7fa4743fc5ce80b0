//! Delivery that holds for the client, not for one session: one delivery
//! in flight per receiver and latest wins across a failover, the cache
//! holding what was accepted after its session ended or after its delivery
//! timed out, `close()` waiting
//! for that write, rejected configs in the status and its JSON, `ready()`,
//! and closure receivers. Each against the embedded server over loopback.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    ClusterClientBuilder, ConfigSource, ReadyError, ReceiverError, RemoteConfig, RoutesChanged,
    SessionEvent, SessionState,
};
use serde_json::{json, Value};

mod common;
use common::{wait_until, Recorder};

const WAIT: Duration = Duration::from_secs(5);
/// How long the slow receiver takes over the config it is slow on.
const SLOW: Duration = Duration::from_millis(800);

/// A quick module whose config timeout leaves room for [`SLOW`].
fn module() -> ClusterClientBuilder {
    common::quick_module().config_timeout(Duration::from_secs(2))
}

/// An embedded config-service holding `config` for the module.
async fn server_with(config: Value) -> ConfigServer {
    ConfigServer::builder()
        .config("gateway", config)
        .start()
        .await
        .unwrap()
}

/// The module, on `server` alone.
fn module_on(server: &ConfigServer) -> ClusterClientBuilder {
    module().hosts([server.addr().to_string()])
}

/// What the slow receiver went through.
#[derive(Default)]
struct Seen {
    in_flight: usize,
    max_in_flight: usize,
    /// The `v` of each config, in the order the receiver finished them.
    finished: Vec<i64>,
    /// The `v` the receiver is slow on.
    slow_on: Option<i64>,
    /// `v`s being handled now.
    handling: Vec<i64>,
}

/// A receiver that handles configs concurrently if it is sent them so (an
/// actor future per message), so that two deliveries in flight would show.
struct Slow(Arc<Mutex<Seen>>);

impl Actor for Slow {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Slow {
    type Result = ResponseActFuture<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let v = msg.parse::<Value>().unwrap()["v"].as_i64().unwrap_or(-1);
        let delay = {
            let mut seen = self.0.lock().unwrap();
            seen.in_flight += 1;
            seen.max_in_flight = seen.max_in_flight.max(seen.in_flight);
            seen.handling.push(v);
            if seen.slow_on == Some(v) {
                SLOW
            } else {
                Duration::ZERO
            }
        };
        let seen = self.0.clone();
        Box::pin(
            actix::clock::sleep(delay)
                .into_actor(self)
                .map(move |_, _, _| {
                    let mut seen = seen.lock().unwrap();
                    seen.in_flight -= 1;
                    seen.handling.retain(|h| *h != v);
                    seen.finished.push(v);
                    Ok(())
                }),
        )
    }
}

fn slow_receiver(slow_on: i64) -> (Recipient<RemoteConfig>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen {
        slow_on: Some(slow_on),
        ..Seen::default()
    }));
    (Slow(seen.clone()).start().recipient(), seen)
}

/// A file path of its own under the system's temp dir.
fn cache_path(name: &str) -> PathBuf {
    let nanos = std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "isp-cluster-delivery-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("config.json")
}

fn file_json(path: &PathBuf) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[actix::test]
async fn a_busy_receiver_across_a_failover_has_one_delivery_in_flight_and_sees_the_newest_last() {
    let server = server_with(json!({"v": 0})).await;
    let (receiver, seen) = slow_receiver(1);
    let client = module_on(&server).remote_config(receiver).start().unwrap();
    client.ready(WAIT).await.unwrap();
    // Session 1 delivers v1, which the receiver takes its time over; v2
    // arrives behind it; then session 1 dies and session 2 starts with v2.
    server.set_config("gateway", json!({"v": 1})).unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().handling == [1]).await);
    server.set_config("gateway", json!({"v": 2})).unwrap();
    actix::clock::sleep(Duration::from_millis(100)).await;
    server.drop_sessions("gateway");
    assert!(
        wait_until(WAIT, || {
            let seen = seen.lock().unwrap();
            seen.finished.last() == Some(&2) && seen.in_flight == 0
        })
        .await,
        "{:?}",
        seen.lock().unwrap().finished
    );
    // Nothing older follows.
    actix::clock::sleep(Duration::from_millis(200)).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.max_in_flight, 1,
            "two deliveries in flight: {:?}",
            seen.finished
        );
        assert_eq!(seen.finished.last(), Some(&2), "{:?}", seen.finished);
        assert_eq!(seen.finished[..2], [0, 1], "{:?}", seen.finished);
    }
    client.close().await;
    server.stop().await;
}

/// A module with a config cache, registered with `{"v":0}` on disk, whose
/// receiver is now busy applying `{"v":1}` (slow on 1).
async fn applying_v1_with_v0_cached(
    name: &str,
) -> (
    ConfigServer,
    isp_cluster::ClusterClient,
    PathBuf,
    Arc<Mutex<Seen>>,
) {
    let path = cache_path(name);
    let server = server_with(json!({"v": 0})).await;
    let (receiver, seen) = slow_receiver(1);
    let client = module_on(&server)
        .remote_config(receiver)
        .config_cache(&path)
        .start()
        .unwrap();
    client.ready(WAIT).await.unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(json!({"v": 0}))).await);
    server.set_config("gateway", json!({"v": 1})).unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().handling == [1]).await);
    (server, client, path, seen)
}

#[actix::test]
async fn the_cache_holds_a_config_accepted_after_its_session_ended() {
    let (server, client, path, seen) = applying_v1_with_v0_cached("after-end").await;
    // The node goes away while the receiver is applying v1: no session is
    // left to hear the answer.
    server.stop().await;
    assert!(wait_until(WAIT, || seen.lock().unwrap().finished.last() == Some(&1)).await);
    assert!(
        wait_until(WAIT, || file_json(&path) == Some(json!({"v": 1}))).await,
        "the cache holds {:?}, not the accepted v1",
        file_json(&path)
    );
    client.close().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[actix::test]
async fn close_while_the_receiver_accepts_returns_with_that_config_on_disk() {
    let (server, client, path, seen) = applying_v1_with_v0_cached("close").await;
    client.close().await;
    // No waiting here: close() returned, so the accepted config is on disk.
    assert_eq!(seen.lock().unwrap().finished.last(), Some(&1));
    assert_eq!(file_json(&path), Some(json!({"v": 1})));
    assert_eq!(client.status().state, SessionState::Closed);
    server.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[actix::test]
async fn a_config_accepted_after_its_timeout_is_cached_unless_a_newer_one_was_accepted_first() {
    let path = cache_path("late");
    let server = server_with(json!({"v": 0})).await;
    let (receiver, seen) = slow_receiver(1);
    // The receiver takes SLOW over v1, more than its config timeout.
    let client = common::quick_module()
        .config_timeout(Duration::from_millis(300))
        .hosts([server.addr().to_string()])
        .remote_config(receiver)
        .config_cache(&path)
        .start()
        .unwrap();
    client.ready(WAIT).await.unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(json!({"v": 0}))).await);

    // v1 times out, and the receiver applies it afterwards: it runs, so a
    // cold start must restore it.
    server.set_config("gateway", json!({"v": 1})).unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().finished.last() == Some(&1)).await);
    assert!(
        wait_until(WAIT, || file_json(&path) == Some(json!({"v": 1}))).await,
        "the cache holds {:?}, not v1, which the receiver applied late",
        file_json(&path)
    );

    // v3 times out; v4 follows and is accepted at once, before v3's late
    // answer: v4 stays the last good config.
    seen.lock().unwrap().slow_on = Some(3);
    server.set_config("gateway", json!({"v": 3})).unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().handling == [3]).await);
    actix::clock::sleep(Duration::from_millis(400)).await;
    server.set_config("gateway", json!({"v": 4})).unwrap();
    assert!(wait_until(WAIT, || file_json(&path) == Some(json!({"v": 4}))).await);
    assert!(wait_until(WAIT, || seen.lock().unwrap().finished.ends_with(&[4, 3])).await);
    actix::clock::sleep(Duration::from_millis(200)).await;
    assert_eq!(file_json(&path), Some(json!({"v": 4})));
    client.close().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Answers `Err` to configs whose `port` is not positive.
fn checking_receiver() -> Recipient<RemoteConfig> {
    struct Check;
    impl Actor for Check {
        type Context = Context<Self>;
    }
    impl Handler<RemoteConfig> for Check {
        type Result = Result<(), ReceiverError>;
        fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
            let config: Value = msg.parse()?;
            match config["port"].as_i64() {
                Some(p) if p > 0 => Ok(()),
                _ => Err("port must be positive".into()),
            }
        }
    }
    Check.start().recipient()
}

#[actix::test]
async fn a_rejected_config_is_counted_in_the_status_and_shown_in_its_json() {
    let server = server_with(json!({"port": 1})).await;
    let (events, seen) = Recorder::start_new();
    let client = module_on(&server)
        .remote_config(checking_receiver())
        .session_events(events.recipient())
        .start()
        .unwrap();
    client.ready(WAIT).await.unwrap();
    let status = client.status();
    assert_eq!(
        (status.configs_rejected, status.newest_config_rejected),
        (0, false)
    );
    server.set_config("gateway", json!({"port": -1})).unwrap();
    assert!(wait_until(WAIT, || client.status().configs_rejected == 1).await);
    // The module runs on its last good config: healthy, and says so.
    assert!(client.healthcheck().is_ok());
    let status = client.status();
    assert!(status.newest_config_rejected);
    let rejection = status.last_rejection.clone().unwrap();
    assert_eq!(rejection.source, ConfigSource::Server);
    assert_eq!(rejection.reason, "port must be positive");
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["state"], "active");
    assert_eq!(json["configsRejected"], 1);
    assert_eq!(json["newestConfigRejected"], true);
    assert_eq!(json["lastRejection"]["source"], "server");
    assert_eq!(json["lastRejection"]["reason"], "port must be positive");
    assert!(json["lastRejection"]["at"].as_str().unwrap().ends_with('Z'));
    assert!(seen.events().contains(&SessionEvent::ConfigRejected {
        source: ConfigSource::Server,
        reason: "port must be positive".into()
    }));
    // A good config again: still counted, no longer the newest.
    server.set_config("gateway", json!({"port": 2})).unwrap();
    assert!(wait_until(WAIT, || !client.status().newest_config_rejected).await);
    assert_eq!(client.status().configs_rejected, 1);
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn ready_resolves_after_the_first_config_and_fails_once_closed() {
    let server = server_with(json!({"v": 7})).await;
    let (rec, seen) = Recorder::start_new();
    let client = module_on(&server)
        .remote_config(rec.recipient())
        .start()
        .unwrap();
    client.ready(WAIT).await.unwrap();
    assert_eq!(seen.configs(), [(json!({"v": 7}), true)]);
    assert!(client.healthcheck().is_ok());
    client.ready(WAIT).await.unwrap();
    client.close().await;
    let error = client.ready(WAIT).await.unwrap_err();
    assert!(matches!(error, ReadyError::Closed { .. }), "{error:?}");
    server.stop().await;

    // Closed while waiting: no node answers, close() ends the wait.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let client = module().hosts([host]).start().unwrap();
    let waiting = {
        let client = client.clone();
        actix::spawn(async move { client.ready(WAIT).await })
    };
    actix::clock::sleep(Duration::from_millis(100)).await;
    client.close().await;
    let error = waiting.await.unwrap().unwrap_err();
    assert!(matches!(error, ReadyError::Closed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the client was closed before the module was ready"
    );
}

#[actix::test]
async fn ready_times_out_naming_what_the_client_is_doing() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let client = module().hosts([host.clone()]).start().unwrap();
    let error = client.ready(Duration::from_millis(300)).await.unwrap_err();
    let ReadyError::TimedOut { after, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*after, Duration::from_millis(300));
    let text = error.to_string();
    assert!(
        text.starts_with("the module was not ready within 300 ms: "),
        "{text}"
    );
    assert!(text.contains(&host), "{text}");
    assert!(!text.contains("BackingOff {"), "a Debug dump: {text}");
    client.close().await;
}

#[actix::test]
async fn closure_receivers_get_the_config_and_the_routes() {
    let server = server_with(json!({"port": 1})).await;
    let configs = Arc::new(Mutex::new(Vec::new()));
    let routes = Arc::new(Mutex::new(0usize));
    let client = {
        let configs = configs.clone();
        let routes = routes.clone();
        module_on(&server)
            .remote_config_fn(move |config: &RemoteConfig| {
                let value: Value = config.parse()?;
                if value["port"].as_i64().unwrap_or(0) <= 0 {
                    return Err("port must be positive".into());
                }
                configs.lock().unwrap().push(value);
                Ok::<(), ReceiverError>(())
            })
            .routes_fn(move |table: &RoutesChanged| {
                *routes.lock().unwrap() = table.0.len();
                Ok::<(), &str>(())
            })
            .start()
            .unwrap()
    };
    client.ready(WAIT).await.unwrap();
    assert_eq!(*configs.lock().unwrap(), [json!({"port": 1})]);
    // The module sees itself in the routes after its READY.
    assert!(wait_until(WAIT, || *routes.lock().unwrap() >= 1).await);
    server.set_config("gateway", json!({"port": 0})).unwrap();
    assert!(wait_until(WAIT, || client.status().configs_rejected == 1).await);
    server.set_config("gateway", json!({"port": 3})).unwrap();
    assert!(wait_until(WAIT, || configs.lock().unwrap().len() == 2).await);
    assert_eq!(configs.lock().unwrap()[1], json!({"port": 3}));
    client.close().await;
    server.stop().await;
}
