//! Strict request bodies: a route that takes a JSON body accepts only requests that say so.
//!
//! Parsing any body as JSON whatever its `Content-Type` lets a plain HTML `<form>` (which can
//! only send `text/plain`, `application/x-www-form-urlencoded` or `multipart/form-data`, and
//! needs no CORS preflight) post JSON-looking data to the API: the classic CSRF vector.
//! Requiring `application/json` (or a `+json` type) closes it, since a cross-origin page can
//! only send those after a CORS preflight the server controls.

use http::HeaderMap;

use crate::error::PikkuError;

/// Whether `value` (a `Content-Type` header) names JSON: `application/json` or
/// `application/<anything>+json`, parameters (`; charset=utf-8`) allowed.
///
/// ```
/// use pikku::content_type::is_json;
/// assert!(is_json("application/json; charset=utf-8"));
/// assert!(is_json("Application/Merge-Patch+JSON"));
/// assert!(!is_json("text/plain"));
/// assert!(!is_json("application/x-www-form-urlencoded"));
/// ```
pub fn is_json(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || (subtype.len() > 5
                && subtype
                    .get(subtype.len() - 5..)
                    .is_some_and(|s| s.eq_ignore_ascii_case("+json"))))
}

/// Lets a request to a JSON-body route through, or answers 415 naming what was expected.
///
/// A request with no `Content-Type` and an empty body passes (there is nothing to parse, e.g.
/// a `fetch` POST without a body); anything else must say it is JSON.
pub(crate) fn require_json(headers: &HeaderMap, body_is_empty: bool) -> Result<(), PikkuError> {
    let sent = headers.get(http::header::CONTENT_TYPE);
    match sent {
        None if body_is_empty => Ok(()),
        Some(v) if v.to_str().is_ok_and(is_json) => Ok(()),
        None => Err(PikkuError::unsupported_media_type(
            "this route takes a JSON body: send `Content-Type: application/json` \
             (the request had no Content-Type)",
        )),
        Some(v) => {
            let got = v
                .to_str()
                .ok()
                .map(|s| s.split(';').next().unwrap_or("").trim())
                .filter(|s| {
                    s.len() <= 100
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"/+-.".contains(&b))
                })
                .unwrap_or("another type");
            Err(PikkuError::unsupported_media_type(format!(
                "this route takes a JSON body: send `Content-Type: application/json` (got `{got}`)"
            )))
        }
    }
}
