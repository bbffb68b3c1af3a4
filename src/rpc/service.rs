//! One call from a received request to the platform's response bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::SystemTime;

use smallvec::SmallVec;

use crate::engine::Engine;
use crate::model::Field;
use crate::query::{DeviceRef, QueryError};
use crate::rpc::error::{ErrorCode, RpcError};
use crate::rpc::params::{raw_segments, Params, Source};
use crate::rpc::request::{
    parse_plain, parse_plain_after, parse_request, usual_lead, Lead, ACTION_HEADER,
};
use crate::rpc::response::{new_request_id, write_error, write_success, KeyCase};
use crate::rpc::signature::{SignedRequest, Verifier};

/// Longest query string (or form body) answered, in bytes; longer is `InvalidParameter`.
/// The longest valid request (every parameter at its longest, 100 status list entries) is
/// well under 8 KiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request as received over HTTP: everything borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpRequest<'a> {
    /// `GET` or `POST` (another method is answered like `GET`: query string only).
    pub method: &'a str,
    /// The query string, without the `?`.
    pub query: &'a str,
    /// The body; read as a form only for `POST` with
    /// `Content-Type: application/x-www-form-urlencoded`.
    pub body: &'a [u8],
    /// The headers (names in any case).
    pub headers: &'a [(&'a str, &'a str)],
    /// The request id to answer with; `None`: a fresh random UUID.
    pub request_id: Option<&'a str>,
}

impl<'a> HttpRequest<'a> {
    /// A `GET` with this query string.
    pub fn get(query: &'a str) -> HttpRequest<'a> {
        HttpRequest {
            method: "GET",
            query,
            ..HttpRequest::default()
        }
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn form_body(&self) -> Option<&'a [u8]> {
        let is_form = self.header("content-type").is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
        (self.method.eq_ignore_ascii_case("POST") && is_form && !self.body.is_empty())
            .then_some(self.body)
    }
}

/// The part of a request line that holds parameters: a query string as is (a `?` or `#`
/// inside it is data), without a leading `?`; or, for a whole URL (`scheme://…`, a path
/// starting with `/`, or an address without a scheme: whatever comes before the first `?`
/// when that holds no `=` or `&`, which a query string's first parameter would), the part
/// after its first `?`, its fragment dropped.
///
/// ```
/// use ota_index::rpc::query_part;
/// assert_eq!(query_part("?Action=X&IotId=1"), "Action=X&IotId=1");
/// assert_eq!(query_part("http://127.0.0.1:8686/?Action=X#top"), "Action=X");
/// assert_eq!(query_part("/?Action=X"), "Action=X");
/// assert_eq!(query_part("127.0.0.1:8686/?Action=X"), "Action=X");
/// assert_eq!(query_part("Action=X&IotId=a?b#c"), "Action=X&IotId=a?b#c");
/// ```
pub fn query_part(line: &str) -> &str {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix('?') {
        return rest;
    }
    let is_url = line.starts_with('/')
        || line.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic())
        })
        || line
            .split_once('?')
            .is_some_and(|(address, _)| !address.contains(['=', '&']));
    if !is_url {
        return line;
    }
    let query = line.split_once('?').map_or("", |(_, q)| q);
    query.split_once('#').map_or(query, |(q, _)| q)
}

/// The RPC endpoint: an engine, the key style of the answers, and optionally the signature
/// check. `Send + Sync`; cheap to clone.
///
/// ```
/// use ota_index::rpc::{HttpRequest, KeyCase, Service};
/// use ota_index::Engine;
///
/// let service = Service::new(Engine::new());
/// let mut out = Vec::new();
/// let status = service.answer(
///     &HttpRequest { request_id: Some("r1"), ..HttpRequest::get("Action=ListOTAUnfinishedTaskByDevice&IotId=dev-1") },
///     &mut out,
/// );
/// assert_eq!(status, 200);
/// assert_eq!(out, br#"{"code":"","data":{"simpleOTATaskInfo":[]},"requestId":"r1","success":true}"#);
/// ```
#[derive(Clone)]
pub struct Service {
    engine: Engine,
    case: KeyCase,
    verifier: Option<std::sync::Arc<Verifier>>,
}

impl Service {
    /// Answers from `engine` in camelCase, unsigned.
    pub fn new(engine: Engine) -> Service {
        Service {
            engine,
            case: KeyCase::Camel,
            verifier: None,
        }
    }

    /// Answers in this key style.
    #[must_use]
    pub fn with_case(mut self, case: KeyCase) -> Service {
        self.case = case;
        self
    }

    /// Requires every request to be signed with one of the verifier's keys (reference
    /// section 6); the signature is checked before any rule of section 3.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Verifier) -> Service {
        self.verifier = Some(std::sync::Arc::new(verifier));
        self
    }

    /// The engine answered from.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The key style of the answers.
    pub fn case(&self) -> KeyCase {
        self.case
    }

    /// Writes the response to `request` into `out` (appending) and returns its HTTP status.
    /// Never panics: anything unexpected is answered `iot.system.SystemException` (500).
    pub fn answer(&self, request: &HttpRequest<'_>, out: &mut Vec<u8>) -> u16 {
        // The clock matters only to signatures.
        let now = if self.verifier.is_some() {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH
        };
        self.answer_at(request, now, out)
    }

    /// [`Service::answer`] with the clock given (for signature windows in tests).
    pub fn answer_at(&self, request: &HttpRequest<'_>, now: SystemTime, out: &mut Vec<u8>) -> u16 {
        let fresh;
        let request_id = match request.request_id {
            Some(id) => id,
            None => {
                fresh = new_request_id();
                &fresh
            }
        };
        let start = out.len();
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.respond(request, now, request_id, out)
        }));
        let error = match result {
            Ok(Ok(())) => return 200,
            Ok(Err(error)) => error,
            Err(_) => RpcError::new(
                ErrorCode::SystemException,
                "an unexpected internal error occurred; the request was not answered",
            ),
        };
        out.truncate(start);
        write_error(out, self.case, request_id, &error);
        error.http_status()
    }

    fn respond(
        &self,
        request: &HttpRequest<'_>,
        now: SystemTime,
        request_id: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), RpcError> {
        let body = request.form_body();
        let too_long = |what: &str, len: usize| {
            RpcError::new(
                ErrorCode::InvalidParameter,
                format!(
                    "the {what} is {len} bytes, longer than the {MAX_REQUEST_BYTES}-byte limit"
                ),
            )
        };
        if request.query.len() > MAX_REQUEST_BYTES {
            return Err(too_long("query string", request.query.len()));
        }
        if let Some(body) = body.filter(|b| b.len() > MAX_REQUEST_BYTES) {
            return Err(too_long("form body", body.len()));
        }
        // The device's first cache misses overlap checking the request (a hint: the request
        // may yet be refused, or name its device or instance otherwise).
        let lead = usual_lead(request.query);
        // The usual request (a plain `IotId`, no form body, no signature) keeps its hint's
        // shard lock for its query: nothing but parsing comes between them, and the lock is
        // then taken once a query instead of three times (with `parking_lot`'s lock, on a
        // 16-core machine, 16 readers answered 5 % and 14 % more in two alternating pairs of
        // runs; no change on two CPUs).
        let held = match lead {
            Some(lead) if body.is_none() && self.verifier.is_none() => {
                self.engine.hold_device(lead.iot)
            }
            _ => None,
        };
        let hint = if held.is_some() {
            None
        } else {
            hinted_device(request.query, lead).and_then(|d| self.engine.prefetch_device("", d))
        };
        let mut params = Params::default();
        // The usual request (no form body, nothing to decode, no error, no signature to
        // check) takes the fast path, which gives what the full rules would; anything else is
        // decoded and checked in full. Either way the hint's second step then starts loading
        // the device, its first rows and its `iotId` bytes together.
        let plain = match (body, &self.verifier, lead) {
            // The hint read the first two pairs: the fast path goes on after them.
            (None, None, Some(lead)) => parse_plain_after(request.query, lead),
            (None, None, None) => parse_plain(request.query),
            _ => None,
        };
        let parsed = match plain {
            Some(parsed) => {
                // The fast path answers only the default instance's hint (`parse_plain`
                // takes `IotInstanceId` too: a hint for another instance is dropped).
                if let Some(hint) = hint.filter(|_| parsed.query().instance_name().is_empty()) {
                    self.engine.prefetch_device_record(hint);
                }
                if let Some(h) = &held {
                    h.prefetch_record();
                }
                parsed
            }
            None => {
                params.decode_into(request.query, body);
                if let Some(hint) =
                    hint.filter(|_| params.value("IotInstanceId").is_none_or(str::is_empty))
                {
                    self.engine.prefetch_device_record(hint);
                }
                if let Some(verifier) = &self.verifier {
                    self.verify(verifier, request, &params, now)?;
                }
                parse_request(&params, request.header(ACTION_HEADER))?
            }
        };
        // The held hint's lock serves the default instance's query only.
        let query = parsed.query();
        let held = held.filter(|_| query.instance_name().is_empty());
        let answer = self
            .engine
            .unfinished_held(&query, held)
            .map_err(query_error)?;
        write_success(out, self.case, request_id, answer.iter());
        Ok(())
    }

    fn verify(
        &self,
        verifier: &Verifier,
        request: &HttpRequest<'_>,
        params: &Params<'_>,
        now: SystemTime,
    ) -> Result<(), RpcError> {
        let mut query: SmallVec<[(&str, &str); 16]> = SmallVec::new();
        let mut form: SmallVec<[(&str, &str); 4]> = SmallVec::new();
        for p in params.iter() {
            let (Some(name), Some(value)) = (p.name_str(), p.value_str()) else {
                return Err(RpcError::new(
                    ErrorCode::SignatureDoesNotMatch,
                    "the request holds a parameter that is not valid form encoding, so its signature cannot match",
                ));
            };
            match p.source {
                Source::Query => query.push((name, value)),
                Source::Body => form.push((name, value)),
            }
        }
        if params.too_many() {
            return Err(RpcError::new(
                ErrorCode::InvalidParameter,
                "too many parameters to verify the signature",
            ));
        }
        verifier.verify(
            &SignedRequest {
                method: request.method,
                query_params: &query,
                body_params: &form,
                headers: request.headers,
                body: request.body,
            },
            now,
        )
    }
}

/// The RPC error for an engine query error (format errors are caught by `parse_request`
/// first; this mapping keeps the typed API and the wire in agreement anyway).
fn query_error(error: QueryError) -> RpcError {
    let code = match &error {
        QueryError::InstanceNotFound(_) => ErrorCode::InstanceNotFound,
        QueryError::InvalidField(e) => match e.field {
            Field::IotId => ErrorCode::InvalidIotId,
            Field::ProductKey => ErrorCode::InvalidFormattedProductKey,
            Field::DeviceName => ErrorCode::InvalidFormattedDeviceName,
            _ => ErrorCode::InvalidFormattedParameter,
        },
        QueryError::FinishedStatus(_) => ErrorCode::InvalidFormattedParameter,
    };
    let message = match &error {
        QueryError::InstanceNotFound(name) => {
            format!("The instance named by parameter IotInstanceId does not exist: {name:?}")
        }
        other => other.to_string(),
    };
    RpcError::new(code, message)
}

/// The device a hint loads: the usual request's `IotId` as [`usual_lead`] read it (no scan
/// of the pairs), else what [`plain_device`] finds.
fn hinted_device<'q>(query: &'q str, lead: Option<Lead<'q>>) -> Option<DeviceRef<'q>> {
    match lead {
        Some(lead) => Some(DeviceRef::IotId(lead.iot)),
        None => plain_device(query),
    }
}

/// The device the query string names, read from its text before it is decoded: what a hint
/// can use. The first `IotId` pair with a value, else the first `ProductKey` and `DeviceName`
/// pairs, when their values need no decoding.
fn plain_device(query: &str) -> Option<DeviceRef<'_>> {
    let (mut product_key, mut device_name) = (None, None);
    for segment in raw_segments(query) {
        let Some(value) = segment.value else {
            continue;
        };
        let plain = (!segment.escaped && !value.is_empty()).then_some(value);
        match segment.name {
            "IotId" => {
                if let Some(iot) = plain {
                    return Some(DeviceRef::IotId(iot));
                }
            }
            "ProductKey" if product_key.is_none() => product_key = Some(plain),
            "DeviceName" if device_name.is_none() => device_name = Some(plain),
            _ => {}
        }
    }
    Some(DeviceRef::Name {
        product_key: product_key??,
        device_name: device_name??,
    })
}

#[cfg(test)]
mod tests {
    use super::{hinted_device, plain_device, usual_lead, DeviceRef};

    #[test]
    fn plain_device_reads_only_whole_plain_first_pairs() {
        let iot = |q| match plain_device(q) {
            Some(DeviceRef::IotId(id)) => Some(id),
            _ => None,
        };
        assert_eq!(iot("IotId=abc"), Some("abc"));
        assert_eq!(iot("Action=X&IotId=abc&ModuleName=m"), Some("abc"));
        assert_eq!(iot("Action=X&IotId=&ModuleName=m"), None);
        assert_eq!(iot("Action=X&IotId=a%62c"), None);
        assert_eq!(iot("Action=X&IotId=a+c"), None);
        assert_eq!(iot("XIotId=abc&IotId=def"), Some("def"));
        assert_eq!(iot("IotId=&IotId=def"), Some("def"));
        assert_eq!(iot("IotIds=abc"), None);
        assert_eq!(iot("Format=IotId=abc"), None);
        assert_eq!(iot("IoTID=abc"), None);
        assert_eq!(iot("IotId"), None);
        assert_eq!(iot("智=1&IotId=智能"), Some("智能"));
        // The usual layout's shortcut (the hint's device) gives what the scan gives.
        fn iot_of(q: &str) -> Option<&str> {
            let hinted = match hinted_device(q, usual_lead(q)) {
                Some(DeviceRef::IotId(id)) => Some(id),
                _ => None,
            };
            let scanned = match plain_device(q) {
                Some(DeviceRef::IotId(id)) => Some(id),
                _ => None,
            };
            assert_eq!(hinted, scanned, "{q}");
            hinted
        }
        let lead = "Action=ListOTAUnfinishedTaskByDevice&IotId=";
        for (rest, want) in [
            ("abc", Some("abc")),
            ("abc&ModuleName=m", Some("abc")),
            ("abc&IotId=def", Some("abc")),
            ("", None),
            ("&IotId=def", Some("def")),
            ("a%62c", None),
            ("a+c&IotId=def", Some("def")),
            ("智能&TaskStatus=QUEUED", Some("智能")),
        ] {
            let q = format!("{lead}{rest}");
            assert_eq!(iot_of(&q), want, "{q}");
            let scanned = format!("Action=ListOTAUnfinishedTaskByDevicE&IotId={rest}");
            assert_eq!(iot_of(&scanned), want, "{scanned}");
        }
        assert_eq!(iot(""), None);
        let name = |q| match plain_device(q) {
            Some(DeviceRef::Name {
                product_key,
                device_name,
            }) => Some((product_key, device_name)),
            _ => None,
        };
        assert_eq!(
            name("Action=X&ProductKey=pk&DeviceName=dn"),
            Some(("pk", "dn"))
        );
        assert_eq!(name("DeviceName=dn&ProductKey=pk"), Some(("pk", "dn")));
        assert_eq!(
            name("IotId=&DeviceName=dn&ProductKey=pk"),
            Some(("pk", "dn"))
        );
        assert_eq!(name("IotId=i&DeviceName=dn&ProductKey=pk"), None);
        assert_eq!(name("ProductKey=pk"), None);
        assert_eq!(name("ProductKey=pk&DeviceName="), None);
        assert_eq!(name("ProductKey=p%6B&DeviceName=dn"), None);
        assert_eq!(name("ProductKey=pk&XDeviceName=dn"), None);
        assert_eq!(name("ProductKey=&ProductKey=pk&DeviceName=dn"), None);
        assert_eq!(
            name("Pk=1&ProductKey=pk&Dn=2&DeviceName=dn&IotId="),
            Some(("pk", "dn"))
        );
    }
}
