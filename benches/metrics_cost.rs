//! What the instrumentation costs on the hot path: a 1 KiB config pushed by
//! the embedded config-service to the receiver over loopback, first with no
//! metrics recorder installed (the facade's no-op), then, in the same run
//! and against the same session, with the infra scope's Prometheus
//! recorder installed (every counter, gauge and histogram of the path
//! recorded).
//!
//! ```sh
//! cargo bench --bench metrics_cost
//! ```
//!
//! A recorder cannot be uninstalled, so the two are measured in that order;
//! to see the drift of the machine between them, the run ends with the
//! no-recorder figure taken again by [`paired_rounds`], which alternates
//! the two states through a recorder that can be switched off. One
//! labelled counter call is timed on its own before and after, too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ConfigData, ModuleInfo, ReceiverError, RemoteConfig,
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::PrometheusRecorder;
use tokio::sync::mpsc;

/// Signals every delivered config.
struct Probe(mpsc::UnboundedSender<()>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Probe {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let _ = self.0.send(());
        Ok(())
    }
}

/// The Prometheus recorder, or the facade's no-op while `on` is false: the
/// same process can then measure both, alternating.
struct Switch {
    on: Arc<AtomicBool>,
    inner: PrometheusRecorder,
}

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description)
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description)
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description)
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

fn config_of(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(30));
    format!(r#"{{"n":0,"pad":"{pad}"}}"#).into_bytes()
}

/// One push and its delivery, timed.
async fn push(
    server: &ConfigServer,
    config: &[u8],
    rx: &mut mpsc::UnboundedReceiver<()>,
) -> Duration {
    let started = Instant::now();
    server.set_config_raw("bench-metrics", config).unwrap();
    rx.recv().await.unwrap();
    started.elapsed()
}

/// One call as the crate's recording functions make it: a counter with the
/// module label (an owned string) and a static one.
fn one_counter(module: &str) {
    metrics::counter!(
        "isp_cluster_bench_calls_total",
        "module" => module.to_owned(),
        "outcome" => "accepted"
    )
    .increment(1);
}

fn push_path(c: &mut Criterion) {
    let system = System::new();
    let server = system.block_on(ConfigServer::builder().start()).unwrap();
    let host = server.addr().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let client = system.block_on(async {
        let info = ModuleInfo::new(
            "bench-metrics",
            "1.0.0",
            AddressConfiguration::new("10.0.0.1", "9000"),
        );
        let client = ClusterClient::builder(info, ConfigData::default())
            .hosts([host])
            .remote_config(Probe(tx).start().recipient())
            .start()
            .unwrap();
        rx.recv().await.unwrap();
        while client.healthcheck().is_err() {
            actix::clock::sleep(Duration::from_millis(5)).await;
        }
        client
    });
    let config = config_of(1024);
    c.bench_function("one labelled counter call, no recorder", |b| {
        b.iter(|| one_counter(criterion::black_box("bench-metrics")))
    });
    let mut group = c.benchmark_group("1KiB config push to receiver");
    group.bench_function("no recorder", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += push(&server, &config, &mut rx).await;
                }
                total
            })
        })
    });
    let on = Arc::new(AtomicBool::new(true));
    let recorder = Switch {
        on: on.clone(),
        inner: isp_cluster::infra::prometheus_builder().build_recorder(),
    };
    let handle = recorder.inner.handle();
    metrics::set_global_recorder(recorder).expect("the first recorder of the process");
    group.bench_function("prometheus recorder", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += push(&server, &config, &mut rx).await;
                }
                handle.run_upkeep();
                total
            })
        })
    });
    group.finish();
    c.bench_function("one labelled counter call, prometheus recorder", |b| {
        b.iter(|| one_counter(criterion::black_box("bench-metrics")))
    });
    paired_rounds(&system, &server, &config, &mut rx, &on);
    assert!(
        handle
            .render()
            .contains("isp_cluster_delivery_duration_seconds_count{module=\"bench-metrics\""),
        "the recorder saw the deliveries"
    );
    system.block_on(async {
        client.close().await;
        server.stop().await;
    });
}

/// Rounds of pushes alternating recorder off / on, reported as the median
/// of each state's round means and the median of the pairwise differences
/// (each "on" round minus the "off" round just before it): drift of the
/// machine hits both alike.
fn paired_rounds(
    system: &SystemRunner,
    server: &ConfigServer,
    config: &[u8],
    rx: &mut mpsc::UnboundedReceiver<()>,
    on: &AtomicBool,
) {
    const ROUNDS: usize = 100;
    const PUSHES_PER_ROUND: usize = 200;
    let mut off_means = Vec::with_capacity(ROUNDS);
    let mut on_means = Vec::with_capacity(ROUNDS);
    system.block_on(async {
        for round in 0..2 * ROUNDS {
            let recording = round % 2 == 1;
            on.store(recording, Ordering::Relaxed);
            let mut total = Duration::ZERO;
            for _ in 0..PUSHES_PER_ROUND {
                total += push(server, config, rx).await;
            }
            let mean = total / PUSHES_PER_ROUND as u32;
            if recording {
                on_means.push(mean);
            } else {
                off_means.push(mean);
            }
        }
    });
    on.store(true, Ordering::Relaxed);
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let mut diffs_ns: Vec<i128> = on_means
        .iter()
        .zip(&off_means)
        .map(|(on, off)| on.as_nanos() as i128 - off.as_nanos() as i128)
        .collect();
    diffs_ns.sort_unstable();
    let diff_ns = diffs_ns[diffs_ns.len() / 2];
    let (off, with) = (median(&mut off_means), median(&mut on_means));
    println!(
        "paired ({ROUNDS} rounds x {PUSHES_PER_ROUND} pushes each): off {off:?}, on {with:?}, \
         median difference {:.2} µs ({:+.2} % of off)",
        diff_ns as f64 / 1000.0,
        diff_ns as f64 * 100.0 / off.as_nanos() as f64
    );
}

criterion_group!(benches, push_path);
criterion_main!(benches);
