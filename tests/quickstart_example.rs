//! The README's first command: the quickstart runs its whole story and exits
//! 0 on its own, well within 10 s. Its RPC part: the gateway calls prices
//! over isp RPC at the hosts the config-service gave it, its calls spread
//! over a second instance, and none is lost while that instance leaves.

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
        r#"gateway: 4 calls to prices/quote answered by {"prices#1": 2, "prices#2": 2}"#,
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

    // prices: one instance, then two, then one again.
    let prices_at = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("prices: prices#1 registered, serving prices/quote over isp rpc at ")
        })
        .unwrap_or_else(|| panic!("prices#1 serves: {stdout}"));
    assert!(
        stdout
            .lines()
            .any(|l| l == format!(r#"gateway: prices is at ["{prices_at}"]"#)),
        "the gateway learned prices#1's address from the config-service: {stdout}"
    );
    let one_instance = r#"gateway: 2 calls to prices/quote answered by {"prices#1": 2}"#;
    assert_eq!(
        stdout.lines().filter(|l| *l == one_instance).count(),
        2,
        "before the second instance and after it left: {stdout}"
    );
    let during_leave = stdout
        .lines()
        .find_map(|l| l.strip_prefix("gateway: prices kept answering while an instance left: "))
        .unwrap_or_else(|| panic!("the calls during the leave are counted: {stdout}"));
    let words: Vec<&str> = during_leave.split(' ').collect();
    let (answered, made) = (words[0], words[2]);
    assert!(
        answered == made
            && made.parse::<u32>().is_ok_and(|n| n > 0)
            && during_leave.ends_with(", 0 lost"),
        "no call lost while an instance left: {during_leave}"
    );
    assert!(!stdout.contains("a call to prices failed"), "{stdout}");
}
