//! A Go module's local config files, read by `bootstrap::Bootstrap`: each
//! scenario writes the files a Go deployment ships into a fresh directory
//! and hands the loader an `Environment` value (no process variable is
//! touched, so the tests run in parallel).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use isp_cluster::bootstrap::{Bootstrap, BootstrapError, ConfigOverride, Environment};
use isp_cluster::server::ConfigServer;
use isp_cluster::{AddressConfiguration, RawJson};
use serde_json::{json, Value};

mod common;
use common::{http_get, wait_until, Recorder};

/// The module's remote config, whose schema is registered.
#[allow(dead_code)]
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Config {
    /// Requests per second.
    limit: u32,
}

/// The smallest config a clustered Go module starts with.
const MINIMAL: &str = "\
moduleName: orders
configServiceAddress:
  ip: 127.0.0.1
  port: 9001
grpcOuterAddress:
  ip: 10.0.0.5
  port: 9002
grpcInnerAddress:
  ip: 0.0.0.0
  port: 9002
";

const DEFAULT_REMOTE_CONFIG: &str = r#"{"limit": 10}"#;

/// A directory of its own for each scenario: `cwd` (the working directory)
/// and `bin` (the executable's).
struct Deployment {
    root: PathBuf,
}

impl Deployment {
    fn new(name: &str) -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "isp-cluster-bootstrap-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("cwd")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        Self { root }
    }

    fn cwd(&self) -> PathBuf {
        self.root.join("cwd")
    }

    fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Writes `text` at `path`, relative to the deployment's root.
    fn file(&self, path: &str, text: &str) -> &Self {
        let path = self.root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// A dev deployment: `conf/config_dev.yml` and the default remote
    /// config in the working directory.
    fn dev(name: &str, config: &str) -> Self {
        let d = Self::new(name);
        d.file("cwd/conf/config_dev.yml", config)
            .file("cwd/conf/default_remote_config.json", DEFAULT_REMOTE_CONFIG);
        d
    }

    fn env(&self) -> Environment {
        Environment::new(self.cwd(), self.bin())
    }

    fn dev_env(&self) -> Environment {
        self.env().var("APP_MODE", "dev")
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn load(env: &Environment) -> Result<Bootstrap, BootstrapError> {
    Bootstrap::load::<Config>("1.2.3", env)
}

fn load_ok(env: &Environment) -> Bootstrap {
    load(env).unwrap_or_else(|e| panic!("{e}"))
}

/// The error's text, which must name the file and `key`.
fn error_naming(env: &Environment, file: &Path, key: &str) -> String {
    let err = load(env).expect_err("the config is refused").to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains(key), "{err}");
    err
}

#[test]
fn a_minimal_dev_config_makes_a_ready_builder() {
    let d = Deployment::dev("minimal", MINIMAL);
    let boot = load_ok(&d.dev_env());
    assert!(boot.is_dev());
    assert_eq!(boot.config_file(), d.cwd().join("conf/config_dev.yml"));
    assert_eq!(boot.hosts(), ["127.0.0.1:9001"]);
    let info = boot.module_info();
    assert_eq!(info.module_name, "orders");
    assert_eq!(info.module_version, "1.2.3");
    assert_eq!(info.lib_version, isp_cluster::LIB_VERSION);
    assert_eq!(info.transport, "grpc");
    assert_eq!(
        info.grpc_outer_address,
        AddressConfiguration::new("10.0.0.5", "9002")
    );
    assert_eq!(info.metrics_autodiscovery, None);
    let data = boot.config_data().expect("clustered");
    assert_eq!(data.version, "1.2.3");
    assert_eq!(data.config.get(), DEFAULT_REMOTE_CONFIG);
    let schema: Value = data.schema.parse().unwrap();
    assert_eq!(schema["title"], "Remote config");
    assert_eq!(schema["properties"]["limit"]["type"], "integer");
    assert_eq!(boot.binding_address(), "0.0.0.0:9002");
    assert_eq!(boot.infra_addr(), "[::]:9003".parse().unwrap());
    assert_eq!(boot.config_timeout(), Duration::from_secs(5));
    assert_eq!(boot.health_timeout(), None);
    assert_eq!(boot.offline_config_path(), None);
    assert_eq!(boot.local_config().remote_config_override, None);
    let endpoint = isp_cluster::EndpointDescriptor::new("/api/orders");
    let boot = boot.transport("http").endpoints(vec![endpoint.clone()]);
    assert_eq!(boot.module_info().transport, "http");
    assert_eq!(boot.module_info().endpoints, [endpoint]);
}

#[test]
fn production_reads_the_files_beside_the_binary_not_the_dev_ones() {
    let d = Deployment::new("production");
    d.file("bin/config.yml", &MINIMAL.replace("orders", "billing"))
        .file("bin/default_remote_config.json", r#"{"limit": 1}"#)
        .file("cwd/conf/config_dev.yml", MINIMAL)
        .file("cwd/conf/default_remote_config.json", DEFAULT_REMOTE_CONFIG);
    let boot = load_ok(&d.env().var("APP_MODE", "prod"));
    assert!(!boot.is_dev());
    assert_eq!(boot.config_file(), d.bin().join("config.yml"));
    assert_eq!(boot.module_info().module_name, "billing");
    assert_eq!(boot.config_data().unwrap().config.get(), r#"{"limit": 1}"#);
    // APP_MODE is compared in any case, as isp-kit lower-cases it.
    let boot = load_ok(&d.env().var("APP_MODE", "DEV"));
    assert_eq!(boot.module_info().module_name, "orders");
}

#[test]
fn app_config_path_and_default_remote_config_path_name_other_files() {
    let d = Deployment::new("paths");
    let config = format!("{MINIMAL}defaultRemoteConfigPath: etc/remote-default.json\n");
    d.file("cwd/etc/orders.yml", &config)
        .file("cwd/etc/remote-default.json", r#"{"limit": 7}"#);
    let env = d.env().var("APP_CONFIG_PATH", "etc/orders.yml");
    let boot = load_ok(&env);
    assert_eq!(boot.config_file(), d.cwd().join("etc/orders.yml"));
    assert_eq!(boot.config_data().unwrap().config.get(), r#"{"limit": 7}"#);
    // Dev mode too: APP_CONFIG_PATH wins over ./conf/config_dev.yml.
    let boot = load_ok(&env.var("APP_MODE", "dev"));
    assert_eq!(boot.config_file(), d.cwd().join("etc/orders.yml"));
}

#[test]
fn a_two_node_list_and_an_empty_outer_ip_found_toward_the_first_node() {
    let config = MINIMAL
        .replace("ip: 127.0.0.1", "ip: \"127.0.0.1;127.0.0.2\"")
        .replace("port: 9001", "port: \"9001; 9011\"")
        .replace("ip: 10.0.0.5", "ip: \"\"");
    let d = Deployment::dev("two-nodes", &config);
    let boot = load_ok(&d.dev_env());
    assert_eq!(boot.hosts(), ["127.0.0.1:9001", "127.0.0.2:9011"]);
    // The system's source address toward 127.0.0.1, found without sending.
    assert_eq!(
        boot.module_info().grpc_outer_address,
        AddressConfiguration::new("127.0.0.1", "9002")
    );
}

#[test]
fn every_variable_overrides_the_key_of_its_lower_cased_name() {
    let d = Deployment::dev("env", MINIMAL);
    let env = d
        .dev_env()
        .var("MODULENAME", "payments")
        .var("GRPCOUTERADDRESS.PORT", "9100")
        .var("grpcInnerAddress.port", "9100")
        .var("CONFIGSERVICEADDRESS.IP", "127.0.0.1;127.0.0.1")
        .var("CONFIGSERVICEADDRESS.PORT", "9001;9002")
        .var("REMOTECONFIGRECEIVERTIMEOUT", "1m30s")
        .var("HEALTHCHECKHANDLERTIMEOUT", "250ms")
        .var("INFRASERVERPORT", "9500");
    let boot = load_ok(&env);
    assert_eq!(boot.module_info().module_name, "payments");
    assert_eq!(boot.module_info().grpc_outer_address.port, "9100");
    assert_eq!(boot.binding_address(), "0.0.0.0:9100");
    assert_eq!(boot.hosts(), ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert_eq!(boot.config_timeout(), Duration::from_secs(90));
    assert_eq!(boot.health_timeout(), Some(Duration::from_millis(250)));
    assert_eq!(boot.infra_addr().port(), 9500);
}

#[test]
fn with_a_prefix_only_the_prefixed_variables_count() {
    let d = Deployment::dev("prefix", MINIMAL);
    let env = d
        .dev_env()
        .var("APP_CONFIG_ENV_PREFIX", "ORDERS_")
        .var("ORDERS_MODULENAME", "orders-eu")
        .var("MODULENAME", "ignored")
        .var("orders_remoteConfigReceiverTimeout", "2s");
    let boot = load_ok(&env);
    assert_eq!(boot.module_info().module_name, "orders-eu");
    assert_eq!(boot.config_timeout(), Duration::from_secs(2));
    // Without the prefix the plain variable counts.
    let boot = load_ok(&env.without_var("APP_CONFIG_ENV_PREFIX"));
    assert_eq!(boot.module_info().module_name, "ignored");
}

#[test]
fn metrics_autodiscovery_is_declared_with_isp_kit_labels() {
    let config = format!(
        "{MINIMAL}infraServerPort: 9200\nmetricsAutodiscovery:\n  enable: true\n  additionalLabels:\n    team: checkout\n    app: orders-v2\n"
    );
    let d = Deployment::dev("metrics", &config);
    let boot = load_ok(&d.dev_env());
    let metrics = boot.module_info().metrics_autodiscovery.clone().unwrap();
    assert_eq!(metrics.address, "10.0.0.5:9200");
    assert_eq!(
        serde_json::to_value(&metrics.labels).unwrap(),
        json!({"__metrics_path__": "/internal/metrics", "app": "orders-v2", "team": "checkout"})
    );
    let env = d
        .dev_env()
        .var("METRICSAUTODISCOVERY.ADDRESS", "metrics.local:80");
    let metrics = load_ok(&env).module_info().metrics_autodiscovery.clone();
    assert_eq!(metrics.unwrap().address, "metrics.local:80");
    let off = d.dev_env().var("METRICSAUTODISCOVERY.ENABLE", "false");
    assert_eq!(load_ok(&off).module_info().metrics_autodiscovery, None);
}

#[actix::test]
async fn offline_mode_delivers_the_file_with_the_override_laid_over_it() {
    // No configServiceAddress and no default remote config: offline needs
    // neither.
    let infra_port = free_port();
    let config = format!("moduleName: orders\ngrpcOuterAddress: {{port: 9002}}\ngrpcInnerAddress: {{ip: 127.0.0.1, port: 9002}}\ninfraServerPort: {infra_port}\ninfraServerIp: 127.0.0.1\nremoteConfigPath: conf/remote.json\nremoteConfigOverride: '{{\"db\":{{\"port\":5433}}}}'\n");
    let d = Deployment::new("offline");
    d.file("cwd/conf/config_dev.yml", &config).file(
        "cwd/conf/remote.json",
        r#"{"limit":3,"db":{"host":"db1","port":5432}}"#,
    );
    let env = d.dev_env().var("CLUSTER_MODE", "offline");
    let boot = load_ok(&env).check("database", || Err("down".to_owned()));
    assert_eq!(
        boot.offline_config_path(),
        Some(&*d.cwd().join("conf/remote.json"))
    );
    assert!(boot.hosts().is_empty());
    assert!(boot.config_data().is_none());
    let (recorder, seen) = Recorder::start_new();
    let module = boot.start(recorder.recipient()).await.unwrap();
    assert!(module.client().is_none());
    assert!(module.offline().is_some());
    assert_eq!(
        seen.configs(),
        [(json!({"limit":3,"db":{"host":"db1","port":5433}}), true)]
    );

    // The infra server runs in offline mode too, as isp-kit's does: the
    // application's checks, no cluster client's, and the metrics.
    assert_eq!(module.infra_addr().unwrap().port(), infra_port);
    let http = awc::Client::default();
    let base = format!("http://127.0.0.1:{infra_port}");
    let (status, body) = http_get(&http, &format!("{base}/internal/health")).await;
    assert_eq!(status, 500, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["details"]["database"][0]["status"], "fail", "{body}");
    assert!(!body.contains("configServiceConnection"), "{body}");
    let (status, metrics) = http_get(&http, &format!("{base}/internal/metrics")).await;
    assert_eq!(status, 200);
    // Not empty in offline mode: the process's series, as a Go module's.
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&format!("{family} "))),
            "{family} missing:\n{metrics}"
        );
    }
    // No status route: there is no cluster client to report on.
    let (status, _) = http_get(&http, &format!("{base}/internal/status")).await;
    assert_eq!(status, 404);
    module.shutdown().await;
    let refused = std::net::TcpStream::connect(("127.0.0.1", infra_port));
    assert!(refused.is_err(), "the infra server stopped with the module");
}

#[test]
fn offline_mode_reads_conf_config_json_by_default() {
    let d = Deployment::dev("offline-default", MINIMAL);
    let env = d.dev_env().var("CLUSTER_MODE", "OFFLINE");
    assert_eq!(
        load_ok(&env).offline_config_path(),
        Some(&*d.cwd().join("conf/config.json"))
    );
    let d = Deployment::new("offline-production");
    d.file("bin/config.yml", MINIMAL);
    let env = d.env().var("CLUSTER_MODE", "offline");
    assert_eq!(
        load_ok(&env).offline_config_path(),
        Some(&*d.bin().join("conf/config.json"))
    );
}

#[actix::test]
async fn the_override_layer_merges_over_every_config_in_order() {
    let (recorder, seen) = Recorder::start_new();
    let overlay: RawJson = r#"{"db":{"port":5433},"limit":1}"#.parse().unwrap();
    let layer =
        actix::Actor::start(ConfigOverride::new(&overlay, recorder.clone().recipient()).unwrap());
    for limit in [10, 20] {
        let config = json!({"limit": limit, "db": {"host": "h", "port": 5432}, "n": limit});
        let msg = isp_cluster::RemoteConfig::new(config.to_string(), limit == 10);
        layer.send(msg).await.unwrap().unwrap();
    }
    assert_eq!(
        seen.configs(),
        [
            (
                json!({"limit":1,"db":{"host":"h","port":5433},"n":10}),
                true
            ),
            (
                json!({"limit":1,"db":{"host":"h","port":5433},"n":20}),
                false
            ),
        ]
    );
    assert!(ConfigOverride::new(&"[1]".parse().unwrap(), recorder.recipient()).is_none());
}

#[test]
fn no_module_name_is_refused_naming_the_key_and_its_variable() {
    let d = Deployment::dev("no-name", &MINIMAL.replace("moduleName: orders\n", ""));
    let file = d.cwd().join("conf/config_dev.yml");
    let err = error_naming(&d.dev_env(), &file, "moduleName is required");
    assert!(err.contains("MODULENAME"), "{err}");
    // An empty variable is no value either.
    let d = Deployment::dev("empty-name", MINIMAL);
    let env = d.dev_env().var("MODULENAME", "");
    error_naming(&env, &file_of(&d), "moduleName is required");
}

fn file_of(d: &Deployment) -> PathBuf {
    d.cwd().join("conf/config_dev.yml")
}

#[test]
fn unequal_lists_are_refused() {
    let config = MINIMAL.replace("ip: 127.0.0.1", "ip: \"127.0.0.1;127.0.0.2\"");
    let d = Deployment::dev("unequal", &config);
    let err = error_naming(&d.dev_env(), &file_of(&d), "configServiceAddress.port");
    assert!(err.contains("equal length"), "{err}");
    assert!(
        err.contains("1 port(s)") && err.contains("2 address(es)"),
        "{err}"
    );
}

/// NAT or a NodePort service: the module listens on one port and is
/// reached on another. isp-kit refused that up to v1.61 and accepts it
/// since v1.62; so does the bootstrap. The outer port is announced, the
/// inner one bound, and the infra port follows the inner one.
#[test]
fn inner_and_outer_ports_that_differ_are_accepted() {
    let config = MINIMAL.replace(
        "  ip: 0.0.0.0\n  port: 9002",
        "  ip: 0.0.0.0\n  port: 31002",
    );
    let d = Deployment::dev("ports", &config);
    let boot = load_ok(&d.dev_env());
    assert_eq!(
        boot.module_info().grpc_outer_address,
        AddressConfiguration::new("10.0.0.5", "9002")
    );
    assert_eq!(boot.binding_address(), "0.0.0.0:31002");
    assert_eq!(boot.infra_addr().port(), 31003);
}

/// isp-kit's infra server listens on `:port`, every interface, whatever
/// `grpcInnerAddress.ip` is: Prometheus scrapes it at the outer address the
/// autodiscovery announces, which a module bound to its inner address
/// would not answer on. So does the bootstrap's (`[::]`: IPv4 and IPv6),
/// unless `infraServerIp` names one address.
#[test]
fn the_infra_server_listens_on_every_interface_unless_infra_server_ip_is_set() {
    let config = MINIMAL.replace("  ip: 0.0.0.0\n", "  ip: 10.0.0.7\n");
    let d = Deployment::dev("infra-ip", &config);
    let boot = load_ok(&d.dev_env());
    assert_eq!(boot.binding_address(), "10.0.0.7:9002");
    assert_eq!(boot.infra_addr(), "[::]:9003".parse().unwrap());
    assert_eq!(boot.local_config().infra_server_ip, None);

    let env = d.dev_env().var("INFRASERVERIP", "127.0.0.1");
    let boot = load_ok(&env);
    assert_eq!(boot.infra_addr(), "127.0.0.1:9003".parse().unwrap());
    let env = d.dev_env().var("INFRASERVERIP", "localhost");
    let err = error_naming(&env, &file_of(&d), "infraServerIp");
    assert!(err.contains("\"localhost\" is not an IP address"), "{err}");
    assert!(err.contains("INFRASERVERIP"), "{err}");
}

#[test]
fn an_unparseable_duration_is_refused_naming_the_variable_that_set_it() {
    let config = format!("{MINIMAL}remoteConfigReceiverTimeout: 5\n");
    let d = Deployment::dev("duration", &config);
    let err = error_naming(&d.dev_env(), &file_of(&d), "remoteConfigReceiverTimeout");
    assert!(
        err.contains("\"5\" is not valid: a unit is missing"),
        "{err}"
    );
    let env = d
        .dev_env()
        .var("REMOTECONFIGRECEIVERTIMEOUT", "30s")
        .var("HealthcheckHandlerTimeout", "1x");
    let err = error_naming(&env, &file_of(&d), "healthcheckHandlerTimeout");
    assert!(err.contains("unknown unit"), "{err}");
    assert!(
        err.contains("set by the variable HealthcheckHandlerTimeout"),
        "{err}"
    );
}

#[test]
fn a_missing_default_remote_config_is_refused_naming_its_path() {
    let d = Deployment::new("no-default");
    d.file("cwd/conf/config_dev.yml", MINIMAL);
    let err = load(&d.dev_env()).err().unwrap().to_string();
    let path = d.cwd().join("conf/default_remote_config.json");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("defaultRemoteConfigPath"), "{err}");
    // Not valid JSON: refused too, without quoting it.
    d.file(
        "cwd/conf/default_remote_config.json",
        r#"{"password": "hunter2""#,
    );
    let err = load(&d.dev_env()).err().unwrap().to_string();
    assert!(err.contains("is not valid json"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_yaml_syntax_error_names_the_file_and_the_line() {
    let config = format!("{MINIMAL}metricsAutodiscovery: {{enable: true\nsecret: hunter2\n");
    let d = Deployment::dev("yaml", &config);
    let err = load(&d.dev_env()).err().unwrap().to_string();
    assert!(err.contains(&file_of(&d).display().to_string()), "{err}");
    assert!(err.contains("line "), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A missing file names where it was looked for and how to move it.
    let d = Deployment::new("no-file");
    let err = load(&d.env()).err().unwrap().to_string();
    assert!(
        err.contains(&d.bin().join("config.yml").display().to_string()),
        "{err}"
    );
    assert!(err.contains("APP_CONFIG_PATH"), "{err}");
}

#[test]
fn other_wrong_values_are_refused_naming_their_key() {
    let cases: [(&str, &str, &str); 6] = [
        ("GRPCOUTERADDRESS.PORT", "90o2", "grpcOuterAddress.port"),
        ("GRPCINNERADDRESS.IP", "", "grpcInnerAddress.ip is required"),
        (
            "METRICSAUTODISCOVERY.ENABLE",
            "yes",
            "metricsAutodiscovery.enable",
        ),
        ("INFRASERVERPORT", "70000", "infraServerPort"),
        (
            "CONFIGSERVICEADDRESS.IP",
            "127.0.0.1 x",
            "configServiceAddress.ip",
        ),
        (
            "REMOTECONFIGOVERRIDE",
            "{\"password\": hunter2}",
            "remoteConfigOverride",
        ),
    ];
    let d = Deployment::dev("wrong", MINIMAL);
    for (var, value, key) in cases {
        let err = error_naming(&d.dev_env().var(var, value), &file_of(&d), key);
        assert!(err.contains(var), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[actix::test]
async fn a_started_module_registers_and_serves_its_infra_routes() {
    let server = ConfigServer::builder().start().await.unwrap();
    let infra_port = free_port();
    let config = format!(
        "moduleName: orders\nconfigServiceAddress: {{ip: 127.0.0.1, port: {}}}\ngrpcOuterAddress: {{ip: '', port: 9002}}\ngrpcInnerAddress: {{ip: 127.0.0.1, port: 9002}}\ninfraServerPort: {infra_port}\ninfraServerIp: 127.0.0.1\nmetricsAutodiscovery: {{enable: true}}\nremoteConfigOverride: '{{\"limit\": 99}}'\n",
        server.addr().port()
    );
    let d = Deployment::dev("started", &config);
    let boot = load_ok(&d.dev_env());
    let (recorder, seen) = Recorder::start_new();
    let module = boot.start(recorder.recipient()).await.unwrap();
    let client = module.client().unwrap().clone();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);

    let instances = server.instances("orders");
    assert_eq!(instances.len(), 1);
    assert_eq!(
        instances[0].address,
        AddressConfiguration::new("127.0.0.1", "9002")
    );
    let metrics = instances[0].metrics_autodiscovery.clone().unwrap();
    assert_eq!(metrics.address, format!("127.0.0.1:{infra_port}"));
    assert_eq!(metrics.labels["app"], "orders");
    assert_eq!(server.config("orders"), Some(json!({"limit": 10})));
    // The node's config, with the override laid over it.
    assert_eq!(seen.configs(), [(json!({"limit": 99}), true)]);

    assert_eq!(module.infra_addr().unwrap().port(), infra_port);
    let http = awc::Client::default();
    let (status, body) = http_get(
        &http,
        &format!("http://127.0.0.1:{infra_port}/internal/health"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("configServiceConnection"), "{body}");
    module.shutdown().await;
    server.stop().await;
}

#[actix::test]
async fn an_infra_port_in_use_fails_the_start_and_closes_the_client() {
    let server = ConfigServer::builder().start().await.unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = format!(
        "{}infraServerPort: {}\ninfraServerIp: 127.0.0.1\n",
        MINIMAL
            .replace("port: 9001", &format!("port: {}", server.addr().port()))
            .replace("0.0.0.0", "127.0.0.1"),
        taken.local_addr().unwrap().port()
    );
    let d = Deployment::dev("infra-taken", &config);
    let (recorder, _) = Recorder::start_new();
    let err = load_ok(&d.dev_env())
        .start(recorder.recipient())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("infraServerPort"), "{err}");
    assert!(
        wait_until(Duration::from_secs(2), || server.session_count("orders")
            == 0)
        .await,
        "the client closed"
    );
    server.stop().await;
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[actix::test]
async fn the_application_checks_run_beside_the_client_under_the_health_timeout() {
    let server = ConfigServer::builder().start().await.unwrap();
    let infra_port = free_port();
    let config = format!(
        "moduleName: orders\nconfigServiceAddress: {{ip: 127.0.0.1, port: {}}}\ngrpcOuterAddress: {{ip: 127.0.0.1, port: 9002}}\ngrpcInnerAddress: {{ip: 127.0.0.1, port: 9002}}\ninfraServerPort: {infra_port}\ninfraServerIp: 127.0.0.1\nhealthcheckHandlerTimeout: 100ms\n",
        server.addr().port()
    );
    let d = Deployment::dev("checks", &config);
    let boot = load_ok(&d.dev_env())
        .check("database", || Ok(()))
        .check("cache", || Err("down".to_owned()))
        .check("queue", || {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        });
    let (recorder, seen) = Recorder::start_new();
    let routes = recorder.clone().recipient();
    let module = boot
        .start_with(recorder.recipient(), |builder| builder.routes(routes))
        .await
        .unwrap();
    let client = module.client().unwrap().clone();
    assert!(wait_until(Duration::from_secs(5), || client.healthcheck().is_ok()).await);
    // What start_with added to the builder is in force: routes come.
    assert!(wait_until(Duration::from_secs(2), || !seen.routes().is_empty()).await);

    let http = awc::Client::default();
    let url = format!("http://127.0.0.1:{infra_port}/internal/health");
    let (status, body) = http_get(&http, &url).await;
    assert_eq!(status, 500, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    let status_of = |name: &str| health["details"][name][0]["status"].clone();
    assert_eq!(status_of("configServiceConnection"), "pass", "{body}");
    assert_eq!(status_of("database"), "pass", "{body}");
    assert_eq!(status_of("cache"), "fail", "{body}");
    assert_eq!(health["details"]["cache"][0]["output"], "down", "{body}");
    assert_eq!(status_of("queue"), "fail", "{body}");
    assert_eq!(
        health["details"]["queue"][0]["output"], "no answer within 100ms",
        "{body}"
    );
    module.shutdown().await;
    server.stop().await;
}
