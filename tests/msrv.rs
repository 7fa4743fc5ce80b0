//! `rust-version` in Cargo.toml must stay what is true: no lower than the
//! newest `rust-version` among the dependencies of the locked tree. (Our
//! own code is held to it by clippy's `incompatible_msrv` lint, which flags
//! any std API newer than `rust-version`.)
//!
//! The tree is read with `cargo metadata --offline --locked
//! --filter-platform <host>`: the packages this machine builds, all of
//! which `cargo test` has just downloaded. Without `--filter-platform`,
//! metadata wants the sources of every platform's dependencies (Windows
//! crates among them), which a fresh cargo home does not hold and
//! `--offline` cannot fetch; without `--offline` the test would reach the
//! network. `--locked` makes it fail, instead of resolving anew, when
//! `Cargo.lock` is out of date.

use std::process::Command;

use serde_json::Value;

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The host triple, as cargo reports it (`cargo -vV`).
fn host_triple() -> String {
    let output = Command::new(env!("CARGO"))
        .arg("-vV")
        .output()
        .expect("cargo runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host")
        .to_owned()
}

/// Checks `ours` against every package of `metadata` but `own`: `Ok` names
/// the most demanding dependency, `Err` the one that needs more than `ours`.
fn check(ours: &str, own: &str, metadata: &Value) -> Result<String, String> {
    let mut needs: Vec<(Vec<u32>, String)> = metadata["packages"]
        .as_array()
        .ok_or("metadata lists no packages")?
        .iter()
        .filter(|p| p["name"] != own)
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            Some((
                version(rv),
                format!(
                    "{} {} needs {rv}",
                    p["name"].as_str()?,
                    p["version"].as_str()?
                ),
            ))
        })
        .collect();
    needs.sort();
    let (newest, who) = needs.last().ok_or("no dependency declares rust-version")?;
    if version(ours) >= *newest {
        Ok(who.clone())
    } else {
        Err(format!("rust-version {ours} is below what {who}: raise it"))
    }
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let ours = env!("CARGO_PKG_RUST_VERSION");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--locked",
            "--filter-platform",
        ])
        .arg(host_triple())
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    match check(ours, env!("CARGO_PKG_NAME"), &metadata) {
        Ok(who) => println!("rust-version {ours}; the most demanding dependency: {who}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_dependency_that_needs_a_newer_rust_fails_the_check() {
    let metadata = serde_json::json!({"packages": [
        {"name": "isp-cluster", "version": "0.2.0", "rust_version": "1.89"},
        {"name": "old", "version": "1.0.0", "rust_version": "1.70"},
        {"name": "greedy", "version": "2.1.0", "rust_version": "1.95.1"},
        {"name": "silent", "version": "0.1.0", "rust_version": null},
    ]});
    let err = check("1.89", "isp-cluster", &metadata).unwrap_err();
    assert_eq!(
        err,
        "rust-version 1.89 is below what greedy 2.1.0 needs 1.95.1: raise it"
    );
    assert_eq!(
        check("1.96", "isp-cluster", &metadata).unwrap(),
        "greedy 2.1.0 needs 1.95.1"
    );
    // A patch version counts: 1.95 is below 1.95.1.
    assert!(check("1.95", "isp-cluster", &metadata).is_err());
}
