//! The examples call their required module through the balanced client:
//! the module starts, learns the addresses, calls them, and follows a
//! second instance joining and leaving.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isp_cluster::server::ConfigServer;

mod common;
use common::{example_binary, wait_until};

/// The instances named in `gateway: echo answered "…" from ADDR` lines.
fn answered_by(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("gateway: echo answered "))
        .map(|rest| match rest.rsplit_once(" from ") {
            Some((_, addr)) => addr.to_owned(),
            None => panic!("an echo call failed: {rest}"),
        })
        .collect()
}

#[test]
fn the_quickstart_gateway_calls_echo_through_joins_and_leaves() {
    let output = Command::new(example_binary("quickstart"))
        .env_remove("RUST_LOG")
        .output()
        .expect("the quickstart example was built by cargo test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}\n{stdout}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{stdout}"))
    };
    let (joined, leaving) = (
        at("operator: starting a second instance"),
        at("operator: stopping them again"),
    );

    let first = answered_by(&lines[..joined]);
    assert_eq!(first.len(), 2, "{stdout}");
    assert_eq!(first[0], first[1], "one echo instance at first: {stdout}");
    let both = answered_by(&lines[joined..leaving]);
    assert_eq!(both.len(), 4, "{stdout}");
    let distinct: BTreeSet<&String> = both.iter().collect();
    assert_eq!(distinct.len(), 2, "calls spread over both: {stdout}");
    assert!(
        both.windows(2).all(|w| w[0] != w[1]),
        "round-robin: {stdout}"
    );
    let after = answered_by(&lines[leaving..]);
    assert_eq!(after, [first[0].clone(), first[0].clone()], "{stdout}");
}

/// A running copy of the `actix_web_app` example and its base URL.
struct WebApp {
    child: Child,
    base: String,
}

impl WebApp {
    /// Starts a copy and waits (without blocking the actix thread, which
    /// serves the config-service the copy registers with) until it says
    /// where it listens: after its first config.
    async fn start(config_service: &str) -> WebApp {
        let mut child = Command::new(example_binary("actix_web_app"))
            .args(["--hosts", config_service, "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the actix_web_app example was built by cargo test");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("http on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rx.try_recv() {
                Ok(addr) => {
                    return WebApp {
                        child,
                        base: format!("http://{addr}"),
                    }
                }
                Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {
                    actix::clock::sleep(Duration::from_millis(10)).await
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("the app never said where it listens: {e}")
                }
            }
        }
    }

    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn terminate(&mut self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "{status:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("no exit within 5 s of SIGTERM");
    }
}

impl Drop for WebApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET {base}/relay?msg=hi`: status and body.
async fn relay(client: &awc::Client, base: &str) -> (u16, String) {
    common::http_get(client, &format!("{base}/relay?msg=hi")).await
}

#[actix::test]
async fn two_web_app_copies_relay_to_each_other_and_one_stays_when_the_other_stops() {
    let server = ConfigServer::builder().start().await.unwrap();
    let hosts = server.addr().to_string();
    let mut first = WebApp::start(&hosts).await;
    let mut second = WebApp::start(&hosts).await;
    assert!(
        wait_until(Duration::from_secs(5), || server.instances("web-app").len()
            == 2)
        .await
    );
    let client = awc::Client::new();

    // The copies learn each other's address right after READY; then relays
    // from the first go round both.
    let expected: BTreeSet<String> = [first.addr(), second.addr()]
        .iter()
        .map(|addr| format!("hi from {addr}\n"))
        .collect();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let (status, body) = relay(&client, &first.base).await;
        assert_eq!(status, 200, "{body}");
        seen.insert(body);
        if seen == expected {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, expected, "relays reach both copies");

    second.terminate();
    assert!(
        wait_until(Duration::from_secs(5), || server.instances("web-app").len()
            == 1)
        .await
    );
    for _ in 0..6 {
        assert_eq!(
            relay(&client, &first.base).await,
            (200, format!("hi from {}\n", first.addr()))
        );
    }
    first.terminate();
    server.stop().await;
}
