//! isp RPC on loopback: a JSON echo through the crate's client and server,
//! beside the same echo on bare tonic, so that the overhead of our layer
//! shows as a ratio.
//!
//! ```sh
//! cargo bench --bench rpc
//! ```
//!
//! Both sides carry the same `isp.Message` (the JSON body in `BytesBody`,
//! `proxy_method_name` in the metadata) over one h2c connection. Each
//! server runs on a multi-threaded tokio runtime of its own with the same
//! number of threads (the crate's server default); both clients run on one
//! actix System (a current-thread runtime), as a module's calls do. Bare
//! tonic is what generated code does: `tonic::server::Grpc` with prost's
//! codec behind `tonic::transport::Server`, `tonic::client::Grpc` over a
//! `Channel`, no routing by metadata, no JSON, no metrics or logs.
//!
//! Cases: a 1 KiB body at concurrency 1 and 32, a 1 MiB body at
//! concurrency 1. In every criterion sample the two sides run the same
//! number of calls, one after the other (alternating which goes first), so
//! that both see the same machine; the end prints, per case and side,
//! calls/s, p50 and p99 over every call made, and our calls/s as a share of
//! bare tonic's.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use isp_cluster::lb::HostsUpgrader as _;
use isp_cluster::rpc::{Error, Json, Message, Router, RpcClient, RpcServer};
use serde_json::value::RawValue;
use tonic::codegen::http;
use tonic::transport::Channel;

/// The endpoint of the echo on both sides.
const ECHO: &str = "bench/echo";
/// The full gRPC method name of isp's unary call.
const REQUEST_PATH: &str = "/isp.BackendService/Request";

/// A JSON body of about `bytes` bytes: `{"data":"xxx…"}`.
fn body(bytes: usize) -> Box<RawValue> {
    let text = format!(r#"{{"data":"{}"}}"#, "x".repeat(bytes.saturating_sub(11)));
    RawValue::from_string(text).expect("valid json")
}

// ---------------------------------------------------------------------
// Bare tonic: the service as tonic's generated code would be.

/// The unary echo: the request's message back.
#[derive(Clone, Copy)]
struct BareUnary;

impl tonic::server::UnaryService<Message> for BareUnary {
    type Response = Message;
    type Future = std::future::Ready<Result<tonic::Response<Message>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Message>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

/// `isp.BackendService` with its unary method, as generated code routes it.
#[derive(Clone, Copy)]
struct BareService;

impl tonic::server::NamedService for BareService {
    const NAME: &'static str = "isp.BackendService";
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for BareService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != REQUEST_PATH {
                return Ok(tonic::Status::unimplemented("").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(BareUnary, request).await)
        })
    }
}

/// The largest message both sides accept (isp-kit's 64 MiB).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Serves [`BareService`] on a runtime of its own (`threads` workers), as
/// the crate's server runs; returns the address and the server's thread.
fn start_bare_server(threads: usize) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("local address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let incoming = futures_util::stream::unfold(listener, |listener| async move {
                let accepted = listener.accept().await.map(|(stream, _)| {
                    let _ = stream.set_nodelay(true);
                    stream
                });
                Some((accepted, listener))
            });
            tonic::transport::Server::builder()
                .serve_with_incoming(BareService, incoming)
                .await
                .expect("bare tonic serves");
        });
    });
    addr
}

/// A bare tonic client of one host.
struct BareClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl BareClient {
    async fn connect(addr: SocketAddr) -> Self {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("bare tonic connects");
        let grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Self { grpc }
    }

    /// One call: the same message and metadata as ours sends.
    async fn echo(&self, json: &[u8]) {
        let mut grpc = self.grpc.clone();
        grpc.ready().await.expect("ready");
        let mut request = tonic::Request::new(Message::json(bytes::Bytes::copy_from_slice(json)));
        request
            .metadata_mut()
            .insert("proxy_method_name", ECHO.parse().expect("ascii"));
        let path = http::uri::PathAndQuery::from_static(REQUEST_PATH);
        let response: tonic::Response<Message> = grpc
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
            .expect("bare echo answers");
        std::hint::black_box(response.into_inner().into_json());
    }
}

// ---------------------------------------------------------------------
// Ours.

async fn echo(Json(body): Json<Box<RawValue>>) -> Result<Box<RawValue>, Error> {
    Ok(body)
}

// ---------------------------------------------------------------------
// The load: `calls` calls, `concurrency` of them in flight.

/// Every call's latency in µs, and the wall time of the whole run.
async fn drive<F, Fut>(calls: u64, concurrency: usize, call: F) -> (Duration, Vec<u32>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let next = std::cell::Cell::new(0u64);
    let latencies = RefCell::new(Vec::with_capacity(calls as usize));
    let started = Instant::now();
    let worker = || async {
        loop {
            let i = next.get();
            if i >= calls {
                break;
            }
            next.set(i + 1);
            let call_started = Instant::now();
            call().await;
            let micros = u32::try_from(call_started.elapsed().as_micros()).unwrap_or(u32::MAX);
            latencies.borrow_mut().push(micros);
        }
    };
    futures_util::future::join_all((0..concurrency).map(|_| worker())).await;
    (started.elapsed(), latencies.into_inner())
}

/// What one side made in a case, over every sample.
#[derive(Default)]
struct Tally {
    calls: u64,
    wall: Duration,
    latencies: Vec<u32>,
}

impl Tally {
    fn add(&mut self, calls: u64, wall: Duration, latencies: Vec<u32>) {
        self.calls += calls;
        self.wall += wall;
        self.latencies.extend(latencies);
    }

    fn per_second(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn percentile(&mut self, p: f64) -> u32 {
        if self.latencies.is_empty() {
            return 0;
        }
        self.latencies.sort_unstable();
        let rank = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[rank]
    }
}

struct Case {
    name: &'static str,
    body_bytes: usize,
    concurrency: usize,
}

const CASES: [Case; 3] = [
    Case {
        name: "1KiB_c1",
        body_bytes: 1024,
        concurrency: 1,
    },
    Case {
        name: "1KiB_c32",
        body_bytes: 1024,
        concurrency: 32,
    },
    Case {
        name: "1MiB_c1",
        body_bytes: 1024 * 1024,
        concurrency: 1,
    },
];

fn echo_bench(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let system = actix::System::new();
    let ours_server = RpcServer::builder(Router::new().route(ECHO, echo))
        .max_message_size(MAX_MESSAGE)
        .worker_threads(threads)
        .bind("127.0.0.1:0")
        .expect("our server binds");
    let ours_addr = ours_server.local_addr();
    let bare_addr = start_bare_server(threads);
    let (ours, bare) = system.block_on(async {
        let ours = RpcClient::new("bench");
        ours.upgrade(&[ours_addr.to_string()]);
        (ours, BareClient::connect(bare_addr).await)
    });

    let mut summary = Vec::new();
    for case in &CASES {
        let json = body(case.body_bytes);
        let bytes = json.get().as_bytes().to_vec();
        let tallies = RefCell::new((Tally::default(), Tally::default()));
        // Each sample's pair of runs (the same calls on both sides, back to
        // back): ours/bare calls/s of that pair.
        let pairs = RefCell::new(Vec::new());
        let sample = std::cell::Cell::new(0u64);
        // Runs both sides `iters` calls each; returns (bare, ours) wall times.
        let pair = |iters: u64| {
            system.block_on(async {
                let bare_first = sample.get().is_multiple_of(2);
                sample.set(sample.get() + 1);
                let mut walls = (Duration::ZERO, Duration::ZERO);
                for bare_turn in [bare_first, !bare_first] {
                    if bare_turn {
                        let (wall, lat) =
                            drive(iters, case.concurrency, || bare.echo(&bytes)).await;
                        tallies.borrow_mut().0.add(iters, wall, lat);
                        walls.0 = wall;
                    } else {
                        let (wall, lat) = drive(iters, case.concurrency, || async {
                            let answer: Box<RawValue> = ours
                                .call(ECHO)
                                .json(&json)
                                .send()
                                .await
                                .expect("our echo answers");
                            std::hint::black_box(answer);
                        })
                        .await;
                        tallies.borrow_mut().1.add(iters, wall, lat);
                        walls.1 = wall;
                    }
                }
                pairs
                    .borrow_mut()
                    .push(walls.0.as_secs_f64() / walls.1.as_secs_f64().max(1e-9));
                walls
            })
        };
        let mut group = c.benchmark_group(format!("rpc_echo_{}", case.name));
        group.throughput(Throughput::Elements(1));
        if case.body_bytes > 64 * 1024 {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(10));
        }
        group.bench_function("bare_tonic", |b| b.iter_custom(|iters| pair(iters).0));
        group.bench_function("isp_cluster", |b| b.iter_custom(|iters| pair(iters).1));
        group.finish();
        let (mut bare_tally, mut ours_tally) = tallies.into_inner();
        let mut pairs = pairs.into_inner();
        pairs.sort_unstable_by(f64::total_cmp);
        let pair_median = pairs.get(pairs.len() / 2).copied().unwrap_or(0.0);
        if bare_tally.calls == 0 || ours_tally.calls == 0 {
            // Left out by a filter on the command line.
            continue;
        }
        summary.push((
            case.name,
            bare_tally.per_second(),
            bare_tally.percentile(0.5),
            bare_tally.percentile(0.99),
            ours_tally.per_second(),
            ours_tally.percentile(0.5),
            ours_tally.percentile(0.99),
            pair_median,
        ));
    }
    println!("\nrpc echo, {threads} server threads; calls/s, p50 and p99 in µs over every call:");
    println!(
        "{:<10} {:>12} {:>8} {:>8} {:>12} {:>8} {:>8} {:>10} {:>12}",
        "case", "bare/s", "p50", "p99", "ours/s", "p50", "p99", "ours/bare", "pair median"
    );
    for (name, bare_s, bare_50, bare_99, ours_s, ours_50, ours_99, pair_median) in summary {
        println!(
            "{name:<10} {bare_s:>12.0} {bare_50:>8} {bare_99:>8} {ours_s:>12.0} {ours_50:>8} \
             {ours_99:>8} {:>9.1}% {:>11.1}%",
            ours_s / bare_s * 100.0,
            pair_median * 100.0
        );
    }
    println!(
        "ours/bare: over every call of the case; pair median: the median, over the samples, \
         of ours/bare within one sample (both sides' runs back to back)"
    );
    system.block_on(ours_server.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = echo_bench
}
criterion_main!(benches);
