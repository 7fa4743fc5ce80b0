//! The dev config-service binary (`isp-cluster-devserver`) as a process, seen from raw WebSocket
//! clients: SIGTERM closes every session with 1000 and exits 0 at once, and a
//! frame header announcing 1 GiB is refused with 1009 before any of its
//! payload is buffered.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix_web::rt::time::timeout;
use awc::ws::{CloseCode, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(5);
/// SIGTERM → every session closed with 1000 and the process exited 0.
const SIGTERM_BOUND: Duration = Duration::from_millis(100);
/// How far the binary's resident set may grow while a module sends a
/// frame header announcing 1 GiB and then streams payload.
const RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;

/// The binary, started on an ephemeral loopback port.
struct DevServer {
    child: Option<Child>,
    pid: u32,
    addr: String,
    /// The admin API over isp RPC.
    rpc_addr: String,
}

impl DevServer {
    fn start() -> DevServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_isp-cluster-devserver"))
            .args(["--listen", "127.0.0.1:0", "--rpc-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the isp-cluster-devserver binary was built by cargo test");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Reads every line, so that the binary never blocks on its logs.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("modules connect to ws://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
                if let Some(rest) = line.split("admin API over isp rpc at ").nth(1) {
                    let addr = rest.split(' ').next().unwrap_or_default().to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("the binary says where it listens");
        let rpc_addr = rx
            .recv_timeout(WAIT)
            .expect("the binary says where its rpc admin api listens");
        DevServer {
            pid: child.id(),
            child: Some(child),
            addr,
            rpc_addr,
        }
    }

    fn url(&self, module: &str) -> String {
        format!("ws://{}/isp-etp/?module_name={module}", self.addr)
    }

    /// `VmRSS` of the binary, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("the binary's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .expect("a VmRSS line")
    }

    /// Sends SIGTERM; a thread reports when the process has exited.
    fn terminate(&mut self) -> (Instant, mpsc::Receiver<(Instant, ExitStatus)>) {
        let mut child = self.child.take().expect("not terminated yet");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = tx.send((Instant::now(), status));
            }
        });
        let pid = libc::pid_t::try_from(self.pid).expect("a pid fits pid_t");
        let sent = Instant::now();
        // SAFETY: kill(2) with a valid signal on the pid of our own child,
        // which has not been reaped (the waiting thread reaps it after).
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(result, 0, "kill -TERM failed");
        (sent, rx)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

type Ws = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn connect(url: &str) -> Ws {
    let (_, ws) = timeout(WAIT, awc::Client::new().ws(url).connect())
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

/// Sends an ETP frame and waits for its ack.
async fn request(ws: &mut Ws, name: &str, ack_id: u64, data: &str) {
    ws.send(Message::Text(format!("{name}||{ack_id}||{data}").into()))
        .await
        .expect("send");
    let ack = format!("__ack_{name}||{ack_id}||ok");
    loop {
        match timeout(WAIT, ws.next()).await.expect("an ack in time") {
            Some(Ok(Frame::Text(text))) if text == ack.as_bytes() => return,
            Some(Ok(Frame::Text(_))) => continue,
            other => panic!("waiting for {ack}: {other:?}"),
        }
    }
}

/// A session through the whole handshake.
async fn ready_session(server: &DevServer, module: &str, port: u16) -> Ws {
    let mut ws = connect(&server.url(module)).await;
    let schema = r#"{"version":"1.0.0","schema":{},"config":{}}"#;
    request(&mut ws, "MODULE:SEND_CONFIG_SCHEMA", 1, schema).await;
    let requirements = r#"{"requiredModules":["a"],"requireRoutes":true}"#;
    request(&mut ws, "MODULE:SEND_REQUIREMENTS", 2, requirements).await;
    let ready = format!(
        r#"{{"moduleName":"{module}","version":"1.0.0","libVersion":"","endpoints":[],"requiredModules":[],"address":{{"ip":"10.0.0.1","port":"{port}"}}}}"#
    );
    request(&mut ws, "MODULE:READY", 3, &ready).await;
    ws
}

/// The server's close frame (skipping pushes), then a clean EOF.
async fn expect_close_then_eof(ws: &mut Ws) -> Option<CloseCode> {
    let code = loop {
        match timeout(WAIT, ws.next())
            .await
            .expect("a close frame in time")
        {
            Some(Ok(Frame::Close(reason))) => break reason.map(|r| r.code),
            Some(Ok(Frame::Text(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    match timeout(WAIT, ws.next()).await.expect("EOF in time") {
        None => code,
        other => panic!("expected EOF after the close frame, got {other:?}"),
    }
}

#[actix::test]
async fn sigterm_closes_every_session_with_1000_and_exits_0_at_once() {
    let mut server = DevServer::start();
    let mut sessions = Vec::new();
    for i in 0..3u16 {
        sessions.push(ready_session(&server, &format!("m{i}"), 9000 + i).await);
    }
    // Two more that never get past the upgrade.
    sessions.push(connect(&server.url("idle")).await);
    sessions.push(connect(&server.url("idle")).await);

    let (sent, exited) = server.terminate();
    for ws in &mut sessions {
        assert_eq!(expect_close_then_eof(ws).await, Some(CloseCode::Normal));
    }
    let closed = sent.elapsed();
    let (exit_at, status) = exited.recv_timeout(WAIT).expect("the binary exits");
    let exit = exit_at.duration_since(sent);
    println!("SIGTERM → 5 sessions closed with 1000 by {closed:?}, exit after {exit:?}");
    assert!(status.success(), "{status:?}");
    assert!(closed < SIGTERM_BOUND, "sessions closed after {closed:?}");
    assert!(exit < SIGTERM_BOUND, "exited after {exit:?}");
}

/// A WebSocket upgrade on a raw TCP connection.
async fn raw_upgrade(server: &DevServer, module: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    let request = format!(
        "GET /isp-etp/?module_name={module} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        let n = timeout(WAIT, tcp.read(&mut byte))
            .await
            .expect("an upgrade answer in time")
            .expect("read");
        assert_eq!(n, 1, "EOF in the upgrade answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

#[actix::test]
async fn a_1_gib_frame_header_is_refused_with_1009_before_its_payload_is_buffered() {
    let server = DevServer::start();
    // A session through its handshake first, so that the baseline includes
    // what a working session costs.
    let _warm = ready_session(&server, "warm", 9001).await;
    let before = server.rss_kib();

    let tcp = raw_upgrade(&server, "big").await;
    let (mut read, mut write) = tcp.into_split();
    // A masked binary frame announcing 1 GiB, then as much payload as the
    // server takes (it should take none: it closes right after the header).
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let writer = actix_web::rt::spawn(async move {
        write
            .write_all(&header)
            .await
            .expect("the header is written");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        while written < 64 * 1024 * 1024 {
            match write.write_all(&chunk).await {
                Ok(()) => written += chunk.len(),
                Err(_) => break,
            }
        }
        written
    });

    // The server's close frame: 0x88, a short length, the code, the reason.
    let mut frame = [0u8; 2];
    timeout(WAIT, read.read_exact(&mut frame))
        .await
        .expect("an answer in time")
        .expect("a close frame");
    assert_eq!(frame[0], 0x88, "a close frame, got {frame:?}");
    let mut payload = vec![0u8; usize::from(frame[1])];
    read.read_exact(&mut payload).await.expect("its payload");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let reason = String::from_utf8_lossy(&payload[2..]).into_owned();
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("read limit"), "{reason}");
    // Then the end: EOF, or a reset if our payload was still arriving.
    let mut rest = [0u8; 1024];
    match timeout(WAIT, read.read(&mut rest)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{n} more bytes after the close frame"),
        Err(_) => panic!("the connection stays open after 1009"),
    }
    let written = writer.await.expect("the writer ends");
    let after = server.rss_kib();
    println!(
        "1 GiB header: 1009; {written} payload bytes accepted by the socket; \
         RSS {before} KiB → {after} KiB"
    );
    assert!(
        after < before + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[actix::test]
async fn the_binary_serves_the_real_services_admin_api_over_rpc() {
    use isp_cluster::lb::HostsUpgrader as _;

    let server = DevServer::start();
    let _session = ready_session(&server, "b", 9100).await;
    let admin = isp_cluster::rpc::RpcClient::new("isp-config-service");
    admin.upgrade(std::slice::from_ref(&server.rpc_addr));
    let routes: serde_json::Value = admin
        .call("config/routing/get_routes")
        .send()
        .await
        .expect("get_routes answers");
    assert_eq!(routes[0]["moduleName"], "b", "{routes}");
    assert_eq!(
        routes[0]["address"],
        serde_json::json!({"ip": "10.0.0.1", "port": "9100"})
    );
}
