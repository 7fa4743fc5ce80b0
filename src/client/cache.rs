//! The last good config on disk, so that a module can start while every
//! config-service node is down (the Go client cannot).
//!
//! At start-up the delivery actor delivers the cached config ([`read`])
//! before the supervisor's first attempt; afterwards every config the
//! receiver accepted, whichever session it came from, is written back
//! ([`CacheWriter`]). Writes run on the blocking
//! pool, one at a time, and while one is under way only the newest config
//! waits: like the delivery lanes, every config is a full snapshot, so an
//! older one is worth nothing once a newer one exists. A failed write is a
//! warning and a count in the status, never the session's concern.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::{ConfigSource, RemoteConfig, Shared};
use crate::config_file::{self, write_atomic};

/// How long `close()` waits for a cache write in flight (and a newer config
/// waiting behind it) to reach the disk.
pub(crate) const CACHE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes accepted configs to the cache file.
#[derive(Clone)]
pub(crate) struct CacheWriter {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    module: String,
    queue: Mutex<Queue>,
    shared: Arc<Shared>,
    /// Woken whenever the writer goes idle.
    idle: tokio::sync::Notify,
}

#[derive(Default)]
struct Queue {
    /// The newest config not yet written.
    waiting: Option<Bytes>,
    /// A blocking task is writing (and will take `waiting` next).
    writing: bool,
}

impl CacheWriter {
    pub(crate) fn new(path: PathBuf, module: String, shared: Arc<Shared>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                module,
                queue: Mutex::new(Queue::default()),
                shared,
                idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Writes `config` once the write under way (if any) is done; a config
    /// still waiting is replaced by it.
    pub(crate) fn offer(&self, config: Bytes) {
        {
            let mut queue = self.inner.lock();
            if queue.waiting.replace(config).is_some() {
                log::debug!(
                    "[module={}] a config waiting for the cache was replaced by a newer one",
                    self.inner.module
                );
            }
            if queue.writing {
                return;
            }
            queue.writing = true;
        }
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                // The returned handle is not awaited: the task reports its
                // own failures.
                drop(runtime.spawn_blocking(move || inner.drain()));
            }
            Err(_) => {
                let error = io::Error::other("no runtime to write from");
                inner.lock().writing = false;
                inner.idle.notify_waiters();
                inner.failed(&error);
            }
        }
    }

    /// Resolves once nothing is being written and nothing waits.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let queue = self.inner.lock();
                if !queue.writing && queue.waiting.is_none() {
                    return;
                }
            }
            notified.await;
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes until nothing waits.
    fn drain(&self) {
        loop {
            let config = {
                let mut queue = self.lock();
                match queue.waiting.take() {
                    Some(config) => config,
                    None => {
                        queue.writing = false;
                        drop(queue);
                        self.idle.notify_waiters();
                        return;
                    }
                }
            };
            match write_atomic(&self.path, &config) {
                Ok(()) => log::debug!(
                    "[module={}] config cached in {} ({} bytes)",
                    self.module,
                    self.path.display(),
                    config.len()
                ),
                Err(e) => self.failed(&e),
            }
        }
    }

    fn failed(&self, error: &io::Error) {
        // The path and the I/O error only: never the config.
        log::warn!(
            "[module={}] cannot write the config cache {}: {error}; the client goes on without it",
            self.module,
            self.path.display()
        );
        self.shared.update(|s| s.cache_writes_failed += 1);
        crate::metrics::cache_write_failed(&self.module);
    }
}

/// Reads the cache (off the actix thread): its config when it holds valid
/// JSON. A missing file is a first run; an unreadable or damaged one is a
/// warning naming the path and the fault. Nothing here fails the client.
pub(crate) async fn read(path: PathBuf, module: &str) -> Option<RemoteConfig> {
    let tag = format!("[module={module}]");
    remove_stale_temps(&path, &tag).await;
    let shown = path.display();
    let file = match config_file::read(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            log::info!("{tag} no cached config at {shown} yet");
            return None;
        }
        Err(e) => {
            log::warn!("{tag} cannot read the config cache {shown}: {e}; ignored");
            return None;
        }
    };
    if let Err(e) = file.check {
        log::warn!("{tag} the config cache {shown} is damaged (not valid json: {e}); ignored");
        return None;
    }
    log::info!(
        "{tag} cached config read from {shown} ({} bytes); a node's config replaces it",
        file.data.len()
    );
    Some(RemoteConfig::new(file.data, true).with_source(ConfigSource::Cache))
}

/// Removes what crashed writes left beside the cache, off the actix
/// thread; a failure is a warning.
async fn remove_stale_temps(path: &std::path::Path, tag: &str) {
    let owned = path.to_owned();
    let removed = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime
            .spawn_blocking(move || config_file::remove_stale_temps(&owned))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string()))),
        Err(_) => config_file::remove_stale_temps(&owned),
    };
    match removed {
        Ok(files) => {
            for file in files {
                log::info!(
                    "{tag} removed a stale temporary cache file {}",
                    file.display()
                );
            }
        }
        Err(e) => log::warn!(
            "{tag} cannot clean up temporary files beside the config cache {}: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new())
    }

    #[actix::test]
    async fn a_burst_of_configs_ends_with_the_newest_on_disk() {
        let dir = std::env::temp_dir().join(format!("isp-cluster-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("burst.json");
        let shared = shared();
        let writer = CacheWriter::new(path.clone(), "m".into(), shared.clone());
        for n in 0..200 {
            writer.offer(Bytes::from(format!("{{\"n\":{n}}}")));
        }
        let newest = || std::fs::read(&path).ok() == Some(b"{\"n\":199}".to_vec());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !newest() && std::time::Instant::now() < deadline {
            actix::clock::sleep(Duration::from_millis(5)).await;
        }
        assert!(newest());
        // Nothing older follows the newest: the writer is idle again.
        actix::clock::sleep(Duration::from_millis(50)).await;
        assert!(newest());
        assert!(!writer.inner.lock().writing);
        assert_eq!(shared.lock().cache_writes_failed, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
