//! The `serve` example over real HTTP: the built binary is started as a child process on a
//! free loopback port and spoken to with raw HTTP/1.1 over `TcpStream`.
//! (`tests/serve_support`: build the example first when running this file alone).

mod serve_support;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use ota_index::rpc::signature::{percent_encode, sign_rpc_v1, sign_v3};
use ota_index::rpc::{new_request_id, query_part, HttpRequest, KeyCase, Service};
use ota_index::{Engine, Timestamp};
use serve_support::{serve_binary, strip_request_id, Server, DATA};

const REQUESTS: &str = "tests/data/contract/requests.txt";
const ACTION: &str = "Action=ListOTAUnfinishedTaskByDevice";
/// A device of `DATA` with three unfinished tasks.
const IOT_ID: &str = "TfmUAeJjQQhCPH84UVNn0010c6****";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The library's own answer to the same request, as `serve` should give it.
fn library_answer(service: &Service, request: &HttpRequest<'_>) -> (u16, String) {
    let mut out = Vec::new();
    let status = service.answer(request, &mut out);
    (status, strip_request_id(&out).0)
}

fn library(case: KeyCase) -> Service {
    let engine = Engine::new();
    engine
        .load_jsonl_file(DATA)
        .expect("the contract data loads");
    Service::new(engine).with_case(case)
}

fn contract_requests() -> Vec<String> {
    std::fs::read_to_string(REQUESTS)
        .expect("the contract requests")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| query_part(l).to_owned())
        .collect()
}

/// Every contract request over `GET /?…` gives the library's status and bytes.
fn check_contract_requests(case: KeyCase, server: &Server) {
    let service = library(case);
    let requests = contract_requests();
    assert!(requests.len() >= 15, "the contract examples are there");
    let mut statuses = Vec::new();
    for query in &requests {
        let reply = server.get(&format!("/?{query}"));
        let expected = library_answer(&service, &HttpRequest::get(query));
        assert_eq!(
            (reply.status, reply.body_without_request_id()),
            expected,
            "GET /?{query}"
        );
        reply.json();
        statuses.push(reply.status);
    }
    // The examples reach every kind of answer: success and business errors, gateway errors.
    for status in [200, 400, 404] {
        assert!(statuses.contains(&status), "no {status} among {statuses:?}");
    }
}

#[test]
fn every_contract_request_over_get_matches_the_library_in_camel_case() {
    let server = Server::with_data(&[]);
    check_contract_requests(KeyCase::Camel, &server);
}

#[test]
fn every_contract_request_over_get_matches_the_library_in_pascal_case() {
    let server = Server::with_data(&["--case=pascal"]);
    check_contract_requests(KeyCase::Pascal, &server);
}

#[test]
fn post_reads_the_query_string_the_form_body_or_both() {
    let server = Server::with_data(&[]);
    let get = server.get(&format!("/?{ACTION}&IotId={IOT_ID}&TaskStatus=CONFIRM"));
    assert_eq!(get.status, 200);
    let expected = get.task_ids();
    assert_eq!(expected, ["183634077949482****"]);

    let form = server.post_form("/", &format!("{ACTION}&IotId={IOT_ID}&TaskStatus=CONFIRM"));
    assert_eq!((form.status, form.task_ids()), (200, expected.clone()));

    let both = server.post_form(&format!("/?{ACTION}&IotId={IOT_ID}"), "TaskStatus=CONFIRM");
    assert_eq!((both.status, both.task_ids()), (200, expected.clone()));

    // As the SDKs send it: everything in the query string, an empty form body.
    let sdk_like = server.post_form(&format!("/?{ACTION}&IotId={IOT_ID}&TaskStatus=CONFIRM"), "");
    assert_eq!((sdk_like.status, sdk_like.task_ids()), (200, expected));

    // A body that is not a form is not read for parameters.
    let not_form = server.request(
        "POST",
        &format!("/?{ACTION}&IotId={IOT_ID}"),
        &[("Content-Type", "text/plain")],
        b"TaskStatus=CONFIRM",
    );
    assert_eq!(not_form.status, 200);
    assert_eq!(not_form.task_ids().len(), 3, "all three unfinished tasks");
}

#[test]
fn a_parameter_in_both_the_query_string_and_the_form_body_is_invalid() {
    let server = Server::with_data(&[]);
    let reply = server.post_form(
        &format!("/?{ACTION}&IotId={IOT_ID}"),
        &format!("IotId={IOT_ID}"),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(reply.code(), "InvalidParameter");
    let message = reply.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("IotId"),
        "the message names the parameter: {message}"
    );
}

#[test]
fn the_action_may_come_in_the_x_acs_action_header() {
    let server = Server::with_data(&[]);
    let header = [("x-acs-action", "ListOTAUnfinishedTaskByDevice")];
    let post = server.request("POST", &format!("/?IotId={IOT_ID}"), &header, b"");
    assert_eq!(post.status, 200);
    assert_eq!(post.task_ids().len(), 3);
    let get = server.request("GET", &format!("/?IotId={IOT_ID}"), &header, b"");
    assert_eq!(get.task_ids().len(), 3);

    let none = server.get(&format!("/?IotId={IOT_ID}"));
    assert_eq!(
        (none.status, none.code()),
        (404, "InvalidAction.NotFound".to_owned())
    );
    let wrong = server.request(
        "POST",
        &format!("/?IotId={IOT_ID}"),
        &[("x-acs-action", "DescribeRegions")],
        b"",
    );
    assert_eq!(
        (wrong.status, wrong.code()),
        (404, "InvalidAction.NotFound".to_owned())
    );
}

#[test]
fn each_error_family_has_its_status_and_envelope() {
    let server = Server::with_data(&[]);
    // Business error: HTTP 200, `errorMessage`.
    let business = server.get(&format!("/?{ACTION}&ProductKey=K1nhvyl****&DeviceName=abc"));
    assert_eq!(business.status, 200);
    let json = business.json();
    assert_eq!(json["code"], "iot.device.InvalidFormattedDeviceName");
    assert_eq!(json["success"], false);
    assert!(
        json["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(json.get("message").is_none(), "{json}");

    // Gateway errors: 4xx, `message`.
    let missing = server.get(&format!("/?{ACTION}&ProductKey=K1nhvyl****"));
    assert_eq!(missing.status, 400);
    let json = missing.json();
    assert_eq!(json["code"], "MissingParameter");
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("DeviceName")),
        "{json}"
    );
    assert!(json.get("errorMessage").is_none(), "{json}");

    let unknown = server.get(&format!("/?Action=DescribeRegions&IotId={IOT_ID}"));
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "InvalidAction.NotFound".to_owned())
    );

    let bad_escape = server.get(&format!("/?{ACTION}&IotId=%zz"));
    assert_eq!(
        (bad_escape.status, bad_escape.code()),
        (400, "InvalidParameter".to_owned())
    );

    // A path other than `/` is no API at all.
    let path = server.get(&format!("/api?{ACTION}&IotId={IOT_ID}"));
    assert_eq!(path.status, 404);
    let json = path.json();
    assert_eq!(json["code"], "InvalidAction.NotFound");
    assert!(
        json["message"].as_str().is_some_and(|m| m.contains("/api")),
        "{json}"
    );
}

#[test]
fn the_seed_pages_curl_request_gets_a_well_formed_answer() {
    let server = Server::with_data(&[]);
    // What the load did, the stale record of the examples included.
    assert_eq!(
        server.banner,
        [format!(
            "loaded 8 records from {DATA}: 7 tasks added, 0 replaced, 0 unchanged, 1 dropped as stale"
        )]
    );
    // The request of the platform's page, verbatim but for the host; unsigned server.
    let reply = server.get(
        "/?Action=ListOTAUnfinishedTaskByDevice&SignatureNonce=9e6189124f5a4716ad2de849467b****\
         &AccessKeyId=xMr9wgwXQLhv5AUa65o0****&SignatureMethod=HMAC-SHA1\
         &Timestamp=2024-11-19T09%3A47%3A43Z&ProductKey=k1nhvyl****&DeviceName=blelight1\
         &TaskStatus=CONFIRM&Signature=WJN0Ee8%2BX6pogcD3loLHIqQNEN0%3D",
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body_without_request_id(),
        r#"{"code":"","data":{"simpleOTATaskInfo":[]},"requestId":"R","success":true}"#
    );
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let server = Server::with_data(&[]);
    let mut body = format!("{ACTION}&IotId={IOT_ID}&Pad=").into_bytes();
    body.resize(70_000, b'a');
    let reply = server.request(
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(reply.status, 413);
    let json = reply.json();
    assert_eq!(json["success"], false);
    assert!(
        json["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit")),
        "{json}"
    );

    // The same without a Content-Length (chunked): refused just the same.
    let mut raw = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr
    )
    .into_bytes();
    for chunk in body.chunks(8_192) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(server.send_raw(&raw).status, 413);

    // A declared length over the limit is refused at once, its body never awaited (the
    // client here sends none: waiting would end in the 408 of the request timeout).
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\n",
        server.addr
    );
    let started = std::time::Instant::now();
    let reply = server.send_raw(raw.as_bytes());
    assert_eq!(reply.status, 413, "after {:?}", started.elapsed());
    assert_eq!(reply.json()["code"], "InvalidParameter");

    // A chunked body that breaks its encoding: a malformed request, in the gateway envelope
    // with a code of reference section 5.
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n\
         zz\r\nAction=x\r\n0\r\n\r\n",
        server.addr
    );
    let reply = server.send_raw(raw.as_bytes());
    assert_eq!(reply.status, 400);
    let json = reply.json();
    assert_eq!(json["code"], "InvalidParameter", "{json}");
    assert_eq!(json["success"], false, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| m.contains("body")),
        "{json}"
    );

    // A body just under the limit is read and answered.
    body.truncate(60_000);
    let reply = server.post_form("/", std::str::from_utf8(&body).expect("ASCII"));
    assert_eq!((reply.status, reply.task_ids().len()), (200, 3));
}

/// Now as the signature layer reads `Timestamp`.
fn timestamp_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).expect("in range")).to_string()
}

/// A query string of `params`, each name and value percent-encoded.
fn encode_query(params: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(name, &mut out);
        out.push('=');
        percent_encode(value, &mut out);
    }
    out
}

/// A query string signed with RPC v1 for `method`, with `key`:`secret`.
fn signed_v1(method: &str, key: &str, secret: &str, nonce: &str) -> String {
    let timestamp = timestamp_now();
    let mut params = vec![
        ("Action", "ListOTAUnfinishedTaskByDevice"),
        ("IotId", IOT_ID),
        ("TaskStatusList.1", "CONFIRM"),
        ("TaskStatusList.2", "IN_PROGRESS"),
        ("AccessKeyId", key),
        ("Format", "json"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", nonce),
        ("SignatureVersion", "1.0"),
        ("Timestamp", &timestamp),
        ("Version", "2018-01-20"),
    ];
    let signature = sign_rpc_v1(method, &params, secret);
    params.push(("Signature", &signature));
    encode_query(&params)
}

#[test]
fn signed_mode_refuses_unsigned_and_wrongly_signed_requests() {
    let server = Server::with_data(&["--access-key=other:x", "--access-key", "testid:testsecret"]);
    assert!(
        server.banner.iter().any(|l| l.contains("must be signed")),
        "a note says requests must be signed: {:?}",
        server.banner
    );

    let unsigned = server.get(&format!("/?{ACTION}&IotId={IOT_ID}"));
    assert_eq!(
        (unsigned.status, unsigned.code()),
        (400, "MissingParameter".to_owned())
    );

    // RPC v1 as a GET, and as the SDKs send it: POST, everything in the query string.
    let nonce = new_request_id();
    let get = server.get(&format!(
        "/?{}",
        signed_v1("GET", "testid", "testsecret", &nonce)
    ));
    assert_eq!(get.status, 200, "{}", String::from_utf8_lossy(&get.body));
    assert_eq!(get.task_ids(), ["183634077949482****", "9"]);
    let post = server.request(
        "POST",
        &format!(
            "/?{}",
            signed_v1("POST", "testid", "testsecret", &new_request_id())
        ),
        &[],
        b"",
    );
    assert_eq!(post.status, 200, "{}", String::from_utf8_lossy(&post.body));
    assert_eq!(post.task_ids().len(), 2);
    // The second key works too.
    let other = server.get(&format!(
        "/?{}",
        signed_v1("GET", "other", "x", &new_request_id())
    ));
    assert_eq!(other.status, 200);

    let replay = server.get(&format!(
        "/?{}",
        signed_v1("GET", "testid", "testsecret", &nonce)
    ));
    assert_eq!(
        (replay.status, replay.code()),
        (400, "SignatureNonceUsed".to_owned())
    );

    let wrong = server.get(&format!(
        "/?{}",
        signed_v1("GET", "testid", "nottheSecret", &new_request_id())
    ));
    assert_eq!(
        (wrong.status, wrong.code()),
        (403, "SignatureDoesNotMatch".to_owned())
    );

    // Signed for GET, sent as POST: the method is part of what is signed.
    let method = server.request(
        "POST",
        &format!(
            "/?{}",
            signed_v1("GET", "testid", "testsecret", &new_request_id())
        ),
        &[],
        b"",
    );
    assert_eq!(
        (method.status, method.code()),
        (403, "SignatureDoesNotMatch".to_owned())
    );

    let unknown = server.get(&format!(
        "/?{}",
        signed_v1("GET", "nobody", "testsecret", &new_request_id())
    ));
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "InvalidAccessKeyId.NotFound".to_owned())
    );
}

#[test]
fn signed_mode_accepts_v3_with_the_action_in_its_header() {
    let server = Server::with_data(&["--access-key", "testid:testsecret"]);
    let host = server.addr.to_string();
    let date = timestamp_now();
    let send = |secret: &str, nonce: &str| {
        let query = [("IotId", IOT_ID), ("ModuleName", "default")];
        let headers = [
            ("host", host.as_str()),
            ("x-acs-action", "ListOTAUnfinishedTaskByDevice"),
            ("x-acs-version", "2018-01-20"),
            ("x-acs-date", date.as_str()),
            ("x-acs-signature-nonce", nonce),
            ("x-acs-content-sha256", EMPTY_SHA256),
        ];
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        let signature = sign_v3("POST", &query, &headers, &names, b"", secret);
        let authorization = format!(
            "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders={},Signature={signature}",
            names.join(";")
        );
        // `host` goes out as the request's own Host header.
        let mut sent: Vec<(&str, &str)> = headers[1..].to_vec();
        sent.push(("Authorization", &authorization));
        server.request("POST", &format!("/?{}", encode_query(&query)), &sent, b"")
    };
    let good = send("testsecret", &new_request_id());
    assert_eq!(good.status, 200, "{}", String::from_utf8_lossy(&good.body));
    assert_eq!(good.task_ids(), ["10", "9"]);
    let wrong = send("wrong", &new_request_id());
    assert_eq!(
        (wrong.status, wrong.code()),
        (403, "SignatureDoesNotMatch".to_owned())
    );
}

#[test]
fn demo_mode_prints_a_curl_line_that_answers_a_non_empty_list() {
    let server = Server::start(&["--addr=127.0.0.1:0"]);
    let curl = server
        .banner
        .iter()
        .find(|l| l.contains("curl '"))
        .unwrap_or_else(|| panic!("no curl line in {:?}", server.banner));
    let url = curl
        .split('\'')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted URL in {curl:?}"));
    let prefix = format!("http://{}", server.addr);
    let target = url
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} is not on {prefix}"));
    assert!(
        target.contains("ProductKey=") && target.contains("DeviceName="),
        "{target}"
    );
    let reply = server.get(target);
    assert_eq!(reply.status, 200);
    assert!(
        !reply.task_ids().is_empty(),
        "the demo device has unfinished tasks"
    );
}

#[test]
fn sigint_and_sigterm_stop_the_server_with_status_zero() {
    for signal in ["INT", "TERM"] {
        let mut server = Server::with_data(&[]);
        // One answered request first: an open keep-alive server, not a fresh one.
        assert_eq!(
            server.get(&format!("/?{ACTION}&IotId={IOT_ID}")).status,
            200
        );
        let status = server.stop_with(signal);
        assert_eq!(status.code(), Some(0), "exit status after SIG{signal}");
    }
}

#[test]
fn bad_arguments_exit_2_and_a_bad_data_file_exits_1_naming_the_line() {
    for args in [
        &["--case", "snake"][..],
        &["--access-key", "no-secret"],
        &["--addr", "not an address"],
        &["--data"],
        &["--verbose"],
        &["--case", "camel", "--case=pascal"],
        &["--addr", "127.0.0.1:0", "--addr", "127.0.0.1:0"],
        &["--data", DATA, "--data", DATA],
    ] {
        let out = Command::new(serve_binary())
            .args(args)
            .output()
            .expect("run serve");
        assert_eq!(out.status.code(), Some(2), "serve {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("usage: serve"),
            "usage for {args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "no output for {args:?}");
    }

    let help = Command::new(serve_binary())
        .arg("--help")
        .output()
        .expect("run serve");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: serve"));

    let good = std::fs::read_to_string(DATA).expect("the contract data");
    let first = good.lines().next().expect("a first line");
    let path = std::env::temp_dir().join(format!("serve_http_bad_{}.jsonl", std::process::id()));
    std::fs::write(&path, format!("{first}\n{{\"taskId\":\"x\"}}\n")).expect("write a temp file");
    let out = Command::new(serve_binary())
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(&path)
        .output()
        .expect("run serve");
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2"),
        "the message names the line: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it does not serve"
    );
}
