//! The substrings that mark a JSON path (or a word of free text) as secret:
//! one list for the process, set by the application.

use std::sync::{LazyLock, RwLock, RwLockReadGuard};

const DEFAULT_SUBSTRINGS: [&str; 4] = ["password", "secret", "token", "credentials"];

static SUBSTRINGS: LazyLock<RwLock<Vec<String>>> =
    LazyLock::new(|| RwLock::new(DEFAULT_SUBSTRINGS.iter().map(|s| s.to_string()).collect()));

/// Adds substrings (case-insensitive) that mark a JSON path (and a word of
/// free text) as secret, for every later call of
/// [`hide_secrets`](crate::hide_secrets) and
/// [`hide_secrets_in_text`](crate::hide_secrets_in_text) in the process.
pub fn register_secret_substrings<I, S>(substrings: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut list = SUBSTRINGS.write().unwrap_or_else(|e| e.into_inner());
    for s in substrings {
        let s = s.as_ref().to_lowercase();
        if !s.is_empty() && !list.contains(&s) {
            list.push(s);
        }
    }
}

/// Removes substrings registered before (the defaults included).
pub fn unregister_secret_substrings<I, S>(substrings: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut list = SUBSTRINGS.write().unwrap_or_else(|e| e.into_inner());
    for s in substrings {
        let s = s.as_ref().to_lowercase();
        list.retain(|have| *have != s);
    }
}

/// The substrings now registered, lower-cased.
pub(crate) fn current() -> RwLockReadGuard<'static, Vec<String>> {
    SUBSTRINGS.read().unwrap_or_else(|e| e.into_inner())
}
