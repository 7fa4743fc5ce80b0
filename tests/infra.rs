//! The infra scope over real HTTP: metrics that move while a session
//! starts, fails over and delivers configs; health in isp-kit's format,
//! byte for byte, passing and failing; the status as JSON; metrics
//! autodiscovery in the READY declaration.

use std::time::Duration;

use isp_cluster::infra::{self, Infra, InfraServer};
use isp_cluster::server::ConfigServer;
use isp_cluster::{
    AddressConfiguration, ClusterClient, ClusterClientBuilder, ConfigData, ModuleInfo, RawJson,
};
use serde_json::json;

mod common;
use common::{init_logs, wait_until, Recorder};

/// A module called `name` with short timeouts.
fn module(name: &str) -> ClusterClientBuilder {
    init_logs();
    let info = ModuleInfo::new(name, "1.0.0", AddressConfiguration::new("10.0.0.3", "9003"));
    let default = RawJson::from_value(&json!({"n": 0})).unwrap();
    ClusterClient::builder(info, ConfigData::new("1.0.0", RawJson::default(), default))
        .ack_timeout(Duration::from_millis(500))
        .initial_wait(Duration::from_millis(500))
        .config_initial_wait(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// `GET http://addr/path`: status, content type, body.
async fn get(server: &InfraServer, path: &str) -> (u16, String, String) {
    let url = format!("http://{}{path}", server.addr());
    let mut response = awc::Client::new().get(url).send().await.unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.body().await.unwrap();
    (
        response.status().as_u16(),
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The value of the sample `name{labels…}` in Prometheus text, the labels
/// given being a subset of the sample's.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            let series = l.rsplit_once(' ').map_or("", |(s, _)| s);
            labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

async fn scrape(server: &InfraServer) -> String {
    let (status, content_type, body) = get(server, "/internal/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    body
}

#[actix::test]
async fn metrics_move_while_a_session_starts_fails_over_and_delivers() {
    infra::install_recorder().unwrap();
    let name = "obs-failover";
    let m = [("module", name)];
    let a = ConfigServer::builder().start().await.unwrap();
    let b = ConfigServer::builder().start().await.unwrap();
    let (rec, seen) = Recorder::start_new();
    let client = module(name)
        .hosts([a.addr().to_string(), b.addr().to_string()])
        .remote_config(rec.recipient())
        .start()
        .unwrap();
    let infra = Infra::new(client.clone())
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    // The session starts.
    assert!(wait_until(Duration::from_secs(5), || seen.configs().len() == 1).await);
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let text = scrape(&infra).await;
    let active = [("module", name), ("state", "active")];
    assert_eq!(
        sample(&text, "isp_cluster_session_state", &active),
        Some(1.0),
        "{text}"
    );
    let connecting = [("module", name), ("state", "connecting")];
    assert_eq!(
        sample(&text, "isp_cluster_session_state", &connecting),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "isp_cluster_sessions_started_total", &m),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "isp_cluster_sessions_established_total", &m),
        Some(1.0)
    );
    let connected = [("module", name), ("outcome", "connected")];
    assert_eq!(
        sample(&text, "isp_cluster_connect_attempts_total", &connected),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "isp_cluster_session_ready_seconds_count", &m),
        Some(1.0)
    );
    let accepted = [
        ("module", name),
        ("source", "server"),
        ("outcome", "accepted"),
    ];
    assert_eq!(
        sample(&text, "isp_cluster_configs_delivered_total", &accepted),
        Some(1.0)
    );
    let config = [("module", name), ("receiver", "config")];
    assert_eq!(
        sample(
            &text,
            "isp_cluster_delivery_duration_seconds_count",
            &config
        ),
        Some(1.0)
    );
    // A Prometheus histogram with this crate's buckets, not a summary.
    let le_inf = [("module", name), ("receiver", "config"), ("le", "+Inf")];
    assert_eq!(
        sample(
            &text,
            "isp_cluster_delivery_duration_seconds_bucket",
            &le_inf
        ),
        Some(1.0)
    );
    let le_10 = [("module", name), ("receiver", "config"), ("le", "10")];
    assert_eq!(
        sample(
            &text,
            "isp_cluster_delivery_duration_seconds_bucket",
            &le_10
        ),
        Some(1.0)
    );
    assert!(sample(&text, "isp_cluster_server_sessions_total", &[]).unwrap() >= 1.0);

    // A config is delivered: the counter and the histogram move.
    let on = client.status().host.unwrap();
    let (here, there) = if on == a.addr().to_string() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    here.set_config(name, json!({"n": 1})).unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen.configs().len() == 2).await);
    let text = scrape(&infra).await;
    assert_eq!(
        sample(&text, "isp_cluster_configs_delivered_total", &accepted),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "isp_cluster_delivery_duration_seconds_count",
            &config
        ),
        Some(2.0)
    );
    let sum = sample(&text, "isp_cluster_delivery_duration_seconds_sum", &config).unwrap();
    assert!(sum > 0.0 && sum < 5.0, "{sum}");
    assert!(
        sample(
            &text,
            "isp_cluster_server_pushes_total",
            &[("event", "config")]
        )
        .unwrap()
            >= 1.0
    );

    // Its node stops: the client fails over to the other one.
    here.stop().await;
    let there_host = there.addr().to_string();
    assert!(
        wait_until(Duration::from_secs(5), || {
            client.healthcheck().is_ok() && client.status().host.as_deref() == Some(&there_host)
        })
        .await
    );
    assert!(wait_until(Duration::from_secs(5), || seen.configs().len() == 3).await);
    let text = scrape(&infra).await;
    assert_eq!(
        sample(&text, "isp_cluster_sessions_established_total", &m),
        Some(2.0)
    );
    let server_closed = [("module", name), ("reason", "server_closed")];
    assert_eq!(
        sample(&text, "isp_cluster_sessions_ended_total", &server_closed),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "isp_cluster_session_ready_seconds_count", &m),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "isp_cluster_configs_delivered_total", &accepted),
        Some(3.0)
    );

    // The status route says the same as the handle.
    let (status, content_type, body) = get(&infra, "/internal/status").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["state"], "active", "{body}");
    assert_eq!(json["host"], there_host.as_str());
    assert_eq!(json["sessionsEstablished"], 2);
    // The first session ended after it was established: not a failure.
    assert_eq!(json["sessionsStarted"], 2);
    assert_eq!(json["sessionsFailed"], 0);
    assert_eq!(
        sample(&text, "isp_cluster_sessions_failed_total", &m),
        None,
        "{text}"
    );

    // The last node stops too: attempts fail, by outcome.
    there.stop().await;
    let failed = [("module", name), ("outcome", "failed")];
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&infra).await;
        if sample(&text, "isp_cluster_connect_attempts_total", &failed).is_some_and(|n| n >= 2.0) {
            break;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        sample(&text, "isp_cluster_connect_attempts_total", &failed).unwrap_or(0.0) >= 2.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "isp_cluster_session_state", &active),
        Some(0.0)
    );

    client.close().await;
    let text = scrape(&infra).await;
    let closed = [("module", name), ("state", "closed")];
    assert_eq!(
        sample(&text, "isp_cluster_session_state", &closed),
        Some(1.0)
    );
    infra.stop().await;
}

/// isp-kit's body for these `(name, output)` checks at these times, as its
/// healthcheck.Registry writes it (isp-kit's json package: lowerCamelCase
/// names, `output` omitted when empty, a newline after).
fn isp_kit_body(checks: &[(&str, Option<&str>, &str)]) -> String {
    let failed = checks.iter().any(|(_, output, _)| output.is_some());
    let details: Vec<String> = checks
        .iter()
        .map(|(name, output, time)| {
            let status = if output.is_some() { "fail" } else { "pass" };
            let output = output.map_or(String::new(), |o| format!(r#","output":"{o}""#));
            format!(
                r#""{name}":[{{"componentName":"{name}","componentType":"component","status":"{status}"{output},"time":"{time}"}}]"#
            )
        })
        .collect();
    format!(
        "{{\"status\":\"{}\",\"details\":{{{}}}}}\n",
        if failed { "fail" } else { "pass" },
        details.join(",")
    )
}

/// The `time` of each check in a health body, in order.
fn times(body: &str) -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut names: Vec<&String> = json["details"].as_object().unwrap().keys().collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            json["details"][n.as_str()][0]["time"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// RFC 3339 in UTC with at most millisecond digits, no trailing zero:
/// Go's `2006-01-02T15:04:05.999Z07:00`.
fn is_go_full_date(time: &str) -> bool {
    let b = time.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let head = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let rest = &time[19..];
    let tail = rest == "Z"
        || rest
            .strip_prefix('.')
            .and_then(|r| r.strip_suffix('Z'))
            .is_some_and(|f| {
                (1..=3).contains(&f.len())
                    && f.bytes().all(|c| c.is_ascii_digit())
                    && !f.ends_with('0')
            });
    head && tail
}

#[actix::test]
async fn health_is_isp_kits_format_passing_and_failing() {
    // Passing: the client is active, the application's check passes.
    let server = ConfigServer::builder().start().await.unwrap();
    let client = module("obs-health")
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let infra = Infra::new(client.clone())
        .check("database", || Ok(()))
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, content_type, body) = get(&infra, "/internal/health").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/health+json");
    let t = times(&body);
    assert!(t.iter().all(|t| is_go_full_date(t)), "{t:?}");
    let expected = isp_kit_body(&[
        ("configServiceConnection", None, &t[0]),
        ("database", None, &t[1]),
    ]);
    assert_eq!(body, expected);
    // Field by field, too: nothing more, nothing less.
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 2);
    let detail = json["details"]["configServiceConnection"][0]
        .as_object()
        .unwrap();
    let mut keys: Vec<&str> = detail.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["componentName", "componentType", "status", "time"]);

    // Cached for a second: the same bytes, then a fresh run.
    let (_, _, again) = get(&infra, "/internal/health").await;
    assert_eq!(again, body);
    actix::clock::sleep(Duration::from_millis(1100)).await;
    let (_, _, later) = get(&infra, "/internal/health").await;
    assert_ne!(later, body, "answers are cached for one second only");
    infra.stop().await;
    client.close().await;
    server.stop().await;

    // Failing: no node answers; a check fails with text to escape; a
    // check hangs past the timeout.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_host = dead.local_addr().unwrap().to_string();
    drop(dead);
    let client = module("obs-health-down")
        .hosts([dead_host])
        .start()
        .unwrap();
    let infra = Infra::new(client.clone())
        .health_timeout(Duration::from_millis(100))
        .check("mq", || Err(r#"mq <down> & "out""#.to_owned()))
        .check("slow", || {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        })
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    actix::clock::sleep(Duration::from_millis(50)).await;
    let (status, content_type, body) = get(&infra, "/internal/health").await;
    assert_eq!(status, 500);
    assert_eq!(content_type, "application/health+json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let inactive = json["details"]["configServiceConnection"][0]["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(inactive.starts_with("session inactive"), "{inactive}");
    let t = times(&body);
    let expected = isp_kit_body(&[
        ("configServiceConnection", Some(&inactive), &t[0]),
        ("mq", Some(r#"mq \u003cdown\u003e \u0026 \"out\""#), &t[1]),
        ("slow", Some("no answer within 100ms"), &t[2]),
    ]);
    assert_eq!(body, expected);
    assert_eq!(json["status"], "fail");
    let failed = json["details"]["mq"][0].as_object().unwrap();
    let mut keys: Vec<&str> = failed.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["componentName", "componentType", "output", "status", "time"]
    );
    infra.stop().await;
    client.close().await;
}

#[actix::test]
async fn the_scope_mounts_on_an_existing_app() {
    use actix_web::{web, App, HttpServer};
    let server = ConfigServer::builder().start().await.unwrap();
    let client = module("obs-mounted")
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    let infra = Infra::new(client.clone());
    let app = HttpServer::new(move || {
        let infra = infra.clone();
        App::new()
            .route("/api/hello", web::get().to(|| async { "hello" }))
            .configure(move |cfg| infra.configure(cfg))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = app.addrs()[0];
    let app = app.run();
    let handle = app.handle();
    actix_web::rt::spawn(app);
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let http = awc::Client::new();
    let (status, body) = common::http_get(&http, &format!("http://{addr}/api/hello")).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let (status, body) = common::http_get(&http, &format!("http://{addr}/internal/health")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(r#"{"status":"pass""#), "{body}");
    let (status, body) = common::http_get(&http, &format!("http://{addr}/internal/metrics")).await;
    assert_eq!(status, 200);
    let established = [("module", "obs-mounted")];
    assert_eq!(
        sample(
            &body,
            "isp_cluster_sessions_established_total",
            &established
        ),
        Some(1.0)
    );
    let (status, body) = common::http_get(&http, &format!("http://{addr}/internal/status")).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""state":"active""#), "{body}");
    handle.stop(true).await;
    client.close().await;
    server.stop().await;
}

#[actix::test]
async fn metrics_autodiscovery_is_declared_at_ready() {
    let server = ConfigServer::builder().start().await.unwrap();
    let client = module("obs-discovered")
        .hosts([server.addr().to_string()])
        .metrics_autodiscovery("10.0.0.3:9004", [("team", "core"), ("app", "renamed")])
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    let instances = server.instances("obs-discovered");
    let discovery = instances[0].metrics_autodiscovery.as_ref().unwrap();
    assert_eq!(discovery.address, "10.0.0.3:9004");
    let labels: Vec<(&str, &str)> = discovery
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // isp-kit's labels, the extra ones over them (as maps.Insert in Go).
    assert_eq!(
        labels,
        [
            ("__metrics_path__", "/internal/metrics"),
            ("app", "renamed"),
            ("team", "core")
        ]
    );
    client.close().await;
    server.stop().await;
}

/// The process's metrics, rendered by the installed recorder.
fn rendered() -> String {
    infra::install_recorder().unwrap().render()
}

async fn until_sample(name: &str, labels: &[(&str, &str)], at_least: f64) -> String {
    let mut text = String::new();
    for _ in 0..500 {
        text = rendered();
        if sample(&text, name, labels).is_some_and(|v| v >= at_least) {
            return text;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name}{labels:?} never reached {at_least}:\n{text}");
}

#[actix::test]
async fn failures_are_counted_by_kind() {
    use common::Behaviour;
    use isp_cluster::lb::{BalancedClient, HostsUpgrader, RoundRobin};
    infra::install_recorder().unwrap();

    // A cached config, delivered while every node is down.
    let dir = std::env::temp_dir().join(format!("isp-cluster-infra-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("cached.json");
    std::fs::write(&cache, r#"{"n":5}"#).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_host = dead.local_addr().unwrap().to_string();
    drop(dead);
    let (rec, seen) = Recorder::start_new();
    let client = module("obs-cached")
        .hosts([dead_host.clone()])
        .remote_config(rec.recipient())
        .config_cache(&cache)
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || seen.configs().len() == 1).await);
    let cached = [
        ("module", "obs-cached"),
        ("source", "cache"),
        ("outcome", "accepted"),
    ];
    until_sample("isp_cluster_configs_delivered_total", &cached, 1.0).await;
    client.close().await;
    std::fs::remove_dir_all(&dir).unwrap();

    // A receiver that rejects, then one that stalls, after READY.
    let server = ConfigServer::builder().start().await.unwrap();
    let (rec, seen) = Recorder::start_new();
    let client = module("obs-receiver")
        .hosts([server.addr().to_string()])
        .remote_config(rec.recipient())
        .config_timeout(Duration::from_millis(100))
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    seen.set(Behaviour {
        reject: Some("no".into()),
        delay: Duration::ZERO,
    });
    server.set_config("obs-receiver", json!({"n": 1})).unwrap();
    let m = "obs-receiver";
    let rejected = [("module", m), ("receiver", "config"), ("kind", "error")];
    let text = until_sample("isp_cluster_receiver_failures_total", &rejected, 1.0).await;
    let by_receiver = [("module", m), ("by", "receiver")];
    assert_eq!(
        sample(&text, "isp_cluster_configs_rejected_total", &by_receiver),
        Some(1.0)
    );
    let outcome = [("module", m), ("source", "server"), ("outcome", "rejected")];
    assert_eq!(
        sample(&text, "isp_cluster_configs_delivered_total", &outcome),
        Some(1.0)
    );
    seen.set(Behaviour {
        reject: None,
        delay: Duration::from_millis(300),
    });
    server.set_config("obs-receiver", json!({"n": 2})).unwrap();
    let timed_out = [("module", m), ("receiver", "config"), ("kind", "timeout")];
    until_sample("isp_cluster_receiver_failures_total", &timed_out, 1.0).await;
    client.close().await;

    // A server that never acks READY, then one that refuses it.
    server.fail_event("obs-acks", isp_cluster::MODULE_READY, Some("not now"));
    let client = module("obs-acks")
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    let refused = [("module", "obs-acks"), ("reason", "ack_refused")];
    until_sample("isp_cluster_sessions_ended_total", &refused, 1.0).await;
    client.close().await;
    server.set_frozen("obs-silent", true);
    let client = module("obs-silent")
        .hosts([server.addr().to_string()])
        .start()
        .unwrap();
    let schema = [
        ("module", "obs-silent"),
        ("event", isp_cluster::MODULE_SEND_CONFIG_SCHEMA),
    ];
    until_sample("isp_cluster_ack_timeouts_total", &schema, 1.0).await;
    // The session ends once its close frame goes unanswered (a second).
    let ack_timeout = [("module", "obs-silent"), ("reason", "ack_timeout")];
    until_sample("isp_cluster_sessions_ended_total", &ack_timeout, 1.0).await;
    client.close().await;
    server.stop().await;

    // The balanced client: no instance, then only a refusing one.
    let pool = RoundRobin::new("obs-lb");
    let http = BalancedClient::new(pool.clone());
    assert!(http.get("/").send().await.is_err());
    pool.upgrade(&[dead_host]);
    assert!(http.get("/").send().await.is_err());
    let text = rendered();
    let no_hosts = [("module", "obs-lb"), ("outcome", "no_hosts")];
    assert_eq!(
        sample(&text, "isp_cluster_lb_requests_total", &no_hosts),
        Some(1.0)
    );
    let unreachable = [("module", "obs-lb"), ("outcome", "unreachable")];
    assert_eq!(
        sample(&text, "isp_cluster_lb_requests_total", &unreachable),
        Some(1.0)
    );
    let skipped = [("module", "obs-lb")];
    assert_eq!(
        sample(&text, "isp_cluster_lb_hosts_skipped_total", &skipped),
        Some(1.0)
    );
}

/// Without a cluster client (isp-kit's offline mode): metrics and the
/// application's checks, no `configServiceConnection`, no status route; no
/// check at all passes, as Go's empty registry does.
#[actix::test]
async fn a_standalone_scope_has_no_client_check_and_no_status_route() {
    init_logs();
    let empty = Infra::standalone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, _, body) = get(&empty, infra::HEALTH_PATH).await;
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "pass", "{body}");
    assert!(!body.contains(infra::CLIENT_CHECK), "{body}");
    let (status, _, _) = get(&empty, infra::STATUS_PATH).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&empty, infra::METRICS_PATH).await;
    assert_eq!(status, 200);
    empty.stop().await;

    let failing = Infra::standalone()
        .check("queue", || Err("unreachable".to_owned()))
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, _, body) = get(&failing, infra::HEALTH_PATH).await;
    assert_eq!(status, 500, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["details"]["queue"][0]["output"], "unreachable",
        "{body}"
    );
    failing.stop().await;
}
