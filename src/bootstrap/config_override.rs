//! `remoteConfigOverride`: a JSON object laid over every remote config
//! before the application sees it, by an actor in front of the
//! application's receiver. The client core knows nothing of it: it sends,
//! caches and reports the config the config-service sent.

use actix::prelude::*;
use serde_json::{Map, Value};

use crate::client::{ReceiverError, RemoteConfig};
use crate::types::RawJson;

/// Lays a JSON object over every [`RemoteConfig`] and hands the result to
/// the application's receiver (Go: the override of isp-kit's `rc.Config`,
/// `rc.New(validator, remoteConfigOverride)`). Objects merge key by key at
/// every depth; any other value of the override (a number, a string, a
/// list, `null`) replaces what the config has there. `initial` and
/// `source` pass through unchanged. A config that is not a JSON object is
/// refused, as isp-kit refuses it.
///
/// Register its address as the client's `remote_config` receiver, or let
/// [`Bootstrap`](super::Bootstrap) do it.
pub struct ConfigOverride {
    overlay: Map<String, Value>,
    target: Recipient<RemoteConfig>,
}

impl std::fmt::Debug for ConfigOverride {
    /// Shows the overridden top-level keys' count only: the override may
    /// hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigOverride")
            .field("keys", &self.overlay.len())
            .finish_non_exhaustive()
    }
}

impl ConfigOverride {
    /// Lays `overlay` (a JSON object) over each config for `target`; `None`
    /// when `overlay` is not an object.
    pub fn new(overlay: &RawJson, target: Recipient<RemoteConfig>) -> Option<Self> {
        let overlay: Map<String, Value> = overlay.parse().ok()?;
        Some(Self { overlay, target })
    }
}

impl Actor for ConfigOverride {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for ConfigOverride {
    type Result = ResponseFuture<Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let merged = match merged(&msg.data, &self.overlay) {
            Ok(merged) => merged,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        // The config-service's hash and change summary go with it: they
        // say which config of the fleet this is, the overlay aside.
        let mut config = msg;
        config.data = merged.into();
        // Queued now, in arrival order; the client waits for the answer.
        let request = self.target.send(config);
        Box::pin(async move {
            request
                .await
                .unwrap_or_else(|e| Err(format!("remote config receiver: {e}").into()))
        })
    }
}

fn merged(data: &[u8], overlay: &Map<String, Value>) -> Result<Vec<u8>, ReceiverError> {
    let mut config: Value = serde_json::from_slice(data)
        .map_err(|e| format!("remote config is not valid json: {e}"))?;
    let Value::Object(object) = &mut config else {
        return Err("remote config is not a JSON object: remoteConfigOverride cannot apply".into());
    };
    merge(object, overlay);
    Ok(serde_json::to_vec(&config)?)
}

/// Lays `overlay` over `base`: objects merge, anything else replaces.
pub(crate) fn merge(base: &mut Map<String, Value>, overlay: &Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(over)) => merge(inner, over),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn objects_merge_at_every_depth_and_other_values_replace() {
        let mut base = object(json!({
            "db": {"host": "db1", "port": 5432, "pool": {"min": 1, "max": 5}},
            "hosts": ["a", "b"],
            "limit": 10,
            "name": "x"
        }));
        let overlay = object(json!({
            "db": {"port": 5433, "pool": {"max": 50}, "password": "hunter2"},
            "hosts": ["c"],
            "name": null,
            "limit": {"rps": 5},
            "new": true
        }));
        merge(&mut base, &overlay);
        assert_eq!(
            Value::Object(base),
            json!({
                "db": {"host": "db1", "port": 5433, "pool": {"min": 1, "max": 50}, "password": "hunter2"},
                "hosts": ["c"],
                "limit": {"rps": 5},
                "name": null,
                "new": true
            })
        );
    }

    #[test]
    fn a_config_that_is_not_an_object_is_refused_without_quoting_it() {
        let overlay = object(json!({"a": 1}));
        let err = merged(b"[\"hunter2\"]", &overlay).unwrap_err().to_string();
        assert!(err.contains("not a JSON object"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let merged = merged(br#"{"a":0,"b":2}"#, &overlay).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&merged).unwrap(),
            json!({"a":1,"b":2})
        );
    }
}
