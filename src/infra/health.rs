//! `/internal/health` in isp-kit's format (Go's `healthcheck.Registry`),
//! byte for byte, so that probes and dashboards made for Go modules read it.
//!
//! What isp-kit writes (healthcheck/registry.go and domain.go, encoded with
//! isp-kit's json package): `Content-Type: application/health+json`, 200
//! when every check passes and 500 when one fails, and the body
//!
//! ```text
//! {"status":"pass","details":{"configServiceConnection":[{"componentName":"configServiceConnection","componentType":"component","status":"pass","time":"2026-12-01T09:30:00.123Z"}]}}
//! ```
//!
//! followed by a newline. The field names are lowerCamelCase because
//! isp-kit's json package renames every untagged field so (the same
//! jsoniter configuration that writes the config-service protocol);
//! `output` (the check's error) is left out when empty; `time` is UTC with
//! milliseconds, trailing zeros dropped (isp-kit's `FullDateFormat`,
//! `2006-01-02T15:04:05.999Z07:00`); strings are escaped as jsoniter's
//! default configuration does (HTML characters as `\u003c`…). Go writes the
//! checks in map order (random); here they come sorted by name, one of the
//! orders Go may write.
//!
//! Results are cached for [`CACHE_TIME`], as in Go. Unlike Go, whose whole
//! handler runs under one `http.TimeoutHandler` (503 `timeout` when the
//! sum of the checks is too slow), each check runs on the blocking pool
//! under its own timeout, all at once, and one that does not answer fails
//! with its name: the answer always comes, and says which check hung.
//!
//! A check runs once at a time. One that outlives its timeout keeps its
//! blocking thread until it returns (a thread cannot be stopped), so it is
//! not started again meanwhile: the blocking pool is the application's too
//! (`web::block`), and a hung database ping started anew at every probe
//! would take it thread by thread. Until it returns, each answer fails it
//! at once with an `output` that says it is late: for how long it has run,
//! and its last result with that result's time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::rt::task::{spawn_blocking, JoinHandle};
use actix_web::rt::time::timeout;
use tokio::sync::Mutex;

/// How long a health answer is reused: isp-kit's `cacheTime`.
pub const CACHE_TIME: Duration = Duration::from_secs(1);

/// The content type of the health answer.
pub const CONTENT_TYPE: &str = "application/health+json";

/// A named check: `Err` carries the text shown as `output`.
pub(crate) type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync + 'static>;

/// The checks, their timeout and the cached answer: Go's
/// `healthcheck.Registry`.
pub(crate) struct Registry {
    slots: Vec<Arc<Slot>>,
    timeout: Duration,
    cache: Mutex<Option<(Instant, Answer)>>,
}

/// One answer: the status code and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: String,
}

/// One check's result.
struct Detail<'a> {
    name: &'a str,
    error: Option<String>,
    time: SystemTime,
}

/// A check and what it is doing: at most one call under way.
struct Slot {
    name: String,
    check: Check,
    state: std::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// When the call under way started; `None` when none is.
    running_since: Option<Instant>,
    /// The result of the last call that returned, and when it returned.
    last: Option<(SystemTime, Result<(), String>)>,
}

/// What a probe does with a check.
enum Start {
    /// A new call, on the blocking pool.
    Fresh(JoinHandle<Result<(), String>>),
    /// The last call has not returned: not started again.
    Late {
        running_for: Duration,
        last: Option<(SystemTime, Result<(), String>)>,
    },
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // The state is plain data written whole: a panic elsewhere while
        // it was held leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a call unless one is under way. The call itself records its
    /// result and frees the slot when it returns, whether anyone still
    /// waits for it or not; a panicking check counts as failed.
    fn start(self: &Arc<Self>) -> Start {
        let mut state = self.state();
        if let Some(since) = state.running_since {
            return Start::Late {
                running_for: since.elapsed(),
                last: state.last.clone(),
            };
        }
        state.running_since = Some(Instant::now());
        drop(state);
        let slot = Arc::clone(self);
        Start::Fresh(spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| (slot.check)()))
                .unwrap_or_else(|_| Err("the check panicked".to_owned()));
            let mut state = slot.state();
            state.running_since = None;
            state.last = Some((SystemTime::now(), result.clone()));
            result
        }))
    }
}

impl Registry {
    pub(crate) fn new(checks: BTreeMap<String, Check>, timeout: Duration) -> Self {
        let slots = checks
            .into_iter()
            .map(|(name, check)| {
                Arc::new(Slot {
                    name,
                    check,
                    state: std::sync::Mutex::default(),
                })
            })
            .collect();
        Self {
            slots,
            timeout,
            cache: Mutex::new(None),
        }
    }

    /// The answer, from the cache when it is younger than [`CACHE_TIME`].
    /// Concurrent requests wait for one run of the checks.
    pub(crate) async fn answer(&self) -> Answer {
        let mut cache = self.cache.lock().await;
        if let Some((at, answer)) = cache.as_ref() {
            if at.elapsed() < CACHE_TIME {
                return answer.clone();
            }
        }
        let at = Instant::now();
        let answer = self.run().await;
        *cache = Some((at, answer.clone()));
        answer
    }

    async fn run(&self) -> Answer {
        let limit = self.timeout;
        let runs = self.slots.iter().map(|slot| async move {
            let error = match slot.start() {
                Start::Fresh(call) => match timeout(limit, call).await {
                    Ok(Ok(result)) => result.err(),
                    Ok(Err(_)) => Some("the check panicked".to_owned()),
                    Err(_) => Some(format!("no answer within {limit:?}")),
                },
                Start::Late { running_for, last } => Some(late(running_for, limit, last)),
            };
            Detail {
                name: &slot.name,
                error,
                time: SystemTime::now(),
            }
        });
        let details = futures_util::future::join_all(runs).await;
        render(&details)
    }
}

/// The `output` of a check whose last call has not returned.
fn late(
    running_for: Duration,
    limit: Duration,
    last: Option<(SystemTime, Result<(), String>)>,
) -> String {
    // Whole milliseconds: the figure is for a person.
    let running_for = Duration::from_millis(running_for.as_millis() as u64);
    let mut out = format!(
        "late: the last call has run for {running_for:?} (timeout {limit:?}) and is not \
         started again until it returns; "
    );
    match last {
        None => out.push_str("no earlier result"),
        Some((at, Ok(()))) => {
            let _ = write!(out, "last result: pass at {}", go_time(at));
        }
        Some((at, Err(e))) => {
            let _ = write!(out, "last result: fail at {}: {e}", go_time(at));
        }
    }
    out
}

/// The answer for these results, as isp-kit writes it.
fn render(details: &[Detail<'_>]) -> Answer {
    let failed = details.iter().any(|d| d.error.is_some());
    let mut body = String::with_capacity(64 + details.len() * 160);
    body.push_str(r#"{"status":"#);
    push_str(&mut body, if failed { "fail" } else { "pass" });
    body.push_str(r#","details":{"#);
    for (i, detail) in details.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        push_str(&mut body, detail.name);
        body.push_str(r#":[{"componentName":"#);
        push_str(&mut body, detail.name);
        body.push_str(r#","componentType":"component","status":"#);
        push_str(
            &mut body,
            if detail.error.is_some() {
                "fail"
            } else {
                "pass"
            },
        );
        if let Some(error) = detail.error.as_deref().filter(|e| !e.is_empty()) {
            body.push_str(r#","output":"#);
            push_str(&mut body, error);
        }
        body.push_str(r#","time":"#);
        push_str(&mut body, &go_time(detail.time));
        body.push_str("}]");
    }
    body.push_str("}}\n");
    Answer {
        status: if failed {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        },
        body,
    }
}

/// A JSON string as jsoniter's default configuration writes it: `"` and
/// `\` escaped with a backslash, `\n`, `\r`, `\t` by name, other control
/// characters, `<`, `>`, `&`, U+2028 and U+2029 as `\u00xx`.
fn push_str(out: &mut String, s: &str) {
    crate::quote::push_quoted(out, s, |out, c| {
        let escaped = (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}');
        if escaped {
            crate::quote::push_unicode_escape(out, c);
        }
        escaped
    });
}

/// `time` as Go formats `2006-01-02T15:04:05.999Z07:00` in UTC: milliseconds
/// with trailing zeros (and the dot) dropped.
pub(crate) fn go_time(time: SystemTime) -> String {
    let utc = crate::time::Utc::of(time);
    let mut out = utc.date_time();
    if utc.millis > 0 {
        let fraction = format!("{:03}", utc.millis);
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn times_are_written_as_go_writes_full_date_format() {
        assert_eq!(go_time(at(0, 0)), "1970-01-01T00:00:00Z");
        // 2026-12-01T09:28:23 UTC
        assert_eq!(go_time(at(1_796_117_303, 120)), "2026-12-01T09:28:23.12Z");
        assert_eq!(go_time(at(1_796_117_303, 5)), "2026-12-01T09:28:23.005Z");
        assert_eq!(go_time(at(951_782_400, 999)), "2000-02-29T00:00:00.999Z");
        assert_eq!(go_time(at(4_107_542_399, 100)), "2100-02-28T23:59:59.1Z");
    }

    #[test]
    fn strings_are_escaped_as_jsoniter_does() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\te<f>&g\u{1}\u{2028}é");
        assert_eq!(out, r#""a\"b\\c\nd\te\u003cf\u003e\u0026g\u0001\u2028é""#);
    }

    #[test]
    fn a_failing_check_fails_the_whole_answer_and_keeps_its_output() {
        let details = [
            Detail {
                name: "a",
                error: None,
                time: at(0, 0),
            },
            Detail {
                name: "b",
                error: Some("down".into()),
                time: at(0, 1),
            },
        ];
        let answer = render(&details);
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            answer.body,
            concat!(
                r#"{"status":"fail","details":{"#,
                r#""a":[{"componentName":"a","componentType":"component","status":"pass","time":"1970-01-01T00:00:00Z"}],"#,
                r#""b":[{"componentName":"b","componentType":"component","status":"fail","output":"down","time":"1970-01-01T00:00:00.001Z"}]"#,
                "}}\n"
            )
        );
        assert_eq!(render(&[]).body, "{\"status\":\"pass\",\"details\":{}}\n");
    }
}
