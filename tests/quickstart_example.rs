//! The README's first command: the quickstart runs its whole story and exits
//! 0 on its own, well within 10 s.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

#[test]
fn quickstart_tells_the_whole_story_and_exits_0() {
    let started = Instant::now();
    let output = Command::new(common::example_binary("quickstart"))
        .env_remove("RUST_LOG")
        .output()
        .expect("the quickstart example was built by cargo test");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}\n{stdout}", output.status);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    for line in [
        "auth: registered at 10.0.0.11:9001",
        r#"gateway: initial config {"rateLimit":10,"auth":{"timeoutMs":500,"token":"***"}}"#,
        "gateway: config changed, rate limit 10 -> 20",
        r#"gateway: auth is at ["10.0.0.11:9001", "10.0.0.12:9001"]"#,
        r#"gateway: auth is at ["10.0.0.11:9001"]"#,
        r#"gateway metrics: isp_cluster_configs_delivered_total{module="gateway",source="server",outcome="accepted"} 2"#,
        r#"gateway metrics: isp_cluster_sessions_established_total{module="gateway"} 1"#,
        "shutting down: closing sessions with 1000",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("gateway: metrics at http://127.0.0.1:")
                && l.contains("/internal/metrics")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("s3cr3t-token"),
        "the secret is never printed"
    );
}
