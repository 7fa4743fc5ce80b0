//! What the embedded server knows: modules, sessions, instances, routes.
//!
//! One `Mutex<State>` shared by the handle, the admin API and every session
//! actor. Pushes to sessions are enqueued (`do_send`, never blocking) while
//! the lock is held, so every subscriber sees the snapshots in the order the
//! changes happened and the last list it gets is the current one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use actix::Addr;
use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;

use super::session::{Push, Session, Shutdown};
use super::ClosedSession;
use crate::etp::Event;
use crate::events::{
    module_connected_event, CONFIG_SEND_CONFIG_CHANGED, CONFIG_SEND_ROUTES_CHANGED,
    CONFIG_SEND_ROUTES_WHEN_CONNECTED, TRANSPORT_GRPC,
};
use crate::types::{
    AddressConfiguration, BackendDeclaration, ConfigData, ModuleRequirements, RoutingConfig,
};

/// Identifies one WebSocket session (one connection) for its whole life.
pub(crate) type SessionId = u64;

/// The state and what never changes after start.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The largest message a session accepts, in bytes.
    pub(crate) read_limit: usize,
    next_session: AtomicU64,
}

impl Shared {
    pub(crate) fn new(read_limit: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            read_limit,
            next_session: AtomicU64::new(1),
        }
    }

    /// The state; a panic elsewhere while it was held does not make it
    /// unusable (every change below leaves it consistent).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn next_session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Module {
    /// The active config, JSON text pushed byte for byte.
    config: Option<ByteString>,
    /// The schema the module sent last, JSON text.
    schema: Option<ByteString>,
    /// The version the module sent with its schema.
    version: String,
    /// Shared with the module's sessions, read on every frame.
    frozen: Arc<AtomicBool>,
}

struct SessionEntry {
    module: String,
    addr: Addr<Session>,
    /// Sent its schema: gets `CONFIG:SEND_CONFIG_CHANGED`.
    config_subscribed: bool,
    /// Gets `<m>_MODULE_CONNECTED` for each of these.
    required_modules: BTreeSet<String>,
    /// Gets `CONFIG:SEND_ROUTES_CHANGED`.
    routes_subscribed: bool,
    /// Declared at `MODULE:READY`: a live instance.
    instance: Option<BackendDeclaration>,
}

/// One module as `GET /admin/modules` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModuleSummary {
    name: String,
    version: String,
    has_config: bool,
    has_schema: bool,
    sessions: usize,
    instances: Vec<BackendDeclaration>,
}

#[derive(Default)]
pub(crate) struct State {
    modules: BTreeMap<String, Module>,
    /// Ordered by id, i.e. by connection order.
    sessions: BTreeMap<SessionId, SessionEntry>,
    closed: Vec<ClosedSession>,
    /// (module, event) → the ack text to answer instead of `ok`.
    failures: HashMap<(String, String), String>,
}

impl State {
    fn module_mut(&mut self, name: &str) -> &mut Module {
        self.modules.entry(name.to_owned()).or_default()
    }

    /// A new session of `module`; returns the module's frozen flag.
    pub(crate) fn register(
        &mut self,
        id: SessionId,
        module: &str,
        addr: Addr<Session>,
    ) -> Arc<AtomicBool> {
        let frozen = Arc::clone(&self.module_mut(module).frozen);
        self.sessions.insert(
            id,
            SessionEntry {
                module: module.to_owned(),
                addr,
                config_subscribed: false,
                required_modules: BTreeSet::new(),
                routes_subscribed: false,
                instance: None,
            },
        );
        frozen
    }

    /// The session is gone: its instance, if any, leaves the address lists
    /// and the routing table, and subscribers are told.
    pub(crate) fn unregister(&mut self, id: SessionId) {
        let Some(entry) = self.sessions.remove(&id) else {
            return;
        };
        if entry.instance.is_some() {
            self.push_instances_changed(&entry.module);
        }
    }

    pub(crate) fn record_close(&mut self, closed: ClosedSession) {
        self.closed.push(closed);
    }

    pub(crate) fn closed_sessions(&self) -> Vec<ClosedSession> {
        self.closed.clone()
    }

    pub(crate) fn fail_event(&mut self, module: &str, event: &str, error: Option<&str>) {
        let key = (module.to_owned(), event.to_owned());
        match error {
            Some(text) => {
                self.failures.insert(key, text.to_owned());
            }
            None => {
                self.failures.remove(&key);
            }
        }
    }

    /// The ack text a test asked `event` of `module` to fail with.
    pub(crate) fn failure(&self, module: &str, event: &str) -> Option<String> {
        // Allocation-free lookup would need a borrowed key type; the map is
        // tiny and only consulted per handshake event.
        self.failures
            .get(&(module.to_owned(), event.to_owned()))
            .cloned()
    }

    pub(crate) fn set_frozen(&mut self, module: &str, frozen: bool) {
        self.module_mut(module)
            .frozen
            .store(frozen, Ordering::SeqCst);
    }

    /// `MODULE:SEND_CONFIG_SCHEMA`: keeps schema and version, takes the
    /// payload's config when the module has none, subscribes the session to
    /// config changes. Returns the active config.
    pub(crate) fn accept_schema(&mut self, id: SessionId, data: &ConfigData) -> ByteString {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return ByteString::from_static("{}");
        };
        entry.config_subscribed = true;
        let module_name = entry.module.clone();
        let module = self.module_mut(&module_name);
        module.schema = Some(ByteString::from(data.schema.get()));
        module.version.clone_from(&data.version);
        module
            .config
            .get_or_insert_with(|| ByteString::from(data.config.get()))
            .clone()
    }

    /// `MODULE:SEND_REQUIREMENTS`: subscribes the session and returns the
    /// events to emit now (the address lists, then the routes if asked).
    pub(crate) fn accept_requirements(
        &mut self,
        id: SessionId,
        requirements: &ModuleRequirements,
    ) -> Vec<ByteString> {
        let mut frames = Vec::with_capacity(requirements.required_modules.len() + 1);
        for module in &requirements.required_modules {
            frames.extend(json_frame(
                &module_connected_event(module),
                &self.addresses(module),
            ));
        }
        if requirements.require_routes {
            frames.extend(json_frame(
                CONFIG_SEND_ROUTES_WHEN_CONNECTED,
                &self.routes(),
            ));
        }
        if let Some(entry) = self.sessions.get_mut(&id) {
            entry.required_modules = requirements.required_modules.iter().cloned().collect();
            entry.routes_subscribed = requirements.require_routes;
        }
        frames
    }

    /// `MODULE:READY`: records the session's instance (normalized as the
    /// production service does) and pushes the module's addresses and the
    /// routes to their subscribers.
    pub(crate) fn accept_ready(&mut self, id: SessionId, mut declaration: BackendDeclaration) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        if declaration.module_name.is_empty() {
            declaration.module_name.clone_from(&entry.module);
        }
        if declaration.transport.is_empty() {
            declaration.transport = TRANSPORT_GRPC.to_owned();
        }
        if declaration.transport == TRANSPORT_GRPC {
            for endpoint in &mut declaration.endpoints {
                if endpoint.http_method.is_empty() {
                    endpoint.http_method = "POST".to_owned();
                }
            }
        }
        entry.instance = Some(declaration);
        let module = entry.module.clone();
        self.push_instances_changed(&module);
    }

    /// Stores a module's config and pushes it to the module's sessions that
    /// sent their schema. Returns how many sessions it was pushed to.
    pub(crate) fn set_config(&mut self, module: &str, config: ByteString) -> usize {
        let frame = text_frame(&Event::new(
            CONFIG_SEND_CONFIG_CHANGED,
            0,
            config.clone().into_bytes(),
        ));
        self.module_mut(module).config = Some(config);
        let mut pushed = 0;
        for entry in self.sessions.values() {
            if entry.config_subscribed && entry.module == module {
                entry.addr.do_send(Push(frame.clone()));
                pushed += 1;
            }
        }
        pushed
    }

    pub(crate) fn config(&self, module: &str) -> Option<ByteString> {
        self.modules.get(module)?.config.clone()
    }

    pub(crate) fn schema(&self, module: &str) -> Option<ByteString> {
        self.modules.get(module)?.schema.clone()
    }

    pub(crate) fn is_known(&self, module: &str) -> bool {
        self.modules.contains_key(module)
    }

    pub(crate) fn instances(&self, module: &str) -> Vec<BackendDeclaration> {
        self.sessions
            .values()
            .filter(|entry| entry.module == module)
            .filter_map(|entry| entry.instance.clone())
            .collect()
    }

    fn addresses(&self, module: &str) -> Vec<AddressConfiguration> {
        self.sessions
            .values()
            .filter(|entry| entry.module == module)
            .filter_map(|entry| Some(entry.instance.as_ref()?.address.clone()))
            .collect()
    }

    /// Every live instance of every module, by module name then connection
    /// order, without metrics autodiscovery (as the production service).
    pub(crate) fn routes(&self) -> RoutingConfig {
        let mut routes: Vec<(&str, SessionId, BackendDeclaration)> = self
            .sessions
            .iter()
            .filter_map(|(id, entry)| {
                let mut declaration = entry.instance.clone()?;
                declaration.metrics_autodiscovery = None;
                Some((entry.module.as_str(), *id, declaration))
            })
            .collect();
        routes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        routes.into_iter().map(|(_, _, d)| d).collect()
    }

    pub(crate) fn session_count(&self, module: &str) -> usize {
        self.sessions
            .values()
            .filter(|entry| entry.module == module)
            .count()
    }

    pub(crate) fn total_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn modules(&self) -> Vec<ModuleSummary> {
        self.modules
            .iter()
            .map(|(name, module)| ModuleSummary {
                name: name.clone(),
                version: module.version.clone(),
                has_config: module.config.is_some(),
                has_schema: module.schema.is_some(),
                sessions: self.session_count(name),
                instances: self.instances(name),
            })
            .collect()
    }

    /// Ends the sessions of `module` (all with `None`) without a close frame.
    pub(crate) fn abort_sessions(&self, module: Option<&str>) {
        for entry in self.sessions.values() {
            if module.is_none_or(|m| entry.module == m) {
                entry.addr.do_send(Shutdown::Abort);
            }
        }
    }

    /// Closes every session with close frame 1000.
    pub(crate) fn close_sessions(&self) {
        for entry in self.sessions.values() {
            entry.addr.do_send(Shutdown::Normal);
        }
    }

    /// The complete address list of `module` to its subscribers, the complete
    /// routing table to the routes subscribers.
    fn push_instances_changed(&self, module: &str) {
        let addresses = json_frame(&module_connected_event(module), &self.addresses(module));
        let routes = json_frame(CONFIG_SEND_ROUTES_CHANGED, &self.routes());
        for entry in self.sessions.values() {
            if let Some(frame) = &addresses {
                if entry.required_modules.contains(module) {
                    entry.addr.do_send(Push(frame.clone()));
                }
            }
            if let Some(frame) = &routes {
                if entry.routes_subscribed {
                    entry.addr.do_send(Push(frame.clone()));
                }
            }
        }
    }
}

/// A frame `<name>||0||<value as JSON>`; `None` (logged) if it cannot be
/// serialized, which our wire types never fail to be.
fn json_frame<T: Serialize>(name: &str, value: &T) -> Option<ByteString> {
    match serde_json::to_vec(value) {
        Ok(json) => Some(text_frame(&Event::new(name, 0, Bytes::from(json)))),
        Err(e) => {
            log::error!("cannot serialize the data of {name}: {e}");
            None
        }
    }
}

/// An event encoded for a text message. Our names and JSON data are UTF-8;
/// anything else is replaced lossily rather than failing the send.
pub(crate) fn text_frame(event: &Event) -> ByteString {
    let encoded = event.encode();
    match ByteString::try_from(encoded.clone()) {
        Ok(text) => text,
        Err(_) => ByteString::from(String::from_utf8_lossy(&encoded).into_owned()),
    }
}

/// `json` as text, if it is one valid JSON document.
pub(crate) fn json_text(json: &[u8]) -> Result<ByteString, serde_json::Error> {
    // Parsing into a `Value` checks every string is UTF-8, so the bytes are
    // valid text as a whole.
    serde_json::from_slice::<serde_json::Value>(json)?;
    match std::str::from_utf8(json) {
        Ok(text) => Ok(ByteString::from(text)),
        Err(e) => Err(serde::de::Error::custom(format_args!(
            "config is not utf-8: {e}"
        ))),
    }
}
