use super::plain::unfinished;
use super::rules::{echo, status_list_index};
use super::*;
use crate::model::TaskStatus;
use crate::rpc::error::ErrorCode;
use crate::rpc::params::MAX_PARAMS;

/// The fast path resumed after the usual lead gives what the whole fast path gives, for
/// every tail: pairs it reads, repeats, escapes, empty pairs and names it does not read.
#[test]
fn parse_plain_after_the_usual_lead_is_parse_plain() {
    let lead = "Action=ListOTAUnfinishedTaskByDevice&IotId=";
    let tails = [
        "dev-1",
        "dev-1&",
        "dev-1&&",
        "dev-1&ModuleName=ble",
        "dev-1&ModuleName=",
        "dev-1&TaskStatus=QUEUED",
        "dev-1&TaskStatus=SUCCEEDED",
        "dev-1&TaskStatusList.1=QUEUED&TaskStatusList.2=IN_PROGRESS",
        "dev-1&TaskStatusList.1=QUEUED&TaskStatusList.1=QUEUED",
        "dev-1&IotId=dev-2",
        "dev-1&IoTID=dev-2",
        "dev-1&Action=ListOTAUnfinishedTaskByDevice",
        "dev-1&ProductKey=pk&DeviceName=dn",
        "dev-1&IotInstanceId=iot-2",
        "dev-1&IotInstanceId=",
        "dev-1&Format=JSON",
        "dev-1&ModuleName=a%62",
        "dev-1&ModuleName=a+b",
        "dev%2D1",
        "dev+1",
        "",
        "&IotId=dev-1",
        "de v",
        "智能",
        "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-0123456789",
    ];
    let mut resumed = 0;
    for tail in tails {
        let q = format!("{lead}{tail}");
        match usual_lead(&q) {
            Some(l) => {
                resumed += 1;
                assert_eq!(parse_plain_after(&q, l), parse_plain(&q), "{q}");
            }
            None => assert!(
                tail.is_empty() || tail.starts_with('&') || tail.contains(['%', '+']),
                "{q}: no lead"
            ),
        }
    }
    assert!(resumed >= 20, "{resumed}");
}

proptest::proptest! {
    #[test]
    fn parse_plain_after_any_tail_is_parse_plain(
        parts in proptest::collection::vec(proptest::sample::select(vec![
            "&", "dev-1", "=", "ModuleName=", "ble", "TaskStatus=", "QUEUED",
            "TaskStatusList.3=", "IotId=", "IoTID=", "ProductKey=", "DeviceName=",
            "IotInstanceId=", "%41", "+", "x", "Action=ListOTAUnfinishedTaskByDevice",
        ]), 0..12)
    ) {
        let q = format!("Action=ListOTAUnfinishedTaskByDevice&IotId={}", parts.concat());
        if let Some(l) = usual_lead(&q) {
            proptest::prop_assert_eq!(parse_plain_after(&q, l), parse_plain(&q), "{}", q);
        }
    }
}

const A: &str = "Action=ListOTAUnfinishedTaskByDevice";

/// An owned copy of a parsed request, so that helpers can return it.
#[derive(Debug)]
struct Owned {
    device: (Option<String>, Option<(String, String)>),
    module: Option<String>,
    statuses: StatusSet,
    instance: Option<String>,
}

impl Owned {
    fn of(r: &ParsedRequest<'_>) -> Owned {
        Owned {
            device: match r.device() {
                DeviceRef::IotId(id) => (Some(id.to_owned()), None),
                DeviceRef::Name {
                    product_key,
                    device_name,
                } => (None, Some((product_key.to_owned(), device_name.to_owned()))),
            },
            module: r.module().map(str::to_owned),
            statuses: r.statuses(),
            instance: r.instance().map(str::to_owned),
        }
    }
    fn device(&self) -> DeviceRef<'_> {
        match &self.device {
            (Some(id), _) => DeviceRef::IotId(id),
            (None, Some((pk, dn))) => DeviceRef::Name {
                product_key: pk,
                device_name: dn,
            },
            (None, None) => unreachable!("a parsed request names a device"),
        }
    }
    fn module(&self) -> Option<&str> {
        self.module.as_deref()
    }
    fn statuses(&self) -> StatusSet {
        self.statuses
    }
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }
    fn query(&self) -> Query<'_> {
        Query {
            device: self.device(),
            module: self.module(),
            statuses: self.statuses,
            instance: self.instance(),
        }
    }
}

fn parse_with(query: &str, body: Option<&[u8]>, header: Option<&str>) -> Result<Owned, RpcError> {
    parse_request(&Params::decode(query, body), header).map(|r| Owned::of(&r))
}

fn parse(query: &str) -> Result<Owned, RpcError> {
    parse_with(query, None, None)
}

/// `query` with the right action first.
fn ok(rest: &str) -> Owned {
    match parse(&format!("{A}&{rest}")) {
        Ok(request) => request,
        Err(e) => panic!("{rest}: {e}"),
    }
}

/// The error of `query` (no action added); checks the message names `names`.
fn err(query: &str, code: ErrorCode, names: &[&str]) -> RpcError {
    match parse(query) {
        Ok(request) => panic!("{query}: expected {code}, got {request:?}"),
        Err(e) => {
            assert_eq!(e.code, code, "{query}: {}", e.message);
            assert!(!e.message.is_empty());
            for name in names {
                assert!(
                    e.message.contains(name),
                    "{query}: {:?} lacks {name}",
                    e.message
                );
            }
            e
        }
    }
}

/// The error of the right action followed by `rest`.
fn err_a(rest: &str, code: ErrorCode, names: &[&str]) -> RpcError {
    err(&format!("{A}&{rest}"), code, names)
}

use ErrorCode::*;

// ---- the worked examples (requests.txt) ----

#[test]
fn worked_example_requests() {
    let r = ok("ProductKey=k1h9drZ****&DeviceName=device_actived");
    assert_eq!(
        r.device(),
        DeviceRef::Name {
            product_key: "k1h9drZ****",
            device_name: "device_actived"
        }
    );
    assert_eq!(r.module(), None);
    assert_eq!(r.statuses(), StatusSet::EMPTY);
    assert_eq!(r.instance(), None);

    let r = ok("IotId=OZs5tjTkzRRTZSCekmbRk1****&TaskStatus=NOTIFIED");
    assert_eq!(r.device(), DeviceRef::IotId("OZs5tjTkzRRTZSCekmbRk1****"));
    assert_eq!(r.statuses(), StatusSet::only(TaskStatus::Notified));

    let r = ok("IoTID=TfmUAeJjQQhCPH84UVNn0010c6****&ModuleName=ble");
    assert_eq!(
        r.device(),
        DeviceRef::IotId("TfmUAeJjQQhCPH84UVNn0010c6****")
    );
    assert_eq!(r.module(), Some("ble"));

    let r = ok("IotId=T&TaskStatusList.1=QUEUED&TaskStatusList.3=IN_PROGRESS");
    assert_eq!(
        r.statuses(),
        StatusSet::EMPTY
            .with(TaskStatus::Queued)
            .with(TaskStatus::InProgress)
    );

    let r = ok("IotId=T&TaskStatus=CONFIRM&TaskStatusList.1=QUEUED");
    assert_eq!(
        r.statuses(),
        StatusSet::EMPTY
            .with(TaskStatus::Confirm)
            .with(TaskStatus::Queued)
    );

    assert_eq!(
        ok("IotId=T&IotInstanceId=iot-c3j0000").instance(),
        Some("iot-c3j0000")
    );
    assert_eq!(
        ok("IotId=T&IotInstanceId=iot-unknown").instance(),
        Some("iot-unknown")
    );

    let r = ok("ProductKey=a19mzPZ****&DeviceName=mac%3A00-1A%40home.x");
    assert_eq!(
        r.device(),
        DeviceRef::Name {
            product_key: "a19mzPZ****",
            device_name: "mac:00-1A@home.x"
        }
    );

    let r = ok("IotId=OZs5tjTkzRRTZSCekmbRk1****&ProductKey=nope&DeviceName=x");
    assert_eq!(r.device(), DeviceRef::IotId("OZs5tjTkzRRTZSCekmbRk1****"));

    let r = ok(
        "IotId=OZs5tjTkzRRTZSCekmbRk1****&Format=JSON&Timestamp=2024-11-19T09%3A47%3A43Z\
         &Signature=WJN0Ee8%2BX6pogcD3loLHIqQNEN0%3D",
    );
    assert_eq!(r.device(), DeviceRef::IotId("OZs5tjTkzRRTZSCekmbRk1****"));

    let r = ok("ProductKey=K1nhvyl****&DeviceName=Light&ModuleName=DEFAULT");
    assert_eq!(r.module(), Some("DEFAULT"));

    err_a(
        "IotId=O&TaskStatus=SUCCEEDED",
        InvalidFormattedParameter,
        &["TaskStatus", "unfinished"],
    );
    err_a(
        "IotId=O&TaskStatusList.0=QUEUED",
        InvalidParameter,
        &["TaskStatusList.0"],
    );
    err_a("ProductKey=k1h9drZ****", MissingParameter, &["DeviceName"]);
    err_a(
        "ProductKey=k1h9drZ****&DeviceName=abc",
        InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    err(
        "Action=DescribeRegions&IotId=O",
        InvalidActionNotFound,
        &["Action", "DescribeRegions"],
    );
    err_a("IotId=O&IotId=O", InvalidParameter, &["IotId"]);
}

#[test]
fn query_borrows_every_value() {
    let r = ok("ProductKey=pk&DeviceName=dev1&ModuleName=ble&TaskStatus=QUEUED&IotInstanceId=i");
    let q = r.query();
    assert_eq!(
        q,
        Query::by_name("pk", "dev1")
            .module("ble")
            .statuses(StatusSet::only(TaskStatus::Queued))
            .instance("i")
    );
    assert!(q.validate().is_ok());
    assert_eq!(ok("IotId=x").query(), Query::by_iot_id("x"));
}

// ---- step 1: Action ----

#[test]
fn action_missing_or_wrong() {
    err("IotId=x", InvalidActionNotFound, &["Action", "missing"]);
    err("Action=&IotId=x", InvalidActionNotFound, &["Action"]);
    err(
        "Action=listotaunfinishedtaskbydevice&IotId=x",
        InvalidActionNotFound,
        &["listotaunfinishedtaskbydevice"],
    );
    err(
        "Action=ListOTAUnfinishedTaskByDevice+&IotId=x",
        InvalidActionNotFound,
        &["Action"],
    );
    // Names are case-sensitive: `action` is an unknown parameter.
    err(
        "action=ListOTAUnfinishedTaskByDevice&IotId=x",
        InvalidActionNotFound,
        &["Action"],
    );
    assert!(parse("").is_err_and(|e| e.code == InvalidActionNotFound));
}

#[test]
fn action_from_header_only() {
    assert!(parse_with("IotId=x", None, Some(ACTION)).is_ok());
    let e = parse_with("IotId=x", None, Some("DescribeRegions"));
    assert!(e.is_err_and(|e| e.code == InvalidActionNotFound
        && e.message.contains(ACTION_HEADER)
        && e.message.contains("DescribeRegions")));
    // An empty header counts as absent.
    let e = parse_with("IotId=x", None, Some(""));
    assert!(e.is_err_and(|e| e.code == InvalidActionNotFound && e.message.contains("Action")));
    // An empty Action parameter falls back to the header.
    assert!(parse_with("Action=&IotId=x", None, Some(ACTION)).is_ok());
}

#[test]
fn action_parameter_wins_over_header() {
    assert!(parse_with(&format!("{A}&IotId=x"), None, Some("Other")).is_ok());
    let e = parse_with("Action=Other&IotId=x", None, Some(ACTION));
    assert!(e.is_err_and(|e| e.code == InvalidActionNotFound && e.message.contains("Other")));
}

#[test]
fn action_in_body_counts() {
    let body = format!("{A}&IotId=x");
    assert!(parse_with("", Some(body.as_bytes()), None).is_ok());
}

#[test]
fn action_twice() {
    // Both right: a duplicate.
    err(&format!("{A}&{A}&IotId=x"), InvalidParameter, &["Action"]);
    // Query and body: a duplicate.
    let e = parse_with(&format!("{A}&IotId=x"), Some(A.as_bytes()), None);
    assert!(e.is_err_and(|e| e.code == InvalidParameter && e.message.contains("Action")));
    // One wrong, in either position: the action is not found.
    err(
        &format!("{A}&Action=Other&IotId=x"),
        InvalidActionNotFound,
        &["Other"],
    );
    err(
        &format!("Action=Other&{A}&IotId=x"),
        InvalidActionNotFound,
        &["Other"],
    );
}

#[test]
fn action_that_does_not_decode() {
    // Not usable as an action: without a header, not found.
    err("Action=%ZZ&IotId=x", InvalidActionNotFound, &["Action"]);
    // With the header, the malformed parameter is reported.
    let e = parse_with("Action=%ZZ&IotId=x", None, Some(ACTION));
    assert!(e.is_err_and(|e| e.code == InvalidParameter && e.message.contains("%ZZ")));
    // An escaped but well-formed action is fine.
    assert!(parse("Action=ListOTAUnfinished%54askByDevice&IotId=x").is_ok());
}

#[test]
fn action_beats_every_other_fault() {
    for rest in [
        "IotId=x&IotId=y",
        "Foo=%ZZ",
        "TaskStatusList.0=QUEUED",
        "",
        "IotId=a+b",
        "IotId=x&ModuleName=a:b",
        "IotId=x&TaskStatus=DONE",
    ] {
        err(
            &format!("Action=Nope&{rest}"),
            InvalidActionNotFound,
            &["Nope"],
        );
        err(rest, InvalidActionNotFound, &["Action"]);
    }
}

#[test]
fn action_past_the_cap_is_still_checked() {
    let filler: String = (0..MAX_PARAMS).map(|i| format!("p{i}=v&")).collect();
    // The right action past the cap: too many parameters.
    err(&format!("{filler}{A}"), InvalidParameter, &["1000"]);
    // A wrong action past the cap: not found.
    err(
        &format!("{A}&{filler}Action=Other"),
        InvalidActionNotFound,
        &["Other"],
    );
    // No action anywhere: not found.
    err(&filler, InvalidActionNotFound, &["Action"]);
}

// ---- step 2: malformed and duplicate parameters ----

#[test]
fn undecodable_names_and_values_even_of_ignored_parameters() {
    err_a("IotId=x&Foo=%ZZ", InvalidParameter, &["Foo", "%ZZ"]);
    err_a("IotId=x&Fo%ZZo=1", InvalidParameter, &["Fo%ZZo", "%ZZ"]);
    err_a("IotId=x&Signature=abc%", InvalidParameter, &["Signature"]);
    err_a("IotId=%C3%28", InvalidParameter, &["IotId", "UTF-8"]);
    err_a("IotId=x&N%C3%28=1", InvalidParameter, &["UTF-8"]);
    let e = parse_with(&format!("{A}&IotId=x"), Some(b"Foo=\xff"), None);
    assert!(e.is_err_and(|e| e.code == InvalidParameter
        && e.message.contains("Foo")
        && e.message.contains("form body")));
}

#[test]
fn plus_decodes_to_space() {
    // A space is not allowed in a device name, so the `+` reached the field check as one.
    let e = err_a(
        "ProductKey=pk&DeviceName=dev+ice",
        InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    assert!(e.message.contains("' '"), "{}", e.message);
    assert_eq!(ok("IotId=x&IotInstanceId=a+b").instance(), Some("a b"));
}

#[test]
fn duplicates_anywhere() {
    err_a(
        "ProductKey=a&ProductKey=a&DeviceName=dddd",
        InvalidParameter,
        &["ProductKey"],
    );
    // Second value empty: still given twice.
    err_a(
        "ProductKey=a&DeviceName=dddd&ProductKey=",
        InvalidParameter,
        &["ProductKey"],
    );
    err_a("IotId=&IotId=", InvalidParameter, &["IotId"]);
    // Ignored parameters too.
    err_a(
        "IotId=x&Format=JSON&Format=JSON",
        InvalidParameter,
        &["Format"],
    );
    // Same name after decoding.
    err_a(
        "IotId=x&ModuleName=a&Module%4Eame=a",
        InvalidParameter,
        &["ModuleName"],
    );
    err_a(
        "IotId=x&TaskStatusList.1=QUEUED&TaskStatusList.1=QUEUED",
        InvalidParameter,
        &["TaskStatusList.1"],
    );
    // Query string and body together.
    let e = parse_with(&format!("{A}&IotId=x"), Some(b"IotId=x"), None);
    assert!(e.is_err_and(|e| e.code == InvalidParameter && e.message.contains("IotId")));
    // Different case: different names.
    assert!(parse(&format!("{A}&IotId=x&iotid=y&IOTID=z")).is_ok());
    // Past the first sixteen other names (counted apart from the names the rules read),
    // for every kind of name, the duplicate after them or before them.
    let many: String = (0..20).map(|i| format!("&Extra{i}=v")).collect();
    assert!(parse(&format!("{A}&IotId=x{many}&TaskStatusList.7=QUEUED")).is_ok());
    for twice in [
        "IotId=x",
        "IoTID=x",
        "ProductKey=p",
        "DeviceName=d",
        "ModuleName=m",
        "TaskStatus=QUEUED",
        "IotInstanceId=i",
        "TaskStatusList.7=QUEUED",
        "Extra3=w",
        "Extra19=w",
        "Format=JSON",
    ] {
        let name = twice.split('=').next().unwrap_or_default();
        for query in [
            format!("{twice}{many}&{twice}&IotId=y"),
            format!("{many}&{twice}&Format=XML&{twice}&IoTID=y"),
            format!("IotId=y&{twice}&{twice}{many}"),
        ] {
            let request = format!("{A}&{}", query.trim_start_matches('&'));
            let e = parse(&request).expect_err(&request);
            assert_eq!(e.code, InvalidParameter, "{request}: {e:?}");
            assert!(e.message.contains(name), "{request}: {e:?}");
        }
    }
}

#[test]
fn iot_id_alias_both_given_is_a_duplicate() {
    err_a(
        "IotId=x&IoTID=x",
        InvalidParameter,
        &["IotId", "IoTID", "same parameter"],
    );
    err_a("IoTID=x&IotId=y", InvalidParameter, &["IotId", "IoTID"]);
    // Even with an empty value on one side.
    err_a("IotId=x&IoTID=", InvalidParameter, &["IoTID"]);
    err_a("IoTID=&IotId=x", InvalidParameter, &["IoTID"]);
    let e = err_a(
        "IoTID=x&IoTID=x",
        InvalidParameter,
        &["IoTID", "more than once"],
    );
    assert!(!e.message.contains("IotId"), "{}", e.message);
}

#[test]
fn malformed_task_status_list_names() {
    for name in [
        "TaskStatusList",
        "TaskStatusList.",
        "TaskStatusList.0",
        "TaskStatusList.00",
        "TaskStatusList.01",
        "TaskStatusList.+1",
        "TaskStatusList.-1",
        "TaskStatusList. 1",
        "TaskStatusList.1 ",
        "TaskStatusList.a",
        "TaskStatusList.1a",
        "TaskStatusList.101",
        "TaskStatusList.255",
        "TaskStatusList.256",
        "TaskStatusList.1000",
        "TaskStatusList.99999999999999999999",
        "TaskStatusList.1.x",
        "TaskStatusList.1.",
        "TaskStatusList..1",
        "TaskStatusListX",
        "TaskStatusList_1",
        "TaskStatusList.１",
    ] {
        let encoded = name.replace('+', "%2B").replace(' ', "+");
        err_a(
            &format!("IotId=x&{encoded}=QUEUED"),
            InvalidParameter,
            &[name],
        );
        // Malformed even with an empty value.
        err_a(&format!("IotId=x&{encoded}="), InvalidParameter, &[name]);
    }
    for (name, n) in [
        ("TaskStatusList.1", 1),
        ("TaskStatusList.9", 9),
        ("TaskStatusList.10", 10),
        ("TaskStatusList.100", 100),
    ] {
        assert_eq!(status_list_index(name), Some(n));
        ok(&format!("IotId=x&{name}=QUEUED"));
    }
    // Case-sensitive: unknown names, ignored.
    let r = ok("IotId=x&taskstatuslist.1=DONE&TASKSTATUSLIST.0=x&taskStatus=DONE");
    assert_eq!(r.statuses(), StatusSet::EMPTY);
}

#[test]
fn too_many_parameters() {
    let filler: String = (0..MAX_PARAMS - 2).map(|i| format!("&p{i}=v")).collect();
    assert!(parse(&format!("{A}&IotId=x{filler}")).is_ok());
    err(
        &format!("{A}&IotId=x{filler}&one=more"),
        InvalidParameter,
        &["1000"],
    );
    // The body counts too.
    let e = parse_with(&format!("{A}&IotId=x{filler}"), Some(b"one=more"), None);
    assert!(e.is_err_and(|e| e.code == InvalidParameter));
}

#[test]
fn malformed_or_duplicate_beats_the_device() {
    // Duplicate + missing device.
    err_a("Format=a&Format=b", InvalidParameter, &["Format"]);
    // Malformed + bad device.
    err_a("IotId=a+b&X=%ZZ", InvalidParameter, &["%ZZ"]);
    err_a(
        "ProductKey=k&TaskStatusList.0=QUEUED",
        InvalidParameter,
        &["TaskStatusList.0"],
    );
    err_a(
        "ProductKey=k&DeviceName=abc&DeviceName=abc",
        InvalidParameter,
        &["DeviceName"],
    );
}

#[test]
fn first_malformed_in_received_order_wins() {
    let e = err_a(
        "IotId=x&Alpha=%ZZ&Beta=1&Beta=2",
        InvalidParameter,
        &["Alpha"],
    );
    assert!(!e.message.contains("Beta"), "{}", e.message);
    let e = err_a(
        "IotId=x&Beta=1&Beta=2&Alpha=%ZZ",
        InvalidParameter,
        &["Beta"],
    );
    assert!(!e.message.contains("Alpha"), "{}", e.message);
    let e = err_a(
        "IotId=x&TaskStatusList=Q&Alpha=%ZZ",
        InvalidParameter,
        &["TaskStatusList"],
    );
    assert!(!e.message.contains("Alpha"), "{}", e.message);
}

// ---- step 3: the device ----

#[test]
fn missing_device_names_what_is_missing() {
    let e = err_a("", MissingParameter, &["IotId", "ProductKey", "DeviceName"]);
    assert!(e.message.contains("not supplied"));
    err_a(
        "IotId=&ProductKey=&DeviceName=",
        MissingParameter,
        &["IotId", "ProductKey", "DeviceName"],
    );
    let e = err_a("ProductKey=k1h9drZ****", MissingParameter, &["DeviceName"]);
    assert!(!e.message.contains("ProductKey"), "{}", e.message);
    let e = err_a("DeviceName=device", MissingParameter, &["ProductKey"]);
    assert!(!e.message.contains("DeviceName"), "{}", e.message);
    err_a(
        "ProductKey=k&DeviceName=",
        MissingParameter,
        &["DeviceName"],
    );
    // Missing beats the format of the other half of the pair.
    err_a("ProductKey=a+b", MissingParameter, &["DeviceName"]);
    err_a("DeviceName=ab", MissingParameter, &["ProductKey"]);
}

#[test]
fn iot_id_wins_and_the_pair_is_not_consulted() {
    let r = ok("IotId=x&ProductKey=a+b&DeviceName=ab");
    assert_eq!(r.device(), DeviceRef::IotId("x"));
    let r = ok("ProductKey=bad+key&IotId=x");
    assert_eq!(r.device(), DeviceRef::IotId("x"));
    let r = ok("IoTID=y&DeviceName=");
    assert_eq!(r.device(), DeviceRef::IotId("y"));
    // An empty IotId counts as absent: the pair is used.
    let r = ok("IotId=&ProductKey=pk&DeviceName=dddd");
    assert_eq!(
        r.device(),
        DeviceRef::Name {
            product_key: "pk",
            device_name: "dddd"
        }
    );
    let r = ok("IoTID=&ProductKey=pk&DeviceName=dddd");
    assert!(matches!(r.device(), DeviceRef::Name { .. }));
}

#[test]
fn device_formats() {
    err_a("IotId=a+b", InvalidIotId, &["IotId"]);
    err_a(
        &format!("IotId={}", "x".repeat(65)),
        InvalidIotId,
        &["IotId", "64"],
    );
    err_a("IoTID=%C3%A9", InvalidIotId, &["IoTID"]);
    ok(&format!("IotId={}", "x".repeat(64)));
    err_a(
        "ProductKey=a+b&DeviceName=dddd",
        InvalidFormattedProductKey,
        &["ProductKey"],
    );
    err_a(
        &format!("ProductKey={}&DeviceName=dddd", "k".repeat(65)),
        InvalidFormattedProductKey,
        &["ProductKey"],
    );
    err_a(
        "ProductKey=pk&DeviceName=abc",
        InvalidFormattedDeviceName,
        &["DeviceName", "4 to 32"],
    );
    err_a(
        "ProductKey=pk&DeviceName=dev%2Fice",
        InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    err_a(
        &format!("ProductKey=pk&DeviceName={}", "d".repeat(33)),
        InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    // ProductKey before DeviceName.
    err_a(
        "ProductKey=a+b&DeviceName=abc",
        InvalidFormattedProductKey,
        &["ProductKey"],
    );
    err_a(
        "DeviceName=abc&ProductKey=a+b",
        InvalidFormattedProductKey,
        &["ProductKey"],
    );
}

#[test]
fn device_beats_module_and_statuses() {
    err_a("IotId=a+b&ModuleName=a:b", InvalidIotId, &["IotId"]);
    err_a(
        "ProductKey=a+b&DeviceName=dddd&ModuleName=a:b",
        InvalidFormattedProductKey,
        &["ProductKey"],
    );
    err_a(
        "ProductKey=pk&DeviceName=abc&TaskStatus=DONE",
        InvalidFormattedDeviceName,
        &["DeviceName"],
    );
    err_a(
        "ModuleName=a:b&TaskStatus=DONE",
        MissingParameter,
        &["IotId"],
    );
}

// ---- step 4: ModuleName ----

#[test]
fn module_name() {
    assert_eq!(
        ok("IotId=x&ModuleName=Wifi_Module-2.1").module(),
        Some("Wifi_Module-2.1")
    );
    assert_eq!(ok("IotId=x&ModuleName=").module(), None);
    err_a(
        "IotId=x&ModuleName=a:b",
        InvalidFormattedParameter,
        &["ModuleName"],
    );
    err_a(
        "IotId=x&ModuleName=a+b",
        InvalidFormattedParameter,
        &["ModuleName"],
    );
    err_a(
        &format!("IotId=x&ModuleName={}", "m".repeat(65)),
        InvalidFormattedParameter,
        &["ModuleName"],
    );
    // Module before statuses.
    err_a(
        "IotId=x&TaskStatus=DONE&ModuleName=a:b",
        InvalidFormattedParameter,
        &["ModuleName"],
    );
    // Unknown casing of the name: ignored.
    assert_eq!(ok("IotId=x&modulename=a:b").module(), None);
}

// ---- step 5: statuses ----

#[test]
fn each_unfinished_status_is_accepted() {
    for status in StatusSet::UNFINISHED.iter() {
        let r = ok(&format!("IotId=x&TaskStatus={status}"));
        assert_eq!(r.statuses(), StatusSet::only(status));
        let r = ok(&format!("IotId=x&TaskStatusList.7={status}"));
        assert_eq!(r.statuses(), StatusSet::only(status));
    }
    let all = "TaskStatusList.1=CONFIRM&TaskStatusList.2=QUEUED&TaskStatusList.3=NOTIFIED\
               &TaskStatusList.4=IN_PROGRESS";
    assert_eq!(
        ok(&format!("IotId=x&{all}")).statuses(),
        StatusSet::UNFINISHED
    );
}

#[test]
fn statuses_union_duplicates_gaps_and_empties() {
    let r = ok("IotId=x&TaskStatus=QUEUED&TaskStatusList.1=QUEUED&TaskStatusList.100=CONFIRM");
    assert_eq!(
        r.statuses(),
        StatusSet::EMPTY
            .with(TaskStatus::Queued)
            .with(TaskStatus::Confirm)
    );
    let r = ok("IotId=x&TaskStatus=&TaskStatusList.2=");
    assert_eq!(r.statuses(), StatusSet::EMPTY);
    assert_eq!(r.query().effective_statuses(), StatusSet::UNFINISHED);
    let r = ok("IotId=x&TaskStatusList.50=NOTIFIED&TaskStatusList.3=");
    assert_eq!(r.statuses(), StatusSet::only(TaskStatus::Notified));
}

#[test]
fn finished_and_unknown_statuses() {
    for finished in ["SUCCEEDED", "FAILED", "CANCELED"] {
        let e = err_a(
            &format!("IotId=x&TaskStatus={finished}"),
            InvalidFormattedParameter,
            &["TaskStatus", finished, "unfinished"],
        );
        assert!(e.message.contains("only unfinished"));
        err_a(
            &format!("IotId=x&TaskStatusList.3={finished}"),
            InvalidFormattedParameter,
            &["TaskStatusList.3", "only unfinished"],
        );
    }
    for unknown in ["queued", "DONE", "QUEUED+", "IN-PROGRESS", "%20QUEUED"] {
        err_a(
            &format!("IotId=x&TaskStatusList.3={unknown}"),
            InvalidFormattedParameter,
            &["TaskStatusList.3"],
        );
        err_a(
            &format!("IotId=x&TaskStatus={unknown}"),
            InvalidFormattedParameter,
            &["TaskStatus"],
        );
    }
}

#[test]
fn task_status_before_the_list() {
    let e = err_a(
        "IotId=x&TaskStatusList.1=DONE&TaskStatus=BAD",
        InvalidFormattedParameter,
        &["TaskStatus", "BAD"],
    );
    assert!(!e.message.contains("TaskStatusList"), "{}", e.message);
}

#[test]
fn list_entries_in_index_order_not_received_order() {
    let e = err_a(
        "IotId=x&TaskStatusList.5=FIVE&TaskStatusList.2=TWO&TaskStatusList.10=TEN",
        InvalidFormattedParameter,
        &["TaskStatusList.2", "TWO"],
    );
    assert!(!e.message.contains("FIVE"));
    // 10 sorts after 9 numerically, not as text.
    err_a(
        "IotId=x&TaskStatusList.10=TEN&TaskStatusList.9=NINE",
        InvalidFormattedParameter,
        &["TaskStatusList.9", "NINE"],
    );
    // A good smaller index does not hide a bad larger one.
    err_a(
        "IotId=x&TaskStatusList.1=QUEUED&TaskStatusList.2=SUCCEEDED",
        InvalidFormattedParameter,
        &["TaskStatusList.2"],
    );
}

// ---- step 6: IotInstanceId ----

#[test]
fn instance_is_carried_through() {
    assert_eq!(ok("IotId=x&IotInstanceId=").instance(), None);
    assert_eq!(ok("IotId=x").query().instance_name(), "");
    // Not checked here: the engine will not find it.
    assert_eq!(ok("IotId=x&IotInstanceId=a%09b").instance(), Some("a\tb"));
    // Statuses are checked before the instance would be.
    err_a(
        "IotId=x&IotInstanceId=a%09b&TaskStatus=DONE",
        InvalidFormattedParameter,
        &["TaskStatus"],
    );
}

// ---- messages ----

#[test]
fn long_values_are_cut_in_messages() {
    let long = "Z".repeat(10_000);
    let e = err(
        &format!("Action={long}"),
        InvalidActionNotFound,
        &["Action", "…"],
    );
    assert!(e.message.len() < 300, "{}", e.message.len());
    let e = err_a(
        &format!("IotId=x&TaskStatus={long}"),
        InvalidFormattedParameter,
        &["…"],
    );
    assert!(e.message.len() < 300);
    let e = err_a(
        &format!("IotId=x&{long}=1&{long}=2"),
        InvalidParameter,
        &["…"],
    );
    assert!(e.message.len() < 300);
    assert_eq!(echo("short"), "short");
    assert_eq!(echo(&"é".repeat(64)), "é".repeat(64));
    assert_eq!(echo(&"é".repeat(65)), format!("{}…", "é".repeat(64)));
}

#[test]
fn unknown_parameters_are_ignored() {
    let r = ok(
        "IotId=x&Format=JSON&Version=2018-01-20&AccessKeyId=id&SignatureMethod=HMAC-SHA1\
         &SignatureNonce=n&SignatureVersion=1.0&Timestamp=t&RegionId=cn-shanghai&Whatever=%20\
         &flag&=v",
    );
    assert_eq!(r.query(), Query::by_iot_id("x"));
}

// ---- the fast path ----

/// What the full rules make of `query`, for comparison with the fast path.
fn full(query: &str) -> Result<Owned, RpcError> {
    parse(query)
}

/// The fast path's result for `query`, owned; asserts it agrees with the full rules.
fn plain(query: &str) -> Option<Owned> {
    let fast = parse_plain(query).map(|r| Owned::of(&r));
    if let Some(fast) = &fast {
        match full(query) {
            Ok(full) => assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{query}"),
            Err(e) => panic!("{query}: the fast path accepts what the rules refuse: {e}"),
        }
    }
    fast
}

#[test]
fn plain_path_reads_the_usual_requests() {
    for rest in [
        "IotId=OZs5tjTkzRRTZSCekmbRk1****",
        "IoTID=TfmUAeJjQQhCPH84UVNn0010c6****&ModuleName=ble",
        "ProductKey=k1h9drZ****&DeviceName=device_actived",
        "IotId=T&TaskStatusList.1=QUEUED&TaskStatusList.3=IN_PROGRESS",
        "IotId=T&TaskStatus=CONFIRM&TaskStatusList.100=QUEUED",
        "IotId=T&TaskStatus=&TaskStatusList.7=",
        "IotId=T&IotInstanceId=iot-c3j0000",
        "IotId=T&IotInstanceId=",
        "IotId=&ProductKey=pk&DeviceName=dev1",
        "IotId=OZs5tjTkzRRTZSCekmbRk1****&ProductKey=nope&DeviceName=x",
        "ProductKey=pk&DeviceName=dev1&ModuleName=&TaskStatus=NOTIFIED",
        "IotId=a=b",
    ] {
        let with_action_first = format!("{A}&{rest}");
        let with_action_last = format!("{rest}&{A}");
        for query in [&with_action_first, &with_action_last] {
            assert!(plain(query).is_some(), "{query}");
        }
    }
    let r = plain(&format!(
        "{A}&IotId=T&TaskStatus=QUEUED&TaskStatusList.2=CONFIRM"
    ))
    .expect("plain");
    assert_eq!(
        r.statuses(),
        StatusSet::EMPTY
            .with(TaskStatus::Queued)
            .with(TaskStatus::Confirm)
    );
    let r = plain(&format!(
        "{A}&ProductKey=pk&DeviceName=dev1&IotInstanceId=i"
    ))
    .expect("plain");
    assert_eq!(r.query(), Query::by_name("pk", "dev1").instance("i"));
}

#[test]
fn plain_path_leaves_the_rest_to_the_rules() {
    for query in [
        // Not the plain form: the full rules accept these.
        &format!("{A}&IotId=dev%2D1"),
        &format!("{A}&DeviceName=a+b&ProductKey=pk"),
        &format!("{A}&IotId=x&Format=JSON"),
        &format!("{A}&&IotId=x"),
        &format!("{A}&IotId=x&"),
        &format!("&{A}&IotId=x"),
        &format!("{A}&IotId=x&flag"),
        &format!("{A}&IotId=x&=v"),
        &"IotId=x".to_owned(),
        // Errors, each one the rules report.
        &format!("{A}&{A}&IotId=x"),
        &format!("{A}x&IotId=x"),
        &"Action=DescribeRegions&IotId=x".to_owned(),
        &"Action=&IotId=x".to_owned(),
        &format!("{A}&IotId=x&IotId=y"),
        &format!("{A}&IotId=x&IoTID=y"),
        &format!("{A}&IotId=&IotId=y"),
        &format!("{A}&ProductKey=pk&DeviceName=dev1&ProductKey="),
        &format!("{A}&IotId=x&ModuleName=a&ModuleName=a"),
        &format!("{A}&IotId=x&TaskStatus=QUEUED&TaskStatus=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusList.1=QUEUED&TaskStatusList.1=CONFIRM"),
        &format!("{A}&IotId=x&IotInstanceId=a&IotInstanceId=b"),
        &format!("{A}&IotId=x&TaskStatusList.0=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusList.01=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusList.101=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusList.=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusList.1x=QUEUED"),
        &format!("{A}&IotId=x&TaskStatusListX=QUEUED"),
        &format!("{A}&IotId=x&TaskStatus=SUCCEEDED"),
        &format!("{A}&IotId=x&TaskStatusList.2=queued"),
        &format!("{A}&IotId=a b"),
        &format!("{A}&IotId={}", "i".repeat(65)),
        &format!("{A}&ProductKey=pk&DeviceName=abc"),
        &format!("{A}&ProductKey=p k&DeviceName=dev1"),
        &format!("{A}&ProductKey=pk"),
        &format!("{A}&DeviceName=dev1"),
        &format!("{A}&IotId=x&ModuleName=a b"),
        &A.to_owned(),
        &String::new(),
    ] {
        assert!(parse_plain(query).is_none(), "{query}");
    }
}

/// A query string of the pairs below, joined by `&` (a pair may lack its `=`).
fn arbitrary_query() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let name = prop::sample::select(vec![
        "Action",
        "IotId",
        "IoTID",
        "iotid",
        "ProductKey",
        "DeviceName",
        "ModuleName",
        "TaskStatus",
        "TaskStatusList.1",
        "TaskStatusList.2",
        "TaskStatusList.10",
        "TaskStatusList.100",
        "TaskStatusList.101",
        "TaskStatusList.0",
        "TaskStatusList.01",
        "TaskStatusList",
        "IotInstanceId",
        "Format",
        "",
    ]);
    let value = prop::sample::select(vec![
        ACTION,
        "",
        "dev-1",
        "dev1",
        "abc",
        "a b",
        "x%2Dy",
        "a+b",
        "x=y",
        "QUEUED",
        "CONFIRM",
        "NOTIFIED",
        "IN_PROGRESS",
        "SUCCEEDED",
        "queued",
        "ble",
        "智能",
        "iot-c3j0000",
        "%zz",
        "0123456789012345678901234567890123456789012345678901234567890123456789",
    ]);
    let pair = (name, prop::option::weighted(0.95, value)).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n.to_owned(),
    });
    (
        prop::collection::vec(pair, 0..7),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(pairs, action_first, trailing)| {
            let mut q = if action_first {
                format!("{A}&")
            } else {
                String::new()
            };
            q.push_str(&pairs.join("&"));
            if trailing {
                q.push('&');
            }
            q
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

    /// Whatever the fast path accepts, the full rules accept with the same result.
    #[test]
    fn plain_path_agrees_with_the_rules(query in arbitrary_query()) {
        let _ = plain(&query);
    }
}

#[test]
fn plain_path_reads_every_request_of_the_benchmark_mix() {
    let fleet = crate::fleet::Fleet::new(500);
    for query in fleet.queries(3000) {
        assert!(plain(&query).is_some(), "{query}");
    }
}

#[test]
fn the_fast_paths_status_names_are_the_unfinished_statuses() {
    let names = TaskStatus::ALL.map(TaskStatus::as_str);
    for value in names
        .into_iter()
        .chain(["", "queued", "QUEUED ", "IN-PROGRESS", "X"])
    {
        assert_eq!(
            unfinished(value),
            TaskStatus::parse(value).filter(|s| s.is_unfinished()),
            "{value:?}"
        );
    }
}

#[test]
fn parse_query_takes_either_path_to_the_same_answer() {
    let q = format!("{A}&ProductKey=pk&DeviceName=mac%3A00-1A");
    let mut params = Params::default();
    let r = parse_query(&mut params, &q, None, None).expect("decoded");
    assert_eq!(
        r.device(),
        DeviceRef::Name {
            product_key: "pk",
            device_name: "mac:00-1A"
        }
    );
    let mut params = Params::default();
    let r = parse_query(&mut params, "IotId=q", Some(A.as_bytes()), None).expect("body");
    assert_eq!(r.device(), DeviceRef::IotId("q"));
    let mut params = Params::default();
    let e = parse_query(&mut params, "IotId=q", None, Some("Other")).unwrap_err();
    assert_eq!(e.code, InvalidActionNotFound);
    let mut params = Params::default();
    let r = parse_query(&mut params, "IotId=q", None, Some(ACTION)).expect("header");
    assert_eq!(r.device(), DeviceRef::IotId("q"));
}
