//! Closure receivers: an actor around a closure, for applications that
//! need no actor of their own. Each is a receiver like every other: one
//! message at a time, in order, latest wins, under the same timeout.

use actix::{Actor, Context, Handler, Recipient};

use super::{ReceiverError, RemoteConfig, RoutesChanged};

type ConfigFn = Box<dyn Fn(&RemoteConfig) -> Result<(), ReceiverError>>;
type RoutesFn = Box<dyn Fn(&RoutesChanged) -> Result<(), ReceiverError>>;

/// Runs a config closure on the actix thread it was started on.
struct ConfigClosure(ConfigFn);

impl Actor for ConfigClosure {
    type Context = Context<Self>;
}

impl Handler<RemoteConfig> for ConfigClosure {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RemoteConfig, _: &mut Context<Self>) -> Self::Result {
        (self.0)(&msg)
    }
}

/// Runs a routes closure on the actix thread it was started on.
struct RoutesClosure(RoutesFn);

impl Actor for RoutesClosure {
    type Context = Context<Self>;
}

impl Handler<RoutesChanged> for RoutesClosure {
    type Result = Result<(), ReceiverError>;

    fn handle(&mut self, msg: RoutesChanged, _: &mut Context<Self>) -> Self::Result {
        (self.0)(&msg)
    }
}

/// Starts an actor around `receive` (in the current actix System).
pub(crate) fn config_recipient<F, E>(receive: F) -> Recipient<RemoteConfig>
where
    F: Fn(&RemoteConfig) -> Result<(), E> + 'static,
    E: Into<ReceiverError>,
{
    ConfigClosure(Box::new(move |config| receive(config).map_err(Into::into)))
        .start()
        .recipient()
}

/// Starts an actor around `receive` (in the current actix System).
pub(crate) fn routes_recipient<F, E>(receive: F) -> Recipient<RoutesChanged>
where
    F: Fn(&RoutesChanged) -> Result<(), E> + 'static,
    E: Into<ReceiverError>,
{
    RoutesClosure(Box::new(move |routes| receive(routes).map_err(Into::into)))
        .start()
        .recipient()
}
