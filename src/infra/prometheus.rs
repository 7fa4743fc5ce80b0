//! The process's Prometheus recorder for `/internal/metrics`.
//!
//! The `metrics` facade has one global recorder per process. The infra
//! scope installs a Prometheus one the first time it is asked
//! ([`install_recorder`]), with this crate's histogram buckets, and keeps
//! its upkeep running (histograms are otherwise drained only by a scrape);
//! an application that installed its own recorder hands its handle to
//! [`Infra::metrics_handle`](super::Infra::metrics_handle) instead.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metrics::{BUCKETS_SECONDS, HISTOGRAMS};

/// How often the recorder's upkeep runs when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of Prometheus' text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static INSTALLED: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// A Prometheus exporter builder with this crate's histogram buckets (its
/// histograms become Prometheus histograms, not summaries); for an
/// application that builds its own recorder.
pub fn builder() -> PrometheusBuilder {
    let mut builder = PrometheusBuilder::new();
    for name in HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), &BUCKETS_SECONDS)
            .expect("BUCKETS_SECONDS is not empty");
    }
    builder
}

/// Installs [`builder`]'s recorder as the process's metrics recorder, once,
/// and returns its handle; later calls return the same handle. Call it
/// before starting the client to count from the very first attempt (the
/// infra scope calls it too). An `Err` says that another recorder was
/// installed first: pass its handle to
/// [`Infra::metrics_handle`](super::Infra::metrics_handle).
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    INSTALLED
        .get_or_init(|| {
            let handle = builder()
                .install_recorder()
                .map_err(|e| format!("cannot install the prometheus recorder: {e}"))?;
            crate::metrics::describe();
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("isp-cluster-metrics-upkeep".to_owned())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                log::warn!(
                    "no upkeep thread for the metrics recorder: {e}; scrapes still drain it"
                );
            }
            Ok(handle)
        })
        .clone()
}
