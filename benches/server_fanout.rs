//! Scale of the embedded config-service, seen from raw ETP clients over
//! loopback:
//!
//! * `connect_and_ready/N`: N = 1,000 and 10,000 modules connect and go
//!   through the whole handshake (schema, requirements, READY, each acked);
//!   the time until the last READY is acked. The server runs in a child
//!   process (this bench binary, started again), so that each process needs
//!   about N file descriptors, not 2 N.
//! * `set_config_10KiB_to_1000_sessions`: from `set_config` (a 10 KiB config)
//!   until every one of 1,000 sessions of the module has received
//!   `CONFIG:SEND_CONFIG_CHANGED`.
//! * `push_to_one_session`: from `set_config` (a 1 KiB config) until the one
//!   session of the module has the frame.
//!
//! `cargo bench --bench server_fanout` (about two minutes on 2 cores). The
//! bench raises its soft open-files limit to the hard one; with a hard limit
//! under ~10,200 the 10,000 case is skipped (raise it: `ulimit -Hn`). Prints
//! the median and p99 of every measurement at the end, besides criterion's
//! own report.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::rt::{time::timeout, System};
use awc::ws::{Frame, Message};
use criterion::{BenchmarkId, Criterion};
use futures_util::stream::{self, LocalBoxStream, SelectAll, StreamExt};
use futures_util::{future::join_all, SinkExt};
use isp_cluster::server::ConfigServer;
use serde_json::json;

const SESSIONS: usize = 1_000;
const CONFIG_BYTES: usize = 10 * 1024;
const MODULE: &str = "fanout";
/// How long one push may take before the bench gives up on it.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// The session counts of `connect_and_ready`.
const CONNECT_COUNTS: [usize; 2] = [1_000, 10_000];
/// How many sessions connect at once (under the listen backlog).
const CONNECT_WINDOW: usize = 256;
/// File descriptors a process needs besides one per session.
const SPARE_FDS: u64 = 200;
/// Set in the child process that serves `connect_and_ready`.
const SERVE_ENV: &str = "SERVER_FANOUT_SERVE";

type Ws = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

#[path = "support/open_files.rs"]
mod open_files;
use open_files::raise_open_files_limit;

/// A client without the default limit of 100 connections, patient with a
/// server busy taking thousands of them.
fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .finish()
}

/// Sends a frame; panics if the connection is gone.
async fn emit(ws: &mut Ws, frame: &str) {
    ws.send(Message::Text(frame.to_owned().into()))
        .await
        .expect("send");
}

/// Waits for `acks` acks, skipping every other frame.
async fn await_acks(ws: &mut Ws, mut acks: usize) {
    while acks > 0 {
        match ws.next().await {
            Some(Ok(Frame::Text(data))) if data.starts_with(b"__ack_") => {
                assert!(data.ends_with(b"||ok"), "handshake refused: {data:?}");
                acks -= 1;
            }
            Some(Ok(_)) => {}
            other => panic!("handshake: {other:?}"),
        }
    }
}

/// One module session through the whole handshake, as the client does it:
/// schema and requirements together, then READY.
async fn ready_session(client: awc::Client, url: String, n: usize) -> Ws {
    let (_, mut ws) = client.ws(url.as_str()).connect().await.expect("connect");
    emit(
        &mut ws,
        r#"MODULE:SEND_CONFIG_SCHEMA||1||{"version":"1.0.0","schema":{},"config":{}}"#,
    )
    .await;
    emit(
        &mut ws,
        r#"MODULE:SEND_REQUIREMENTS||2||{"requiredModules":[],"requireRoutes":false}"#,
    )
    .await;
    await_acks(&mut ws, 2).await;
    let ready = json!({
        "moduleName": MODULE, "version": "1.0.0", "libVersion": "", "endpoints": [],
        "requiredModules": [], "address": {"ip": "10.0.0.1", "port": (n % 60_000).to_string()}
    });
    emit(&mut ws, &format!("MODULE:READY||3||{ready}")).await;
    await_acks(&mut ws, 1).await;
    ws
}

/// The child process: an embedded server until stdin closes.
fn serve() {
    let system = System::new();
    system.block_on(async {
        let server = ConfigServer::builder()
            .start()
            .await
            .expect("server starts");
        println!("{}", server.addr());
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        let _ = rx.await;
    });
    // Exiting closes every connection; nothing to tidy.
    std::process::exit(0);
}

/// A fresh server in a child process and its address.
fn spawn_server() -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("bench binary path"))
        .env(SERVE_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server process starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server prints its address");
    (child, line.trim().to_owned())
}

fn connect_and_ready(c: &mut Criterion) {
    let limit = raise_open_files_limit();
    let system = System::new();
    let mut summaries = Vec::new();
    let mut group = c.benchmark_group("server");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    for n in CONNECT_COUNTS {
        if limit < n as u64 + SPARE_FDS {
            println!(
                "server connect_and_ready/{n}: skipped, the open-files limit is {limit} \
                 (needs {}; raise `ulimit -Hn`)",
                n as u64 + SPARE_FDS
            );
            continue;
        }
        let mut samples = Vec::new();
        group.bench_with_input(BenchmarkId::new("connect_and_ready", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (mut child, addr) = spawn_server();
                    let url = format!("ws://{addr}/isp-etp/?module_name={MODULE}");
                    let client = client();
                    let (elapsed, sessions) = system.block_on(async {
                        let started = Instant::now();
                        let sessions: Vec<Ws> = stream::iter(0..n)
                            .map(|i| ready_session(client.clone(), url.clone(), i))
                            .buffer_unordered(CONNECT_WINDOW)
                            .collect()
                            .await;
                        (started.elapsed(), sessions)
                    });
                    assert_eq!(sessions.len(), n);
                    // The server closes first, so that the TIME_WAIT entries
                    // are its own and the client's ports are free at once.
                    drop(child.stdin.take());
                    let _ = child.wait();
                    drop(sessions);
                    samples.push(elapsed);
                    total += elapsed;
                }
                total
            })
        });
        summaries.push(summary(
            &format!("connect_and_ready/{n}: {n} sessions connected and READY"),
            samples,
        ));
    }
    group.finish();
    for line in summaries {
        println!("{line}");
    }
}

/// One connected module session that has sent its schema (so it gets
/// config pushes).
async fn schema_session(client: awc::Client, url: String) -> Ws {
    let (_, mut ws) = client.ws(url.as_str()).connect().await.expect("connect");
    emit(
        &mut ws,
        r#"MODULE:SEND_CONFIG_SCHEMA||1||{"version":"1.0.0","schema":{},"config":{}}"#,
    )
    .await;
    await_acks(&mut ws, 1).await;
    ws
}

/// Pushes a config with `pad_bytes` of padding until all `expected`
/// sessions have it; returns the time taken.
async fn push(
    server: &ConfigServer,
    module: &str,
    sessions: &mut SelectAll<LocalBoxStream<'static, Frame>>,
    expected: usize,
    pad_bytes: usize,
    seq: u64,
) -> Duration {
    let config = json!({"pad": "x".repeat(pad_bytes), "seq": seq});
    let suffix = format!("\"seq\":{seq}}}");
    let started = Instant::now();
    server.set_config(module, config).unwrap();
    let mut received = 0;
    while received < expected {
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
    started.elapsed()
}

fn fanout(c: &mut Criterion) {
    let system = System::new();
    let client = client();
    let (server, sessions, single) = system.block_on(async {
        let server = ConfigServer::builder()
            .start()
            .await
            .expect("server starts");
        let url = format!("ws://{}/isp-etp/?module_name={MODULE}", server.addr());
        let mut sessions = SelectAll::new();
        let connected: Vec<Ws> = stream::iter(0..SESSIONS)
            .map(|_| schema_session(client.clone(), url.clone()))
            .buffer_unordered(CONNECT_WINDOW)
            .collect()
            .await;
        sessions.extend(
            connected
                .into_iter()
                .map(|ws| ws.filter_map(|f| async move { f.ok() }).boxed_local()),
        );
        assert_eq!(server.session_count(MODULE), SESSIONS);
        let url = format!("ws://{}/isp-etp/?module_name=single", server.addr());
        let mut single = SelectAll::new();
        let one = join_all([schema_session(client.clone(), url)]).await;
        single.extend(
            one.into_iter()
                .map(|ws| ws.filter_map(|f| async move { f.ok() }).boxed_local()),
        );
        (server, sessions, single)
    });
    let (mut sessions, mut single) = (sessions, single);
    let (mut fanout_samples, mut single_samples) = (Vec::new(), Vec::new());
    let mut seq = 0u64;

    let mut group = c.benchmark_group("server");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20));
    group.bench_function("set_config_10KiB_to_1000_sessions", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let elapsed =
                        push(&server, MODULE, &mut sessions, SESSIONS, CONFIG_BYTES, seq).await;
                    fanout_samples.push(elapsed);
                    total += elapsed;
                }
                total
            })
        })
    });
    group
        .sample_size(100)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("push_to_one_session", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    seq += 1;
                    let elapsed = push(&server, "single", &mut single, 1, 1024, seq).await;
                    single_samples.push(elapsed);
                    total += elapsed;
                }
                total
            })
        })
    });
    group.finish();
    println!(
        "{}",
        summary(
            &format!("set_config_10KiB_to_1000_sessions: pushes of {CONFIG_BYTES} bytes to {SESSIONS} sessions"),
            fanout_samples
        )
    );
    println!(
        "{}",
        summary(
            "push_to_one_session: pushes of 1 KiB to one session",
            single_samples
        )
    );
    system.block_on(server.stop());
}

/// `what: N samples: median, p99, max`.
fn summary(what: &str, mut samples: Vec<Duration>) -> String {
    samples.sort();
    let Some(max) = samples.last().copied() else {
        return format!("server {what}: no samples");
    };
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        "server {what}: {} samples: median {:.2?}, p99 {:.2?}, max {max:.2?}",
        samples.len(),
        at(0.5),
        at(0.99),
    )
}

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve();
        return;
    }
    raise_open_files_limit();
    let mut criterion = Criterion::default().configure_from_args();
    fanout(&mut criterion);
    connect_and_ready(&mut criterion);
    criterion.final_summary();
}
