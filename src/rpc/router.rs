//! The router: endpoints by name, each with its declaration. What it holds
//! is both what the server serves and what `MODULE:READY` declares.
//!
//! Go: `isp-kit/grpc.Mux` (`Handle`), with the endpoint descriptors a
//! module declares (`cluster.EndpointDescriptor`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::handler::{self, BoxedHandler, Call, Handler};
use crate::types::EndpointDescriptor;

/// The HTTP method declared for an endpoint that names none: what the
/// config-service makes of an empty one for gRPC.
pub const DEFAULT_HTTP_METHOD: &str = "POST";

/// Why an endpoint could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The router serves this path already.
    Duplicate(String),
    /// The path is empty, starts with `/` or holds white space (isp paths
    /// are like `orders/order/get`: what callers send in
    /// `proxy_method_name`).
    InvalidPath(String),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate(path) => write!(f, "endpoint {path:?} is already routed"),
            Self::InvalidPath(path) => write!(
                f,
                "endpoint path {path:?} is not valid: it must be non-empty, without a leading '/' or white space"
            ),
        }
    }
}

impl std::error::Error for RouteError {}

pub(crate) struct Route {
    /// The router's own name for the endpoint: the only endpoint text a
    /// metric label or a log line takes.
    pub(crate) name: Arc<str>,
    pub(crate) descriptor: EndpointDescriptor,
    pub(crate) handler: BoxedHandler,
}

type Table = BTreeMap<Arc<str>, Arc<Route>>;

struct Shared {
    table: RwLock<Arc<Table>>,
    /// Bumped on every change; the cluster client re-declares on it.
    version: watch::Sender<u64>,
}

/// The endpoints a module serves over isp RPC, by name.
///
/// Go: `grpc.Mux` with its endpoint descriptors. A handle: clones share one
/// table, so that the server, the cluster client (which declares it) and
/// the application see the same endpoints. Built once like axum's router
/// ([`route`](Self::route), [`actor`](Self::actor)); it may also change at
/// run time ([`add`](Self::add), [`remove`](Self::remove)): the server
/// serves the change from the next call, and a cluster client that
/// declares this router sends `MODULE:READY` again with the new list.
///
/// ```
/// use isp_cluster::rpc::{Error, Json, Router};
/// use isp_cluster::EndpointDescriptor;
///
/// async fn echo(Json(body): Json<serde_json::Value>) -> Result<serde_json::Value, Error> {
///     Ok(body)
/// }
///
/// let router = Router::new()
///     .route("orders/echo", echo)
///     .route(EndpointDescriptor::new("orders/admin/echo").inner(true), echo);
/// let paths: Vec<_> = router.endpoints().into_iter().map(|e| e.path).collect();
/// assert_eq!(paths, ["orders/admin/echo", "orders/echo"]);
/// ```
#[derive(Clone)]
pub struct Router {
    shared: Arc<Shared>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// A router with no endpoint.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                table: RwLock::new(Arc::new(Table::new())),
                version: watch::channel(0).0,
            }),
        }
    }

    /// Routes `endpoint` (a path, or a full [`EndpointDescriptor`]) to an
    /// async function. Panics when the path is routed already or not valid
    /// (as Go's `Mux.Handle` does): a programming error, found at start.
    /// Use [`add`](Self::add) for a `Result`.
    #[track_caller]
    pub fn route<H, A>(self, endpoint: impl Into<EndpointDescriptor>, handler: H) -> Self
    where
        H: Handler<A>,
    {
        if let Err(e) = self.insert(endpoint.into(), handler::boxed(handler)) {
            panic!("{e}");
        }
        self
    }

    /// Routes `endpoint` to an actix actor: each call is a [`Call<T, R>`]
    /// message whose answer is the response. Panics as [`route`](Self::route).
    #[track_caller]
    pub fn actor<T, R>(
        self,
        endpoint: impl Into<EndpointDescriptor>,
        recipient: actix::Recipient<Call<T, R>>,
    ) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        if let Err(e) = self.insert(endpoint.into(), handler::actor(recipient)) {
            panic!("{e}");
        }
        self
    }

    /// Adds an endpoint at run time: served from the next call, and
    /// declared again by the cluster client.
    pub fn add<H, A>(
        &self,
        endpoint: impl Into<EndpointDescriptor>,
        handler: H,
    ) -> Result<(), RouteError>
    where
        H: Handler<A>,
    {
        self.insert(endpoint.into(), handler::boxed(handler))
    }

    /// [`add`](Self::add) for an actor.
    pub fn add_actor<T, R>(
        &self,
        endpoint: impl Into<EndpointDescriptor>,
        recipient: actix::Recipient<Call<T, R>>,
    ) -> Result<(), RouteError>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        self.insert(endpoint.into(), handler::actor(recipient))
    }

    /// Removes the endpoint at `path`; `false` when there was none. Calls
    /// already running finish; the next one is `NotFound`, and the cluster
    /// client declares the list without it.
    pub fn remove(&self, path: &str) -> bool {
        let removed = self.change(|table| table.remove(path).is_some());
        if removed {
            self.shared.version.send_modify(|v| *v += 1);
        }
        removed
    }

    /// The declaration of every endpoint, by path: what `MODULE:READY`
    /// carries for this router.
    pub fn endpoints(&self) -> Vec<EndpointDescriptor> {
        self.table()
            .values()
            .map(|route| route.descriptor.clone())
            .collect()
    }

    /// Whether `path` is routed.
    pub fn contains(&self, path: &str) -> bool {
        self.table().contains_key(path)
    }

    /// The route for a name a caller sent.
    pub(crate) fn lookup(&self, name: &str) -> Option<Arc<Route>> {
        self.table().get(name).cloned()
    }

    /// A receiver that changes whenever the endpoints do.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.version.subscribe()
    }

    fn table(&self) -> Arc<Table> {
        self.shared
            .table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn insert(
        &self,
        mut descriptor: EndpointDescriptor,
        handler: BoxedHandler,
    ) -> Result<(), RouteError> {
        let path = descriptor.path.clone();
        if path.is_empty() || path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(RouteError::InvalidPath(path));
        }
        if descriptor.http_method.is_empty() {
            descriptor.http_method = DEFAULT_HTTP_METHOD.to_owned();
        }
        let name: Arc<str> = Arc::from(path.as_str());
        let route = Arc::new(Route {
            name: name.clone(),
            descriptor,
            handler,
        });
        self.change(|table| {
            if table.contains_key(&name) {
                return Err(RouteError::Duplicate(path));
            }
            table.insert(name, route);
            Ok(())
        })?;
        self.shared.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Copies the table, changes the copy and puts it in place: a call in
    /// flight keeps the table it looked its endpoint up in.
    fn change<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let mut guard = self
            .shared
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut table = Table::clone(&guard);
        let answer = f(&mut table);
        *guard = Arc::new(table);
        answer
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("endpoints", &self.table().keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::Error;

    async fn nothing() -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn paths_are_checked_and_unique() {
        let router = Router::new().route("a/b", nothing);
        assert_eq!(
            router.add("a/b", nothing),
            Err(RouteError::Duplicate("a/b".into()))
        );
        for bad in ["", "/a/b", "a b"] {
            assert_eq!(
                router.add(bad, nothing),
                Err(RouteError::InvalidPath(bad.into()))
            );
        }
        assert_eq!(router.endpoints()[0].http_method, "POST");
    }

    #[test]
    fn changes_are_seen_by_every_clone_and_bump_the_version() {
        let router = Router::new();
        let clone = router.clone();
        let changes = router.subscribe();
        router.add("x", nothing).unwrap();
        assert!(clone.contains("x"));
        assert!(changes.has_changed().unwrap());
        assert!(clone.remove("x"));
        assert!(!router.contains("x"));
        assert!(!router.remove("x"));
        assert_eq!(*router.subscribe().borrow(), 2);
    }
}
