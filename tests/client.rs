//! The cluster client against the embedded config-service, over loopback.

use std::future::Future;
use std::time::{Duration, Instant};

use isp_cluster::server::{ConfigServer, ReplyOrder};
use isp_cluster::{
    AddressConfiguration, ClusterClient, ClusterClientBuilder, ConfigData, ConfigSource,
    ModuleInfo, RawJson, SessionEvent, SessionState,
};
use serde_json::json;

mod common;
use common::{wait_until, Behaviour, Recorder, Stop};

const WAIT: Duration = Duration::from_secs(5);

fn module(name: &str, ip: &str, port: &str) -> ClusterClientBuilder {
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new(ip, port));
    let schema = RawJson::from_value(&json!({"title": "Remote config", "type": "object"})).unwrap();
    let config = RawJson::from_value(&json!({"greeting": "hello"})).unwrap();
    ClusterClient::builder(info, ConfigData::new("1.0.0", schema, config))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

async fn server() -> ConfigServer {
    server_in(ReplyOrder::default()).await
}

/// A server answering the handshake events in `order`.
async fn server_in(order: ReplyOrder) -> ConfigServer {
    common::init_logs();
    ConfigServer::builder()
        .listen("127.0.0.1:0")
        .reply_order(order)
        .start()
        .await
        .expect("embedded server starts")
}

/// Runs a handshake test against a server answering in each order a
/// production node may (answers before the ack, after it, or after the
/// acks of later events); the output names the order that failed.
async fn in_every_order<F, Fut>(test: F)
where
    F: Fn(ReplyOrder) -> Fut,
    Fut: Future<Output = ()>,
{
    for order in ReplyOrder::EVERY {
        println!("--- handshake answers: {order:?}");
        test(order).await;
    }
}

#[actix::test]
async fn full_handshake_delivers_everything_then_healthcheck_turns_ok() {
    in_every_order(full_handshake_delivers_everything_then_healthcheck_turns_ok_in).await;
}

async fn full_handshake_delivers_everything_then_healthcheck_turns_ok_in(order: ReplyOrder) {
    let server = server_in(order).await;
    let host = server.addr().to_string();
    let auth = module("auth", "10.0.0.1", "9001")
        .hosts([host.clone()])
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || server.instances("auth").len() == 1).await);

    let (rec, seen) = Recorder::start_new();
    let gateway = module("gateway", "10.0.0.2", "9002")
        .hosts([host.clone()])
        .remote_config(rec.clone().recipient())
        .routes(rec.clone().recipient())
        .require_module("auth", rec.clone().recipient())
        .require_module("billing", rec.clone().recipient())
        .session_events(rec.clone().recipient())
        .start()
        .unwrap();
    assert!(gateway.healthcheck().is_err(), "not before READY is acked");
    assert!(wait_until(WAIT, || gateway.healthcheck().is_ok()).await);

    // Every receiver was called before READY went out.
    assert_eq!(seen.configs(), [(json!({"greeting": "hello"}), true)]);
    let hosts = seen.hosts();
    assert!(hosts
        .iter()
        .any(|h| h.module == "auth" && h.hosts == ["10.0.0.1:9001"]));
    assert!(hosts
        .iter()
        .any(|h| h.module == "billing" && h.hosts.is_empty()));
    let routes = seen.routes();
    assert!(!routes.is_empty());
    assert!(routes[0].0.iter().any(|b| b.module_name == "auth"));
    assert_eq!(seen.events(), [SessionEvent::Active { host: host.clone() }]);

    // The server sees what the Go client would have sent.
    assert_eq!(server.schema("gateway").unwrap()["title"], "Remote config");
    let declared = server.instances("gateway");
    assert_eq!(declared.len(), 1);
    assert_eq!(declared[0].address.host_port(), "10.0.0.2:9002");
    assert_eq!(declared[0].required_modules.len(), 2);

    let status = gateway.status();
    assert_eq!(status.state, SessionState::Active);
    assert_eq!(status.host.as_deref(), Some(host.as_str()));
    assert_eq!(
        (status.sessions_started, status.sessions_established),
        (1, 1)
    );
    gateway.close().await;
    auth.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_burst_of_config_changes_reaches_a_slow_receiver_in_order_newest_last() {
    let server = server().await;
    let (rec, seen) = Recorder::start_new();
    // A slow receiver: the burst outruns it, so configs wait behind it.
    seen.set(Behaviour {
        delay: Duration::from_millis(20),
        ..Behaviour::default()
    });
    let client = module("orders", "10.0.0.3", "9003")
        .hosts([server.addr().to_string()])
        .remote_config(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    for n in 0..100 {
        server.set_config("orders", json!({ "n": n })).unwrap();
    }
    let newest = |seen: &common::Shared| seen.configs().last().and_then(|(c, _)| c["n"].as_i64());
    assert!(wait_until(WAIT, || newest(&seen) == Some(99)).await);
    // Latest wins: every config is a full snapshot, so the receiver gets
    // them in order and the newest last, never an older one after a newer.
    actix::clock::sleep(Duration::from_millis(100)).await;
    let numbers: Vec<i64> = seen.configs()[1..]
        .iter()
        .map(|(c, initial)| {
            assert!(!initial);
            c["n"].as_i64().unwrap()
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert_eq!(numbers.last(), Some(&99));
    assert!(numbers.len() < 100, "a busy receiver skips stale configs");
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn hosts_of_a_required_module_follow_its_instances() {
    in_every_order(hosts_of_a_required_module_follow_its_instances_in).await;
}

async fn hosts_of_a_required_module_follow_its_instances_in(order: ReplyOrder) {
    let server = server_in(order).await;
    let host = server.addr().to_string();
    let (rec, seen) = Recorder::start_new();
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([host.clone()])
        .require_module("auth", rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(seen.hosts().last().unwrap().hosts, Vec::<String>::new());

    let first = module("auth", "10.0.0.1", "9001")
        .hosts([host.clone()])
        .start()
        .unwrap();
    let second = module("auth", "::1", "9002")
        .hosts([host.clone()])
        .start()
        .unwrap();
    let both = |seen: &common::Shared| {
        let mut hosts = seen
            .hosts()
            .last()
            .map(|h| h.hosts.clone())
            .unwrap_or_default();
        hosts.sort();
        hosts
    };
    assert!(
        wait_until(WAIT, || both(&seen) == ["10.0.0.1:9001", "[::1]:9002"]).await,
        "{:?}",
        seen.hosts()
    );
    second.close().await;
    assert!(
        wait_until(WAIT, || both(&seen) == ["10.0.0.1:9001"]).await,
        "{:?}",
        seen.hosts()
    );
    first.close().await;
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn routes_follow_other_modules_joining_and_leaving() {
    in_every_order(routes_follow_other_modules_joining_and_leaving_in).await;
}

async fn routes_follow_other_modules_joining_and_leaving_in(order: ReplyOrder) {
    let server = server_in(order).await;
    let host = server.addr().to_string();
    let (rec, seen) = Recorder::start_new();
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([host.clone()])
        .routes(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let names = |seen: &common::Shared| {
        let mut names: Vec<String> = seen
            .routes()
            .last()
            .map(|r| r.0.iter().map(|b| b.module_name.clone()).collect())
            .unwrap_or_default();
        names.sort();
        names
    };
    assert!(wait_until(WAIT, || names(&seen) == ["gateway"]).await);
    let other = module("billing", "10.0.0.9", "9009")
        .hosts([host])
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || names(&seen) == ["billing", "gateway"]).await);
    other.close().await;
    assert!(
        wait_until(WAIT, || names(&seen) == ["gateway"]).await,
        "{:?}",
        names(&seen)
    );
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_refusing_ack_fails_the_handshake_with_the_server_text() {
    in_every_order(a_refusing_ack_fails_the_handshake_with_the_server_text_in).await;
}

async fn a_refusing_ack_fails_the_handshake_with_the_server_text_in(order: ReplyOrder) {
    let server = server_in(order).await;
    server.fail_event(
        "gateway",
        "MODULE:SEND_CONFIG_SCHEMA",
        Some("missing variables in initial config: [x]"),
    );
    let (rec, seen) = Recorder::start_new();
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([server.addr().to_string()])
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    let SessionEvent::Inactive { reason, .. } = &seen.events()[0] else {
        panic!("{:?}", seen.events());
    };
    assert_eq!(
        reason,
        "server refused MODULE:SEND_CONFIG_SCHEMA: missing variables in initial config: [x]"
    );
    assert!(client.healthcheck().is_err());
    let error = client.status().last_error.unwrap();
    assert!(error.contains("missing variables"), "{error}");
    // Once the server accepts, the client gets in on its own.
    server.fail_event("gateway", "MODULE:SEND_CONFIG_SCHEMA", None);
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_receiver_that_errs_or_stalls_in_the_handshake_makes_the_session_retry() {
    in_every_order(a_receiver_that_errs_or_stalls_in_the_handshake_makes_the_session_retry_in)
        .await;
}

async fn a_receiver_that_errs_or_stalls_in_the_handshake_makes_the_session_retry_in(
    order: ReplyOrder,
) {
    let server = server_in(order).await;
    let (rec, seen) = Recorder::start_new();
    seen.set(Behaviour {
        reject: Some("bad config".into()),
        ..Behaviour::default()
    });
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([server.addr().to_string()])
        .config_timeout(Duration::from_millis(100))
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient())
        .start()
        .unwrap();
    let inactive = || {
        seen.events()
            .into_iter()
            .filter(|e| matches!(e, SessionEvent::Inactive { .. }))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(WAIT, || !inactive().is_empty()).await);
    assert!(
        matches!(&inactive()[0], SessionEvent::Inactive { reason, .. }
            if reason == "remote config receiver rejected CONFIG:SEND_CONFIG_WHEN_CONNECTED: bad config"),
        "{:?}",
        seen.events()
    );
    // The rejection is announced first, with where the config came from.
    assert_eq!(
        seen.events()[0],
        SessionEvent::ConfigRejected {
            source: ConfigSource::Server,
            reason: "bad config".into()
        }
    );
    seen.set(Behaviour {
        delay: Duration::from_millis(300),
        ..Behaviour::default()
    });
    let before = seen.events().len();
    assert!(wait_until(WAIT, || seen.events().len() > before).await);
    assert!(
        seen.events()[before..].iter().any(|e| matches!(e, SessionEvent::Inactive { reason, .. }
            if reason.contains("remote config receiver timed out on CONFIG:SEND_CONFIG_WHEN_CONNECTED"))),
        "{:?}",
        seen.events()
    );
    assert!(client.healthcheck().is_err());
    seen.set(Behaviour::default());
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert!(client.status().sessions_failed >= 2);
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_stopped_receiver_actor_is_a_clear_error() {
    in_every_order(a_stopped_receiver_actor_is_a_clear_error_in).await;
}

async fn a_stopped_receiver_actor_is_a_clear_error_in(order: ReplyOrder) {
    let server = server_in(order).await;
    let (hosts_rec, _) = Recorder::start_new();
    let recipient = hosts_rec.clone().recipient();
    hosts_rec.send(Stop).await.unwrap();
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([server.addr().to_string()])
        .require_module("auth", recipient)
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || client.status().last_error.is_some()).await,
        "{:?}",
        client.status()
    );
    let error = client.status().last_error.unwrap();
    assert_eq!(
        error,
        "hosts receiver of \"auth\" is stopped (its mailbox is closed); auth_MODULE_CONNECTED not delivered"
    );
    assert!(client.healthcheck().is_err());
    client.close().await;
    server.stop().await;
}

/// Starts a client on two servers and returns which one it is active on.
async fn active_on_one_of(
    a: &ConfigServer,
    b: &ConfigServer,
    builder: ClusterClientBuilder,
    seen: &common::Shared,
) -> (ClusterClient, bool) {
    let client = builder
        .hosts([a.addr().to_string(), b.addr().to_string()])
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let on_a = seen.events()
        == [SessionEvent::Active {
            host: a.addr().to_string(),
        }];
    (client, on_a)
}

#[actix::test]
async fn fails_over_to_the_other_node_when_the_active_one_drops_the_session() {
    let (a, b) = (server().await, server().await);
    let (rec, seen) = Recorder::start_new();
    let builder = module("gateway", "10.0.0.2", "9002")
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient());
    let (client, on_a) = active_on_one_of(&a, &b, builder, &seen).await;
    let (active, other) = if on_a { (&a, &b) } else { (&b, &a) };
    let started = Instant::now();
    active.drop_all_sessions();
    assert!(
        wait_until(WAIT, || seen.active_count() == 2).await,
        "{:?}",
        seen.events()
    );
    let elapsed = started.elapsed();
    println!("failover took {elapsed:?}");
    let events = seen.events();
    assert!(
        matches!(&events[1], SessionEvent::Inactive { reason, .. }
        if reason.starts_with("connection lost")),
        "{events:?}"
    );
    assert_eq!(
        events[2],
        SessionEvent::Active {
            host: other.addr().to_string()
        }
    );
    // At once: no pacing delay (a failing node's would be 0.9 s at least).
    assert!(
        elapsed < Duration::from_millis(250),
        "next host at once: {elapsed:?}"
    );
    assert_eq!(other.instances("gateway").len(), 1);
    client.close().await;
    a.stop().await;
    b.stop().await;
}

#[actix::test]
async fn a_half_open_connection_fails_over_within_ping_interval_plus_timeout() {
    let (a, b) = (server().await, server().await);
    let (rec, seen) = Recorder::start_new();
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_millis(300);
    let builder = module("gateway", "10.0.0.2", "9002")
        .ping(interval, timeout)
        .session_events(rec.recipient());
    let (client, on_a) = active_on_one_of(&a, &b, builder, &seen).await;
    let active = if on_a { &a } else { &b };
    let started = Instant::now();
    active.set_frozen("gateway", true);
    assert!(
        wait_until(WAIT, || seen.active_count() == 2).await,
        "{:?}",
        seen.events()
    );
    let elapsed = started.elapsed();
    println!("half-open failover took {elapsed:?}");
    assert!(
        matches!(&seen.events()[1], SessionEvent::Inactive { reason, .. }
            if reason.starts_with("no pong within 300ms")),
        "{:?}",
        seen.events()
    );
    assert!(
        elapsed <= interval + timeout + Duration::from_millis(400),
        "{elapsed:?}"
    );
    client.close().await;
    a.stop().await;
    b.stop().await;
}

#[actix::test]
async fn close_is_a_normal_closure_for_the_server() {
    let server = server().await;
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    client.close().await;
    assert_eq!(client.status().state, SessionState::Closed);
    assert!(client.healthcheck().is_err());
    assert!(
        wait_until(WAIT, || server
            .closed_sessions()
            .iter()
            .any(|c| c.module == "gateway" && c.code == Some(1000)))
        .await,
        "{:?}",
        server.closed_sessions()
    );
    assert!(wait_until(WAIT, || server.instances("gateway").is_empty()).await);
    // Closed for good: no new session.
    actix::clock::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.session_count("gateway"), 0);
    assert_eq!(client.status().sessions_started, 1);
    server.stop().await;
}

#[actix::test]
async fn with_every_host_down_each_is_tried_once_per_down_retry() {
    common::init_logs();
    // Two ports nobody listens on: every connection is refused.
    let dead: Vec<String> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        })
        .collect();
    let (rec, seen) = Recorder::start_new();
    let down_retry = Duration::from_millis(200);
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts(dead.clone())
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
        .down_retry(down_retry)
        .session_events(rec.recipient())
        .start()
        .unwrap();
    let window = Duration::from_secs(2);
    actix::clock::sleep(window).await;
    let events = seen.timed_events();
    let attempts = events.len();
    // A refused connection costs the node nothing: the other host is tried
    // at once, and the refused one again after down_retry x [1, 1.6]
    // (200 to 320 ms), however long the outage: 6 to 10 attempts per host
    // fit in 2 s; a busy loop would make thousands, the backoff of failing
    // nodes (50 ms growing) about 40.
    let (SessionEvent::Inactive { retry_in, .. }, Some((second, _))) =
        (&events[0].1, events.get(1))
    else {
        panic!("{events:?}");
    };
    assert!(retry_in.is_zero(), "the other host at once: {retry_in:?}");
    assert!(
        *second - events[0].0 < Duration::from_millis(100),
        "{events:?}"
    );
    for (_, event) in &events {
        let SessionEvent::Inactive { host, reason, .. } = event else {
            panic!("{events:?}");
        };
        assert!(
            reason.starts_with(&format!("cannot connect to {host}")),
            "{reason}"
        );
    }
    for host in &dead {
        let times: Vec<Instant> = events
            .iter()
            .filter(|(_, e)| matches!(e, SessionEvent::Inactive { host: h, .. } if h == host))
            .map(|(t, _)| *t)
            .collect();
        assert!((5..=10).contains(&times.len()), "{host}: {times:?}");
        // Each host at most once per down_retry; back within 1.6 of it
        // (plus what a loaded machine adds).
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap + Duration::from_millis(5) >= down_retry, "{times:?}");
            assert!(
                gap <= down_retry.mul_f64(1.6) + Duration::from_millis(150),
                "{times:?}"
            );
        }
    }
    let status = client.status();
    assert!(matches!(
        status.state,
        SessionState::BackingOff { .. } | SessionState::Connecting
    ));
    assert_eq!(status.sessions_established, 0);
    // Refused attempts: no session ever started, so none failed.
    assert!(status.connect_attempts as usize >= attempts);
    assert_eq!((status.sessions_started, status.sessions_failed), (0, 0));
    client.close().await;
}

#[actix::test]
async fn configuration_mistakes_fail_at_build_time() {
    let err = module("gateway", "10.0.0.2", "9002").start().unwrap_err();
    assert_eq!(err.to_string(), "no config-service hosts given");
    let err = module("gateway", "10.0.0.2", "9002")
        .hosts(["localhost"])
        .start()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "config-service host \"localhost\" is not host:port, ws://host:port or wss://host:port"
    );
    let err = module("gateway", "10.0.0.2", "9002")
        .hosts(["http://127.0.0.1:1"])
        .start()
        .unwrap_err();
    assert!(
        matches!(err, isp_cluster::BuildError::InvalidHost(_)),
        "{err}"
    );
    let err = module("", "10.0.0.2", "9002")
        .hosts(["127.0.0.1:1"])
        .start()
        .unwrap_err();
    assert_eq!(err.to_string(), "module name is empty");
}

#[actix::test]
async fn a_stopping_server_is_not_rejoined() {
    let server = server().await;
    let (rec, seen) = Recorder::start_new();
    let client = module("gateway", "10.0.0.2", "9002")
        .hosts([server.addr().to_string()])
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    server.stop().await;
    // The client goes to its next host at once; the stopping server must
    // not take it in again.
    assert!(wait_until(WAIT, || seen.events().len() >= 2).await);
    actix::clock::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.active_count(), 1, "{:?}", seen.events());
    assert!(
        matches!(&seen.events()[1], SessionEvent::Inactive { reason, .. }
            if reason == "server closed the session normally (1000) config server stopping"),
        "{:?}",
        seen.events()
    );
    client.close().await;
}
