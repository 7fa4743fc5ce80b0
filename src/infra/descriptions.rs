//! `/internal/metrics/descriptions`: what each metric means, in the text
//! isp-kit's `metrics.Registry.MetricsDescriptionHandler` writes.
//!
//! Go writes one line per metric of every registered collector,
//! `Content-Type: text/plain`:
//!
//! ```text
//! Desc{fqName: "isp_cluster_sessions_ended_total", help: "Sessions that ended, by the class of their reason.", constLabels: {}, variableLabels: {module,reason}}, type: *prometheus.CounterVec
//! ```
//!
//! that is, client_golang's `Desc.String()` and the Go type of the
//! collector (`%T`). Here the lines come from the crate's one list of
//! metrics (`src/metrics.rs`) and the `process_*` series, with the Go type
//! each would have in a Go module: a vector when it has labels, the plain
//! metric when it has none, the process collector for `process_*`. An
//! application's own metrics are not listed (the Prometheus recorder keeps
//! no list of them); Go lists every collector registered.

use std::fmt::Write as _;

use super::process::PROCESS_METRICS;
use crate::metrics::{self, Kind};

/// The content type isp-kit sets.
pub(crate) const CONTENT_TYPE: &str = "text/plain";

/// The whole text.
pub(crate) fn render() -> String {
    let mut out = String::with_capacity(4096);
    for m in metrics::all() {
        let kind = match (m.kind, m.labels.is_empty()) {
            (Kind::Counter, false) => "*prometheus.CounterVec",
            (Kind::Counter, true) => "*prometheus.counter",
            (Kind::Gauge, false) => "*prometheus.GaugeVec",
            (Kind::Gauge, true) => "*prometheus.gauge",
            (Kind::Histogram, false) => "*prometheus.HistogramVec",
            (Kind::Histogram, true) => "*prometheus.histogram",
        };
        line(&mut out, m.name, m.help, m.labels, kind);
    }
    for m in &PROCESS_METRICS {
        line(
            &mut out,
            m.name,
            m.help,
            &[],
            "*prometheus.processCollector",
        );
    }
    out
}

/// One line: `Desc.String()`, then `, type: ` and the Go type.
fn line(out: &mut String, name: &str, help: &str, labels: &[&str], kind: &str) {
    out.push_str("Desc{fqName: ");
    go_quote(out, name);
    out.push_str(", help: ");
    go_quote(out, help);
    let _ = writeln!(
        out,
        ", constLabels: {{}}, variableLabels: {{{}}}}}, type: {kind}",
        labels.join(",")
    );
}

/// A string as Go's `%q` writes printable text: `"` and `\` escaped,
/// control characters by name or as `\x..`.
fn go_quote(out: &mut String, s: &str) {
    crate::quote::push_quoted(out, s, |out, c| {
        let control = c.is_ascii_control();
        if control {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        control
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_client_golangs_desc_string_and_the_go_type() {
        let mut out = String::new();
        line(
            &mut out,
            "a_total",
            "Say \"hi\"\\n.",
            &["module", "reason"],
            "*prometheus.CounterVec",
        );
        line(&mut out, "b", "B.", &[], "*prometheus.gauge");
        assert_eq!(
            out,
            concat!(
                r#"Desc{fqName: "a_total", help: "Say \"hi\"\\n.", constLabels: {}, variableLabels: {module,reason}}, type: *prometheus.CounterVec"#,
                "\n",
                r#"Desc{fqName: "b", help: "B.", constLabels: {}, variableLabels: {}}, type: *prometheus.gauge"#,
                "\n"
            )
        );
    }

    #[test]
    fn every_metric_has_its_line() {
        let text = render();
        assert_eq!(
            text.lines().count(),
            metrics::all().count() + PROCESS_METRICS.len()
        );
        let ready = concat!(
            r#"Desc{fqName: "isp_cluster_session_ready_seconds", help: "Seconds from the start of a connection attempt to its MODULE:READY acknowledgement.", "#,
            r#"constLabels: {}, variableLabels: {module}}, type: *prometheus.HistogramVec"#,
            "\n"
        );
        assert!(text.contains(ready), "{text}");
        let rss = concat!(
            r#"Desc{fqName: "process_resident_memory_bytes", help: "Resident memory size in bytes.", "#,
            r#"constLabels: {}, variableLabels: {}}, type: *prometheus.processCollector"#,
            "\n"
        );
        assert!(text.contains(rss), "{text}");
    }
}
