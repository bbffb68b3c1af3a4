//! Hostile input through the public API: every documented limit at and past its edge, and the
//! malformed inputs an attacker or a broken producer sends. Each case checks that the error
//! says what was wrong (the parameter, field or limit) and, where the input is a write, that
//! the store is unchanged. `SECURITY.md` lists these cases with what the crate does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ota_index::rpc::params::MAX_PARAMS;
use ota_index::rpc::signature::{
    percent_encode, sign_rpc_v1, SignedRequest, Verifier, MAX_AUTHORIZATION_LEN, MAX_HEADERS,
    MAX_SIGNED_HEADERS,
};
use ota_index::rpc::{ErrorCode, HttpRequest, Service, MAX_REQUEST_BYTES};
use ota_index::{
    Engine, Field, LoadError, LoadErrorKind, TaskRecord, Timestamp, Violation, WriteError,
    LOAD_CHUNK_BYTES, MAX_LINE_BYTES, MAX_LOAD_BYTES,
};
use serde_json::Value;

const EXAMPLES: &str = include_str!("data/contract/tasks.jsonl");
const ACTION: &str = "Action=ListOTAUnfinishedTaskByDevice";
/// A device of the examples with three unfinished tasks.
const DEVICE: &str = "TfmUAeJjQQhCPH84UVNn0010c6****";

/// The first example record, one line, camelCase.
fn seed_line() -> &'static str {
    EXAMPLES
        .lines()
        .next()
        .expect("the examples have a first line")
}

fn engine() -> Engine {
    let engine = Engine::new();
    engine
        .load_jsonl(EXAMPLES.as_bytes())
        .expect("the examples load");
    engine
}

fn sorted(engine: &Engine) -> Vec<TaskRecord> {
    let mut tasks = engine.tasks();
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

fn validate(engine: &Engine) {
    if let Err(broken) = engine.internal_validate() {
        panic!("invariant broken: {broken}");
    }
}

/// Loads `input` into a store holding the examples, expects a refusal, checks the store is
/// unchanged and returns the error.
fn refused_load(input: &[u8]) -> LoadError {
    let engine = engine();
    let before = sorted(&engine);
    let error = engine
        .load_jsonl(input)
        .expect_err("the hostile load is refused");
    assert_eq!(
        sorted(&engine),
        before,
        "a refused load changed the store ({error})"
    );
    validate(&engine);
    assert!(!error.to_string().is_empty());
    error
}

/// An answer: HTTP status, code ("" on success), message (or the task count on success).
#[derive(Debug)]
struct Answer {
    status: u16,
    code: String,
    message: String,
    tasks: usize,
}

fn answer_with(service: &Service, request: &HttpRequest<'_>, now: Option<SystemTime>) -> Answer {
    let mut out = Vec::new();
    let status = match now {
        Some(now) => service.answer_at(request, now, &mut out),
        None => service.answer(request, &mut out),
    };
    let json: Value = serde_json::from_slice(&out).expect("every answer is JSON");
    let text = |k: &str| json.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let message = if json.get("errorMessage").is_some() {
        text("errorMessage")
    } else {
        text("message")
    };
    let tasks = json
        .pointer("/data/simpleOTATaskInfo")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Answer {
        status,
        code: text("code"),
        message,
        tasks,
    }
}

fn get(query: &str) -> Answer {
    answer_with(&Service::new(engine()), &HttpRequest::get(query), None)
}

fn post_form(query: &str, body: &[u8]) -> Answer {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let request = HttpRequest {
        method: "POST",
        query,
        body,
        headers: &headers,
        request_id: None,
    };
    answer_with(&Service::new(engine()), &request, None)
}

fn assert_error(answer: &Answer, code: ErrorCode, mentions: &[&str]) {
    assert_eq!(answer.code, code.as_str(), "{answer:?}");
    assert_eq!(answer.status, code.http_status(), "{answer:?}");
    for word in mentions {
        assert!(
            answer.message.contains(word),
            "message should name {word:?}: {answer:?}"
        );
    }
}

// ---- request size ------------------------------------------------------------------------

/// `MAX_REQUEST_BYTES` (64 KiB): a query string up to the limit is read, one byte more is
/// `InvalidParameter` naming the query string and the limit. The padding sits in an ignored
/// parameter, so only the length decides.
#[test]
fn query_string_longer_than_the_limit_is_refused() {
    let base = format!("{ACTION}&IotId={DEVICE}&Format=");
    let at_limit = format!("{base}{}", "x".repeat(MAX_REQUEST_BYTES - base.len()));
    assert_eq!(at_limit.len(), MAX_REQUEST_BYTES);
    let ok = get(&at_limit);
    assert_eq!(
        (ok.status, ok.code.as_str(), ok.tasks),
        (200, "", 3),
        "{ok:?}"
    );

    let over = format!("{at_limit}x");
    let limit = MAX_REQUEST_BYTES.to_string();
    assert_error(
        &get(&over),
        ErrorCode::InvalidParameter,
        &["query string", &limit],
    );
}

/// A 1 MB value in a parameter the query ignores (`Format`) is refused by length before any
/// decoding: in the query string and in a form body alike.
#[test]
fn megabyte_value_in_an_ignored_parameter_is_refused() {
    let big = "A".repeat(1 << 20);
    let query = format!("{ACTION}&IotId={DEVICE}&Format={big}");
    assert_error(
        &get(&query),
        ErrorCode::InvalidParameter,
        &["query string", "limit"],
    );
    let body = format!("Format={big}");
    assert_error(
        &post_form(&format!("{ACTION}&IotId={DEVICE}"), body.as_bytes()),
        ErrorCode::InvalidParameter,
        &["form body", "limit"],
    );
}

/// A body that is not a form (a `GET`, or no form `Content-Type`) is never read, whatever its
/// size.
#[test]
fn a_large_body_that_is_not_a_form_is_ignored() {
    let body = vec![b'%'; MAX_REQUEST_BYTES * 2];
    let query = format!("{ACTION}&IotId={DEVICE}");
    let request = HttpRequest {
        method: "POST",
        query: &query,
        body: &body,
        headers: &[("Content-Type", "application/json")],
        request_id: None,
    };
    let answer = answer_with(&Service::new(engine()), &request, None);
    assert_eq!((answer.status, answer.tasks), (200, 3), "{answer:?}");
}

// ---- parameter count ---------------------------------------------------------------------

/// `MAX_PARAMS` (1000) pairs, query string and body together, are read; one more is
/// `InvalidParameter` naming the limit, however the pairs are split between the two.
#[test]
fn more_parameters_than_the_limit_are_refused() {
    let head = format!("{ACTION}&IotId={DEVICE}");
    let fillers =
        |n: usize, tag: &str| -> String { (0..n).map(|i| format!("&{tag}{i}=v")).collect() };
    let at_limit = format!("{head}{}", fillers(MAX_PARAMS - 2, "p"));
    let ok = get(&at_limit);
    assert_eq!((ok.status, ok.tasks), (200, 3), "{ok:?}");

    let limit = MAX_PARAMS.to_string();
    let over = format!("{at_limit}&one=more");
    assert_error(&get(&over), ErrorCode::InvalidParameter, &[&limit]);

    // Split: half in the query string, the rest in a form body.
    let query = format!("{head}{}", fillers(500, "q"));
    let body = fillers(MAX_PARAMS - 501, "b");
    assert_error(
        &post_form(&query, &body.as_bytes()[1..]),
        ErrorCode::InvalidParameter,
        &[&limit],
    );
    // Empty segments (`&&&`) are not parameters.
    let empties = format!("{head}{}", "&".repeat(MAX_REQUEST_BYTES - head.len()));
    assert_eq!(get(&empties).tasks, 3);
}

// ---- TaskStatusList.N ----------------------------------------------------------------------

/// `N` is checked as text (at most three digits, 1 to 100): a huge `N` is a malformed name,
/// refused without an allocation sized by `N` (an index of 10^30 or 2^64 would otherwise
/// abort the process).
#[test]
fn task_status_list_with_a_huge_index_is_malformed() {
    for n in [
        "101",
        "4294967296",
        "18446744073709551616",
        "1000000000000000000000000000000",
        "99999999999999999999999999999999999999999999999999999999999999999999",
    ] {
        let query = format!("{ACTION}&IotId={DEVICE}&TaskStatusList.{n}=QUEUED");
        assert_error(
            &get(&query),
            ErrorCode::InvalidParameter,
            &["TaskStatusList", "100"],
        );
    }
    let ok = get(&format!(
        "{ACTION}&IotId={DEVICE}&TaskStatusList.100=QUEUED"
    ));
    assert_eq!((ok.status, ok.tasks), (200, 1), "{ok:?}");
    // All 100 indexes at once is fine (duplicates of a status are allowed).
    let all: String = (1..=100)
        .map(|i| format!("&TaskStatusList.{i}=CONFIRM"))
        .collect();
    let ok = get(&format!("{ACTION}&IotId={DEVICE}{all}"));
    assert_eq!((ok.status, ok.tasks), (200, 1), "{ok:?}");
}

// ---- encoding --------------------------------------------------------------------------------

/// Percent-escapes that decode to bytes that are not UTF-8, in a value or a name, in the query
/// string or the body, are `InvalidParameter` naming the parameter (or echoing the name).
#[test]
fn invalid_utf8_in_query_and_body_is_refused() {
    let query = format!("{ACTION}&IotId=%FF%FE");
    assert_error(
        &get(&query),
        ErrorCode::InvalidParameter,
        &["IotId", "UTF-8"],
    );
    let query = format!("{ACTION}&IotId={DEVICE}&%C3=1");
    assert_error(&get(&query), ErrorCode::InvalidParameter, &["UTF-8"]);

    // Raw bytes in the form body (no escapes at all).
    let body = b"ModuleName=\xff\xfe";
    assert_error(
        &post_form(&format!("{ACTION}&IotId={DEVICE}"), body),
        ErrorCode::InvalidParameter,
        &["ModuleName", "form body", "UTF-8"],
    );
}

/// A `%` not followed by two hex digits is `InvalidParameter` naming the parameter.
#[test]
fn malformed_percent_escapes_are_refused() {
    for bad in ["%", "%4", "%G1", "a%zz", "%%41"] {
        let query = format!("{ACTION}&IotId={DEVICE}&ModuleName={bad}");
        assert_error(
            &get(&query),
            ErrorCode::InvalidParameter,
            &["ModuleName", "escape"],
        );
    }
}

/// NUL bytes, raw or escaped, break every field rule they meet: the answer names the
/// parameter, and never matches a stored value cut at the NUL.
#[test]
fn nul_bytes_in_parameters_are_refused_by_the_field_rules() {
    let truncated = &DEVICE[..DEVICE.len() - 4];
    for iot in [format!("{truncated}%00****"), format!("{truncated}\0****")] {
        let query = format!("{ACTION}&IotId={iot}");
        assert_error(&get(&query), ErrorCode::InvalidIotId, &["IotId"]);
    }
    let query = format!("{ACTION}&IotId={DEVICE}&ModuleName=ble%00");
    assert_error(
        &get(&query),
        ErrorCode::InvalidFormattedParameter,
        &["ModuleName"],
    );
    let query = format!("{ACTION}&ProductKey=K1nhvyl****&DeviceName=Light%00");
    assert_error(
        &get(&query),
        ErrorCode::InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    // A NUL in the action's name or value is not the action.
    let query = format!("Action=ListOTAUnfinishedTaskByDevice%00&IotId={DEVICE}");
    assert_error(&get(&query), ErrorCode::InvalidActionNotFound, &["Action"]);
}

// ---- field lengths on the query ------------------------------------------------------------

/// Each query field rule at and past its length limit.
#[test]
fn query_values_past_their_length_limits_are_refused() {
    let id64 = "i".repeat(64);
    let ok = get(&format!("{ACTION}&IotId={id64}"));
    assert_eq!((ok.status, ok.code.as_str()), (200, ""), "{ok:?}");
    let cases = [
        (format!("IotId={id64}i"), ErrorCode::InvalidIotId, "IotId"),
        (
            format!("ProductKey={}&DeviceName=Light", "k".repeat(65)),
            ErrorCode::InvalidFormattedProductKey,
            "ProductKey",
        ),
        (
            format!("ProductKey=pk&DeviceName={}", "d".repeat(33)),
            ErrorCode::InvalidFormattedDeviceName,
            "DeviceName",
        ),
        (
            "ProductKey=pk&DeviceName=abc".to_owned(),
            ErrorCode::InvalidFormattedDeviceName,
            "DeviceName",
        ),
        (
            format!("IotId={DEVICE}&ModuleName={}", "m".repeat(65)),
            ErrorCode::InvalidFormattedParameter,
            "ModuleName",
        ),
    ];
    for (params, code, name) in cases {
        assert_error(&get(&format!("{ACTION}&{params}")), code, &[name]);
    }
    // An instance id no record could carry names no instance.
    let query = format!("{ACTION}&IotId={DEVICE}&IotInstanceId={}", "x".repeat(1000));
    assert_error(
        &get(&query),
        ErrorCode::InstanceNotFound,
        &["IotInstanceId"],
    );
}

/// Error messages echo at most a bounded prefix of what was received: a 60 KiB bad value
/// does not come back in the answer.
#[test]
fn error_messages_do_not_echo_huge_values() {
    let big = "x".repeat(60 * 1024);
    let answer = get(&format!("{ACTION}&IotId={DEVICE}&ModuleName={big}"));
    assert_eq!(answer.code, ErrorCode::InvalidFormattedParameter.as_str());
    assert!(
        answer.message.len() < 1024,
        "message of {} bytes",
        answer.message.len()
    );
    let answer = get(&format!("Action={big}"));
    assert_eq!(answer.code, ErrorCode::InvalidActionNotFound.as_str());
    assert!(
        answer.message.len() < 1024,
        "message of {} bytes",
        answer.message.len()
    );
}

// ---- JSON Lines ------------------------------------------------------------------------------

/// A valid record padded with an unknown key to exactly `len` bytes.
fn padded_line(len: usize) -> String {
    let seed = seed_line();
    let open = &seed[..seed.len() - 1];
    let pad = len - open.len() - r#","remark":""}"#.len();
    format!(r#"{open},"remark":"{}"}}"#, "x".repeat(pad))
}

/// `MAX_LINE_BYTES` (64 KiB): a line of exactly the limit loads; one byte more is refused
/// naming the line and its length, before it is parsed.
#[test]
fn json_lines_longer_than_the_limit_are_refused() {
    let line = padded_line(MAX_LINE_BYTES);
    assert_eq!(line.len(), MAX_LINE_BYTES);
    let fresh = Engine::new();
    assert_eq!(
        fresh
            .load_jsonl(line.as_bytes())
            .expect("at the limit")
            .records,
        1
    );
    // A CRLF line's CR is not part of its length: at the limit, with Windows line endings.
    let crlf = format!("{}\r\n{line}\r\n{}\r\n", seed_line(), seed_line());
    assert_eq!(
        Engine::new()
            .load_jsonl(crlf.as_bytes())
            .expect("at the limit, CRLF")
            .records,
        3
    );

    let input = format!("{}\n\n{}\n", seed_line(), padded_line(MAX_LINE_BYTES + 1));
    let error = refused_load(input.as_bytes());
    assert_eq!(error.line, 3);
    assert_eq!(
        error.kind,
        LoadErrorKind::LineTooLong {
            bytes: MAX_LINE_BYTES + 1
        }
    );
    assert!(
        error.to_string().contains(&MAX_LINE_BYTES.to_string()),
        "{error}"
    );
}

/// A file streams in pieces, so its size is not limited; a piece with no line end in it
/// (here the first 64 MiB of a sparse 4 GiB file of zero bytes) is refused as a line too
/// long, after one piece is read, and changes nothing.
#[test]
fn a_file_without_line_ends_is_refused_after_one_piece() {
    let path = std::env::temp_dir().join(format!("ota-index-hostile-{}.jsonl", std::process::id()));
    let file = std::fs::File::create(&path).expect("temp file");
    file.set_len(MAX_LOAD_BYTES as u64 + 1)
        .expect("sparse length");
    drop(file);
    let engine = engine();
    let before = sorted(&engine);
    let result = engine.load_jsonl_file(&path);
    std::fs::remove_file(&path).ok();
    let error = result.expect_err("no line end");
    assert_eq!(error.line, 1);
    assert_eq!(
        error.kind,
        LoadErrorKind::LineTooLong {
            bytes: LOAD_CHUNK_BYTES
        }
    );
    assert_eq!(sorted(&engine), before);
    // A file that does not exist is an I/O error naming the path.
    let error = engine.load_jsonl_file(&path).expect_err("gone");
    assert!(matches!(error.kind, LoadErrorKind::Io(_)), "{error}");
    assert!(error.to_string().contains("ota-index-hostile"), "{error}");
    // A fault of the whole input is not reported as if it were on a line.
    assert!(!error.to_string().starts_with("line"), "{error}");
}

/// The seed line with the value of `key` (a string field) replaced by `value` (JSON text).
fn with_value(key: &str, value: &str) -> String {
    let seed = seed_line();
    let at = seed.find(&format!("\"{key}\":")).expect("key present") + key.len() + 3;
    let end = at + 1 + seed[at + 1..].find('"').expect("string value");
    format!("{}{value}{}", &seed[..at], &seed[end + 1..])
}

/// Every field rule of reference section 1, past its limit and with a bad character, in a bulk
/// load (error naming line and field, store unchanged) and through `upsert` (the same field).
#[test]
fn each_field_rule_is_enforced_on_writes() {
    let long = |n: usize, c: &str| format!("\"{}\"", c.repeat(n));
    let cases: Vec<(Field, String)> = vec![
        (Field::TaskId, long(65, "t")),
        (Field::TaskId, "\"\"".into()),
        (Field::TaskId, "\"t 1\"".into()),
        (Field::JobId, long(65, "j")),
        (Field::JobId, "\"j\\u00e9\"".into()),
        (Field::FirmwareId, long(65, "f")),
        (Field::IotId, long(65, "i")),
        (Field::IotId, "\"a\\u0000b\"".into()),
        (Field::ProductKey, long(65, "k")),
        (Field::ProductName, long(65, "é")),
        (Field::ProductName, "\"Lamp\\n\"".into()),
        (Field::DeviceName, long(33, "d")),
        (Field::DeviceName, "\"abc\"".into()),
        (Field::DeviceName, "\"dev/ice\"".into()),
        (Field::ModuleName, long(65, "m")),
        (Field::ModuleName, "\"b le\"".into()),
        (Field::SrcVersion, long(65, "s")),
        (Field::SrcVersion, "\"1.0\\u0007\"".into()),
        (Field::DestVersion, long(65, "v")),
        (Field::DestVersion, "\"\"".into()),
        (Field::TaskStatus, "\"notified\"".into()),
        (Field::TaskStatus, "\"NOTIFIED \"".into()),
        (Field::UtcCreate, "\"2024-02-30T00:00:00Z\"".into()),
        (Field::UtcCreate, "\"2024-09-11T03:40:02.734+08:00\"".into()),
        (Field::UtcModified, "\"2024-09-11 06:27:24Z\"".into()),
        (Field::UtcModified, "\"2024-09-11T25:00:00Z\"".into()),
    ];
    for (field, value) in cases {
        let line = with_value(field.camel(), &value);
        let error = refused_load(format!("{}\n{line}", seed_line()).as_bytes());
        assert_eq!(error.line, 2, "{line}: {error}");
        assert_eq!(error.field(), Some(field), "{line}: {error}");
        assert!(error.to_string().contains(field.camel()), "{error}");
    }
    // The instance id: 0-64 visible ASCII.
    let line = seed_line().replacen(
        '{',
        &format!("{{\"iotInstanceId\":\"{}\",", "x".repeat(65)),
        1,
    );
    assert_eq!(
        refused_load(line.as_bytes()).field(),
        Some(Field::IotInstanceId)
    );

    // Through upsert: the same rules, the store unchanged.
    let engine = engine();
    let before = sorted(&engine);
    let good = before[0].clone();
    let mut bad = good.clone();
    bad.product_name = "p".repeat(65);
    assert_eq!(
        engine.upsert(&bad).unwrap_err().field(),
        Some(Field::ProductName)
    );
    let mut bad = good.clone();
    bad.device_name = "x\0yz".into();
    let error = engine.upsert(&bad).unwrap_err();
    assert!(
        matches!(&error, WriteError::InvalidField(e)
            if e.field == Field::DeviceName && matches!(e.violation, Violation::BadChar { ch: '\0', .. })),
        "{error}"
    );
    let mut bad = good;
    bad.iot_instance_id = "inst\u{7f}".into();
    assert_eq!(
        engine.upsert(&bad).unwrap_err().field(),
        Some(Field::IotInstanceId)
    );
    assert_eq!(
        engine.remove(&"x".repeat(65), "t1").unwrap_err().field(),
        Some(Field::IotInstanceId)
    );
    assert_eq!(
        engine.remove("", &"t".repeat(65)).unwrap_err().field(),
        Some(Field::TaskId)
    );
    assert_eq!(sorted(&engine), before);
    validate(&engine);
}

/// A typed record's times must be ones the reference's format can write (years 0000 to
/// 9999): one outside would be written back as another instant (the year modulo 10,000), out
/// of order. Refused through `upsert` and `write_batch` alike, the usual status event (a
/// stored task, every string as stored) included; the bounds themselves are accepted and
/// written back as themselves.
#[test]
fn times_the_format_cannot_write_are_refused() {
    let engine = engine();
    let before = sorted(&engine);
    let stored = before[0].clone();
    let past_min = Timestamp::from_millis(Timestamp::MIN.as_millis() - 1);
    let past_max = Timestamp::from_millis(Timestamp::MAX.as_millis() + 1);
    for time in [
        past_min,
        past_max,
        Timestamp::from_millis(i64::MIN),
        Timestamp::from_millis(i64::MAX),
    ] {
        for field in [Field::UtcCreate, Field::UtcModified] {
            let mut bad = stored.clone();
            match field {
                Field::UtcCreate => bad.utc_create = time,
                _ => bad.utc_modified = time,
            }
            let refused = WriteError::InvalidField(ota_index::FieldError::new(
                field,
                Violation::BadTimestamp,
            ));
            assert_eq!(engine.upsert(&bad), Err(refused.clone()), "{time:?}");
            // As a status event of a stored task, after a good one.
            let mut event = stored.clone();
            event.utc_modified = Timestamp::MAX;
            assert_eq!(
                engine.write_batch(&[event.as_ref(), bad.as_ref()]),
                Err((1, refused))
            );
        }
    }
    assert_eq!(sorted(&engine), before);
    validate(&engine);

    let mut edge = stored;
    (edge.utc_create, edge.utc_modified) = (Timestamp::MIN, Timestamp::MAX);
    engine.upsert(&edge).expect("the bounds are writable");
    let back = engine.get("", &edge.task_id).expect("stored");
    assert_eq!(back.utc_create.to_string(), "0000-01-01T00:00:00.000Z");
    assert_eq!(back.utc_modified.to_string(), "9999-12-31T23:59:59.999Z");
    assert_eq!(
        Timestamp::parse("0000-01-01T00:00:00Z"),
        Some(Timestamp::MIN)
    );
    assert_eq!(
        Timestamp::parse("9999-12-31T23:59:59.999Z"),
        Some(Timestamp::MAX)
    );
}

/// Values that are not JSON strings, duplicated keys and malformed JSON.
#[test]
fn malformed_records_are_refused_naming_line_and_field() {
    for (value, violation) in [
        ("7", Violation::NotAString),
        ("null", Violation::NotAString),
        ("true", Violation::NotAString),
        ("[\"t1\"]", Violation::NotAString),
        ("{\"a\":\"t1\"}", Violation::NotAString),
    ] {
        let error = refused_load(with_value("taskId", value).as_bytes());
        assert_eq!(
            error.kind,
            LoadErrorKind::InvalidField(ota_index::FieldError::new(Field::TaskId, violation))
        );
    }
    // One field twice, in either spelling.
    let twice = seed_line().replacen('{', "{\"TaskId\":\"x\",", 1);
    assert_eq!(refused_load(twice.as_bytes()).field(), Some(Field::TaskId));

    for bad in [
        "{",
        "{\"taskId\":\"t1\",}",
        "[1,2,3]",
        "\"a string\"",
        "42",
        "nul",
        "{\"taskId\":\"t1\"} {}",
    ] {
        let error = refused_load(format!("{}\n{bad}\n", seed_line()).as_bytes());
        assert_eq!(error.line, 2, "{bad}: {error}");
        assert!(
            matches!(
                error.kind,
                LoadErrorKind::Json(_) | LoadErrorKind::NotAnObject
            ),
            "{bad}: {error}"
        );
    }
}

/// Invalid UTF-8 and raw control bytes (NUL) inside a line are malformed JSON.
#[test]
fn invalid_utf8_and_nul_bytes_in_a_line_are_refused() {
    let seed = seed_line().as_bytes();
    let at = seed_line().find("testProduct1").expect("product name") + 4;
    for bytes in [&b"\xff\xfe"[..], b"\xc3", b"\x00", b"\xed\xa0\x80"] {
        let mut line = seed[..at].to_vec();
        line.extend_from_slice(bytes);
        line.extend_from_slice(&seed[at..]);
        let error = refused_load(&line);
        assert_eq!(error.line, 1, "{bytes:?}: {error}");
        assert!(
            matches!(error.kind, LoadErrorKind::Json(_)),
            "{bytes:?}: {error}"
        );
    }
    // Under an ignored key too (serde_json, reading what simd-json refuses, skips such a
    // string unchecked), at the column of the bad byte.
    let open = &seed[..seed.len() - 1];
    for bytes in [&b"\xff\xfe"[..], b"\xc3", b"\xed\xa0\x80"] {
        let mut line = open.to_vec();
        line.extend_from_slice(b",\"remark\":\"\xc3\xa9");
        line.extend_from_slice(bytes);
        line.extend_from_slice(b"\"}");
        let error = refused_load(&line);
        let column = open.len() + ",\"remark\":\"é".chars().count() + 1;
        assert_eq!(
            error.kind,
            LoadErrorKind::Json(format!("invalid UTF-8 at column {column}")),
            "{bytes:?}"
        );
    }
    // An escaped NUL is valid JSON but breaks the field rule.
    let error = refused_load(with_value("productName", "\"Lamp\\u0000\"").as_bytes());
    assert_eq!(error.field(), Some(Field::ProductName));
}

/// A lone half of a UTF-16 surrogate pair (`\ud800` with no low half after it, or a low half
/// alone) is no character: malformed JSON wherever it is, under a known key or an ignored one,
/// and the message says so (simd-json alone decoded a lone high half to a NUL, reported as
/// the field's bad character, and let it pass under an ignored key). A whole pair, and an
/// escaped backslash before `u`, are fine.
#[test]
fn lone_surrogate_escapes_are_malformed_json_wherever_they_are() {
    let under_ignored_key = |value: &str| {
        let seed = seed_line();
        format!("{},\"remark\":{value}}}", &seed[..seed.len() - 1])
    };
    for (line, escape) in [
        (with_value("productName", r#""Lamp\udc00""#), "\\udc00"),
        (with_value("productName", r#""Lamp\ud800x""#), "\\ud800"),
        (with_value("productName", r#""Lamp\ud800""#), "\\ud800"),
        (with_value("productName", r#""\ud800\u0041""#), "\\ud800"),
        (with_value("srcVersion", r#""1\uDBFF""#), "\\udbff"),
        (under_ignored_key(r#""\ud83d""#), "\\ud83d"),
        (under_ignored_key(r#""\ude00""#), "\\ude00"),
        (under_ignored_key(r#"["ok", {"k": "\ud800 "}]"#), "\\ud800"),
        // With a number simd-json refuses, serde_json reads the line: the same verdict.
        (under_ignored_key(r#"[1e400, "\ud800"]"#), "\\ud800"),
    ] {
        let error = refused_load(line.as_bytes());
        assert_eq!(error.line, 1, "{line}: {error}");
        let LoadErrorKind::Json(message) = &error.kind else {
            panic!("{line}: not a JSON error: {error}");
        };
        assert!(
            message.contains("lone surrogate") && message.contains(escape),
            "{line}: {message}"
        );
    }
    for line in [
        with_value("productName", r#""Lamp \ud83d\ude00""#),
        with_value("productName", r#""Lamp \\ud800""#),
        under_ignored_key(r#""\uD83D\uDE00 \\udc00""#),
    ] {
        let engine = Engine::new();
        engine.load_jsonl(line.as_bytes()).expect(&line);
        assert_eq!(engine.len(), 1);
    }
    let engine = Engine::new();
    engine
        .load_jsonl(with_value("productName", r#""Lamp \ud83d\ude00""#).as_bytes())
        .unwrap();
    assert_eq!(engine.tasks()[0].product_name, "Lamp \u{1f600}");
}

/// Valid JSON that simd-json refuses (integers past 64 bits, numbers past `f64`) under an
/// ignored key: the record loads, since unknown keys are ignored (reference section 2). As a
/// known field's value, a number is still a field that is not a string, or out of range.
#[test]
fn numbers_of_any_size_under_ignored_keys_load() {
    let seed = seed_line();
    for value in [
        "1e400",
        "-1e400",
        "1.0e400",
        "-9223372036854775809",
        "18446744073709551616",
        "-123456789012345678901234567890",
        "2.5e-400",
        "[1e400, {\"a\": -99999999999999999999999}]",
    ] {
        let line = format!("{},\"remark\":{value}}}", &seed[..seed.len() - 1]);
        let engine = Engine::new();
        let report = engine
            .load_jsonl(format!("{line}\n{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(report.records, 2, "{value}");
        assert_eq!(engine.len(), 1, "{value}");
        assert_eq!(engine.tasks()[0].task_id, "183371207782747****");
    }
    let error = refused_load(with_value("jobId", "-9223372036854775809").as_bytes());
    assert_eq!(
        error.kind,
        LoadErrorKind::InvalidField(ota_index::FieldError::new(
            Field::JobId,
            Violation::NotAString
        ))
    );
    let error = refused_load(with_value("jobId", "1e400").as_bytes());
    assert_eq!(error.field(), Some(Field::JobId), "{error}");

    // The line simd-json refuses is held to every rule of the other path.
    let big = |line: &str| format!("{},\"remark\":1e400}}", &line[..line.len() - 1]);
    let twice = seed_line().replacen('{', "{\"task\\u0049d\":\"x\",", 1);
    assert_eq!(
        refused_load(big(&twice).as_bytes()).field(),
        Some(Field::TaskId)
    );
    let pascal_twice = seed_line().replacen('{', "{\"JobId\":\"x\",", 1);
    assert_eq!(
        refused_load(big(&pascal_twice).as_bytes()).field(),
        Some(Field::JobId)
    );
    let error = refused_load(big(&with_value("taskId", "[1]")).as_bytes());
    assert_eq!(error.field(), Some(Field::TaskId), "{error}");
    let error = refused_load(big(&with_value("deviceName", "\"dev\"")).as_bytes());
    assert_eq!(error.field(), Some(Field::DeviceName), "{error}");
    for not_an_object in ["[1e400]", "-1e400", "\"x\""] {
        let error = refused_load(not_an_object.as_bytes());
        assert_eq!(error.kind, LoadErrorKind::NotAnObject, "{not_an_object}");
    }
    // A key spelled with escapes is the field it spells, on this path too.
    let line = big(&seed_line().replace("\"taskId\"", "\"\\u0074askId\""));
    let engine = Engine::new();
    engine.load_jsonl(line.as_bytes()).expect(&line);
    assert_eq!(engine.tasks()[0].task_id, "183371207782747****");
}

/// A malformed line's message says what is wrong and at which column (in characters), in
/// words rather than a parser's internals.
#[test]
fn malformed_json_messages_name_the_column() {
    for (line, column) in [
        ("\u{a0}", 1),
        ("{\"taskId\":\"t1\",}", 16),
        ("{\"productName\":\"Lampé\" \"x\"}", 24),
        ("{\"taskId\" \"t1\"}", 11),
        ("{\"remark\":[1,2,,3]}", 16),
        // A control character, in a string that is skipped and in one that is read.
        ("{\"remark\":\"x\u{1}\"}", 13),
        ("{\"taskId\":\"x\u{1}\"}", 13),
        ("{\"ta\u{2}skId\":\"x\"}", 5),
        // The first fault, not a lone surrogate after it.
        ("{,\"remark\":\"\\ud800\"}", 2),
    ] {
        let error = refused_load(format!("{}\n{line}\n", seed_line()).as_bytes());
        assert_eq!(error.line, 2, "{line}: {error}");
        let LoadErrorKind::Json(message) = &error.kind else {
            panic!("{line}: not a JSON error: {error}");
        };
        assert!(
            message.ends_with(&format!(" at column {column}")),
            "{line}: {message}"
        );
        assert!(!message.contains("Error"), "{line}: {message}");
    }
}

/// Deeply nested JSON under an ignored key, up to the line limit (about 30,000 levels): the
/// parser keeps no recursion, so the key is skipped and the record loads; the same nesting as
/// a field's value is a field that is not a string.
#[test]
fn deeply_nested_json_in_a_line_does_not_overflow() {
    let seed = seed_line();
    let open = &seed[..seed.len() - 1];
    let room = MAX_LINE_BYTES - seed.len() - 32;
    for (opening, closing) in [("[", "]"), ("{\"a\":", "}")] {
        let depth = room / (opening.len() + closing.len());
        let nested = format!("{}1{}", opening.repeat(depth), closing.repeat(depth));
        let line = format!("{open},\"remark\":{nested}}}");
        assert!(line.len() <= MAX_LINE_BYTES);
        let engine = Engine::new();
        assert_eq!(
            engine
                .load_jsonl(line.as_bytes())
                .expect("nesting skipped")
                .records,
            1
        );
        validate(&engine);

        let line = with_value("jobId", &nested);
        assert!(line.len() <= MAX_LINE_BYTES);
        let error = refused_load(line.as_bytes());
        assert_eq!(
            error.kind,
            LoadErrorKind::InvalidField(ota_index::FieldError::new(
                Field::JobId,
                Violation::NotAString
            ))
        );
    }
}

/// Blank lines, CRLF endings and an empty input are fine; a byte-order mark is not JSON.
#[test]
fn blank_lines_crlf_and_empty_input() {
    let fresh = Engine::new();
    assert_eq!(fresh.load_jsonl(b"").expect("empty").records, 0);
    assert_eq!(
        fresh
            .load_jsonl(&vec![b'\n'; 100_000])
            .expect("blank")
            .records,
        0
    );
    assert_eq!(
        fresh
            .load_jsonl(b" \t\r\n\x0c\n")
            .expect("whitespace")
            .records,
        0
    );
    assert!(fresh.is_empty());
    let crlf = EXAMPLES.replace('\n', "\r\n");
    assert_eq!(
        fresh.load_jsonl(crlf.as_bytes()).expect("CRLF").records,
        EXAMPLES.lines().count()
    );
    // The same tasks as with LF endings, to the byte (no CR kept in a value).
    assert_eq!(sorted(&fresh), sorted(&engine()));
    // A byte-order mark before the first line is skipped (editors on some systems add one).
    let bom = format!("\u{feff}{}", seed_line());
    assert_eq!(
        Engine::new()
            .load_jsonl(bom.as_bytes())
            .expect("BOM")
            .records,
        1
    );
    // Anywhere else it is part of a line, and that line is not JSON.
    let error = refused_load(format!("{}\n\u{feff}{}", seed_line(), seed_line()).as_bytes());
    assert_eq!(error.line, 2, "{error}");
}

/// An identity conflict late in a bulk load: refused naming its line, nothing applied.
#[test]
fn identity_conflict_in_a_bulk_load_changes_nothing() {
    let seed = seed_line();
    let new_task = seed.replace("183371207782747****", "new-task");
    let conflicting = seed
        .replace("183371207782747****", "other-task")
        .replace("device_actived", "another_name");
    let input = format!("{new_task}\n{conflicting}\n");
    let error = refused_load(input.as_bytes());
    assert_eq!(error.line, 2);
    assert!(
        matches!(
            error.kind,
            LoadErrorKind::Write(WriteError::IdentityConflict { .. })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("device_actived"), "{error}");
}

// ---- signatures ------------------------------------------------------------------------------

fn at(text: &str) -> SystemTime {
    let ms = Timestamp::parse(text).expect("test timestamp").as_millis();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).expect("after the epoch"))
}

/// A signed RPC v1 query string for the example device.
fn signed_query(nonce: &str, timestamp: &str, secret: &str) -> String {
    let params = [
        ("AccessKeyId", "testid"),
        ("Action", "ListOTAUnfinishedTaskByDevice"),
        ("IotId", DEVICE),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("Timestamp", timestamp),
    ];
    let signature = sign_rpc_v1("GET", &params, secret);
    let mut query = String::new();
    for (name, value) in params
        .iter()
        .chain([("Signature", signature.as_str())].iter())
    {
        if !query.is_empty() {
            query.push('&');
        }
        percent_encode(name, &mut query);
        query.push('=');
        percent_encode(value, &mut query);
    }
    query
}

fn signed_service(capacity: usize) -> Service {
    let verifier = Verifier::new([("testid".to_string(), "testsecret".to_string())])
        .with_nonce_capacity(capacity);
    Service::new(engine()).with_verifier(verifier)
}

/// `Verifier::with_nonce_capacity`: when the cache holds that many unexpired nonces, a new
/// signed request is refused (500, retry later) rather than evicting a nonce, which would let
/// a replay through; once the window has passed, the nonces expire and requests pass again.
/// Unsigned or wrongly signed requests never take a slot.
#[test]
fn nonce_cache_is_bounded_and_never_evicts_an_unexpired_nonce() {
    let service = signed_service(2);
    let stamp = "2024-11-12T08:00:00Z";
    let now = Some(at(stamp));
    let ask = |query: &str, now| answer_with(&service, &HttpRequest::get(query), now);

    // Wrong signatures and unsigned requests do not fill the cache.
    for i in 0..10 {
        let wrong = ask(
            &signed_query(&format!("w{i}"), stamp, "not-the-secret"),
            now,
        );
        assert_error(&wrong, ErrorCode::SignatureDoesNotMatch, &["Signature"]);
    }
    assert_error(
        &ask(&format!("{ACTION}&IotId={DEVICE}"), now),
        ErrorCode::MissingParameter,
        &["AccessKeyId"],
    );

    let first = signed_query("n1", stamp, "testsecret");
    assert_eq!(ask(&first, now).tasks, 3);
    assert_eq!(ask(&signed_query("n2", stamp, "testsecret"), now).tasks, 3);
    let full = ask(&signed_query("n3", stamp, "testsecret"), now);
    assert_error(&full, ErrorCode::SystemException, &["remembers 2", "retry"]);
    // The replay is still recognised: nothing was evicted.
    assert_error(
        &ask(&first, now),
        ErrorCode::SignatureNonceUsed,
        &["SignatureNonce", "n1"],
    );

    // 15 minutes and a second later the first two have expired.
    let later_stamp = "2024-11-12T08:15:01Z";
    let later = Some(at(later_stamp));
    assert_eq!(
        ask(&signed_query("n3", later_stamp, "testsecret"), later).tasks,
        3
    );
    assert_eq!(
        ask(&signed_query("n4", later_stamp, "testsecret"), later).tasks,
        3
    );
}

/// Signature-layer limits: headers, `Authorization` length, `SignedHeaders` count, parameter
/// count; all `InvalidParameter` (or `SignatureDoesNotMatch`) before any HMAC over attacker-
/// sized input.
#[test]
fn signature_layer_limits() {
    let verifier = Verifier::new([("testid".to_string(), "testsecret".to_string())]);
    let now = at("2024-11-12T08:00:00Z");
    let check = |req: &SignedRequest<'_>| verifier.verify(req, now).expect_err("refused");

    let names: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("h{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let error = check(&SignedRequest {
        method: "GET",
        query_params: &[],
        body_params: &[],
        headers: &headers,
        body: b"",
    });
    assert_eq!(error.code, ErrorCode::InvalidParameter);
    assert!(error.message.contains(&MAX_HEADERS.to_string()), "{error}");

    let long_auth = format!(
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=x,Signature={}",
        "0".repeat(MAX_AUTHORIZATION_LEN)
    );
    let headers = [("Authorization", long_auth.as_str())];
    let error = check(&SignedRequest {
        method: "GET",
        query_params: &[],
        body_params: &[],
        headers: &headers,
        body: b"",
    });
    assert_eq!(error.code, ErrorCode::InvalidParameter);
    assert!(error.message.contains("Authorization"), "{error}");

    let signed: Vec<String> = (0..=MAX_SIGNED_HEADERS).map(|i| format!("h{i}")).collect();
    let auth = format!(
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={},Signature=00",
        signed.join(";")
    );
    let headers = [
        ("Authorization", auth.as_str()),
        ("x-acs-date", "2024-11-12T08:00:00Z"),
        ("x-acs-signature-nonce", "n"),
        (
            "x-acs-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    ];
    let error = check(&SignedRequest {
        method: "GET",
        query_params: &[],
        body_params: &[],
        headers: &headers,
        body: b"",
    });
    assert_eq!(error.code, ErrorCode::SignatureDoesNotMatch);
    assert!(error.message.contains("SignedHeaders"), "{error}");

    let params: Vec<(&str, &str)> = vec![("p", "v"); ota_index::rpc::signature::MAX_PARAMS + 1];
    let error = check(&SignedRequest {
        method: "GET",
        query_params: &params,
        body_params: &[],
        headers: &[],
        body: b"",
    });
    assert_eq!(error.code, ErrorCode::InvalidParameter);

    // Two Authorization headers: no silent pick.
    let headers = [("Authorization", "a"), ("authorization", "b")];
    let error = check(&SignedRequest {
        method: "GET",
        query_params: &[],
        body_params: &[],
        headers: &headers,
        body: b"",
    });
    assert_eq!(error.code, ErrorCode::InvalidParameter);
    assert!(error.message.contains("authorization"), "{error}");
}

/// Malformed `Authorization` headers and timestamps are refused with the code that says so.
#[test]
fn malformed_authorization_and_timestamps_are_refused() {
    let service = signed_service(100);
    let now = Some(at("2024-11-12T08:00:00Z"));
    let query = format!("{ACTION}&IotId={DEVICE}");
    for auth in [
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 ",
        "ACS3-HMAC-SHA256 Credential",
        "ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=x,Signature=00",
        "ACS3-HMAC-SHA256 Credential=a SignedHeaders=x,Signature=00",
        "ACS3-HMAC-SHA256 Foo=1",
        "ACS3-HMAC-SHA256\0Credential=a",
    ] {
        let headers = [("Authorization", auth)];
        let request = HttpRequest {
            headers: &headers,
            ..HttpRequest::get(&query)
        };
        let answer = answer_with(&service, &request, now);
        assert_ne!(answer.status, 200, "{auth:?}: {answer:?}");
        assert!(
            [ErrorCode::InvalidParameter, ErrorCode::MissingParameter]
                .iter()
                .any(|c| c.as_str() == answer.code),
            "{auth:?}: {answer:?}"
        );
    }
    for stamp in [
        "2024-11-12 08:00:00Z",
        "2024-11-12T08:00:00",
        "1731398400",
        "2024-13-12T08:00:00Z",
    ] {
        let answer = answer_with(
            &service,
            &HttpRequest::get(&signed_query("n", stamp, "testsecret")),
            now,
        );
        assert_error(&answer, ErrorCode::InvalidTimeStampFormat, &["Timestamp"]);
    }
    let answer = answer_with(
        &service,
        &HttpRequest::get(&signed_query("n", "2024-11-12T08:15:01Z", "testsecret")),
        now,
    );
    assert_error(&answer, ErrorCode::InvalidTimeStampExpired, &["Timestamp"]);
}
