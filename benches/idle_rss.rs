//! Idle memory and CPU of the `module` example while connected to an
//! embedded config-service: its resident set after it became active and
//! idled 2 s, then the CPU time its threads used and how often they were
//! scheduled over the next 10 s (`/proc/<pid>/task/*/schedstat`, in
//! nanoseconds: the pings every 5 s and the actix System check every 100 ms
//! are most of what runs). Then the same with the module's isp RPC server
//! on (`--rpc`: `rpc/echo` served and declared), for what serving RPC adds
//! to an idle module.
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

/// `VmRSS`, `VmHWM`, `RssAnon` (heap and stacks: what the process wrote)
/// and `RssFile` (its binary's and libraries' pages, shared with the page
/// cache) of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64, u64, u64)> {
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
    Some((
        field("VmRSS:")?,
        field("VmHWM:")?,
        field("RssAnon:")?,
        field("RssFile:")?,
    ))
}

/// The CPU time (ns) and the number of times scheduled, summed over the
/// threads of a process.
fn cpu_ns_and_runs(pid: u32) -> Option<(u64, u64)> {
    let mut total = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(|f| f.parse::<u64>().ok());
        let run_ns = fields.next()??;
        let _waited = fields.next()??;
        let runs = fields.next()??;
        total = (total.0 + run_ns, total.1 + runs);
    }
    Some(total)
}

/// How long the CPU of the idle process is watched.
const IDLE_CPU_WINDOW: Duration = Duration::from_secs(10);

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
        let server = ConfigServer::builder()
            .start()
            .await
            .expect("server starts");
        measure(&binary, &server, "module example connected and idle", &[]).await;
        measure(
            &binary,
            &server,
            "module example with its isp rpc server on, connected and idle",
            &["--rpc", "127.0.0.1:0"],
        )
        .await;
        server.stop().await;
    });
}

/// Starts the module example with `extra` arguments, waits until it is
/// active and idle, prints its memory and idle CPU, and kills it.
async fn measure(binary: &std::path::Path, server: &ConfigServer, what: &str, extra: &[&str]) {
    let mut child = Command::new(binary)
        .args(["--hosts", &server.addr().to_string(), "--name", "idle"])
        .args(["--require", "auth", "--routes"])
        .args(extra)
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
        Some((rss, hwm, anon, file)) => println!(
            "idle_rss: {what}: VmRSS {rss} KiB ({:.1} MB), peak \
             {hwm} KiB; anonymous (heap, stacks) {anon} KiB ({:.2} MB), file-backed (code) \
             {file} KiB",
            rss as f64 * 1024.0 / 1e6,
            anon as f64 * 1024.0 / 1e6
        ),
        None => println!("idle_rss: /proc is not available here"),
    }
    let before = cpu_ns_and_runs(child.id());
    actix::clock::sleep(IDLE_CPU_WINDOW).await;
    match (before, cpu_ns_and_runs(child.id())) {
        (Some((ns0, runs0)), Some((ns1, runs1))) => {
            let secs = IDLE_CPU_WINDOW.as_secs_f64();
            let per_second_us = (ns1 - ns0) as f64 / secs / 1000.0;
            println!(
                "idle_cpu: {what}: over {secs:.0} s idle: {per_second_us:.0} µs of CPU a second \
                 ({:.3} % of one core), scheduled {:.1} times a second",
                per_second_us / 1e4,
                (runs1 - runs0) as f64 / secs
            );
        }
        _ => println!("idle_cpu: /proc/<pid>/task/*/schedstat is not available here"),
    }
    let _ = child.kill();
    let _ = child.wait();
}
