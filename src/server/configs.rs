//! A module's configs as the real isp-config-service keeps them: several
//! named, versioned configs per module, at most one of them active (the one
//! pushed to the module's sessions), with ids the real service would give.
//!
//! The first config of a module (the one a module's schema brings, or one
//! set before any module connected) is active and has the real service's
//! deterministic id; configs created through the admin API's
//! `config/config/create_update_config` are inactive until
//! `config/config/mark_config_as_active` makes them the active one.

use std::time::SystemTime;

use bytestring::ByteString;
use sha2::{Digest as _, Sha256};

/// One config of a module (the real service's `entity.Config`).
#[derive(Debug, Clone)]
pub(crate) struct StoredConfig {
    pub(crate) id: String,
    pub(crate) name: String,
    /// JSON text, pushed byte for byte when the config is active.
    pub(crate) data: ByteString,
    /// 1 when created, one more at every change.
    pub(crate) version: i64,
    pub(crate) active: bool,
    pub(crate) created_at: SystemTime,
    pub(crate) updated_at: SystemTime,
}

/// The configs of one module, oldest first; at most one is active.
#[derive(Debug, Default)]
pub(crate) struct ModuleConfigs {
    configs: Vec<StoredConfig>,
}

impl ModuleConfigs {
    pub(crate) fn active(&self) -> Option<&StoredConfig> {
        self.configs.iter().find(|c| c.active)
    }

    pub(crate) fn all(&self) -> &[StoredConfig] {
        &self.configs
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&StoredConfig> {
        self.configs.iter().find(|c| c.id == id)
    }

    pub(crate) fn by_id_mut(&mut self, id: &str) -> Option<&mut StoredConfig> {
        self.configs.iter_mut().find(|c| c.id == id)
    }

    /// The active config's data replaced (one version more), or — without
    /// an active config — a first active config named after the module.
    pub(crate) fn set_active_data(&mut self, module: &str, module_id: &str, data: ByteString) {
        let now = SystemTime::now();
        if let Some(active) = self.configs.iter_mut().find(|c| c.active) {
            active.data = data;
            active.version += 1;
            active.updated_at = now;
            return;
        }
        let id = initial_config_id(module_id);
        // The real service's id for it, unless a config already has that id.
        let id = if self.by_id(&id).is_some() {
            random_uuid()
        } else {
            id
        };
        self.configs.push(StoredConfig {
            id,
            name: module.to_owned(),
            data,
            version: 1,
            active: true,
            created_at: now,
            updated_at: now,
        });
    }

    /// A new inactive config (version 1, a new random id); returns it.
    pub(crate) fn insert(&mut self, name: String, data: ByteString) -> &StoredConfig {
        let now = SystemTime::now();
        self.configs.push(StoredConfig {
            id: random_uuid(),
            name,
            data,
            version: 1,
            active: false,
            created_at: now,
            updated_at: now,
        });
        let last = self.configs.len() - 1;
        &self.configs[last]
    }

    /// Makes the config `id` the active one; `false` if there is none.
    pub(crate) fn activate(&mut self, id: &str) -> bool {
        if self.by_id(id).is_none() {
            return false;
        }
        for config in &mut self.configs {
            config.active = config.id == id;
        }
        true
    }
}

/// The id the real service gives a module: the hex SHA-256 of its name.
pub(crate) fn module_id(module: &str) -> String {
    hex_sha256(module.as_bytes())
}

/// The id the real service gives a module's first config: the hex SHA-256
/// of the module's id.
fn initial_config_id(module_id: &str) -> String {
    hex_sha256(module_id.as_bytes())
}

fn hex_sha256(data: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// A random (version 4) UUID in its text form, as the real service gives a
/// config created through the admin API.
fn random_uuid() -> String {
    let bits: u128 = rand::random();
    // Version 4, variant RFC 4122.
    let bits = (bits & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_real_services() {
        // As the real service computes them (sha256 in hex, by hand).
        assert_eq!(
            module_id("orders"),
            "1c168adb00d208e42f93314529f1fa9c0427eb63233ceda95a5db52b7012a719"
        );
        assert_eq!(
            initial_config_id(&module_id("orders")),
            "2d56f794953f5113d27afade1a8cf5d458953f260e56ca8484536a53c89902a3"
        );
        let uuid = random_uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4", "{uuid}");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
        assert_ne!(random_uuid(), uuid);
    }

    #[test]
    fn one_active_config_at_a_time() {
        let mut configs = ModuleConfigs::default();
        let module_id = module_id("orders");
        configs.set_active_data("orders", &module_id, ByteString::from_static("{\"a\":1}"));
        let first = configs.active().expect("active").clone();
        assert_eq!(first.id, initial_config_id(&module_id));
        assert_eq!((first.name.as_str(), first.version), ("orders", 1));

        configs.set_active_data("orders", &module_id, ByteString::from_static("{\"a\":2}"));
        assert_eq!(configs.active().map(|c| c.version), Some(2));

        let second = configs
            .insert("spare".to_owned(), ByteString::from_static("{}"))
            .id
            .clone();
        assert_eq!(
            configs.active().map(|c| c.id.as_str()),
            Some(first.id.as_str())
        );
        assert!(configs.activate(&second));
        assert_eq!(
            configs.active().map(|c| c.id.as_str()),
            Some(second.as_str())
        );
        assert_eq!(configs.all().iter().filter(|c| c.active).count(), 1);
        assert!(!configs.activate("no such id"));
        assert_eq!(
            configs.active().map(|c| c.id.as_str()),
            Some(second.as_str())
        );
    }
}
