//! What an incoming frame means to a session: pure, no I/O, so that it can
//! be fuzzed without a socket.

use bytes::Bytes;

use crate::etp::{DecodeError, Event};
use crate::events::*;
use crate::types::{AddressConfiguration, RoutingConfig};

/// An incoming event, classified and with its payload checked.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// An acknowledgement of one of our emits.
    Ack { ack_id: u64, text: Bytes },
    /// A remote config; `Err` says why it is not valid JSON.
    Config {
        event: &'static str,
        initial: bool,
        config: Result<Bytes, String>,
    },
    /// A routing table; `Err` says why it does not parse.
    Routes {
        event: &'static str,
        routes: Result<RoutingConfig, String>,
    },
    /// The addresses of the `index`th required module.
    Hosts {
        index: usize,
        hosts: Result<Vec<String>, String>,
    },
    /// `ERROR_CONNECTION` or `ERROR_CONFIG`.
    ServerError { event: &'static str, text: String },
    /// An event this client does not handle.
    Unknown,
}

/// Decodes and classifies one message. `required` names the required
/// modules, in the order their receivers were registered.
pub(crate) fn classify<'a>(
    message: Bytes,
    required: impl Iterator<Item = &'a str>,
) -> Result<(Event, Incoming), DecodeError> {
    let event = Event::decode(message)?;
    let incoming = classify_event(&event, required);
    Ok((event, incoming))
}

fn classify_event<'a>(event: &Event, mut required: impl Iterator<Item = &'a str>) -> Incoming {
    if event.is_ack() {
        return Incoming::Ack {
            ack_id: event.ack_id,
            text: event.data.clone(),
        };
    }
    let name: &str = &event.name;
    let config = |event_name: &'static str, initial: bool| Incoming::Config {
        event: event_name,
        initial,
        config: match crate::json::json_text(&event.data) {
            Ok(_) => Ok(event.data.clone()),
            Err(e) => Err(format!(
                "{event_name}: config is not valid json ({e}); {} bytes not delivered",
                event.data.len()
            )),
        },
    };
    let routes = |event_name: &'static str| Incoming::Routes {
        event: event_name,
        routes: serde_json::from_slice::<Option<RoutingConfig>>(&event.data)
            .map(Option::unwrap_or_default)
            .map_err(|e| format!("{event_name}: routes are not valid json ({e}); not delivered")),
    };
    match name {
        CONFIG_SEND_CONFIG_WHEN_CONNECTED => config(CONFIG_SEND_CONFIG_WHEN_CONNECTED, true),
        CONFIG_SEND_CONFIG_CHANGED => config(CONFIG_SEND_CONFIG_CHANGED, false),
        CONFIG_SEND_ROUTES_WHEN_CONNECTED => routes(CONFIG_SEND_ROUTES_WHEN_CONNECTED),
        CONFIG_SEND_ROUTES_CHANGED => routes(CONFIG_SEND_ROUTES_CHANGED),
        ERROR_CONNECTION | ERROR_CONFIG => Incoming::ServerError {
            event: if name == ERROR_CONNECTION {
                ERROR_CONNECTION
            } else {
                ERROR_CONFIG
            },
            text: String::from_utf8_lossy(&event.data).into_owned(),
        },
        _ => {
            let index = module_of_connected_event(name)
                .and_then(|module| required.position(|m| m == module));
            match index {
                Some(index) => Incoming::Hosts {
                    index,
                    hosts: serde_json::from_slice::<Option<Vec<AddressConfiguration>>>(&event.data)
                        .map(|list| {
                            list.unwrap_or_default()
                                .iter()
                                .map(AddressConfiguration::host_port)
                                .collect()
                        })
                        .map_err(|e| {
                            format!("{name}: addresses are not valid json ({e}); not delivered")
                        }),
                },
                None => Incoming::Unknown,
            }
        }
    }
}

/// Feeds one arbitrary message through decoding, classification and the
/// masked payload formatting a session does.
///
/// Not part of the API: hidden from the docs and outside semver, public
/// only because the fuzz target (its own crate) drives it.
#[doc(hidden)]
pub fn fuzz_frame(message: &[u8]) {
    let required = ["auth", "a_b", ""];
    let classified = classify(Bytes::copy_from_slice(message), required.into_iter());
    if let Ok((
        _,
        Incoming::Config {
            config: Ok(config), ..
        },
    )) = classified
    {
        let shown = crate::secrets::LogPayload(&config).to_string();
        assert!(shown.len() <= crate::secrets::LOG_PREVIEW_LEN + 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(frame: &'static str) -> Incoming {
        classify(
            Bytes::from_static(frame.as_bytes()),
            ["auth", "billing"].into_iter(),
        )
        .unwrap()
        .1
    }

    #[test]
    fn classifies_every_server_event() {
        assert!(matches!(
            classify_str("__ack_MODULE:READY||3||ok"),
            Incoming::Ack { ack_id: 3, ref text } if &text[..] == b"ok"
        ));
        assert!(matches!(
            classify_str(r#"CONFIG:SEND_CONFIG_WHEN_CONNECTED||0||{"a":1}"#),
            Incoming::Config {
                initial: true,
                config: Ok(_),
                ..
            }
        ));
        assert!(matches!(
            classify_str("CONFIG:SEND_CONFIG_CHANGED||0||{bad"),
            Incoming::Config { initial: false, config: Err(ref e), .. }
                if e.starts_with("CONFIG:SEND_CONFIG_CHANGED: config is not valid json")
        ));
        assert!(matches!(
            classify_str("CONFIG:SEND_ROUTES_CHANGED||0||null"),
            Incoming::Routes { routes: Ok(ref r), .. } if r.is_empty()
        ));
        assert!(matches!(
            classify_str(r#"billing_MODULE_CONNECTED||0||[{"ip":"::1","port":"1"}]"#),
            Incoming::Hosts { index: 1, hosts: Ok(ref h) } if h == &["[::1]:1"]
        ));
        assert!(matches!(
            classify_str("billing_MODULE_CONNECTED||0||{}"),
            Incoming::Hosts { index: 1, hosts: Err(ref e) }
                if e.starts_with("billing_MODULE_CONNECTED: addresses are not valid json")
        ));
        assert!(matches!(
            classify_str("ERROR_CONFIG||0||no config"),
            Incoming::ServerError { event: "ERROR_CONFIG", ref text } if text == "no config"
        ));
        assert!(matches!(
            classify_str("other_MODULE_CONNECTED||0||[]"),
            Incoming::Unknown
        ));
        assert!(matches!(classify_str("WHATEVER||0"), Incoming::Unknown));
    }

    #[test]
    fn config_with_invalid_utf8_in_a_string_is_not_valid_json() {
        // Found by the session_frame fuzz target: serde_json skips strings
        // without checking their UTF-8, and the log preview then grew past
        // its bound when the bytes were shown lossily.
        let mut frame = b"CONFIG:SEND_CONFIG_CHANGED||0||{\"a\":\"".to_vec();
        frame.extend(std::iter::repeat_n(0xffu8, 3000));
        frame.extend_from_slice(b"\"}");
        let incoming = classify(Bytes::from(frame.clone()), std::iter::empty())
            .unwrap()
            .1;
        assert!(matches!(
            incoming,
            Incoming::Config { config: Err(ref e), .. } if e.contains("invalid utf-8")
        ));
        fuzz_frame(&frame);
    }

    #[test]
    fn fuzz_entry_survives_odd_input() {
        for frame in [
            &b""[..],
            b"||",
            b"CONFIG:SEND_CONFIG_CHANGED||0||\"password\"",
            b"CONFIG:SEND_CONFIG_CHANGED||0||[[[[[[[[[[]]]]]]]]]]",
            b"_MODULE_CONNECTED||0||[{\"ip\":1}]",
            b"\xff||1||\xff",
        ] {
            fuzz_frame(frame);
        }
    }
}
