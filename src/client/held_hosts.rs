//! Empty-list protection for required modules (opt-in per module, see
//! [`ClusterClientBuilder::keep_last_hosts`](super::ClusterClientBuilder::keep_last_hosts)).
//!
//! The config-service sends `[]` for a required module it does not know,
//! and while every instance of it is restarting; Go hands that to the
//! upgrader, and so does this client by default. A module that opted in
//! keeps its last non-empty list instead (nacos calls this push-empty
//! protection; gRPC's xDS keeps the last good resource by default): the
//! receiver gets that list again, the status shows it held and since when,
//! and the next non-empty list replaces it. The guard lives in the delivery
//! actor, as long as the client: a new session's `[]` does not erase the
//! list of the one before.

use std::time::SystemTime;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::messages::ShownHosts;
use super::{HostsChanged, Shared};

/// A required module whose last non-empty address list is kept while the
/// config-service sends an empty one (in [`Status::held_hosts`](super::Status::held_hosts)).
/// Go's client has no counterpart. Serializes as `{"module":"billing",
/// "hosts":["10.0.0.9:9003"],"since":"2026-12-01T09:30:00.000Z"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldHosts {
    /// The required module.
    pub module: String,
    /// The list kept (what its receiver got last).
    pub hosts: Vec<String>,
    /// When the first empty list arrived.
    pub since: SystemTime,
}

impl Serialize for HeldHosts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("HeldHosts", 3)?;
        s.serialize_field("module", &self.module)?;
        s.serialize_field("hosts", &self.hosts)?;
        s.serialize_field("since", &crate::time::rfc3339(self.since))?;
        s.end()
    }
}

/// The guard of every required module, by index.
pub(crate) struct HostsGuard {
    modules: Vec<Guarded>,
}

#[derive(Default)]
struct Guarded {
    enabled: bool,
    /// The last non-empty list.
    last: Vec<String>,
    /// Holding `last` since then.
    held_since: Option<SystemTime>,
}

impl HostsGuard {
    /// `enabled[i]`: whether the `i`th required module opted in.
    pub(crate) fn new(enabled: impl IntoIterator<Item = bool>) -> Self {
        Self {
            modules: enabled
                .into_iter()
                .map(|enabled| Guarded {
                    enabled,
                    ..Guarded::default()
                })
                .collect(),
        }
    }

    /// What to deliver for the list the server sent for the `index`th
    /// required module: the list itself, or the kept one instead of an
    /// empty list. Logs and records in `shared` when holding starts and
    /// ends.
    pub(crate) fn filter(
        &mut self,
        index: usize,
        sent: HostsChanged,
        tag: &str,
        shared: &Shared,
    ) -> HostsChanged {
        let Some(guard) = self.modules.get_mut(index).filter(|g| g.enabled) else {
            return sent;
        };
        let module = sent.module;
        if !sent.hosts.is_empty() {
            guard.last.clone_from(&sent.hosts);
            if guard.held_since.take().is_some() {
                log::info!(
                    "{tag} addresses of {module} again; the held list is replaced by {}",
                    ShownHosts(&sent.hosts)
                );
                shared.update(|s| s.held_hosts.retain(|h| h.module != module));
            }
            return HostsChanged {
                module,
                hosts: sent.hosts,
            };
        }
        if guard.last.is_empty() {
            // Nothing to keep yet: `[]` as Go delivers it.
            return HostsChanged {
                module,
                hosts: sent.hosts,
            };
        }
        if guard.held_since.is_none() {
            let since = SystemTime::now();
            guard.held_since = Some(since);
            log::warn!(
                "{tag} the config-service sent no address of {module}; keeping its last {} \
                 (empty-list protection) until it sends some",
                ShownHosts(&guard.last)
            );
            let held = HeldHosts {
                module: module.clone(),
                hosts: guard.last.clone(),
                since,
            };
            shared.update(|s| {
                s.held_hosts.retain(|h| h.module != held.module);
                s.held_hosts.push(held);
            });
        } else {
            log::debug!("{tag} no address of {module} again; still holding its last list");
        }
        HostsChanged {
            module,
            hosts: guard.last.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(module: &str, list: &[&str]) -> HostsChanged {
        HostsChanged {
            module: module.to_owned(),
            hosts: list.iter().map(|h| (*h).to_owned()).collect(),
        }
    }

    #[test]
    fn off_delivers_the_empty_list() {
        let shared = Shared::new();
        let mut guard = HostsGuard::new([false]);
        guard.filter(0, hosts("b", &["h:1"]), "[t]", &shared);
        let out = guard.filter(0, hosts("b", &[]), "[t]", &shared);
        assert!(out.hosts.is_empty());
        assert!(shared.lock().held_hosts.is_empty());
    }

    #[test]
    fn on_keeps_the_last_list_until_a_new_one() {
        let shared = Shared::new();
        let mut guard = HostsGuard::new([false, true]);
        // Nothing kept yet: the empty list goes through.
        assert!(guard
            .filter(1, hosts("b", &[]), "[t]", &shared)
            .hosts
            .is_empty());
        guard.filter(1, hosts("b", &["h:1", "h:2"]), "[t]", &shared);
        let out = guard.filter(1, hosts("b", &[]), "[t]", &shared);
        assert_eq!(out.hosts, ["h:1", "h:2"]);
        let held = shared.lock().held_hosts.clone();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].module, "b");
        let since = held[0].since;
        // Still empty: still held, since the first empty list.
        let out = guard.filter(1, hosts("b", &[]), "[t]", &shared);
        assert_eq!(out.hosts, ["h:1", "h:2"]);
        assert_eq!(shared.lock().held_hosts[0].since, since);
        // A new list replaces it.
        let out = guard.filter(1, hosts("b", &["h:3"]), "[t]", &shared);
        assert_eq!(out.hosts, ["h:3"]);
        assert!(shared.lock().held_hosts.is_empty());
        let out = guard.filter(1, hosts("b", &[]), "[t]", &shared);
        assert_eq!(out.hosts, ["h:3"]);
    }
}
