//! The application's own keys of a Go module's `config.yml`, read by
//! `Bootstrap::app_config` into the application's type as isp-kit's
//! `config.Read` reads them: the file, the environment over it (with or
//! without `APP_CONFIG_ENV_PREFIX`), keys matched without regard to case,
//! then the `garde` rules a Go team's `validate` tags map onto. Every
//! scenario hands the loader an `Environment` value of its own.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use isp_cluster::bootstrap::{AppConfigError, Bootstrap, Environment};

/// The module's remote config (registered; not read here).
#[allow(dead_code)]
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Remote {
    limit: u32,
}

/// The cluster's keys, then the application's own, as a Go gateway's
/// `config.yml` has them.
const CONFIG: &str = "\
moduleName: gateway
configServiceAddress: {ip: 127.0.0.1, port: 9001}
grpcOuterAddress: {ip: 10.0.0.5, port: 9002}
grpcInnerAddress: {ip: 0.0.0.0, port: 9002}
database:
  host: db.local
  maxConns: 10
  password: pw-file-secret
upstreams: [orders, billing]
mode: Fast
timeoutMs: 2500
verbose: t
";

/// What a Go team writes as
/// `Database struct { Host string `validate:"required"`; MaxConns int `validate:"min=1,max=100"` }`.
#[derive(Debug, serde::Deserialize, garde::Validate)]
#[serde(rename_all = "camelCase")]
struct Local {
    #[garde(dive)]
    database: Database,
    #[garde(length(min = 1))]
    upstreams: Vec<String>,
    #[garde(skip)]
    mode: Mode,
    #[garde(range(min = 100))]
    timeout_ms: u64,
    #[garde(skip)]
    verbose: bool,
    #[garde(skip)]
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, serde::Deserialize, garde::Validate)]
#[serde(rename_all = "camelCase")]
struct Database {
    #[garde(length(min = 1))]
    host: String,
    #[garde(range(min = 1, max = 100))]
    max_conns: u32,
    #[garde(length(min = 8))]
    password: String,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
enum Mode {
    Fast,
    Safe,
}

struct Deployment {
    root: PathBuf,
}

impl Deployment {
    fn new(config: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "isp-cluster-app-config-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("cwd/conf")).unwrap();
        std::fs::write(root.join("cwd/conf/config_dev.yml"), config).unwrap();
        std::fs::write(
            root.join("cwd/conf/default_remote_config.json"),
            r#"{"limit":1}"#,
        )
        .unwrap();
        Self { root }
    }

    fn env(&self) -> Environment {
        Environment::new(self.root.join("cwd"), self.root.join("bin")).var("APP_MODE", "dev")
    }

    fn boot(&self, env: &Environment) -> Bootstrap {
        Bootstrap::load::<Remote>("1.0.0", env).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn the_file_is_read_into_the_applications_type_keys_matched_without_case() {
    let d = Deployment::new(CONFIG);
    let local: Local = d
        .boot(&d.env())
        .app_config()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(local.database.host, "db.local");
    assert_eq!(local.database.max_conns, 10);
    assert_eq!(local.upstreams, ["orders", "billing"]);
    assert_eq!(local.mode, Mode::Fast);
    assert_eq!(local.timeout_ms, 2500);
    assert!(local.verbose, "Go's ParseBool reads `t`");
    assert_eq!(local.comment, None);
}

#[test]
fn a_variable_overrides_its_key_with_or_without_the_prefix() {
    let d = Deployment::new(CONFIG);
    let env = d
        .env()
        .var("DATABASE.MAXCONNS", "20")
        .var("UPSTREAMS.1", "payments")
        .var("COMMENT", "from the environment");
    let local: Local = d.boot(&env).app_config().unwrap();
    assert_eq!(local.database.max_conns, 20);
    assert_eq!(local.upstreams, ["orders", "payments"]);
    assert_eq!(local.comment.as_deref(), Some("from the environment"));

    // With a prefix, only the prefixed variables count.
    let env = d
        .env()
        .var("APP_CONFIG_ENV_PREFIX", "GW_")
        .var("DATABASE.MAXCONNS", "30")
        .var("GW_DATABASE.HOST", "db.prod");
    let local: Local = d.boot(&env).app_config().unwrap();
    assert_eq!(local.database.max_conns, 10, "unprefixed: ignored");
    assert_eq!(local.database.host, "db.prod");

    // An empty variable is an absent value, as for the cluster's keys: it
    // hides the file's, and a key without a default is then missing.
    let env = d.env().var("TIMEOUTMS", "");
    let shown = d.boot(&env).app_config::<Local>().unwrap_err().to_string();
    assert!(shown.contains("timeoutMs is required"), "{shown}");
}

#[test]
fn a_wrong_value_names_the_key_and_the_variable_never_the_value() {
    let d = Deployment::new(CONFIG);
    let env = d.env().var("DATABASE.MAXCONNS", "pw-env-secret");
    let err = d.boot(&env).app_config::<Local>().unwrap_err();
    match &err {
        AppConfigError::Key { key, variable, .. } => {
            assert_eq!(key, "database.maxConns");
            assert_eq!(variable.as_deref(), Some("DATABASE.MAXCONNS"));
        }
        other => panic!("another error: {other}"),
    }
    let shown = err.to_string();
    assert!(shown.contains("config_dev.yml"), "{shown}");
    assert!(
        shown.contains(
            "database.maxConns is not a whole number (u32) (set by the variable DATABASE.MAXCONNS)"
        ),
        "{shown}"
    );
    assert!(!shown.contains("pw-env-secret"), "{shown}");

    let env = d.env().var("MODE", "Turbo");
    let shown = d.boot(&env).app_config::<Local>().unwrap_err().to_string();
    assert!(
        shown.contains("mode is not one of `Fast` or `Safe`"),
        "{shown}"
    );
    assert!(!shown.contains("Turbo"), "{shown}");
}

#[test]
fn a_missing_key_is_required_naming_the_variable_that_would_set_it() {
    let d = Deployment::new(&CONFIG.replace("  host: db.local\n", ""));
    let err = d.boot(&d.env()).app_config::<Local>().unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(
            "database.host is required: set it in the file or with the variable DATABASE.HOST"
        ),
        "{shown}"
    );
    let env = d.env().var("APP_CONFIG_ENV_PREFIX", "GW_");
    let shown = d.boot(&env).app_config::<Local>().unwrap_err().to_string();
    assert!(
        shown.contains("with the variable GW_DATABASE.HOST"),
        "{shown}"
    );
}

#[test]
fn broken_rules_are_each_named_with_the_variable_and_no_value() {
    let d = Deployment::new(CONFIG);
    let env = d
        .env()
        .var("DATABASE.MAXCONNS", "500")
        .var("DATABASE.PASSWORD", "pw-shrt")
        .var("TIMEOUTMS", "5");
    let err = d.boot(&env).app_config::<Local>().unwrap_err();
    let AppConfigError::Invalid { violations, .. } = &err else {
        panic!("another error: {err}");
    };
    let found = |key: &str| {
        violations
            .iter()
            .find(|v| v.key == key)
            .unwrap_or_else(|| panic!("no violation of {key}: {violations:?}"))
    };
    assert_eq!(violations.len(), 3, "{violations:?}");
    assert_eq!(
        found("database.maxConns").variable.as_deref(),
        Some("DATABASE.MAXCONNS")
    );
    assert_eq!(found("database.maxConns").problem, "greater than 100");
    assert_eq!(found("database.password").problem, "length is lower than 8");
    assert_eq!(found("timeoutMs").variable.as_deref(), Some("TIMEOUTMS"));
    let shown = err.to_string();
    assert!(
        !shown.contains("pw-shrt") && !shown.contains("500"),
        "{shown}"
    );

    // The same rule broken by the file names no variable.
    let d = Deployment::new(&CONFIG.replace("maxConns: 10", "maxConns: 0"));
    let err = d.boot(&d.env()).app_config::<Local>().unwrap_err();
    assert!(
        err.to_string().ends_with("database.maxConns: lower than 1"),
        "{err}"
    );
}

#[test]
fn a_type_without_rules_is_read_unvalidated() {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Just {
        timeout_ms: u64,
        labels: std::collections::BTreeMap<String, String>,
    }
    let d = Deployment::new(&format!("{CONFIG}labels: {{Team: core, zone: a}}\n"));
    let just: Just = d
        .boot(&d.env().var("LABELS.REGION", "eu"))
        .app_config_unvalidated()
        .unwrap();
    assert_eq!(just.timeout_ms, 2500);
    // A map's keys come lower-cased, as isp-kit gives them.
    let labels: Vec<_> = just
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(labels, ["region=eu", "team=core", "zone=a"]);
}
