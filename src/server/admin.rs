//! The admin HTTP API: JSON in and out, on the ETP listener.

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, Scope};
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::state::Shared;
use crate::json::json_text;
use crate::secrets::LogPayload;

/// Whether `headers` carry `Authorization: Bearer <token>`.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    constant_time_eq(given, token.as_bytes())
}

/// Equal contents, compared without an early exit, so the time taken says
/// nothing about where a guess went wrong.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
        diff |= usize::from(std::hint::black_box(x));
    }
    diff == 0
}

/// `/admin/...`, behind `token` when there is one.
pub(crate) fn scope(
    token: Option<super::AdminToken>,
) -> Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/admin")
        .wrap_fn(
            move |req: ServiceRequest,
                  srv|
                  -> LocalBoxFuture<
                'static,
                Result<ServiceResponse<BoxBody>, actix_web::Error>,
            > {
                let allowed = token
                    .as_ref()
                    .is_none_or(|t| authorized(req.headers(), &t.0));
                if allowed {
                    let response = srv.call(req);
                    Box::pin(async move { Ok(response.await?.map_into_boxed_body()) })
                } else {
                    let refusal = HttpResponse::Unauthorized()
                        .insert_header((WWW_AUTHENTICATE, "Bearer"))
                        .json(json!({ "error": "admin API: missing or wrong bearer token" }));
                    let response = req.into_response(refusal);
                    Box::pin(async move { Ok(response) })
                }
            },
        )
        .route("/modules", web::get().to(modules))
        .route("/routes", web::get().to(routes))
        .route("/config/{module}", web::get().to(get_config))
        .route("/config/{module}", web::put().to(put_config))
        .route("/schema/{module}", web::get().to(get_schema))
}

/// `{"error": text}` with `status`.
fn error(status: StatusCode, text: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": text }))
}

/// A stored JSON document, byte for byte.
fn json_document(text: bytestring::ByteString) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(text.into_bytes())
}

/// `GET /admin/modules`: every known module, its sessions and its live
/// instances.
async fn modules(shared: web::Data<Shared>) -> HttpResponse {
    let modules = shared.lock().modules();
    HttpResponse::Ok().json(modules)
}

/// `GET /admin/routes`: the routing table.
async fn routes(shared: web::Data<Shared>) -> HttpResponse {
    let routes = shared.lock().routes();
    HttpResponse::Ok().json(routes)
}

/// `GET /admin/config/{module}`: the active config.
async fn get_config(shared: web::Data<Shared>, module: web::Path<String>) -> HttpResponse {
    let config = shared.lock().config(&module);
    match config {
        Some(text) => json_document(text),
        None => not_found(&shared, &module, "config"),
    }
}

/// `GET /admin/schema/{module}`: the schema the module sent.
async fn get_schema(shared: web::Data<Shared>, module: web::Path<String>) -> HttpResponse {
    let schema = shared.lock().schema(&module);
    match schema {
        Some(text) => json_document(text),
        None => not_found(&shared, &module, "schema"),
    }
}

fn not_found(shared: &Shared, module: &str, what: &str) -> HttpResponse {
    let text = if shared.lock().is_known(module) {
        format!("module {module:?} has no {what}")
    } else {
        format!("unknown module {module:?}")
    };
    error(StatusCode::NOT_FOUND, text)
}

/// `PUT /admin/config/{module}`: body = the new config; stored and pushed to
/// the module's sessions. Answers how many sessions it reached.
async fn put_config(
    shared: web::Data<Shared>,
    module: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    let module = module.into_inner();
    let text = match json_text(&body) {
        Ok(text) => text,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a json document: {e}"),
            )
        }
    };
    log::info!("admin: new config for module {module:?}");
    log::debug!("admin: config of {module:?}: {}", LogPayload(&body));
    let pushed = shared
        .lock()
        .set_config(&module, bytestring::ByteString::from(text));
    match pushed {
        Ok(sessions) => HttpResponse::Ok().json(json!({ "module": module, "sessions": sessions })),
        Err(violations) => {
            let refused = super::ConfigRefused::SchemaViolation {
                module: module.clone(),
                violations,
            };
            log::warn!("admin: config for module {module:?} refused: {refused}");
            error(StatusCode::BAD_REQUEST, refused.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "s3cret"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(authorized(&headers, "s3cret"));
        assert!(!authorized(&headers, "s3cre"));
        assert!(!authorized(&headers, "s3cret!"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!authorized(&headers, "s3cret"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}
