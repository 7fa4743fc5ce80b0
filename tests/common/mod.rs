//! Test support: a receiver actor that records what it is sent and can be
//! told to reject, stall or stop.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ClusterClientBuilder, ConfigData, HostsChanged,
    ModuleInfo, RawJson, ReceiverError, RemoteConfig, RoutesChanged, SessionEvent,
};

/// Everything a [`Recorder`] saw, shared with the test.
#[derive(Default)]
pub struct Log {
    pub configs: Vec<(serde_json::Value, bool)>,
    pub routes: Vec<RoutesChanged>,
    pub hosts: Vec<HostsChanged>,
    pub events: Vec<(Instant, SessionEvent)>,
}

/// What a [`Recorder`] does with the next messages.
#[derive(Default, Clone)]
pub struct Behaviour {
    /// Answer `Err` with this text.
    pub reject: Option<String>,
    /// Sleep this long before answering.
    pub delay: Duration,
}

#[derive(Clone, Default)]
pub struct Shared {
    pub log: Arc<Mutex<Log>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
}

impl Shared {
    pub fn configs(&self) -> Vec<(serde_json::Value, bool)> {
        self.log.lock().unwrap().configs.clone()
    }
    pub fn routes(&self) -> Vec<RoutesChanged> {
        self.log.lock().unwrap().routes.clone()
    }
    pub fn hosts(&self) -> Vec<HostsChanged> {
        self.log.lock().unwrap().hosts.clone()
    }
    pub fn events(&self) -> Vec<SessionEvent> {
        self.log
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
    pub fn timed_events(&self) -> Vec<(Instant, SessionEvent)> {
        self.log.lock().unwrap().events.clone()
    }
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
    pub fn active_count(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, SessionEvent::Active { .. }))
            .count()
    }
}

pub struct Recorder {
    pub shared: Shared,
}

impl Recorder {
    pub fn start_new() -> (Addr<Recorder>, Shared) {
        let shared = Shared::default();
        let addr = Recorder {
            shared: shared.clone(),
        }
        .start();
        (addr, shared)
    }

    fn answer(&self) -> ResponseActFuture<Self, Result<(), ReceiverError>> {
        let behaviour = self.shared.behaviour.lock().unwrap().clone();
        Box::pin(
            actix::clock::sleep(behaviour.delay).into_actor(self).map(
                move |_, _, _| match behaviour.reject {
                    Some(text) => Err(text.into()),
                    None => Ok(()),
                },
            ),
        )
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Recorder {
    type Result = ResponseActFuture<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let value: serde_json::Value = msg.parse().expect("delivered configs are json");
        if self.shared.behaviour.lock().unwrap().reject.is_none() {
            self.shared
                .log
                .lock()
                .unwrap()
                .configs
                .push((value, msg.initial));
        }
        self.answer()
    }
}

impl Handler<RoutesChanged> for Recorder {
    type Result = ResponseActFuture<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        self.shared.log.lock().unwrap().routes.push(msg);
        self.answer()
    }
}

impl Handler<HostsChanged> for Recorder {
    type Result = ResponseActFuture<Self, Result<(), ReceiverError>>;

    fn handle(&mut self, msg: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        self.shared.log.lock().unwrap().hosts.push(msg);
        self.answer()
    }
}

impl Handler<SessionEvent> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: SessionEvent, _: &mut Context<Self>) {
        self.shared
            .log
            .lock()
            .unwrap()
            .events
            .push((Instant::now(), msg));
    }
}

/// Stops the recorder.
pub struct Stop;
impl Message for Stop {
    type Result = ();
}
impl Handler<Stop> for Recorder {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

/// An example binary cargo built next to the running test binary.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let mut path = std::env::current_exe().expect("test binary path");
    path.pop(); // the test binary
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples").join(name)
}

/// The child's stdout, line by line, read on a thread of its own so that
/// the child never blocks on a full pipe.
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// How long a quick module's server has to acknowledge an emit.
pub const QUICK_ACK_TIMEOUT: Duration = Duration::from_millis(300);

/// The module "gateway" with short timeouts, so that every fault shows
/// within a second.
pub fn quick_module() -> ClusterClientBuilder {
    init_logs();
    let info = ModuleInfo::new(
        "gateway",
        "1.0.0",
        AddressConfiguration::new("10.0.0.2", "9002"),
    );
    let schema = RawJson::from_value(&serde_json::json!({"type": "object"})).unwrap();
    ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", schema, RawJson::empty_object()),
    )
    .ack_timeout(QUICK_ACK_TIMEOUT)
    .initial_wait(Duration::from_millis(300))
    .config_initial_wait(Duration::from_millis(300))
    .config_timeout(Duration::from_millis(300))
    .ping(Duration::from_millis(200), Duration::from_millis(200))
    .connect_timeout(Duration::from_millis(300))
    .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// `GET url` with `client`: the status and the body as text (status 0 and
/// the error's text when no response came).
pub async fn http_get(client: &awc::Client, url: &str) -> (u16, String) {
    match client.get(url).send().await {
        Ok(mut response) => {
            let body = response.body().await.unwrap_or_default();
            (
                response.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
        Err(e) => (0, e.to_string()),
    }
}

/// A CA made for this test run.
pub fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "isp-cluster test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A server certificate for `names` signed by `ca` (expired since 2001
/// when `expired`): (chain PEM, key PEM).
pub fn server_cert(
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    names: &[&str],
    expired: bool,
) -> (String, String) {
    use rcgen::{date_time_ymd, CertificateParams, KeyPair};
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    if expired {
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Waits up to `timeout` until the client's `last_error` contains `text`;
/// fails the test with the client's status otherwise.
pub async fn assert_last_error_within(client: &ClusterClient, timeout: Duration, text: &str) {
    assert!(
        wait_until(timeout, || client
            .status()
            .last_error
            .is_some_and(|e| e.contains(text)))
        .await,
        "{:?}",
        client.status()
    );
}
