//! Which connections of sessions are still open, down to the socket: a
//! session's response body ends before the dispatcher has written its last
//! bytes and closed the connection, and only the end of the dispatcher, which
//! drops the connection's data, says that the close frame is on the wire.

use std::cell::Cell;
use std::sync::Arc;

use actix_web::dev::Extensions;
use tokio::sync::watch;

/// Put into every connection's data when it is accepted; a session puts its
/// [`OpenConnection`] there, to be dropped with the connection.
#[derive(Default)]
pub(crate) struct ConnectionSlot(Cell<Option<OpenConnection>>);

impl ConnectionSlot {
    /// The `on_connect` callback of the server.
    pub(crate) fn insert(_: &dyn std::any::Any, data: &mut Extensions) {
        data.insert(ConnectionSlot::default());
    }

    /// Keeps `open` until the connection is closed.
    pub(crate) fn hold(&self, open: OpenConnection) {
        self.0.set(Some(open));
    }
}

/// Counts one open connection of a session while it lives.
pub(crate) struct OpenConnection(Arc<watch::Sender<usize>>);

impl OpenConnection {
    pub(crate) fn new(count: &Arc<watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(Arc::clone(count))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
