use sha2::{Digest, Sha256};

use super::v3::V3_REQUIRED_HEADERS;
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
fn signed<'a>(params: &[(&'a str, &'a str)], signature: &'a mut String) -> Vec<(&'a str, &'a str)> {
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
    let mut shuffled: Vec<String> = names.iter().rev().map(|n| n.to_ascii_uppercase()).collect();
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
    assert_eq!(v.nonces.len(), 1);
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

/// Threads verifying the same signed request at once: exactly one is accepted, every other
/// is a replay; and fresh nonces from many threads are all accepted.
#[test]
fn a_nonce_raced_by_threads_is_accepted_once() {
    let v = verifier();
    let t = "2016-02-23T12:00:00Z";
    let same = v1_with("raced", t);
    let outcomes: Vec<Result<(), RpcError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| verify_owned(&v, &same, t)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(outcomes
        .iter()
        .filter_map(|o| o.as_ref().err())
        .all(|e| e.code == ErrorCode::SignatureNonceUsed));
    std::thread::scope(|s| {
        for k in 0..4 {
            let v = &v;
            s.spawn(move || {
                for i in 0..200 {
                    let p = v1_with(&format!("fresh-{k}-{i}"), t);
                    assert_eq!(verify_owned(v, &p, t), Ok(()));
                }
            });
        }
    });
    assert_eq!(v.nonces.len(), 801);
}
