//! `examples/rpc.rs` as RPC.md §5 describes it, run as child processes.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Served {
    child: Child,
    addr: String,
    _lines: Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    let mut child = Command::new(common::example_binary("rpc"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the example runs");
    let lines = common::stdout_lines(&mut child);
    let line = lines.recv_timeout(WAIT).expect("the listening line");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["event"], "listening", "{line}");
    let addr = event["addr"].as_str().unwrap().to_owned();
    Served {
        child,
        addr,
        _lines: lines,
    }
}

fn call(args: &[&str]) -> (i32, Vec<Value>, String) {
    let output = Command::new(common::example_binary("rpc"))
        .arg("call")
        .args(args)
        .output()
        .expect("the example runs");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_and_call_as_the_interop_checks_drive_them() {
    let served = serve();
    let hosts = format!("127.0.0.1:1,{}", served.addr); // a refused host is skipped
    let (code, lines, _) = call(&[
        "--hosts",
        &hosts,
        "--endpoint",
        "rpc/echo",
        "--body",
        r#"{"a":[1,"x"]}"#,
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines, [json!({"ok": true, "body": {"a": [1, "x"]}})]);

    let (code, lines, _) = call(&[
        "--hosts",
        &served.addr,
        "--endpoint",
        "rpc/fail",
        "--body",
        "{}",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        [
            json!({"ok": false, "code": "InvalidArgument", "message": "bad input",
                "errorCode": 400, "errorMessage": "bad input", "details": {"field": "x"}})
        ]
    );

    let (code, lines, _) = call(&[
        "--hosts",
        &served.addr,
        "--endpoint",
        "rpc/headers",
        "--body",
        "{}",
        "--request-id",
        "rid-1",
        "--header",
        "x-user-identity=42",
        "--header",
        "x-flag=a=b",
    ]);
    assert_eq!(code, 0);
    let seen = &lines[0]["body"];
    assert_eq!(seen["x-request-id"], "rid-1");
    assert_eq!(seen["x-user-identity"], "42");
    assert_eq!(seen["x-flag"], "a=b");
    assert_eq!(seen["proxy_method_name"], "rpc/headers");

    let (code, lines, _) = call(&[
        "--hosts",
        &served.addr,
        "--endpoint",
        "rpc/sleep",
        "--body",
        r#"{"ms":2000}"#,
        "--timeout-ms",
        "100",
    ]);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["code"], "DeadlineExceeded");

    let (code, lines, _) = call(&[
        "--hosts",
        &served.addr,
        "--endpoint",
        "rpc/none",
        "--body",
        "{}",
    ]);
    assert_eq!(code, 1);
    assert_eq!(lines[0]["code"], "NotFound");
    assert_eq!(
        lines[0]["message"],
        "handler not found for endpoint rpc/none"
    );

    let (code, lines, _) = call(&[
        "--hosts",
        &served.addr,
        "--endpoint",
        "rpc/echo",
        "--body",
        "[1]",
        "--count",
        "200",
        "--concurrency",
        "8",
    ]);
    assert_eq!(code, 0);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["calls"], 200);
    assert_eq!(lines[0]["errors"], 0);
    assert!(lines[0]["p99_us"].as_u64().unwrap() >= lines[0]["p50_us"].as_u64().unwrap());
    assert!(lines[0]["per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &["--endpoint", "x", "--body", "{}"][..],
        &["--hosts", "h:1", "--endpoint", "x", "--body", "{nope"],
        &[
            "--hosts",
            "h:1",
            "--endpoint",
            "x",
            "--body",
            "1",
            "--count",
            "x",
        ],
        &["--hosts", "h:1", "--endpoint", "x", "--body", "1", "--what"],
    ] {
        let (code, lines, stderr) = call(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(lines.is_empty());
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[cfg(unix)]
#[test]
fn sigterm_lets_the_call_in_flight_finish_then_exits_0() {
    let mut served = serve();
    let addr = served.addr.clone();
    let in_flight = std::thread::spawn(move || {
        call(&[
            "--hosts",
            &addr,
            "--endpoint",
            "rpc/sleep",
            "--body",
            r#"{"ms":1000}"#,
        ])
    });
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let (code, lines, _) = in_flight.join().unwrap();
    assert_eq!(
        (code, &lines[..]),
        (0, &[json!({"ok": true, "body": {"slept": 1000}})][..])
    );
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "exits after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}
