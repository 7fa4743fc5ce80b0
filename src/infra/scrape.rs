//! The answer to a scrape of `/internal/metrics`: the recorder's text, the
//! `process_*` series, gzip when the scraper asks for it (Go's
//! `promhttp.Handler` does the same: Prometheus sends
//! `Accept-Encoding: gzip`, and the text of a busy module shrinks about
//! tenfold).

use std::io::Write as _;

use actix_web::http::header::{
    self, AcceptEncoding, ContentEncoding, Encoding, Header as _, HeaderValue,
};
use actix_web::{HttpRequest, HttpResponse};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::process;
use super::prometheus::CONTENT_TYPE;

/// The encodings offered, the plain text last (it wins ties).
const OFFERED: [Encoding; 2] = [
    Encoding::Known(ContentEncoding::Gzip),
    Encoding::Known(ContentEncoding::Identity),
];

/// The response for `text`, the recorder's rendering.
pub(crate) fn respond(request: &HttpRequest, mut text: String) -> HttpResponse {
    process::append(&mut text);
    let mut response = HttpResponse::Ok();
    response
        .content_type(CONTENT_TYPE)
        .insert_header((header::VARY, HeaderValue::from_static("accept-encoding")));
    if wants_gzip(request) {
        match gzip(text.as_bytes()) {
            Ok(body) => {
                return response.insert_header(ContentEncoding::Gzip).body(body);
            }
            // Writing to memory does not fail; should it, the text goes
            // out plain.
            Err(e) => log::warn!("metrics not compressed: {e}"),
        }
    }
    response.body(text)
}

/// Whether `Accept-Encoding` makes gzip the best of the two offered. An
/// unreadable header, or none, gets the plain text.
fn wants_gzip(request: &HttpRequest) -> bool {
    AcceptEncoding::parse(request)
        .ok()
        .and_then(|accept| accept.negotiate(OFFERED.iter()))
        .is_some_and(|chosen| chosen == Encoding::Known(ContentEncoding::Gzip))
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // The default level: a scrape every 15 s or so is not worth the CPU of
    // the best one.
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::default());
    encoder.write_all(data)?;
    encoder.finish()
}
