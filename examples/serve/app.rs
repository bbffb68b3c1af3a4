//! The HTTP face of `serve`: the router, its handlers and limits. A module of its own so that
//! a test can host the very same router in-process (`tests/load_serve_writes.rs`, which
//! applies writes to the engine while clients load it).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;
use axum::{BoxError, Router};
use ota_index::rpc::{
    new_request_id, write_error, write_json_string, ErrorCode, HttpRequest, KeyCase, RpcError,
    Service, MAX_REQUEST_BYTES,
};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;

/// Largest request body read; the service refuses longer form bodies anyway.
pub const BODY_LIMIT: usize = MAX_REQUEST_BYTES;
/// Longest a request may take, body upload included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests answered at once; more wait for a slot (each holds one body of at most 64 KiB).
pub const MAX_CONCURRENT_REQUESTS: usize = 1024;
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// What every handler shares.
struct AppState {
    service: Service,
}

/// An answer with the JSON content type.
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// A gateway-envelope error answered by this program itself (not by the service), with an
/// HTTP status of its own and a code that may lie outside reference section 5.
fn gateway_error(case: KeyCase, status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = new_request_id();
    let (code_key, message_key, id_key, success) = match case {
        KeyCase::Camel => (
            "{\"code\":",
            ",\"message\":",
            ",\"requestId\":",
            ",\"success\":false}",
        ),
        KeyCase::Pascal => (
            "{\"Code\":",
            ",\"Message\":",
            ",\"RequestId\":",
            ",\"Success\":false}",
        ),
    };
    let mut out = Vec::with_capacity(128 + message.len());
    out.extend_from_slice(code_key.as_bytes());
    write_json_string(&mut out, code);
    out.extend_from_slice(message_key.as_bytes());
    write_json_string(&mut out, message);
    out.extend_from_slice(id_key.as_bytes());
    write_json_string(&mut out, &request_id);
    out.extend_from_slice(success.as_bytes());
    json_response(status, out)
}

/// The 413 of a body over [`BODY_LIMIT`].
fn body_too_long(case: KeyCase) -> Response {
    gateway_error(
        case,
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidParameter.as_str(),
        &format!("the request body is longer than the {BODY_LIMIT}-byte limit"),
    )
}

/// Answers a request whose `Content-Length` is over [`BODY_LIMIT`] at once, rather than
/// waiting for a body it would refuse (or, when the client never sends it, for the timeout).
async fn refuse_declared_long_body(
    State(case): State<KeyCase>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT as u64) {
        return body_too_long(case);
    }
    next.run(request).await
}

/// `/`, any method: one call to [`Service::answer`].
async fn answer(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let case = state.service.case();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return body_too_long(case);
        }
        Err(rejection) => {
            // A body that cannot be read (a broken chunked encoding, …) is a malformed
            // request: the code of reference section 5 for one, with the HTTP layer's status.
            let message = format!(
                "the request body could not be read: {}",
                rejection.body_text()
            );
            let code = ErrorCode::InvalidParameter.as_str();
            return gateway_error(case, rejection.status(), code, &message);
        }
    };
    // Header values that are not UTF-8 cannot take part in a signature; they are left out.
    let header_pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str(), std::str::from_utf8(value.as_bytes()).ok()?))
        })
        .collect();
    let request = HttpRequest {
        method: method.as_str(),
        query: uri.query().unwrap_or(""),
        body: &body,
        headers: &header_pairs,
        request_id: None,
    };
    let mut out = Vec::with_capacity(1024);
    let status = state.service.answer(&request, &mut out);
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        out,
    )
}

/// Any path but `/`.
async fn not_found(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let error = RpcError::new(
        ErrorCode::InvalidActionNotFound,
        format!(
            "No API is served at path {:?}; send requests to \"/\" (as in GET /?Action=ListOTAUnfinishedTaskByDevice&…).",
            uri.path()
        ),
    );
    let mut out = Vec::with_capacity(256);
    write_error(&mut out, state.service.case(), &new_request_id(), &error);
    json_response(StatusCode::NOT_FOUND, out)
}

/// The router: `/` answered by the service, the limits around it.
pub fn router(service: Service) -> Router {
    let case = service.case();
    let state = Arc::new(AppState { service });
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |error: BoxError| async move {
            if error.is::<tower::timeout::error::Elapsed>() {
                gateway_error(
                    case,
                    StatusCode::REQUEST_TIMEOUT,
                    "RequestTimeout",
                    &format!(
                        "the request was not complete within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                )
            } else {
                gateway_error(
                    case,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::SystemException.as_str(),
                    "an unexpected internal error occurred; the request was not answered",
                )
            }
        }))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .layer(TimeoutLayer::new(REQUEST_TIMEOUT));
    Router::new()
        .route("/", any(answer))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            case,
            refuse_declared_long_body,
        ))
        .layer(limits)
        .with_state(state)
}
