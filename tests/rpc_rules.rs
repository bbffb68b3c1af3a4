//! The rules of reference sections 3–5 through the RPC face: every error code the query layer
//! owns with its HTTP status and envelope, which error wins, and the query's semantics.

use ota_index::rpc::{HttpRequest, KeyCase, Service};
use ota_index::Engine;
use serde_json::Value;

fn service() -> Service {
    let engine = Engine::new();
    engine
        .load_jsonl(include_bytes!("data/contract/tasks.jsonl"))
        .expect("examples load");
    Service::new(engine)
}

fn ask(service: &Service, request: &HttpRequest<'_>) -> (u16, Value) {
    let mut out = Vec::new();
    let status = service.answer(
        &HttpRequest {
            request_id: Some("rid"),
            ..*request
        },
        &mut out,
    );
    (
        status,
        serde_json::from_slice(&out).expect("answer is JSON"),
    )
}

fn get(service: &Service, query: &str) -> (u16, Value) {
    ask(service, &HttpRequest::get(query))
}

const A: &str = "Action=ListOTAUnfinishedTaskByDevice";
const LIGHT: &str = "TfmUAeJjQQhCPH84UVNn0010c6****";

fn task_ids(answer: &Value) -> Vec<String> {
    answer["data"]["simpleOTATaskInfo"]
        .as_array()
        .unwrap_or_else(|| panic!("not a success: {answer}"))
        .iter()
        .map(|t| t["taskId"].as_str().unwrap().to_owned())
        .collect()
}

/// Expects an error: its code, HTTP status, and the envelope of reference section 4, with a
/// message naming `names` (one of them).
fn expect_error(service: &Service, query: &str, code: &str, status: u16, names: &[&str]) {
    let (got_status, answer) = get(service, query);
    assert_eq!(answer["code"], code, "{query}: {answer}");
    assert_eq!(got_status, status, "{query}");
    assert_eq!(answer["success"], false);
    assert_eq!(answer["requestId"], "rid");
    let business = code.starts_with("iot.") && code != "iot.system.SystemException";
    let (key, other) = if business {
        ("errorMessage", "message")
    } else {
        ("message", "errorMessage")
    };
    let message = answer[key]
        .as_str()
        .unwrap_or_else(|| panic!("{query}: no {key} in {answer}"));
    assert!(answer.get(other).is_none(), "{query}: both message keys");
    assert!(
        names.iter().any(|n| message.contains(n)),
        "{query}: message {message:?} names none of {names:?}"
    );
    let keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{answer}");
}

#[test]
fn every_query_error_code() {
    let s = service();
    expect_error(
        &s,
        "IotId=x1234",
        "InvalidAction.NotFound",
        404,
        &["Action"],
    );
    expect_error(
        &s,
        "Action=DescribeRegions&IotId=x",
        "InvalidAction.NotFound",
        404,
        &["Action", "DescribeRegions"],
    );
    expect_error(
        &s,
        "Action=listotaunfinishedtaskbydevice&IotId=x",
        "InvalidAction.NotFound",
        404,
        &["Action"],
    );
    expect_error(&s, A, "MissingParameter", 400, &["IotId"]);
    expect_error(
        &s,
        &format!("{A}&ProductKey=pk"),
        "MissingParameter",
        400,
        &["DeviceName"],
    );
    expect_error(
        &s,
        &format!("{A}&DeviceName=name1"),
        "MissingParameter",
        400,
        &["ProductKey"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId="),
        "MissingParameter",
        400,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&IotId=a"),
        "InvalidParameter",
        400,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&IoTID=a"),
        "InvalidParameter",
        400,
        &["IotId", "IoTID"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.0=QUEUED"),
        "InvalidParameter",
        400,
        &["TaskStatusList"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.01=QUEUED"),
        "InvalidParameter",
        400,
        &["TaskStatusList"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.101=QUEUED"),
        "InvalidParameter",
        400,
        &["TaskStatusList"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.-1=QUEUED"),
        "InvalidParameter",
        400,
        &["TaskStatusList"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList=QUEUED"),
        "InvalidParameter",
        400,
        &["TaskStatusList"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a%ZZ"),
        "InvalidParameter",
        400,
        &["IotId", "%ZZ"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=%C3%28"),
        "InvalidParameter",
        400,
        &["IotId", "UTF-8"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a%20b"),
        "iot.device.InvalidIoTId",
        200,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId={}", "x".repeat(65)),
        "iot.device.InvalidIoTId",
        200,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("{A}&ProductKey=p%20k&DeviceName=name1"),
        "iot.prod.InvalidFormattedProductkey",
        200,
        &["ProductKey"],
    );
    expect_error(
        &s,
        &format!("{A}&ProductKey=pk&DeviceName=ab"),
        "iot.device.InvalidFormattedDeviceName",
        200,
        &["DeviceName"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&ModuleName=a%20b"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["ModuleName"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatus=DONE"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["TaskStatus"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatus=queued"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["TaskStatus"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.2=FAILED"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["TaskStatusList.2", "unfinished"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&IotInstanceId=nope"),
        "iot.system.InstanceNotFound",
        200,
        &["IotInstanceId", "nope"],
    );
}

#[test]
fn which_error_wins() {
    let s = service();
    // Action first, before anything else.
    expect_error(
        &s,
        "IotId=a&IotId=b&TaskStatus=DONE",
        "InvalidAction.NotFound",
        404,
        &["Action"],
    );
    // Malformed or duplicate parameters before the device.
    expect_error(
        &s,
        &format!("{A}&Format=JSON&Format=XML"),
        "InvalidParameter",
        400,
        &["Format"],
    );
    // Missing device before module and status faults.
    expect_error(
        &s,
        &format!("{A}&ModuleName=a:b&TaskStatus=DONE"),
        "MissingParameter",
        400,
        &["IotId"],
    );
    // IotId format before module; ProductKey before DeviceName.
    expect_error(
        &s,
        &format!("{A}&IotId=a%20b&ModuleName=a:b"),
        "iot.device.InvalidIoTId",
        200,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("{A}&ProductKey=p%20k&DeviceName=ab"),
        "iot.prod.InvalidFormattedProductkey",
        200,
        &["ProductKey"],
    );
    // Module before statuses; TaskStatus before the list; the list in N order.
    expect_error(
        &s,
        &format!("{A}&IotId=a&ModuleName=a:b&TaskStatus=DONE"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["ModuleName"],
    );
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.1=BAD&TaskStatus=WORSE"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["TaskStatus"],
    );
    let (_, answer) = get(
        &s,
        &format!("{A}&IotId=a&TaskStatusList.7=BAD7&TaskStatusList.3=BAD3"),
    );
    assert!(
        answer["errorMessage"]
            .as_str()
            .unwrap()
            .contains("TaskStatusList.3"),
        "{answer}"
    );
    // Statuses before the instance.
    expect_error(
        &s,
        &format!("{A}&IotId=a&TaskStatus=DONE&IotInstanceId=nope"),
        "iot.common.InvalidFormattedParameter",
        200,
        &["TaskStatus"],
    );
    // IotId wins: the pair is not consulted, not even its format.
    let (status, answer) = get(
        &s,
        &format!("{A}&IotId={LIGHT}&ProductKey=p%20k&DeviceName=ab"),
    );
    assert_eq!(
        (status, task_ids(&answer)),
        (
            200,
            vec!["10".into(), "183634077949482****".into(), "9".into()]
        )
    );
}

#[test]
fn query_semantics() {
    let s = service();
    // The API page's spelling IoTID is an alias of IotId.
    let (_, answer) = get(&s, &format!("{A}&IoTID={LIGHT}"));
    assert_eq!(task_ids(&answer), ["10", "183634077949482****", "9"]);
    // Order: utcCreate, then taskId bytes ("10" < "183…" < "9"); finished task 11 never shows.
    // Module matched ignoring case, echoed in the stored spelling.
    for m in ["ble", "BLE", "Ble"] {
        let (_, answer) = get(&s, &format!("{A}&IotId={LIGHT}&ModuleName={m}"));
        assert_eq!(task_ids(&answer), ["183634077949482****"]);
        assert_eq!(answer["data"]["simpleOTATaskInfo"][0]["moduleName"], "Ble");
    }
    let (_, answer) = get(&s, &format!("{A}&IotId={LIGHT}&ModuleName=wifi"));
    assert_eq!(task_ids(&answer), Vec::<String>::new());
    // Statuses: union of TaskStatus and the list; duplicates fine; gaps fine.
    let (_, answer) = get(&s, &format!("{A}&IotId={LIGHT}&TaskStatus=CONFIRM&TaskStatusList.5=IN_PROGRESS&TaskStatusList.9=CONFIRM"));
    assert_eq!(task_ids(&answer), ["183634077949482****", "9"]);
    // Empty values count as absent.
    let (_, answer) = get(
        &s,
        &format!("{A}&IotId={LIGHT}&ModuleName=&TaskStatus=&IotInstanceId=&ProductKey="),
    );
    assert_eq!(task_ids(&answer).len(), 3);
    // A finished status asked for alone is an error, never an answer.
    let (status, answer) = get(&s, &format!("{A}&IotId={LIGHT}&TaskStatus=SUCCEEDED"));
    assert_eq!(
        (status, answer["code"].as_str()),
        (200, Some("iot.common.InvalidFormattedParameter"))
    );
    // Unknown device: empty list, not an error.
    let (status, answer) = get(&s, &format!("{A}&ProductKey=K1nhvyl****&DeviceName=Nobody"));
    assert_eq!((status, task_ids(&answer).len()), (200, 0));
    // Instances never mix: the same device and task id in another instance.
    let (_, answer) = get(&s, &format!("{A}&IotId={LIGHT}&IotInstanceId=iot-c3j0000"));
    assert_eq!(task_ids(&answer), ["183634077949482****"]);
    assert_eq!(answer["data"]["simpleOTATaskInfo"][0]["jobId"], "j-tenant");
    // '+' decodes to a space: a device name with a space is invalid.
    expect_error(
        &s,
        &format!("{A}&ProductKey=K1nhvyl****&DeviceName=Li+ght"),
        "iot.device.InvalidFormattedDeviceName",
        200,
        &["DeviceName"],
    );
    // Common parameters are ignored.
    let (_, answer) = get(&s, &format!("{A}&IotId={LIGHT}&Format=JSON&Version=2018-01-20&RegionId=cn-shanghai&Timestamp=2024-11-19T09%3A47%3A43Z"));
    assert_eq!(task_ids(&answer).len(), 3);
}

#[test]
fn post_form_body_header_action_and_request_ids() {
    let s = service();
    let form = [(
        "Content-Type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )];
    let post = |query, body: &'static str| HttpRequest {
        method: "POST",
        query,
        body: body.as_bytes(),
        headers: &form,
        request_id: None,
    };
    let (status, answer) = ask(
        &s,
        &post(
            "",
            "Action=ListOTAUnfinishedTaskByDevice&IotId=TfmUAeJjQQhCPH84UVNn0010c6****",
        ),
    );
    assert_eq!((status, task_ids(&answer).len()), (200, 3));
    let (_, answer) = ask(
        &s,
        &post(
            "Action=ListOTAUnfinishedTaskByDevice",
            "IotId=TfmUAeJjQQhCPH84UVNn0010c6****&ModuleName=BLE",
        ),
    );
    assert_eq!(task_ids(&answer).len(), 1);
    // A name in both the query string and the body is a duplicate.
    let (status, answer) = ask(
        &s,
        &post("Action=ListOTAUnfinishedTaskByDevice&IotId=a", "IotId=a"),
    );
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("InvalidParameter"))
    );
    // A body that is not a form is not read.
    let plain = HttpRequest {
        headers: &[("Content-Type", "text/plain")],
        ..post("Action=ListOTAUnfinishedTaskByDevice", "IotId=a")
    };
    assert_eq!(ask(&s, &plain).1["code"], "MissingParameter");
    // Action from the x-acs-action header (V3 SDKs).
    let headers = [("x-acs-action", "ListOTAUnfinishedTaskByDevice")];
    let (status, answer) = ask(
        &s,
        &HttpRequest {
            headers: &headers,
            ..HttpRequest::get("IotId=TfmUAeJjQQhCPH84UVNn0010c6****")
        },
    );
    assert_eq!((status, task_ids(&answer).len()), (200, 3));
    // Without a caller's id, a fresh UUID v4 per answer.
    let mut a = Vec::new();
    let mut b = Vec::new();
    s.answer(&HttpRequest::get("IotId=x"), &mut a);
    s.answer(&HttpRequest::get("IotId=x"), &mut b);
    let id = |v: &[u8]| {
        serde_json::from_slice::<Value>(v).unwrap()["requestId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (ida, idb) = (id(&a), id(&b));
    assert_ne!(ida, idb);
    let shape: Vec<usize> = ida.split('-').map(str::len).collect();
    assert_eq!(shape, [8, 4, 4, 4, 12], "{ida}");
    assert!(
        ida.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{ida}"
    );
}

#[test]
fn pascal_case_error_envelopes() {
    let s = service().with_case(KeyCase::Pascal);
    let mut out = Vec::new();
    s.answer(
        &HttpRequest {
            request_id: Some("r"),
            ..HttpRequest::get("Action=ListOTAUnfinishedTaskByDevice&ProductKey=pk&DeviceName=ab")
        },
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with(r#"{"Code":"iot.device.InvalidFormattedDeviceName","ErrorMessage":""#),
        "{text}"
    );
    assert!(
        text.ends_with(r#","RequestId":"r","Success":false}"#),
        "{text}"
    );
    let mut out = Vec::new();
    let status = s.answer(
        &HttpRequest {
            request_id: Some("r"),
            ..HttpRequest::get("IotId=x")
        },
        &mut out,
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(status, 404);
    assert!(
        text.starts_with(r#"{"Code":"InvalidAction.NotFound","Message":""#),
        "{text}"
    );
}

#[test]
fn typed_api_agrees_with_the_wire_on_empty_values() {
    let engine = Engine::new();
    engine
        .load_jsonl(include_bytes!("data/contract/tasks.jsonl"))
        .unwrap();
    let typed = |q: ota_index::Query<'_>| -> Vec<String> {
        engine
            .unfinished(&q)
            .unwrap()
            .iter()
            .map(|t| t.task_id().to_owned())
            .collect()
    };
    let all = typed(ota_index::Query::by_iot_id(LIGHT));
    assert_eq!(typed(ota_index::Query::by_iot_id(LIGHT).module("")), all);
    assert_eq!(typed(ota_index::Query::by_iot_id(LIGHT).instance("")), all);
    let (_, wire) = get(&service(), &format!("{A}&IotId={LIGHT}&ModuleName="));
    assert_eq!(task_ids(&wire), all);
    // A bad module is refused by both, naming the field.
    let err = engine
        .unfinished(&ota_index::Query::by_iot_id(LIGHT).module("a:b"))
        .unwrap_err();
    assert_eq!(err.field(), Some(ota_index::Field::ModuleName));
}

/// A record of device `iot` whose escapable string fields all hold `text` (fields whose rules
/// forbid `"` and `\` keep a plain value).
fn record_with(task_id: &str, iot: &str, text: &str) -> ota_index::TaskRecord {
    ota_index::TaskRecord {
        task_id: task_id.into(),
        job_id: text.into(),
        firmware_id: text.into(),
        iot_id: iot.into(),
        product_key: text.into(),
        product_name: product_name(text),
        device_name: "lamp-1".into(),
        module_name: "ble".into(),
        src_version: text.into(),
        dest_version: text.into(),
        status: ota_index::TaskStatus::Notified,
        utc_create: ota_index::Timestamp::from_millis(1_000),
        utc_modified: ota_index::Timestamp::from_millis(2_000),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

/// A product name of `text` (ASCII) with a non-ASCII character, within 64 characters.
fn product_name(text: &str) -> String {
    format!("é{}", &text[..text.len().min(63)])
}

/// The answer's one task, as its strings (asserting there is exactly one).
fn only_task(service: &Service, iot: &str) -> serde_json::Map<String, Value> {
    let (status, answer) = get(service, &format!("{A}&IotId={iot}"));
    assert_eq!(status, 200, "{answer}");
    let tasks = answer["data"]["simpleOTATaskInfo"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{answer}");
    tasks[0].as_object().unwrap().clone()
}

/// Stored strings are flagged "needs no escaping" when stored, and the writer copies flagged
/// ones without looking: every value holding a byte JSON escapes (`"`, `\`), at every field
/// whose rule allows one, short and at the 64-byte limit, must still come back as the same
/// string through a JSON parser, including when a freed entry of the same length is reused by
/// a string that needs escaping.
#[test]
fn stored_strings_that_json_escapes_are_escaped_in_answers() {
    let engine = Engine::new();
    let long_quote = format!("{}\"", "q".repeat(63)); // 64 bytes: the long header
    let long_plain = "p".repeat(64);
    let short_plain = "s".repeat(63); // the longest short header
    let cases = [
        "a\"b",
        "c\\d",
        "\"",
        "\\\\\"\"",
        &long_quote,
        &long_plain,
        &short_plain,
        "plain-value",
    ];
    for (i, text) in cases.iter().enumerate() {
        let iot = format!("iot-{i}");
        // The task id too: visible ASCII, so quotes and backslashes are allowed.
        let task_id = format!("{text}{i}");
        let task_id = &task_id[task_id.len().saturating_sub(64)..];
        engine
            .upsert(&record_with(task_id, &iot, text))
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
    let service = Service::new(engine);
    for (i, text) in cases.iter().enumerate() {
        let task = only_task(&service, &format!("iot-{i}"));
        for key in [
            "jobId",
            "firmwareId",
            "productKey",
            "srcVersion",
            "destVersion",
        ] {
            assert_eq!(task[key], **text, "{key} of case {i}");
        }
        assert_eq!(task["productName"], product_name(text));
        let task_id = format!("{text}{i}");
        assert_eq!(task["taskId"], task_id[task_id.len().saturating_sub(64)..]);
    }

    // Reuse: a removed task's id entry (and its strings' entries) go back to the free lists by
    // length; the next strings of those lengths need escaping (another device: devices are
    // permanent, and their strings stay). One shard, so that both tasks share its slabs.
    let service = Service::new(Engine::with_shards(1));
    let engine = service.engine();
    engine
        .upsert(&record_with("plain-01", "iot-r", "jobplain"))
        .unwrap();
    assert_eq!(only_task(&service, "iot-r")["taskId"], "plain-01");
    assert!(engine.remove("", "plain-01").unwrap());
    engine
        .upsert(&record_with("quo\"te01", "iot-s", "job\\lain"))
        .unwrap();
    let task = only_task(&service, "iot-s");
    assert_eq!(task["taskId"], "quo\"te01");
    assert_eq!(task["jobId"], "job\\lain");
    assert_eq!(task["destVersion"], "job\\lain");
    engine.internal_validate().unwrap();
}

/// The service starts loading a request's device before decoding it, from the first plain
/// `IotId=` pair of the raw query string (a hint), and the device itself once the request is
/// decoded when no instance is named. Requests where that guess is wrong, or cannot be made,
/// are answered exactly as the rules say.
#[test]
fn the_early_device_hint_never_changes_an_answer() {
    let s = service();
    let all = ["10", "183634077949482****", "9"];
    // Escaped: the hint skips it; the decoded id is the device.
    let (_, answer) = get(&s, &format!("{A}&IotId=%54fmUAeJjQQhCPH84UVNn0010c6****"));
    assert_eq!(task_ids(&answer), all);
    // The first `IotId=` of the text is inside another name.
    let (_, answer) = get(&s, &format!("{A}&XIotId=nobody&IotId={LIGHT}"));
    assert_eq!(task_ids(&answer), all);
    // The first `IotId=` is a value's text, not a pair.
    let (_, answer) = get(&s, &format!("{A}&Format=IotId=nobody&IotId={LIGHT}"));
    assert_eq!(task_ids(&answer), all);
    // The hinted device is another instance's.
    let (_, answer) = get(&s, &format!("IotId={LIGHT}&{A}&IotInstanceId=iot-c3j0000"));
    assert_eq!(task_ids(&answer), ["183634077949482****"]);
    // By name: hinted from the text, or not (an escape), in either instance.
    let (_, answer) = get(&s, &format!("ProductKey=K1nhvyl****&DeviceName=Light&{A}"));
    assert_eq!(task_ids(&answer), all);
    let (_, answer) = get(
        &s,
        &format!("DeviceName=Lig%68t&{A}&ProductKey=K1nhvyl****"),
    );
    assert_eq!(task_ids(&answer), all);
    let (_, answer) = get(
        &s,
        &format!("{A}&ProductKey=K1nhvyl****&DeviceName=Light&IotInstanceId=iot-c3j0000"),
    );
    assert_eq!(task_ids(&answer), ["183634077949482****"]);
    // An empty `IotId` is absent: the name is the device (and the hint's).
    let (_, answer) = get(
        &s,
        &format!("IotId=&ProductKey=K1nhvyl****&DeviceName=Light&{A}"),
    );
    assert_eq!(task_ids(&answer), all);
    // The hinted id is unknown, or refused later.
    let (_, answer) = get(&s, &format!("IotId=nobody&{A}"));
    assert_eq!(task_ids(&answer), Vec::<String>::new());
    expect_error(
        &s,
        &format!("IotId=nobody&{A}&IotId={LIGHT}"),
        "InvalidParameter",
        400,
        &["IotId"],
    );
    expect_error(
        &s,
        &format!("IotId=&{A}&ProductKey=K1nhvyl****"),
        "MissingParameter",
        400,
        &["DeviceName"],
    );
}

/// `Engine::prefetch_device` and `prefetch_device_record` are hints: whatever they are given
/// (an unknown instance or device, a hint made by another engine), they change no answer.
#[test]
fn device_hints_change_nothing() {
    use ota_index::{DeviceRef, Query};
    let engine = Engine::new();
    engine
        .load_jsonl(include_bytes!("data/contract/tasks.jsonl"))
        .expect("examples load");
    let answer = |engine: &Engine| -> Vec<String> {
        engine
            .unfinished(&Query::by_iot_id(LIGHT))
            .unwrap()
            .iter()
            .map(|t| t.task_id().to_owned())
            .collect()
    };
    let before = answer(&engine);
    assert_eq!(before.len(), 3);
    let light = DeviceRef::IotId(LIGHT);
    let light_by_name = DeviceRef::Name {
        product_key: "K1nhvyl****",
        device_name: "Light",
    };
    let nobody = DeviceRef::Name {
        product_key: "K1nhvyl****",
        device_name: "Nobody",
    };
    assert!(engine.prefetch_device("no-such-instance", light).is_none());
    for device in [light, light_by_name, nobody, DeviceRef::IotId("nobody")] {
        let hint = engine
            .prefetch_device("", device)
            .expect("no writer holds the shard");
        engine.prefetch_device_record(hint);
    }
    // Hints from an engine of 256 shards, given to one of one shard.
    let other = Engine::with_shards(256);
    let mut far = Vec::new();
    for i in 0..1000 {
        let name = format!("d{i}");
        for device in [
            DeviceRef::IotId(&name),
            DeviceRef::Name {
                product_key: "p",
                device_name: &name,
            },
        ] {
            let hint = other.prefetch_device("", device).unwrap();
            let debug = format!("{hint:?}");
            if debug.contains("shard: 2") || debug.contains("dir: 2") {
                far.push(hint);
            }
        }
    }
    assert!(far.len() >= 2, "{far:?}");
    let one = Engine::with_shards(1);
    one.load_jsonl(include_bytes!("data/contract/tasks.jsonl"))
        .unwrap();
    for hint in far {
        one.prefetch_device_record(hint);
    }
    assert_eq!(answer(&engine), before);
    assert_eq!(answer(&one), before);
}
