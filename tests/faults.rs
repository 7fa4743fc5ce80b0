//! The fault matrix: each row a scripted fault over real loopback sockets and
//! the outcome the client must show.

use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_http::ws;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    ClusterClient, ClusterClientBuilder, SessionEvent, SessionState, MODULE_READY,
    MODULE_SEND_CONFIG_SCHEMA, MODULE_SEND_REQUIREMENTS,
};
use serde_json::json;

mod common;
mod peer;
use bytes::Bytes;
use common::{quick_module, wait_until, Recorder, Stop};
use peer::{Conn, Ending, FreezingProxy, ScriptedPeer};

const WAIT: Duration = Duration::from_secs(5);
const ACK_TIMEOUT: Duration = common::QUICK_ACK_TIMEOUT;

/// A module with short timeouts (see `common::quick_module`).
fn module() -> ClusterClientBuilder {
    common::quick_module()
}

/// What the peers noticed, for the test to assert on (a panic inside a peer
/// task would not fail the test).
#[derive(Clone, Default)]
struct Notes(Arc<Mutex<Vec<String>>>);

impl Notes {
    fn add(&self, note: impl Into<String>) {
        self.0.lock().unwrap().push(note.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, note: &str) -> bool {
        self.all().iter().any(|n| n == note)
    }
}

/// A peer whose script gets a handle on the notes the test reads.
async fn noting_peer<F, Fut>(script: F) -> (ScriptedPeer, Notes)
where
    F: Fn(Conn, Notes) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let notes = Notes::default();
    let theirs = notes.clone();
    let peer = ScriptedPeer::start(move |conn| script(conn, theirs.clone())).await;
    (peer, notes)
}

/// Two peers sharing one script; `n` counts connections over both, so the
/// first connection (to whichever host the client picked) can be the faulty
/// one and the next one (to the other host) the good one.
async fn two_peers<F, Fut>(script: F) -> (ScriptedPeer, ScriptedPeer)
where
    F: Fn(Conn, usize) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let counter = Arc::new(AtomicUsize::new(0));
    let script = Rc::new(script);
    let (c1, s1) = (counter.clone(), script.clone());
    let a = ScriptedPeer::start(move |conn| s1(conn, c1.fetch_add(1, Ordering::SeqCst))).await;
    let b =
        ScriptedPeer::start(move |conn| script(conn, counter.fetch_add(1, Ordering::SeqCst))).await;
    (a, b)
}

/// A well-behaved node: handshake, then serve pings until the client leaves.
async fn good(mut conn: Conn, config: &str) {
    conn.upgrade().await;
    conn.handshake(config).await;
    conn.until_closed().await;
}

/// Waits until the client became active `n` times in all.
async fn until_active(seen: &common::Shared, n: usize) {
    assert!(
        wait_until(WAIT, || seen.active_count() == n).await,
        "{:?}",
        seen.events()
    );
}

/// Starts a client from `builder` with a recorder for its session events.
fn watched(builder: ClusterClientBuilder) -> (ClusterClient, common::Shared) {
    let (rec, seen) = Recorder::start_new();
    let client = builder.session_events(rec.recipient()).start().unwrap();
    (client, seen)
}

fn inactive_reason(event: &SessionEvent) -> &str {
    match event {
        SessionEvent::Inactive { reason, .. } => reason,
        other => panic!("not inactive: {other:?}"),
    }
}

#[actix::test]
async fn node_killed_mid_session_fails_over_at_once() {
    let (a, b) = two_peers(|mut conn, n| async move {
        if n == 0 {
            conn.upgrade().await;
            conn.handshake("{}").await;
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            conn.reset();
        } else {
            good(conn, "{}").await;
        }
    })
    .await;
    let (client, seen) = watched(module().hosts([a.host(), b.host()]));
    until_active(&seen, 2).await;
    let events = seen.timed_events();
    let SessionEvent::Active { host: first } = &events[0].1 else {
        panic!()
    };
    let SessionEvent::Inactive {
        retry_in,
        reason,
        host,
    } = &events[1].1
    else {
        panic!()
    };
    assert_eq!(host, first);
    assert!(reason.starts_with("connection lost"), "{reason}");
    assert_eq!(*retry_in, Duration::ZERO, "next host at once");
    let SessionEvent::Active { host: second } = &events[2].1 else {
        panic!()
    };
    assert_ne!(first, second);
    let failover = events[2].0 - events[1].0;
    println!("failover after RST: {failover:?}");
    assert!(failover < Duration::from_millis(250), "{failover:?}");
    client.close().await;
}

#[actix::test]
async fn node_killed_mid_handshake_leaves_nothing_behind() {
    let notes = Notes::default();
    let n2 = notes.clone();
    let (a, b) = two_peers(move |mut conn, n| {
        let notes = n2.clone();
        async move {
            conn.upgrade().await;
            if n == 0 {
                conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
                conn.send_event("CONFIG:SEND_CONFIG_WHEN_CONNECTED", r#"{"from":"first"}"#)
                    .await;
                conn.reset();
            } else {
                let [schema, requirements, ready] = conn.handshake(r#"{"from":"second"}"#).await;
                notes.add(format!(
                    "ack ids {} {} {}",
                    schema.ack_id, requirements.ack_id, ready.ack_id
                ));
                conn.until_closed().await;
            }
        }
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([a.host(), b.host()])
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || client.healthcheck().is_ok()).await,
        "{:?}",
        seen.events()
    );
    // The second session started from scratch: schema, requirements and
    // READY again, with ack ids from 1.
    assert_eq!(notes.all(), ["ack ids 1 2 3"]);
    let events = seen.events();
    assert!(
        inactive_reason(&events[0]).starts_with("connection lost"),
        "{events:?}"
    );
    assert!(matches!(events[1], SessionEvent::Active { .. }));
    assert_eq!(events.len(), 2);
    // The last config delivered is the one of the session that is active.
    assert_eq!(seen.configs().last().unwrap().0, json!({"from": "second"}));
    let status = client.status();
    assert_eq!(
        (status.sessions_started, status.sessions_established),
        (2, 1)
    );
    client.close().await;
}

#[actix::test]
async fn frozen_connection_after_ready_fails_over_within_ping_interval_plus_timeout() {
    let a = ConfigServer::builder().start().await.unwrap();
    let b = ConfigServer::builder().start().await.unwrap();
    let proxy = FreezingProxy::start(a.addr()).await;
    let (client, seen) = watched(module().hosts([proxy.host()]));
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    // The current host stays listed, so the session stays; b comes next.
    client
        .update_hosts([proxy.host(), b.addr().to_string()])
        .unwrap();
    let frozen_at = Instant::now();
    proxy.freeze();
    until_active(&seen, 2).await;
    let elapsed = frozen_at.elapsed();
    let events = seen.events();
    assert_eq!(
        inactive_reason(&events[1]),
        "no pong within 200ms: connection lost"
    );
    assert_eq!(
        events[2],
        SessionEvent::Active {
            host: b.addr().to_string()
        }
    );
    println!("half-open detected and failed over in {elapsed:?}");
    // ping interval + pong timeout = 400 ms, plus the new handshake.
    assert!(elapsed < Duration::from_millis(800), "{elapsed:?}");
    client.close().await;
    a.stop().await;
    b.stop().await;
}

#[actix::test]
async fn upgrade_that_never_completes_is_bounded_by_the_connect_timeout() {
    let silent = ScriptedPeer::start(|conn| conn.never_upgrade()).await;
    let (rec, seen) = Recorder::start_new();
    let started = Instant::now();
    let client = module()
        .hosts([silent.host()])
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    let elapsed = started.elapsed();
    assert_eq!(
        inactive_reason(&seen.events()[0]),
        format!(
            "cannot connect to {}: no websocket upgrade within 300ms",
            silent.host()
        )
    );
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(800));
    client.close().await;
}

#[actix::test]
async fn upgrade_answered_with_http_404_or_500_names_the_status_and_moves_on() {
    for status in ["404 Not Found", "500 Internal Server Error"] {
        let refusing = ScriptedPeer::start(move |mut conn| async move {
            conn.refuse(status).await;
        })
        .await;
        let good_peer = ScriptedPeer::start(|conn| good(conn, "{}")).await;
        let (rec, seen) = Recorder::start_new();
        let client = module()
            .hosts([refusing.host(), good_peer.host()])
            .session_events(rec.recipient())
            .start()
            .unwrap();
        assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
        assert_eq!(
            client.status().host.as_deref(),
            Some(good_peer.host().as_str())
        );
        if refusing.connections() > 0 {
            let reason = inactive_reason(&seen.events()[0]).to_owned();
            assert!(reason.starts_with(&format!("cannot connect to {}", refusing.host())));
            assert!(
                reason.ends_with(&format!("websocket upgrade refused with HTTP {status}")),
                "{reason}"
            );
        }
        client.close().await;
    }
}

#[actix::test]
async fn server_closing_right_after_the_upgrade_is_noticed_at_once() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.close(1008, "module name refused").await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let started = Instant::now();
    let client = module()
        .hosts([peer.host()])
        .ack_timeout(Duration::from_secs(3))
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    let noticed = started.elapsed();
    let event = seen.events()[0].clone();
    assert_eq!(
        inactive_reason(&event),
        "server closed the session with 1008: module name refused (while awaiting the ack of MODULE:SEND_CONFIG_SCHEMA, MODULE:SEND_REQUIREMENTS)"
    );
    assert!(
        noticed < Duration::from_millis(500),
        "not an ack timeout: {noticed:?}"
    );
    let SessionEvent::Inactive { retry_in, .. } = event else {
        panic!()
    };
    assert!(retry_in > Duration::ZERO, "backoff after a failed attempt");
    client.close().await;
}

#[actix::test]
async fn a_refused_node_costs_no_time_and_a_failing_one_is_retried_at_its_pace() {
    // One node down (its connections are refused) and one that accepts the
    // upgrade and closes at once (a live node that fails).
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let failing = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.close(1011, "electing").await;
    })
    .await;
    let initial = Duration::from_millis(300);
    let (client, seen) = watched(
        module()
            .hosts([dead.clone(), failing.host()])
            .backoff(initial, Duration::from_secs(10))
            .down_retry(Duration::from_secs(5)),
    );
    actix::clock::sleep(Duration::from_millis(1600)).await;
    let events = seen.timed_events();
    let mut failures = 0;
    let mut dead_attempts = 0;
    let mut streak_start = None;
    let slack = Duration::from_millis(10);
    for (i, (at, event)) in events.iter().enumerate() {
        let SessionEvent::Inactive { host, retry_in, .. } = event else {
            panic!("{events:?}");
        };
        if *host == dead {
            // Refused: never a round of refusals (5 s): the failing node
            // next, at once or when its own pacing allows (the start is
            // random: the failing node may have failed just before).
            dead_attempts += 1;
            assert!(*retry_in <= initial.mul_f64(1.75) + slack, "{events:?}");
            if retry_in.is_zero() {
                if let Some((next, _)) = events.get(i + 1) {
                    assert!(*next - *at < Duration::from_millis(100), "{events:?}");
                }
            }
            continue;
        }
        let start = *streak_start.get_or_insert(*at);
        if retry_in.is_zero() {
            // One node failed: the node not yet tried in this streak is
            // tried at once (only the first failure can be followed so).
            assert_eq!(failures, 0, "{events:?}");
            if let Some((_, SessionEvent::Inactive { host: next, .. })) = events.get(i + 1) {
                assert_eq!(*next, dead, "{events:?}");
            }
            failures += 1;
            continue;
        }
        // Reached and failed: d = max(300 ms, a quarter of the streak's
        // age), times [0.75, 1.75] for the first of the streak and
        // [0.96, 1.04] after it.
        let d = initial.max((*at - start) / 4);
        let (lo, hi) = if failures == 0 {
            (0.75, 1.75)
        } else {
            (0.96, 1.04)
        };
        assert!(
            *retry_in + slack >= d.mul_f64(lo) && *retry_in <= d.mul_f64(hi) + slack,
            "failure {failures}: {retry_in:?} against d = {d:?}"
        );
        failures += 1;
    }
    // 6 attempts at the failing node fit in 1.6 s at the soonest; a busy loop would
    // make hundreds.
    println!(
        "{failures} failures at the live node, {} events",
        events.len()
    );
    assert!((3..=7).contains(&failures), "{failures}: {events:?}");
    // The refused node is paced on its own (down_retry 5 s): once at most.
    assert!(dead_attempts <= 1, "{events:?}");
    client.close().await;
}

#[actix::test]
async fn missing_or_late_ack_fails_the_step_naming_the_event() {
    let (peer, notes) = noting_peer(|mut conn, notes| {
        async move {
            conn.upgrade().await;
            if conn.index == 0 {
                let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
                let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
                conn.ack(&requirements, "ok").await;
                actix_rt::time::sleep(ACK_TIMEOUT + Duration::from_millis(100)).await;
                conn.ack(&schema, "ok").await; // too late
                notes.add("late ack sent");
                conn.until_closed().await;
            } else {
                conn.handshake("{}").await;
                conn.until_closed().await;
            }
        }
    })
    .await;
    let (client, seen) = watched(module().hosts([peer.host()]));
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    assert_eq!(
        inactive_reason(&seen.events()[0]),
        "no ack for MODULE:SEND_CONFIG_SCHEMA within 300ms"
    );
    assert!(wait_until(WAIT, || notes.has("late ack sent")).await);
    assert_eq!(seen.active_count(), 1);
    client.close().await;
}

#[actix::test]
async fn ack_text_other_than_ok_fails_the_step_with_the_server_text() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
        conn.ack(&schema, "ok").await;
        let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
        conn.ack(&requirements, "ok").await;
        let ready = conn.expect(MODULE_READY).await;
        conn.ack(&ready, "invalid declaration: empty address").await;
        conn.until_closed().await;
    })
    .await;
    let (client, seen) = watched(module().hosts([peer.host()]));
    assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
    assert_eq!(
        inactive_reason(&seen.events()[0]),
        "server refused MODULE:READY: invalid declaration: empty address"
    );
    assert!(client.healthcheck().is_err());
    client.close().await;
}

#[actix::test]
async fn malformed_frames_unknown_events_and_stray_acks_are_logged_and_survived() {
    let (peer, notes) = noting_peer(|mut conn, notes| {
        async move {
            conn.upgrade().await;
            conn.send_text("no delimiter at all").await;
            conn.send_text("CONFIG:SEND_CONFIG_CHANGED||x||{}").await;
            conn.send_text("CONFIG:SEND_CONFIG_CHANGED||99999999999999999999||{}")
                .await;
            conn.send_text("SOMETHING:NEW||0||{}").await;
            conn.send_text("SOMETHING:NEW||7||{}").await;
            conn.send_text("__ack_MODULE:READY||42||ok").await;
            let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
            let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
            // The client acks an unknown event that asked for one.
            let ack = conn.recv_event().await.unwrap();
            notes.add(format!(
                "{}||{}||{}",
                ack.name,
                ack.ack_id,
                String::from_utf8_lossy(&ack.data)
            ));
            conn.send_event("CONFIG:SEND_CONFIG_WHEN_CONNECTED", r#"{"n":1}"#)
                .await;
            conn.ack(&schema, "ok").await;
            conn.ack(&requirements, "ok").await;
            let ready = conn.expect(MODULE_READY).await;
            conn.ack(&ready, "ok").await;
            conn.send_text("garbage||after||ready").await;
            conn.send_event("CONFIG:SEND_CONFIG_CHANGED", r#"{"n":2}"#)
                .await;
            conn.until_closed().await;
        }
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([peer.host()])
        .remote_config(rec.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || seen.configs().len() == 2).await,
        "{:?}",
        client.status()
    );
    assert!(client.healthcheck().is_ok());
    assert_eq!(
        seen.configs()
            .iter()
            .map(|c| c.0.clone())
            .collect::<Vec<_>>(),
        [json!({"n":1}), json!({"n":2})]
    );
    assert_eq!(
        notes.all(),
        ["__ack_SOMETHING:NEW||7||unknown event SOMETHING:NEW"]
    );
    assert_eq!(client.status().sessions_started, 1);
    client.close().await;
}

#[actix::test]
async fn binary_and_fragmented_messages_are_parsed_as_text() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
        conn.send(ws::Message::Binary(
            r#"CONFIG:SEND_CONFIG_WHEN_CONNECTED||0||{"n":1}"#.into(),
        ))
        .await;
        conn.ack(&schema, "ok").await;
        let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
        conn.send_fragmented("CONFIG:SEND_ROUTES_WHEN_CONNECTED||0||[]", 3)
            .await;
        conn.send(ws::Message::Binary(
            format!(
                "__ack_MODULE:SEND_REQUIREMENTS||{}||ok",
                requirements.ack_id
            )
            .into(),
        ))
        .await;
        let ready = conn.expect(MODULE_READY).await;
        conn.ack(&ready, "ok").await;
        let big = format!(
            r#"CONFIG:SEND_CONFIG_CHANGED||0||{{"n":2,"pad":"{}"}}"#,
            "x".repeat(200_000)
        );
        conn.send_fragmented(&big, 7).await;
        conn.until_closed().await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([peer.host()])
        .remote_config(rec.clone().recipient())
        .routes(rec.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || seen.configs().len() == 2).await,
        "{:?}",
        client.status()
    );
    assert!(client.healthcheck().is_ok());
    assert_eq!(seen.configs()[0].0, json!({"n":1}));
    assert_eq!(seen.configs()[1].0["n"], 2);
    assert_eq!(seen.configs()[1].0["pad"].as_str().unwrap().len(), 200_000);
    assert_eq!(seen.routes().len(), 1);
    client.close().await;
}

#[actix::test]
async fn message_over_the_read_limit_ends_the_session_and_keeps_the_last_good_config() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        match conn.index {
            0 => {
                conn.handshake(r#"{"a":1}"#).await;
                let huge = format!("CONFIG:SEND_CONFIG_CHANGED||0||\"{}\"", "x".repeat(100_000));
                conn.send_text(&huge).await;
            }
            1 => {
                conn.handshake(r#"{"a":2}"#).await;
                let huge = format!("CONFIG:SEND_CONFIG_CHANGED||0||\"{}\"", "y".repeat(100_000));
                conn.send_fragmented(&huge, 4).await;
            }
            _ => {
                conn.handshake(r#"{"a":3}"#).await;
            }
        }
        conn.until_closed().await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([peer.host()])
        .read_limit(64 * 1024)
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient())
        .start()
        .unwrap();
    until_active(&seen, 3).await;
    let events = seen.events();
    assert_eq!(
        inactive_reason(&events[1]),
        "message over the read limit of 65536 bytes"
    );
    assert_eq!(
        inactive_reason(&events[3]),
        "fragmented message over the read limit of 65536 bytes"
    );
    let configs: Vec<_> = seen.configs().into_iter().map(|c| c.0).collect();
    assert_eq!(configs, [json!({"a":1}), json!({"a":2}), json!({"a":3})]);
    client.close().await;
}

#[actix::test]
async fn invalid_config_json_in_the_handshake_fails_the_session_without_calling_the_receiver() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        let config = if conn.index == 0 {
            "{\"password\":\"hunter2\""
        } else {
            r#"{"ok":true}"#
        };
        conn.handshake(config).await;
        conn.until_closed().await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([peer.host()])
        .remote_config(rec.clone().recipient())
        .session_events(rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let reason = inactive_reason(&seen.events()[0]).to_owned();
    assert!(
        reason.starts_with("CONFIG:SEND_CONFIG_WHEN_CONNECTED: config is not valid json"),
        "{reason}"
    );
    assert!(reason.ends_with("21 bytes not delivered"), "{reason}");
    assert!(!reason.contains("hunter2"));
    assert_eq!(seen.configs(), [(json!({"ok": true}), true)]);
    client.close().await;
}

#[actix::test]
async fn invalid_json_after_ready_is_not_delivered_and_the_last_good_config_stays() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.handshake(r#"{"a":1}"#).await;
        conn.send_event("CONFIG:SEND_CONFIG_CHANGED", "{not json")
            .await;
        conn.send_event("CONFIG:SEND_ROUTES_CHANGED", "[{").await;
        conn.send_event("auth_MODULE_CONNECTED", "nope").await;
        conn.send_event("CONFIG:SEND_ROUTES_CHANGED", "[]").await;
        conn.send_event("auth_MODULE_CONNECTED", r#"[{"ip":"10.9.9.9","port":"1"}]"#)
            .await;
        conn.send_event("CONFIG:SEND_CONFIG_CHANGED", r#"{"a":2}"#)
            .await;
        conn.until_closed().await;
    })
    .await;
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([peer.host()])
        .remote_config(rec.clone().recipient())
        .routes(rec.clone().recipient())
        .require_module("auth", rec.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || seen.configs().len() == 2).await);
    let configs: Vec<_> = seen.configs().into_iter().map(|c| c.0).collect();
    assert_eq!(configs, [json!({"a":1}), json!({"a":2})]);
    assert_eq!(seen.routes().len(), 2, "initial and the valid change only");
    let hosts: Vec<_> = seen.hosts().into_iter().map(|h| h.hosts).collect();
    assert_eq!(hosts, [vec![], vec!["10.9.9.9:1".to_owned()]]);
    assert!(client.healthcheck().is_ok());
    assert_eq!(client.status().sessions_started, 1);
    client.close().await;
}

#[actix::test]
async fn close_with_a_code_other_than_1000_moves_to_the_next_host() {
    let (a, b) = two_peers(|mut conn, n| async move {
        conn.upgrade().await;
        conn.handshake("{}").await;
        if n == 0 {
            conn.close(1011, "internal error").await;
        } else {
            conn.until_closed().await;
        }
    })
    .await;
    let (client, seen) = watched(module().hosts([a.host(), b.host()]));
    until_active(&seen, 2).await;
    let events = seen.events();
    assert_eq!(
        inactive_reason(&events[1]),
        "server closed the session with 1011: internal error"
    );
    let (SessionEvent::Active { host: first }, SessionEvent::Active { host: second }) =
        (&events[0], &events[2])
    else {
        panic!("{events:?}")
    };
    assert_ne!(first, second);
    client.close().await;
}

#[actix::test]
async fn receiver_stopped_after_ready_is_an_error_not_a_panic() {
    let server = ConfigServer::builder().start().await.unwrap();
    let (rec, seen) = Recorder::start_new();
    let client = module()
        .hosts([server.addr().to_string()])
        .remote_config(rec.clone().recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    rec.send(Stop).await.unwrap();
    server
        .set_config("gateway", json!({"after": "stop"}))
        .unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert!(client.healthcheck().is_ok(), "the session goes on");
    assert_eq!(seen.configs().len(), 1);
    assert_eq!(client.status().sessions_started, 1);
    client.close().await;
    server.stop().await;
}

/// Runs a client in its own actix System against `host`, stops the System
/// once `ready` holds (or after `after`), and reports whether the thread
/// ended cleanly within 5 s.
fn stop_system_during(host: String, after: Duration, state: fn(&SessionState) -> bool) -> bool {
    let thread = std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let (rec, _) = Recorder::start_new();
            let client = module()
                .hosts([host])
                .remote_config(rec.recipient())
                .start()
                .unwrap();
            let reached = wait_until(WAIT, || state(&client.status().state)).await;
            actix_rt::time::sleep(after).await;
            actix::System::current().stop();
            reached
        })
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !thread.is_finished() {
        assert!(Instant::now() < deadline, "the System's thread hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    thread.join().expect("no panic when the System stops")
}

#[actix::test]
async fn stopping_the_actix_system_in_every_handshake_state_neither_panics_nor_hangs() {
    // Connecting: the upgrade never completes.
    let connecting = ScriptedPeer::start(|conn| conn.never_upgrade()).await;
    // Registering: acks never come.
    let registering = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        conn.until_closed().await;
    })
    .await;
    // Awaiting the initial state: acks come, the config never does.
    let awaiting = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
        conn.ack(&schema, "ok").await;
        let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
        conn.ack(&requirements, "ok").await;
        conn.until_closed().await;
    })
    .await;
    // Declaring: READY is never acked.
    let declaring = ScriptedPeer::start(|mut conn| async move {
        conn.upgrade().await;
        let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
        conn.ack(&schema, "ok").await;
        let requirements = conn.expect(MODULE_SEND_REQUIREMENTS).await;
        conn.ack(&requirements, "ok").await;
        conn.expect(MODULE_READY).await;
        conn.until_closed().await;
    })
    .await;
    let active = ScriptedPeer::start(|conn| good(conn, "{}")).await;
    type Reached = fn(&SessionState) -> bool;
    let cases: [(&ScriptedPeer, Reached); 5] = [
        (&connecting, |s| *s == SessionState::Connecting),
        (&registering, |s| *s == SessionState::Handshaking),
        (&awaiting, |s| *s == SessionState::Handshaking),
        (&declaring, |s| *s == SessionState::Handshaking),
        (&active, |s| *s == SessionState::Active),
    ];
    for (peer, state) in cases {
        let host = peer.host();
        // The peers live on this test's System; the client's System runs in
        // its own thread, so block this one in a blocking task.
        let ended = actix_rt::task::spawn_blocking(move || {
            stop_system_during(host, Duration::from_millis(100), state)
        })
        .await
        .unwrap();
        assert!(ended, "state reached before the stop");
        assert!(peer.connections() >= 1);
    }
}

#[actix::test]
async fn legacy_error_events_fail_the_handshake_with_their_text() {
    for (event, text) in [
        ("ERROR_CONNECTION", "module is not registered"),
        ("ERROR_CONFIG", "config not found"),
    ] {
        let peer = ScriptedPeer::start(move |mut conn| async move {
            conn.upgrade().await;
            let schema = conn.expect(MODULE_SEND_CONFIG_SCHEMA).await;
            conn.send_event(event, text).await;
            conn.ack(&schema, "ok").await;
            conn.until_closed().await;
        })
        .await;
        let (rec, seen) = Recorder::start_new();
        let client = module()
            .hosts([peer.host()])
            .ack_timeout(Duration::from_secs(3))
            .session_events(rec.recipient())
            .start()
            .unwrap();
        assert!(wait_until(WAIT, || !seen.events().is_empty()).await);
        assert_eq!(
            inactive_reason(&seen.events()[0]),
            format!("server sent {event}: {text}")
        );
        client.close().await;
    }
}

/// How long a hostile peer floods without reading, at most.
const ACK_FLOOD: Duration = Duration::from_secs(4);

/// How many events the ack flood sends: their acks (about 450 bytes each)
/// are several times the bound plus what the kernel buffers hold, and a
/// peer that starts reading right after them may still catch the close
/// frame within the session's grace period.
const ACK_FLOOD_EVENTS: u64 = 100_000;

fn inactive_reasons(events: &[isp_cluster::SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            isp_cluster::SessionEvent::Inactive { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Events that ask for an ack, with names the client does not know, as fast
/// as the socket takes them, and nothing read: the error acks pile up until
/// the session ends with 1008 "peer is not reading".
#[actix::test]
async fn unanswered_error_acks_end_the_session_with_1008() {
    let (endings_tx, endings_rx) = std::sync::mpsc::channel::<Ending>();
    let peer = ScriptedPeer::start(move |mut conn| {
        let endings = endings_tx.clone();
        async move {
            if !conn.first_session().await {
                return;
            }
            // A name of 4 KiB: the ack must not repeat it whole.
            let name = format!("UNKNOWN:{}", "n".repeat(4096));
            let short = format!("UNKNOWN:{}", "s".repeat(200));
            let until = Instant::now() + ACK_FLOOD;
            let mut id = 1u64;
            while Instant::now() < until && id < ACK_FLOOD_EVENTS {
                let name = if id.is_multiple_of(64) { &name } else { &short };
                let frame = format!("{name}||{id}||{{}}");
                let timed = actix_rt::time::timeout(
                    Duration::from_millis(50),
                    conn.send_buffered(ws::Message::Text(frame.into())),
                )
                .await;
                if timed.is_ok() {
                    id += 1;
                }
            }
            println!("ack flood: the peer sent {id} events");
            let (ending, before) = conn.until_ending().await;
            let longest = before
                .iter()
                .filter_map(|r| match r {
                    peer::Received::Event(e) => Some(e.encoded_len()),
                    _ => None,
                })
                .max();
            log::info!(
                "ack flood peer: {} frames before the end, longest {longest:?}",
                before.len()
            );
            assert!(longest.unwrap_or(0) < 1024, "an ack of {longest:?} bytes");
            let _ = endings.send(ending);
        }
    })
    .await;
    let (events, seen) = Recorder::start_new();
    // Our own pings are far apart: only the bound on output can end it.
    let client = quick_module()
        .ping(Duration::from_secs(20), Duration::from_secs(10))
        .hosts([peer.host()])
        .session_events(events.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(ACK_FLOOD + Duration::from_secs(5), || {
            inactive_reasons(&seen.events())
                .iter()
                .any(|r| r.contains("peer is not reading"))
        })
        .await,
        "{:?}",
        seen.events()
    );
    println!("ack flood: {:?}", inactive_reasons(&seen.events()));
    let mut ending = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            ending = endings_rx.try_recv().ok();
            ending.is_some()
        })
        .await
    );
    let ending = ending.unwrap();
    // The close frame follows what the kernel buffered before it; a peer
    // that read too late sees the connection end without it.
    assert!(
        ending == Ending::Eof || ending.code() == Some(1008),
        "the peer saw {ending:?}"
    );
    if ending != Ending::Eof {
        assert!(
            ending.reason().starts_with("peer is not reading"),
            "{ending:?}"
        );
    }
    println!("ack flood: the peer saw {ending:?}");
    client.close().await;
}

/// Pongs nobody asked for do not prove that the peer reads: a peer that
/// sends them and reads nothing loses the session to the pong timeout.
#[actix::test]
async fn unsolicited_pongs_do_not_count_as_liveness() {
    let peer = ScriptedPeer::start(|mut conn| async move {
        if !conn.first_session().await {
            return;
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            conn.send(ws::Message::Pong(Bytes::from_static(b"alive")))
                .await;
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        conn.hold().await;
    })
    .await;
    let (events, seen) = Recorder::start_new();
    let client = quick_module()
        .ping(Duration::from_millis(200), Duration::from_millis(300))
        .hosts([peer.host()])
        .session_events(events.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || {
            inactive_reasons(&seen.events())
                .iter()
                .any(|r| r.contains("no pong"))
        })
        .await,
        "{:?}",
        seen.events()
    );
    client.close().await;
}

/// The runtime dropped while the session cannot flush (the peer reads
/// nothing and the socket's send buffer is full): no close frame went out,
/// so the status reads `Aborted`, never `Closed`, and says why.
#[test]
fn a_runtime_dropped_with_the_send_buffer_full_reads_aborted_never_closed() {
    // The peer runs on a System of its own, which outlives the client's.
    let (host_tx, host_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix::System::new().block_on(async move {
            let peer = ScriptedPeer::start(|mut conn| async move {
                conn.upgrade().await;
                // Reads nothing from here on.
                actix::clock::sleep(Duration::from_secs(60)).await;
            })
            .await;
            host_tx.send(peer.host()).unwrap();
            actix::clock::sleep(Duration::from_secs(60)).await;
        });
    });
    let host = host_rx.recv().unwrap();
    // A 32 MiB schema: more than loopback's socket buffers hold.
    let schema = json!({"type": "object", "description": "x".repeat(32 << 20)});
    let builder = isp_cluster::ClusterClient::builder(
        isp_cluster::ModuleInfo::new(
            "stuck",
            "1.0.0",
            isp_cluster::AddressConfiguration::new("10.0.0.2", "9002"),
        ),
        isp_cluster::ConfigData::new(
            "1.0.0",
            isp_cluster::RawJson::from_value(&schema).unwrap(),
            isp_cluster::RawJson::empty_object(),
        ),
    )
    .hosts([host]);
    let client = actix::System::new().block_on(async move {
        let client = builder.start().unwrap();
        assert!(
            wait_until(WAIT, || client.status().state == SessionState::Handshaking).await,
            "{:?}",
            client.status()
        );
        // The schema is being written; its ack (1 s) has not timed out.
        actix::clock::sleep(Duration::from_millis(300)).await;
        client
    });
    // The runtime is gone: the session was dropped with it.
    let status = client.status();
    assert_eq!(status.state, SessionState::Aborted, "{status:?}");
    let error = status.last_error.unwrap_or_default();
    assert!(
        error.contains("before the close frame was flushed"),
        "{error}"
    );
}
