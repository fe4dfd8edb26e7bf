//! Errors as `application/problem+json` with a stable upper-snake `code`, and the
//! request extractors that turn malformed input into such errors (never into
//! axum's plain-text rejections).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use atlas_journal::SubmitError;
use atlas_store::DbError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation (never secrets, never internals).
    pub detail: String,
    /// Seconds to wait before retrying, for 429 and 503.
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    /// An error with a status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError { status, code, detail: detail.into(), retry_after_s: None }
    }
    /// 400 VALIDATION_FAILED.
    pub fn validation(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", detail)
    }
    /// 404 with a code.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, detail)
    }
    /// 401 UNAUTHENTICATED.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "missing, invalid or expired credentials")
    }
    /// 403 FORBIDDEN.
    pub fn forbidden() -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "this credential may not do that")
    }
    /// 503 STORAGE_UNAVAILABLE with Retry-After.
    pub fn storage_unavailable() -> ApiError {
        ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "STORAGE_UNAVAILABLE",
                "storage is unavailable; retry",
            )
        }
    }
    /// 500 for what should not happen; the detail stays generic.
    pub fn internal() -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error")
    }
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

/// An error answer: RFC 9457 problem details (`application/problem+json`) with
/// Atlas's stable upper-snake `code`, which clients match on.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "https://atlas.exchange/problems/order-not-found", "title": "Not Found", "status": 404, "detail": "no such order", "code": "ORDER_NOT_FOUND"}))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people (never secrets or internals).
    pub detail: String,
    /// The stable machine-readable code, e.g. `VALIDATION_FAILED`, `ORDER_NOT_FOUND`.
    pub code: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!(
                "https://atlas.exchange/problems/{}",
                self.code.to_ascii_lowercase().replace('_', "-")
            ),
            title: title(self.status),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match e {
            SubmitError::StorageUnavailable => ApiError::storage_unavailable(),
            SubmitError::Overloaded | SubmitError::Stopped => ApiError {
                retry_after_s: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", "the exchange is busy; retry")
            },
            SubmitError::InvalidClientOrderId => {
                ApiError::validation("clientOrderId must be 1 to 64 printable ASCII characters")
            }
            SubmitError::Risk(r) => {
                let status = match r {
                    atlas_journal::risk::RiskReject::Killed => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, r.code(), r.to_string())
            }
            SubmitError::ClientOrderIdsExhausted => ApiError {
                retry_after_s: Some(60),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "CLIENT_ORDER_IDS_EXHAUSTED",
                    "too many client order ids today; send orders without one",
                )
            },
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Storage(_) => ApiError::storage_unavailable(),
            DbError::Duplicate => ApiError::new(StatusCode::CONFLICT, "DUPLICATE", "already exists"),
            DbError::MissingReference => ApiError::validation("a referenced resource does not exist"),
        }
    }
}

/// A JSON body, refused with problem+json when malformed, of the wrong type,
/// too large, or carrying unknown fields (`deny_unknown_fields` on every DTO).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "the body must be application/json",
            )),
            Err(JsonRejection::BytesRejection(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "the body is too large"),
            ),
            Err(e) => Err(ApiError::validation(e.body_text())),
        }
    }
}

/// Query parameters, refused with problem+json when malformed or unknown.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|e: QueryRejection| ApiError::validation(e.body_text()))
    }
}

/// Path parameters, refused with problem+json when malformed.
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Id(p.0))
            .map_err(|e: PathRejection| ApiError::validation(e.body_text()))
    }
}
