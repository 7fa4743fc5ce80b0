//! Differential: the one-pass JSON masker agrees with a plain tree walk over
//! `serde_json::Value` on every valid document, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SUBSTRINGS: [&str; 4] = ["password", "secret", "token", "credentials"];

fn reference(value: &mut Value, path: &str) {
    let secret = !path.is_empty() && SUBSTRINGS.iter().any(|s| path.contains(s));
    let join = |segment: &str| {
        let segment = segment.to_lowercase();
        if path.is_empty() {
            segment
        } else {
            format!("{path}.{segment}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                reference(child, &join(key));
            }
        }
        Value::Array(list) => {
            for (i, child) in list.iter_mut().enumerate() {
                reference(child, &join(&i.to_string()));
            }
        }
        Value::String(s) if s.is_empty() => {}
        leaf => {
            if secret {
                *leaf = Value::String("***".to_owned());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let masked = isp_cluster::hide_secrets(data);
    let Ok(mut expected) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // serde_json's Value refuses nesting past 128; both accept what it takes.
    let masked = masked.expect("valid json masks");
    let got: Value = serde_json::from_slice(&masked).expect("masked output is json");
    reference(&mut expected, "");
    assert_eq!(got, expected);
});
