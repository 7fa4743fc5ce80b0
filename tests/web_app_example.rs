//! The actix-web example as its users run it: a module whose HTTP handlers
//! follow the remote config, and a graceful SIGTERM.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isp_cluster::server::ConfigServer;
use serde_json::json;

mod common;
use common::{example_binary, wait_until};

async fn get(url: &str) -> (u16, String) {
    common::http_get(&awc::Client::new(), url).await
}

#[actix::test]
async fn serves_the_hot_config_masks_secrets_and_closes_with_1000_on_sigterm() {
    let server = ConfigServer::builder().start().await.unwrap();
    let mut child = Command::new(example_binary("actix_web_app"))
        .args([
            "--hosts",
            &server.addr().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the actix_web_app example was built by cargo test");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("http on http://").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        match rx.try_recv() {
            Ok(addr) => break addr,
            Err(_) if Instant::now() < deadline => {
                actix::clock::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("the app never said where it listens: {e}"),
        }
    };
    let base = format!("http://{addr}");

    assert!(
        wait_until(Duration::from_secs(5), || server.instances("web-app").len()
            == 1)
        .await
    );
    let (status, body) = get(&format!("{base}/health")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(
        get(&format!("{base}/hello")).await,
        (200, "hello\n".to_owned())
    );
    let (_, config) = get(&format!("{base}/config")).await;
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["database"]["password"], "***");
    // The infra scope, mounted on the same server.
    let (status, body) = get(&format!("{base}/internal/health")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(r#"{"status":"pass","details":{"configServiceConnection":"#),
        "{body}"
    );
    let (status, body) = get(&format!("{base}/internal/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l == r#"isp_cluster_sessions_established_total{module="web-app"} 1"#),
        "{body}"
    );
    let (status, body) = get(&format!("{base}/internal/status")).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""state":"active""#), "{body}");

    server.set_config(
        "web-app",
        json!({"greeting": "hej", "database": {"url": "postgres://x", "password": "new-secret"}}),
    ).unwrap();
    let mut hello = String::new();
    for _ in 0..200 {
        hello = get(&format!("{base}/hello")).await.1;
        if hello == "hej\n" {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hello, "hej\n", "the handler follows the pushed config");
    let (_, config) = get(&format!("{base}/config")).await;
    assert!(!config.contains("new-secret"), "{config}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut exit = None;
    for _ in 0..500 {
        if let Some(status) = child.try_wait().unwrap() {
            exit = Some(status);
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    let exit = exit.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no exit within 5 s of SIGTERM")
    });
    assert!(exit.success(), "{exit:?}");
    assert!(server
        .closed_sessions()
        .iter()
        .any(|c| c.module == "web-app" && c.code == Some(1000)));
    server.stop().await;
}
