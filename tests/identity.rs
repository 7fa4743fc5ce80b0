//! Which config runs where: each accepted config's hash and change summary
//! through the real client and the embedded server (the receiver, the typed
//! receiver, the status, the INFO line), two module processes converging on
//! one `isp_cluster_config_info` series, the cached config's hash at a cold
//! start, the offline client, and the empty host-list protection both ways.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::time::Duration;

use actix::prelude::*;
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, BuildError, ClusterClient, ClusterClientBuilder, ConfigChanged,
    ConfigChanges, ConfigData, ConfigHash, ConfigSource, HostsChanged, ModuleInfo, OfflineClient,
    RawJson, ReceiverError, RemoteConfig, Setting, TypedConfig,
};
use serde_json::{json, Value};

mod common;
use common::{example_binary, wait_until};

const WAIT: Duration = Duration::from_secs(10);

// ---- support -----------------------------------------------------------------

/// Every INFO, WARN and ERROR line of this test binary.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            self.0.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured lines that contain `text`.
fn lines_with(text: &str) -> Vec<String> {
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(text))
        .cloned()
        .collect()
}

fn hash_of(config: &Value) -> ConfigHash {
    ConfigHash::of_value(config)
}

fn module(name: &str, address: &str) -> ClusterClientBuilder {
    let address = AddressConfiguration::parse(address).unwrap();
    let info = ModuleInfo::new(name, "1.0.0", address);
    let schema = RawJson::from_value(&json!({"title": "Remote config", "type": "object"})).unwrap();
    ClusterClient::builder(
        info,
        ConfigData::new("1.0.0", schema, RawJson::empty_object()),
    )
    .backoff(Duration::from_millis(20), Duration::from_millis(200))
    .initial_wait(Duration::from_millis(500))
}

/// What a raw receiver saw of each config.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    hash: ConfigHash,
    changes: Option<ConfigChanges>,
    source: ConfigSource,
}

#[derive(Clone, Default)]
struct Configs(Arc<Mutex<Vec<Seen>>>);

impl Configs {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

struct Raw(Configs);

impl Actor for Raw {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Raw {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        let config: Value = msg.parse()?;
        if config["reject"] == true {
            return Err("rejected by the test".into());
        }
        self.0 .0.lock().unwrap().push(Seen {
            hash: msg.hash(),
            changes: msg.changes().cloned(),
            source: msg.source(),
        });
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Hosts(Arc<Mutex<Vec<Vec<String>>>>);

impl Hosts {
    fn lists(&self) -> Vec<Vec<String>> {
        self.0.lock().unwrap().clone()
    }
}

struct HostsReceiver(Hosts);

impl Actor for HostsReceiver {
    type Context = Context<Self>;
}

impl Handler<HostsChanged> for HostsReceiver {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        self.0 .0.lock().unwrap().push(msg.hosts);
        Ok(())
    }
}

// ---- the change summary through the client -------------------------------------

#[actix::test]
async fn each_accepted_config_has_its_hash_and_the_paths_changed_since_the_last_one() {
    capture_logs();
    let configs = [
        json!({"limit": 1, "db": {"user": "app", "password": "pw-id-1"}, "grid": [[1, 2], [3]], "mode": {"fast": true}}),
        // The same config again (the server re-sends it in its own order).
        json!({"mode": {"fast": true}, "grid": [[1, 2], [3]], "db": {"password": "pw-id-1", "user": "app"}, "limit": 1}),
        // A nested array element.
        json!({"limit": 1, "db": {"user": "app", "password": "pw-id-1"}, "grid": [[1, 5], [3]], "mode": {"fast": true}}),
        // A removed key.
        json!({"limit": 1, "db": {"password": "pw-id-1"}, "grid": [[1, 5], [3]], "mode": {"fast": true}}),
        // A type change.
        json!({"limit": 1, "db": {"password": "pw-id-1"}, "grid": [[1, 5], [3]], "mode": "fast"}),
        // Rejected: not the base of the next summary.
        json!({"limit": 1, "reject": true}),
        // One key, a secret.
        json!({"limit": 1, "db": {"password": "pw-id-2"}, "grid": [[1, 5], [3]], "mode": "fast"}),
    ];
    /// The paths changed, added and removed; `None`: no summary.
    type Paths<'a> = Option<(&'a [&'a str], &'a [&'a str], &'a [&'a str])>;
    let expected: [Paths; 7] = [
        None,
        Some((&[], &[], &[])),
        Some((&["grid[0][1]"], &[], &[])),
        Some((&[], &[], &["db.user"])),
        Some((&["mode"], &[], &[])),
        None,
        Some((&["db.password"], &[], &[])),
    ];
    let server = ConfigServer::builder()
        .config("ledger", configs[0].clone())
        .start()
        .await
        .unwrap();
    let seen = Configs::default();
    let client = module("ledger", "10.0.0.40:7040")
        .hosts([server.addr().to_string()])
        .remote_config(Raw(seen.clone()).start().recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let mut accepted = 1;
    for config in &configs[1..] {
        if config["reject"] == true {
            let rejected = client.status().configs_rejected;
            server.set_config("ledger", config.clone()).unwrap();
            assert!(wait_until(WAIT, || client.status().configs_rejected > rejected).await);
            continue;
        }
        server.set_config("ledger", config.clone()).unwrap();
        accepted += 1;
        assert!(wait_until(WAIT, || seen.seen().len() == accepted).await);
    }
    let seen = seen.seen();
    let accepted_configs: Vec<&Value> = configs.iter().filter(|c| c["reject"] != true).collect();
    let expected: Vec<_> = expected
        .iter()
        .zip(&configs)
        .filter(|(_, c)| c["reject"] != true)
        .map(|(e, _)| e)
        .collect();
    let mut previous: Option<ConfigHash> = None;
    for ((seen, config), expected) in seen.iter().zip(&accepted_configs).zip(&expected) {
        assert_eq!(seen.hash, hash_of(config), "{config}");
        assert_eq!(seen.source, ConfigSource::Server);
        match expected {
            None => assert_eq!(seen.changes, None, "the first config"),
            Some((changed, added, removed)) => {
                let changes = seen.changes.as_ref().expect("a summary");
                assert_eq!(changes.changed, *changed, "{config}");
                assert_eq!(changes.added, *added, "{config}");
                assert_eq!(changes.removed, *removed, "{config}");
                // Its INFO line, with the hash it replaced and those paths.
                if !changes.is_empty() {
                    let line = format!(
                        "INFO [module=ledger session=1] config {} applied (from server; was {}): {changes}",
                        seen.hash,
                        previous.unwrap()
                    );
                    assert_eq!(lines_with(&format!("config {} applied", seen.hash)), [line]);
                }
            }
        }
        previous = Some(seen.hash);
    }
    assert_eq!(seen[0].hash, seen[1].hash, "the same config, the same hash");
    let status = client.status();
    let applied = status.config.clone().expect("a config in force");
    assert_eq!(applied.hash, hash_of(&configs[6]));
    assert_eq!(applied.previous_hash, Some(hash_of(&configs[4])));
    assert_eq!(applied.source, ConfigSource::Server);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["config"]["hash"], applied.hash.to_string());
    assert_eq!(json["config"]["changes"]["changed"], json!(["db.password"]));
    let lines = CAPTURE.0.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("pw-id-")),
        "no value in any line: {lines:?}"
    );
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn a_typed_receiver_gets_the_summary_beside_new_and_previous() {
    #[derive(serde::Deserialize)]
    struct Limits {
        limit: u32,
    }
    type Seen = Arc<Mutex<Vec<(u32, Option<u32>, ConfigHash, Option<Vec<String>>)>>>;
    struct App(Seen);
    impl Actor for App {
        type Context = Context<Self>;
    }
    impl Handler<ConfigChanged<Limits>> for App {
        type Result = Result<(), ReceiverError>;
        fn handle(&mut self, msg: ConfigChanged<Limits>, _: &mut Context<Self>) -> Self::Result {
            let changed = msg.changes.as_ref().map(|c| c.changed.clone());
            self.0.lock().unwrap().push((
                msg.new.limit,
                msg.previous.map(|p| p.limit),
                msg.hash,
                changed,
            ));
            Ok(())
        }
    }

    let server = ConfigServer::builder()
        .config("typed-id", json!({"limit": 1, "name": "a"}))
        .start()
        .await
        .unwrap();
    let seen = Seen::default();
    let typed = TypedConfig::new(App(seen.clone()).start().recipient()).start();
    let client = module("typed-id", "10.0.0.41:7041")
        .hosts([server.addr().to_string()])
        .remote_config(typed.recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    server
        .set_config("typed-id", json!({"limit": 2, "name": "a"}))
        .unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().len() == 2).await);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        (1, None, hash_of(&json!({"limit": 1, "name": "a"})), None)
    );
    assert_eq!(
        seen[1],
        (
            2,
            Some(1),
            hash_of(&json!({"name": "a", "limit": 2})),
            Some(vec!["limit".to_owned()])
        )
    );
    client.close().await;
    server.stop().await;
}

// ---- the cache at a cold start ---------------------------------------------------

#[actix::test]
async fn the_cached_config_at_a_cold_start_shows_its_hash_with_source_cache() {
    let dir = std::env::temp_dir().join(format!(
        "isp-cluster-identity-{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("orders.json");
    let cached = json!({"limit": 7, "db": {"password": "pw-cold"}});
    // Another key order and whitespace than the node will send.
    std::fs::write(
        &cache,
        "{ \"db\": {\"password\": \"pw-cold\"},\n  \"limit\": 7 }",
    )
    .unwrap();
    // Every node down: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let seen = Configs::default();
    let client = module("orders", "10.0.0.42:7042")
        .hosts([host.clone()])
        .config_cache(&cache)
        .remote_config(Raw(seen.clone()).start().recipient())
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || client.status().config.is_some()).await);
    let applied = client.status().config.unwrap();
    assert_eq!(applied.hash, hash_of(&cached));
    assert_eq!(applied.source, ConfigSource::Cache);
    assert_eq!(applied.previous_hash, None);
    let json = serde_json::to_value(client.status()).unwrap();
    assert_eq!(json["config"]["source"], "cache");
    assert_eq!(json["config"]["hash"], hash_of(&cached).to_string());
    assert_eq!(
        seen.seen()[0].changes,
        None,
        "the first config of the process"
    );

    // The node comes back with the same config: the same hash, now from
    // the server, in force since the cache was applied.
    let server = ConfigServer::builder()
        .listen(host)
        .config("orders", cached.clone())
        .start()
        .await
        .expect("the port is free again");
    assert!(wait_until(WAIT, || client.healthcheck().is_ok()).await);
    let confirmed = client.status().config.unwrap();
    assert_eq!(confirmed.hash, applied.hash);
    assert_eq!(confirmed.source, ConfigSource::Server);
    assert_eq!(confirmed.applied_at, applied.applied_at);
    let again = seen.seen()[1].clone();
    assert_eq!(again.hash, applied.hash);
    assert!(again.changes.is_some_and(|c| c.is_empty()));
    client.close().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the offline client --------------------------------------------------------

#[actix::test]
async fn the_offline_client_hashes_and_summarizes_what_it_applies() {
    let dir = std::env::temp_dir().join(format!(
        "isp-cluster-identity-offline-{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("remote.json");
    std::fs::write(&file, r#"{"limit": 1, "feature": {"on": true}}"#).unwrap();
    let seen = Configs::default();
    let offline =
        OfflineClient::new(&file, Raw(seen.clone()).start().recipient()).module("offline-id");
    assert_eq!(offline.applied(), None);
    offline.run().await.unwrap();
    let first = offline.applied().unwrap();
    assert_eq!(
        first.hash,
        hash_of(&json!({"limit": 1, "feature": {"on": true}}))
    );
    assert_eq!(first.source, ConfigSource::File);
    std::fs::write(
        &file,
        r#"{"limit": 2, "feature": {"on": true}, "extra": []}"#,
    )
    .unwrap();
    offline.run().await.unwrap();
    let second = offline.applied().unwrap();
    assert_eq!(second.previous_hash, Some(first.hash));
    let changes = second.changes.unwrap();
    assert_eq!(changes.changed, ["limit"]);
    assert_eq!(changes.added, ["extra"]);
    let seen = seen.seen();
    assert_eq!(seen[1].changes.as_ref(), Some(&*changes));
    assert_eq!(seen[1].source, ConfigSource::File);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- empty host-list protection ---------------------------------------------------

#[actix::test]
async fn keep_last_hosts_needs_a_required_module() {
    let error = module("front", "10.0.0.43:7043")
        .hosts(["127.0.0.1:1"])
        .keep_last_hosts("billing")
        .start()
        .unwrap_err();
    assert!(
        matches!(
            error,
            BuildError::InvalidSetting {
                setting: Setting::KeepLastHosts,
                ..
            }
        ),
        "{error}"
    );
}

#[actix::test]
async fn an_empty_list_is_delivered_by_default_and_held_when_opted_in() {
    let server = ConfigServer::builder().start().await.unwrap();
    let host = server.addr().to_string();
    let billing_address = "10.0.0.44:7044";
    let start_billing = || {
        module("billing", billing_address)
            .hosts([host.clone()])
            .start()
            .unwrap()
    };
    let billing = start_billing();
    assert!(wait_until(WAIT, || billing.healthcheck().is_ok()).await);

    let plain_hosts = Hosts::default();
    let plain = module("front-plain", "10.0.0.45:7045")
        .hosts([host.clone()])
        .require_module(
            "billing",
            HostsReceiver(plain_hosts.clone()).start().recipient(),
        )
        .start()
        .unwrap();
    let kept_hosts = Hosts::default();
    let kept = module("front-kept", "10.0.0.46:7046")
        .hosts([host.clone()])
        .keep_last_hosts("billing")
        .require_module(
            "billing",
            HostsReceiver(kept_hosts.clone()).start().recipient(),
        )
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || plain.healthcheck().is_ok()
            && kept.healthcheck().is_ok())
        .await
    );
    let listed = vec![billing_address.to_owned()];
    assert_eq!(plain_hosts.lists().last(), Some(&listed));
    assert_eq!(kept_hosts.lists().last(), Some(&listed));
    assert!(kept.status().held_hosts.is_empty());

    // Every instance of billing gone: the config-service sends [].
    billing.close().await;
    assert!(wait_until(WAIT, || plain_hosts.lists().last() == Some(&vec![])).await);
    assert!(wait_until(WAIT, || !kept.status().held_hosts.is_empty()).await);
    let held = kept.status().held_hosts;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].module, "billing");
    assert_eq!(held[0].hosts, listed);
    let json = serde_json::to_value(kept.status()).unwrap();
    assert_eq!(json["heldHosts"][0]["module"], "billing");
    assert!(json["heldHosts"][0]["since"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let kept_lists = kept_hosts.lists();
    assert!(
        kept_lists.iter().all(|l| *l == listed),
        "the empty list never reached the receiver: {kept_lists:?}"
    );
    assert!(plain.status().held_hosts.is_empty());

    // Billing back: the next non-empty list replaces the held one.
    let billing = start_billing();
    assert!(wait_until(WAIT, || kept.status().held_hosts.is_empty()).await);
    assert_eq!(kept_hosts.lists().last(), Some(&listed));
    assert!(wait_until(WAIT, || plain_hosts.lists().last() == Some(&listed)).await);

    for client in [plain, kept, billing] {
        client.close().await;
    }
    server.stop().await;
}

// ---- two processes of one module ------------------------------------------------

/// One instance of a module: the `module` example in a process of its own,
/// its infra scope on a free port, its log lines read from stderr.
struct Instance {
    child: Child,
    address: String,
    logs: mpsc::Receiver<String>,
}

impl Instance {
    async fn start(host: &str, name: &str, address: &str) -> Instance {
        let mut child = Command::new(example_binary("module"))
            .args(["--hosts", host, "--name", name, "--address", address])
            .args(["--infra", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the module example was built by cargo test");
        let stdout = common::stdout_lines(&mut child);
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut instance = Instance {
            child,
            address: String::new(),
            logs,
        };
        let deadline = std::time::Instant::now() + WAIT;
        while instance.address.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no infra line");
            match stdout.try_recv() {
                Ok(line) => {
                    let event: Value = serde_json::from_str(&line).unwrap();
                    if event["event"] == "infra" {
                        instance.address = event["address"].as_str().unwrap().to_owned();
                    }
                }
                Err(_) => actix::clock::sleep(Duration::from_millis(10)).await,
            }
        }
        instance
    }

    /// The `isp_cluster_config_info` lines of its metrics.
    async fn config_series(&self, http: &awc::Client) -> Vec<String> {
        let url = format!("http://{}/internal/metrics", self.address);
        let (_, body) = common::http_get(http, &url).await;
        body.lines()
            .filter(|l| l.starts_with("isp_cluster_config_info{"))
            .map(str::to_owned)
            .collect()
    }

    /// Its log lines so far.
    fn log_lines(&self, into: &mut Vec<String>) {
        into.extend(self.logs.try_iter());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every instance shows exactly `series` as its config series.
async fn all_show(instances: &[&Instance], http: &awc::Client, series: &str) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut all = true;
        for instance in instances {
            all &= instance.config_series(http).await == [series];
        }
        if all {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(unix)]
#[actix::test]
async fn two_instances_show_one_hash_and_move_together_naming_the_changed_path() {
    let first = json!({"limit": 10, "db": {"host": "db.local", "password": "pw-fleet-1"}, "hosts": ["a", "b"]});
    let second = json!({"limit": 10, "db": {"host": "db.local", "password": "pw-fleet-2"}, "hosts": ["a", "b"]});
    let (h1, h2) = (hash_of(&first), hash_of(&second));
    let server = ConfigServer::builder()
        .config("fleet", first)
        .start()
        .await
        .unwrap();
    let host = server.addr().to_string();
    let a = Instance::start(&host, "fleet", "10.0.0.51:7051").await;
    let b = Instance::start(&host, "fleet", "10.0.0.52:7052").await;
    let http = awc::Client::new();
    let on =
        |hash: ConfigHash| format!(r#"isp_cluster_config_info{{module="fleet",hash="{hash}"}} 1"#);
    assert!(all_show(&[&a, &b], &http, &on(h1)).await, "both on {h1}");

    server.set_config("fleet", second).unwrap();
    assert!(
        all_show(&[&a, &b], &http, &on(h2)).await,
        "both moved to {h2}, the series of {h1} gone"
    );
    for instance in [&a, &b] {
        let mut lines = Vec::new();
        // The line is written before the series moves; give stderr a moment.
        let wanted = format!("config {h2} applied (from server; was {h1}): changed db.password");
        assert!(
            wait_until(WAIT, || {
                instance.log_lines(&mut lines);
                lines.iter().any(|l| l.ends_with(&wanted))
            })
            .await,
            "{lines:?}"
        );
        let applied: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" applied (from "))
            .collect();
        assert_eq!(applied.len(), 2, "one line per config: {applied:?}");
        assert!(
            applied[0].ends_with(&format!(
                "config {h1} applied (from server; the first of this process)"
            )),
            "{applied:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("pw-fleet")),
            "no value in any line: {lines:?}"
        );
    }
    drop((a, b));
    server.stop().await;
}
