//! The optional request-signing layer (reference section 6): both schemes the platform's SDKs
//! sign with, RPC v1 (HMAC-SHA1 over the sorted parameters) and V3 (`ACS3-HMAC-SHA256` over a
//! canonical request), plus the time window and the nonce replay cache they share.
//!
//! [`Verifier::verify`] runs before any rule of reference section 3. The free functions
//! [`percent_encode`], [`sign_rpc_v1`] and [`sign_v3`] are the signing side, for clients and
//! tests.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use ota_index::rpc::signature::{sign_rpc_v1, SignedRequest, Verifier};
//!
//! let mut params = vec![
//!     ("AccessKeyId", "testid"),
//!     ("Action", "ListOTAUnfinishedTaskByDevice"),
//!     ("IotId", "dev-1"),
//!     ("SignatureMethod", "HMAC-SHA1"),
//!     ("SignatureNonce", "5b1c2a7e"),
//!     ("Timestamp", "2024-11-12T08:00:00Z"),
//! ];
//! let signature = sign_rpc_v1("GET", &params, "testsecret");
//! params.push(("Signature", &signature));
//!
//! let verifier = Verifier::new([("testid".to_string(), "testsecret".to_string())]);
//! let request = SignedRequest { method: "GET", query_params: &params, body_params: &[], headers: &[], body: b"" };
//! let now = UNIX_EPOCH + Duration::from_secs(1_731_398_460); // 2024-11-12T08:01:00Z
//! assert!(verifier.verify(&request, now).is_ok());
//! // The same request again is a replay.
//! assert_eq!(verifier.verify(&request, now).unwrap_err().code.as_str(), "SignatureNonceUsed");
//! ```

use std::collections::HashMap;

mod nonce;
mod v1;
mod v3;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Timestamp;
use crate::rpc::error::{ErrorCode, RpcError};
use nonce::{nonce_digest, NonceCache, NonceOutcome};
use v3::V3_ALGORITHM;

pub use v1::{percent_encode, sign_rpc_v1};
pub use v3::sign_v3;

/// The time window of reference section 6: ±15 minutes around the server clock.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Default bound on the nonces remembered at once (about 80 bytes each, so about 8 MB): room
/// for a sustained 110 signed requests a second over a 15-minute window.
pub const DEFAULT_NONCE_CAPACITY: usize = 100_000;

/// Most parameters (query and form body together) a signed request may carry.
pub const MAX_PARAMS: usize = 1_000;

/// Most headers a signed request may carry.
pub const MAX_HEADERS: usize = 1_000;

/// Longest `Authorization` header accepted, in bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 4_096;

/// Most header names a V3 `SignedHeaders` list may name.
pub const MAX_SIGNED_HEADERS: usize = 100;

/// A received request, as much of it as the signature layer reads. Everything is borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method as received (`GET`, `POST`); signed as is.
    pub method: &'a str,
    /// The decoded (form-urlencoded) pairs of the query string, in received order.
    pub query_params: &'a [(&'a str, &'a str)],
    /// The decoded pairs of an `application/x-www-form-urlencoded` body, in received order
    /// (RPC v1 signs them with the query parameters; V3 signs the body's hash instead).
    pub body_params: &'a [(&'a str, &'a str)],
    /// The request headers; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The raw body (V3 hashes it).
    pub body: &'a [u8],
}

/// Checks request signatures against a fixed set of access keys and remembers the nonces of
/// the requests it accepted. `Send + Sync`: share one behind an `Arc`.
///
/// # Order of checks
///
/// The first failing check decides the error, always in this order:
///
/// 1. limits: over [`MAX_PARAMS`] parameters, [`MAX_HEADERS`] headers, or two
///    `Authorization` headers → `InvalidParameter`;
/// 2. the scheme: an `Authorization` header opening with `ACS3-HMAC-SHA256` is V3 (and over
///    [`MAX_AUTHORIZATION_LEN`] bytes → `InvalidParameter`), anything else RPC v1;
/// 3. presence: RPC v1 `AccessKeyId`, `Signature`, `SignatureNonce`, `Timestamp` (V3: the
///    `Credential`, `SignedHeaders`, `Signature` of `Authorization`, then the headers
///    `x-acs-date`, `x-acs-signature-nonce`, `x-acs-content-sha256`); absent or empty →
///    `MissingParameter`, given twice → `InvalidParameter`;
/// 4. RPC v1 only: a `SignatureMethod` other than `HMAC-SHA1` → `InvalidParameter` (the
///    request is well formed but asks for an algorithm this server does not offer; saying so
///    helps the client more than a `SignatureDoesNotMatch` would);
/// 5. the timestamp's format → `InvalidTimeStamp.Format`;
/// 6. the access key → `InvalidAccessKeyId.NotFound` (before any HMAC is computed, so the
///    answer's timing depends on no secret);
/// 7. the signature → `SignatureDoesNotMatch` (V3 also: every header named in `SignedHeaders`
///    present once, the three `x-acs-*` headers above among them, and `x-acs-content-sha256`
///    equal to the body's hash); compared in constant time;
/// 8. the time window (default ±15 minutes, bounds included) → `InvalidTimeStamp.Expired`;
/// 9. the nonce → `SignatureNonceUsed`.
///
/// Checking the window after the signature means only a holder of the secret learns that its
/// clock is off, and nothing about the server clock leaks to anyone else.
///
/// # The nonce cache
///
/// A nonce is recorded, per access key, only once the signature and the window passed. It is
/// remembered until the request carrying it could no longer pass the window (its timestamp
/// plus the window), then purged; purging runs on each record, oldest expiry first, so memory
/// is bounded by the requests accepted within one window. The cache is also bounded in
/// entries ([`Verifier::with_nonce_capacity`]): when it is full of unexpired nonces a new
/// request is refused with `iot.system.SystemException` (HTTP 500, retry later). It never
/// evicts an unexpired nonce, since that would let a replay through; only holders of a valid
/// key can fill it, so the refusal is a capacity limit rather than an open denial of service.
/// Entries are 16-byte SHA-256 digests of (access key id, nonce), so a long nonce costs no
/// memory; a digest collision could only refuse a request, never admit a replay.
pub struct Verifier {
    /// Access key id → secret.
    secrets: HashMap<String, String>,
    /// Half-width of the accepted time window.
    window: Duration,
    /// Most unexpired nonces remembered at once.
    nonce_capacity: usize,
    /// One lock around a small critical section (purge, probe, insert): simpler than a
    /// sharded map, and the expiry order needs one global view anyway.
    nonces: NonceCache,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets.
        f.debug_struct("Verifier")
            .field("access_keys", &self.secrets.len())
            .field("window", &self.window)
            .field("nonce_capacity", &self.nonce_capacity)
            .field("nonces_held", &self.nonces.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting these (access key id, secret) pairs; a later pair for the same id
    /// replaces the earlier one. Window [`DEFAULT_WINDOW`], capacity
    /// [`DEFAULT_NONCE_CAPACITY`].
    pub fn new(keys: impl IntoIterator<Item = (String, String)>) -> Verifier {
        Verifier {
            secrets: keys.into_iter().collect(),
            window: DEFAULT_WINDOW,
            nonce_capacity: DEFAULT_NONCE_CAPACITY,
            nonces: NonceCache::default(),
        }
    }

    /// Accept timestamps at most `window` away from `now`, either direction.
    pub fn with_window(mut self, window: Duration) -> Verifier {
        self.window = window;
        self
    }

    /// Remember at most `n` unexpired nonces; when full, requests are refused (see the
    /// type's documentation). `0` refuses every request.
    pub fn with_nonce_capacity(mut self, n: usize) -> Verifier {
        self.nonce_capacity = n;
        self
    }

    /// Checks the request's signature, timestamp and nonce as received at `now`, and on
    /// success records its nonce. The errors and their order are in the type's documentation.
    pub fn verify(&self, req: &SignedRequest<'_>, now: SystemTime) -> Result<(), RpcError> {
        let param_count = req.query_params.len().saturating_add(req.body_params.len());
        if param_count > MAX_PARAMS {
            return Err(invalid(format!(
                "The request carries {param_count} parameters; at most {MAX_PARAMS} are accepted."
            )));
        }
        if req.headers.len() > MAX_HEADERS {
            return Err(invalid(format!(
                "The request carries {} headers; at most {MAX_HEADERS} are accepted.",
                req.headers.len()
            )));
        }
        let authorization = single_header(req.headers, "authorization")?;
        let verified = match authorization {
            Some(auth)
                if auth
                    .trim_start_matches([' ', '\t'])
                    .starts_with(V3_ALGORITHM) =>
            {
                self.verify_v3_signature(req, auth)?
            }
            _ => self.verify_v1_signature(req)?,
        };

        let now_ms = millis_since_epoch(now);
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let stamp_ms = verified.timestamp.as_millis();
        if stamp_ms.abs_diff(now_ms) > window_ms.unsigned_abs() {
            return Err(expired(
                verified.timestamp_name,
                verified.timestamp_text,
                self.window,
            ));
        }

        let digest = nonce_digest(verified.access_key_id, verified.nonce);
        let outcome = self.nonces.check_and_record(
            digest,
            stamp_ms.saturating_add(window_ms),
            now_ms,
            self.nonce_capacity,
        );
        match outcome {
            NonceOutcome::Recorded => Ok(()),
            NonceOutcome::Used => Err(RpcError::new(
                ErrorCode::SignatureNonceUsed,
                format!(
                    "The {} {:?} was already used by AccessKeyId {:?} within the last {} seconds; \
                     send a fresh random nonce with every request.",
                    verified.nonce_name,
                    verified.nonce,
                    verified.access_key_id,
                    self.window.as_secs()
                ),
            )),
            NonceOutcome::Stale => Err(expired(
                verified.timestamp_name,
                verified.timestamp_text,
                self.window,
            )),
            NonceOutcome::Full => Err(RpcError::new(
                ErrorCode::SystemException,
                format!(
                    "The server already remembers {} unexpired signature nonces, its limit; \
                     retry later.",
                    self.nonce_capacity
                ),
            )),
        }
    }

    /// The secret of an access key, or `InvalidAccessKeyId.NotFound`.
    fn secret_of(&self, access_key_id: &str, name: &str) -> Result<&str, RpcError> {
        self.secrets
            .get(access_key_id)
            .map(String::as_str)
            .ok_or_else(|| {
                RpcError::new(
                    ErrorCode::InvalidAccessKeyIdNotFound,
                    format!("The {name} {access_key_id:?} names no access key of this server."),
                )
            })
    }
}

/// What a verified signature vouches for; the window and nonce checks read it.
pub(super) struct Verified<'a> {
    access_key_id: &'a str,
    nonce: &'a str,
    /// The nonce parameter's name in this scheme, for messages.
    nonce_name: &'static str,
    timestamp: Timestamp,
    /// The timestamp parameter's name in this scheme, for messages.
    timestamp_name: &'static str,
    timestamp_text: &'a str,
}

/// The value of the one parameter named `name`: `None` when absent, `InvalidParameter` when
/// given twice.
pub(super) fn single_param<'a, 'p>(
    params: impl Iterator<Item = &'p (&'a str, &'a str)>,
    name: &str,
) -> Result<Option<&'a str>, RpcError>
where
    'a: 'p,
{
    let mut found = None;
    for &(key, value) in params {
        if key == name && found.replace(value).is_some() {
            return Err(invalid(format!(
                "The parameter {name} is given more than once."
            )));
        }
    }
    Ok(found)
}

pub(super) fn required_param<'a, 'p>(
    params: impl Iterator<Item = &'p (&'a str, &'a str)>,
    name: &str,
) -> Result<&'a str, RpcError>
where
    'a: 'p,
{
    match single_param(params, name)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(missing(name)),
    }
}

/// The value of the one header named `name` (lower case), matched ignoring ASCII case:
/// `None` when absent, `InvalidParameter` when given twice.
pub(super) fn single_header<'a>(
    headers: &[(&'a str, &'a str)],
    name: &str,
) -> Result<Option<&'a str>, RpcError> {
    let mut found = None;
    for &(key, value) in headers {
        if key.eq_ignore_ascii_case(name) && found.replace(value).is_some() {
            return Err(invalid(format!(
                "The header {name} is given more than once."
            )));
        }
    }
    Ok(found)
}

pub(super) fn required_header<'a>(
    headers: &[(&'a str, &'a str)],
    name: &str,
) -> Result<&'a str, RpcError> {
    match single_header(headers, name)?.map(trim_header) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(missing(name)),
    }
}

/// Header values lose their optional whitespace (RFC 9110 OWS: spaces and tabs).
pub(super) fn trim_header(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// `YYYY-MM-DDThh:mm:ssZ` with optional fractional seconds; digits past the millisecond
/// (up to nine in all) are accepted and dropped.
pub(super) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    const SHORTEST_WITH_MICROS: usize = "YYYY-MM-DDThh:mm:ss.ffffZ".len();
    const LONGEST: usize = "YYYY-MM-DDThh:mm:ss.fffffffffZ".len();
    if text.len() < SHORTEST_WITH_MICROS {
        return Timestamp::parse(text);
    }
    let b = text.as_bytes();
    let fraction_ok = b.len() <= LONGEST
        && b[19] == b'.'
        && b[b.len() - 1] == b'Z'
        && b[20..b.len() - 1].iter().all(u8::is_ascii_digit);
    if !fraction_ok || !b[..19].is_ascii() {
        return None;
    }
    // ASCII up to the fraction, so byte 23 is a character boundary.
    let mut millis = String::with_capacity(24);
    millis.push_str(&text[..23]);
    millis.push('Z');
    Timestamp::parse(&millis)
}

pub(super) fn millis_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

pub(super) fn invalid(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::InvalidParameter, message)
}

pub(super) fn missing(name: impl fmt::Display) -> RpcError {
    RpcError::new(
        ErrorCode::MissingParameter,
        format!("The input parameter {name} that is mandatory for processing this request is not supplied."),
    )
}

pub(super) fn mismatch(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::SignatureDoesNotMatch, message)
}

pub(super) fn bad_timestamp_format(name: &str, text: &str) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidTimeStampFormat,
        format!("The {name} {text:?} is not in the format YYYY-MM-DDThh:mm:ssZ (UTC, fractional seconds allowed)."),
    )
}

pub(super) fn expired(name: &str, text: &str, window: Duration) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidTimeStampExpired,
        format!(
            "The {name} {text:?} is more than {} seconds away from the server clock; sync the \
             client clock and sign again.",
            window.as_secs()
        ),
    )
}
