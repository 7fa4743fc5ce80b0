//! How a module stops, in isp-kit's order: it leaves the cluster first
//! (close 1000: the config-service drops it from every caller's routes, so
//! callers stop sending), then drains its own servers, then stops the infra
//! server (health and metrics answer to the end). A Go module gets this
//! from the order of its closers (`app.AddClosers(clusterCli, server…)`).
//!
//! Draining first would keep the module in every caller's routes while it
//! refuses them, for as long as the drain takes (actix-web's default: up
//! to 30 s).

use std::future::Future;
use std::io;
use std::time::Duration;

use super::Module;

impl Module {
    /// Leaves the cluster: closes the session with 1000 and waits for it
    /// (Go: `ClusterCli.Close()`, the first closer). The config-service
    /// drops the module from the routes it sends every caller. Nothing in
    /// offline mode.
    pub async fn leave_cluster(&self) {
        if let Some(client) = &self.client {
            client.close().await;
        }
    }

    /// Stops the module in isp-kit's order: [leaves the
    /// cluster](Self::leave_cluster), waits `grace` (time for the callers
    /// to take the new routes; isp-kit waits none), runs `drain` (stop the
    /// application's servers there, e.g. an actix-web
    /// `server_handle.stop(true)`, an RPC server's graceful stop), then
    /// stops the infra server.
    pub async fn shutdown_with(self, grace: Duration, drain: impl Future<Output = ()>) {
        self.leave_cluster().await;
        if !grace.is_zero() {
            actix::clock::sleep(grace).await;
        }
        drain.await;
        if let Some(infra) = self.infra {
            infra.stop().await;
        }
    }

    /// Runs the application's actix-web `server` until SIGTERM or SIGINT,
    /// then stops in isp-kit's order:
    /// [`shutdown_with`](Self::shutdown_with)`(grace, server_handle.stop(true))`.
    /// Build the server with `.disable_signals()`: actix-web's own
    /// handling would start draining on the same signal, before the module
    /// left the cluster. If the server stops by itself first, the module
    /// still leaves and stops; its result is returned.
    ///
    /// ```no_run
    /// # async fn f(module: isp_cluster::bootstrap::Module) -> std::io::Result<()> {
    /// use actix_web::{App, HttpServer};
    /// let server = HttpServer::new(App::new)
    ///     .disable_signals() // the module handles SIGTERM and SIGINT
    ///     .bind(module.binding_address())?
    ///     .run();
    /// module.serve(server, std::time::Duration::ZERO).await
    /// # }
    /// ```
    pub async fn serve(self, server: actix_web::dev::Server, grace: Duration) -> io::Result<()> {
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let signal = std::pin::pin!(termination());
        match futures_util::future::select(server.as_mut(), signal).await {
            futures_util::future::Either::Left((result, _)) => {
                log::info!("the HTTP server stopped; leaving the cluster");
                self.shutdown_with(Duration::ZERO, async {}).await;
                result
            }
            futures_util::future::Either::Right((name, _)) => {
                log::info!("{name}: leaving the cluster, then draining the HTTP server");
                let mut result = Ok(());
                let drain = async {
                    // The server's own future carries out the stop: polled
                    // beside it.
                    let stop = handle.stop(true);
                    let (_, served) = futures_util::future::join(stop, server.as_mut()).await;
                    result = served;
                };
                self.shutdown_with(grace, drain).await;
                result
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT, with the signal's name. Where SIGTERM
/// cannot be listened to, on Ctrl-C alone; where neither can, never.
async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            let term = std::pin::pin!(term.recv());
            let int = std::pin::pin!(int.recv());
            return match futures_util::future::select(term, int).await {
                futures_util::future::Either::Left(_) => "SIGTERM",
                futures_util::future::Either::Right(_) => "SIGINT",
            };
        }
    }
    match tokio::signal::ctrl_c().await {
        Ok(()) => "SIGINT",
        Err(_) => std::future::pending().await,
    }
}
