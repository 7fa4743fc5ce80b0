//! The RPC metrics: calls by endpoint and outcome, latency histograms,
//! server and client; a name a peer sent never becomes a label. Its own
//! test binary: it installs the process-wide recorder.

mod common;

use std::time::Duration;

use isp_cluster::infra;
use isp_cluster::lb::HostsUpgrader;
use isp_cluster::rpc::{Error, Json, Router, RpcClient, RpcServer};
use serde_json::Value;

async fn echo(Json(body): Json<Value>) -> Result<Value, Error> {
    Ok(body)
}

#[actix_rt::test]
async fn calls_are_counted_and_timed_by_endpoint_and_code_never_by_a_sent_name() {
    let handle = infra::install_recorder().unwrap();
    let rpc = RpcServer::builder(Router::new().route("m/echo", echo))
        .bind("127.0.0.1:0")
        .unwrap();
    let client = RpcClient::new("metered");
    client.upgrade(&[rpc.local_addr().to_string()]);
    let _: Value = client.call("m/echo").json(&1).send().await.unwrap();
    let _ = client.call("m/echo").send::<Value>().await.unwrap_err();
    let _ = client
        .call("secret-name-from-a-peer")
        .json(&1)
        .send::<Value>()
        .await
        .unwrap_err();
    rpc.shutdown().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let text = handle.render();
    let has = |line: &str| text.lines().any(|l| l.starts_with(line));
    assert!(
        has(r#"isp_cluster_rpc_server_calls_total{endpoint="m/echo",code="OK"} 1"#),
        "{text}"
    );
    assert!(has(
        r#"isp_cluster_rpc_server_calls_total{endpoint="m/echo",code="InvalidArgument"} 1"#
    ));
    assert!(has(
        r#"isp_cluster_rpc_server_calls_total{endpoint="(unrouted)",code="NotFound"} 1"#
    ));
    assert!(has(
        r#"isp_cluster_rpc_server_call_duration_seconds_count{endpoint="m/echo"} 2"#
    ));
    assert!(has(
        r#"isp_cluster_rpc_client_calls_total{module="metered",endpoint="m/echo",code="OK"} 1"#
    ));
    assert!(has(
        r#"isp_cluster_rpc_client_call_duration_seconds_count{module="metered",endpoint="m/echo"} 2"#
    ));
    // The caller's own code named it: a client label; the server never
    // takes it.
    let server_lines: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("isp_cluster_rpc_server") && l.contains("secret-name"))
        .collect();
    assert!(server_lines.is_empty(), "{server_lines:?}");
}
