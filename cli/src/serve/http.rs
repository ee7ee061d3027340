//! HTTP plumbing: query strings, path segments, the request's host, bodies read with a size cap
//! and a deadline, and responses.
//!
//! Request and response bodies may hold secret values: both live in buffers that are wiped when
//! dropped ([`Zeroizing`]), grown without leaving copies behind in freed memory.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::{HeaderMap, Response, StatusCode, Uri};
use serde_json::Value;
use zeroize::Zeroizing;

use super::errors::ApiError;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(15);

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set); `None` for a bad escape or
/// bytes that are not UTF-8.
pub fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query parameters, decoded (the first of repeated names wins).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(uri: &Uri) -> Result<Query, ApiError> {
        let mut out = Vec::new();
        for part in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match (percent_decode(k, true), percent_decode(v, true)) {
                (Some(k), Some(v)) => out.push((k, v)),
                _ => return Err(ApiError::bad("The query string is not valid.")),
            }
        }
        Ok(Query(out))
    }

    /// The value of `name` (compared without regard to case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The host the client addressed, for absolute URLs: the `Host` header (or the URI's authority),
/// else `fallback`. Only characters of a host name, an IP literal and a port are accepted.
pub fn host(headers: &HeaderMap, uri: &Uri, fallback: &str) -> Result<String, ApiError> {
    let given = match headers.get(HOST) {
        Some(h) => Some(
            h.to_str()
                .map_err(|_| ApiError::bad("The Host header is not valid."))?
                .to_string(),
        ),
        None => uri.authority().map(|a| a.as_str().to_string()),
    };
    let Some(host) = given else {
        return Ok(fallback.to_string());
    };
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if ok {
        Ok(host)
    } else {
        Err(ApiError::bad("The Host header is not valid."))
    }
}

/// A buffer wiped when dropped.
pub type Wiped = Zeroizing<Vec<u8>>;

/// Appends `data` to `buf`; a full buffer moves to a larger one and the old one is wiped (a
/// `Vec` growing in place would leave copies in freed memory).
fn push_wiped(buf: &mut Wiped, data: &[u8]) {
    let need = buf.len() + data.len();
    if need > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(need.max(buf.capacity() * 2)));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

/// Reads a whole body of at most `limit` bytes within [`BODY_TIMEOUT`], into a buffer wiped
/// when dropped; the frames hyper hands over are wiped too where no other reference holds them.
pub async fn read_body(headers: &HeaderMap, body: Incoming, limit: u64) -> Result<Wiped, ApiError> {
    let mut expected = 0;
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| ApiError::bad("The Content-Length header is not valid."))?;
        if len > limit {
            return Err(ApiError::too_large(limit));
        }
        expected = usize::try_from(len).unwrap_or(0);
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let read = async move {
        let mut body = body;
        let mut buf: Wiped = Zeroizing::new(Vec::with_capacity(expected));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ApiError::bad("The request body could not be read."))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > cap {
                return Err(ApiError::too_large(limit));
            }
            push_wiped(&mut buf, &data);
            if let Ok(mut own) = data.try_into_mut() {
                own.fill(0);
            }
        }
        Ok(buf)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(ApiError::body_timeout()))
}

fn base(status: StatusCode, body: Bytes, json: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if json {
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    // Bodies may hold secret values: no cache keeps them.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A response whose JSON body is `body`, wiped once hyper has sent it and dropped it.
pub fn json_body(status: StatusCode, body: Wiped) -> Response<Full<Bytes>> {
    base(status, Bytes::from_owner(body), true)
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    json_body(status, super::json::render(value, None))
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    base(status, Bytes::new(), false)
}

/// The response of an error; a 401 carries the bearer challenge.
pub fn error(e: &ApiError, challenge: &str) -> Response<Full<Bytes>> {
    let mut r = json(e.status, &e.body());
    if e.status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(challenge)
    {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%2Db", false).as_deref(), Some("a-b"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%ff", false), None);
        let q = Query::parse(
            &"/x?api-version=7.4&%24skiptoken=ab&maxresults=3&api-version=1"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(q.get("api-version"), Some("7.4"));
        assert_eq!(q.get("$skipToken"), Some("ab"));
        assert_eq!(q.get("maxresults"), Some("3"));
        assert_eq!(q.get("other"), None);
    }

    #[test]
    fn hosts() {
        let uri: Uri = "/secrets".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(host(&h, &uri, "127.0.0.1:1").unwrap(), "127.0.0.1:1");
        h.insert(HOST, HeaderValue::from_static("[::1]:8443"));
        assert_eq!(host(&h, &uri, "x").unwrap(), "[::1]:8443");
        h.insert(HOST, HeaderValue::from_static("evil.example/path"));
        assert!(host(&h, &uri, "x").is_err());
        h.insert(HOST, HeaderValue::from_static("a@b"));
        assert!(host(&h, &uri, "x").is_err());
    }
}
