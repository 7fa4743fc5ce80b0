//! The admin HTTP API: JSON in and out, on the ETP listener.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, Scope};
use bytes::Bytes;
use serde_json::json;

use super::state::Shared;
use crate::json::json_text;
use crate::secrets::LogPayload;

/// `/admin/...`
pub(crate) fn scope() -> Scope {
    web::scope("/admin")
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
    let sessions = shared
        .lock()
        .set_config(&module, bytestring::ByteString::from(text));
    HttpResponse::Ok().json(json!({ "module": module, "sessions": sessions }))
}
