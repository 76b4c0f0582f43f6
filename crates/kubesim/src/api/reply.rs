//! Building blocks every handler shares: query parameters, the content-type check, JSON and
//! `Status` answers, and streaming answers (watches, followed logs).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::status::ApiError;

/// Query parameters of a request.
pub(super) type Params = HashMap<String, String>;

/// A `Status` answer for `error`, with its HTTP code.
pub(super) fn error_response(error: ApiError) -> Response {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.to_status(), &[])
}

/// A JSON answer, with each warning as a `Warning: 299` header.
pub(super) fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response();
    for warning in warnings {
        let text = format!("299 - {}", Value::String(warning.clone()));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// `200 OK` with a JSON body.
pub(super) fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, value, &[]))
}

/// Whether a boolean query parameter is set (`true` or `1`).
pub(super) fn bool_param(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true" || v == "1")
}

/// An integer query parameter; `400 BadRequest` if it is not one.
pub(super) fn number_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("{name}: invalid integer {v:?}")))
        })
        .transpose()
}

/// The request's content type (JSON when absent), if it is one of `allowed`; else `415`.
pub(super) fn check_json_content_type(headers: &HeaderMap, allowed: &[&str]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if allowed.contains(&content_type.as_str()) {
        Ok(content_type)
    } else {
        Err(ApiError::unsupported_media_type(&content_type))
    }
}

/// A streaming answer fed by `rx` until the sender side is dropped.
pub(super) fn streaming(rx: mpsc::Receiver<Bytes>, content_type: &'static str) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}
