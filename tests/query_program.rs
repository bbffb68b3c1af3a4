//! The `query` example as a process (reference section 8): one compact JSON line per request
//! line, `--case`, `--request-id`, exit status 1 for a bad data file (no output), 2 for bad
//! arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const DATA: &str = "tests/data/contract/tasks.jsonl";

/// The `query` binary cargo built beside this test (`cargo test` builds the examples).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe.parent().expect("its folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir
        .join("examples")
        .join(format!("query{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` or `cargo build --example query`",
        bin.display()
    );
    bin
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("query starts");
    let mut input = child.stdin.take().expect("stdin");
    // The program may exit (bad data, bad arguments) before it reads its input.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().expect("query finishes")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Masks free-text messages as in the expected files.
fn masked(out: &Output) -> Vec<String> {
    lines(out)
        .into_iter()
        .map(|mut v| {
            for key in ["message", "errorMessage", "Message", "ErrorMessage"] {
                if let Some(m) = v.get_mut(key) {
                    assert!(!m.as_str().unwrap().is_empty());
                    *m = "x".into();
                }
            }
            v.to_string()
        })
        .collect()
}

#[test]
fn answers_the_contract_examples_in_both_cases() {
    let requests = std::fs::read("tests/data/contract/requests.txt").unwrap();
    for (case, expected) in [
        ("camel", include_str!("data/contract/expected.camel.jsonl")),
        (
            "pascal",
            include_str!("data/contract/expected.pascal.jsonl"),
        ),
    ] {
        let out = run(
            &["--data", DATA, "--case", case, "--request-id", "rid-1"],
            &requests,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Vec<String> = expected
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(masked(&out), want, "--case {case}");
        // Compact: no spaces outside strings, one line each.
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().count(), want.len());
        assert!(!text.contains("\": ") && !text.contains(", \""));
    }
}

#[test]
fn every_line_gets_exactly_one_answer() {
    let input =
        b"\n   \r\n?Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****\r\n\
http://localhost:8686/?Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****#frag\n\
Action=ListOTAUnfinishedTaskByDevice&IotId=d\xffv\n\
Action=ListOTAUnfinishedTaskByDevice&IotId=a?b\n\
Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****";
    let out = run(&["--data", DATA, "--request-id=r"], input);
    assert!(out.status.success());
    let answers = lines(&out);
    assert_eq!(
        answers.len(),
        5,
        "blank lines skipped, every other line answered"
    );
    let codes: Vec<&str> = answers
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["", "", "InvalidParameter", "", ""]);
    assert_eq!(
        answers[0]["data"]["simpleOTATaskInfo"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        answers[1]["data"]["simpleOTATaskInfo"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(answers[2]["message"].as_str().unwrap().contains("IotId"));
    assert!(answers.iter().all(|a| a["requestId"] == "r"));
}

#[test]
fn fresh_request_ids_without_the_flag() {
    let out = run(&["--data", DATA], b"IotId=x\nIotId=x\n");
    let answers = lines(&out);
    assert_ne!(answers[0]["requestId"], answers[1]["requestId"]);
    assert_eq!(answers[0]["requestId"].as_str().unwrap().len(), 36);
}

#[test]
fn a_bad_data_file_is_exit_1_with_the_line_and_no_output() {
    let dir = std::env::temp_dir().join(format!("ota-index-query-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.jsonl");
    let good = std::fs::read_to_string(DATA).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(&bad, format!("{first}\n\n{{\"taskId\":\"x\"}}\n")).unwrap();
    let out = run(&["--data", bad.to_str().unwrap()], b"IotId=x\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no output on a bad data file");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    let missing = run(&["--data", "/no/such/file.jsonl"], b"IotId=x\n");
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_arguments_are_exit_2() {
    for args in [
        &[][..],
        &["--data"],
        &["--data", DATA, "--case", "snake"],
        &["--data", DATA, "--unknown"],
        &["--data", DATA, "--request-id"],
        &["--data", DATA, "extra"],
        &["--data", DATA, "--data", DATA],
        &["--data", DATA, "--case", "camel", "--case=pascal"],
        &["--data", DATA, "--request-id=a", "--request-id", "a"],
    ] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage"),
            "{args:?}"
        );
    }
}

#[test]
fn help_is_usage_on_standard_output_and_exit_0() {
    let out = run(&["--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("usage: query"));
}

/// A URL without a scheme (`host:port/?…`) is a whole URL too: its query is what follows `?`.
/// A query string's own `?` (inside a value) stays data.
#[test]
fn an_address_without_a_scheme_is_a_url() {
    let out = run(
        &["--data", DATA, "--request-id=r"],
        b"127.0.0.1:8686/?Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****\n\
          localhost?Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****#top\n\
          Action=ListOTAUnfinishedTaskByDevice&IotId=OZs5tjTkzRRTZSCekmbRk1****?\n",
    );
    let answers = lines(&out);
    let found: Vec<usize> = answers
        .iter()
        .map(|a| a["data"]["simpleOTATaskInfo"].as_array().unwrap().len())
        .collect();
    assert_eq!(found, [1, 1, 0]);
}

/// `--dump OUT` writes the loaded store, and `--data OUT` answers every request as the
/// original data does; a dump that cannot be written is exit status 1, naming the path.
#[test]
fn a_dump_answers_as_its_data() {
    let requests = std::fs::read(format!(
        "{}/tests/data/contract/requests.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the requests");
    let dir = std::env::temp_dir().join(format!("ota-index-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("dump.jsonl");
    let dump_arg = dump.to_str().unwrap();
    let first = run(
        &["--data", DATA, "--request-id", "r", "--dump", dump_arg],
        &requests,
    );
    assert!(first.status.success(), "{first:?}");
    let again = run(&["--data", dump_arg, "--request-id", "r"], &requests);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(again.stdout, first.stdout);
    assert!(!first.stdout.is_empty());
    let bad = run(
        &["--data", DATA, "--dump", "/nonexistent/dir/dump.jsonl"],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/dir/dump.jsonl"));
    std::fs::remove_dir_all(&dir).unwrap();
}
