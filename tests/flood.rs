//! A hostile peer that writes as fast as it can and reads nothing: the
//! client's output stays bounded. Alone in its binary, so that the process's
//! resident memory is the client's and the peer's only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::ws;
use bytes::Bytes;
use isp_cluster::{ClusterClient, SessionEvent};

mod common;
mod peer;
use common::{quick_module, wait_until, Recorder};
use peer::ScriptedPeer;

/// How long the peer floods without reading.
const FLOOD: Duration = Duration::from_secs(4);

/// The resident set of this process, in KiB (Linux; `None` elsewhere).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn inactive_reasons(events: &[SessionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Inactive { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Pings of 125 bytes as fast as the socket takes them, for several
/// seconds, and not one frame read: each ping asks for a pong, and the
/// client must not queue one per ping. Either the session ends with 1008
/// or memory stays within a few MiB of where it started.
#[actix::test]
async fn a_ping_flood_from_a_peer_that_never_reads_keeps_memory_bounded() {
    let sent = Arc::new(AtomicU64::new(0));
    let flooding = Arc::new(AtomicBool::new(false));
    let (sent_in, flooding_in) = (sent.clone(), flooding.clone());
    let peer = ScriptedPeer::start(move |mut conn| {
        let (sent, flooding) = (sent_in.clone(), flooding_in.clone());
        async move {
            if !conn.first_session().await {
                return;
            }
            flooding.store(true, Ordering::SeqCst);
            let payload = Bytes::from(vec![b'p'; 125]);
            let until = Instant::now() + FLOOD;
            while Instant::now() < until {
                let timed = actix_rt::time::timeout(
                    Duration::from_millis(50),
                    conn.send_buffered(ws::Message::Ping(payload.clone())),
                )
                .await;
                if timed.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            flooding.store(false, Ordering::SeqCst);
            // Only now read: the client must still be there, or have said
            // why it left.
            let ending = conn.until_closed().await;
            log::info!("flood peer: {ending:?}");
        }
    })
    .await;
    let (events, seen) = Recorder::start_new();
    // Our own pings are far apart: only the flood's pongs are measured.
    let client: ClusterClient = quick_module()
        .ping(Duration::from_secs(20), Duration::from_secs(10))
        .hosts([peer.host()])
        .session_events(events.recipient())
        .start()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || flooding.load(Ordering::SeqCst)).await);
    let before = rss_kib();
    let mut peak = before;
    while flooding.load(Ordering::SeqCst) {
        actix::clock::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_kib());
    }
    let reasons = inactive_reasons(&seen.events());
    println!(
        "ping flood: {} pings in {FLOOD:?}; RSS before {:?} KiB, peak {:?} KiB; session ends: {reasons:?}",
        sent.load(Ordering::Relaxed),
        before,
        peak
    );
    let ended_as_not_reading = reasons.iter().any(|r| r.contains("peer is not reading"));
    if let (Some(before), Some(peak), false) = (before, peak, ended_as_not_reading) {
        assert!(
            peak < before + 8 * 1024,
            "RSS grew from {before} KiB to {peak} KiB under a ping flood"
        );
    }
    client.close().await;
}
