//! The round-robin pool of a required module's live addresses.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use rand::Rng;

use super::HostsUpgrader;

/// `next()` found no host: the required module has no live instance.
///
/// Go: `lb.ErrNoHostsToBalance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoHostsToBalance {
    /// The required module.
    pub module: String,
}

impl fmt::Display for NoHostsToBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no hosts to balance: module {:?} has no live instance",
            self.module
        )
    }
}

impl std::error::Error for NoHostsToBalance {}

/// One address list and its cursor. An update replaces the whole value, so
/// a reader sees one list with its own cursor, never a mix.
struct Hosts {
    list: Arc<[String]>,
    next: AtomicUsize,
}

struct Inner {
    module: String,
    hosts: RwLock<Hosts>,
}

/// The live addresses of one required module, handed out round-robin.
///
/// Go: `lb.RoundRobin` (`NewRoundRobin`, `Upgrade`, `Next`). Register it as
/// the module's [`HostsUpgrader`] with
/// [`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader);
/// every clone shares the same pool, from any thread.
///
/// Each update starts at a random host (as Go), so that a fleet of modules
/// that learn the same list at once does not all call the first host.
/// [`next`](Self::next) takes a read lock for the time of a counter
/// increment and one string copy; an update builds its list before it takes
/// the write lock and frees the old one after, so it holds the lock only to
/// swap two words and a reader never waits for an allocation.
///
/// ```
/// use isp_cluster::lb::{HostsUpgrader, RoundRobin};
///
/// let auth = RoundRobin::new("auth");
/// assert!(auth.next().is_err()); // no live instance yet
/// auth.upgrade(&["10.0.0.1:9001".to_owned(), "10.0.0.2:9001".to_owned()]);
/// let first = auth.next().unwrap();
/// let second = auth.next().unwrap();
/// assert_ne!(first, second);
/// assert_eq!(auth.next().unwrap(), first);
/// ```
#[derive(Clone)]
pub struct RoundRobin {
    inner: Arc<Inner>,
}

impl RoundRobin {
    /// An empty pool for the required module `module` (the name goes into
    /// errors).
    pub fn new(module: impl Into<String>) -> Self {
        Self::with_hosts(module, &[])
    }

    /// A pool for `module` that starts with `hosts`.
    pub fn with_hosts(module: impl Into<String>, hosts: &[String]) -> Self {
        Self {
            inner: Arc::new(Inner {
                module: module.into(),
                hosts: RwLock::new(Hosts::starting_at_random(hosts)),
            }),
        }
    }

    /// The required module this pool balances.
    pub fn module(&self) -> &str {
        &self.inner.module
    }

    /// The next host, `ip:port`. Go: `(*RoundRobin).Next`.
    pub fn next(&self) -> Result<String, NoHostsToBalance> {
        let hosts = self.read();
        match hosts.list.len() {
            0 => Err(self.no_hosts()),
            len => Ok(hosts.list[hosts.next.fetch_add(1, Ordering::Relaxed) % len].clone()),
        }
    }

    /// The current list, in the order it was received.
    pub fn hosts(&self) -> Arc<[String]> {
        self.read().list.clone()
    }

    /// The current list and the index a request starts at, taken together:
    /// a request tries its hosts from there on, in this list, whatever
    /// updates come meanwhile.
    pub(crate) fn pick(&self) -> Result<(Arc<[String]>, usize), NoHostsToBalance> {
        let hosts = self.read();
        match hosts.list.len() {
            0 => Err(self.no_hosts()),
            len => Ok((
                hosts.list.clone(),
                hosts.next.fetch_add(1, Ordering::Relaxed) % len,
            )),
        }
    }

    pub(crate) fn no_hosts(&self) -> NoHostsToBalance {
        NoHostsToBalance {
            module: self.inner.module.clone(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Hosts> {
        // A panic cannot happen while the lock is held (a swap and an index
        // below the length); a poisoned lock still holds a whole list.
        self.inner
            .hosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Hosts {
    fn starting_at_random(hosts: &[String]) -> Self {
        let start = match hosts.len() {
            0 => 0,
            len => rand::thread_rng().gen_range(0..len),
        };
        Hosts {
            list: hosts.into(),
            next: AtomicUsize::new(start),
        }
    }
}

impl HostsUpgrader for RoundRobin {
    /// Replaces the list atomically and restarts at a random host.
    /// Go: `(*RoundRobin).Upgrade`.
    fn upgrade(&self, hosts: &[String]) {
        let fresh = Hosts::starting_at_random(hosts);
        let old = {
            let mut current = self
                .inner
                .hosts
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *current, fresh)
        };
        drop(old); // after the lock: readers never wait for the free
    }
}

impl fmt::Debug for RoundRobin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoundRobin")
            .field("module", &self.inner.module)
            .field("hosts", &self.hosts())
            .finish()
    }
}
