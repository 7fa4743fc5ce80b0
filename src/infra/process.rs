//! The `process_*` series of `/internal/metrics`, as Go's process collector
//! (`collectors.NewProcessCollector`, registered by isp-kit's metrics
//! registry) writes them: the same names, types and help texts, so that
//! dashboards and alerts made for Go modules read a Rust module's too.
//!
//! The values come from `metrics-process`'s snapshot (procfs on Linux,
//! libproc on macOS, the Windows API), taken at each scrape as Go's
//! collector takes them. They are written here rather than recorded through
//! the `metrics` facade: the facade's counters are whole numbers, and CPU
//! seconds would lose their fraction.

use std::fmt::Write as _;

/// A `process_*` series: name, Prometheus type, help text.
pub(crate) struct ProcessMetric {
    pub(crate) name: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) help: &'static str,
}

/// Every `process_*` series written, with Go's help texts
/// (`process_threads` is `metrics-process`'s; Go counts threads in
/// `go_threads`).
pub(crate) const PROCESS_METRICS: [ProcessMetric; 8] = [
    ProcessMetric {
        name: "process_cpu_seconds_total",
        kind: "counter",
        help: "Total user and system CPU time spent in seconds.",
    },
    ProcessMetric {
        name: "process_open_fds",
        kind: "gauge",
        help: "Number of open file descriptors.",
    },
    ProcessMetric {
        name: "process_max_fds",
        kind: "gauge",
        help: "Maximum number of open file descriptors.",
    },
    ProcessMetric {
        name: "process_virtual_memory_bytes",
        kind: "gauge",
        help: "Virtual memory size in bytes.",
    },
    ProcessMetric {
        name: "process_virtual_memory_max_bytes",
        kind: "gauge",
        help: "Maximum amount of virtual memory available in bytes.",
    },
    ProcessMetric {
        name: "process_resident_memory_bytes",
        kind: "gauge",
        help: "Resident memory size in bytes.",
    },
    ProcessMetric {
        name: "process_start_time_seconds",
        kind: "gauge",
        help: "Start time of the process since unix epoch in seconds.",
    },
    ProcessMetric {
        name: "process_threads",
        kind: "gauge",
        help: "Number of OS threads in the process.",
    },
];

/// What Go writes for a limit that is unlimited (`RLIM_INFINITY` as a
/// float); `metrics-process` reads it as 0.
const UNLIMITED: u64 = u64::MAX;

/// A value of a series, as its text.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Float(f64),
    Int(u64),
}

/// The values of this process now, in the order of [`PROCESS_METRICS`];
/// `None` for one the platform does not give.
fn snapshot() -> [Option<Value>; 8] {
    #[cfg(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "windows",
        target_os = "freebsd",
        target_os = "openbsd"
    ))]
    {
        let m = metrics_process::collector::collect();
        let limit = |v: u64| if v == 0 { UNLIMITED } else { v };
        [
            m.cpu_seconds_total.map(Value::Float),
            m.open_fds.map(Value::Int),
            m.max_fds.map(limit).map(Value::Int),
            m.virtual_memory_bytes.map(Value::Int),
            m.virtual_memory_max_bytes.map(limit).map(Value::Int),
            m.resident_memory_bytes.map(Value::Int),
            m.start_time_seconds.map(Value::Int),
            m.threads.map(Value::Int),
        ]
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "windows",
        target_os = "freebsd",
        target_os = "openbsd"
    )))]
    {
        let _ = UNLIMITED;
        Default::default()
    }
}

/// Appends the `process_*` families to `text` (Prometheus' text format),
/// unless `text` has them already (an application that records them
/// itself): a family twice would make the whole scrape invalid.
pub(crate) fn append(text: &mut String) {
    if text.contains("# TYPE process_cpu_seconds_total ") {
        return;
    }
    write(text, &snapshot());
}

fn write(text: &mut String, values: &[Option<Value>]) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for (metric, value) in PROCESS_METRICS.iter().zip(values) {
        let Some(value) = value else { continue };
        let _ = writeln!(text, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(text, "# TYPE {} {}", metric.name, metric.kind);
        let _ = match value {
            Value::Float(v) => writeln!(text, "{} {v}", metric.name),
            Value::Int(v) => writeln!(text, "{} {v}", metric.name),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_as_go_writes_them_and_missing_ones_left_out() {
        let mut text = "# TYPE x counter\nx 1".to_owned();
        let mut values: [Option<Value>; 8] = Default::default();
        values[0] = Some(Value::Float(0.57));
        values[4] = Some(Value::Int(UNLIMITED));
        write(&mut text, &values);
        assert_eq!(
            text,
            "# TYPE x counter\nx 1\n\
             # HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\n\
             process_cpu_seconds_total 0.57\n\
             # HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available in bytes.\n\
             # TYPE process_virtual_memory_max_bytes gauge\n\
             process_virtual_memory_max_bytes 18446744073709551615\n"
        );
    }

    #[test]
    fn families_already_there_are_not_written_twice() {
        let mut text =
            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n".to_owned();
        let before = text.clone();
        append(&mut text);
        assert_eq!(text, before);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_its_memory_cpu_files_and_start_time() {
        let values = snapshot();
        for (metric, value) in PROCESS_METRICS.iter().zip(&values) {
            assert!(value.is_some(), "{}", metric.name);
        }
        let Some(Value::Int(rss)) = values[5] else {
            unreachable!()
        };
        assert!(rss > 1 << 20, "{rss}");
    }
}
