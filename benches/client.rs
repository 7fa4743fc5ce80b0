//! Client latencies against the embedded config-service over loopback:
//! handshake, config push → receiver, failover.
//!
//! ```sh
//! cargo bench --bench client
//! ```

use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ClusterClientBuilder, ConfigData, HostsChanged,
    ModuleInfo, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent,
};
use tokio::sync::mpsc;

/// Signals every delivery on a channel.
struct Probe {
    configs: mpsc::UnboundedSender<usize>,
    active: mpsc::UnboundedSender<String>,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Probe {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let _ = self.configs.send(msg.data.len());
        Ok(())
    }
}

impl Handler<RoutesChanged> for Probe {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<HostsChanged> for Probe {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<SessionEvent> for Probe {
    type Result = ();
    fn handle(&mut self, msg: SessionEvent, _: &mut Context<Self>) {
        if let SessionEvent::Active { host } = msg {
            let _ = self.active.send(host);
        }
    }
}

struct Wired {
    configs: mpsc::UnboundedReceiver<usize>,
    active: mpsc::UnboundedReceiver<String>,
    builder: ClusterClientBuilder,
}

/// A module with every receiver set, wired to a probe.
fn wired(name: &str) -> Wired {
    let (config_tx, configs) = mpsc::unbounded_channel();
    let (active_tx, active) = mpsc::unbounded_channel();
    let probe = Probe {
        configs: config_tx,
        active: active_tx,
    }
    .start();
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("10.0.0.1", "9000"));
    let builder = ClusterClient::builder(info, ConfigData::default())
        .remote_config(probe.clone().recipient())
        .routes(probe.clone().recipient())
        .require_module("auth", probe.clone().recipient())
        .session_events(probe.recipient());
    Wired {
        configs,
        active,
        builder,
    }
}

/// A builder left in place of one that was started.
fn placeholder() -> ClusterClientBuilder {
    ClusterClient::builder(ModuleInfo::default(), ConfigData::default())
}

fn config_of(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size.saturating_sub(30));
    format!(r#"{{"n":0,"pad":"{pad}"}}"#).into_bytes()
}

fn handshake(c: &mut Criterion) {
    let system = System::new();
    let server = system.block_on(ConfigServer::builder().start()).unwrap();
    let host = server.addr().to_string();
    c.bench_function("handshake: start to active, all receivers", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut w = wired("bench-handshake");
                    let started = Instant::now();
                    let client = w.builder.hosts([host.clone()]).start().unwrap();
                    w.active.recv().await.unwrap();
                    total += started.elapsed();
                    client.close().await;
                }
                total
            })
        })
    });
    system.block_on(server.stop());
}

/// The handshake over `wss://`: TCP, TLS 1.3 (ring, a P-256 certificate
/// made for the run), upgrade and the ETP handshake.
fn handshake_tls(c: &mut Criterion) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let tls = isp_cluster::TlsConfig::new()
        .without_os_roots()
        .add_ca_pem(ca.pem().as_bytes())
        .unwrap();
    let system = System::new();
    let server = system
        .block_on(
            ConfigServer::builder()
                .tls(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
                .start(),
        )
        .unwrap();
    let host = format!("wss://{}", server.addr());
    c.bench_function("handshake over wss: start to active, all receivers", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut w = wired("bench-handshake-tls");
                    let started = Instant::now();
                    let client = w
                        .builder
                        .hosts([host.clone()])
                        .tls(tls.clone())
                        .start()
                        .unwrap();
                    w.active.recv().await.unwrap();
                    total += started.elapsed();
                    client.close().await;
                }
                total
            })
        })
    });
    system.block_on(server.stop());
}

fn config_latency(c: &mut Criterion) {
    let system = System::new();
    let server = system.block_on(ConfigServer::builder().start()).unwrap();
    let host = server.addr().to_string();
    let (client, mut w) = system.block_on(async {
        let mut w = wired("bench-config");
        let builder = std::mem::replace(&mut w.builder, placeholder());
        let client = builder.hosts([host]).start().unwrap();
        w.active.recv().await.unwrap();
        w.configs.recv().await.unwrap();
        (client, w)
    });
    let mut group = c.benchmark_group("config push to receiver");
    for (size, label) in [(1024, "1KiB"), (1024 * 1024, "1MiB")] {
        let config = config_of(size);
        group.throughput(Throughput::Bytes(config.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &config, |b, config| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let started = Instant::now();
                        server.set_config_raw("bench-config", config).unwrap();
                        w.configs.recv().await.unwrap();
                        total += started.elapsed();
                    }
                    total
                })
            })
        });
    }
    group.finish();
    system.block_on(async {
        client.close().await;
        server.stop().await;
    });
}

fn failover(c: &mut Criterion) {
    let system = System::new();
    let (a, b) = system.block_on(async {
        (
            ConfigServer::builder().start().await.unwrap(),
            ConfigServer::builder().start().await.unwrap(),
        )
    });
    let hosts = [a.addr().to_string(), b.addr().to_string()];
    let (client, mut w, mut on) = system.block_on(async {
        let mut w = wired("bench-failover");
        let builder = std::mem::replace(&mut w.builder, placeholder());
        // Each iteration drops a session right after it became active; in
        // production that session would have lasted. Without this the
        // client would, rightly, treat the iterations as a flapping node.
        let client = builder
            .hosts(hosts)
            .min_uptime(Duration::ZERO)
            .start()
            .unwrap();
        let on = w.active.recv().await.unwrap();
        (client, w, on)
    });
    c.bench_function(
        "failover: active node drops, active on the other",
        |bench| {
            bench.iter_custom(|iters| {
                system.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let dropping = if on == a.addr().to_string() { &a } else { &b };
                        let started = Instant::now();
                        dropping.drop_all_sessions();
                        on = w.active.recv().await.unwrap();
                        total += started.elapsed();
                    }
                    total
                })
            })
        },
    );
    system.block_on(async {
        client.close().await;
        a.stop().await;
        b.stop().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = handshake, handshake_tls, config_latency, failover
}
criterion_main!(benches);
