//! What the embedded server knows: modules, sessions, instances, routes.
//!
//! One `Mutex<State>` shared by the handle, the admin API and every session.
//! Pushes to sessions are enqueued (an unbounded channel, never blocking)
//! while the lock is held, so every subscriber sees the snapshots in the
//! order the changes happened and the last list it gets is the current one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use bytestring::ByteString;
use serde::Serialize;
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::configs::ModuleConfigs;
use super::connection::OpenConnection;

use super::{ClosedSession, ReplyOrder};
use crate::etp::ws::WireFrame;
use crate::etp::Event;
use crate::events::{
    module_connected_event, CONFIG_SEND_CONFIG_CHANGED, CONFIG_SEND_CONFIG_WHEN_CONNECTED,
    CONFIG_SEND_ROUTES_CHANGED, CONFIG_SEND_ROUTES_WHEN_CONNECTED, TRANSPORT_GRPC,
};
use crate::types::{
    AddressConfiguration, BackendDeclaration, ConfigData, ModuleRequirements, RoutingConfig,
};

/// What the rest of the server tells a session.
pub(crate) enum Command {
    /// A frame to send: a push (config changed, addresses, routes).
    Send(WireFrame),
    /// Handshake answers held back by [`ReplyOrder::EventsLate`], computed
    /// when they are sent.
    Answers(Vec<Answer>),
    /// Close frame 1000, the server is stopping.
    Close,
    /// No close frame: the TCP connection just ends, as when a node crashes.
    Abort,
}

/// Identifies one WebSocket session (one connection) for its whole life.
pub(crate) type SessionId = u64;

/// The state and what never changes after start.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// The largest message a session accepts, in bytes.
    pub(crate) read_limit: usize,
    next_session: AtomicU64,
    /// How many connections of sessions are open, for a stop that waits
    /// until the last one is closed.
    open_connections: Arc<watch::Sender<usize>>,
}

impl Shared {
    pub(crate) fn new(read_limit: usize, reply_order: ReplyOrder) -> Self {
        Self {
            state: Mutex::new(State::new(reply_order)),
            read_limit,
            next_session: AtomicU64::new(1),
            open_connections: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Counts a session's connection until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        OpenConnection::new(&self.open_connections)
    }

    /// Follows how many connections of sessions are open.
    pub(crate) fn watch_open_connections(&self) -> watch::Receiver<usize> {
        self.open_connections.subscribe()
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

pub(crate) struct Module {
    /// The real service's id of the module (see [`super::configs::module_id`]).
    pub(crate) id: String,
    /// When the server first heard of the module.
    pub(crate) created_at: SystemTime,
    /// When a session of the module last connected / ended.
    pub(crate) last_connected_at: Option<SystemTime>,
    pub(crate) last_disconnected_at: Option<SystemTime>,
    /// Its configs; the active one is pushed byte for byte.
    pub(crate) configs: ModuleConfigs,
    /// The schema the module sent last, JSON text.
    pub(crate) schema: Option<ByteString>,
    /// The version the module sent with its schema.
    version: String,
    /// Shared with the module's sessions, read on every frame.
    frozen: Arc<AtomicBool>,
    /// `schema`, compiled at the first config pushed after it came.
    compiled: Option<super::schema::CompiledSchema>,
}

impl Module {
    fn new(name: &str) -> Self {
        Self {
            id: super::configs::module_id(name),
            created_at: SystemTime::now(),
            last_connected_at: None,
            last_disconnected_at: None,
            configs: ModuleConfigs::default(),
            schema: None,
            version: String::new(),
            frozen: Arc::default(),
            compiled: None,
        }
    }

    /// Checks `config` against the module's schema, if it sent one.
    pub(crate) fn check(&mut self, config: &str) -> Result<(), Vec<String>> {
        match self.schema.clone() {
            Some(schema) => super::schema::check(&mut self.compiled, &schema, config),
            None => Ok(()),
        }
    }

    /// The schema violations of `config` as field → description, as the
    /// real service details them; `None` if the module sent no schema.
    pub(crate) fn violations_by_field(
        &mut self,
        config: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let schema = self.schema.clone()?;
        Some(super::schema::violations_by_field(
            &mut self.compiled,
            &schema,
            config,
        ))
    }
}

struct SessionEntry {
    module: String,
    /// The session's mailbox.
    tx: UnboundedSender<Command>,
    /// Sent its schema: gets `CONFIG:SEND_CONFIG_CHANGED`.
    config_subscribed: bool,
    /// Gets `<m>_MODULE_CONNECTED` for each of these.
    required_modules: BTreeSet<String>,
    /// Gets `CONFIG:SEND_ROUTES_CHANGED`.
    routes_subscribed: bool,
    /// Declared at `MODULE:READY`: a live instance.
    instance: Option<BackendDeclaration>,
    /// When the module last sent `MODULE:READY`.
    ready_at: Option<SystemTime>,
}

/// A live instance as the admin API shows it.
pub(crate) struct LiveInstance<'a> {
    pub(crate) session: SessionId,
    /// The module of the session.
    pub(crate) module: &'a str,
    pub(crate) declaration: &'a BackendDeclaration,
    pub(crate) ready_at: SystemTime,
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

/// A handshake answer: an event the server sends because of an event the
/// module sent, computed from the state when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `CONFIG:SEND_CONFIG_WHEN_CONNECTED`: the module's active config.
    Config,
    /// `<module>_MODULE_CONNECTED`: the module's addresses.
    Addresses(String),
    /// `CONFIG:SEND_ROUTES_WHEN_CONNECTED`: the routing table.
    Routes,
}

pub(crate) struct State {
    modules: BTreeMap<String, Module>,
    /// Ordered by id, i.e. by connection order.
    sessions: BTreeMap<SessionId, SessionEntry>,
    closed: Vec<ClosedSession>,
    /// (module, event) → the ack text to answer instead of `ok`.
    failures: HashMap<(String, String), String>,
    reply_order: ReplyOrder,
    /// Module → how many sessions get its `<module>_MODULE_CONNECTED`.
    address_subscribers: HashMap<String, usize>,
    /// How many sessions get `CONFIG:SEND_ROUTES_CHANGED`.
    routes_subscribers: usize,
}

impl State {
    fn new(reply_order: ReplyOrder) -> Self {
        Self {
            modules: BTreeMap::new(),
            sessions: BTreeMap::new(),
            closed: Vec::new(),
            failures: HashMap::new(),
            reply_order,
            address_subscribers: HashMap::new(),
            routes_subscribers: 0,
        }
    }

    fn module_mut(&mut self, name: &str) -> &mut Module {
        self.modules
            .entry(name.to_owned())
            .or_insert_with(|| Module::new(name))
    }

    /// Every known module, by name.
    pub(crate) fn all_modules(&self) -> impl Iterator<Item = (&str, &Module)> {
        self.modules.iter().map(|(name, m)| (name.as_str(), m))
    }

    /// The module named `name`, if known.
    pub(crate) fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    /// The name of the module whose id is `id`.
    pub(crate) fn module_name_by_id(&self, id: &str) -> Option<String> {
        self.modules
            .iter()
            .find(|(_, m)| m.id == id)
            .map(|(name, _)| name.clone())
    }

    /// The known module `name`, to change it.
    pub(crate) fn known_module_mut(&mut self, name: &str) -> Option<&mut Module> {
        self.modules.get_mut(name)
    }

    /// Every live instance, newest `MODULE:READY` first (the real service's
    /// order of `config/routing/get_routes`).
    pub(crate) fn live_instances(&self) -> Vec<LiveInstance<'_>> {
        let mut live: Vec<LiveInstance<'_>> = self
            .sessions
            .iter()
            .filter_map(|(id, entry)| {
                Some(LiveInstance {
                    session: *id,
                    module: &entry.module,
                    declaration: entry.instance.as_ref()?,
                    ready_at: entry.ready_at?,
                })
            })
            .collect();
        live.sort_by_key(|b| std::cmp::Reverse((b.ready_at, b.session)));
        live
    }

    /// A new session of `module`; returns the module's frozen flag.
    pub(crate) fn register(
        &mut self,
        id: SessionId,
        module: &str,
        tx: UnboundedSender<Command>,
    ) -> Arc<AtomicBool> {
        let entry = self.module_mut(module);
        entry.last_connected_at = Some(SystemTime::now());
        let frozen = Arc::clone(&entry.frozen);
        crate::metrics::server_session_opened();
        self.sessions.insert(
            id,
            SessionEntry {
                module: module.to_owned(),
                tx,
                config_subscribed: false,
                required_modules: BTreeSet::new(),
                routes_subscribed: false,
                instance: None,
                ready_at: None,
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
        crate::metrics::server_session_closed();
        if let Some(module) = self.modules.get_mut(&entry.module) {
            module.last_disconnected_at = Some(SystemTime::now());
        }
        self.unsubscribe(&entry.required_modules, entry.routes_subscribed);
        if entry.instance.is_some() {
            self.push_instances_changed(&entry.module);
        }
    }

    pub(crate) fn reply_order(&self) -> ReplyOrder {
        self.reply_order
    }

    pub(crate) fn set_reply_order(&mut self, order: ReplyOrder) {
        self.reply_order = order;
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
    /// config changes. Returns what to answer.
    pub(crate) fn accept_schema(&mut self, id: SessionId, data: &ConfigData) -> Vec<Answer> {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return Vec::new();
        };
        entry.config_subscribed = true;
        let module_name = entry.module.clone();
        let module = self.module_mut(&module_name);
        module.schema = Some(ByteString::from(data.schema.get()));
        module.version.clone_from(&data.version);
        if module.configs.active().is_none() {
            let id = module.id.clone();
            module
                .configs
                .set_active_data(&module_name, &id, ByteString::from(data.config.get()));
        }
        vec![Answer::Config]
    }

    /// `MODULE:SEND_REQUIREMENTS`: subscribes the session and returns what
    /// to answer (the address lists, then the routes if asked).
    pub(crate) fn accept_requirements(
        &mut self,
        id: SessionId,
        requirements: &ModuleRequirements,
    ) -> Vec<Answer> {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return Vec::new();
        };
        let required: BTreeSet<String> = requirements.required_modules.iter().cloned().collect();
        let old_required = std::mem::replace(&mut entry.required_modules, required.clone());
        let old_routes =
            std::mem::replace(&mut entry.routes_subscribed, requirements.require_routes);
        self.unsubscribe(&old_required, old_routes);
        for module in required {
            *self.address_subscribers.entry(module).or_default() += 1;
        }
        if requirements.require_routes {
            self.routes_subscribers += 1;
        }
        let mut answers: Vec<Answer> = requirements
            .required_modules
            .iter()
            .map(|module| Answer::Addresses(module.clone()))
            .collect();
        if requirements.require_routes {
            answers.push(Answer::Routes);
        }
        answers
    }

    /// The events of `answers` for the session, from the state as it is now.
    pub(crate) fn answer_events(&self, id: SessionId, answers: &[Answer]) -> Vec<Event> {
        let Some(entry) = self.sessions.get(&id) else {
            return Vec::new();
        };
        answers
            .iter()
            .filter_map(|answer| match answer {
                Answer::Config => {
                    let config = self
                        .config(&entry.module)
                        .unwrap_or_else(|| ByteString::from_static("{}"));
                    Some(Event::new(
                        CONFIG_SEND_CONFIG_WHEN_CONNECTED,
                        0,
                        config.into_bytes(),
                    ))
                }
                Answer::Addresses(module) => {
                    json_event(&module_connected_event(module), &self.addresses(module))
                }
                Answer::Routes => json_event(CONFIG_SEND_ROUTES_WHEN_CONNECTED, &self.routes()),
            })
            .collect()
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
        entry.ready_at = Some(SystemTime::now());
        let module = entry.module.clone();
        self.push_instances_changed(&module);
    }

    /// Checks a module's config against the schema it registered (if it
    /// did), then stores it and pushes it to the module's sessions that sent
    /// their schema. Returns how many sessions it was pushed to, or the
    /// schema violations, when nothing is stored or pushed.
    pub(crate) fn set_config(
        &mut self,
        module: &str,
        config: ByteString,
    ) -> Result<usize, Vec<String>> {
        let entry = self.module_mut(module);
        entry.check(&config)?;
        let id = entry.id.clone();
        entry.configs.set_active_data(module, &id, config);
        Ok(self.push_active_config(module))
    }

    /// Pushes the module's active config (if it has one) to its sessions
    /// that sent their schema; returns to how many.
    pub(crate) fn push_active_config(&self, module: &str) -> usize {
        let Some(config) = self.config(module) else {
            return 0;
        };
        let frame = event_frame(CONFIG_SEND_CONFIG_CHANGED, config.into_bytes());
        let mut pushed = 0;
        for entry in self.sessions.values() {
            if entry.config_subscribed && entry.module == module {
                let _ = entry.tx.send(Command::Send(frame.clone()));
                pushed += 1;
            }
        }
        crate::metrics::server_pushed("config", pushed);
        pushed
    }

    pub(crate) fn config(&self, module: &str) -> Option<ByteString> {
        Some(self.modules.get(module)?.configs.active()?.data.clone())
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
                has_config: module.configs.active().is_some(),
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
                let _ = entry.tx.send(Command::Abort);
            }
        }
    }

    /// Closes every session with close frame 1000.
    pub(crate) fn close_sessions(&self) {
        for entry in self.sessions.values() {
            let _ = entry.tx.send(Command::Close);
        }
    }

    /// Takes back a session's subscriptions from the counts.
    fn unsubscribe(&mut self, required_modules: &BTreeSet<String>, routes: bool) {
        for module in required_modules {
            if let Some(count) = self.address_subscribers.get_mut(module) {
                *count -= 1;
                if *count == 0 {
                    self.address_subscribers.remove(module);
                }
            }
        }
        if routes {
            self.routes_subscribers = self.routes_subscribers.saturating_sub(1);
        }
    }

    /// The complete address list of `module` to its subscribers, the complete
    /// routing table to the routes subscribers.
    fn push_instances_changed(&self, module: &str) {
        // The lists cost O(instances) to build: building them for nobody
        // made N modules' joining O(N²).
        let addresses = self
            .address_subscribers
            .contains_key(module)
            .then(|| json_frame(&module_connected_event(module), &self.addresses(module)))
            .flatten();
        let routes = (self.routes_subscribers > 0)
            .then(|| json_frame(CONFIG_SEND_ROUTES_CHANGED, &self.routes()))
            .flatten();
        if addresses.is_none() && routes.is_none() {
            return;
        }
        let (mut address_pushes, mut route_pushes) = (0, 0);
        for entry in self.sessions.values() {
            if let Some(frame) = &addresses {
                if entry.required_modules.contains(module) {
                    let _ = entry.tx.send(Command::Send(frame.clone()));
                    address_pushes += 1;
                }
            }
            if let Some(frame) = &routes {
                if entry.routes_subscribed {
                    let _ = entry.tx.send(Command::Send(frame.clone()));
                    route_pushes += 1;
                }
            }
        }
        crate::metrics::server_pushed("module_connected", address_pushes);
        crate::metrics::server_pushed("routes", route_pushes);
    }
}

/// A frame `<name>||0||<value as JSON>`; `None` (logged) if it cannot be
/// serialized, which our wire types never fail to be.
fn json_frame<T: Serialize>(name: &str, value: &T) -> Option<WireFrame> {
    json_event(name, value).map(|event| WireFrame::new(event.encode()))
}

/// The event `<name>||0||<value as JSON>`, see [`json_frame`].
fn json_event<T: Serialize>(name: &str, value: &T) -> Option<Event> {
    match serde_json::to_vec(value) {
        Ok(json) => Some(Event::new(name.to_owned(), 0, Bytes::from(json))),
        Err(e) => {
            log::error!("cannot serialize the data of {name}: {e}");
            None
        }
    }
}

/// A frame `<name>||0||<data>`, ready for the wire.
fn event_frame(name: &str, data: Bytes) -> WireFrame {
    WireFrame::new(Event::new(name.to_owned(), 0, data).encode())
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::*;

    fn session(state: &mut State, id: SessionId, module: &str) -> UnboundedReceiver<Command> {
        let (tx, rx) = unbounded_channel();
        state.register(id, module, tx);
        rx
    }

    fn require(state: &mut State, id: SessionId, modules: &[&str], routes: bool) {
        let requirements = ModuleRequirements {
            required_modules: modules.iter().map(|m| (*m).to_owned()).collect(),
            require_routes: routes,
        };
        state.accept_requirements(id, &requirements);
    }

    fn ready(state: &mut State, id: SessionId) {
        let declaration = BackendDeclaration {
            address: AddressConfiguration::new("10.0.0.1", id.to_string()),
            ..BackendDeclaration::default()
        };
        state.accept_ready(id, declaration);
    }

    /// The names of the events waiting for a session.
    fn pushed(rx: &mut UnboundedReceiver<Command>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(command) = rx.try_recv() {
            if let Command::Send(frame) = command {
                let bytes = match frame {
                    WireFrame::Text(text) => text.into_bytes(),
                    WireFrame::Binary(data) => data,
                };
                names.push(Event::decode(bytes).expect("a frame").name.to_string());
            }
        }
        names
    }

    #[test]
    fn instance_changes_reach_exactly_the_current_subscribers() {
        let mut state = State::new(ReplyOrder::default());
        let mut watcher = session(&mut state, 1, "watcher");
        let mut a = session(&mut state, 2, "a");
        let _b = session(&mut state, 3, "b");

        // Nobody listens: nothing is built or sent.
        ready(&mut state, 3);
        assert!(pushed(&mut watcher).is_empty());

        require(&mut state, 1, &["a"], true);
        ready(&mut state, 2);
        assert_eq!(
            pushed(&mut watcher),
            ["a_MODULE_CONNECTED", CONFIG_SEND_ROUTES_CHANGED]
        );
        assert!(pushed(&mut a).is_empty());

        // Requirements sent again replace the earlier ones.
        require(&mut state, 1, &["b"], false);
        assert_eq!(state.address_subscribers.get("a"), None);
        assert_eq!(state.address_subscribers.get("b"), Some(&1));
        assert_eq!(state.routes_subscribers, 0);
        state.unregister(2);
        assert!(pushed(&mut watcher).is_empty());
        state.unregister(3);
        assert_eq!(pushed(&mut watcher), ["b_MODULE_CONNECTED"]);

        // A subscriber that leaves takes its subscriptions with it.
        state.unregister(1);
        assert!(state.address_subscribers.is_empty());
        assert_eq!(state.routes_subscribers, 0);
    }
}
