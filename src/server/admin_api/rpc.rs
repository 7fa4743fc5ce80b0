//! The admin API served over isp RPC under the real service's endpoint
//! names, as inner endpoints (as the real service declares them).
//!
//! A refusal is isp-kit's business error (`InvalidArgument` with the error
//! code, message and details). When the server has an admin token, every
//! call must carry it as `authorization: Bearer <token>` metadata, as the
//! REST admin API requires it; without a token (loopback only) the API is
//! open, as the real service's is behind its router.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    AdminApi, AdminError, CREATE_UPDATE_CONFIG, GET_ACTIVE_CONFIG_BY_MODULE_NAME,
    GET_CONFIGS_BY_MODULE_ID, GET_CONFIG_BY_ID, GET_MODULES_INFO, GET_ROUTES,
    MARK_CONFIG_AS_ACTIVE, SYNC_CONFIG,
};
use crate::rpc::{Code, Error, Json, Metadata, Router};
use crate::server::admin::constant_time_eq;
use crate::server::AdminToken;
use crate::types::EndpointDescriptor;

/// The metadata key of the admin token.
const AUTHORIZATION: &str = "authorization";

/// The router of the admin API: every operation of [`AdminApi`] at its
/// real name, behind `token` when there is one.
pub(crate) fn router(api: AdminApi, token: Option<AdminToken>) -> Router {
    Routes {
        router: Router::new(),
        api,
        guard: Guard(token.map(|t| t.0)),
    }
    .without_body(GET_MODULES_INFO, |api| async move {
        api.get_modules_info().await
    })
    .without_body(GET_ROUTES, |api| async move { api.get_routes().await })
    .with_body(
        GET_ACTIVE_CONFIG_BY_MODULE_NAME,
        |api, request| async move { api.get_active_config_by_module_name(request).await },
    )
    .with_body(GET_CONFIGS_BY_MODULE_ID, |api, request| async move {
        api.get_configs_by_module_id(request).await
    })
    .with_body(GET_CONFIG_BY_ID, |api, request| async move {
        api.get_config_by_id(request).await
    })
    .with_body(CREATE_UPDATE_CONFIG, |api, request| async move {
        api.create_update_config(request).await
    })
    .with_body(MARK_CONFIG_AS_ACTIVE, |api, request| async move {
        api.mark_config_as_active(request).await
    })
    .with_body(SYNC_CONFIG, |api, request| async move {
        api.sync_config(request).await
    })
    .router
}

/// The admin token, when calls must carry one.
#[derive(Clone)]
struct Guard(Option<Arc<str>>);

impl Guard {
    fn check(&self, metadata: &Metadata) -> Result<(), Error> {
        let Some(token) = &self.0 else {
            return Ok(());
        };
        let given = metadata
            .get(AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "));
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(Error::status(
                Code::Unauthenticated,
                "admin API: missing or wrong bearer token",
            )),
        }
    }
}

/// isp-kit's business error with the real service's code and message (not
/// a `From`: any other error becomes an internal one).
fn refusal(error: AdminError) -> Error {
    let details: serde_json::Map<String, serde_json::Value> = error
        .details
        .into_iter()
        .map(|(field, reason)| (field, serde_json::Value::String(reason)))
        .collect();
    let refusal = Error::business(i64::from(error.error_code), error.error_message);
    if details.is_empty() {
        refusal
    } else {
        refusal.with_details(details)
    }
}

fn inner(path: &str) -> EndpointDescriptor {
    EndpointDescriptor::new(path).inner(true)
}

/// The router being built, with what every route shares.
struct Routes {
    router: Router,
    api: AdminApi,
    guard: Guard,
}

impl Routes {
    /// Routes `path` to an operation that takes no body (any body is
    /// ignored, as the real service's handlers without one ignore it).
    fn without_body<F, Fut, R>(self, path: &str, operation: F) -> Self
    where
        F: Fn(AdminApi) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, AdminError>> + Send + 'static,
        R: Serialize + 'static,
    {
        let (api, guard) = (self.api.clone(), self.guard.clone());
        let router = self.router.route(inner(path), move |metadata: Metadata| {
            let checked = guard.check(&metadata);
            let answer = operation(api.clone());
            async move {
                checked?;
                answer.await.map_err(refusal)
            }
        });
        Self { router, ..self }
    }

    /// Routes `path` to an operation that takes a JSON body.
    fn with_body<F, Fut, T, R>(self, path: &str, operation: F) -> Self
    where
        F: Fn(AdminApi, T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, AdminError>> + Send + 'static,
        T: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        let (api, guard) = (self.api.clone(), self.guard.clone());
        let router = self.router.route(
            inner(path),
            move |metadata: Metadata, Json(request): Json<T>| {
                let checked = guard.check(&metadata);
                let answer = operation(api.clone(), request);
                async move {
                    checked?;
                    answer.await.map_err(refusal)
                }
            },
        );
        Self { router, ..self }
    }
}
