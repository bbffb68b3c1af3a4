//! The optional request-signing layer (contract section 6): both schemes the platform's SDKs
//! sign with, RPC v1 (HMAC-SHA1 over the sorted parameters) and V3 (`ACS3-HMAC-SHA256` over a
//! canonical request), plus the time window and the nonce replay cache they share.
//!
//! [`Verifier::verify`] runs before any rule of contract section 3. The free functions
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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::Timestamp;
use crate::rpc::{ErrorCode, RpcError};

/// The time window of contract section 6: ±15 minutes around the server clock.
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

/// The V3 algorithm name, which opens its `Authorization` header.
const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// The headers a V3 request must carry and sign: without the date and nonce signed, a replay
/// with a fresh nonce would verify.
const V3_REQUIRED_HEADERS: [&str; 3] = [
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

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
    nonces: Mutex<NonceCache>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secrets.
        f.debug_struct("Verifier")
            .field("access_keys", &self.secrets.len())
            .field("window", &self.window)
            .field("nonce_capacity", &self.nonce_capacity)
            .field("nonces_held", &self.nonces.lock().seen.len())
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
            nonces: Mutex::new(NonceCache::default()),
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
        let outcome = self.nonces.lock().check_and_record(
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

    /// Steps 3–7 of the check order for RPC v1.
    fn verify_v1_signature<'a>(&self, req: &SignedRequest<'a>) -> Result<Verified<'a>, RpcError> {
        let params = || req.query_params.iter().chain(req.body_params.iter());
        let access_key_id = required_param(params(), "AccessKeyId")?;
        let signature = required_param(params(), "Signature")?;
        let nonce = required_param(params(), "SignatureNonce")?;
        let timestamp_text = required_param(params(), "Timestamp")?;
        if let Some(method) = single_param(params(), "SignatureMethod")? {
            if method != "HMAC-SHA1" {
                return Err(invalid(format!(
                    "The SignatureMethod {method:?} is not supported; sign with HMAC-SHA1."
                )));
            }
        }
        let timestamp = parse_timestamp(timestamp_text)
            .ok_or_else(|| bad_timestamp_format("Timestamp", timestamp_text))?;
        let secret = self.secret_of(access_key_id, "AccessKeyId")?;

        let expected = base64::engine::general_purpose::STANDARD.encode(rpc_v1_mac(
            req.method,
            params(),
            secret,
        ));
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return Err(mismatch(format!(
                "The Signature does not match the one computed for AccessKeyId {access_key_id:?}; \
                 check the secret and the string to sign ({}&%2F&<encoded sorted parameters>).",
                req.method
            )));
        }
        Ok(Verified {
            access_key_id,
            nonce,
            nonce_name: "SignatureNonce",
            timestamp,
            timestamp_name: "Timestamp",
            timestamp_text,
        })
    }

    /// Steps 1 (the length limit), 3–7 of the check order for V3.
    fn verify_v3_signature<'a>(
        &self,
        req: &SignedRequest<'a>,
        authorization: &'a str,
    ) -> Result<Verified<'a>, RpcError> {
        if authorization.len() > MAX_AUTHORIZATION_LEN {
            return Err(invalid(format!(
                "The Authorization header is {} bytes long; at most {MAX_AUTHORIZATION_LEN} are \
                 accepted.",
                authorization.len()
            )));
        }
        let auth = parse_authorization(authorization)?;
        let date = required_header(req.headers, "x-acs-date")?;
        let nonce = required_header(req.headers, "x-acs-signature-nonce")?;
        let content_sha256 = required_header(req.headers, "x-acs-content-sha256")?;
        let timestamp =
            parse_timestamp(date).ok_or_else(|| bad_timestamp_format("x-acs-date", date))?;
        let secret = self.secret_of(auth.credential, "Credential")?;

        let mut signed_names = Vec::new();
        for name in auth.signed_headers.split(';') {
            let name = name.trim_matches([' ', '\t']);
            if name.is_empty() {
                return Err(mismatch("SignedHeaders names an empty header."));
            }
            if signed_names.len() == MAX_SIGNED_HEADERS {
                return Err(mismatch(format!(
                    "SignedHeaders names more than {MAX_SIGNED_HEADERS} headers."
                )));
            }
            signed_names.push(name.to_ascii_lowercase());
        }
        signed_names.sort_unstable();
        if let Some(pair) = signed_names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(mismatch(format!(
                "SignedHeaders names {:?} twice.",
                pair[0]
            )));
        }
        for required in V3_REQUIRED_HEADERS {
            if signed_names
                .binary_search_by(|n| n.as_str().cmp(required))
                .is_err()
            {
                return Err(mismatch(format!(
                    "SignedHeaders must name {required}, or a replayed request could not be \
                     told apart."
                )));
            }
        }
        let mut canonical_headers = Vec::with_capacity(signed_names.len());
        for name in &signed_names {
            match single_header(req.headers, name)? {
                Some(value) => canonical_headers.push((name.as_str(), trim_header(value))),
                None => {
                    return Err(mismatch(format!(
                        "The header {name} is named in SignedHeaders but absent from the request."
                    )))
                }
            }
        }
        let body_hash = hex::encode(Sha256::digest(req.body));
        if !content_sha256.eq_ignore_ascii_case(&body_hash) {
            return Err(mismatch(format!(
                "The x-acs-content-sha256 {content_sha256:?} is not the SHA-256 of the body \
                 ({body_hash})."
            )));
        }

        let expected = v3_mac(
            req.method,
            req.query_params,
            &canonical_headers,
            &body_hash,
            secret,
        );
        let mut provided = [0u8; 32];
        let decoded = hex::decode_to_slice(auth.signature, &mut provided).is_ok();
        if !(decoded && bool::from(expected.ct_eq(&provided))) {
            return Err(mismatch(format!(
                "The Signature of the Authorization header does not match the one computed for \
                 Credential {:?}; check the secret and the canonical request.",
                auth.credential
            )));
        }
        Ok(Verified {
            access_key_id: auth.credential,
            nonce,
            nonce_name: "x-acs-signature-nonce",
            timestamp,
            timestamp_name: "x-acs-date",
            timestamp_text: date,
        })
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
struct Verified<'a> {
    access_key_id: &'a str,
    nonce: &'a str,
    /// The nonce parameter's name in this scheme, for messages.
    nonce_name: &'static str,
    timestamp: Timestamp,
    /// The timestamp parameter's name in this scheme, for messages.
    timestamp_name: &'static str,
    timestamp_text: &'a str,
}

/// A SHA-256 digest of (access key id, nonce), truncated to 16 bytes.
type NonceDigest = [u8; 16];

/// The nonces of accepted requests with the instant (ms since the epoch) until which each is
/// kept.
struct NonceCache {
    /// Every digest held; exactly the digests of `by_expiry`.
    seen: HashSet<NonceDigest>,
    /// (keep until, digest), so that purging takes the earliest expiry first.
    by_expiry: BTreeSet<(i64, NonceDigest)>,
    /// The latest `now` seen; entries expiring before it are gone, so a request expiring
    /// before it is refused as stale even when its caller's `now` is a little older.
    high_water_ms: i64,
}

/// What the nonce cache made of a request.
#[derive(Debug, PartialEq, Eq)]
enum NonceOutcome {
    Recorded,
    Used,
    /// The request's window ended before the latest `now` the cache has seen.
    Stale,
    Full,
}

impl Default for NonceCache {
    /// Empty, having seen no time yet: even a clock before 1970 (negative milliseconds) is
    /// later than the high-water mark.
    fn default() -> NonceCache {
        NonceCache {
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
            high_water_ms: i64::MIN,
        }
    }
}

impl NonceCache {
    fn check_and_record(
        &mut self,
        digest: NonceDigest,
        keep_until_ms: i64,
        now_ms: i64,
        capacity: usize,
    ) -> NonceOutcome {
        self.high_water_ms = self.high_water_ms.max(now_ms);
        while let Some(&(until, oldest)) = self.by_expiry.first() {
            if until >= self.high_water_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&oldest);
        }
        if keep_until_ms < self.high_water_ms {
            NonceOutcome::Stale
        } else if self.seen.contains(&digest) {
            NonceOutcome::Used
        } else if self.seen.len() >= capacity {
            NonceOutcome::Full
        } else {
            self.seen.insert(digest);
            self.by_expiry.insert((keep_until_ms, digest));
            NonceOutcome::Recorded
        }
    }
}

fn nonce_digest(access_key_id: &str, nonce: &str) -> NonceDigest {
    let mut hasher = Sha256::new();
    // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    hasher.update((access_key_id.len() as u64).to_le_bytes());
    hasher.update(access_key_id.as_bytes());
    hasher.update(nonce.as_bytes());
    let full = hasher.finalize();
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

/// The parsed `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
struct V3Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Result<V3Authorization<'_>, RpcError> {
    let malformed = || {
        invalid(
            "The Authorization header is not `ACS3-HMAC-SHA256 Credential=<id>,\
             SignedHeaders=<h1;h2>,Signature=<hex>`.",
        )
    };
    let rest = header
        .trim_matches([' ', '\t'])
        .strip_prefix(V3_ALGORITHM)
        .ok_or_else(malformed)?;
    if !rest.starts_with([' ', '\t']) {
        return Err(malformed());
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim_matches([' ', '\t'])
            .split_once('=')
            .ok_or_else(malformed)?;
        // No value holds whitespace: a missing comma must not fold two parts into one.
        if value.contains([' ', '\t']) {
            return Err(malformed());
        }
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed()),
        };
        if slot.replace(value).is_some() {
            return Err(invalid(format!(
                "The Authorization header carries {key} twice."
            )));
        }
    }
    fn present<'v>(value: Option<&'v str>, key: &str) -> Result<&'v str, RpcError> {
        match value {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(missing(format!("{key} (in the Authorization header)"))),
        }
    }
    Ok(V3Authorization {
        credential: present(credential, "Credential")?,
        signed_headers: present(signed_headers, "SignedHeaders")?,
        signature: present(signature, "Signature")?,
    })
}

/// The value of the one parameter named `name`: `None` when absent, `InvalidParameter` when
/// given twice.
fn single_param<'a, 'p>(
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

fn required_param<'a, 'p>(
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
fn single_header<'a>(
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

fn required_header<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Result<&'a str, RpcError> {
    match single_header(headers, name)?.map(trim_header) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(missing(name)),
    }
}

/// Header values lose their optional whitespace (RFC 9110 OWS: spaces and tabs).
fn trim_header(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// `YYYY-MM-DDThh:mm:ssZ` with optional fractional seconds; digits past the millisecond
/// (up to nine in all) are accepted and dropped.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
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

fn millis_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

fn invalid(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::InvalidParameter, message)
}

fn missing(name: impl fmt::Display) -> RpcError {
    RpcError::new(
        ErrorCode::MissingParameter,
        format!("The input parameter {name} that is mandatory for processing this request is not supplied."),
    )
}

fn mismatch(message: impl Into<String>) -> RpcError {
    RpcError::new(ErrorCode::SignatureDoesNotMatch, message)
}

fn bad_timestamp_format(name: &str, text: &str) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidTimeStampFormat,
        format!("The {name} {text:?} is not in the format YYYY-MM-DDThh:mm:ssZ (UTC, fractional seconds allowed)."),
    )
}

fn expired(name: &str, text: &str, window: Duration) -> RpcError {
    RpcError::new(
        ErrorCode::InvalidTimeStampExpired,
        format!(
            "The {name} {text:?} is more than {} seconds away from the server clock; sync the \
             client clock and sign again.",
            window.as_secs()
        ),
    )
}

/// Appends `s` percent-encoded per RFC 3986 as the platform signs: the unreserved characters
/// `A-Z a-z 0-9 - _ . ~` are kept, every other byte of the UTF-8 becomes `%XX` in upper-case
/// hex (so a space is `%20`, `*` is `%2A`, `é` is `%C3%A9`).
///
/// ```
/// let mut out = String::new();
/// ota_index::rpc::signature::percent_encode("a b*~/é", &mut out);
/// assert_eq!(out, "a%20b%2A~%2F%C3%A9");
/// ```
pub fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(s.len());
    for &byte in s.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0F)]));
        }
    }
}

/// The canonical query of both schemes: the pairs sorted by name in byte order (ties by
/// value), each name and value percent-encoded, `k=v` joined by `&`; empty values kept.
fn canonical_query<'p>(pairs: impl Iterator<Item = &'p (&'p str, &'p str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = pairs.copied().collect();
    sorted.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(name, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// HMAC-SHA1 with key `secret&` over `METHOD&%2F&` + percentEncode(canonical query), the
/// pairs named `Signature` left out.
fn rpc_v1_mac<'p>(
    method: &str,
    params: impl Iterator<Item = &'p (&'p str, &'p str)>,
    secret: &str,
) -> [u8; 20] {
    let canonical = canonical_query(params.filter(|(name, _)| *name != "Signature"));
    let mut string_to_sign = String::with_capacity(method.len() + 5 + canonical.len() * 3);
    string_to_sign.push_str(method);
    string_to_sign.push_str("&%2F&");
    percent_encode(&canonical, &mut string_to_sign);

    // HMAC takes keys of every length (RFC 2104 hashes long keys and pads short ones), so
    // `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The RPC v1 signature: Base64(HMAC-SHA1(`secret&`, `METHOD&%2F&` +
/// percentEncode(canonical query))), the canonical query being every pair of `params` but
/// those named `Signature` (empty values included), sorted by name in byte order (ties by
/// value), each name and value percent-encoded ([`percent_encode`]), `k=v` joined by `&`.
///
/// ```
/// use ota_index::rpc::signature::sign_rpc_v1;
/// let params = [
///     ("AccessKeyId", "testid"), ("Action", "DescribeRegions"), ("Format", "XML"),
///     ("SignatureMethod", "HMAC-SHA1"), ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
///     ("SignatureVersion", "1.0"), ("Timestamp", "2016-02-23T12:46:24Z"), ("Version", "2014-05-26"),
/// ];
/// assert_eq!(sign_rpc_v1("GET", &params, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
/// ```
pub fn sign_rpc_v1(method: &str, params: &[(&str, &str)], secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(rpc_v1_mac(method, params.iter(), secret))
}

/// HMAC-SHA256 with key `secret` over `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical
/// request; `headers` are the signed headers, names lower case and sorted, values trimmed.
fn v3_mac(
    method: &str,
    query_params: &[(&str, &str)],
    headers: &[(&str, &str)],
    body_sha256_hex: &str,
    secret: &str,
) -> [u8; 32] {
    let mut canonical = String::new();
    canonical.push_str(method);
    canonical.push_str("\n/\n");
    canonical.push_str(&canonical_query(query_params.iter()));
    canonical.push('\n');
    for (name, value) in headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            canonical.push(';');
        }
        canonical.push_str(name);
    }
    canonical.push('\n');
    canonical.push_str(body_sha256_hex);

    let string_to_sign = format!(
        "{V3_ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    // See `rpc_v1_mac`: HMAC keys of every length are valid.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The V3 (`ACS3-HMAC-SHA256`) signature in lower-case hex.
///
/// CanonicalRequest = `METHOD\n/\n` + canonical query (as in [`sign_rpc_v1`], over
/// `query_params` only) + `\n` + one `name:value\n` per signed header + `\n` + the signed
/// names joined by `;` + `\n` + hex SHA-256 of `body`; the signature is
/// hex(HMAC-SHA256(`secret`, `ACS3-HMAC-SHA256\n` + hex SHA-256 of CanonicalRequest)).
/// `signed_headers` are lower-cased, sorted and deduplicated; each takes the value of the
/// first header of `headers` with that name in any case, spaces and tabs trimmed, or the
/// empty string when there is none.
pub fn sign_v3(
    method: &str,
    query_params: &[(&str, &str)],
    headers: &[(&str, &str)],
    signed_headers: &[&str],
    body: &[u8],
    secret: &str,
) -> String {
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();
    let canonical_headers: Vec<(&str, &str)> = names
        .iter()
        .map(|name| {
            let value = headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map_or("", |&(_, value)| trim_header(value));
            (name.as_str(), value)
        })
        .collect();
    let body_hash = hex::encode(Sha256::digest(body));
    hex::encode(v3_mac(
        method,
        query_params,
        &canonical_headers,
        &body_hash,
        secret,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_SIGNATURE: &str = "OLeaidS1JvxuMvnyHOwuJ+uX5qY=";
    const V3_SIGNATURE: &str = "617953fba9bef8c2d92a00fbf698a3d8e96e32e9a71766544f4ec23241653729";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn at(text: &str) -> SystemTime {
        let ms = Timestamp::parse(text).expect("test timestamp").as_millis();
        let since = Duration::from_millis(ms.unsigned_abs());
        if ms < 0 {
            UNIX_EPOCH - since
        } else {
            UNIX_EPOCH + since
        }
    }

    fn verifier() -> Verifier {
        Verifier::new([("testid".to_string(), "testsecret".to_string())])
    }

    fn v1_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
    }

    /// Verifies `params` (signed or not by the caller) as a GET with an empty body.
    fn verify_v1(v: &Verifier, params: &[(&str, &str)], now: &str) -> Result<(), RpcError> {
        let req = SignedRequest {
            method: "GET",
            query_params: params,
            body_params: &[],
            headers: &[],
            body: b"",
        };
        v.verify(&req, at(now))
    }

    /// `params` plus their correct signature.
    fn signed<'a>(
        params: &[(&'a str, &'a str)],
        signature: &'a mut String,
    ) -> Vec<(&'a str, &'a str)> {
        *signature = sign_rpc_v1("GET", params, "testsecret");
        let mut out = params.to_vec();
        out.push(("Signature", signature.as_str()));
        out
    }

    fn code(result: Result<(), RpcError>) -> ErrorCode {
        result.expect_err("the request should be refused").code
    }

    const V1_NOW: &str = "2016-02-23T12:50:00Z";

    #[test]
    fn percent_encoding() {
        let cases = [
            ("AZaz09-_.~", "AZaz09-_.~"),
            (" ", "%20"),
            ("*", "%2A"),
            ("+", "%2B"),
            ("/", "%2F"),
            ("=&%", "%3D%26%25"),
            ("é", "%C3%A9"),
            ("😀", "%F0%9F%98%80"),
            ("", ""),
        ];
        for (input, want) in cases {
            let mut out = String::from(">");
            percent_encode(input, &mut out);
            assert_eq!(out, format!(">{want}"), "{input:?}");
        }
    }

    #[test]
    fn rpc_v1_public_vector() {
        assert_eq!(sign_rpc_v1("GET", &v1_params(), "testsecret"), V1_SIGNATURE);
        // Order of the input does not matter; a Signature pair is ignored.
        let mut shuffled = v1_params();
        shuffled.reverse();
        shuffled.push(("Signature", "whatever"));
        assert_eq!(sign_rpc_v1("GET", &shuffled, "testsecret"), V1_SIGNATURE);
    }

    #[test]
    fn rpc_v1_verify_accepts_then_refuses_replay() {
        let v = verifier();
        let mut params = v1_params();
        params.push(("Signature", V1_SIGNATURE));
        assert_eq!(verify_v1(&v, &params, V1_NOW), Ok(()));
        assert_eq!(
            code(verify_v1(&v, &params, V1_NOW)),
            ErrorCode::SignatureNonceUsed
        );
        // Window bounds are inclusive, both directions.
        let v = verifier();
        assert_eq!(verify_v1(&v, &params, "2016-02-23T13:01:24Z"), Ok(()));
        let v = verifier();
        assert_eq!(verify_v1(&v, &params, "2016-02-23T12:31:24Z"), Ok(()));
    }

    #[test]
    fn rpc_v1_form_body_params_are_signed_too() {
        let v = verifier();
        let all = v1_params();
        let (query, body) = all.split_at(3);
        let mut query = query.to_vec();
        query.push(("Signature", V1_SIGNATURE));
        let req = SignedRequest {
            method: "GET",
            query_params: &query,
            body_params: body,
            headers: &[],
            body: b"",
        };
        assert_eq!(v.verify(&req, at(V1_NOW)), Ok(()));
        let req = SignedRequest {
            body_params: &body[1..],
            ..req
        };
        assert_eq!(
            code(v.verify(&req, at(V1_NOW))),
            ErrorCode::SignatureDoesNotMatch
        );
    }

    #[test]
    fn rpc_v1_refusals() {
        let mut params = v1_params();
        params.push(("Signature", V1_SIGNATURE));

        let far = [
            "2016-02-23T13:01:25Z",
            "2016-02-23T12:31:23Z",
            "2030-01-01T00:00:00Z",
        ];
        for now in far {
            assert_eq!(
                code(verify_v1(&verifier(), &params, now)),
                ErrorCode::InvalidTimeStampExpired,
                "{now}"
            );
        }

        let mut changed = params.clone();
        changed[1] = ("Action", "DescribeRegionz");
        assert_eq!(
            code(verify_v1(&verifier(), &changed, V1_NOW)),
            ErrorCode::SignatureDoesNotMatch
        );
        let mut added = params.clone();
        added.push(("Extra", ""));
        assert_eq!(
            code(verify_v1(&verifier(), &added, V1_NOW)),
            ErrorCode::SignatureDoesNotMatch
        );

        let mut unknown = params.clone();
        unknown[0] = ("AccessKeyId", "otherid");
        let err = verify_v1(&verifier(), &unknown, V1_NOW).expect_err("unknown key");
        assert_eq!(err.code, ErrorCode::InvalidAccessKeyIdNotFound);
        assert_eq!(err.http_status(), 404);

        for name in ["AccessKeyId", "Signature", "SignatureNonce", "Timestamp"] {
            let without: Vec<_> = params.iter().copied().filter(|(k, _)| *k != name).collect();
            let err = verify_v1(&verifier(), &without, V1_NOW).expect_err(name);
            assert_eq!(err.code, ErrorCode::MissingParameter, "{name}");
            assert!(err.message.contains(name), "{name}: {}", err.message);
            let empty: Vec<_> = params
                .iter()
                .map(|&(k, val)| (k, if k == name { "" } else { val }))
                .collect();
            assert_eq!(
                code(verify_v1(&verifier(), &empty, V1_NOW)),
                ErrorCode::MissingParameter
            );
            let mut twice = params.clone();
            twice.push((name, "x"));
            assert_eq!(
                code(verify_v1(&verifier(), &twice, V1_NOW)),
                ErrorCode::InvalidParameter
            );
        }

        for bad in [
            "2016-02-23 12:46:24Z",
            "2016-02-23T12:46:24",
            "2016-02-23T12:46:24+08:00",
            "2016-02-30T12:46:24Z",
            "2016-02-23T24:46:24Z",
            "2016-02-23T12:46:24.Z",
            "2016-02-23T12:46:24.1234567890Z",
            "2016-02-23T12:46:24.12a4Z",
            "1456231584",
            "2016-02-23T12:46:24Zé",
        ] {
            let mut sig = String::new();
            let mut p = v1_params();
            p[6] = ("Timestamp", bad);
            let p = signed(&p, &mut sig);
            assert_eq!(
                code(verify_v1(&verifier(), &p, V1_NOW)),
                ErrorCode::InvalidTimeStampFormat,
                "{bad}"
            );
        }
    }

    #[test]
    fn rpc_v1_fractional_seconds_and_optional_signature_method() {
        for stamp in [
            "2016-02-23T12:46:24.5Z",
            "2016-02-23T12:46:24.123456Z",
            "2016-02-23T12:46:24.123456789Z",
        ] {
            let mut sig = String::new();
            let mut p = v1_params();
            p[6] = ("Timestamp", stamp);
            let p = signed(&p, &mut sig);
            assert_eq!(verify_v1(&verifier(), &p, V1_NOW), Ok(()), "{stamp}");
        }
        let mut sig = String::new();
        let p: Vec<_> = v1_params()
            .into_iter()
            .filter(|(k, _)| *k != "SignatureMethod")
            .collect();
        let p = signed(&p, &mut sig);
        assert_eq!(verify_v1(&verifier(), &p, V1_NOW), Ok(()));

        let mut sig = String::new();
        let mut p = v1_params();
        p[3] = ("SignatureMethod", "HMAC-SHA256");
        let p = signed(&p, &mut sig);
        let err = verify_v1(&verifier(), &p, V1_NOW).expect_err("HMAC-SHA256");
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        assert!(err.message.contains("SignatureMethod"));
    }

    #[test]
    fn check_order() {
        let base = {
            let mut p = v1_params();
            p.push(("Signature", V1_SIGNATURE));
            p
        };
        let with = |edits: &[(&'static str, &'static str)]| {
            let mut p = base.clone();
            for &(name, value) in edits {
                match p.iter_mut().find(|(k, _)| *k == name) {
                    Some(slot) => slot.1 = value,
                    None => p.push((name, value)),
                }
            }
            p
        };
        // Missing beats everything after it.
        let p: Vec<_> = with(&[("Timestamp", "garbage"), ("AccessKeyId", "nobody")])
            .into_iter()
            .filter(|(k, _)| *k != "SignatureNonce")
            .collect();
        assert_eq!(
            code(verify_v1(&verifier(), &p, V1_NOW)),
            ErrorCode::MissingParameter
        );
        // SignatureMethod beats the timestamp format.
        let p = with(&[("SignatureMethod", "MD5"), ("Timestamp", "garbage")]);
        assert_eq!(
            code(verify_v1(&verifier(), &p, V1_NOW)),
            ErrorCode::InvalidParameter
        );
        // The timestamp format beats the access key.
        let p = with(&[("Timestamp", "garbage"), ("AccessKeyId", "nobody")]);
        assert_eq!(
            code(verify_v1(&verifier(), &p, V1_NOW)),
            ErrorCode::InvalidTimeStampFormat
        );
        // The access key beats the signature.
        let p = with(&[("AccessKeyId", "nobody"), ("Signature", "wrong")]);
        assert_eq!(
            code(verify_v1(&verifier(), &p, V1_NOW)),
            ErrorCode::InvalidAccessKeyIdNotFound
        );
        // The signature beats the window.
        let p = with(&[("Signature", "wrong")]);
        assert_eq!(
            code(verify_v1(&verifier(), &p, "2030-01-01T00:00:00Z")),
            ErrorCode::SignatureDoesNotMatch
        );
        // The window beats the nonce: an expired replay says Expired.
        let v = verifier();
        assert_eq!(verify_v1(&v, &base, V1_NOW), Ok(()));
        assert_eq!(
            code(verify_v1(&v, &base, "2016-02-23T14:00:00Z")),
            ErrorCode::InvalidTimeStampExpired
        );
    }

    #[test]
    fn limits() {
        let many: Vec<(&str, &str)> = (0..=MAX_PARAMS).map(|_| ("X", "y")).collect();
        assert_eq!(
            code(verify_v1(&verifier(), &many, V1_NOW)),
            ErrorCode::InvalidParameter
        );
        let headers: Vec<(&str, &str)> = (0..=MAX_HEADERS).map(|_| ("x-h", "y")).collect();
        let req = SignedRequest {
            method: "GET",
            query_params: &[],
            body_params: &[],
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            code(verifier().verify(&req, at(V1_NOW))),
            ErrorCode::InvalidParameter
        );
        let long = format!(
            "{V3_ALGORITHM} Credential=testid,SignedHeaders=x-acs-date,Signature={}",
            "0".repeat(MAX_AUTHORIZATION_LEN)
        );
        let headers = [("Authorization", long.as_str())];
        let req = SignedRequest {
            headers: &headers,
            ..req
        };
        assert_eq!(
            code(verifier().verify(&req, at(V1_NOW))),
            ErrorCode::InvalidParameter
        );
    }

    const V3_QUERY: [(&str, &str); 4] = [
        ("IotId", "i1"),
        ("ModuleName", "default"),
        ("TaskStatusList.1", "QUEUED"),
        ("TaskStatusList.2", "CONFIRM"),
    ];
    const V3_HEADERS: [(&str, &str); 9] = [
        ("accept", "application/json"),
        ("host", "127.0.0.1:18999"),
        (
            "user-agent",
            "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2",
        ),
        ("x-acs-action", "ListOTAUnfinishedTaskByDevice"),
        ("x-acs-content-sha256", EMPTY_SHA256),
        ("x-acs-credentials-provider", "static_ak"),
        ("x-acs-date", "2026-11-26T22:24:43Z"),
        ("x-acs-signature-nonce", "d220e89c2f2507c41dfc33af6c5efb3f"),
        ("x-acs-version", "2018-01-20"),
    ];
    const V3_SIGNED: &str = "accept;host;user-agent;x-acs-action;x-acs-content-sha256;\
                             x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version";
    const V3_NOW: &str = "2026-11-26T22:24:43Z";

    fn v3_authorization(signed: &str, signature: &str) -> String {
        format!("ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={signed},Signature={signature}")
    }

    fn verify_v3(
        v: &Verifier,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), RpcError> {
        let req = SignedRequest {
            method: "POST",
            query_params: query,
            body_params: &[],
            headers,
            body,
        };
        v.verify(&req, at(V3_NOW))
    }

    fn v3_headers_with(auth: &str) -> Vec<(&str, &str)> {
        let mut h = V3_HEADERS.to_vec();
        h.push(("Authorization", auth));
        h
    }

    #[test]
    fn v3_vector() {
        let names: Vec<&str> = V3_SIGNED.split(';').collect();
        assert_eq!(
            sign_v3("POST", &V3_QUERY, &V3_HEADERS, &names, b"", "testsecret"),
            V3_SIGNATURE
        );
        // Header names in any case, signed names in any order and case.
        let upper: Vec<(String, &str)> = V3_HEADERS
            .iter()
            .map(|&(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        let upper: Vec<(&str, &str)> = upper.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut shuffled: Vec<String> =
            names.iter().rev().map(|n| n.to_ascii_uppercase()).collect();
        shuffled.push("Host".to_string());
        let shuffled: Vec<&str> = shuffled.iter().map(String::as_str).collect();
        assert_eq!(
            sign_v3("POST", &V3_QUERY, &upper, &shuffled, b"", "testsecret"),
            V3_SIGNATURE
        );
    }

    #[test]
    fn v3_verify_accepts_then_refuses_replay() {
        let v = verifier();
        let auth = v3_authorization(V3_SIGNED, V3_SIGNATURE);
        let headers = v3_headers_with(&auth);
        assert_eq!(verify_v3(&v, &V3_QUERY, &headers, b""), Ok(()));
        assert_eq!(
            code(verify_v3(&v, &V3_QUERY, &headers, b"")),
            ErrorCode::SignatureNonceUsed
        );
        // Spaces after the commas, upper-case hex, and an RPC v1 nonce of the same value are
        // all fine.
        let spaced = format!(
            "ACS3-HMAC-SHA256 Credential=testid, SignedHeaders={V3_SIGNED}, Signature={}",
            V3_SIGNATURE.to_ascii_uppercase()
        );
        let headers = v3_headers_with(&spaced);
        assert_eq!(verify_v3(&verifier(), &V3_QUERY, &headers, b""), Ok(()));
    }

    #[test]
    fn v3_refusals() {
        let auth = v3_authorization(V3_SIGNED, V3_SIGNATURE);
        let headers = v3_headers_with(&auth);

        // A tampered signed header.
        let mut tampered = headers.clone();
        tampered[3] = ("x-acs-action", "DeleteEverything");
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &tampered, b"")),
            ErrorCode::SignatureDoesNotMatch
        );
        // A tampered query parameter.
        let mut query = V3_QUERY.to_vec();
        query[0] = ("IotId", "i2");
        assert_eq!(
            code(verify_v3(&verifier(), &query, &headers, b"")),
            ErrorCode::SignatureDoesNotMatch
        );
        query[0] = ("IotId", "i1");
        query.push(("Extra", ""));
        assert_eq!(
            code(verify_v3(&verifier(), &query, &headers, b"")),
            ErrorCode::SignatureDoesNotMatch
        );
        // The body not matching x-acs-content-sha256, and a body hash changed to match.
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &headers, b"x")),
            ErrorCode::SignatureDoesNotMatch
        );
        let x_hash = hex::encode(Sha256::digest(b"x"));
        let mut rehashed = headers.clone();
        rehashed[4] = ("x-acs-content-sha256", &x_hash);
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &rehashed, b"x")),
            ErrorCode::SignatureDoesNotMatch
        );
        // The wrong signature, a malformed one.
        for sig in ["0".repeat(64), "zz".repeat(32), "abc".to_string()] {
            let auth = v3_authorization(V3_SIGNED, &sig);
            assert_eq!(
                code(verify_v3(
                    &verifier(),
                    &V3_QUERY,
                    &v3_headers_with(&auth),
                    b""
                )),
                ErrorCode::SignatureDoesNotMatch
            );
        }
        // An unknown credential.
        let other = auth.replace("Credential=testid", "Credential=other");
        assert_eq!(
            code(verify_v3(
                &verifier(),
                &V3_QUERY,
                &v3_headers_with(&other),
                b""
            )),
            ErrorCode::InvalidAccessKeyIdNotFound
        );
        // A signed header absent; a required header not signed.
        let without_accept: Vec<_> = headers
            .iter()
            .copied()
            .filter(|(k, _)| *k != "accept")
            .collect();
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &without_accept, b"")),
            ErrorCode::SignatureDoesNotMatch
        );
        let unsigned_nonce = V3_SIGNED.replace("x-acs-signature-nonce;", "");
        let names: Vec<&str> = unsigned_nonce.split(';').collect();
        let sig = sign_v3("POST", &V3_QUERY, &V3_HEADERS, &names, b"", "testsecret");
        let auth2 = v3_authorization(&unsigned_nonce, &sig);
        let err = verify_v3(&verifier(), &V3_QUERY, &v3_headers_with(&auth2), b"")
            .expect_err("nonce unsigned");
        assert_eq!(err.code, ErrorCode::SignatureDoesNotMatch);
        assert!(
            err.message.contains("x-acs-signature-nonce"),
            "{}",
            err.message
        );
        // Each required header missing.
        for name in V3_REQUIRED_HEADERS {
            let without: Vec<_> = headers
                .iter()
                .copied()
                .filter(|(k, _)| *k != name)
                .collect();
            let err = verify_v3(&verifier(), &V3_QUERY, &without, b"").expect_err(name);
            assert_eq!(err.code, ErrorCode::MissingParameter, "{name}");
            assert!(err.message.contains(name));
        }
        // Authorization parts missing, duplicated, or malformed.
        for (bad, want) in [
            (
                "ACS3-HMAC-SHA256 SignedHeaders=x-acs-date,Signature=00",
                ErrorCode::MissingParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=testid,Signature=00",
                ErrorCode::MissingParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=x-acs-date",
                ErrorCode::MissingParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=,SignedHeaders=a,Signature=00",
                ErrorCode::MissingParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=a,Signature=00",
                ErrorCode::InvalidParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=a,Region=b,SignedHeaders=a,Signature=00",
                ErrorCode::InvalidParameter,
            ),
            (
                "ACS3-HMAC-SHA256X Credential=a,SignedHeaders=a,Signature=00",
                ErrorCode::InvalidParameter,
            ),
            (
                "ACS3-HMAC-SHA256 Credential=a SignedHeaders=a",
                ErrorCode::InvalidParameter,
            ),
        ] {
            assert_eq!(
                code(verify_v3(
                    &verifier(),
                    &V3_QUERY,
                    &v3_headers_with(bad),
                    b""
                )),
                want,
                "{bad}"
            );
        }
        // Two Authorization headers.
        let mut twice = headers.clone();
        twice.push(("authorization", &auth));
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &twice, b"")),
            ErrorCode::InvalidParameter
        );
        // A bad date; an expired one.
        let mut bad_date = headers.clone();
        bad_date[6] = ("x-acs-date", "Thu, 26 Nov 2026 22:24:43 GMT");
        assert_eq!(
            code(verify_v3(&verifier(), &V3_QUERY, &bad_date, b"")),
            ErrorCode::InvalidTimeStampFormat
        );
        let req = SignedRequest {
            method: "POST",
            query_params: &V3_QUERY,
            body_params: &[],
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            code(verifier().verify(&req, at("2026-11-26T22:40:00Z"))),
            ErrorCode::InvalidTimeStampExpired
        );
    }

    #[test]
    fn v3_with_body() {
        let body = br#"{"k":"v"}"#;
        let hash = hex::encode(Sha256::digest(body));
        let mut headers = V3_HEADERS.to_vec();
        headers[4] = ("x-acs-content-sha256", &hash);
        headers[7] = ("x-acs-signature-nonce", "  n-with-spaces  ");
        let names: Vec<&str> = V3_SIGNED.split(';').collect();
        let sig = sign_v3("POST", &V3_QUERY, &headers, &names, body, "testsecret");
        let auth = v3_authorization(V3_SIGNED, &sig);
        headers.push(("Authorization", &auth));
        assert_eq!(verify_v3(&verifier(), &V3_QUERY, &headers, body), Ok(()));
    }

    /// A v1 request signed with its own nonce and timestamp.
    fn v1_with(nonce: &str, timestamp: &str) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = v1_params()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        p[4].1 = nonce.to_string();
        p[6].1 = timestamp.to_string();
        let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sig = sign_rpc_v1("GET", &borrowed, "testsecret");
        p.push(("Signature".to_string(), sig));
        p
    }

    fn verify_owned(v: &Verifier, p: &[(String, String)], now: &str) -> Result<(), RpcError> {
        let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        verify_v1(v, &borrowed, now)
    }

    #[test]
    fn nonce_cache_is_bounded_in_time_and_entries() {
        let v = verifier()
            .with_window(Duration::from_secs(60))
            .with_nonce_capacity(2);
        let t0 = "2016-02-23T12:00:00Z";
        assert_eq!(verify_owned(&v, &v1_with("a", t0), t0), Ok(()));
        assert_eq!(verify_owned(&v, &v1_with("b", t0), t0), Ok(()));
        // Full of unexpired nonces: refused, never evicted.
        let err = verify_owned(&v, &v1_with("c", t0), t0).expect_err("full");
        assert_eq!(err.code, ErrorCode::SystemException);
        assert_eq!(
            code(verify_owned(&v, &v1_with("a", t0), t0)),
            ErrorCode::SignatureNonceUsed
        );
        // At the last instant of the window "a" is still remembered.
        assert_eq!(
            code(verify_owned(&v, &v1_with("a", t0), "2016-02-23T12:01:00Z")),
            ErrorCode::SignatureNonceUsed
        );
        // Once the window of "a" and "b" has passed, both are purged and a new nonce fits.
        let t1 = "2016-02-23T12:01:01Z";
        assert_eq!(verify_owned(&v, &v1_with("c", t1), t1), Ok(()));
        assert_eq!(v.nonces.lock().seen.len(), 1);
        // A nonce may come back once its earlier use is out of the window.
        assert_eq!(verify_owned(&v, &v1_with("a", t1), t1), Ok(()));
        // A request whose window ended before a `now` already seen is stale, even when its
        // caller's clock lags.
        assert_eq!(
            code(verify_owned(&v, &v1_with("d", t0), "2016-02-23T12:00:30Z")),
            ErrorCode::InvalidTimeStampExpired
        );

        let none = verifier().with_nonce_capacity(0);
        assert_eq!(
            code(verify_owned(&none, &v1_with("a", t0), t0)),
            ErrorCode::SystemException
        );
    }

    /// A server clock before 1970 (negative milliseconds) is a time like any other: a
    /// request signed at that instant is inside its window, and its nonce is remembered.
    #[test]
    fn a_clock_before_1970_is_inside_the_window() {
        let v = verifier();
        let t = "1969-12-31T23:00:00Z";
        assert_eq!(verify_owned(&v, &v1_with("early", t), t), Ok(()));
        assert_eq!(
            code(verify_owned(&v, &v1_with("early", t), t)),
            ErrorCode::SignatureNonceUsed
        );
    }

    #[test]
    fn nonces_are_per_access_key() {
        let v = Verifier::new([
            ("testid".to_string(), "testsecret".to_string()),
            ("other".to_string(), "othersecret".to_string()),
        ]);
        let mut params = v1_params();
        params.push(("Signature", V1_SIGNATURE));
        assert_eq!(verify_v1(&v, &params, V1_NOW), Ok(()));
        let mut sig = String::new();
        let mut p = v1_params();
        p[0] = ("AccessKeyId", "other");
        let p = {
            sig.push_str(&sign_rpc_v1("GET", &p, "othersecret"));
            let mut p = p;
            p.push(("Signature", &sig));
            p
        };
        assert_eq!(verify_v1(&v, &p, V1_NOW), Ok(()));
    }

    #[test]
    fn verifier_is_shareable_and_debug_hides_secrets() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Verifier>();
        let shown = format!("{:?}", verifier());
        assert!(!shown.contains("testsecret"), "{shown}");
    }

    #[test]
    fn concurrent_replays_admit_exactly_one() {
        let v = verifier();
        let mut params = v1_params();
        params.push(("Signature", V1_SIGNATURE));
        let accepted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| verify_v1(&v, &params, V1_NOW).is_ok()))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter(|&ok| ok)
                .count()
        });
        assert_eq!(accepted, 1);
    }
}
