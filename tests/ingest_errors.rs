//! Every refused write (each field rule, malformed JSON, duplicate or non-string fields,
//! identity conflicts) names the line and the field, and leaves the store exactly as it was.

use ota_index::{
    Binding, Engine, Field, LoadErrorKind, TaskRecord, TaskStatus, Timestamp, Violation, WriteError,
};

const GOOD: &str = r#"{"destVersion":"3.9.0","deviceName":"device_actived","firmwareId":"123","iotId":"OZs5tjTkzRRTZSCekmbRk1****","jobId":"183371207742901****","moduleName":"ble","productKey":"k1h9drZ****","productName":"testProduct1","srcVersion":"1.8","taskId":"183371207782747****","taskStatus":"NOTIFIED","utcCreate":"2024-09-11T03:40:02.734Z","utcModified":"2024-09-11T06:27:24.649Z"}"#;

fn loaded() -> Engine {
    let engine = Engine::new();
    engine
        .load_jsonl(include_bytes!("data/contract/tasks.jsonl"))
        .expect("examples load");
    engine
}

fn snapshot(engine: &Engine) -> Vec<TaskRecord> {
    let mut t = engine.tasks();
    t.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    t
}

/// Loads `good line, new record with `key` set to `value` (raw JSON)` and expects a refusal
/// on line 2 naming `field`, with the store unchanged.
fn refused(key: &str, raw_value: &str, field: Field) -> LoadErrorKind {
    let engine = loaded();
    let before = snapshot(&engine);
    let line = set(&fresh(), key, raw_value);
    let input = format!("{}\n{line}\n", fresh_other());
    let err = engine.load_jsonl(input.as_bytes()).unwrap_err();
    assert_eq!(err.line, 2, "{key}={raw_value}: {err}");
    assert_eq!(err.field(), Some(field), "{key}={raw_value}: {err}");
    assert!(
        err.to_string().contains(field.camel()),
        "message names the field: {err}"
    );
    assert!(
        err.to_string().starts_with("line 2:"),
        "message names the line: {err}"
    );
    assert_eq!(
        snapshot(&engine),
        before,
        "{key}={raw_value} changed the store"
    );
    engine.internal_validate().unwrap();
    err.kind
}

/// A valid record for a new task of a new device.
fn fresh() -> String {
    GOOD.replace("183371207782747****", "new-task-1")
        .replace("OZs5tjTkzRRTZSCekmbRk1****", "NewDevice001")
        .replace("device_actived", "new_device")
}

fn fresh_other() -> String {
    GOOD.replace("183371207782747****", "new-task-2")
        .replace("OZs5tjTkzRRTZSCekmbRk1****", "NewDevice002")
        .replace("device_actived", "new_device2")
}

/// Replaces the value of `key` (camelCase) in a compact record with raw JSON.
fn set(line: &str, key: &str, raw_value: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let old = serde_json::to_string(&v[key]).unwrap();
    line.replacen(
        &format!("\"{key}\":{old}"),
        &format!("\"{key}\":{raw_value}"),
        1,
    )
}

fn remove(line: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let old = serde_json::to_string(&v[key]).unwrap();
    line.replacen(&format!("\"{key}\":{old},"), "", 1)
        .replacen(&format!(",\"{key}\":{old}"), "", 1)
}

#[test]
fn each_field_rule_is_enforced() {
    let long = |n: usize| format!("\"{}\"", "x".repeat(n));
    for key in ["taskId", "jobId", "firmwareId", "iotId", "productKey"] {
        let field = Field::from_key(key).unwrap();
        assert_eq!(
            refused(key, "\"\"", field),
            LoadErrorKind::InvalidField(ota_index::FieldError::new(field, Violation::Missing))
        );
        refused(key, &long(65), field);
        refused(key, "\"a b\"", field);
        refused(key, "\"caf\u{e9}\"", field);
    }
    refused("productName", "\"\"", Field::ProductName);
    refused(
        "productName",
        &format!("\"{}\"", "灯".repeat(65)),
        Field::ProductName,
    );
    refused("productName", "\"a\\nb\"", Field::ProductName);
    refused("deviceName", "\"abc\"", Field::DeviceName);
    refused("deviceName", &long(33), Field::DeviceName);
    refused("deviceName", "\"dev/ice\"", Field::DeviceName);
    refused("moduleName", "\"\"", Field::ModuleName);
    refused("moduleName", "\"a:b\"", Field::ModuleName);
    refused("moduleName", &long(65), Field::ModuleName);
    refused("srcVersion", &long(65), Field::SrcVersion);
    refused("srcVersion", "\"1\\u0000\"", Field::SrcVersion);
    refused("destVersion", "\"\"", Field::DestVersion);
    refused("destVersion", "\"2\\t0\"", Field::DestVersion);
    for bad in ["\"queued\"", "\"DONE\"", "\"\""] {
        refused("taskStatus", bad, Field::TaskStatus);
    }
    for bad in [
        "\"2024-09-11\"",
        "\"2024-02-30T00:00:00Z\"",
        "\"2024-09-11T03:40:02.7345Z\"",
        "\"2024-09-11T03:40:02+08:00\"",
    ] {
        refused("utcCreate", bad, Field::UtcCreate);
        refused("utcModified", bad, Field::UtcModified);
    }
}

#[test]
fn non_string_values_are_invalid_fields() {
    for raw in ["7", "null", "true", "{\"a\":1}", "[\"x\"]", "1.5"] {
        let kind = refused("jobId", raw, Field::JobId);
        assert_eq!(
            kind,
            LoadErrorKind::InvalidField(ota_index::FieldError::new(
                Field::JobId,
                Violation::NotAString
            )),
            "{raw}"
        );
    }
}

#[test]
fn missing_and_duplicate_fields() {
    for key in [
        "taskId",
        "iotId",
        "deviceName",
        "taskStatus",
        "utcModified",
        "srcVersion",
    ] {
        let engine = loaded();
        let before = snapshot(&engine);
        let err = engine
            .load_jsonl(remove(&fresh(), key).as_bytes())
            .unwrap_err();
        assert_eq!((err.line, err.field()), (1, Field::from_key(key)), "{err}");
        assert_eq!(snapshot(&engine), before);
    }
    // The same field twice, in the same or the other key style.
    for dup in [r#","jobId":"x"}"#, r#","JobId":"x"}"#] {
        let engine = loaded();
        let line = fresh();
        let with_dup = format!("{}{dup}", &line[..line.len() - 1]);
        let err = engine.load_jsonl(with_dup.as_bytes()).unwrap_err();
        assert_eq!(err.field(), Some(Field::JobId), "{err}");
        assert!(
            matches!(err.kind, LoadErrorKind::InvalidField(ref f) if f.violation == Violation::Duplicate)
        );
    }
}

#[test]
fn malformed_json_names_the_line() {
    for bad in [
        "{",
        "{\"taskId\":\"t\"",
        "not json",
        "[1,2,3]",
        "\"just a string\"",
        "{\"a\":1}{\"b\":2}",
        "{\"taskId\":\"t\",}",
    ] {
        let engine = loaded();
        let before = snapshot(&engine);
        let input = format!("{GOOD}\n\n{bad}\n");
        let err = engine.load_jsonl(input.as_bytes()).unwrap_err();
        assert_eq!(err.line, 3, "{bad}: {err}");
        assert!(
            matches!(
                err.kind,
                LoadErrorKind::Json(_)
                    | LoadErrorKind::NotAnObject
                    | LoadErrorKind::InvalidField(_)
            ),
            "{bad}: {err}"
        );
        assert_eq!(snapshot(&engine), before, "{bad}");
    }
}

#[test]
fn blank_lines_crlf_unknown_keys_and_pascal_case() {
    let engine = Engine::new();
    let pascal = r#"{"DestVersion":"1.0.1","DeviceName":"Light","FirmwareId":"167","IotId":"TfmUAeJjQQhCPH84UVNn0010c6****","JobId":"183634077921266****","ModuleName":"Ble","ProductKey":"K1nhvyl****","ProductName":"Product1","SrcVersion":"1.0.0","TaskId":"183634077949482****","TaskStatus":"CONFIRM","UtcCreate":"2024-11-11T11:11:11Z","UtcModified":"2024-11-11T11:11:11.000Z","Progress":"10","Remark":{"nested":[1,2]}}"#;
    let input = format!("\r\n  \n{GOOD}\r\n\t\n{pascal}\n\n");
    let report = engine.load_jsonl(input.as_bytes()).unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(report.summary.inserted, 2);
    assert_eq!(engine.len(), 2);
    let stored = engine.get("", "183634077949482****").unwrap();
    assert_eq!(stored.progress.as_deref(), Some("10"));
    assert_eq!(stored.task_desc, None);
}

#[test]
fn identity_conflicts_against_the_store_and_within_the_load() {
    // The store binds OZs5… to (k1h9drZ****, device_actived).
    let engine = loaded();
    let before = snapshot(&engine);
    let other_pair = fresh().replace("NewDevice001", "OZs5tjTkzRRTZSCekmbRk1****");
    let err = engine
        .load_jsonl(format!("{}\n{other_pair}", fresh_other()).as_bytes())
        .unwrap_err();
    assert_eq!(err.line, 2);
    assert!(
        matches!(&err.kind, LoadErrorKind::Write(WriteError::IdentityConflict { bound: Binding::IotIdBoundTo { device_name, .. }, .. }) if device_name == "device_actived"),
        "{err}"
    );
    assert_eq!(snapshot(&engine), before);

    let other_iot = GOOD
        .replace("183371207782747****", "new-task")
        .replace("OZs5tjTkzRRTZSCekmbRk1****", "Thief");
    let err = engine.load_jsonl(other_iot.as_bytes()).unwrap_err();
    assert!(
        matches!(&err.kind, LoadErrorKind::Write(WriteError::IdentityConflict { bound: Binding::PairBoundTo { iot_id }, .. }) if iot_id == "OZs5tjTkzRRTZSCekmbRk1****"),
        "{err}"
    );
    assert_eq!(snapshot(&engine), before);

    // Within one load: line 1 binds NewDevice001, line 3 contradicts it.
    let contradicting = fresh_other().replace("NewDevice002", "NewDevice001");
    let err = engine
        .load_jsonl(format!("{}\n\n{contradicting}", fresh()).as_bytes())
        .unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert_eq!(snapshot(&engine), before);
    // The same identity in another instance is no conflict.
    let other_instance = other_pair.replacen('}', r#","iotInstanceId":"iot-2"}"#, 1);
    engine.load_jsonl(other_instance.as_bytes()).unwrap();
    engine.internal_validate().unwrap();
}

#[test]
fn first_bad_line_wins() {
    // Line 1 conflicts with the store; line 2 is malformed: line 1 is reported.
    let engine = loaded();
    let conflicting = fresh().replace("NewDevice001", "OZs5tjTkzRRTZSCekmbRk1****");
    let err = engine
        .load_jsonl(format!("{conflicting}\n{{oops\n").as_bytes())
        .unwrap_err();
    assert_eq!(err.line, 1, "{err}");
}

#[test]
fn single_writes_refuse_bad_records_and_change_nothing() {
    let engine = loaded();
    let before = snapshot(&engine);
    let mut rec = before[0].clone();
    rec.device_name = "ab".into();
    assert!(
        matches!(engine.upsert(&rec), Err(WriteError::InvalidField(ref f)) if f.field == Field::DeviceName)
    );
    let mut rec = before[0].clone();
    rec.task_id = "brand-new".into();
    rec.product_key = "another-product".into(); // same iotId, another pair
    assert!(matches!(
        engine.upsert(&rec),
        Err(WriteError::IdentityConflict { .. })
    ));
    assert!(
        matches!(engine.remove("", ""), Err(WriteError::InvalidField(ref f)) if f.field == Field::TaskId)
    );
    assert!(
        matches!(engine.remove("bad instance", "t-1"), Err(WriteError::InvalidField(ref f)) if f.field == Field::IotInstanceId)
    );
    assert_eq!(engine.remove("never-seen", "t-1"), Ok(false));
    assert_eq!(engine.remove("", "no-such-task"), Ok(false));
    assert_eq!(snapshot(&engine), before);
    engine.internal_validate().unwrap();
}

/// A status change repeats the stored strings and skips validation; one changed string that
/// breaks a rule must still be refused, before staleness or identity is looked at, whichever
/// field it is.
#[test]
fn a_known_task_with_one_bad_string_is_refused_stale_or_not() {
    let engine = loaded();
    let before = snapshot(&engine);
    type Spoil = fn(&mut TaskRecord);
    let bad: [(Field, Spoil); 9] = [
        (Field::JobId, |r| r.job_id = "has space".into()),
        (Field::FirmwareId, |r| r.firmware_id = String::new()),
        (Field::ProductName, |r| r.product_name = "tab\there".into()),
        (Field::ModuleName, |r| r.module_name = "a:b".into()),
        (Field::SrcVersion, |r| r.src_version = "\u{7}".into()),
        (Field::DestVersion, |r| r.dest_version = "x".repeat(65)),
        (Field::DeviceName, |r| r.device_name = "ab".into()),
        (Field::ProductKey, |r| r.product_key = "p k".into()),
        (Field::IotInstanceId, |r| {
            r.iot_instance_id = "in stance".into()
        }),
    ];
    for (field, spoil) in bad {
        for modified in [i64::MIN / 4, i64::MAX / 4] {
            let mut rec = before[0].clone();
            rec.status = TaskStatus::InProgress;
            rec.utc_modified = Timestamp::from_millis(modified);
            spoil(&mut rec);
            let got = engine.upsert(&rec);
            assert!(
                matches!(got, Err(WriteError::InvalidField(ref f)) if f.field == field),
                "{field} at utcModified {modified}: {got:?}"
            );
        }
    }
    assert_eq!(snapshot(&engine), before);
    engine.internal_validate().unwrap();
}

#[test]
fn stale_and_equal_timestamps() {
    let engine = Engine::new();
    let t = |ms| Timestamp::from_millis(ms);
    let mut rec = TaskRecord {
        task_id: "t".into(),
        job_id: "j".into(),
        firmware_id: "f".into(),
        iot_id: "dev".into(),
        product_key: "pk".into(),
        product_name: "P".into(),
        device_name: "device".into(),
        module_name: "default".into(),
        src_version: "".into(),
        dest_version: "2".into(),
        status: TaskStatus::Queued,
        utc_create: t(0),
        utc_modified: t(10),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    };
    engine.upsert(&rec).unwrap();
    rec.status = TaskStatus::InProgress;
    rec.utc_modified = t(9);
    assert!(
        matches!(engine.upsert(&rec), Ok(ota_index::UpsertOutcome::Stale { stored }) if stored == t(10))
    );
    assert_eq!(engine.get("", "t").unwrap().status, TaskStatus::Queued);
    rec.utc_modified = t(10); // a tie: the status of higher rank wins, in either order
    assert_eq!(engine.upsert(&rec), Ok(ota_index::UpsertOutcome::Replaced));
    assert_eq!(engine.get("", "t").unwrap().status, TaskStatus::InProgress);
    let mut lower = rec.clone();
    lower.status = TaskStatus::Queued;
    assert!(matches!(
        engine.upsert(&lower),
        Ok(ota_index::UpsertOutcome::Stale { stored }) if stored == t(10)
    ));
    assert_eq!(engine.get("", "t").unwrap().status, TaskStatus::InProgress);
    // Replaying the same write is a no-op.
    assert_eq!(engine.upsert(&rec), Ok(ota_index::UpsertOutcome::Unchanged));
    // A tie on time and status: the other fields decide, as bytes.
    let mut other = rec.clone();
    other.dest_version = "10".into(); // "10" < "2"
    assert!(matches!(
        engine.upsert(&other),
        Ok(ota_index::UpsertOutcome::Stale { .. })
    ));
    other.dest_version = "3".into();
    assert_eq!(
        engine.upsert(&other),
        Ok(ota_index::UpsertOutcome::Replaced)
    );
    assert_eq!(engine.get("", "t").unwrap().dest_version, "3");
    assert_eq!(engine.len(), 1);
}

#[test]
fn data_file_errors() {
    let engine = Engine::new();
    let err = engine
        .load_jsonl_file("/nonexistent/tasks.jsonl")
        .unwrap_err();
    assert!(matches!(err.kind, LoadErrorKind::Io(_)));
    assert!(
        err.to_string().contains("/nonexistent/tasks.jsonl"),
        "{err}"
    );
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_skipped() {
    let engine = Engine::new();
    let input = format!("\u{feff}{GOOD}\n");
    assert_eq!(engine.load_jsonl(input.as_bytes()).unwrap().records, 1);
    // Anywhere else it is part of a line, and not JSON.
    let err = engine
        .load_jsonl(format!("{GOOD}\n\u{feff}{GOOD}").as_bytes())
        .unwrap_err();
    assert_eq!(err.line, 2);
}

/// The optional fields load, are kept and come back; empty is unknown; a bad one is refused
/// naming it, and a non-string is not a string.
#[test]
fn optional_fields_are_stored_and_checked() {
    let line = |extra: &str| GOOD.replacen('}', &format!(",{extra}}}"), 1);
    let engine = Engine::new();
    let report = engine
        .load_jsonl(line(r#""progress":"95","TaskDesc":"","timeout":"1440""#).as_bytes())
        .unwrap();
    assert_eq!(report.summary.inserted, 1);
    let stored = &engine.tasks()[0];
    assert_eq!(stored.progress.as_deref(), Some("95"));
    assert_eq!(stored.task_desc, None);
    assert_eq!(stored.timeout.as_deref(), Some("1440"));
    for (extra, field, violation) in [
        (r#""timeout":"12a""#, Field::Timeout, "holds"),
        (
            r#""progress":"12345678901234567""#,
            Field::Progress,
            "0 to 16",
        ),
        (r#""taskDesc":null"#, Field::TaskDesc, "JSON string"),
        (r#""taskDesc":"a\u0001""#, Field::TaskDesc, "holds"),
    ] {
        let err = Engine::new()
            .load_jsonl(line(extra).as_bytes())
            .unwrap_err();
        assert_eq!(err.field(), Some(field), "{extra}: {err}");
        assert!(err.to_string().contains(violation), "{extra}: {err}");
    }
}
