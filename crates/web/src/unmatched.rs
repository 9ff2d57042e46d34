//! What a request that no route serves gets, in the language of where it was sent: under
//! `/api/v1` the API's error shape (`{"error":{"code","message"}}`), under `/fhir/R4` an
//! OperationOutcome, and the HTML page everywhere else. An unknown path is a 404; a known path
//! with a method it does not take is a 405 that keeps axum's `Allow` header.

use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, AppError};
use crate::fhir::FhirError;
use crate::html::PageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Api,
    Fhir,
    Pages,
}

fn area(path: &str) -> Area {
    let under = |root: &str| path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'));
    if under("/api/v1") {
        Area::Api
    } else if under("/fhir/R4") {
        Area::Fhir
    } else {
        Area::Pages
    }
}

fn refusal(area: Area, e: AppError) -> Response {
    match area {
        Area::Api => ApiError(e).into_response(),
        Area::Fhir => FhirError::from(e).into_response(),
        Area::Pages => PageError(e).into_response(),
    }
}

/// The router's fallback: no route has this path.
pub async fn not_found(uri: Uri) -> Response {
    refusal(area(uri.path()), AppError::NotFound)
}

/// Gives the empty 405 axum answers for a method a path does not take the body of its area.
pub async fn method_not_allowed(req: Request, next: Next) -> Response {
    let area = area(req.uri().path());
    let resp = next.run(req).await;
    let bare = resp.status() == StatusCode::METHOD_NOT_ALLOWED && resp.body().size_hint().exact() == Some(0);
    if !bare || area == Area::Pages {
        return resp;
    }
    let mut out = refusal(area, AppError::MethodNotAllowed);
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_area_is_its_prefix_and_nothing_that_only_starts_alike() {
        assert_eq!(area("/api/v1/nowhere"), Area::Api);
        assert_eq!(area("/api/v1"), Area::Api);
        assert_eq!(area("/api/v10/x"), Area::Pages);
        assert_eq!(area("/fhir/R4/Nothing/1/2"), Area::Fhir);
        assert_eq!(area("/fhir/R4b"), Area::Pages);
        assert_eq!(area("/patients/x"), Area::Pages);
    }
}
