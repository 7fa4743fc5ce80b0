//! The `module` example's stdout contract, driven as a script would drive it.
#![cfg(unix)]

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use isp_cluster::server::ConfigServer;
use serde_json::{json, Value};

mod common;
use common::{example_binary, wait_until};

struct Module {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Module {
    fn start(args: &[&str]) -> Module {
        let mut child = Command::new(example_binary("module"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the module example was built by cargo test");
        let lines = common::stdout_lines(&mut child);
        Module { child, lines }
    }

    /// The next stdout line, parsed; every line must be one JSON object.
    async fn next(&self) -> Value {
        for _ in 0..500 {
            match self.lines.try_recv() {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not one json object per line: {line:?}: {e}"));
                    assert!(value.is_object(), "{line}");
                    return value;
                }
                Err(mpsc::TryRecvError::Empty) => {
                    actix::clock::sleep(Duration::from_millis(10)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => panic!("module exited"),
            }
        }
        panic!("no line within 5 s");
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("module did not exit on SIGTERM");
    }
}

#[actix::test]
async fn prints_one_json_object_per_event_and_closes_on_sigterm() {
    let server = ConfigServer::builder().start().await.unwrap();
    let host = server.addr().to_string();
    let dir = std::env::temp_dir().join(format!("isp-cluster-module-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let default_config = dir.join("default.json");
    std::fs::write(&default_config, r#"{"limit":5}"#).unwrap();

    let mut module = Module::start(&[
        "--hosts",
        &host,
        "--name",
        "gateway",
        "--require",
        "auth",
        "--routes",
        "--config-file",
        default_config.to_str().unwrap(),
        "--address",
        "10.1.2.3:7000",
    ]);
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(module.next().await);
    }
    let kinds: Vec<&str> = first.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"active"), "{first:?}");
    assert!(first.contains(&json!({"event":"config","config":{"limit":5},"source":"server"})));
    assert!(first.contains(&json!({"event":"hosts","module":"auth","hosts":[]})));
    let routes = first.iter().find(|v| v["event"] == "routes").unwrap();
    assert_eq!(routes["routes"], json!([]), "gateway is not ready yet");
    assert_eq!(first[3], json!({"event":"active","host":host}));

    // Its own READY changes the routing table.
    let routes = module.next().await;
    assert_eq!(routes["event"], "routes");
    assert_eq!(routes["routes"][0]["moduleName"], "gateway");

    server.set_config("gateway", json!({"limit": 6})).unwrap();
    assert_eq!(
        module.next().await,
        json!({"event":"config","config":{"limit":6},"source":"server"})
    );
    let declared = server.instances("gateway");
    assert_eq!(declared[0].address.host_port(), "10.1.2.3:7000");

    let status = module.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        wait_until(Duration::from_secs(5), || server
            .closed_sessions()
            .iter()
            .any(|c| c.module == "gateway" && c.code == Some(1000)))
        .await
    );
    server.stop().await;
}

#[actix::test]
async fn prints_inactive_with_the_server_text() {
    let server = ConfigServer::builder().start().await.unwrap();
    server.fail_event(
        "billing",
        "MODULE:SEND_REQUIREMENTS",
        Some("no such module: x"),
    );
    let mut module = Module::start(&["--hosts", &server.addr().to_string(), "--name", "billing"]);
    let mut line = module.next().await;
    while line["event"] == "config" {
        line = module.next().await;
    }
    assert_eq!(line["event"], "inactive", "{line}");
    assert_eq!(
        line["reason"],
        "server refused MODULE:SEND_REQUIREMENTS: no such module: x"
    );
    assert!(module.terminate().success());
    server.stop().await;
}

#[actix::test]
async fn a_cache_file_from_one_run_is_printed_as_source_cache_by_the_next_with_every_node_down() {
    let server = ConfigServer::builder()
        .config("ledger", json!({"limit": 9}))
        .start()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "isp-cluster-module-cache-{}-{}",
        std::process::id(),
        std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("ledger.json");
    let cache_arg = cache.to_str().unwrap();

    let host = server.addr().to_string();
    let mut first = Module::start(&[
        "--hosts",
        &host,
        "--name",
        "ledger",
        "--cache-file",
        cache_arg,
    ]);
    assert_eq!(
        first.next().await,
        json!({"event":"config","config":{"limit":9},"source":"server"})
    );
    let cached = || {
        std::fs::read(&cache)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    assert!(
        wait_until(Duration::from_secs(5), || cached()
            == Some(json!({"limit": 9})))
        .await
    );
    assert!(first.terminate().success());
    server.stop().await;

    // Every node down now: the next run starts from the cache.
    let mut second = Module::start(&[
        "--hosts",
        &host,
        "--name",
        "ledger",
        "--cache-file",
        cache_arg,
    ]);
    assert_eq!(
        second.next().await,
        json!({"event":"config","config":{"limit":9},"source":"cache"})
    );
    assert_eq!(second.next().await["event"], "inactive");
    assert!(second.terminate().success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix::test]
async fn serves_metrics_health_and_status_with_infra() {
    let server = ConfigServer::builder().start().await.unwrap();
    let host = server.addr().to_string();
    let mut module = Module::start(&[
        "--hosts",
        &host,
        "--name",
        "observed",
        "--infra",
        "127.0.0.1:0",
    ]);
    let infra = module.next().await;
    assert_eq!(infra["event"], "infra", "{infra}");
    let address = infra["address"].as_str().unwrap().to_owned();
    let mut line = module.next().await;
    while line["event"] != "active" {
        line = module.next().await;
    }
    let http = awc::Client::new();
    let (status, body) =
        common::http_get(&http, &format!("http://{address}/internal/health")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(r#"{"status":"pass","details":{"configServiceConnection":"#),
        "{body}"
    );
    let (status, body) =
        common::http_get(&http, &format!("http://{address}/internal/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l == r#"isp_cluster_sessions_established_total{module="observed"} 1"#),
        "{body}"
    );
    let (status, body) =
        common::http_get(&http, &format!("http://{address}/internal/status")).await;
    assert_eq!(status, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["state"], "active");
    assert_eq!(status["host"], host.as_str());
    assert!(module.terminate().success());
    server.stop().await;
}
