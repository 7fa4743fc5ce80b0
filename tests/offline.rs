//! The offline client: a config file fed to the same receiver.

use std::time::Duration;

use isp_cluster::{OfflineClient, OfflineError};

mod common;
use common::{Behaviour, Recorder, Stop};

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("isp-cluster-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[actix::test]
async fn delivers_the_file_then_reloads_it() {
    let path = temp_file("good.json", r#"{"a":1}"#);
    let (recorder, seen) = Recorder::start_new();
    let offline = OfflineClient::new(&path, recorder.recipient());
    offline.run().await.unwrap();
    std::fs::write(&path, r#"{"a":2}"#).unwrap();
    offline.run().await.unwrap();
    let seen = seen.configs();
    assert_eq!(
        seen,
        [
            (serde_json::json!({"a":1}), true),
            (serde_json::json!({"a":2}), false)
        ]
    );
}

#[actix::test]
async fn missing_file_and_invalid_json_are_clear_errors() {
    let (recorder, seen) = Recorder::start_new();
    let missing = OfflineClient::new(
        "/nonexistent/isp-cluster.json",
        recorder.clone().recipient(),
    );
    let err = missing.run().await.unwrap_err();
    assert!(matches!(err, OfflineError::Read { .. }));
    assert!(err
        .to_string()
        .contains("cannot read config file /nonexistent/isp-cluster.json"));

    let path = temp_file("bad.json", r#"{"password":"hunter2""#);
    let bad = OfflineClient::new(&path, recorder.clone().recipient());
    let err = bad.run().await.unwrap_err();
    assert!(matches!(err, OfflineError::InvalidJson { .. }), "{err}");
    assert!(err.to_string().contains("is not valid json"), "{err}");
    assert!(
        !err.to_string().contains("hunter2"),
        "no config content in errors"
    );
    assert!(seen.configs().is_empty(), "receiver not called");
}

#[actix::test]
async fn receiver_rejection_timeout_and_stop_are_errors() {
    let (recorder, behaviour) = Recorder::start_new();
    behaviour.set(Behaviour {
        reject: Some("rejected by the test".into()),
        ..Behaviour::default()
    });
    let path = temp_file("reject.json", "{}");
    let err = OfflineClient::new(&path, recorder.clone().recipient())
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rejected by the test"), "{err}");

    behaviour.set(Behaviour {
        delay: Duration::from_millis(500),
        ..Behaviour::default()
    });
    let path = temp_file("slow.json", "{}");
    let err = OfflineClient::new(&path, recorder.clone().recipient())
        .config_timeout(Duration::from_millis(50))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, OfflineError::Timeout(_)), "{err}");

    let (stopped, _) = Recorder::start_new();
    let recipient = stopped.clone().recipient();
    stopped.send(Stop).await.unwrap();
    actix::clock::sleep(Duration::from_millis(50)).await;
    let path = temp_file("any.json", "{}");
    let err = OfflineClient::new(&path, recipient)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, OfflineError::ReceiverStopped), "{err}");
}

#[actix::test]
async fn watch_delivers_each_change_and_keeps_the_last_good_one() {
    let path = temp_file("watched.json", r#"{"v":1}"#);
    let (recorder, seen) = Recorder::start_new();
    let watch = OfflineClient::new(&path, recorder.recipient())
        .watch(Duration::from_millis(10))
        .await
        .unwrap();
    let values = |seen: &common::Shared| -> Vec<serde_json::Value> {
        seen.configs().into_iter().map(|c| c.0).collect()
    };
    assert!(common::wait_until(Duration::from_secs(5), || values(&seen).len() == 1).await);
    std::fs::write(&path, r#"{"v":2}"#).unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || values(&seen).len() == 2).await);
    std::fs::write(&path, r#"{"v":"#).unwrap(); // a half-written file
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert_eq!(values(&seen).len(), 2, "invalid json is not delivered");
    std::fs::write(&path, r#"{"v":3}"#).unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || values(&seen).len() == 3).await);
    assert_eq!(
        values(&seen),
        [
            serde_json::json!({"v":1}),
            serde_json::json!({"v":2}),
            serde_json::json!({"v":3})
        ]
    );
    drop(watch);
    std::fs::write(&path, r#"{"v":4}"#).unwrap();
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        values(&seen).len(),
        3,
        "no delivery after the guard is dropped"
    );
}

/// Answers each config with where it came from.
struct SourceProbe(std::sync::Arc<std::sync::Mutex<Vec<isp_cluster::ConfigSource>>>);

impl actix::Actor for SourceProbe {
    type Context = actix::Context<Self>;
}

impl actix::Handler<isp_cluster::RemoteConfig> for SourceProbe {
    type Result = Result<(), isp_cluster::ReceiverError>;
    fn handle(&mut self, msg: isp_cluster::RemoteConfig, _: &mut Self::Context) -> Self::Result {
        self.0.lock().unwrap().push(msg.source());
        Ok(())
    }
}

#[cfg(unix)]
#[actix::test]
async fn the_file_is_read_off_the_actix_thread_and_marked_as_a_file() {
    use actix::Actor;
    // A named pipe: reading it blocks until a writer comes, 300 ms later.
    let fifo = temp_file("pipe.json", "");
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&fifo, r#"{"a":1}"#).unwrap();
        })
    };
    let sources = std::sync::Arc::default();
    let probe = SourceProbe(std::sync::Arc::clone(&sources)).start();
    let offline = OfflineClient::new(&fifo, probe.recipient());
    let run = actix::spawn(async move { offline.run().await });
    // The read waits for the writer; the actix thread must not.
    let started = std::time::Instant::now();
    actix::clock::sleep(Duration::from_millis(20)).await;
    let woke_after = started.elapsed();
    assert!(
        woke_after < Duration::from_millis(250),
        "the actix thread was blocked for {woke_after:?}"
    );
    run.await.unwrap().unwrap();
    writer.join().unwrap();
    assert_eq!(*sources.lock().unwrap(), [isp_cluster::ConfigSource::File]);
    std::fs::remove_file(&fifo).unwrap();
}

/// `let _ = offline.watch(..)` drops the guard at once: it must still have
/// read and delivered the file.
#[actix::test]
async fn a_watch_whose_guard_is_dropped_at_once_still_delivered_the_file() {
    let path = temp_file("dropped-guard.json", r#"{"v":1}"#);
    let (recorder, seen) = Recorder::start_new();
    let _ = OfflineClient::new(&path, recorder.recipient())
        .watch(Duration::from_millis(10))
        .await;
    assert_eq!(seen.configs().len(), 1, "nothing was delivered");
}

#[actix::test]
async fn a_watch_of_a_missing_file_is_the_callers_error() {
    let (recorder, _) = Recorder::start_new();
    let err = OfflineClient::new("/nonexistent/isp-cluster-watch.json", recorder.recipient())
        .watch(Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(err, OfflineError::Read { .. }), "{err}");
}

/// A zero interval would re-read the file on every tick, a busy loop: it
/// is refused before anything is read or delivered, as the cluster
/// client's builder refuses zero waits. So is a zero config timeout.
#[actix::test]
async fn zero_waits_are_refused_before_anything_is_delivered() {
    let path = temp_file("zero.json", r#"{"v":1}"#);
    let (recorder, seen) = Recorder::start_new();
    let err = OfflineClient::new(&path, recorder.clone().recipient())
        .watch(Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OfflineError::InvalidSetting {
                setting: "watch interval",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("watch interval"), "{err}");

    let zero_timeout =
        || OfflineClient::new(&path, recorder.clone().recipient()).config_timeout(Duration::ZERO);
    let err = zero_timeout().run().await.unwrap_err();
    assert!(
        matches!(
            err,
            OfflineError::InvalidSetting {
                setting: "config timeout",
                ..
            }
        ),
        "{err}"
    );
    let err = zero_timeout()
        .watch(Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(err, OfflineError::InvalidSetting { .. }), "{err}");
    assert!(seen.configs().is_empty(), "nothing was delivered");
}
