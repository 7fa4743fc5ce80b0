//! 1,000 session restarts: memory and live actors stay bounded.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    live_sessions, AddressConfiguration, ClusterClient, ConfigData, HostsChanged, ModuleInfo,
    ReceiverError, RemoteConfig, RoutesChanged,
};

mod common;
use common::wait_until;

/// Counts deliveries and keeps nothing, so that the test measures the
/// client, not its own records.
struct Counter(Arc<AtomicUsize>);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Counter {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Handler<RoutesChanged> for Counter {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

impl Handler<HostsChanged> for Counter {
    type Result = Result<(), ReceiverError>;
    fn handle(&mut self, _: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        Ok(())
    }
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[actix::test]
async fn a_thousand_session_restarts_leave_nothing_behind() {
    common::init_logs();
    let server = ConfigServer::builder()
        .config("churn", serde_json::json!({"pad": "x".repeat(4096)}))
        .start()
        .await
        .unwrap();
    let configs = Arc::new(AtomicUsize::new(0));
    let rec = Counter(configs.clone()).start();
    let info = ModuleInfo::new("churn", "1.0.0", AddressConfiguration::new("10.0.0.1", "1"));
    let client = ClusterClient::builder(info, ConfigData::default())
        .hosts([server.addr().to_string()])
        .remote_config(rec.clone().recipient())
        .require_module("other", rec.clone().recipient())
        .routes(rec.recipient())
        // Every session here is dropped right after READY; with the default
        // minimum uptime each would count as a failed attempt and back off.
        // This test is about what restarts leave behind, not their pace.
        .min_uptime(Duration::ZERO)
        .start()
        .unwrap();
    let started = Instant::now();
    let mut baseline = None;
    for round in 1..=1000u64 {
        assert!(
            wait_until(Duration::from_secs(5), || client
                .status()
                .sessions_established
                == round
                && client.healthcheck().is_ok())
            .await,
            "round {round}: {:?}",
            client.status()
        );
        assert!(
            live_sessions() <= 1,
            "round {round}: {} sessions alive",
            live_sessions()
        );
        if round == 100 {
            baseline = Some(rss_kib());
        }
        server.drop_all_sessions();
    }
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let elapsed = started.elapsed();
    let baseline = baseline.unwrap();
    let end = rss_kib();
    println!(
        "1000 restarts in {elapsed:?}; RSS after 100: {baseline} KiB, after 1000: {end} KiB; live sessions: {}",
        live_sessions()
    );
    assert_eq!(live_sessions(), 1);
    assert!(configs.load(Ordering::Relaxed) >= 1000);
    assert!(
        wait_until(Duration::from_secs(5), || server.session_count("churn")
            == 1)
        .await,
        "the server kept {} sessions",
        server.session_count("churn")
    );
    // Growth from round 100 to 1000 stays within a few MiB of allocator noise.
    assert!(
        end < baseline + 4096,
        "RSS grew from {baseline} to {end} KiB"
    );
    client.close().await;
    assert!(wait_until(Duration::from_secs(5), || live_sessions() == 0).await);
    server.stop().await;
}
