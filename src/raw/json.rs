//! JSON strings written straight into a byte buffer (RFC 8259), for the response writer and
//! the JSON Lines writer.

use super::swar;

/// How [`write_json_string`] writes each byte: `0` raw, `u` as `\u00XX`, else `\` and the
/// letter.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Appends `s` as a JSON string (RFC 8259): `"` and `\` escaped with a backslash, control
/// characters U+0000–U+001F as `\b \f \n \r \t` or `\u00xx` (lower-case hex); everything else,
/// `/`, DEL and all non-ASCII included, written raw as UTF-8.
///
/// ```
/// use ota_index::rpc::response::write_json_string;
/// let mut out = Vec::new();
/// write_json_string(&mut out, "智能灯 \\ \"x\"\n\u{1}");
/// assert_eq!(String::from_utf8(out).unwrap(), r#""智能灯 \\ \"x\"\n\u0001""#);
/// ```
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_json_string_body(out, s);
    out.push(b'"');
}

/// [`write_json_string`] without the quotes around the text.
pub(crate) fn write_json_string_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    // Fast path: no byte needs escaping (the rule for stored task fields).
    if !swar::needs_json_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    // Copy each run of bytes that need no escaping with one call.
    let mut run_start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run_start..i]);
        run_start = i + 1;
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
}
