//! The `HostsUpgrader` trait and the actor that feeds one from the client.

use std::fmt;

use actix::{Actor, Context, Handler, Recipient};

use crate::{HostsChanged, ReceiverError};

/// Anything that takes the complete list of a required module's live
/// addresses: a pool, a balanced client, a channel of another RPC library.
///
/// Go: `cluster.HostsUpgrader` (`Upgrade(hosts []string)`). Register one with
/// [`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader).
/// The list is complete each time (empty: no live instance); each host is
/// `ip:port`, IPv6 addresses in brackets. `upgrade` runs on the actix
/// thread under the receiver timeout, so it should only swap state, not
/// wait for I/O.
///
/// Closures taking `&[String]` are upgraders too:
///
/// ```
/// use isp_cluster::lb::HostsUpgrader;
///
/// let print = |hosts: &[String]| println!("auth is at {hosts:?}");
/// print.upgrade(&["10.0.0.1:9001".to_owned()]);
/// ```
pub trait HostsUpgrader: Send + Sync + 'static {
    /// Replaces the address list.
    fn upgrade(&self, hosts: &[String]);
}

impl<F> HostsUpgrader for F
where
    F: Fn(&[String]) + Send + Sync + 'static,
{
    fn upgrade(&self, hosts: &[String]) {
        self(hosts)
    }
}

/// The actor that hands each [`HostsChanged`] to an upgrader, so that an
/// upgrader is a receiver like every other: one update at a time, in
/// arrival order, under the client's receiver timeout.
///
/// [`upgrader_recipient`] starts one; most code uses
/// [`require_module_upgrader`](crate::ClusterClientBuilder::require_module_upgrader).
pub struct UpgraderActor {
    upgrader: Box<dyn HostsUpgrader>,
}

impl UpgraderActor {
    /// An actor around `upgrader` (not yet started).
    pub fn new(upgrader: impl HostsUpgrader) -> Self {
        Self {
            upgrader: Box::new(upgrader),
        }
    }
}

impl fmt::Debug for UpgraderActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgraderActor").finish_non_exhaustive()
    }
}

impl Actor for UpgraderActor {
    type Context = Context<Self>;
}

impl Handler<HostsChanged> for UpgraderActor {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: HostsChanged, _: &mut Context<Self>) -> Self::Result {
        self.upgrader.upgrade(&msg.hosts);
        Ok(())
    }
}

/// Starts an [`UpgraderActor`] around `upgrader` in the current actix
/// System and returns its recipient, for
/// [`require_module`](crate::ClusterClientBuilder::require_module).
pub fn upgrader_recipient(upgrader: impl HostsUpgrader) -> Recipient<HostsChanged> {
    UpgraderActor::new(upgrader).start().recipient()
}

/// [`upgrader_recipient`] for an upgrader already boxed.
pub(crate) fn boxed_upgrader_recipient(
    upgrader: Box<dyn HostsUpgrader>,
) -> Recipient<HostsChanged> {
    UpgraderActor { upgrader }.start().recipient()
}
