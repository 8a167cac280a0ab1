//! API errors: the status code and a JSON body that names the field at fault.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a northbound request. Nothing is stored when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is malformed or a field is invalid.
    #[error("{field}: {message}")]
    BadRequest {
        /// The field at fault, as a JSON path (`port.fixed_ips[0].ip_address`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 404: a resource named in the path or body does not exist.
    #[error("{field}: {kind} {id} not found")]
    NotFound {
        /// Where the id came from.
        field: String,
        /// The kind of resource.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// 409: the request conflicts with what exists (duplicate id, CIDR overlap, exhausted subnet,
    /// address in use, resource in use).
    #[error("{field}: {message}")]
    Conflict {
        /// The field at fault.
        field: String,
        /// The conflict.
        message: String,
    },
}

impl ApiError {
    /// A 400 for `field`.
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A 404 for an id found at `field`.
    pub fn not_found(field: impl Into<String>, kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            field: field.into(),
            kind,
            id: id.into(),
        }
    }

    /// A 409 for `field`.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
        }
    }

    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            Self::BadRequest { field, .. } | Self::NotFound { field, .. } | Self::Conflict { field, .. } => field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match &self {
            Self::BadRequest { .. } => "BadRequest",
            Self::NotFound { .. } => "NotFound",
            Self::Conflict { .. } => "Conflict",
        };
        let body = json!({ "error": { "type": kind, "field": self.field(), "message": self.to_string() } });
        (self.status(), Json(body)).into_response()
    }
}
