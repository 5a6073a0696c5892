//! Request bodies and their validation. Every message names the field and
//! the reason, and a refused request changes nothing.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, ApiResult};

/// `Json<T>` whose rejections use the API's error shape (400, with the
/// failing field's path in the message). An empty body reads as `{}`, so
/// calls whose fields are all optional need no body.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let is_json = is_json(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("unreadable body: {}", e.body_text())))?;
        if bytes.is_empty() {
            return Json::<T>::from_bytes(b"{}")
                .map(|Json(v)| Self(v))
                .map_err(|e| json_error(&e));
        }
        if !is_json {
            return Err(ApiError::bad_request(
                "the body must be JSON with `Content-Type: application/json`",
            ));
        }
        Json::<T>::from_bytes(&bytes)
            .map(|Json(v)| Self(v))
            .map_err(|e| json_error(&e))
    }
}

/// `application/json` or `application/*+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a body that may be empty (`None` when it is).
pub fn optional_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<Option<T>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Json::<T>::from_bytes(bytes)
        .map(|Json(v)| Some(v))
        .map_err(|e| json_error(&e))
}

fn json_error(e: &JsonRejection) -> ApiError {
    let text = e.body_text();
    let detail = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, rest)| rest)
        .to_owned();
    let message = match e {
        JsonRejection::JsonSyntaxError(_) => format!("the body is not valid JSON: {detail}"),
        _ => format!("invalid body: {detail}"),
    };
    ApiError::bad_request(message)
}

/// For PATCH fields where `null` clears and absence keeps:
/// absent → `None`, `null` → `Some(None)`, value → `Some(Some(v))`.
/// Use with `#[serde(default, deserialize_with = "double_option")]`.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A display name: trimmed, 1 to 100 characters.
pub fn name(field: &str, value: &str) -> ApiResult<String> {
    let v = value.trim();
    let len = v.chars().count();
    if len == 0 {
        return Err(ApiError::bad_request(format!("{field} must not be empty")));
    }
    if len > 100 {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most 100 characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(v.to_owned())
}

/// An email address, lower-cased: one `@`, a local part, a dotted domain.
pub fn email(field: &str, value: &str) -> ApiResult<String> {
    let v = value.trim().to_lowercase();
    let bad = || ApiError::bad_request(format!("{field} is not a valid email address"));
    if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = v.split_once('@').ok_or_else(bad)?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || !domain_ok {
        return Err(bad());
    }
    Ok(v)
}

/// Fewest characters of a password.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most characters of a password, to bound hashing work.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The zxcvbn score a password needs: an estimate of 10^10 guesses or
/// more, which three common words reach and two words, or a word with
/// digits, do not. (Below it zxcvbn rates nearly any 10 characters that
/// match no known pattern as 10^8.)
const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Four;

/// A password someone may set: 10 to 1024 characters and hard enough to
/// guess by zxcvbn's estimate, which also counts `personal` words (the
/// email, the name) as easy. A refusal is 400 `weak_password` saying why.
pub fn password(field: &str, value: &str, personal: &[&str]) -> ApiResult<()> {
    let weak = |why: String| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "weak_password",
            format!("{field} is too weak: {why}"),
        )
    };
    let len = value.chars().count();
    if len > MAX_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    if len < MIN_PASSWORD_CHARS {
        return Err(weak(format!(
            "it must be at least {MIN_PASSWORD_CHARS} characters; a few unrelated words make a good one"
        )));
    }
    let estimate = zxcvbn::zxcvbn(value, personal);
    if estimate.score() >= MIN_PASSWORD_SCORE {
        return Ok(());
    }
    let feedback = estimate.feedback();
    let mut why: Vec<String> = Vec::new();
    if let Some(warning) = feedback.and_then(|f| f.warning()) {
        why.push(warning.to_string());
    }
    why.extend(
        feedback
            .map(|f| f.suggestions())
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string),
    );
    if why.is_empty() {
        why.push("it is easy to guess; add another word or two".to_owned());
    }
    Err(weak(why.join(" ")))
}

/// A list of short strings (model names, globs): at most `max_items`
/// entries of 1 to 200 characters each.
pub fn string_list(field: &str, values: &[String], max_items: usize) -> ApiResult<Vec<String>> {
    if values.len() > max_items {
        return Err(ApiError::bad_request(format!(
            "{field} may hold at most {max_items} entries"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 200 {
            return Err(ApiError::bad_request(format!(
                "{field}[{i}] must be 1 to 200 characters"
            )));
        }
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    Ok(out)
}

/// An `http://` or `https://` URL with a host, without a trailing slash.
pub fn http_url(field: &str, value: &str) -> ApiResult<String> {
    url_with_schemes(field, value, &["http", "https"])
}

/// A URL whose scheme is one of `schemes` and that has a host.
pub fn url_with_schemes(field: &str, value: &str, schemes: &[&str]) -> ApiResult<String> {
    let v = value.trim();
    let reason = format!("{field} must be a {} URL", schemes.join("/"));
    let (scheme, rest) = v
        .split_once("://")
        .ok_or_else(|| ApiError::bad_request(reason.clone()))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if !schemes.iter().any(|s| scheme.eq_ignore_ascii_case(s))
        || host.is_empty()
        || host.starts_with(':')
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
        || v.len() > 2048
    {
        return Err(ApiError::bad_request(reason));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("email", " A@B.io ").ok().as_deref(), Some("a@b.io"));
        for bad in [
            "", "a", "a@b", "@b.io", "a@@b.io", "a b@c.io", "a@.io", "a@b..io",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            http_url("baseUrl", "https://x.io/api/").ok().as_deref(),
            Some("https://x.io/api")
        );
        assert!(http_url("baseUrl", "ftp://x.io").is_err());
        assert!(http_url("baseUrl", "https://").is_err());
        assert!(http_url("baseUrl", "x.io").is_err());
        assert!(url_with_schemes("proxy", "socks5://u:p@h:1080", &["socks5"]).is_ok());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in [
            "12345678",
            "password",
            "aaaaaaaa",
            "        ",
            "password123",
            "1234567890",
            "aaaaaaaaaaaa",
            "qwertyuiop",
            "passwordpassword",
            "monkey banana",
            "Summer2024!",
        ] {
            let e = password("password", weak, &[]).err();
            let e = e.unwrap_or_else(|| panic!("`{weak}` was accepted"));
            assert_eq!(e.code, "weak_password", "{weak}");
            assert!(
                e.message.len() > "password is too weak: ".len(),
                "{}",
                e.message
            );
        }
        let short = password("password", "Xk9#", &[]).err().map(|e| e.message);
        assert!(short.is_some_and(|m| m.contains("at least 10")));
        for strong in [
            "correct horse battery",
            "correct horse battery staple",
            "violet-tractor-umbrella",
        ] {
            assert!(password("password", strong, &[]).is_ok(), "{strong}");
        }
        assert!(password("password", &"x".repeat(1025), &[]).is_err());
    }

    #[test]
    fn a_password_made_of_the_email_is_weak() {
        let words = [
            "margaret.hamilton@apollo.example",
            "margaret",
            "hamilton",
            "apollo",
        ];
        let own_email = "margaret.hamilton@apollo.example";
        assert!(password("password", own_email, &words).is_err());
        assert!(password("password", own_email, &[]).is_ok());
    }

    #[test]
    fn names_and_lists() {
        assert!(name("name", "  ").is_err());
        assert!(name("name", &"x".repeat(101)).is_err());
        assert_eq!(name("name", " ok ").ok().as_deref(), Some("ok"));
        let l = string_list("models", &["a".into(), "a".into(), "b".into()], 5);
        assert_eq!(l.ok(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(string_list("models", &[String::new()], 5).is_err());
    }
}
