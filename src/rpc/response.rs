//! The response bodies of reference section 4, written straight into the caller's buffer.
//!
//! Nothing here allocates per field: keys are static, strings are escaped from the borrowed
//! `&str` the task gives, timestamps are formatted on the stack
//! ([`Timestamp::format`](crate::Timestamp::format)). The output is compact JSON (no spaces)
//! with the keys in exactly the reference's order.
//!
//! ```
//! use ota_index::rpc::response::{write_success, KeyCase};
//! use ota_index::RecordRef;
//!
//! let mut out = Vec::new();
//! write_success(&mut out, KeyCase::Camel, "rid-1", std::iter::empty::<RecordRef<'_>>());
//! assert_eq!(
//!     out,
//!     br#"{"code":"","data":{"simpleOTATaskInfo":[]},"requestId":"rid-1","success":true}"#
//! );
//! ```

use std::fmt;
use std::str::FromStr;

use super::error::{Envelope, RpcError};
use crate::model::{Field, TIMESTAMP_LEN};
use crate::model::{PlainTask, TaskFields};
pub use crate::raw::json::write_json_string;
use crate::raw::json::write_json_string_body;

/// The key style of a response: they differ only in the case of the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum KeyCase {
    /// `code`, `data`, `simpleOTATaskInfo`, `taskId`, …: the platform's API page's example (the default).
    #[default]
    Camel,
    /// `Code`, `Data`, `SimpleOTATaskInfo`, `TaskId`, …: Alibaba Cloud's style.
    Pascal,
}

impl KeyCase {
    /// `"camel"` or `"pascal"`, ignoring ASCII case.
    ///
    /// ```
    /// use ota_index::rpc::response::KeyCase;
    /// assert_eq!(KeyCase::parse("pascal"), Some(KeyCase::Pascal));
    /// assert_eq!(KeyCase::parse("snake"), None);
    /// ```
    pub fn parse(name: &str) -> Option<KeyCase> {
        if name.eq_ignore_ascii_case("camel") {
            Some(KeyCase::Camel)
        } else if name.eq_ignore_ascii_case("pascal") {
            Some(KeyCase::Pascal)
        } else {
            None
        }
    }

    /// `"camel"` or `"pascal"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyCase::Camel => "camel",
            KeyCase::Pascal => "pascal",
        }
    }

    /// The key of `field` in this style.
    pub const fn field_key(self, field: Field) -> &'static str {
        match self {
            KeyCase::Camel => field.camel(),
            KeyCase::Pascal => field.pascal(),
        }
    }

    /// The fixed text of this style's envelopes.
    const fn keys(self) -> &'static EnvelopeKeys {
        match self {
            KeyCase::Camel => &CAMEL,
            KeyCase::Pascal => &PASCAL,
        }
    }
}

impl fmt::Display for KeyCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key style name that is neither `camel` nor `pascal`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key case `{0}`: expected `camel` or `pascal`")]
pub struct UnknownKeyCase(pub String);

impl FromStr for KeyCase {
    type Err = UnknownKeyCase;

    fn from_str(s: &str) -> Result<KeyCase, UnknownKeyCase> {
        KeyCase::parse(s).ok_or_else(|| UnknownKeyCase(s.to_owned()))
    }
}

/// The fixed JSON text around the variable parts, per key style.
struct EnvelopeKeys {
    success_head: &'static [u8],
    success_tail: &'static [u8],
    error_code: &'static [u8],
    business_message: &'static [u8],
    gateway_message: &'static [u8],
    error_tail: &'static [u8],
}

const CAMEL: EnvelopeKeys = EnvelopeKeys {
    success_head: br#"{"code":"","data":{"simpleOTATaskInfo":["#,
    success_tail: br#"]},"requestId":"#,
    error_code: br#"{"code":"#,
    business_message: br#","errorMessage":"#,
    gateway_message: br#","message":"#,
    error_tail: br#","requestId":"#,
};

const PASCAL: EnvelopeKeys = EnvelopeKeys {
    success_head: br#"{"Code":"","Data":{"SimpleOTATaskInfo":["#,
    success_tail: br#"]},"RequestId":"#,
    error_code: br#"{"Code":"#,
    business_message: br#","ErrorMessage":"#,
    gateway_message: br#","Message":"#,
    error_tail: br#","RequestId":"#,
};

macro_rules! define_task_keys {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
        optional: [$($o:ident $ov:ident $oc:literal $op:literal $od:literal;)*]
    ) => {
        /// Each field's key text (by declaration index), camelCase then PascalCase, as the
        /// object's first key (`{"key":"`) and as a later one (`","key":"`).
        const KEY_TEXT: [[[&[u8]; 2]; 2]; Field::COUNT] = [
            $([
                [concat!("{\"", $sc, "\":\"").as_bytes(), concat!("\",\"", $sc, "\":\"").as_bytes()],
                [concat!("{\"", $sp, "\":\"").as_bytes(), concat!("\",\"", $sp, "\":\"").as_bytes()],
            ],)*
            $([
                [concat!("{\"", $tc, "\":\"").as_bytes(), concat!("\",\"", $tc, "\":\"").as_bytes()],
                [concat!("{\"", $tp, "\":\"").as_bytes(), concat!("\",\"", $tp, "\":\"").as_bytes()],
            ],)*
            $([
                [concat!("{\"", $mc, "\":\"").as_bytes(), concat!("\",\"", $mc, "\":\"").as_bytes()],
                [concat!("{\"", $mp, "\":\"").as_bytes(), concat!("\",\"", $mp, "\":\"").as_bytes()],
            ],)*
            $([
                [concat!("{\"", $oc, "\":\"").as_bytes(), concat!("\",\"", $oc, "\":\"").as_bytes()],
                [concat!("{\"", $op, "\":\"").as_bytes(), concat!("\",\"", $op, "\":\"").as_bytes()],
            ],)*
        ];
    };
}

crate::model::task_fields!(define_task_keys);

/// The fields a task object of a device answer holds.
const TASK_KEYS: usize = Field::DEVICE_ANSWER.len();

/// The text before each of a task object's values, in output order
/// ([`Field::DEVICE_ANSWER`]): the
/// quote closing the value before, the key, and the quote opening this value, written with
/// one copy each (every value is a JSON string).
const fn task_keys(case: KeyCase) -> [&'static [u8]; TASK_KEYS] {
    let mut keys: [&[u8]; TASK_KEYS] = [b""; TASK_KEYS];
    let mut i = 0;
    while i < TASK_KEYS {
        keys[i] = KEY_TEXT[Field::DEVICE_ANSWER[i] as usize][case as usize][(i > 0) as usize];
        i += 1;
    }
    keys
}

const CAMEL_TASK_KEYS: [&[u8]; TASK_KEYS] = task_keys(KeyCase::Camel);

const PASCAL_TASK_KEYS: [&[u8]; TASK_KEYS] = task_keys(KeyCase::Pascal);

/// Appends a success response listing `tasks` in the order given.
///
/// Pass borrowed views (`TaskView`, [`RecordRef`](crate::RecordRef)); for a slice of owned
/// records, `records.iter().map(TaskRecord::as_ref)`.
pub fn write_success<I>(out: &mut Vec<u8>, case: KeyCase, request_id: &str, tasks: I)
where
    I: IntoIterator,
    I::Item: TaskFields,
{
    let keys = case.keys();
    out.extend_from_slice(keys.success_head);
    for (i, task) in tasks.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_task(out, case, &task);
    }
    out.extend_from_slice(keys.success_tail);
    write_json_string(out, request_id);
    out.extend_from_slice(match case {
        KeyCase::Camel => br#","success":true}"#,
        KeyCase::Pascal => br#","Success":true}"#,
    });
}

/// Appends an error response in the envelope of the error's code (reference section 4).
pub fn write_error(out: &mut Vec<u8>, case: KeyCase, request_id: &str, error: &RpcError) {
    let keys = case.keys();
    out.extend_from_slice(keys.error_code);
    write_json_string(out, error.code.as_str());
    out.extend_from_slice(match error.code.envelope() {
        Envelope::Business => keys.business_message,
        Envelope::Gateway => keys.gateway_message,
    });
    write_json_string(out, &error.message);
    out.extend_from_slice(keys.error_tail);
    write_json_string(out, request_id);
    out.extend_from_slice(match case {
        KeyCase::Camel => br#","success":false}"#,
        KeyCase::Pascal => br#","Success":false}"#,
    });
}

/// Appends one task object. A task that gives itself as [`PlainTask`] goes to
/// [`write_plain_task`]; otherwise one copy per key, each value escaped only when it holds a
/// byte that needs it (status names and timestamps never do).
fn write_task<T: TaskFields + ?Sized>(out: &mut Vec<u8>, case: KeyCase, task: &T) {
    if let Some(plain) = task.plain_json() {
        // One inlined copy per key style: the keys' lengths are constants in each.
        match case {
            KeyCase::Camel => write_plain_task(out, &CAMEL_TASK_KEYS, &plain),
            KeyCase::Pascal => write_plain_task(out, &PASCAL_TASK_KEYS, &plain),
        }
        return;
    }
    let keys = match case {
        KeyCase::Camel => &CAMEL_TASK_KEYS,
        KeyCase::Pascal => &PASCAL_TASK_KEYS,
    };
    let values = task.json_strings();
    out.reserve(160 + values.iter().map(|(v, _)| v.len()).sum::<usize>());
    for (key, (value, plain)) in keys.iter().zip(values) {
        out.extend_from_slice(key);
        if plain {
            out.extend_from_slice(value.as_bytes());
        } else {
            write_json_string_body(out, value);
        }
    }
    out.extend_from_slice(keys[10]);
    out.extend_from_slice(task.status().as_str().as_bytes());
    out.extend_from_slice(keys[11]);
    out.extend_from_slice(&task.utc_create().format());
    out.extend_from_slice(keys[12]);
    out.extend_from_slice(&task.utc_modified().format());
    out.extend_from_slice(b"\"}");
}

/// Total length of a table's key texts.
const fn keys_len(keys: &[&[u8]; TASK_KEYS]) -> usize {
    let mut total = 0;
    let mut i = 0;
    while i < keys.len() {
        total += keys[i].len();
        i += 1;
    }
    total
}

/// [`write_task`] for a [`PlainTask`] (nearly every stored task): the object's exact size
/// is known, so the buffer grows once and each key and value is copied with a few
/// fixed-size moves instead of a `memcpy` call each. Written out field by field and inlined
/// per key style, so that every key's length is a constant and its copy two moves.
#[inline(always)]
fn write_plain_task(
    out: &mut Vec<u8>,
    keys: &'static [&'static [u8]; TASK_KEYS],
    task: &PlainTask<'_>,
) {
    let v = &task.strings;
    let status = task.status.as_str().as_bytes();
    let size = keys_len(keys)
        + v.iter().map(|value| value.len()).sum::<usize>()
        + status.len()
        + 2 * TIMESTAMP_LEN
        + 2;
    let start = out.len();
    out.resize(start + size, 0);
    let buf = &mut out[start..];
    let mut at = 0;
    at = put(buf, at, keys[0]);
    at = put(buf, at, v[0]);
    at = put(buf, at, keys[1]);
    at = put(buf, at, v[1]);
    at = put(buf, at, keys[2]);
    at = put(buf, at, v[2]);
    at = put(buf, at, keys[3]);
    at = put(buf, at, v[3]);
    at = put(buf, at, keys[4]);
    at = put(buf, at, v[4]);
    at = put(buf, at, keys[5]);
    at = put(buf, at, v[5]);
    at = put(buf, at, keys[6]);
    at = put(buf, at, v[6]);
    at = put(buf, at, keys[7]);
    at = put(buf, at, v[7]);
    at = put(buf, at, keys[8]);
    at = put(buf, at, v[8]);
    at = put(buf, at, keys[9]);
    at = put(buf, at, v[9]);
    at = put(buf, at, keys[10]);
    at = put(buf, at, status);
    at = put(buf, at, keys[11]);
    buf[at..at + TIMESTAMP_LEN].copy_from_slice(&task.utc_create.format());
    at = put(buf, at + TIMESTAMP_LEN, keys[12]);
    buf[at..at + TIMESTAMP_LEN].copy_from_slice(&task.utc_modified.format());
    at += TIMESTAMP_LEN;
    buf[at..at + 2].copy_from_slice(b"\"}");
    debug_assert_eq!(at + 2, size);
}

/// Copies `src` into `buf` at `at` with at most two fixed-size (overlapping) moves for up to
/// 32 bytes; returns the position after it.
#[inline(always)]
fn put(buf: &mut [u8], at: usize, src: &[u8]) -> usize {
    let n = src.len();
    let dst = &mut buf[at..at + n];
    match n {
        0..=3 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..].copy_from_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..].copy_from_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
    at + n
}

/// A fresh request id: a random UUID v4, lower-case hex, 8-4-4-4-12.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RecordRef, TaskRecord, TaskStatus, Timestamp};
    use crate::raw::swar;
    use crate::rpc::error::ErrorCode;

    #[test]
    fn escape_check_is_exact_at_every_position() {
        crate::raw::swar::each_byte_at_each_position(|text, at| {
            let b = text[at];
            let want = b < 0x20 || b == b'"' || b == b'\\';
            assert_eq!(
                swar::needs_json_escape(text),
                want,
                "byte {b:#x} at {at} of {}",
                text.len()
            );
        });
        assert!(!swar::needs_json_escape(b""));
        assert!(!swar::needs_json_escape("智能灯 ~ DEL\u{7f} é".as_bytes()));
    }

    /// Lines of `expected.camel.jsonl` (spec/examples), by line number.
    const EXPECTED_CAMEL: [(usize, &str); 9] = [
        (
            1,
            r#"{"code":"","data":{"simpleOTATaskInfo":[{"destVersion":"3.9.0","deviceName":"device_actived","firmwareId":"123","iotId":"OZs5tjTkzRRTZSCekmbRk1****","jobId":"183371207742901****","moduleName":"ble","productKey":"k1h9drZ****","productName":"testProduct1","srcVersion":"1.8","taskId":"183371207782747****","taskStatus":"NOTIFIED","utcCreate":"2024-09-11T03:40:02.734Z","utcModified":"2024-09-11T06:27:24.649Z"}]},"requestId":"rid-1","success":true}"#,
        ),
        (
            8,
            r#"{"code":"iot.system.InstanceNotFound","errorMessage":"x","requestId":"rid-1","success":false}"#,
        ),
        (
            9,
            r#"{"code":"","data":{"simpleOTATaskInfo":[{"destVersion":"2.0 \"beta\"","deviceName":"mac:00-1A@home.x","firmwareId":"7","iotId":"Zq9DeviceWithSymbols0001","jobId":"j-1","moduleName":"Wifi_Module","productKey":"a19mzPZ****","productName":"智能灯 \\ Lamp","srcVersion":"1.0","taskId":"t-1","taskStatus":"QUEUED","utcCreate":"2024-05-05T05:05:05.005Z","utcModified":"2024-05-05T05:05:05.005Z"}]},"requestId":"rid-1","success":true}"#,
        ),
        (
            11,
            r#"{"code":"","data":{"simpleOTATaskInfo":[]},"requestId":"rid-1","success":true}"#,
        ),
        (
            14,
            r#"{"code":"iot.common.InvalidFormattedParameter","errorMessage":"x","requestId":"rid-1","success":false}"#,
        ),
        (
            15,
            r#"{"code":"InvalidParameter","message":"x","requestId":"rid-1","success":false}"#,
        ),
        (
            16,
            r#"{"code":"MissingParameter","message":"x","requestId":"rid-1","success":false}"#,
        ),
        (
            17,
            r#"{"code":"iot.device.InvalidFormattedDeviceName","errorMessage":"x","requestId":"rid-1","success":false}"#,
        ),
        (
            18,
            r#"{"code":"InvalidAction.NotFound","message":"x","requestId":"rid-1","success":false}"#,
        ),
    ];

    /// Lines of `expected.pascal.jsonl` (spec/examples), by line number.
    const EXPECTED_PASCAL: [(usize, &str); 9] = [
        (
            1,
            r#"{"Code":"","Data":{"SimpleOTATaskInfo":[{"DestVersion":"3.9.0","DeviceName":"device_actived","FirmwareId":"123","IotId":"OZs5tjTkzRRTZSCekmbRk1****","JobId":"183371207742901****","ModuleName":"ble","ProductKey":"k1h9drZ****","ProductName":"testProduct1","SrcVersion":"1.8","TaskId":"183371207782747****","TaskStatus":"NOTIFIED","UtcCreate":"2024-09-11T03:40:02.734Z","UtcModified":"2024-09-11T06:27:24.649Z"}]},"RequestId":"rid-1","Success":true}"#,
        ),
        (
            8,
            r#"{"Code":"iot.system.InstanceNotFound","ErrorMessage":"x","RequestId":"rid-1","Success":false}"#,
        ),
        (
            9,
            r#"{"Code":"","Data":{"SimpleOTATaskInfo":[{"DestVersion":"2.0 \"beta\"","DeviceName":"mac:00-1A@home.x","FirmwareId":"7","IotId":"Zq9DeviceWithSymbols0001","JobId":"j-1","ModuleName":"Wifi_Module","ProductKey":"a19mzPZ****","ProductName":"智能灯 \\ Lamp","SrcVersion":"1.0","TaskId":"t-1","TaskStatus":"QUEUED","UtcCreate":"2024-05-05T05:05:05.005Z","UtcModified":"2024-05-05T05:05:05.005Z"}]},"RequestId":"rid-1","Success":true}"#,
        ),
        (
            11,
            r#"{"Code":"","Data":{"SimpleOTATaskInfo":[]},"RequestId":"rid-1","Success":true}"#,
        ),
        (
            14,
            r#"{"Code":"iot.common.InvalidFormattedParameter","ErrorMessage":"x","RequestId":"rid-1","Success":false}"#,
        ),
        (
            15,
            r#"{"Code":"InvalidParameter","Message":"x","RequestId":"rid-1","Success":false}"#,
        ),
        (
            16,
            r#"{"Code":"MissingParameter","Message":"x","RequestId":"rid-1","Success":false}"#,
        ),
        (
            17,
            r#"{"Code":"iot.device.InvalidFormattedDeviceName","ErrorMessage":"x","RequestId":"rid-1","Success":false}"#,
        ),
        (
            18,
            r#"{"Code":"InvalidAction.NotFound","Message":"x","RequestId":"rid-1","Success":false}"#,
        ),
    ];

    fn line(expected: &[(usize, &'static str)], n: usize) -> &'static str {
        expected
            .iter()
            .find(|(at, _)| *at == n)
            .map_or("", |(_, text)| *text)
    }

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap_or_else(|| panic!("{text}"))
    }

    /// The first record of `examples/tasks.jsonl`.
    fn seed() -> TaskRecord {
        TaskRecord {
            task_id: "183371207782747****".into(),
            job_id: "183371207742901****".into(),
            firmware_id: "123".into(),
            iot_id: "OZs5tjTkzRRTZSCekmbRk1****".into(),
            product_key: "k1h9drZ****".into(),
            product_name: "testProduct1".into(),
            device_name: "device_actived".into(),
            module_name: "ble".into(),
            src_version: "1.8".into(),
            dest_version: "3.9.0".into(),
            status: TaskStatus::Notified,
            utc_create: ts("2024-09-11T03:40:02.734Z"),
            utc_modified: ts("2024-09-11T06:27:24.649Z"),
            iot_instance_id: String::new(),
            progress: None,
            task_desc: None,
            timeout: None,
        }
    }

    /// The escaping record of `examples/tasks.jsonl`.
    fn symbols() -> TaskRecord {
        TaskRecord {
            task_id: "t-1".into(),
            job_id: "j-1".into(),
            firmware_id: "7".into(),
            iot_id: "Zq9DeviceWithSymbols0001".into(),
            product_key: "a19mzPZ****".into(),
            product_name: "智能灯 \\ Lamp".into(),
            device_name: "mac:00-1A@home.x".into(),
            module_name: "Wifi_Module".into(),
            src_version: "1.0".into(),
            dest_version: "2.0 \"beta\"".into(),
            status: TaskStatus::Queued,
            utc_create: ts("2024-05-05T05:05:05.005Z"),
            utc_modified: ts("2024-05-05T05:05:05.005Z"),
            iot_instance_id: String::new(),
            progress: None,
            task_desc: None,
            timeout: None,
        }
    }

    fn success(case: KeyCase, tasks: &[TaskRecord]) -> String {
        let mut out = Vec::new();
        write_success(
            &mut out,
            case,
            "rid-1",
            tasks.iter().map(TaskRecord::as_ref),
        );
        String::from_utf8(out).unwrap_or_default()
    }

    fn error(case: KeyCase, code: ErrorCode, message: &str) -> String {
        let mut out = Vec::new();
        write_error(&mut out, case, "rid-1", &RpcError::new(code, message));
        String::from_utf8(out).unwrap_or_default()
    }

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, s);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn golden_seed_record_both_cases() {
        assert_eq!(success(KeyCase::Camel, &[seed()]), line(&EXPECTED_CAMEL, 1));
        assert_eq!(
            success(KeyCase::Pascal, &[seed()]),
            line(&EXPECTED_PASCAL, 1)
        );
    }

    #[test]
    fn golden_escaping_record_both_cases() {
        assert_eq!(
            success(KeyCase::Camel, &[symbols()]),
            line(&EXPECTED_CAMEL, 9)
        );
        assert_eq!(
            success(KeyCase::Pascal, &[symbols()]),
            line(&EXPECTED_PASCAL, 9)
        );
    }

    #[test]
    fn golden_empty_list_both_cases() {
        assert_eq!(success(KeyCase::Camel, &[]), line(&EXPECTED_CAMEL, 11));
        assert_eq!(success(KeyCase::Pascal, &[]), line(&EXPECTED_PASCAL, 11));
    }

    #[test]
    fn golden_error_envelopes_both_cases() {
        for (n, code) in [
            (8, ErrorCode::InstanceNotFound),
            (14, ErrorCode::InvalidFormattedParameter),
            (15, ErrorCode::InvalidParameter),
            (16, ErrorCode::MissingParameter),
            (17, ErrorCode::InvalidFormattedDeviceName),
            (18, ErrorCode::InvalidActionNotFound),
        ] {
            assert_eq!(
                error(KeyCase::Camel, code, "x"),
                line(&EXPECTED_CAMEL, n),
                "{code}"
            );
            assert_eq!(
                error(KeyCase::Pascal, code, "x"),
                line(&EXPECTED_PASCAL, n),
                "{code}"
            );
        }
    }

    #[test]
    fn several_tasks_are_comma_separated_in_given_order() {
        let mut second = seed();
        second.task_id = "t2".into();
        second.src_version = String::new();
        second.status = TaskStatus::InProgress;
        second.utc_modified = Timestamp::from_millis(1_500);
        let text = success(KeyCase::Camel, &[seed(), second]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let list = &value["data"]["simpleOTATaskInfo"];
        assert_eq!(list[0]["taskId"], "183371207782747****");
        assert_eq!(list[1]["taskId"], "t2");
        assert_eq!(list[1]["srcVersion"], "");
        assert_eq!(list[1]["taskStatus"], "IN_PROGRESS");
        assert_eq!(list[1]["utcModified"], "1970-01-01T00:00:01.500Z");
        assert!(text.contains("\"},{\"destVersion\""), "{text}");
        assert!(!text.contains(' '));
    }

    #[test]
    fn task_keys_in_contract_order_without_instance() {
        let mut record = seed();
        record.iot_instance_id = "iot-c3j0000".into();
        let text = success(KeyCase::Pascal, &[record]);
        assert!(!text.contains("iot-c3j0000"));
        assert!(!text.contains("IotInstanceId"));
        let keys = [
            "DestVersion",
            "DeviceName",
            "FirmwareId",
            "IotId",
            "JobId",
            "ModuleName",
            "ProductKey",
            "ProductName",
            "SrcVersion",
            "TaskId",
            "TaskStatus",
            "UtcCreate",
            "UtcModified",
            "RequestId",
            "Success",
        ];
        let positions: Vec<_> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn accepts_any_task_fields_implementation() {
        let record = seed();
        let mut by_ref = Vec::new();
        write_success(&mut by_ref, KeyCase::Camel, "rid-1", [record.as_ref()]);
        let mut by_value = Vec::new();
        write_success(&mut by_value, KeyCase::Camel, "rid-1", vec![record]);
        assert_eq!(by_ref, by_value);
        assert_eq!(by_ref, line(&EXPECTED_CAMEL, 1).as_bytes());
        let none: [RecordRef<'_>; 0] = [];
        let mut empty = Vec::new();
        write_success(&mut empty, KeyCase::Camel, "rid-1", none);
        assert_eq!(empty, line(&EXPECTED_CAMEL, 11).as_bytes());
    }

    /// A record whose `json_strings` flags every string that needs no escaping as plain and
    /// that gives itself as a `PlainTask` when all ten are, as the engine's views do: `write_task`
    /// takes its fixed-move path for it, or copies its plain strings unchecked.
    struct Flagged(TaskRecord);

    impl TaskFields for Flagged {
        fn task_id(&self) -> &str {
            &self.0.task_id
        }
        fn job_id(&self) -> &str {
            &self.0.job_id
        }
        fn firmware_id(&self) -> &str {
            &self.0.firmware_id
        }
        fn iot_id(&self) -> &str {
            &self.0.iot_id
        }
        fn product_key(&self) -> &str {
            &self.0.product_key
        }
        fn product_name(&self) -> &str {
            &self.0.product_name
        }
        fn device_name(&self) -> &str {
            &self.0.device_name
        }
        fn module_name(&self) -> &str {
            &self.0.module_name
        }
        fn src_version(&self) -> &str {
            &self.0.src_version
        }
        fn dest_version(&self) -> &str {
            &self.0.dest_version
        }
        fn status(&self) -> TaskStatus {
            self.0.status
        }
        fn utc_create(&self) -> Timestamp {
            self.0.utc_create
        }
        fn utc_modified(&self) -> Timestamp {
            self.0.utc_modified
        }
        fn iot_instance_id(&self) -> &str {
            &self.0.iot_instance_id
        }
        fn progress(&self) -> Option<&str> {
            self.0.progress.as_deref()
        }
        fn task_desc(&self) -> Option<&str> {
            self.0.task_desc.as_deref()
        }
        fn timeout(&self) -> Option<&str> {
            self.0.timeout.as_deref()
        }
        fn json_strings(&self) -> [(&str, bool); 10] {
            self.0
                .json_strings()
                .map(|(s, _)| (s, !swar::needs_json_escape(s.as_bytes())))
        }
        fn plain_json(&self) -> Option<PlainTask<'_>> {
            let strings = self.json_strings();
            strings.iter().all(|&(_, plain)| plain).then(|| PlainTask {
                strings: strings.map(|(s, _)| s.as_bytes()),
                status: self.0.status,
                utc_create: self.0.utc_create,
                utc_modified: self.0.utc_modified,
            })
        }
    }

    /// Mostly strings that need no escaping (every length up to 80, multi-byte characters
    /// included), sometimes one that does.
    fn text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let regex = |r: &str| proptest::string::string_regex(r).unwrap_or_else(|e| panic!("{e}"));
        prop_oneof![
            8 => regex("[a-zA-Z0-9 é智._/-]{0,80}"),
            2 => regex("[a-z]{0,3}"),
            1 => regex("[a-z\"\\\\\n]{0,20}"),
        ]
    }

    proptest::proptest! {
        /// The fixed-move path writes what the escaping path writes, for every length the
        /// moves distinguish (0–3, 4–7, 8–16, 17–32, longer), both key cases, several tasks.
        #[test]
        fn plain_tasks_are_written_as_the_escaping_path_writes_them(
            fields in proptest::collection::vec(text(), 10),
            created in 0i64..253_402_300_800_000,
            status in 0usize..7,
            tasks in 1usize..3,
        ) {
            let mut record = seed();
            for (slot, value) in [
                &mut record.task_id, &mut record.job_id, &mut record.firmware_id,
                &mut record.iot_id, &mut record.product_key, &mut record.product_name,
                &mut record.device_name, &mut record.module_name, &mut record.src_version,
                &mut record.dest_version,
            ].into_iter().zip(fields) {
                *slot = value;
            }
            record.status = TaskStatus::ALL[status];
            record.utc_create = Timestamp::from_millis(created);
            record.utc_modified = Timestamp::from_millis(created / 3);
            for case in [KeyCase::Camel, KeyCase::Pascal] {
                let mut escaped = b"prefix".to_vec();
                write_success(&mut escaped, case, "r", vec![record.as_ref(); tasks]);
                let mut fixed = b"prefix".to_vec();
                write_success(&mut fixed, case, "r", (0..tasks).map(|_| Flagged(record.clone())));
                proptest::prop_assert_eq!(String::from_utf8(fixed), String::from_utf8(escaped));
            }
        }
    }

    #[test]
    fn writers_append_to_what_the_buffer_holds() {
        let mut out = b"HTTP body: ".to_vec();
        write_error(
            &mut out,
            KeyCase::Camel,
            "r",
            &RpcError::new(ErrorCode::MissingParameter, "m"),
        );
        assert_eq!(
            out,
            br#"HTTP body: {"code":"MissingParameter","message":"m","requestId":"r","success":false}"#
        );
    }

    #[test]
    fn error_envelope_follows_the_code() {
        let business = error(KeyCase::Camel, ErrorCode::InvalidIotId, "bad");
        assert_eq!(
            business,
            r#"{"code":"iot.device.InvalidIoTId","errorMessage":"bad","requestId":"rid-1","success":false}"#
        );
        // SystemException is `iot.` but travels in the gateway envelope.
        let system = error(KeyCase::Pascal, ErrorCode::SystemException, "boom");
        assert_eq!(
            system,
            r#"{"Code":"iot.system.SystemException","Message":"boom","RequestId":"rid-1","Success":false}"#
        );
        let product = error(KeyCase::Pascal, ErrorCode::InvalidFormattedProductKey, "k");
        assert_eq!(
            product,
            r#"{"Code":"iot.prod.InvalidFormattedProductkey","ErrorMessage":"k","RequestId":"rid-1","Success":false}"#
        );
    }

    #[test]
    fn error_messages_and_request_ids_are_escaped() {
        let text = error(KeyCase::Camel, ErrorCode::InvalidParameter, "bad `\"x\"`\n");
        assert_eq!(
            text,
            r#"{"code":"InvalidParameter","message":"bad `\"x\"`\n","requestId":"rid-1","success":false}"#
        );
        let mut out = Vec::new();
        write_success(
            &mut out,
            KeyCase::Camel,
            "a\"b\\",
            std::iter::empty::<RecordRef<'_>>(),
        );
        assert!(out.ends_with(br#""requestId":"a\"b\\","success":true}"#));
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(value["requestId"], "a\"b\\");
    }

    #[test]
    fn json_string_escaping() {
        assert_eq!(json(""), r#""""#);
        assert_eq!(json("plain"), r#""plain""#);
        assert_eq!(json("\""), r#""\"""#);
        assert_eq!(json("\\"), r#""\\""#);
        assert_eq!(json("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(json("\u{0}"), r#""\u0000""#);
        assert_eq!(json("\u{1f}"), r#""\u001f""#);
        assert_eq!(json("\u{1b}x\u{b}"), r#""\u001bx\u000b""#);
        // Raw: `/`, DEL, space, non-ASCII (C1 controls and line separators included).
        assert_eq!(json("a/b"), "\"a/b\"");
        assert_eq!(json("\u{7f}"), "\"\u{7f}\"");
        assert_eq!(
            json("智能灯 é \u{85} \u{2028} 😀"),
            "\"智能灯 é \u{85} \u{2028} 😀\""
        );
        assert_eq!(json("2.0 \"beta\""), r#""2.0 \"beta\"""#);
        assert_eq!(json("a\"\"b\\\\"), r#""a\"\"b\\\\""#);
    }

    #[test]
    fn json_string_escaping_agrees_with_serde_json_for_every_char_below_256() {
        for c in (0u32..256).filter_map(char::from_u32) {
            let s = format!("x{c}y{c}");
            let ours = json(&s);
            let back: String = serde_json::from_str(&ours).unwrap_or_default();
            assert_eq!(back, s, "{c:?}");
            if c >= ' ' && c != '"' && c != '\\' {
                assert_eq!(ours, format!("\"{s}\""), "{c:?} should be raw");
            }
        }
    }

    #[test]
    fn key_case_parse_display_default() {
        assert_eq!(KeyCase::default(), KeyCase::Camel);
        assert_eq!(KeyCase::parse("camel"), Some(KeyCase::Camel));
        assert_eq!(KeyCase::parse("Pascal"), Some(KeyCase::Pascal));
        assert_eq!(KeyCase::parse(""), None);
        assert_eq!(KeyCase::parse("camelCase"), None);
        assert_eq!("pascal".parse::<KeyCase>(), Ok(KeyCase::Pascal));
        assert!("x"
            .parse::<KeyCase>()
            .is_err_and(|e| e.to_string().contains("`x`")));
        for case in [KeyCase::Camel, KeyCase::Pascal] {
            assert_eq!(KeyCase::parse(&case.to_string()), Some(case));
        }
        assert_eq!(KeyCase::Pascal.field_key(Field::UtcCreate), "UtcCreate");
        assert_eq!(KeyCase::Camel.field_key(Field::UtcCreate), "utcCreate");
    }

    #[test]
    fn request_id_is_a_lower_case_uuid_v4() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 36, "{id}");
            let groups: Vec<_> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id
                .bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert_eq!(id.as_bytes()[14], b'4', "version 4: {id}");
            assert!(
                matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
                "variant: {id}"
            );
        }
    }
}
