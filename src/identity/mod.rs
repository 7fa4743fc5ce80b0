//! Which config is running where: each config the receiver accepted gets a
//! short content hash ([`ConfigHash`]), a summary of what changed since the
//! config accepted before it ([`ConfigChanges`]: JSON paths, never values),
//! and a place in the status ([`AppliedConfig`]), in its INFO line and in
//! the `isp_cluster_config_info` series of the infra scope's metrics, so
//! that one Prometheus query over the fleet lists the instances by the
//! config they run. The ETP protocol carries no config version: only the
//! module knows what it applied. Go's client has no counterpart.
//!
//! One idea a file: the hash of the canonical JSON ([`canonical`]), the
//! change summary ([`changes`]), what the client remembers of the config
//! in force ([`tracker`]), and the metric series ([`info_metric`]).

mod canonical;
mod changes;
pub(crate) mod info_metric;
mod tracker;

pub use canonical::{ConfigHash, ParseConfigHashError};
pub use changes::{ConfigChanges, CHANGE_PATHS_SHOWN, MAX_CHANGE_PATHS, MAX_CHANGE_PATH_LEN};
pub use tracker::AppliedConfig;
pub(crate) use tracker::{Identity, Tracker};
