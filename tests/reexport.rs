//! An application derives its config schema through the crate's own
//! `schemars`, so that it never has to match that dependency's major
//! version by hand (with schemars 0.8 beside our 1 the derive fails with
//! "there are multiple different versions of crate schemars").

use isp_cluster::{config_schema, schemars};

/// A config as an application writes it, naming only `isp_cluster`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[schemars(crate = "isp_cluster::schemars")]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Config {
    /// Requests per second.
    rate_limit: u32,
}

#[test]
fn the_reexported_schemars_derives_a_config_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(config_schema::<Config>().get()).expect("the schema is JSON");
    assert_eq!(schema["title"], "Remote config");
    assert_eq!(schema["properties"]["rateLimit"]["type"], "integer");
    assert_eq!(
        schema["properties"]["rateLimit"]["description"],
        "Requests per second."
    );
}
