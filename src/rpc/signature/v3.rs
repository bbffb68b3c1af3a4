//! V3: `ACS3-HMAC-SHA256` over a canonical request.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::v1::canonical_query;
use super::*;

/// The V3 algorithm name, which opens its `Authorization` header.
pub(super) const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// The headers a V3 request must carry and sign: without the date and nonce signed, a replay
/// with a fresh nonce would verify.
pub(super) const V3_REQUIRED_HEADERS: [&str; 3] = [
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

impl Verifier {
    /// Steps 1 (the length limit), 3–7 of the check order for V3.
    pub(super) fn verify_v3_signature<'a>(
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
}

/// The parsed `Authorization: ACS3-HMAC-SHA256 Credential=…,SignedHeaders=…,Signature=…`.
pub(super) struct V3Authorization<'a> {
    pub(super) credential: &'a str,
    pub(super) signed_headers: &'a str,
    pub(super) signature: &'a str,
}

pub(super) fn parse_authorization(header: &str) -> Result<V3Authorization<'_>, RpcError> {
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
    pub(super) fn present<'v>(value: Option<&'v str>, key: &str) -> Result<&'v str, RpcError> {
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

/// HMAC-SHA256 with key `secret` over `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical
/// request; `headers` are the signed headers, names lower case and sorted, values trimmed.
pub(super) fn v3_mac(
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
