//! The round-robin pool of a required module's live addresses.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

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

/// The list in force and its number; an update replaces both together.
struct Current {
    list: Arc<[String]>,
    generation: u64,
}

struct Inner {
    module: String,
    /// The generation of `current`, readable without the lock: the one
    /// shared word a call reads, and writes only come with updates.
    generation: AtomicU64,
    current: Mutex<Current>,
    /// The cursor of calls made where the thread's own is gone (from the
    /// destructor of another thread-local).
    fallback_next: AtomicUsize,
}

/// One thread's view of one pool: its own copy of a whole list and its own
/// place in it, so that calls from different threads share no written
/// memory and never wait for each other.
struct Cursor {
    pool: Weak<Inner>,
    generation: u64,
    list: HostList,
    next: usize,
}

/// One thread's copy of a list, shared by the requests that took it.
pub(crate) type HostList = Arc<[Arc<str>]>;

thread_local! {
    static CURSORS: RefCell<Vec<Cursor>> = const { RefCell::new(Vec::new()) };
}

/// The live addresses of one required module, handed out round-robin.
///
/// Go: `lb.RoundRobin` (`NewRoundRobin`, `Upgrade`, `Next`). Register it as
/// the module's [`HostsUpgrader`] with
/// [`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader);
/// every clone shares the same pool, from any thread.
///
/// Each thread goes round the list from a random host, chosen again after
/// every update (as Go does per pool), so that a fleet of modules — and the
/// workers of one — that learn the same list at once do not all call the
/// first host. Where Go shares one counter between all callers, each thread
/// here keeps its own place and its own copy of the list: a call reads one
/// shared number, writes nothing shared and takes no lock, so threads never
/// wait for each other or for an update. The first call after an update
/// copies the new list, whole: a caller sees the old list or the new one,
/// never a mix.
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
        Self::with_hosts(module, Vec::<String>::new())
    }

    /// A pool for `module` that starts with `hosts`, `ip:port` each.
    pub fn with_hosts<I, S>(module: impl Into<String>, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let hosts: Vec<String> = hosts.into_iter().map(Into::into).collect();
        Self {
            inner: Arc::new(Inner {
                module: module.into(),
                generation: AtomicU64::new(0),
                current: Mutex::new(Current {
                    list: hosts.into(),
                    generation: 0,
                }),
                fallback_next: AtomicUsize::new(0),
            }),
        }
    }

    /// The required module this pool balances.
    pub fn module(&self) -> &str {
        &self.inner.module
    }

    /// The next host, `ip:port` (IPv6 in brackets). Go: `(*RoundRobin).Next`.
    pub fn next(&self) -> Result<Arc<str>, NoHostsToBalance> {
        self.with_next(|list, index| list[index].clone())
    }

    /// The current list, in the order it was received.
    pub fn hosts(&self) -> Arc<[String]> {
        self.lock().list.clone()
    }

    /// This thread's list and the index of its next host, taken together:
    /// a request tries its hosts from there on, in this list, whatever
    /// updates come meanwhile.
    pub(crate) fn pick(&self) -> Result<(HostList, usize), NoHostsToBalance> {
        self.with_next(|list, index| (list.clone(), index))
    }

    /// Calls `f` with this thread's list and the index of its next host,
    /// and moves past that host.
    fn with_next<R>(&self, f: impl FnOnce(&HostList, usize) -> R) -> Result<R, NoHostsToBalance> {
        let generation = self.inner.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        let answer = CURSORS.try_with(|cursors| {
            let mut cursors = cursors.borrow_mut();
            let cursor = self.cursor(&mut cursors, generation);
            let len = cursor.list.len();
            if len == 0 {
                return None;
            }
            let index = cursor.next % len;
            cursor.next = index + 1;
            f.take().map(|f| f(&cursor.list, index))
        });
        match (answer, f) {
            (Ok(Some(answer)), _) => Ok(answer),
            // The thread's cursors are gone (a call from the destructor of
            // another thread-local): the shared list and a shared counter.
            (Err(_), Some(f)) => {
                let list = self.hosts();
                match list.len() {
                    0 => Err(self.no_hosts()),
                    len => {
                        let list = list.iter().map(|h| Arc::from(h.as_str())).collect();
                        Ok(f(
                            &list,
                            self.inner.fallback_next.fetch_add(1, Ordering::Relaxed) % len,
                        ))
                    }
                }
            }
            _ => Err(self.no_hosts()),
        }
    }

    /// This thread's cursor over this pool, brought up to `generation`.
    fn cursor<'c>(&self, cursors: &'c mut Vec<Cursor>, generation: u64) -> &'c mut Cursor {
        let mine = Arc::as_ptr(&self.inner);
        // A cursor's weak reference keeps its pool's address from being
        // reused, so the address names the pool.
        let at = match cursors.iter().position(|c| c.pool.as_ptr() == mine) {
            Some(at) => at,
            None => {
                cursors.retain(|c| c.pool.strong_count() > 0);
                cursors.push(Cursor {
                    pool: Arc::downgrade(&self.inner),
                    generation: u64::MAX, // never current: copied below
                    list: Arc::new([]),
                    next: 0,
                });
                cursors.len() - 1
            }
        };
        let cursor = &mut cursors[at];
        if cursor.generation != generation {
            let (list, generation) = {
                let current = self.lock();
                (current.list.clone(), current.generation)
            };
            cursor.list = list.iter().map(|h| Arc::from(h.as_str())).collect();
            cursor.generation = generation;
            cursor.next = random_start(list.len());
        }
        cursor
    }

    pub(crate) fn no_hosts(&self) -> NoHostsToBalance {
        NoHostsToBalance {
            module: self.inner.module.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        // Nothing that can panic runs under the lock (two moves and a
        // clone); a poisoned lock still holds a whole list.
        self.inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn random_start(len: usize) -> usize {
    match len {
        0 => 0,
        len => rand::random_range(0..len),
    }
}

impl HostsUpgrader for RoundRobin {
    /// Replaces the list atomically; each thread restarts at a random host.
    /// Go: `(*RoundRobin).Upgrade`.
    fn upgrade(&self, hosts: &[String]) {
        let list: Arc<[String]> = hosts.into();
        let old = {
            let mut current = self.lock();
            let generation = current.generation + 1;
            let old = std::mem::replace(&mut current.list, list);
            current.generation = generation;
            self.inner.generation.store(generation, Ordering::Release);
            old
        };
        drop(old); // after the lock: a reader never waits for the free
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
