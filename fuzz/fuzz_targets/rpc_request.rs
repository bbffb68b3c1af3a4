//! Arbitrary requests into `Service::answer` over the reference's example tasks.
//!
//! Input layout (so that a request line of `tests/data/contract/requests.txt` with one flag
//! byte in front is a meaningful seed):
//!
//! `[flags] query 0xFF body 0xFF header`
//!
//! The query runs to the first `0xFF` (a byte UTF-8 never holds; a query that is not UTF-8 is
//! read lossily, as an HTTP server would have refused or re-encoded it), the header from the
//! last `0xFF`, and the body is everything between (so it may hold `0xFF` itself). Flags:
//! bit 0 `POST`, bit 1 `Content-Type: application/x-www-form-urlencoded`, bit 2 PascalCase
//! keys, bit 3 the header value is also the caller's request id, bit 4 a signature verifier
//! is on and the header value is also sent as `Authorization`.
//!
//! Checked: never a panic (libfuzzer-sys aborts even on a panic the service catches); the
//! answer is one JSON object that is either a success (`code` "", `data.simpleOTATaskInfo` an
//! array of unfinished tasks, HTTP 200) or an error (a known non-empty code, a non-empty
//! message under the envelope's key, the code's HTTP status); the request id is the caller's
//! or a fresh lower-case UUID. Whatever the fast path (`parse_plain`) accepts of the query
//! string, the full rules (decoding, `parse_request`) accept with the same result.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use ota_index::rpc::{
    parse_plain, parse_request, ErrorCode, HttpRequest, KeyCase, Params, Service, Verifier,
};
use ota_index::{Engine, TaskStatus};
use serde_json::Value;

const TASKS: &[u8] = include_bytes!("../../tests/data/contract/tasks.jsonl");

/// Every code of reference section 5, to map a written code back to its `ErrorCode`.
const CODES: [ErrorCode; 14] = [
    ErrorCode::InvalidActionNotFound,
    ErrorCode::MissingParameter,
    ErrorCode::InvalidParameter,
    ErrorCode::InvalidIotId,
    ErrorCode::InvalidFormattedProductKey,
    ErrorCode::InvalidFormattedDeviceName,
    ErrorCode::InvalidFormattedParameter,
    ErrorCode::InstanceNotFound,
    ErrorCode::SignatureDoesNotMatch,
    ErrorCode::InvalidAccessKeyIdNotFound,
    ErrorCode::SignatureNonceUsed,
    ErrorCode::InvalidTimeStampExpired,
    ErrorCode::InvalidTimeStampFormat,
    ErrorCode::SystemException,
];

const TASK_KEYS: [&str; 13] = [
    "destVersion",
    "deviceName",
    "firmwareId",
    "iotId",
    "jobId",
    "moduleName",
    "productKey",
    "productName",
    "srcVersion",
    "taskId",
    "taskStatus",
    "utcCreate",
    "utcModified",
];

fn services() -> &'static [Service; 4] {
    static SERVICES: std::sync::OnceLock<[Service; 4]> = std::sync::OnceLock::new();
    SERVICES.get_or_init(|| {
        let engine = Engine::new();
        engine
            .load_jsonl(TASKS)
            .expect("the contract examples load");
        let verifier = || Verifier::new([("testid".to_string(), "testsecret".to_string())]);
        let plain = Service::new(engine);
        [
            plain.clone(),
            plain.clone().with_case(KeyCase::Pascal),
            plain.clone().with_verifier(verifier()),
            plain.with_case(KeyCase::Pascal).with_verifier(verifier()),
        ]
    })
}

/// `camel` in the answer's key style.
fn key(case: KeyCase, camel: &str) -> String {
    match case {
        KeyCase::Camel => camel.to_owned(),
        _ => {
            let mut chars = camel.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            first.into_iter().chain(chars).collect()
        }
    }
}

fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (query, body, header) = match rest.iter().position(|&b| b == 0xFF) {
        None => (rest, &[][..], None),
        Some(first) => {
            let last = rest.iter().rposition(|&b| b == 0xFF).unwrap_or(first);
            if last == first {
                (&rest[..first], &rest[first + 1..], None)
            } else {
                (
                    &rest[..first],
                    &rest[first + 1..last],
                    Some(&rest[last + 1..]),
                )
            }
        }
    };
    let query: Cow<'_, str> = String::from_utf8_lossy(query);
    let header: Option<Cow<'_, str>> = header.map(String::from_utf8_lossy);
    if let Some(fast) = parse_plain(&query) {
        let params = Params::decode(&query, None);
        assert_eq!(parse_request(&params, None).ok(), Some(fast), "{query:?}");
    }

    let signed = flags & 0x10 != 0;
    let case = if flags & 0x04 != 0 {
        KeyCase::Pascal
    } else {
        KeyCase::Camel
    };
    let service = &services()[usize::from(signed) * 2 + usize::from(case == KeyCase::Pascal)];

    let mut headers: Vec<(&str, &str)> = Vec::new();
    if flags & 0x02 != 0 {
        headers.push((
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ));
    }
    if let Some(h) = header.as_deref() {
        headers.push(("x-acs-action", h));
        if signed {
            headers.push(("Authorization", h));
        }
    }
    let request_id = header.as_deref().filter(|_| flags & 0x08 != 0);
    let request = HttpRequest {
        method: if flags & 0x01 != 0 { "POST" } else { "GET" },
        query: &query,
        body,
        headers: &headers,
        request_id,
    };
    let mut out = b"prefix".to_vec();
    let status = service.answer(&request, &mut out);
    assert!(out.starts_with(b"prefix"), "answer must append");
    let text = std::str::from_utf8(&out[6..]).expect("the answer is UTF-8");
    let answer: Value = serde_json::from_str(text).expect("the answer is JSON");
    let object = answer.as_object().expect("the answer is a JSON object");

    let id = object[&key(case, "requestId")]
        .as_str()
        .expect("requestId is a string");
    match request_id {
        Some(given) => assert_eq!(id, given),
        None => assert!(is_uuid(id), "fresh request id {id:?}"),
    }
    let code = object[&key(case, "code")]
        .as_str()
        .expect("code is a string");
    match object[&key(case, "success")] {
        Value::Bool(true) => {
            assert_eq!(code, "", "success with a code: {text}");
            assert_eq!(status, 200, "success with HTTP {status}");
            assert_eq!(object.len(), 4, "success keys: {text}");
            let list = object[&key(case, "data")][&key(case, "simpleOTATaskInfo")]
                .as_array()
                .expect("data.simpleOTATaskInfo is an array");
            for task in list {
                let task = task.as_object().expect("a task is an object");
                assert_eq!(task.len(), TASK_KEYS.len(), "task keys: {text}");
                for k in TASK_KEYS {
                    assert!(task[&key(case, k)].is_string(), "{k} of {text}");
                }
                let status = task[&key(case, "taskStatus")].as_str().unwrap_or_default();
                assert!(
                    TaskStatus::parse(status).is_some_and(TaskStatus::is_unfinished),
                    "finished task answered: {text}"
                );
            }
        }
        Value::Bool(false) => {
            let code = CODES
                .into_iter()
                .find(|c| c.as_str() == code)
                .unwrap_or_else(|| panic!("unknown error code {code:?}"));
            assert_ne!(code, ErrorCode::SystemException, "internal error: {text}");
            assert_eq!(status, code.http_status(), "HTTP status of {text}");
            let message_key = if status == 200 {
                "errorMessage"
            } else {
                "message"
            };
            let message = object[&key(case, message_key)]
                .as_str()
                .expect("the message is a string");
            assert!(!message.is_empty(), "empty message: {text}");
            assert_eq!(object.len(), 4, "error keys: {text}");
            if !signed {
                assert!(
                    !matches!(
                        code,
                        ErrorCode::SignatureDoesNotMatch
                            | ErrorCode::InvalidAccessKeyIdNotFound
                            | ErrorCode::SignatureNonceUsed
                            | ErrorCode::InvalidTimeStampExpired
                            | ErrorCode::InvalidTimeStampFormat
                    ),
                    "signature error without a verifier: {text}"
                );
            }
        }
        ref other => panic!("success is {other:?}: {text}"),
    }
});
