//! Sign-then-verify round trips of both schemes over arbitrary parameters, headers, bodies,
//! methods and secrets, and arbitrary `Authorization` headers into the verifier.
//!
//! Checked: a request signed with `sign_rpc_v1` (or `sign_v3`) with the verifier's secret,
//! a fresh nonce and the current time is accepted; the same request checked against any other
//! secret is refused with `SignatureDoesNotMatch`; arbitrary headers (`Authorization`
//! included) and parameters never make the verifier panic, and a refusal is always a
//! signature-layer code with a non-200 HTTP status.
//!
//! HMAC pads keys shorter than the hash's block with zero bytes, so two V3 secrets of at most
//! 64 bytes that differ only in trailing NUL bytes are the same key; such pairs are not
//! "other" secrets here (RPC v1 appends `&` to the secret, which rules this out).
#![no_main]

use std::time::SystemTime;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_index::rpc::signature::{sign_rpc_v1, sign_v3, SignedRequest, Verifier};
use ota_index::rpc::ErrorCode;
use ota_index::Timestamp;
use sha2::{Digest, Sha256};

#[derive(Arbitrary, Debug)]
struct Input {
    v3: bool,
    method: String,
    access_key_id: String,
    secret: String,
    other_secret: String,
    nonce: String,
    /// Extra parameters; the flag puts an RPC v1 pair in the form body.
    params: Vec<(String, String, bool)>,
    /// Extra V3 headers; the flag signs it.
    headers: Vec<(String, String, bool)>,
    body: Vec<u8>,
    /// Arbitrary headers and an `Authorization` value for the no-panic half.
    raw_headers: Vec<(String, String)>,
    authorization: String,
}

/// The names the round trip sets itself (RPC v1 parameters, V3 headers).
const V1_RESERVED: [&str; 5] = [
    "AccessKeyId",
    "Signature",
    "SignatureNonce",
    "Timestamp",
    "SignatureMethod",
];
const V3_RESERVED: [&str; 4] = [
    "authorization",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// True when HMAC would use the same key for both secrets (see the module docs).
fn same_hmac_key(a: &str, b: &str, v3: bool) -> bool {
    if !v3 || a.len() > 64 || b.len() > 64 {
        return a == b;
    }
    a.trim_end_matches('\0') == b.trim_end_matches('\0')
}

fn signature_codes(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidParameter
            | ErrorCode::MissingParameter
            | ErrorCode::SignatureDoesNotMatch
            | ErrorCode::InvalidAccessKeyIdNotFound
            | ErrorCode::SignatureNonceUsed
            | ErrorCode::InvalidTimeStampExpired
            | ErrorCode::InvalidTimeStampFormat
    )
}

fuzz_target!(|input: Input| {
    let now = SystemTime::now();
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    let timestamp = String::from_utf8(Timestamp::from_millis(now_ms).format().to_vec())
        .expect("timestamps are ASCII");
    // Ids and nonces travel inside the Authorization header and header values: no comma,
    // no whitespace, never empty.
    let clean = |s: &str, prefix: &str| -> String {
        let kept: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ',')
            .collect();
        format!("{prefix}{kept}")
    };
    let access_key_id = clean(&input.access_key_id, "k");
    let nonce = clean(&input.nonce, "n");
    let verifier = |secret: &str| Verifier::new([(access_key_id.clone(), secret.to_owned())]);
    let other = (!same_hmac_key(&input.secret, &input.other_secret, input.v3))
        .then_some(input.other_secret.as_str());

    if input.v3 {
        let query: Vec<(&str, &str)> = input
            .params
            .iter()
            .take(200)
            .map(|(n, v, _)| (n.as_str(), v.as_str()))
            .collect();
        // The verifier recomputes the body's hash; the client sends it.
        let body_hash = sha256_hex(&input.body);
        // Extra header names: lower-case letters, digits and '-', unique, none reserved.
        let mut extra: Vec<(String, &str, bool)> = Vec::new();
        for (name, value, signed) in input.headers.iter().take(50) {
            let name: String = name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if name.is_empty()
                || V3_RESERVED.contains(&name.as_str())
                || extra.iter().any(|(n, _, _)| *n == name)
            {
                continue;
            }
            extra.push((name, value.as_str(), *signed));
        }
        let mut headers: Vec<(&str, &str)> = vec![
            ("x-acs-date", &timestamp),
            ("X-Acs-Signature-Nonce", &nonce),
            ("x-acs-content-sha256", &body_hash),
        ];
        headers.extend(extra.iter().map(|(n, v, _)| (n.as_str(), *v)));
        let mut signed: Vec<&str> = vec![
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-content-sha256",
        ];
        signed.extend(extra.iter().filter(|e| e.2).map(|(n, _, _)| n.as_str()));
        let authorization = |secret: &str| {
            let signature = sign_v3(
                &input.method,
                &query,
                &headers,
                &signed,
                &input.body,
                secret,
            );
            let mut names: Vec<&str> = signed.clone();
            names.sort_unstable();
            format!(
                "ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={},Signature={signature}",
                names.join(";")
            )
        };
        let auth = authorization(&input.secret);
        let mut all_headers = headers.clone();
        all_headers.push(("Authorization", &auth));
        let request = SignedRequest {
            method: &input.method,
            query_params: &query,
            body_params: &[],
            headers: &all_headers,
            body: &input.body,
        };
        if let Err(e) = verifier(&input.secret).verify(&request, now) {
            panic!("a V3 request signed with the key was refused: {e}\n{request:?}");
        }
        if let Some(other) = other {
            let e = verifier(other)
                .verify(&request, now)
                .expect_err("another secret must not verify");
            assert_eq!(e.code, ErrorCode::SignatureDoesNotMatch, "{e}");
        }
    } else {
        let mut params: Vec<(&str, &str, bool)> = input
            .params
            .iter()
            .take(200)
            .filter(|(n, _, _)| !V1_RESERVED.contains(&n.as_str()))
            .map(|(n, v, body)| (n.as_str(), v.as_str(), *body))
            .collect();
        params.extend([
            ("AccessKeyId", access_key_id.as_str(), false),
            ("SignatureMethod", "HMAC-SHA1", false),
            ("SignatureNonce", nonce.as_str(), false),
            ("Timestamp", timestamp.as_str(), input.secret.len() % 2 == 1),
        ]);
        let all: Vec<(&str, &str)> = params.iter().map(|&(n, v, _)| (n, v)).collect();
        let signature = sign_rpc_v1(&input.method, &all, &input.secret);
        params.push(("Signature", &signature, false));
        let query: Vec<(&str, &str)> = params
            .iter()
            .filter(|p| !p.2)
            .map(|&(n, v, _)| (n, v))
            .collect();
        let body: Vec<(&str, &str)> = params
            .iter()
            .filter(|p| p.2)
            .map(|&(n, v, _)| (n, v))
            .collect();
        let request = SignedRequest {
            method: &input.method,
            query_params: &query,
            body_params: &body,
            headers: &[],
            body: b"",
        };
        if let Err(e) = verifier(&input.secret).verify(&request, now) {
            panic!("an RPC v1 request signed with the key was refused: {e}\n{request:?}");
        }
        if let Some(other) = other {
            let e = verifier(other)
                .verify(&request, now)
                .expect_err("another secret must not verify");
            assert_eq!(e.code, ErrorCode::SignatureDoesNotMatch, "{e}");
        }
    }

    // Arbitrary headers, parameters and Authorization values: never a panic.
    let raw: Vec<(&str, &str)> = input
        .raw_headers
        .iter()
        .take(64)
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let params: Vec<(&str, &str)> = input
        .params
        .iter()
        .take(64)
        .map(|(n, v, _)| (n.as_str(), v.as_str()))
        .collect();
    let v3_auth = format!("ACS3-HMAC-SHA256 {}", input.authorization);
    for auth in [input.authorization.as_str(), v3_auth.as_str()] {
        let mut headers = raw.clone();
        headers.push(("authorization", auth));
        let request = SignedRequest {
            method: &input.method,
            query_params: &params,
            body_params: &[],
            headers: &headers,
            body: &input.body,
        };
        if let Err(e) = verifier(&input.secret).verify(&request, now) {
            assert!(signature_codes(e.code), "unexpected code {e}");
            assert_ne!(e.http_status(), 200, "{e}");
        }
    }
});

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
