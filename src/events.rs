//! Event names and constants of the module protocol (PROTOCOL.md §3).

/// Client → server, with ack: the config schema and the default config.
pub const MODULE_SEND_CONFIG_SCHEMA: &str = "MODULE:SEND_CONFIG_SCHEMA";
/// Client → server, with ack: the modules and routes the module subscribes to.
pub const MODULE_SEND_REQUIREMENTS: &str = "MODULE:SEND_REQUIREMENTS";
/// Client → server, with ack: the backend declaration; the module is live.
pub const MODULE_READY: &str = "MODULE:READY";
/// Server → client: the module's current remote config.
pub const CONFIG_SEND_CONFIG_WHEN_CONNECTED: &str = "CONFIG:SEND_CONFIG_WHEN_CONNECTED";
/// Server → client: an updated remote config.
pub const CONFIG_SEND_CONFIG_CHANGED: &str = "CONFIG:SEND_CONFIG_CHANGED";
/// Server → client: the full routing table.
pub const CONFIG_SEND_ROUTES_WHEN_CONNECTED: &str = "CONFIG:SEND_ROUTES_WHEN_CONNECTED";
/// Server → client: the full routing table after a change.
pub const CONFIG_SEND_ROUTES_CHANGED: &str = "CONFIG:SEND_ROUTES_CHANGED";
/// Server → client (legacy): fatal, abort the handshake with its text.
pub const ERROR_CONNECTION: &str = "ERROR_CONNECTION";
/// Server → client (legacy): fatal, abort the handshake with its text.
pub const ERROR_CONFIG: &str = "ERROR_CONFIG";
/// The suffix of `<module>_MODULE_CONNECTED`.
pub const MODULE_CONNECTED_SUFFIX: &str = "MODULE_CONNECTED";

/// The key of [`crate::EndpointDescriptor::extra`] naming a required admin
/// permission.
pub const REQUIRED_ADMIN_PERMISSION: &str = "reqAdminPerm";

/// Transport `grpc` (what the server assumes when none is given).
pub const TRANSPORT_GRPC: &str = "grpc";
/// Transport `http`.
pub const TRANSPORT_HTTP: &str = "http";
/// Transport `empty`.
pub const TRANSPORT_EMPTY: &str = "empty";

/// The ack text of a successfully handled event.
pub const ACK_OK: &str = "ok";

/// `<module>_MODULE_CONNECTED`: the event carrying the live addresses of
/// `module`.
pub fn module_connected_event(module: &str) -> String {
    format!("{module}_{MODULE_CONNECTED_SUFFIX}")
}

/// The module named by a `<module>_MODULE_CONNECTED` event, if `event` is one.
pub fn module_of_connected_event(event: &str) -> Option<&str> {
    event
        .strip_suffix(MODULE_CONNECTED_SUFFIX)?
        .strip_suffix('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_connected_names() {
        assert_eq!(module_connected_event("auth"), "auth_MODULE_CONNECTED");
        assert_eq!(
            module_of_connected_event("auth_MODULE_CONNECTED"),
            Some("auth")
        );
        assert_eq!(
            module_of_connected_event("a_b_MODULE_CONNECTED"),
            Some("a_b")
        );
        assert_eq!(module_of_connected_event("_MODULE_CONNECTED"), Some(""));
        assert_eq!(module_of_connected_event("MODULE_CONNECTED"), None);
        assert_eq!(module_of_connected_event("MODULE:READY"), None);
    }
}
