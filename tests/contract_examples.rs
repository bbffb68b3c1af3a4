//! The worked examples of the contract (`tests/data/contract`, a copy of
//! `shared/spec/examples`): every request answered byte for byte as expected, in both key
//! styles. Error messages are free text, shown as "x" in the expected files: the answer's
//! message must be non-empty and is compared as "x".

use ota_index::rpc::{query_part, HttpRequest, KeyCase, Service};
use ota_index::Engine;

const TASKS: &str = include_str!("data/contract/tasks.jsonl");
const REQUESTS: &str = include_str!("data/contract/requests.txt");

fn service(case: KeyCase) -> Service {
    let engine = Engine::new();
    engine
        .load_jsonl(TASKS.as_bytes())
        .expect("the examples load");
    Service::new(engine).with_case(case)
}

/// Replaces the value of `"errorMessage"`/`"message"` (either case) with `"x"`, checking it
/// was a non-empty string.
fn mask_message(answer: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(answer).expect("answer is JSON");
    let mut masked = answer.to_owned();
    for key in ["errorMessage", "message", "ErrorMessage", "Message"] {
        if let Some(text) = value.get(key) {
            let text = text.as_str().expect("message is a string");
            assert!(!text.is_empty(), "empty message in {answer}");
            let encoded = serde_json::to_string(text).unwrap();
            masked = masked.replacen(
                &format!("\"{key}\":{encoded}"),
                &format!("\"{key}\":\"x\""),
                1,
            );
        }
    }
    masked
}

fn check(case: KeyCase, expected: &str) {
    let service = service(case);
    let requests: Vec<&str> = REQUESTS.lines().filter(|l| !l.trim().is_empty()).collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(requests.len(), expected.len());
    for (line, (request, want)) in requests.iter().zip(&expected).enumerate() {
        let mut out = Vec::new();
        let status = service.answer(
            &HttpRequest {
                request_id: Some("rid-1"),
                ..HttpRequest::get(query_part(request))
            },
            &mut out,
        );
        let got = String::from_utf8(out).unwrap();
        assert_eq!(
            mask_message(&got),
            *want,
            "request {} ({request})",
            line + 1
        );
        let code = serde_json::from_str::<serde_json::Value>(want).unwrap();
        let code = code
            .get(if case == KeyCase::Camel {
                "code"
            } else {
                "Code"
            })
            .and_then(|c| c.as_str())
            .unwrap()
            .to_owned();
        let want_status = match code.as_str() {
            "" => 200,
            c if c.starts_with("iot.") => 200,
            "InvalidAction.NotFound" => 404,
            _ => 400,
        };
        assert_eq!(status, want_status, "HTTP status of request {}", line + 1);
    }
}

#[test]
fn camel_case_examples() {
    check(
        KeyCase::Camel,
        include_str!("data/contract/expected.camel.jsonl"),
    );
}

#[test]
fn pascal_case_examples() {
    check(
        KeyCase::Pascal,
        include_str!("data/contract/expected.pascal.jsonl"),
    );
}

#[test]
fn seed_record_round_trips_byte_for_byte() {
    // The platform's API page's "Normal Return Example", compacted.
    let seed = r#"{"code":"","data":{"simpleOTATaskInfo":[{"destVersion":"3.9.0","deviceName":"device_actived","firmwareId":"123","iotId":"OZs5tjTkzRRTZSCekmbRk1****","jobId":"183371207742901****","moduleName":"ble","productKey":"k1h9drZ****","productName":"testProduct1","srcVersion":"1.8","taskId":"183371207782747****","taskStatus":"NOTIFIED","utcCreate":"2024-09-11T03:40:02.734Z","utcModified":"2024-09-11T06:27:24.649Z"}]},"requestId":"352b8d45-4544-45b2-9d79-b9b5e6640ce7","success":true}"#;
    let record = TASKS.lines().next().unwrap();
    let engine = Engine::new();
    engine.load_jsonl(record.as_bytes()).unwrap();
    for (case, want) in [
        (KeyCase::Camel, seed.to_owned()),
        (KeyCase::Pascal, pascalize(seed)),
    ] {
        let service = Service::new(engine.clone()).with_case(case);
        let mut out = Vec::new();
        let status = service.answer(
            &HttpRequest {
                request_id: Some("352b8d45-4544-45b2-9d79-b9b5e6640ce7"),
                ..HttpRequest::get("Action=ListOTAUnfinishedTaskByDevice&ProductKey=k1h9drZ****&DeviceName=device_actived&TaskStatus=NOTIFIED")
            },
            &mut out,
        );
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }
}

/// Upper-cases the first letter of every key of a compact JSON text (keys are the only
/// strings followed by a colon in these answers).
fn pascalize(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut out = json.to_owned();
    fn keys(v: &serde_json::Value, into: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    into.push(k.clone());
                    keys(v, into);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, into)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(&value, &mut all);
    for k in all {
        let mut p = k.clone();
        p[..1].make_ascii_uppercase();
        out = out.replace(&format!("\"{k}\":"), &format!("\"{p}\":"));
    }
    out
}
