//! The system trust store is loaded off the actix thread, and a failure to
//! load it is retried at the next attempt, not kept for the life of the
//! process. Alone in its binary: it points `SSL_CERT_FILE` (which
//! rustls-native-certs reads instead of the platform store) at a file of
//! its own.
#![cfg(all(feature = "tls", feature = "devserver", unix))]

use std::time::{Duration, Instant};

use isp_cluster::server::ConfigServer;

mod common;
use common::{assert_last_error_within, server_cert, test_ca, wait_until};

#[actix::test]
async fn trust_store_loads_off_the_actix_thread_and_a_failure_is_retried() {
    let ca = test_ca();
    let (chain, key) = server_cert(&ca, &["127.0.0.1"], false);
    let server = ConfigServer::builder()
        .tls(chain.as_bytes(), key.as_bytes())
        .start()
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("isp-cluster-roots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("ca.pem");
    // No store at first: every attempt fails to load it. (Edition 2021: no
    // other thread of this binary reads the environment.)
    std::env::set_var("SSL_CERT_FILE", &store);
    std::env::remove_var("SSL_CERT_DIR");

    // The default TLS settings: the system trust store.
    let client = common::quick_module()
        .hosts([format!("wss://{}", server.addr())])
        .backoff(Duration::from_millis(50), Duration::from_millis(100))
        .start()
        .unwrap();
    assert_last_error_within(&client, Duration::from_secs(5), "no trusted root").await;

    // Now the store is a named pipe whose writer comes 300 ms later: the
    // next load waits for it, and the actix thread must not.
    let made = std::process::Command::new("mkfifo")
        .arg(&store)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let (store, pem) = (store.clone(), ca.pem());
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::thread::sleep(Duration::from_millis(300));
            // Non-blocking: opening a pipe nobody reads fails (ENXIO)
            // rather than waiting for ever; a client that never loads the
            // store again leaves it unread.
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                let opened = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&store);
                if let Ok(mut pipe) = opened {
                    let _ = pipe.write_all(pem.as_bytes());
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    let started = Instant::now();
    let mut longest_gap = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(500) {
        let before = Instant::now();
        actix::clock::sleep(Duration::from_millis(10)).await;
        longest_gap = longest_gap.max(before.elapsed());
    }
    assert!(wait_until(Duration::from_secs(5), || writer.is_finished()).await);
    assert!(
        writer.join().unwrap(),
        "the client never read the store again"
    );
    println!("longest wait of a 10 ms sleep while the store loaded: {longest_gap:?}");
    assert!(
        longest_gap < Duration::from_millis(200),
        "the actix thread was blocked for {longest_gap:?}"
    );
    // The load that failed before is retried and the session comes up.
    assert!(
        wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await,
        "{:?}",
        client.status()
    );
    client.close().await;
    server.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
