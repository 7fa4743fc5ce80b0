//! `rust-version` in Cargo.toml must stay what is true: no lower than the
//! newest `rust-version` among the dependencies a resolve picks today. (Our
//! own code is held to it by clippy's `incompatible_msrv` lint, which flags
//! any std API newer than `rust-version`.)

use std::process::Command;

fn version(text: &str) -> Vec<u32> {
    text.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn rust_version_covers_every_resolved_dependency() {
    let ours = env!("CARGO_PKG_RUST_VERSION");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut needs: Vec<(Vec<u32>, String)> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] != env!("CARGO_PKG_NAME"))
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
    let (newest, who) = needs.last().expect("dependencies declare rust-version");
    println!("rust-version {ours}; the most demanding dependency: {who}");
    assert!(
        version(ours) >= *newest,
        "rust-version {ours} is below what {who}: raise it"
    );
}
