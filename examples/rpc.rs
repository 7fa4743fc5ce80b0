//! isp RPC from the command line: serve the four test endpoints, or call
//! one through the crate's client. The interface the interop checks drive:
//!
//! ```text
//! cargo run --example rpc -- serve --listen 127.0.0.1:PORT
//! cargo run --example rpc -- call --hosts H1,H2 --endpoint NAME --body JSON
//!       [--timeout-ms N] [--request-id ID] [--header K=V]... [--count N --concurrency C]
//! ```
//!
//! `serve` prints `{"event":"listening","addr":"…"}` once it accepts
//! connections and ends gracefully on SIGTERM or SIGINT (calls in flight
//! finish, within 10 s), exit status 0. `call` prints one JSON line per
//! call (or one summary line with `--count`), exit status 0 when every call
//! succeeded, 1 otherwise, 2 on bad arguments.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use isp_cluster::lb::HostsUpgrader;
use isp_cluster::rpc::{CallError, Error, Json, Metadata, RequestId, Router, RpcClient, RpcServer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

const USAGE: &str =
    "usage: rpc serve --listen ADDR | rpc call --hosts H1,H2 --endpoint NAME --body JSON \
[--timeout-ms N] [--request-id ID] [--header K=V]... [--count N --concurrency C]";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        Some("serve") => match parse_serve(&args[1..]) {
            Ok(listen) => runtime.block_on(serve(listen)),
            Err(reason) => bad_arguments(&reason),
        },
        Some("call") => match parse_call(&args[1..]) {
            Ok(call) => runtime.block_on(call_main(call)),
            Err(reason) => bad_arguments(&reason),
        },
        _ => bad_arguments("the first argument must be `serve` or `call`"),
    }
}

fn bad_arguments(reason: &str) -> ExitCode {
    eprintln!("error: {reason}\n{USAGE}");
    ExitCode::from(2)
}

// ---- serve ------------------------------------------------------------------

fn parse_serve(args: &[String]) -> Result<String, String> {
    let mut listen = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => listen = Some(value(&mut it, arg)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    listen.ok_or_else(|| "--listen is required".to_owned())
}

/// `rpc/echo`: the body, unchanged.
async fn echo(Json(body): Json<Box<RawValue>>) -> Result<Box<RawValue>, Error> {
    Ok(body)
}

/// `rpc/headers`: each text key with its first value.
async fn headers(metadata: Metadata) -> Result<BTreeMap<String, String>, Error> {
    Ok(metadata
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// `rpc/fail`: a business error.
async fn fail() -> Result<(), Error> {
    let mut details = serde_json::Map::new();
    details.insert("field".into(), "x".into());
    Err(Error::business(400, "bad input").with_details(details))
}

#[derive(serde::Deserialize)]
struct Sleep {
    ms: u64,
}

/// `rpc/sleep`: sleeps `ms`, then says so.
async fn sleep(Json(sleep): Json<Sleep>) -> Result<Value, Error> {
    tokio::time::sleep(Duration::from_millis(sleep.ms)).await;
    Ok(json!({ "slept": sleep.ms }))
}

async fn serve(listen: String) -> ExitCode {
    let router = Router::new()
        .route("rpc/echo", echo)
        .route("rpc/headers", headers)
        .route("rpc/fail", fail)
        .route("rpc/sleep", sleep);
    let server = match RpcServer::builder(router)
        .stop_grace(Duration::ZERO)
        .drain_timeout(Duration::from_secs(10))
        .bind(listen.as_str())
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        json!({"event": "listening", "addr": server.local_addr().to_string()})
    );
    wait_for_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

// ---- call -------------------------------------------------------------------

struct CallArgs {
    hosts: Vec<String>,
    endpoint: String,
    body: Box<RawValue>,
    timeout: Option<Duration>,
    request_id: Option<String>,
    headers: Vec<(String, String)>,
    count: Option<usize>,
    concurrency: usize,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<String, String> {
    it.next()
        .cloned()
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn number(text: &str, flag: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("{flag} must be a whole number, not {text:?}"))
}

fn parse_call(args: &[String]) -> Result<CallArgs, String> {
    let (mut hosts, mut endpoint, mut body) = (None, None, None);
    let mut call = CallArgs {
        hosts: Vec::new(),
        endpoint: String::new(),
        body: RawValue::from_string("null".into()).map_err(|e| e.to_string())?,
        timeout: None,
        request_id: None,
        headers: Vec::new(),
        count: None,
        concurrency: 1,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--hosts" => hosts = Some(value(&mut it, arg)?),
            "--endpoint" => endpoint = Some(value(&mut it, arg)?),
            "--body" => body = Some(value(&mut it, arg)?),
            "--timeout-ms" => {
                let ms = number(&value(&mut it, arg)?, arg)?;
                call.timeout = Some(Duration::from_millis(ms as u64));
            }
            "--request-id" => call.request_id = Some(value(&mut it, arg)?),
            "--header" => {
                let pair = value(&mut it, arg)?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--header wants K=V, not {pair:?}"))?;
                call.headers.push((k.to_owned(), v.to_owned()));
            }
            "--count" => call.count = Some(number(&value(&mut it, arg)?, arg)?),
            "--concurrency" => call.concurrency = number(&value(&mut it, arg)?, arg)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let hosts = hosts.ok_or("--hosts is required")?;
    call.hosts = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    if call.hosts.is_empty() {
        return Err("--hosts names no host".into());
    }
    call.endpoint = endpoint.ok_or("--endpoint is required")?;
    let body = body.ok_or("--body is required")?;
    call.body = RawValue::from_string(body).map_err(|e| format!("--body is not JSON: {e}"))?;
    if call.count == Some(0) || call.concurrency == 0 {
        return Err("--count and --concurrency must be at least 1".into());
    }
    Ok(call)
}

async fn call_main(args: CallArgs) -> ExitCode {
    let client = RpcClient::new("rpc");
    client.upgrade(&args.hosts);
    let args = Arc::new(args);
    let Some(count) = args.count else {
        let result = one_call(&client, &args).await;
        println!("{}", call_line(&result));
        return if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    };
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.min(count) {
        let (client, args, next) = (client.clone(), args.clone(), next.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let at = Instant::now();
                if one_call(&client, &args).await.is_err() {
                    errors += 1;
                }
                latencies.push(at.elapsed());
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    while let Some(joined) = workers.join_next().await {
        if let Ok((l, e)) = joined {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1));
        latencies.get(at - 1).map_or(0, |d| d.as_micros() as u64)
    };
    println!(
        "{}",
        json!({
            "calls": count,
            "errors": errors,
            "p50_us": percentile(0.50),
            "p99_us": percentile(0.99),
            "per_s": (count as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        })
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn one_call(client: &RpcClient, args: &CallArgs) -> Result<Box<RawValue>, CallError> {
    let mut call = client
        .call(args.endpoint.as_str())
        .raw_json(args.body.get().to_owned());
    if let Some(timeout) = args.timeout {
        call = call.timeout(timeout);
    }
    if let Some(id) = &args.request_id {
        call = call.request_id(RequestId::from_string(id.as_str()));
    }
    for (k, v) in &args.headers {
        call = call.header(k.as_str(), v.as_str());
    }
    call.send::<Box<RawValue>>().await
}

fn call_line(result: &Result<Box<RawValue>, CallError>) -> Value {
    match result {
        Ok(body) => {
            let body: Value = serde_json::from_str(body.get()).unwrap_or(Value::Null);
            json!({"ok": true, "body": body})
        }
        Err(error) => {
            let message = error
                .status_message()
                .map_or_else(|| error.to_string(), str::to_owned);
            let mut line = json!({"ok": false, "code": error.code().name(), "message": message});
            if let Some(detail) = error.detail() {
                line["errorCode"] = json!(detail.error_code);
                line["errorMessage"] = json!(detail.error_message);
                line["details"] = Value::Object(detail.details.clone());
            }
            line
        }
    }
}
