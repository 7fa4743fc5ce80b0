//! What a client remembers of the config in force: its identity, the
//! value to compare the next config with, and where it is shown (the
//! status, the INFO line, the metric series).
//!
//! The delivery actor (and the offline client) asks for a config's
//! [`Identity`] when it sends it to the receiver, against the config
//! accepted last: one config is in flight per receiver, so that is the one
//! it replaces. Only when the receiver accepts it does it become the last
//! one ([`Tracker::accepted`]); a rejected config changes nothing.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::Value;

use super::{info_metric, ConfigChanges, ConfigHash};
use crate::client::ConfigSource;

/// The config in force: its hash, since when and from where, and what
/// changed from the one before it. In [`Status::config`](crate::Status::config)
/// and from [`OfflineClient::applied`](crate::OfflineClient::applied). Go's
/// client has no counterpart.
///
/// Serializes as `{"hash":"3f9a1c2b7e01","appliedAt":"2026-12-01T09:30:00.000Z",
/// "source":"server","previousHash":"9c0d1e2f3a4b","changes":{"added":[],
/// "removed":[],"changed":["limit"],"omitted":0}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppliedConfig {
    /// The config's identity ([`ConfigHash`]).
    pub hash: ConfigHash,
    /// When the receiver accepted it. The same config delivered again (as
    /// at every new session) does not move it: it is when this config came
    /// into force.
    pub applied_at: SystemTime,
    /// Where it came from last: a node, the cache on disk, or an offline
    /// file. A node's copy of the cached config turns `cache` into
    /// `server`.
    pub source: ConfigSource,
    /// The hash of the config it replaced; `None` for the first one of
    /// the process.
    pub previous_hash: Option<ConfigHash>,
    /// What changed from that one: paths only; `None` for the first one
    /// (or when either config could not be compared as JSON values).
    pub changes: Option<Arc<ConfigChanges>>,
}

impl Serialize for AppliedConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("AppliedConfig", 5)?;
        s.serialize_field("hash", &self.hash)?;
        s.serialize_field("appliedAt", &crate::time::rfc3339(self.applied_at))?;
        s.serialize_field("source", &self.source)?;
        s.serialize_field("previousHash", &self.previous_hash)?;
        s.serialize_field("changes", &self.changes.as_deref())?;
        s.end()
    }
}

/// A config's identity against the config accepted before it: what a
/// [`RemoteConfig`](crate::RemoteConfig) carries to its receiver.
pub(crate) struct Identity {
    pub(crate) hash: ConfigHash,
    /// The config accepted last when this one was sent.
    pub(crate) previous: Option<ConfigHash>,
    pub(crate) changes: Option<Arc<ConfigChanges>>,
    /// The parsed config, kept once it is accepted to compare the next
    /// one with; `None` when serde_json cannot hold it as a value.
    value: Option<Arc<Value>>,
}

impl Identity {
    /// The identity of `data` with no config before it.
    pub(crate) fn of(data: &[u8]) -> Self {
        let value = serde_json::from_slice::<Value>(data).ok().map(Arc::new);
        let hash = match &value {
            Some(value) => ConfigHash::of_value(value),
            None => ConfigHash::of_bytes(data),
        };
        Self {
            hash,
            previous: None,
            changes: None,
            value,
        }
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.previous == other.previous && self.changes == other.changes
    }
}

impl Eq for Identity {}

impl fmt::Debug for Identity {
    /// The hashes and the paths; never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("hash", &self.hash)
            .field("previous", &self.previous)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

/// The config accepted last, for one client (or offline client).
pub(crate) struct Tracker {
    /// For the metric series; empty: not metered.
    module: String,
    last: Option<Last>,
}

struct Last {
    applied: AppliedConfig,
    value: Option<Arc<Value>>,
}

impl Tracker {
    pub(crate) fn new(module: String) -> Self {
        Self { module, last: None }
    }

    /// The identity of `data`, compared with the config accepted last.
    pub(crate) fn identify(&self, data: &[u8]) -> Arc<Identity> {
        let mut identity = Identity::of(data);
        if let Some(last) = &self.last {
            identity.previous = Some(last.applied.hash);
            identity.changes = if last.applied.hash == identity.hash {
                Some(Arc::default())
            } else {
                match (&last.value, &identity.value) {
                    (Some(before), Some(now)) => {
                        Some(Arc::new(ConfigChanges::between(before, now)))
                    }
                    _ => None,
                }
            };
        }
        Arc::new(identity)
    }

    /// The receiver accepted the config of `identity` from `source`: it is
    /// the config in force. Writes its line (INFO when the hash or the
    /// source changed, DEBUG for the same config again) and sets the
    /// metric series; returns what the status shows.
    pub(crate) fn accepted(
        &mut self,
        identity: &Identity,
        source: ConfigSource,
        tag: &str,
    ) -> AppliedConfig {
        let now = SystemTime::now();
        let same = self
            .last
            .as_ref()
            .filter(|l| l.applied.hash == identity.hash);
        let applied = match same {
            Some(last) => AppliedConfig {
                source,
                ..last.applied.clone()
            },
            None => AppliedConfig {
                hash: identity.hash,
                applied_at: now,
                source,
                previous_hash: identity.previous,
                changes: identity.changes.clone(),
            },
        };
        let line = AppliedLine {
            tag,
            hash: identity.hash,
            source,
            previous: identity.previous,
            changes: identity.changes.as_deref(),
        };
        match same {
            Some(last) if last.applied.source == source => log::debug!("{line}"),
            _ => log::info!("{line}"),
        }
        if !self.module.is_empty() {
            info_metric::set(&self.module, identity.hash);
        }
        self.last = Some(Last {
            applied: applied.clone(),
            value: identity.value.clone(),
        });
        applied
    }
}

/// The line of an applied config: its hash, its source, the hash it
/// replaced and the bounded change summary; no value.
struct AppliedLine<'a> {
    tag: &'a str,
    hash: ConfigHash,
    source: ConfigSource,
    previous: Option<ConfigHash>,
    changes: Option<&'a ConfigChanges>,
}

impl fmt::Display for AppliedLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            tag,
            hash,
            source,
            previous,
            changes,
        } = self;
        write!(f, "{tag} config {hash} applied (from {source}; ")?;
        match (previous, changes) {
            (None, _) => f.write_str("the first of this process)"),
            (Some(previous), Some(changes)) => write!(f, "was {previous}): {changes}"),
            (Some(previous), None) => write!(
                f,
                "was {previous}): changes unknown (a config serde_json cannot hold as a value)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_configs_keep_the_hash_and_the_time_and_have_no_change() {
        let mut tracker = Tracker::new(String::new());
        let first = tracker.identify(br#"{"a":1,"b":[1,2]}"#);
        assert_eq!(first.previous, None);
        assert_eq!(first.changes, None);
        let applied = tracker.accepted(&first, ConfigSource::Cache, "[t]");
        assert_eq!(applied.previous_hash, None);

        let again = tracker.identify(b"{ \"b\": [1, 2], \"a\": 1 }");
        assert_eq!(again.hash, first.hash);
        assert_eq!(again.previous, Some(first.hash));
        assert!(again.changes.as_ref().is_some_and(|c| c.is_empty()));
        let confirmed = tracker.accepted(&again, ConfigSource::Server, "[t]");
        assert_eq!(confirmed.applied_at, applied.applied_at);
        assert_eq!(confirmed.source, ConfigSource::Server);

        let next = tracker.identify(br#"{"a":2,"b":[1,2]}"#);
        assert_ne!(next.hash, first.hash);
        assert_eq!(next.changes.as_ref().unwrap().changed, ["a"]);
    }

    #[test]
    fn a_rejected_config_is_not_the_base_of_the_next_summary() {
        let mut tracker = Tracker::new(String::new());
        let first = tracker.identify(br#"{"a":1}"#);
        tracker.accepted(&first, ConfigSource::Server, "[t]");
        let _rejected = tracker.identify(br#"{"a":1,"b":1}"#);
        let next = tracker.identify(br#"{"a":1,"c":1}"#);
        assert_eq!(next.previous, Some(first.hash));
        assert_eq!(next.changes.as_ref().unwrap().added, ["c"]);
    }

    #[test]
    fn a_config_beyond_serde_json_values_gets_a_hash_and_no_summary() {
        let mut tracker = Tracker::new(String::new());
        let first = tracker.identify(br#"{"a":1}"#);
        tracker.accepted(&first, ConfigSource::Server, "[t]");
        let huge = tracker.identify(br#"{"a":1e400}"#);
        assert_eq!(huge.changes, None);
        assert_eq!(huge.previous, Some(first.hash));
        let line = AppliedLine {
            tag: "[t]",
            hash: huge.hash,
            source: ConfigSource::Server,
            previous: huge.previous,
            changes: None,
        }
        .to_string();
        assert!(line.contains("changes unknown"), "{line}");
        assert!(!line.contains("1e400"), "{line}");
    }

    #[test]
    fn the_line_names_the_hash_the_source_and_the_paths() {
        let mut tracker = Tracker::new(String::new());
        let first = tracker.identify(br#"{"limit":1,"db":{"password":"pw-1"}}"#);
        let line = AppliedLine {
            tag: "[module=m]",
            hash: first.hash,
            source: ConfigSource::Cache,
            previous: None,
            changes: None,
        };
        assert_eq!(
            line.to_string(),
            format!(
                "[module=m] config {} applied (from cache; the first of this process)",
                first.hash
            )
        );
        tracker.accepted(&first, ConfigSource::Cache, "[module=m]");
        let next = tracker.identify(br#"{"limit":2,"db":{"password":"pw-2"}}"#);
        let line = AppliedLine {
            tag: "[module=m]",
            hash: next.hash,
            source: ConfigSource::Server,
            previous: next.previous,
            changes: next.changes.as_deref(),
        }
        .to_string();
        assert_eq!(
            line,
            format!(
                "[module=m] config {} applied (from server; was {}): changed db.password, limit",
                next.hash, first.hash
            )
        );
    }

    #[test]
    fn status_json_has_stable_camel_case_names() {
        let mut tracker = Tracker::new(String::new());
        let first = tracker.identify(br#"{"a":1}"#);
        tracker.accepted(&first, ConfigSource::Server, "[t]");
        let next = tracker.identify(br#"{"a":2}"#);
        let applied = tracker.accepted(&next, ConfigSource::Server, "[t]");
        let json = serde_json::to_value(&applied).unwrap();
        assert_eq!(json["hash"], next.hash.to_string());
        assert_eq!(json["previousHash"], first.hash.to_string());
        assert_eq!(json["source"], "server");
        assert!(json["appliedAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(json["changes"]["changed"], serde_json::json!(["a"]));
        assert_eq!(json.as_object().unwrap().len(), 5);
    }
}
