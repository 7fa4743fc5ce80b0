//! The `bootstrap` example run as a Go module's deployment runs: a process
//! with `APP_MODE=dev` in a directory holding only `conf/config_dev.yml`
//! and `conf/default_remote_config.json`, no flags, no other variable.
#![cfg(unix)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use isp_cluster::server::ConfigServer;
use isp_cluster::AddressConfiguration;
use serde_json::{json, Value};

mod common;
use common::{example_binary, http_get, wait_until};

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A working directory with the two files of a dev deployment.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str, config_dev: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "isp-cluster-bootstrap-example-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::write(dir.join("conf/config_dev.yml"), config_dev).unwrap();
        std::fs::write(
            dir.join("conf/default_remote_config.json"),
            r#"{"greeting":"hello"}"#,
        )
        .unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The config: two config-service nodes in a `;` list, the first one dead;
/// the outer ip left empty (found toward the first node).
/// The application's own key: `greeter.name`.
fn config_dev(server: &ConfigServer, ports: (u16, u16), module_name: Option<&str>) -> String {
    let (http_port, infra_port) = ports;
    let name = module_name.map_or(String::new(), |n| format!("moduleName: {n}\n"));
    format!(
        "{name}configServiceAddress:\n  ip: \"127.0.0.1;127.0.0.1\"\n  port: \"{};{}\"\n\
         grpcOuterAddress:\n  ip: \"\"\n  port: {http_port}\n\
         grpcInnerAddress:\n  ip: 127.0.0.1\n  port: {http_port}\n\
         infraServerPort: {infra_port}\n\
         infraServerIp: 127.0.0.1\n\
         greeter:\n  name: world\n",
        free_port(),
        server.addr().port()
    )
}

struct Module {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Module {
    fn start(dir: &Path, vars: &[(&str, &str)]) -> Module {
        let mut child = Command::new(example_binary("bootstrap"))
            .current_dir(dir)
            .env_clear()
            .env("APP_MODE", "dev")
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the bootstrap example was built by cargo test");
        let lines = common::stdout_lines(&mut child);
        Module { child, lines }
    }

    /// The next stdout line, parsed.
    async fn next(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.lines.try_recv() {
                Ok(line) => {
                    return serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not one json object: {line:?}: {e}"))
                }
                Err(mpsc::TryRecvError::Empty) => {
                    actix::clock::sleep(Duration::from_millis(10)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => panic!("the module exited"),
            }
        }
        panic!("no line within 10 s");
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        panic!("the module did not exit on SIGTERM");
    }
}

/// Runs the module in `dir` until it registered as `name`; checks what it
/// declared, that its own HTTP app greets `whom` (the application's key
/// `greeter.name`) and that its infra routes answer; stops it.
async fn registers_as(
    server: &ConfigServer,
    dir: &Dir,
    vars: &[(&str, &str)],
    name: &str,
    whom: &str,
) {
    let module = Module::start(&dir.0, vars);
    // The config is applied before the module serves and says so.
    let config = module.next().await;
    assert_eq!(
        config,
        json!({"event": "config", "config": {"greeting": "hello"}})
    );
    let started = module.next().await;
    assert_eq!(started["event"], "started", "{started}");
    assert_eq!(started["module"], name);
    assert_eq!(started["name"], whom);
    let binding = started["binding"].as_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(10), || !server
            .instances(name)
            .is_empty())
        .await,
        "{name} registered"
    );
    let declared = &server.instances(name)[0];
    let port = binding.rsplit_once(':').unwrap().1;
    assert_eq!(
        declared.address,
        AddressConfiguration::new("127.0.0.1", port)
    );
    assert_eq!(server.config(name), Some(json!({"greeting": "hello"})));
    let schema = server.schema(name).unwrap();
    assert_eq!(schema["properties"]["greeting"]["type"], "string");

    let http = awc::Client::default();
    let (status, body) = http_get(&http, &format!("http://{binding}/")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("hello, {whom}").as_str())
    );
    let infra = started["infra"].as_str().unwrap().to_owned();
    let (status, body) = http_get(&http, &format!("http://{infra}/internal/health")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(&http, &format!("http://{infra}/internal/metrics")).await;
    assert_eq!(status, 200);

    let status = module.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        wait_until(Duration::from_secs(2), || server.session_count(name) == 0).await,
        "{name} closed its session"
    );
}

#[actix::test]
async fn registers_under_the_name_from_the_file_or_from_modulename() {
    let server = ConfigServer::builder().start().await.unwrap();
    let ports = (free_port(), free_port());
    let dir = Dir::new("names", &config_dev(&server, ports, Some("greeter")));
    registers_as(&server, &dir, &[], "greeter", "world").await;
    // Variables override the cluster's keys and the application's own.
    let vars = [("MODULENAME", "welcomer"), ("GREETER.NAME", "you")];
    registers_as(&server, &dir, &vars, "welcomer", "you").await;
    server.stop().await;
}

#[actix::test]
async fn without_module_name_it_exits_non_zero_naming_the_key() {
    let server = ConfigServer::builder().start().await.unwrap();
    let dir = Dir::new(
        "no-name",
        &config_dev(&server, (free_port(), free_port()), None),
    );
    let mut child = Command::new(example_binary("bootstrap"))
        .current_dir(&dir.0)
        .env_clear()
        .env("APP_MODE", "dev")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("moduleName is required"), "{stderr}");
    assert!(stderr.contains("conf/config_dev.yml"), "{stderr}");
    server.stop().await;
}
