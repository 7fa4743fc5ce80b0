//! isp-kit's JSON log lines and the remote config's `logLevel`, through the
//! bootstrap, against the embedded config-service. One test: the logger
//! and the level are the process's.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isp_cluster::bootstrap::{Bootstrap, Environment};
use isp_cluster::logging::JsonLogger;
use isp_cluster::server::ConfigServer;
use log::LevelFilter;
use serde_json::{json, Value};

mod common;
use common::{wait_until, Recorder};

/// Lines written by the logger, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn json(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[actix::test]
async fn json_lines_carry_isp_kits_fields_and_the_remote_config_sets_the_level() {
    let lines = Lines::default();
    JsonLogger::to_writer(lines.clone())
        .install(LevelFilter::Info)
        .unwrap();

    let server = ConfigServer::builder().start().await.unwrap();
    let root = std::env::temp_dir().join(format!("isp-cluster-json-logs-{}", std::process::id()));
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::write(
        root.join("conf/config_dev.yml"),
        format!(
            "moduleName: orders\nconfigServiceAddress: {{ip: 127.0.0.1, port: {}}}\n\
             grpcOuterAddress: {{ip: 127.0.0.1, port: 9002}}\ngrpcInnerAddress: {{ip: 127.0.0.1, port: 9002}}\n\
             infraServerPort: {}\ninfraServerIp: 127.0.0.1\n",
            server.addr().port(),
            free_port()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("conf/default_remote_config.json"),
        r#"{"limit":1}"#,
    )
    .unwrap();
    let env = Environment::new(&root, &root).var("APP_MODE", "dev");
    let boot = Bootstrap::load::<Value>("1.0.0", &env)
        .unwrap()
        .remote_log_level();
    let (recorder, seen) = Recorder::start_new();
    let module = boot.start(recorder.recipient()).await.unwrap();
    let client = module.client().unwrap().clone();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);

    // Every line is isp-kit's shape; a session's carry its fields.
    let all = lines.json();
    assert!(!all.is_empty());
    for (line, raw) in all.iter().zip(lines.text().lines()) {
        // zap's order: level, time, name, message, then the fields.
        let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap();
        assert!(raw.starts_with("{\"level\":"), "{raw}");
        assert!(at("level") < at("ts") && at("ts") < at("logger") && at("logger") < at("msg"));
        let ts = line["ts"].as_str().unwrap();
        assert!(
            ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
            "{ts}"
        );
        assert!(["debug", "info", "warn", "error"].contains(&line["level"].as_str().unwrap()));
    }
    let host = server.addr().to_string();
    let session_line = all
        .iter()
        .find(|l| l["configService"] == host.as_str())
        .unwrap_or_else(|| panic!("no session line: {all:?}"));
    assert_eq!(session_line["module"], "orders");
    assert!(session_line["sessionId"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert!(!session_line["msg"].as_str().unwrap().starts_with('['));

    // The remote config's logLevel, once the application accepted it.
    assert_eq!(log::max_level(), LevelFilter::Info);
    log::debug!("before the change");
    server
        .set_config("orders", json!({"limit": 2, "logLevel": "debug"}))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || log::max_level()
            == LevelFilter::Debug)
        .await
    );
    assert_eq!(seen.configs().last().unwrap().0["limit"], 2);
    log::debug!("after the change");
    let after = lines.json();
    assert!(after
        .iter()
        .any(|l| l["msg"] == "after the change" && l["level"] == "debug"));
    assert!(!after.iter().any(|l| l["msg"] == "before the change"));

    // Not a level: refused before the application sees it; the level stays.
    let rejected = client.status().configs_rejected;
    server
        .set_config("orders", json!({"limit": 3, "logLevel": "verbose"}))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || client.status().configs_rejected
            > rejected)
        .await
    );
    let status = client.status();
    let reason = status.last_rejection.as_ref().unwrap().reason.clone();
    assert!(reason.contains("logLevel"), "{reason}");
    assert_eq!(log::max_level(), LevelFilter::Debug);
    assert_eq!(seen.configs().last().unwrap().0["limit"], 2);

    // Without the key the level stays; "error" raises it.
    server.set_config("orders", json!({"limit": 4})).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || seen.configs().last().unwrap().0
            ["limit"]
            == 4)
        .await
    );
    assert_eq!(log::max_level(), LevelFilter::Debug);
    server
        .set_config("orders", json!({"limit": 5, "logLevel": "error"}))
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || log::max_level()
            == LevelFilter::Error)
        .await
    );

    module.shutdown().await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
