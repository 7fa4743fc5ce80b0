//! A receiver's error stays in the process, and no failure on the way to
//! a receiver leaves the client waiting:
//!
//! * the password of a connection string in a receiver's error reaches
//!   neither the close frame (the config-service gets a fixed reason), nor
//!   the status JSON, nor the infra routes;
//! * an error text that once panicked the masker fails its session and the
//!   client goes on;
//! * a delivery actor that dies (here: a receiver error whose `Display`
//!   panics inside it) answers every session it owed an answer, and the
//!   client registers again and delivers the next config.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use actix::prelude::*;
use isp_cluster::infra::Infra;
use isp_cluster::server::ConfigServer;
use isp_cluster::{ReceiverError, RemoteConfig, SessionEvent, SessionState};
use serde_json::{json, Value};

mod common;
mod peer;
use common::{wait_until, Recorder};
use peer::{Ending, ScriptedPeer};

/// Long enough for a loaded machine; a wedged client never gets there.
const WAIT: Duration = Duration::from_secs(10);

/// The most common receiver error there is.
const DSN_ERROR: &str = "cannot connect to postgres://app:Hunter2@db:5432/orders";

/// What the config-service is told when the receiver refuses a config.
const REJECTED: &str = "config receiver rejected the config";

/// Answers `Err(errors[n])` to the `n`th config while there is one, then
/// `Ok`, and records the `v` of every config it accepted.
struct Answers {
    errors: Vec<ReceiverError>,
    seen: Arc<AtomicUsize>,
    accepted: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Actor for Answers {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for Answers {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        self.seen.fetch_add(1, Ordering::SeqCst);
        if !self.errors.is_empty() {
            return Err(self.errors.remove(0));
        }
        self.accepted.lock().unwrap().push(msg.parse::<Value>()?);
        Ok(())
    }
}

type Accepted = Arc<std::sync::Mutex<Vec<Value>>>;

fn answers(errors: Vec<ReceiverError>) -> (Recipient<RemoteConfig>, Accepted) {
    let accepted = Accepted::default();
    let receiver = Answers {
        errors,
        seen: Arc::default(),
        accepted: accepted.clone(),
    };
    (receiver.start().recipient(), accepted)
}

#[actix::test]
async fn a_password_in_a_receivers_error_reaches_no_close_frame_status_or_route() {
    let (endings_tx, endings) = mpsc::channel::<Ending>();
    let peer = ScriptedPeer::start(move |mut conn| {
        let endings = endings_tx.clone();
        async move {
            conn.upgrade().await;
            conn.register(r#"{"db":"orders"}"#).await;
            let (ending, _) = conn.until_ending().await;
            let _ = endings.send(ending);
        }
    })
    .await;
    let (receiver, _) = answers((0..1000).map(|_| DSN_ERROR.into()).collect());
    let client = common::quick_module()
        .hosts([peer.host()])
        .remote_config(receiver)
        .start()
        .unwrap();
    let infra = Infra::new(client.clone())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let mut ending = None;
    assert!(
        wait_until(WAIT, || {
            ending = endings.try_recv().ok();
            ending.is_some()
        })
        .await,
        "the session ends"
    );
    let ending = ending.unwrap();
    assert_eq!(ending.code(), Some(1011), "{ending:?}");
    assert_eq!(
        ending.reason(),
        REJECTED,
        "the config-service gets a fixed reason"
    );

    // The status keeps the receiver's words, masked.
    common::assert_last_error_within(&client, WAIT, "rejected").await;
    let status = serde_json::to_value(client.status()).unwrap();
    let masked = "cannot connect to postgres://app:***@db:5432/orders";
    let last_error = status["lastError"].as_str().unwrap();
    assert!(last_error.ends_with(masked), "{last_error}");
    assert_eq!(status["lastRejection"]["reason"], masked, "{status}");
    assert!(!status.to_string().contains("Hunter2"), "{status}");

    // The routes anyone can read.
    let http = awc::Client::new();
    for route in ["/internal/health", "/internal/status"] {
        let url = format!("http://{}{route}", infra.addr());
        let (_, body) = common::http_get(&http, &url).await;
        assert!(body.contains("postgres://app:***@db"), "{route}: {body}");
        assert!(!body.contains("Hunter2"), "{route}: {body}");
    }
    client.close().await;
    infra.stop().await;
}

/// A client of the embedded server whose receiver answers `errors` first;
/// returns once the client was active twice (a retry after the failure)
/// and a config set later was delivered.
async fn goes_on_after(errors: Vec<ReceiverError>) {
    let server = ConfigServer::builder()
        .config("gateway", json!({"v": 1}))
        .start()
        .await
        .unwrap();
    let (events, seen) = Recorder::start_new();
    let (receiver, accepted) = answers(errors);
    let client = common::quick_module()
        .hosts([server.addr().to_string()])
        .remote_config(receiver)
        .session_events(events.recipient())
        .start()
        .unwrap();
    assert!(
        wait_until(WAIT, || client.status().state == SessionState::Active).await,
        "the client is stuck: {:?}",
        client.status()
    );
    let ended: Vec<String> = seen
        .events()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Inactive { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    server.set_config("gateway", json!({"v": 2})).unwrap();
    assert!(
        wait_until(WAIT, || accepted.lock().unwrap().last()
            == Some(&json!({"v": 2})))
        .await,
        "{:?}",
        accepted.lock().unwrap()
    );
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn an_error_text_that_panicked_the_masker_fails_its_session_and_the_client_goes_on() {
    // `Ⱥ` grows when lower-cased, the Kelvin sign shrinks: the lengths
    // agree and the offsets do not.
    goes_on_after(vec!["unknown key ȺȺpassword\u{212A}=x".into()]).await;
}

/// An error whose `Display` panics: the delivery actor formats it.
#[derive(Debug)]
struct PanicsWhenShown;

impl std::fmt::Display for PanicsWhenShown {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a receiver's error that cannot be shown (a test of the delivery path)")
    }
}

impl std::error::Error for PanicsWhenShown {}

#[actix::test]
async fn a_delivery_actor_that_dies_answers_its_session_and_the_client_registers_again() {
    goes_on_after(vec![Box::new(PanicsWhenShown)]).await;
}

#[actix::test]
async fn a_delivery_actor_that_dies_after_the_handshake_ends_the_session_and_later_configs_arrive()
{
    let server = ConfigServer::builder()
        .config("gateway", json!({"v": 1}))
        .start()
        .await
        .unwrap();
    let (events, seen) = Recorder::start_new();
    // Accepts v1, fails v2 with an error that kills the delivery actor,
    // accepts every config after it.
    struct Once {
        accepted: Accepted,
        failed: bool,
    }
    impl Actor for Once {
        type Context = Context<Self>;
    }
    impl Handler<RemoteConfig> for Once {
        type Result = Result<(), ReceiverError>;
        fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
            let config = msg.parse::<Value>()?;
            if config == json!({"v": 2}) && !self.failed {
                self.failed = true;
                return Err(Box::new(PanicsWhenShown));
            }
            self.accepted.lock().unwrap().push(config);
            Ok(())
        }
    }
    let accepted = Accepted::default();
    let receiver = Once {
        accepted: accepted.clone(),
        failed: false,
    };
    let client = common::quick_module()
        .hosts([server.addr().to_string()])
        .remote_config(receiver.start().recipient())
        .session_events(events.recipient())
        .start()
        .unwrap();
    client.ready(WAIT).await.unwrap();
    server.set_config("gateway", json!({"v": 2})).unwrap();
    // The session could deliver nothing more: it ends, and the next one
    // delivers v2 again in its handshake, then v3.
    assert!(
        wait_until(WAIT, || seen.active_count() == 2).await,
        "{:?} {:?}",
        seen.events(),
        client.status()
    );
    server.set_config("gateway", json!({"v": 3})).unwrap();
    assert!(
        wait_until(WAIT, || accepted.lock().unwrap().last()
            == Some(&json!({"v": 3})))
        .await,
        "{:?}",
        accepted.lock().unwrap()
    );
    assert!(accepted.lock().unwrap().contains(&json!({"v": 2})));
    client.close().await;
    server.stop().await;
}
