//! RPC v1: HMAC-SHA1 over the sorted, percent-encoded parameters.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::*;

impl Verifier {
    /// Steps 3–7 of the check order for RPC v1.
    pub(super) fn verify_v1_signature<'a>(
        &self,
        req: &SignedRequest<'a>,
    ) -> Result<Verified<'a>, RpcError> {
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
pub(super) fn canonical_query<'p>(pairs: impl Iterator<Item = &'p (&'p str, &'p str)>) -> String {
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
pub(super) fn rpc_v1_mac<'p>(
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
