//! Scale of the embedded config-service: 1,000 sessions of one module on one
//! server; the time from `set_config` (a 10 KiB config) until every one of
//! the 1,000 raw clients has received `CONFIG:SEND_CONFIG_CHANGED`.
//!
//! `cargo bench --bench server_fanout`. Needs ~2,100 file descriptors
//! (`ulimit -n`). Prints the median and p99 of every measured push at the
//! end, besides criterion's own report.

use std::time::{Duration, Instant};

use actix_web::rt::{time::timeout, System};
use awc::ws::{Frame, Message};
use criterion::{criterion_group, criterion_main, Criterion};
use futures_util::stream::{LocalBoxStream, SelectAll, StreamExt};
use futures_util::{future::join_all, SinkExt};
use isp_cluster::server::ConfigServer;
use serde_json::json;

const SESSIONS: usize = 1_000;
const CONFIG_BYTES: usize = 10 * 1024;
const MODULE: &str = "fanout";
/// How long one push may take before the bench gives up on it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// One connected module session that has sent its schema (so it gets
/// config pushes).
async fn connect_session(url: String) -> LocalBoxStream<'static, Frame> {
    let (_, mut ws) = awc::Client::new()
        .ws(url.as_str())
        .connect()
        .await
        .expect("connect");
    ws.send(Message::Text(
        r#"MODULE:SEND_CONFIG_SCHEMA||1||{"version":"1.0.0","schema":{},"config":{}}"#.into(),
    ))
    .await
    .expect("send schema");
    let mut acked = false;
    while !acked {
        match ws.next().await {
            Some(Ok(Frame::Text(data))) => acked = data.starts_with(b"__ack_"),
            other => panic!("handshake: {other:?}"),
        }
    }
    ws.filter_map(|frame| async move { frame.ok() })
        .boxed_local()
}

fn fanout(c: &mut Criterion) {
    let system = System::new();
    let (server, sessions) = system.block_on(async {
        let server = ConfigServer::builder()
            .start()
            .await
            .expect("server starts");
        let url = format!("ws://{}/isp-etp/?module_name={MODULE}", server.addr());
        let mut sessions = SelectAll::new();
        // Connect in batches: the listen backlog is finite.
        for _ in 0..SESSIONS / 100 {
            let batch = join_all((0..100).map(|_| connect_session(url.clone()))).await;
            sessions.extend(batch);
        }
        assert_eq!(server.session_count(MODULE), SESSIONS);
        (server, sessions)
    });
    let mut sessions = sessions;
    let mut samples = Vec::new();
    let mut seq = 0u64;

    let mut group = c.benchmark_group("server_fanout");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(30));
    group.bench_function("set_config_10KiB_to_1000_sessions", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let config = json!({"pad": "x".repeat(CONFIG_BYTES), "seq": seq});
                    let suffix = format!("\"seq\":{seq}}}");
                    let started = Instant::now();
                    server.set_config(MODULE, config);
                    let mut received = 0;
                    while received < SESSIONS {
                        let frame = timeout(PUSH_TIMEOUT, sessions.next())
                            .await
                            .expect("push within the timeout")
                            .expect("sessions stay open");
                        if let Frame::Text(data) = frame {
                            if data.ends_with(suffix.as_bytes()) {
                                received += 1;
                            }
                        }
                    }
                    let elapsed = started.elapsed();
                    samples.push(elapsed);
                    total += elapsed;
                }
                total
            })
        })
    });
    group.finish();

    samples.sort();
    if !samples.is_empty() {
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "server_fanout: {} pushes of {CONFIG_BYTES} bytes to {SESSIONS} sessions: \
             median {:.2?}, p99 {:.2?}, max {:.2?}",
            samples.len(),
            at(0.5),
            at(0.99),
            samples[samples.len() - 1]
        );
    }
    system.block_on(server.stop());
}

criterion_group!(benches, fanout);
criterion_main!(benches);
