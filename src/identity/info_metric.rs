//! `isp_cluster_config_info{module,hash} 1`: the config each module of the
//! process runs, one series per module at a time.
//!
//! The series is not recorded through the `metrics` facade: the facade has
//! no way to remove a series, and a gauge left behind at 0 for every old
//! hash would make `count by (hash)` over the fleet count configs no
//! instance runs any more. The process keeps the current hash of each
//! module here instead, and the infra scope's `/internal/metrics` appends
//! the series to what the recorder renders ([`render`]): when a new config
//! is applied, the old series is gone from the next scrape and Prometheus
//! marks it stale.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use super::ConfigHash;
use crate::metrics::CONFIG_INFO;

/// The hash of the config in force, by module.
static CURRENT: Mutex<BTreeMap<String, ConfigHash>> = Mutex::new(BTreeMap::new());

/// `module` now runs the config `hash` (its series replaces the last one).
pub(crate) fn set(module: &str, hash: ConfigHash) {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    match current.get_mut(module) {
        Some(held) => *held = hash,
        None => {
            current.insert(module.to_owned(), hash);
        }
    }
}

/// The series in Prometheus' text format (0.0.4), with its HELP and TYPE
/// lines; nothing before the first config is applied.
#[cfg_attr(not(feature = "infra"), allow(dead_code))]
pub(crate) fn render(out: &mut String) {
    let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if current.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP {CONFIG_INFO} The config each module runs: 1, labelled with its content hash."
    );
    let _ = writeln!(out, "# TYPE {CONFIG_INFO} gauge");
    for (module, hash) in current.iter() {
        let _ = writeln!(
            out,
            "{CONFIG_INFO}{{module=\"{}\",hash=\"{hash}\"}} 1",
            LabelValue(module)
        );
    }
}

/// A label value escaped as the text format wants: `\\`, `\"`, `\n`.
struct LabelValue<'a>(&'a str);

impl std::fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_module_the_old_one_gone() {
        let a: ConfigHash = "aaaaaaaaaaaa".parse().unwrap();
        let b: ConfigHash = "bbbbbbbbbbbb".parse().unwrap();
        set("info-test \"x\"\n", a);
        set("info-test \"x\"\n", b);
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains(&format!(
                "{CONFIG_INFO}{{module=\"info-test \\\"x\\\"\\n\",hash=\"bbbbbbbbbbbb\"}} 1\n"
            )),
            "{out}"
        );
        assert!(!out.contains("aaaaaaaaaaaa"), "{out}");
        assert_eq!(out.matches("# TYPE").count(), 1);
    }
}
