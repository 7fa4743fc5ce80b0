//! Calling required modules: the round-robin pool under threads, upgraders
//! fed by the cluster client, and the balanced HTTP client over real
//! loopback servers (live, refusing, not accepting, dropping).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use isp_cluster::lb::{
    BalancedClient, BalancedError, ConnectFailure, HostsUpgrader, NoHostsToBalance, RoundRobin,
};
use isp_cluster::server::ConfigServer;
use isp_cluster::{AddressConfiguration, ClusterClient, ConfigData, HostsChanged, ModuleInfo};

mod common;
use common::wait_until;

const WAIT: Duration = Duration::from_secs(5);

fn hosts(list: &[&str]) -> Vec<String> {
    list.iter().map(|h| (*h).to_owned()).collect()
}

// ---------------------------------------------------------------- the pool

#[test]
fn a_thousand_next_calls_over_three_hosts_are_fair() {
    let pool = RoundRobin::with_hosts("auth", hosts(&["a:1", "b:2", "c:3"]));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..1000 {
        *counts.entry(pool.next().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (host, n) in &counts {
        assert!(
            (332..=334).contains(n),
            "{host} got {n} of 1000: {counts:?}"
        );
    }
}

#[test]
fn threads_going_round_on_their_own_share_the_load_evenly() {
    let pool = RoundRobin::with_hosts("auth", hosts(&["a:1", "b:2", "c:3"]));
    let counts: Mutex<HashMap<String, usize>> = Mutex::default();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..300 {
                    let host = pool.next().unwrap().to_string();
                    *counts.lock().unwrap().entry(host).or_default() += 1;
                }
            });
        }
    });
    let counts = counts.into_inner().unwrap();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 400), "{counts:?}");
}

#[test]
fn clones_share_one_pool() {
    let pool = RoundRobin::with_hosts("auth", hosts(&["a:1", "b:2"]));
    let clone = pool.clone();
    let first = pool.next().unwrap();
    assert_ne!(
        clone.next().unwrap(),
        first,
        "the clone continues the cycle"
    );
    clone.upgrade(&hosts(&["c:3"]));
    assert_eq!(&*pool.next().unwrap(), "c:3");
}

#[test]
fn an_update_under_eight_reading_threads_is_seen_whole_or_not_at_all() {
    let old = hosts(&["10.0.0.1:9001", "10.0.0.2:9001", "10.0.0.3:9001"]);
    let new = hosts(&["[fd00::7]:9001", "10.0.0.9:9001"]);
    let pool = RoundRobin::with_hosts("auth", &old);
    let readers_done = AtomicUsize::new(0);
    let updates = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for i in 0..20_000 {
                    let host = pool.next().expect("both lists have hosts");
                    let host = host.to_string();
                    assert!(old.contains(&host) || new.contains(&host), "{host}");
                    if i % 16 == 0 {
                        let list = pool.hosts();
                        assert!(*list == *old || *list == *new, "a mixed list: {list:?}");
                    }
                }
                readers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        s.spawn(|| {
            while readers_done.load(Ordering::SeqCst) < 8 {
                let n = updates.fetch_add(1, Ordering::SeqCst);
                pool.upgrade(if n.is_multiple_of(2) { &new } else { &old });
            }
        });
    });
    assert!(updates.load(Ordering::SeqCst) > 1, "the writer never ran");
}

#[test]
fn every_client_and_every_update_starts_at_a_random_host() {
    let list = hosts(&["a:1", "b:2", "c:3"]);
    // The chance that 100 fair draws miss one of 3 hosts is about 1e-17.
    let firsts: BTreeSet<String> = (0..100)
        .map(|_| {
            RoundRobin::with_hosts("auth", &list)
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(firsts.len(), 3, "fresh pools all started at {firsts:?}");

    let pool = RoundRobin::new("auth");
    let after_update: BTreeSet<String> = (0..100)
        .map(|_| {
            pool.upgrade(&list);
            pool.next().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        after_update.len(),
        3,
        "updates all started at {after_update:?}"
    );
}

#[test]
fn no_hosts_is_an_error_naming_the_module() {
    let pool = RoundRobin::new("auth");
    let expected = NoHostsToBalance {
        module: "auth".to_owned(),
    };
    assert_eq!(pool.next(), Err(expected.clone()));
    pool.upgrade(&hosts(&["a:1"]));
    assert!(pool.next().is_ok());
    pool.upgrade(&[]);
    let error = pool.next().unwrap_err();
    assert_eq!(error, expected);
    assert_eq!(
        error.to_string(),
        r#"no hosts to balance: module "auth" has no live instance"#
    );
}

// ------------------------------------------------------------- upgraders

fn module(name: &str, ip: &str, config_service: &str) -> isp_cluster::ClusterClientBuilder {
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new(ip, "9001"));
    ClusterClient::builder(info, ConfigData::default()).hosts([config_service.to_owned()])
}

#[actix::test]
async fn a_pool_registered_as_upgrader_follows_instances_joining_and_leaving() {
    let server = ConfigServer::builder().start().await.unwrap();
    let host = server.addr().to_string();
    let pool = RoundRobin::new("auth");
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let record = seen.clone();
    let gateway = module("gateway", "10.0.0.2", &host)
        .require_module_upgrader("auth", pool.clone())
        .require_module_upgrader("billing", move |hosts: &[String]| {
            record.lock().unwrap().push(hosts.to_vec());
        })
        .start()
        .unwrap();
    assert!(wait_until(WAIT, || gateway.healthcheck().is_ok()).await);
    assert!(pool.next().is_err(), "no auth instance yet");

    let auth1 = module("auth", "10.0.0.11", &host).start().unwrap();
    assert!(wait_until(WAIT, || pool.hosts().len() == 1).await);
    assert_eq!(&*pool.next().unwrap(), "10.0.0.11:9001");
    let auth2 = module("auth", "10.0.0.12", &host).start().unwrap();
    assert!(wait_until(WAIT, || pool.hosts().len() == 2).await);
    auth2.close().await;
    assert!(wait_until(WAIT, || pool.hosts().len() == 1).await);
    assert_eq!(*pool.hosts(), hosts(&["10.0.0.11:9001"]));

    // The closure upgrader got billing's lists in order: none, one, none.
    let billing = module("billing", "10.0.0.31", &host).start().unwrap();
    assert!(wait_until(WAIT, || seen.lock().unwrap().len() >= 2).await);
    billing.close().await;
    assert!(wait_until(WAIT, || seen.lock().unwrap().len() >= 3).await);
    assert_eq!(
        *seen.lock().unwrap(),
        [vec![], hosts(&["10.0.0.31:9001"]), vec![]]
    );

    gateway.close().await;
    auth1.close().await;
    server.stop().await;
}

#[actix::test]
async fn the_upgrader_actor_applies_updates_in_arrival_order() {
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let record = seen.clone();
    let recipient = isp_cluster::lb::upgrader_recipient(move |hosts: &[String]| {
        record.lock().unwrap().push(hosts.len())
    });
    for n in 0..50 {
        recipient.do_send(HostsChanged {
            module: "auth".to_owned(),
            hosts: vec!["a:1".to_owned(); n],
        });
    }
    let last = recipient.send(HostsChanged {
        module: "auth".to_owned(),
        hosts: Vec::new(),
    });
    assert!(last.await.unwrap().is_ok(), "the adapter answers Ok");
    let mut expected: Vec<usize> = (0..50).collect();
    expected.push(0);
    assert_eq!(*seen.lock().unwrap(), expected);
}

// ------------------------------------------------------ the HTTP client

/// A live instance: `GET /who` answers its address, `POST /echo` its body.
struct Live {
    addr: String,
    hits: Arc<AtomicUsize>,
    handle: ServerHandle,
}

struct Instance {
    addr: String,
    hits: Arc<AtomicUsize>,
}

async fn who(me: web::Data<Instance>) -> HttpResponse {
    me.hits.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().body(me.addr.clone())
}

async fn echo(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(body)
}

async fn slow() -> HttpResponse {
    actix::clock::sleep(Duration::from_secs(3)).await;
    HttpResponse::Ok().finish()
}

fn live() -> Live {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let me = web::Data::new(Instance {
        addr: addr.clone(),
        hits: hits.clone(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(me.clone())
            .route("/who", web::get().to(who))
            .route("/echo", web::post().to(echo))
            .route("/slow", web::get().to(slow))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix::spawn(server);
    Live { addr, hits, handle }
}

/// An address where nothing listens: bound, then released.
fn refusing() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A listener that never accepts, its accept queue full: the kernel drops
/// further SYNs, so a connect to it hangs until its timeout.
struct Unaccepting {
    addr: SocketAddr,
    _listener: tokio::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

fn unaccepting() -> Unaccepting {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(stream) => queued.push(stream),
            Err(_) => {
                return Unaccepting {
                    addr,
                    _listener: listener,
                    _queued: queued,
                }
            }
        }
    }
    panic!("the accept queue of {addr} never filled");
}

async fn body_of(client: &BalancedClient, path: &str) -> Result<String, BalancedError> {
    let mut response = client.get(path).send().await?;
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.body().await.expect("the body arrives");
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[actix::test]
async fn requests_spread_evenly_over_two_live_hosts() {
    let (a, b) = (live(), live());
    let client = BalancedClient::new(RoundRobin::with_hosts("auth", [&a.addr, &b.addr]));
    let mut answered: HashMap<String, usize> = HashMap::new();
    for _ in 0..100 {
        *answered
            .entry(body_of(&client, "/who").await.unwrap())
            .or_default() += 1;
    }
    assert_eq!(answered.get(&a.addr), Some(&50), "{answered:?}");
    assert_eq!(answered.get(&b.addr), Some(&50), "{answered:?}");

    let mut echoed = client.post("/echo").send_body("ping").await.unwrap();
    assert_eq!(echoed.body().await.unwrap(), "ping");
    let mut json = client
        .post("/echo")
        .send_json(&serde_json::json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(json.body().await.unwrap(), r#"{"n":1}"#);
    a.handle.stop(true).await;
    b.handle.stop(true).await;
}

#[actix::test]
async fn a_refusing_host_is_skipped_and_the_other_serves_every_request() {
    let a = live();
    let client = BalancedClient::new(RoundRobin::with_hosts("auth", [refusing(), a.addr.clone()]));
    for _ in 0..20 {
        assert_eq!(body_of(&client, "/who").await.unwrap(), a.addr);
    }
    assert_eq!(a.hits.load(Ordering::SeqCst), 20);
    a.handle.stop(true).await;
}

#[actix::test]
async fn an_address_that_is_not_host_port_is_skipped_and_named() {
    let a = live();
    let pool = RoundRobin::with_hosts("auth", hosts(&["no such host", &a.addr]));
    let client = BalancedClient::new(pool.clone());
    for _ in 0..4 {
        assert_eq!(body_of(&client, "/who").await.unwrap(), a.addr);
    }
    pool.upgrade(&hosts(&["no such host"]));
    let error = client.get("/who").send().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"no host of module "auth" accepted the connection: no such host (not a valid address)"#
    );
    a.handle.stop(true).await;
}

#[actix::test]
async fn a_host_that_does_not_accept_in_time_is_skipped() {
    let (a, stuck) = (live(), unaccepting());
    let pool = RoundRobin::with_hosts("auth", [stuck.addr.to_string(), a.addr.clone()]);
    let client = BalancedClient::builder(pool.clone())
        .connect_timeout(Duration::from_millis(100))
        .timeout(Duration::from_secs(3))
        .build();
    for _ in 0..4 {
        assert_eq!(body_of(&client, "/who").await.unwrap(), a.addr);
    }

    pool.upgrade(&[stuck.addr.to_string()]);
    match client.get("/who").send().await {
        Err(BalancedError::Unreachable { module, tried }) => {
            assert_eq!(module, "auth");
            assert_eq!(tried, [(stuck.addr.to_string(), ConnectFailure::Timeout)]);
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    a.handle.stop(true).await;
}

#[actix::test]
async fn when_every_host_refuses_one_error_names_the_module_and_each_host() {
    let refused = [refusing(), refusing(), refusing()];
    let client = BalancedClient::new(RoundRobin::with_hosts("auth", &refused));
    let error = client.get("/who").send().await.unwrap_err();
    let text = error.to_string();
    match error {
        BalancedError::Unreachable { module, tried } => {
            assert_eq!(module, "auth");
            let tried: BTreeSet<&str> = tried
                .iter()
                .map(|(host, failure)| {
                    assert_eq!(*failure, ConnectFailure::Refused);
                    host.as_str()
                })
                .collect();
            assert_eq!(tried, refused.iter().map(String::as_str).collect());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        text.starts_with(r#"no host of module "auth" accepted the connection: "#),
        "{text}"
    );
    for host in &refused {
        assert!(
            text.contains(&format!("{host} (connection refused)")),
            "{text}"
        );
    }
}

#[actix::test]
async fn no_hosts_and_bad_requests_fail_at_once_naming_the_module() {
    let client = BalancedClient::new(RoundRobin::new("auth"));
    match client.get("/who").send().await {
        Err(BalancedError::NoHosts(e)) => assert_eq!(e.module, "auth"),
        other => panic!("expected NoHosts, got {other:?}"),
    }
    let client = BalancedClient::new(RoundRobin::with_hosts("auth", [refusing()]));
    for path in ["who", "/a b"] {
        let error = client.get(path).send().await.unwrap_err();
        assert!(
            matches!(&error, BalancedError::InvalidRequest { module, .. } if module == "auth"),
            "{error:?}"
        );
        assert!(error.to_string().contains(path), "{error}");
    }
    let error = client
        .get("/who")
        .insert_header(("x-bad", "line\nbreak"))
        .send()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("invalid header"), "{error}");
}

#[actix::test]
async fn a_host_that_accepted_is_not_retried_elsewhere() {
    let a = live();
    // Accepts every connection and closes it unread: the request may have
    // reached it, so it must not go to the other host too.
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dropper_addr = dropper.local_addr().unwrap().to_string();
    actix::spawn(async move {
        while let Ok((stream, _)) = dropper.accept().await {
            drop(stream);
        }
    });
    let client = BalancedClient::new(RoundRobin::with_hosts("auth", [&dropper_addr, &a.addr]));
    let mut served = 0;
    for _ in 0..10 {
        match client.get("/who").send().await {
            Ok(_) => served += 1,
            Err(BalancedError::Send { module, host, .. }) => {
                assert_eq!(
                    (module.as_str(), host.as_str()),
                    ("auth", dropper_addr.as_str())
                )
            }
            Err(other) => panic!("expected Send, got {other:?}"),
        }
    }
    assert_eq!(served, 5, "round-robin: every other request to each host");
    assert_eq!(a.hits.load(Ordering::SeqCst), 5, "no request reached both");
    a.handle.stop(true).await;
}

#[actix::test]
async fn the_request_timeout_bounds_a_slow_host_and_names_it() {
    let a = live();
    let client = BalancedClient::builder(RoundRobin::with_hosts("auth", [&a.addr]))
        .timeout(Duration::from_millis(200))
        .build();
    match client.get("/slow").send().await {
        Err(BalancedError::Timeout {
            module,
            timeout,
            tried,
        }) => {
            assert_eq!(module, "auth");
            assert_eq!(timeout, Duration::from_millis(200));
            assert_eq!(tried, std::slice::from_ref(&a.addr));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    // A request's own timeout replaces the client's.
    assert!(client
        .get("/who")
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok());
    a.handle.stop(false).await;
}

#[actix::test]
async fn https_is_used_when_configured() {
    let a = live();
    let client = BalancedClient::builder(RoundRobin::with_hosts("auth", [&a.addr]))
        .https()
        .build();
    // This crate's awc has no TLS feature: the https:// URL shows in the
    // connector's refusal, and the plain-HTTP server saw nothing.
    let error = client.get("/who").send().await.unwrap_err();
    assert!(
        error.to_string().contains("SSL is not supported"),
        "{error}"
    );
    assert_eq!(a.hits.load(Ordering::SeqCst), 0);
    a.handle.stop(true).await;
}

#[actix::test]
async fn updates_during_a_stream_of_requests_lose_none() {
    let (a, b, c) = (live(), live(), live());
    let pool = RoundRobin::with_hosts("auth", [&a.addr, &b.addr]);
    let lists = [
        vec![b.addr.clone(), c.addr.clone()],
        vec![refusing(), c.addr.clone(), a.addr.clone()],
        vec![a.addr.clone()],
        vec![c.addr.clone(), b.addr.clone(), a.addr.clone()],
    ];
    let updater = {
        let pool = pool.clone();
        let lists = lists.clone();
        actix::spawn(async move {
            for i in 0..40 {
                pool.upgrade(&lists[i % lists.len()]);
                actix::clock::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = BalancedClient::new(pool.clone());
            actix::spawn(async move {
                let mut served = 0;
                for _ in 0..40 {
                    body_of(&client, "/who").await.expect("no request fails");
                    served += 1;
                }
                served
            })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        served += task.await.expect("a stream task panicked");
    }
    updater.await.unwrap();
    assert_eq!(served, 320);
    let hits: usize = [&a, &b, &c]
        .iter()
        .map(|l| l.hits.load(Ordering::SeqCst))
        .sum();
    assert_eq!(hits, 320, "each request reached exactly one host");
    for live in [a, b, c] {
        live.handle.stop(true).await;
    }
}
