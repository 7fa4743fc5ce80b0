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

/// A gate that calls wait at until it opens (at most 30 s: a failing test
/// leaves no thread behind for long).
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let open = open.lock().unwrap();
        let _ = opened
            .wait_timeout_while(open, Duration::from_secs(30), |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
}

/// A check that hangs keeps its blocking thread until it returns; probes
/// meanwhile (past the 1 s cache) do not start it again on the blocking
/// pool, which is the application's too, but fail it at once saying it is
/// late, with its last result. Once it returns, the next probe runs it
/// anew.
#[actix::test]
async fn a_hung_check_runs_once_at_a_time_and_later_probes_say_it_is_late() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    init_logs();
    let started = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let gate = Gate::default();
    let check = {
        let (started, returned, gate) = (started.clone(), returned.clone(), gate.clone());
        move || {
            started.fetch_add(1, Ordering::SeqCst);
            gate.wait();
            returned.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    };
    let infra = Infra::standalone()
        .health_timeout(Duration::from_millis(100))
        .check("database", check)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let output = |body: &str| {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        json["details"]["database"][0]["output"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let (status, _, body) = get(&infra, infra::HEALTH_PATH).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(output(&body), "no answer within 100ms");
    for _ in 0..3 {
        // Past the cache: each probe runs the checks again.
        actix::clock::sleep(infra::HEALTH_CACHE_TIME + Duration::from_millis(100)).await;
        let (status, _, body) = get(&infra, infra::HEALTH_PATH).await;
        assert_eq!(status, 500, "{body}");
        let output = output(&body);
        assert!(
            output.starts_with("late: the last call has run for "),
            "{output}"
        );
        assert!(output.ends_with("no earlier result"), "{output}");
        assert_eq!(started.load(Ordering::SeqCst), 1, "started again: {output}");
    }

    gate.open();
    assert!(
        wait_until(Duration::from_secs(5), || returned.load(Ordering::SeqCst)
            == 1)
        .await
    );
    actix::clock::sleep(infra::HEALTH_CACHE_TIME + Duration::from_millis(100)).await;
    let (status, _, body) = get(&infra, infra::HEALTH_PATH).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(started.load(Ordering::SeqCst), 2);
    infra.stop().await;
}

/// A late check's output carries its last result and that result's time.
#[actix::test]
async fn a_late_check_says_its_last_result() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    init_logs();
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Gate::default();
    let check = {
        let (calls, gate) = (calls.clone(), gate.clone());
        move || {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err("refused <5432>".to_owned());
            }
            gate.wait();
            Ok(())
        }
    };
    let infra = Infra::standalone()
        .health_timeout(Duration::from_millis(100))
        .check("database", check)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, _, body) = get(&infra, infra::HEALTH_PATH).await;
    assert_eq!(status, 500);
    assert!(
        body.contains(r#""output":"refused \u003c5432\u003e""#),
        "{body}"
    );
    for expected in ["no answer within 100ms", "late: "] {
        actix::clock::sleep(infra::HEALTH_CACHE_TIME + Duration::from_millis(100)).await;
        let (status, _, body) = get(&infra, infra::HEALTH_PATH).await;
        assert_eq!(status, 500);
        assert!(body.contains(expected), "{body}");
    }
    let (_, _, body) = {
        actix::clock::sleep(infra::HEALTH_CACHE_TIME + Duration::from_millis(100)).await;
        get(&infra, infra::HEALTH_PATH).await
    };
    assert!(
        body.contains("; last result: fail at 20")
            && body.contains(r#"Z: refused \u003c5432\u003e""#),
        "{body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    gate.open();
    infra.stop().await;
}

/// `method path` with headers: status, headers, raw body.
async fn request(
    server: &InfraServer,
    method: awc::http::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, awc::http::header::HeaderMap, Vec<u8>) {
    let url = format!("http://{}{path}", server.addr());
    let mut req = awc::Client::new().request(method, url);
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let mut response = req.send().await.unwrap();
    let body = response.body().await.unwrap().to_vec();
    (response.status().as_u16(), response.headers().clone(), body)
}

/// Load balancers probe with HEAD, and isp-kit's infra routes answer any
/// method: so do these (HEAD without a body).
#[actix::test]
async fn the_infra_routes_answer_any_method() {
    use awc::http::Method;
    init_logs();
    let infra = Infra::standalone()
        .check("queue", || Ok(()))
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    for path in [
        infra::HEALTH_PATH,
        infra::METRICS_PATH,
        infra::METRICS_DESCRIPTIONS_PATH,
    ] {
        let (status, headers, body) = request(&infra, Method::HEAD, path, &[]).await;
        assert_eq!(status, 200, "HEAD {path}");
        assert!(body.is_empty(), "HEAD {path}");
        assert!(headers.contains_key("content-type"), "HEAD {path}");
        for method in [Method::POST, Method::PUT, Method::OPTIONS] {
            let (status, _, _) = request(&infra, method.clone(), path, &[]).await;
            assert_eq!(status, 200, "{method} {path}");
        }
    }
    let (status, _, body) = request(&infra, Method::POST, infra::HEALTH_PATH, &[]).await;
    assert_eq!(status, 200);
    assert!(body.starts_with(br#"{"status":"pass""#));
    infra.stop().await;
}

/// `/internal/metrics/descriptions` in isp-kit's text: one line per metric,
/// client_golang's `Desc` and the Go type, from the crate's one list.
#[actix::test]
async fn metrics_descriptions_say_what_each_metric_means() {
    init_logs();
    let infra = Infra::standalone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (status, content_type, body) = get(&infra, infra::METRICS_DESCRIPTIONS_PATH).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain");
    let ended = concat!(
        r#"Desc{fqName: "isp_cluster_sessions_ended_total", help: "Sessions that ended, by the class of their reason.", "#,
        r#"constLabels: {}, variableLabels: {module,reason}}, type: *prometheus.CounterVec"#
    );
    assert!(body.lines().any(|l| l == ended), "{body}");
    let cpu = concat!(
        r#"Desc{fqName: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", "#,
        r#"constLabels: {}, variableLabels: {}}, type: *prometheus.processCollector"#
    );
    assert!(body.lines().any(|l| l == cpu), "{body}");
    for line in body.lines() {
        assert!(
            line.starts_with("Desc{fqName: \"isp_cluster_")
                || line.starts_with("Desc{fqName: \"process_"),
            "{line}"
        );
        assert!(line.contains(", type: *prometheus."), "{line}");
    }
    // Every metric of the scrape's `# HELP` lines is described.
    infra::install_recorder().unwrap();
    let text = scrape(&infra).await;
    for help in text.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
        let name = help.split(' ').next().unwrap();
        assert!(
            body.contains(&format!("Desc{{fqName: \"{name}\"")),
            "{name} is not described:\n{body}"
        );
    }
    infra.stop().await;
}

/// The scrape has Go's process series, a `# HELP` line for the crate's
/// metrics, and comes gzipped when the scraper asks (Prometheus does).
#[actix::test]
async fn metrics_have_process_series_help_lines_and_gzip_when_asked() {
    use awc::http::Method;
    use std::io::Read as _;
    init_logs();
    infra::install_recorder().unwrap();
    let pool = isp_cluster::lb::RoundRobin::new("obs-help");
    assert!(isp_cluster::lb::BalancedClient::new(pool)
        .get("/")
        .send()
        .await
        .is_err());
    let infra = Infra::standalone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = scrape(&infra).await;
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value = sample(&text, family, &[]).unwrap_or_else(|| panic!("{family}:\n{text}"));
        assert!(value > 0.0, "{family} {value}");
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
    }
    let rss = sample(&text, "process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1_048_576.0, "{rss}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let start = sample(&text, "process_start_time_seconds", &[]).unwrap();
    assert!(start <= now && start > now - 3600.0, "{start} vs {now}");
    assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    assert!(
        text.contains(
            "# HELP isp_cluster_lb_requests_total Requests of the balanced client to a required module, by outcome.\n"
        ),
        "{text}"
    );

    let (status, headers, body) = request(
        &infra,
        Method::GET,
        infra::METRICS_PATH,
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("content-encoding").unwrap(), "gzip");
    assert_eq!(headers.get("vary").unwrap(), "accept-encoding");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert!(
        body.len() < unzipped.len(),
        "{} {}",
        body.len(),
        unzipped.len()
    );
    assert!(
        unzipped.contains("# TYPE isp_cluster_lb_requests_total counter"),
        "{unzipped}"
    );
    assert!(unzipped.contains("\nprocess_resident_memory_bytes "));
    // Not asked, or gzip refused: plain text.
    for accept in [None, Some("identity"), Some("gzip;q=0, identity")] {
        let headers_sent: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let (status, headers, body) =
            request(&infra, Method::GET, infra::METRICS_PATH, &headers_sent).await;
        assert_eq!(status, 200);
        assert!(headers.get("content-encoding").is_none(), "{accept:?}");
        assert!(body.starts_with(b"# "), "{accept:?}");
    }
    infra.stop().await;
}
