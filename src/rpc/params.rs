//! Decoding `application/x-www-form-urlencoded` parameters (reference section 3, rule 7).
//!
//! A request's parameters are the pairs of its query string followed, for `POST`, by the pairs
//! of its form body. Decoding is lenient: every pair is kept, and a name or value that does not
//! decode carries its [`DecodeError`] instead of failing the whole request, so that the rules
//! of section 3 can decide which fault wins (an unknown `Action` beats a malformed escape).
//!
//! The syntax read here:
//!
//! - pairs are separated by `&` only (not `;`); empty segments (`a=1&&b=2`, a trailing `&`)
//!   are skipped;
//! - a pair is split at its first `=`; a segment without `=` is a name with an empty value;
//! - `+` is a space and `%XX` (two hex digits, either case) is one byte; a `%` followed by
//!   anything else is a malformed escape;
//! - the decoded bytes of each name and each value must be UTF-8. The raw body need not be
//!   UTF-8: escapes produce bytes, and only the decoded result is checked.
//!
//! At most [`MAX_PARAMS`] pairs are kept. Past the cap nothing more is stored (no allocation
//! grows with a count the client chooses); [`Params::too_many`] says so, and
//! [`Params::unread`] walks the remaining pairs lazily for whoever must still look at them.

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::raw::swar;
use std::fmt;

/// The most parameters a request may carry (query string and body together); more is
/// `InvalidParameter`.
pub const MAX_PARAMS: usize = 1000;

/// Where a parameter was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The URL's query string.
    Query,
    /// The `application/x-www-form-urlencoded` body of a `POST`.
    Body,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Query => "query string",
            Source::Body => "form body",
        })
    }
}

/// Why a name or a value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape `{escape}` at byte {offset}")]
    MalformedEscape {
        /// Byte offset of the `%` within the raw name or value.
        offset: usize,
        /// The `%` and at most two bytes after it, non-printable bytes shown as `\xNN`.
        escape: String,
    },
    /// The decoded bytes are not UTF-8.
    #[error("decoded bytes are not UTF-8 (invalid from decoded byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix of the decoded bytes.
        valid_up_to: usize,
    },
}

/// One `name=value` pair, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The decoded name; borrowed from the input when it needed no decoding.
    pub name: Result<Cow<'a, str>, DecodeError>,
    /// The decoded value (empty when the segment had no `=`).
    pub value: Result<Cow<'a, str>, DecodeError>,
    /// Where the pair was read from.
    pub source: Source,
    /// The name as received, before decoding.
    pub raw_name: &'a [u8],
    /// The value as received, before decoding.
    pub raw_value: &'a [u8],
}

impl<'a> Param<'a> {
    /// Decodes one segment (the text between two `&`, not empty), split at `eq` (the first
    /// `=`, or the segment's length), whose name and value hold a `%` or `+` as flagged. `text`
    /// is the same segment when it is known to be UTF-8 (a query string): a name or value with
    /// nothing to decode is then borrowed from it without validating it again.
    fn decode(segment: &'a [u8], text: Option<&'a str>, scan: Scan, source: Source) -> Param<'a> {
        let eq = scan.eq.min(segment.len());
        let value_at = (eq + 1).min(segment.len());
        let (raw_name, raw_value) = (&segment[..eq], &segment[value_at..]);
        // `=` is ASCII, so both sides of it are char boundaries of `text`.
        let part = |raw: &'a [u8], escaped: bool, range: std::ops::Range<usize>| match text
            .and_then(|t| t.get(range))
        {
            Some(plain) if !escaped => Ok(Cow::Borrowed(plain)),
            _ => decode_component(raw),
        };
        Param {
            name: part(raw_name, scan.name_escaped, 0..eq),
            value: part(raw_value, scan.value_escaped, value_at..segment.len()),
            source,
            raw_name,
            raw_value,
        }
    }

    /// The decoded name, or `None` when it did not decode.
    pub fn name_str(&self) -> Option<&str> {
        self.name.as_deref().ok()
    }

    /// The decoded value, or `None` when it did not decode.
    pub fn value_str(&self) -> Option<&str> {
        self.value.as_deref().ok()
    }

    /// True when the name decoded to exactly `name` (case-sensitive).
    pub fn is_named(&self, name: &str) -> bool {
        self.name_str() == Some(name)
    }
}

/// An iterator over the pairs of form-encoded text, decoding each lazily.
///
/// Yielded by [`Params::unread`]; usable on its own for one source.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    /// The text not yet split, always starting after a `&` (or at the start).
    rest: &'a [u8],
    /// The same text when it is known to be UTF-8 (a query string).
    rest_text: Option<&'a str>,
    source: Source,
}

impl<'a> Pairs<'a> {
    /// The pairs of `text`, read from `source`.
    pub fn new(text: &'a [u8], source: Source) -> Pairs<'a> {
        Pairs {
            rest: text,
            rest_text: None,
            source,
        }
    }

    /// The pairs of UTF-8 `text` (a query string): plain names and values are borrowed from
    /// it without checking their UTF-8 again.
    pub fn from_text(text: &'a str, source: Source) -> Pairs<'a> {
        Pairs {
            rest: text.as_bytes(),
            rest_text: Some(text),
            source,
        }
    }
}

/// What one pass over a segment found (see `scan_segment`).
#[derive(Clone, Copy)]
struct Scan {
    /// The segment's length (its end, at a `&` or the end of the text).
    end: usize,
    /// The first `=`, or `end` when there is none.
    eq: usize,
    name_escaped: bool,
    value_escaped: bool,
}

/// The first `&`, `=`, `%` or `+` of `bytes` at or after `from`, eight bytes at a time. The usual request's names and values are a few bytes long; `memchr` for `&`, then
/// for `=`, then for `%` or `+` on each side cost four calls and ten times the instructions.
fn find_special(bytes: &[u8], from: usize) -> Option<usize> {
    swar::first_of(bytes, from, [b'&', b'=', b'%', b'+'])
}

/// Finds the end of the segment at the start of `bytes`, its first `=`, and whether its name
/// or value holds a `%` or `+`, in one pass.
fn scan_segment(bytes: &[u8]) -> Scan {
    let mut scan = Scan {
        end: bytes.len(),
        eq: usize::MAX,
        name_escaped: false,
        value_escaped: false,
    };
    let mut from = 0;
    while let Some(i) = find_special(bytes, from) {
        match bytes[i] {
            b'&' => {
                scan.end = i;
                break;
            }
            b'=' => scan.eq = scan.eq.min(i),
            _ if scan.eq == usize::MAX => scan.name_escaped = true,
            _ => scan.value_escaped = true,
        }
        from = i + 1;
    }
    scan.eq = scan.eq.min(scan.end);
    scan
}

/// One segment of a query string as written, before decoding: what [`raw_segments`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSegment<'a> {
    /// The text before the first `=` (the whole segment when it has none).
    pub(crate) name: &'a str,
    /// The text after the first `=`; `None` when the segment has no `=`.
    pub(crate) value: Option<&'a str>,
    /// The name or the value holds a `%` or `+`: it would decode to other text.
    pub(crate) escaped: bool,
}

/// The non-empty segments of a query string, undecoded, with the scan [`Pairs`] decodes
/// from: for a look at a request before (or instead of) decoding it.
pub(crate) fn raw_segments(query: &str) -> impl Iterator<Item = RawSegment<'_>> {
    let mut rest = query;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let scan = scan_segment(rest.as_bytes());
        // `&` and `=` are ASCII: every cut below is at a char boundary.
        let segment = rest.get(..scan.end)?;
        rest = rest.get((scan.end + 1).min(rest.len())..)?;
        if segment.is_empty() {
            continue;
        }
        return Some(RawSegment {
            name: segment.get(..scan.eq)?,
            value: segment.get(scan.eq + 1..),
            escaped: scan.name_escaped || scan.value_escaped,
        });
    })
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let scan = scan_segment(self.rest);
            let end = scan.end;
            let next = (end + 1).min(self.rest.len());
            let segment = &self.rest[..end];
            // `&` is ASCII: both ends are char boundaries of the text.
            let text = self.rest_text.and_then(|t| t.get(..end));
            self.rest = &self.rest[next..];
            self.rest_text = self.rest_text.and_then(|t| t.get(next..));
            if !segment.is_empty() {
                return Some(Param::decode(segment, text, scan, self.source));
            }
        }
    }
}

/// All parameters of a request, in received order: the query string first, then the body.
///
/// ```
/// use ota_index::rpc::params::{Params, Source};
/// let params = Params::decode("Action=List&DeviceName=mac%3A00+1", Some(b"IotId=i1"));
/// assert_eq!(params.len(), 3);
/// assert_eq!(params.value("DeviceName"), Some("mac:00 1"));
/// assert_eq!(params.get("IotId").map(|p| p.source), Some(Source::Body));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Params<'a> {
    /// At most [`MAX_PARAMS`] pairs, in received order; a usual request's fit inline.
    params: SmallVec<[Param<'a>; 10]>,
    /// The query-string text past the cap (empty unless `too_many`).
    unread_query: &'a [u8],
    /// The body text past the cap (or the whole body when the cap was hit in the query).
    unread_body: &'a [u8],
    /// True when the request holds more than [`MAX_PARAMS`] pairs.
    too_many: bool,
}

impl<'a> Params<'a> {
    /// Decodes the query string (without its leading `?`) and, for `POST`, the form body.
    ///
    /// Never fails: a pair that does not decode keeps its [`DecodeError`].
    pub fn decode(query: &'a str, body: Option<&'a [u8]>) -> Params<'a> {
        let mut params = Params::default();
        params.decode_into(query, body);
        params
    }

    /// [`Params::decode`] into `self` (emptied first), where the caller keeps it: a
    /// `Params` holds its first ten pairs inline (about 1 KB), which returning it by value
    /// copies (136 instructions a request, 3 % of an answer).
    ///
    /// ```
    /// use ota_index::rpc::params::Params;
    /// let mut params = Params::default();
    /// params.decode_into("a=1&b=2", None);
    /// assert_eq!(params.value("b"), Some("2"));
    /// params.decode_into("c=3", None);
    /// assert_eq!((params.len(), params.value("a")), (1, None));
    /// ```
    pub fn decode_into(&mut self, query: &'a str, body: Option<&'a [u8]>) {
        self.params.clear();
        self.unread_query = &[];
        self.unread_body = &[];
        self.too_many = false;
        let body = body.unwrap_or_default();
        let mut query_pairs = Pairs::from_text(query, Source::Query);
        let mut body_pairs = Pairs::new(body, Source::Body);
        loop {
            // Remember where the next pair starts, to resume there if it is over the cap.
            let (query_at, body_at) = (query_pairs.rest, body_pairs.rest);
            let Some(param) = query_pairs.next().or_else(|| body_pairs.next()) else {
                break;
            };
            if self.params.len() == MAX_PARAMS {
                self.too_many = true;
                self.unread_query = query_at;
                self.unread_body = body_at;
                break;
            }
            self.params.push(param);
        }
    }

    /// The pairs kept, in received order.
    pub fn iter(&self) -> std::slice::Iter<'_, Param<'a>> {
        self.params.iter()
    }

    /// How many pairs were kept (at most [`MAX_PARAMS`]).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when the request has no parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// True when the request holds more than [`MAX_PARAMS`] pairs; only the first ones were
    /// kept.
    pub fn too_many(&self) -> bool {
        self.too_many
    }

    /// The pairs past the cap, decoded one by one as the iterator is advanced (empty unless
    /// [`Params::too_many`]).
    pub fn unread(&self) -> impl Iterator<Item = Param<'a>> {
        Pairs::new(self.unread_query, Source::Query)
            .chain(Pairs::new(self.unread_body, Source::Body))
    }

    /// The first kept pair whose name decoded to exactly `name`.
    pub fn get(&self, name: &str) -> Option<&Param<'a>> {
        self.params.iter().find(|p| p.is_named(name))
    }

    /// The decoded value of the first kept pair named `name`, if both decoded.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Param::value_str)
    }

    /// Every kept pair named exactly `name`, in received order.
    pub fn all_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Param<'a>> + 's {
        self.params.iter().filter(move |p| p.is_named(name))
    }
}

impl<'s, 'a> IntoIterator for &'s Params<'a> {
    type Item = &'s Param<'a>;
    type IntoIter = std::slice::Iter<'s, Param<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.params.iter()
    }
}

/// Decodes one name or value: `+` to space, `%XX` to a byte, then checks UTF-8.
///
/// Borrows when there is nothing to decode; otherwise allocates once, sized by the input.
fn decode_component(raw: &[u8]) -> Result<Cow<'_, str>, DecodeError> {
    let not_utf8 = |e: std::str::Utf8Error| DecodeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    };
    let Some(first) = memchr::memchr2(b'%', b'+', raw) else {
        return std::str::from_utf8(raw)
            .map(Cow::Borrowed)
            .map_err(not_utf8);
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        match raw[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = raw.get(i + 1).copied().and_then(hex_digit);
                let low = raw.get(i + 2).copied().and_then(hex_digit);
                let (Some(high), Some(low)) = (high, low) else {
                    let end = raw.len().min(i + 3);
                    return Err(DecodeError::MalformedEscape {
                        offset: i,
                        escape: raw[i..end].escape_ascii().to_string(),
                    });
                };
                out.push(high << 4 | low);
                i += 3;
            }
            _ => {
                // Copy the run of plain bytes up to the next `%` or `+` in one go.
                let run = memchr::memchr2(b'%', b'+', &raw[i..]).map_or(raw.len(), |n| i + n);
                out.extend_from_slice(&raw[i..run]);
                i = run;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|e| not_utf8(e.utf8_error()))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(params: &Params<'_>) -> Vec<(String, String)> {
        params
            .iter()
            .map(|p| {
                (
                    p.name
                        .clone()
                        .map(Cow::into_owned)
                        .unwrap_or_else(|e| format!("ERR {e}")),
                    p.value
                        .clone()
                        .map(Cow::into_owned)
                        .unwrap_or_else(|e| format!("ERR {e}")),
                )
            })
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn splits_on_ampersand_and_skips_empty_segments() {
        let p = Params::decode("a=1&&b=2&", None);
        assert_eq!(pairs(&p), owned(&[("a", "1"), ("b", "2")]));
        assert!(Params::decode("", None).is_empty());
        assert!(Params::decode("&&&", Some(b"&")).is_empty());
        // `;` is not a separator.
        let p = Params::decode("a=1;b=2", None);
        assert_eq!(pairs(&p), owned(&[("a", "1;b=2")]));
    }

    #[test]
    fn segment_without_equals_is_a_name_with_empty_value() {
        let p = Params::decode("flag&a=&=v&==", None);
        assert_eq!(
            pairs(&p),
            owned(&[("flag", ""), ("a", ""), ("", "v"), ("", "=")])
        );
        let first = p.iter().next().map(|p| p.raw_value.len());
        assert_eq!(first, Some(0));
    }

    #[test]
    fn splits_at_the_first_equals_only() {
        let p = Params::decode("Signature=abc%3D=&x=a=b", None);
        assert_eq!(pairs(&p), owned(&[("Signature", "abc=="), ("x", "a=b")]));
    }

    #[test]
    fn plus_is_space_and_escapes_decode_in_either_case() {
        let p = Params::decode("a+b=c+d&k=%3a%3A%2B%25%20", None);
        assert_eq!(pairs(&p), owned(&[("a b", "c d"), ("k", "::+% ")]));
        // %2B is a literal plus, not a space.
        assert_eq!(Params::decode("v=%2B", None).value("v"), Some("+"));
        // Multi-byte UTF-8 from escapes.
        assert_eq!(
            Params::decode("n=%E6%99%BA%E8%83%BD", None).value("n"),
            Some("智能")
        );
        // Raw non-ASCII passes through.
        assert_eq!(Params::decode("n=智能", None).value("n"), Some("智能"));
    }

    #[test]
    fn plain_values_are_borrowed() {
        let p = Params::decode("IotId=abc", None);
        let param = p.get("IotId");
        assert!(matches!(
            param.map(|p| &p.value),
            Some(Ok(Cow::Borrowed("abc")))
        ));
        assert!(matches!(
            param.map(|p| &p.name),
            Some(Ok(Cow::Borrowed("IotId")))
        ));
    }

    #[test]
    fn malformed_escapes_are_recorded_per_pair() {
        for (input, escape) in [
            ("v=%ZZ", "%ZZ"),
            ("v=a%4", "%4"),
            ("v=%", "%"),
            ("v=%G1", "%G1"),
            ("v=%1G", "%1G"),
            ("v=%+1", "%+1"),
            ("v=%-1", "%-1"),
        ] {
            let p = Params::decode(input, None);
            assert_eq!(p.len(), 1, "{input}");
            let value = p.iter().next().map(|p| p.value.clone());
            match value {
                Some(Err(DecodeError::MalformedEscape { escape: got, .. })) => {
                    assert_eq!(got, escape, "{input}")
                }
                other => panic!("{input}: {other:?}"),
            }
            assert_eq!(p.value("v"), None);
        }
        // A malformed name, a good value; the other pairs are unaffected.
        let p = Params::decode("a=1&b%zz=2&c=3", None);
        assert_eq!(p.len(), 3);
        let bad = p.iter().nth(1);
        assert!(matches!(
            bad.map(|p| &p.name),
            Some(Err(DecodeError::MalformedEscape { offset: 1, .. }))
        ));
        assert_eq!(bad.map(|p| p.raw_name), Some(&b"b%zz"[..]));
        assert_eq!(bad.and_then(Param::value_str), Some("2"));
        assert_eq!(p.value("c"), Some("3"));
    }

    #[test]
    fn escape_error_shows_non_printable_bytes_and_names_the_escape() {
        let body = b"v=%\xff\x01";
        let p = Params::decode("", Some(body));
        let err = p.iter().next().map(|p| p.value.clone());
        let Some(Err(e)) = err else { panic!("{err:?}") };
        assert_eq!(
            e.to_string(),
            "malformed percent-escape `%\\xff\\x01` at byte 0"
        );
    }

    #[test]
    fn decoded_bytes_must_be_utf8() {
        let p = Params::decode("v=%C3%28&w=%C3%A9", None);
        let first = p.iter().next().map(|p| p.value.clone());
        assert_eq!(first, Some(Err(DecodeError::NotUtf8 { valid_up_to: 0 })));
        assert_eq!(p.value("w"), Some("é"));
        // A lone continuation byte in a name.
        let p = Params::decode("a%80b=1", None);
        assert!(matches!(
            p.iter().next().map(|p| &p.name),
            Some(Err(DecodeError::NotUtf8 { valid_up_to: 1 }))
        ));
    }

    #[test]
    fn body_is_bytes_each_pair_checked_alone() {
        // Raw invalid UTF-8 in one body pair spoils only that pair.
        let body: &[u8] = b"a=\xff&b=%E2%9C%93&c=ok";
        let p = Params::decode("", Some(body));
        assert_eq!(p.len(), 3);
        assert!(matches!(
            p.get("a").map(|p| &p.value),
            Some(Err(DecodeError::NotUtf8 { .. }))
        ));
        assert_eq!(p.value("b"), Some("✓"));
        assert_eq!(p.value("c"), Some("ok"));
        // Escapes and `+` mix freely within one value.
        assert_eq!(
            Params::decode("", Some(b"x=%C3%A9+%C3%A9")).value("x"),
            Some("é é")
        );
    }

    #[test]
    fn query_first_then_body_with_sources() {
        let p = Params::decode("a=1&b=2", Some(b"c=3&a=4"));
        assert_eq!(
            pairs(&p),
            owned(&[("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")])
        );
        let sources: Vec<_> = p.iter().map(|p| p.source).collect();
        assert_eq!(
            sources,
            [Source::Query, Source::Query, Source::Body, Source::Body]
        );
        let a: Vec<_> = p.all_named("a").filter_map(Param::value_str).collect();
        assert_eq!(a, ["1", "4"]);
        assert_eq!(p.value("a"), Some("1"));
        assert_eq!(p.get("A"), None, "names are case-sensitive");
        assert_eq!((&p).into_iter().count(), 4);
        assert!(!p.too_many());
        assert_eq!(p.unread().count(), 0);
    }

    #[test]
    fn empty_body_adds_nothing() {
        let p = Params::decode("a=1", Some(b""));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn cap_of_one_thousand_parameters() {
        let exactly: String = (0..MAX_PARAMS).map(|i| format!("p{i}=v&")).collect();
        let p = Params::decode(&exactly, None);
        assert_eq!(p.len(), MAX_PARAMS);
        assert!(!p.too_many());

        let over = format!("{exactly}Action=X&last=1");
        let p = Params::decode(&over, Some(b"b=2"));
        assert_eq!(p.len(), MAX_PARAMS);
        assert!(p.too_many());
        let rest: Vec<_> = p
            .unread()
            .map(|p| (p.name_str().map(str::to_owned), p.source))
            .collect();
        assert_eq!(
            rest,
            [
                (Some("Action".to_owned()), Source::Query),
                (Some("last".to_owned()), Source::Query),
                (Some("b".to_owned()), Source::Body)
            ]
        );
    }

    #[test]
    fn cap_counts_query_and_body_together() {
        let query: String = (0..MAX_PARAMS - 1).map(|i| format!("q{i}=v&")).collect();
        let p = Params::decode(&query, Some(b"b1=1&b2=2&b3=3"));
        assert!(p.too_many());
        assert_eq!(p.len(), MAX_PARAMS);
        assert_eq!(p.iter().last().and_then(Param::name_str), Some("b1"));
        let rest: Vec<_> = p
            .unread()
            .filter_map(|p| p.name_str().map(str::to_owned))
            .collect();
        assert_eq!(rest, ["b2", "b3"]);

        // Decoding again into the same `Params` forgets all of it.
        let mut p = p;
        p.decode_into("a=1", Some(b"b=2"));
        assert!(!p.too_many());
        assert_eq!(p.len(), 2);
        assert_eq!(p.unread().count(), 0);
        assert_eq!(
            (p.value("a"), p.value("b"), p.value("q1")),
            (Some("1"), Some("2"), None)
        );
    }

    #[test]
    fn huge_input_of_empty_segments_is_not_parameters() {
        let many_amps = "&".repeat(100_000);
        let p = Params::decode(&many_amps, None);
        assert!(p.is_empty());
        assert!(!p.too_many());
    }

    #[test]
    fn source_display() {
        assert_eq!(Source::Query.to_string(), "query string");
        assert_eq!(Source::Body.to_string(), "form body");
    }

    #[test]
    fn find_special_is_exact_at_every_position() {
        crate::raw::swar::each_byte_at_each_position(|text, at| {
            // A second special byte later must not hide or move the first.
            if at + 3 < text.len() {
                text[at + 3] = b'&';
            }
            for from in 0..=text.len() {
                let want =
                    (from..text.len()).find(|&i| matches!(text[i], b'&' | b'=' | b'%' | b'+'));
                assert_eq!(find_special(text, from), want, "{text:?} from {from}");
            }
        });
        assert_eq!(find_special(b"", 0), None);
    }

    proptest::proptest! {
        /// The query-string path (names and values borrowed from the `&str` when plain) and
        /// the body path (every component checked as bytes) decode any text alike.
        #[test]
        fn query_and_body_paths_agree(text in "[a=&%+2Fé\\x00]{0,24}") {
            let from_query: Vec<Param<'_>> = Pairs::from_text(&text, Source::Query).collect();
            let from_body: Vec<Param<'_>> = Pairs::new(text.as_bytes(), Source::Query).collect();
            proptest::prop_assert_eq!(from_query, from_body);
        }
    }
}
