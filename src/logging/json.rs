//! isp-kit's JSON log lines: what its `log` package (zap's production
//! configuration, ISO 8601 times, no caller, no stack trace) writes to
//! stderr.
//!
//! ```text
//! {"level":"info","ts":"2026-12-07T17:32:23.123Z","logger":"isp_cluster::client::supervisor","msg":"connected; registering","module":"orders","sessionId":"3","configService":"10.0.0.2:9001"}
//! ```
//!
//! * `level`: zap's lower-case names (`debug`, `info`, `warn`, `error`);
//!   `log`'s TRACE, which zap lacks, is written `debug`.
//! * `ts`: zap's `ISO8601TimeEncoder`, milliseconds always, here in UTC
//!   (`Z`), as a Go module writes it in a container without `TZ`.
//! * `logger`: the `log` target (zap's name key: isp-kit's lines have it
//!   only from a named logger).
//! * `msg`: the message, without the session tag.
//! * The session fields: the crate's session lines begin with a tag,
//!   `[module=… session=… host=…]`; it becomes the fields `module`,
//!   `sessionId` and `configService`, the names isp-kit's cluster client
//!   puts on its session's lines (`sessionId`, `configService`), and the
//!   module's name.
//!
//! Field order is zap's: level, time, name, message, then the fields.
//! Strings are escaped as zap escapes them (`"`, `\`, `\n`, `\r`, `\t`,
//! other control characters as `\u00XX`; HTML characters kept).

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record, SetLoggerError};

/// A `log` logger that writes isp-kit's JSON lines (Go: isp-kit's
/// `log.Adapter` in production mode), one `write` a line so that lines
/// from threads never interleave. Its level is the `log` facade's maximum
/// level ([`log::set_max_level`], which [`RemoteLogLevel`](super::RemoteLogLevel)
/// moves at run time, as Go's `logger.SetLevel`).
pub struct JsonLogger {
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for JsonLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLogger").finish_non_exhaustive()
    }
}

impl JsonLogger {
    /// Lines to stderr, as isp-kit's production logger writes them.
    pub fn stderr() -> Self {
        Self::to_writer(io::stderr())
    }

    /// Lines to `out` (a file, a pipe, a buffer in a test).
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        Self {
            out: Mutex::new(Box::new(out)),
        }
    }

    /// Installs it as the process's `log` logger, at `level` (isp-kit
    /// starts at INFO, DEBUG with `APP_MODE=dev`). Fails when a logger is
    /// installed already.
    pub fn install(self, level: LevelFilter) -> Result<(), SetLoggerError> {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(level);
        Ok(())
    }
}

impl Log for JsonLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = line(
            record.level(),
            SystemTime::now(),
            record.target(),
            &record.args().to_string(),
        );
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // A logger has nowhere to report its own failure.
        let _ = out.write_all(line.as_bytes());
    }

    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.flush();
    }
}

/// zap's name of `level`.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

/// The JSON line, newline included.
pub(crate) fn line(level: Level, time: SystemTime, target: &str, message: &str) -> String {
    let (fields, message) = split_tag(message);
    let mut out = String::with_capacity(96 + target.len() + message.len());
    out.push_str("{\"level\":\"");
    out.push_str(level_name(level));
    out.push_str("\",\"ts\":\"");
    // zap's `ISO8601TimeEncoder` in UTC: `2006-01-02T15:04:05.000Z`.
    out.push_str(&crate::time::rfc3339(time));
    out.push_str("\",\"logger\":");
    push_str(&mut out, target);
    out.push_str(",\"msg\":");
    push_str(&mut out, message);
    for (key, value) in fields {
        out.push(',');
        push_str(&mut out, key);
        out.push(':');
        push_str(&mut out, value);
    }
    out.push_str("}\n");
    out
}

/// The session tag's fields, renamed as isp-kit names them, and the rest of
/// the message; no fields when the message has no tag of the crate's shape
/// (`[module=… session=… host=…] `, session and host optional).
fn split_tag(message: &str) -> (Vec<(&'static str, &str)>, &str) {
    let untouched = (Vec::new(), message);
    let Some(rest) = message.strip_prefix('[') else {
        return untouched;
    };
    let Some((tag, text)) = rest.split_once("] ") else {
        return untouched;
    };
    let mut fields = Vec::with_capacity(3);
    for (i, item) in tag.split(' ').enumerate() {
        let Some((key, value)) = item.split_once('=') else {
            return untouched;
        };
        let field = match (i, key) {
            (0, "module") => "module",
            (1.., "session") => "sessionId",
            (1.., "host") => "configService",
            _ => return untouched,
        };
        fields.push((field, value));
    }
    (fields, text)
}

/// A JSON string as zap's encoder writes it.
fn push_str(out: &mut String, s: &str) {
    crate::quote::push_quoted(out, s, |out, c| {
        let escaped = (c as u32) < 0x20;
        if escaped {
            crate::quote::push_unicode_escape(out, c);
        }
        escaped
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    #[test]
    fn a_session_line_has_isp_kits_fields() {
        let tag = crate::client::session_tag("orders", 3, "10.0.0.2:9001");
        let line = line(
            Level::Warn,
            at(1_796_117_303_020),
            "isp_cluster::client::supervisor",
            &format!("{tag} session ended: no pong within 3s"),
        );
        assert_eq!(
            line,
            concat!(
                r#"{"level":"warn","ts":"2026-12-01T09:28:23.020Z","logger":"isp_cluster::client::supervisor","#,
                r#""msg":"session ended: no pong within 3s","module":"orders","sessionId":"3","configService":"10.0.0.2:9001"}"#,
                "\n"
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["sessionId"], "3");
    }

    #[test]
    fn a_line_without_a_tag_is_left_whole_and_strings_are_escaped_as_zap_does() {
        let line = line(Level::Trace, at(0), "app", "[not a tag] <b>\"x\"\\\n\u{8}é");
        assert_eq!(
            line,
            concat!(
                r#"{"level":"debug","ts":"1970-01-01T00:00:00.000Z","logger":"app","#,
                r#""msg":"[not a tag] <b>\"x\"\\\n\u0008é"}"#,
                "\n"
            )
        );
        assert_eq!(split_tag("[module=a] "), (vec![("module", "a")], ""));
        for message in [
            "[module=a]x",
            "[session=1] x",
            "[module=a bad] x",
            "[module=a x=1] y",
        ] {
            assert_eq!(split_tag(message), (vec![], message), "{message}");
        }
    }

    #[test]
    fn the_logger_writes_whole_lines_at_the_facades_level() {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let logger = JsonLogger::to_writer(buffer.clone());
        let record = |level| {
            Record::builder()
                .level(level)
                .target("t")
                .args(format_args!("hello"))
                .build()
        };
        // The facade's level is the logger's (no other lib test logs).
        log::set_max_level(LevelFilter::Info);
        logger.log(&record(Level::Debug));
        logger.log(&record(Level::Error));
        logger.flush();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with(r#"{"level":"error","ts":""#), "{text}");
        assert!(
            text.ends_with("\",\"logger\":\"t\",\"msg\":\"hello\"}\n"),
            "{text}"
        );
    }
}
