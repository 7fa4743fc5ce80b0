//! An error and its causes on one line, for the messages a program prints.

use std::error::Error;
use std::fmt;

/// Shows an error by `Display` followed by its [`source`](Error::source)
/// chain, `outer: cause: root cause`, for a program's last words
/// (`eprintln!("error: {}", ErrorChain(&e))`) where `{e:?}` would print a
/// `Debug` dump. A cause whose text the message before it already ends
/// with is not repeated. Go prints the same through the `%w` chain of
/// `err.Error()`.
///
/// ```
/// use isp_cluster::{ClusterClient, ConfigData, ErrorChain, ModuleInfo, AddressConfiguration};
///
/// actix::System::new().block_on(async {
///     let info = ModuleInfo::new("orders", "1.0.0", AddressConfiguration::new("10.0.0.5", "9002"));
///     let err = ClusterClient::builder(info, ConfigData::default())
///         .hosts(["http://127.0.0.1:9001"])
///         .start()
///         .unwrap_err();
///     assert_eq!(
///         ErrorChain(&err).to_string(),
///         "config-service host \"http://127.0.0.1:9001\" is not host:port, ws://host:port or wss://host:port"
///     );
/// });
/// ```
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut previous = self.0.to_string();
        f.write_str(&previous)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            let text = err.to_string();
            if !previous.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            previous = text;
            cause = err.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    /// The same line: a `main` that returns `Result<(), E>` prints its
    /// error by `Debug`, so this shows the chain there too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[derive(Debug)]
    struct Outer(io::Error, bool);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            if self.1 {
                write!(f, "cannot read the cache: {}", self.0)
            } else {
                f.write_str("cannot read the cache")
            }
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn causes_follow_the_message() {
        let err = Outer(io::Error::other("disk on fire"), false);
        assert_eq!(
            ErrorChain(&err).to_string(),
            "cannot read the cache: disk on fire"
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let err = Outer(io::Error::other("disk on fire"), true);
        assert_eq!(
            ErrorChain(&err).to_string(),
            "cannot read the cache: disk on fire"
        );
        assert_eq!(
            format!("{:?}", ErrorChain(&err)),
            ErrorChain(&err).to_string()
        );
    }
}
