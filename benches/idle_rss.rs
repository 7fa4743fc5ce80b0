//! Idle memory of the `module` example while connected to an embedded
//! config-service: its resident set after it became active and idled 2 s.
//!
//! ```sh
//! cargo build --release --example module && cargo bench --bench idle_rss
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use isp_cluster::server::ConfigServer;

fn module_binary() -> PathBuf {
    let mut dir = std::env::current_exe().expect("bench binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join("module")
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn main() {
    let binary = module_binary();
    if !binary.exists() {
        eprintln!(
            "idle_rss: {} is missing; run `cargo build --release --example module` first",
            binary.display()
        );
        return;
    }
    let system = actix::System::new();
    system.block_on(async {
        let server = ConfigServer::builder().start().await.expect("server starts");
        let mut child = Command::new(&binary)
            .args(["--hosts", &server.addr().to_string(), "--name", "idle"])
            .args(["--require", "auth", "--routes"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("module example starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let active = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .any(|line| line.contains(r#""event":"active""#))
        });
        while !active.is_finished() {
            actix::clock::sleep(Duration::from_millis(10)).await;
        }
        assert!(active.join().unwrap_or(false), "module became active");
        actix::clock::sleep(Duration::from_secs(2)).await;
        match memory_kib(child.id()) {
            Some((rss, hwm)) => println!(
                "idle_rss: module example connected and idle: VmRSS {rss} KiB ({:.1} MB), peak {hwm} KiB",
                rss as f64 * 1024.0 / 1e6
            ),
            None => println!("idle_rss: /proc is not available here"),
        }
        let _ = child.kill();
        let _ = child.wait();
        server.stop().await;
    });
}
