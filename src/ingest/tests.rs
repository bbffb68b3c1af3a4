use super::stager::Stager;
use super::*;
use crate::model::{Field, TaskStatus, Violation};

const SEED: &str = r#"{"destVersion":"3.9.0","deviceName":"device_actived","firmwareId":"123","iotId":"OZs5tjTkzRRTZSCekmbRk1****","jobId":"183371207742901****","moduleName":"ble","productKey":"k1h9drZ****","productName":"testProduct1","srcVersion":"1.8","taskId":"183371207782747****","taskStatus":"NOTIFIED","utcCreate":"2024-09-11T03:40:02.734Z","utcModified":"2024-09-11T06:27:24.649Z"}"#;

/// Stages one line as a load does (the flat scanner if it reads the line, else serde_json).
fn stage(line: &str) -> Result<TaskRecordOwned, LoadErrorKind> {
    let mut s = Stager::new(line.as_bytes());
    s.stage_all(line.as_bytes(), 0).map_err(|e| e.kind)?;
    Ok(s.get(0).to_owned())
}

/// The flat scanner's staging of `line`, `None` when it leaves the line to serde_json.
fn flat(line: &str) -> Option<Result<TaskRecordOwned, LoadErrorKind>> {
    let mut s = Stager::new(line.as_bytes());
    let staged = s.stage_flat(s.input, 0, 1)?;
    Some(staged.map(|staged| {
        s.records.push(staged);
        s.get(0).to_owned()
    }))
}

/// The general reader's (serde_json's) staging of `line`.
fn general(line: &str) -> Result<TaskRecordOwned, LoadErrorKind> {
    let mut s = Stager::new(line.as_bytes());
    s.stage_line(line.as_bytes(), 1)?;
    Ok(s.get(0).to_owned())
}

#[test]
fn the_flat_scanner_reads_flat_lines_as_serde_json_does() {
    let spaced = SEED
        .replace("\":\"", "\" : \"")
        .replace("\",\"", "\" ,  \"")
        .replace('{', "  { ")
        .replace('}', " }  ");
    let pascal = SEED
        .replace("\"taskId\"", "\"TaskId\"")
        .replace('}', r#","progress":"0.5","IotInstanceId":"iot-1"}"#);
    let read = [
        SEED.to_owned(),
        spaced,
        pascal,
        SEED.replace("testProduct1", "灯 \u{1F4A1} 'x' /"),
        SEED.replace('}', r#","taskId":"x"}"#),
        SEED.replace(r#""taskId":"183371207782747****","#, ""),
        SEED.replace("device_actived", "dev"),
        SEED.replace("NOTIFIED", "DONE"),
        SEED.replace("2024-09-11T06:27:24.649Z", "2024-02-30T00:00:00Z"),
        SEED.replace("3.9.0", ""),
    ];
    for line in &read {
        let flat = flat(line).unwrap_or_else(|| panic!("not read flat: {line}"));
        assert_eq!(flat, general(line), "{line}");
    }
    assert!(flat(&read[0]).unwrap().is_ok());
    assert!(flat(&read[4]).unwrap().is_err());
    let left = [
        SEED.replace("3.9.0", r#"3.9\"beta\""#),
        SEED.replace("3.9.0", r"3.9\u00e9"),
        SEED.replace('}', r#","timeout":-0.0}"#),
        SEED.replace('}', r#","steps":["a"]}"#),
        SEED.replace('}', r#","note":null}"#),
        SEED.replace(r#""jobId":"183371207742901****""#, r#""jobId":7"#),
        SEED.replace(':', ":\t"),
        SEED.replace("3.9.0", "3.9\t0"),
        SEED.replace('}', ",}"),
        SEED.replace('}', "} x"),
        format!("{SEED}{SEED}"),
        SEED.replacen(',', "", 1),
        SEED.replacen(':', "", 1),
        SEED[..SEED.len() - 1].to_owned(),
        SEED[..SEED.len() - 3].to_owned(),
        SEED[1..].to_owned(),
        "{}".to_owned(),
        SEED.replacen("\",\"", "\" \"", 1),
        SEED.replacen("\",\"", "\",,\"", 1),
        SEED.replacen("\":\"", "\"::\"", 1),
        SEED.replacen("\":\"", "\" : : \"", 1),
        SEED.replace('{', "{{"),
        SEED.replace('}', "}}"),
        SEED.replace('}', "} }"),
        r#"{"taskId":"a""b"}"#.to_owned(),
        r#"["taskId","x"]"#.to_owned(),
        r#""taskId""#.to_owned(),
        r#"{"taskId"}"#.to_owned(),
    ];
    for line in &left {
        assert!(flat(line).is_none(), "read flat: {line}");
        assert_eq!(stage(line), general(line), "{line}");
    }
}

#[test]
fn flat_and_decoded_lines_mix_and_an_invalid_byte_is_found_on_its_line() {
    let task = |id: &str| SEED.replace("183371207782747****", id);
    let escaped = task("t2").replace("testProduct1", r"test\u0050roduct1");
    let lines = [task("t1"), escaped, task("t3")];
    let input = lines.join("\n");
    let mut s = Stager::new(input.as_bytes());
    s.stage_all(input.as_bytes(), 0).unwrap();
    let got: Vec<(String, String)> = (0..3)
        .map(|i| {
            let r = s.get(i).to_owned();
            (r.task_id, r.product_name)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("t1", "testProduct1"),
            ("t2", "testProduct1"),
            ("t3", "testProduct1")
        ]
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
    );
    // An invalid byte on line 3: lines 1 and 2 stage, line 3 is malformed JSON.
    let mut input = format!("{}\n{}\n", lines[0], lines[2]).into_bytes();
    input.extend_from_slice(task("t4").replace("Product1", "Product\u{fffd}").as_bytes());
    let fffd = input
        .windows(3)
        .rposition(|w| w == "\u{fffd}".as_bytes())
        .unwrap();
    input[fffd..fffd + 3].copy_from_slice(b"\xff\xfe\xfd");
    input.extend_from_slice(format!("\n{}", task("t5")).as_bytes());
    let mut s = Stager::new(&input);
    let error = s.stage_all(&input, 0).unwrap_err();
    assert_eq!(error.line, 3, "{error}");
    assert!(matches!(error.kind, LoadErrorKind::Json(_)), "{error}");
    assert_eq!(s.records.len(), 2);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 512, ..Default::default() })]

    /// Lines cut from the seed's pairs, with spaces between tokens, any subset of the
    /// pairs, keys of either style or unknown, and values drawn with quotes, backslashes,
    /// control and non-ASCII characters: whenever the flat scanner reads a line, it stages
    /// exactly what serde_json does.
    #[test]
    fn the_flat_scanner_never_disagrees_with_serde_json(
        pairs in proptest::collection::vec(
            (0usize..16, proptest::string::string_regex(r#"[a-z0-9:.\-]{0,6}|[ "\\\t\x{e9}\x{0}a]{0,3}"#).unwrap()),
            0..18,
        ),
        spaces in proptest::collection::vec(0usize..3, 64),
        pascal in proptest::bool::ANY,
    ) {
        let valid: crate::TaskRecord = general(SEED).unwrap();
        let mut line = String::from(" ".repeat(spaces[0]).as_str());
        line.push('{');
        for (k, (field, value)) in pairs.iter().enumerate() {
            let (key, good) = match Field::ALL.get(*field) {
                Some(f) if pascal => (f.pascal().to_owned(), value_of(&valid, *f)),
                Some(f) => (f.camel().to_owned(), value_of(&valid, *f)),
                None => ("extra".to_owned(), String::new()),
            };
            let value = if value.is_empty() { good } else { value.clone() };
            let pad = " ".repeat(spaces[(k + 1) % spaces.len()]);
            if k > 0 {
                line.push_str(&pad);
                line.push(',');
            }
            line.push_str(&format!("{pad}\"{key}\"{pad}:{pad}\"{value}\""));
        }
        line.push('}');
        if let Some(flat) = flat(&line) {
            proptest::prop_assert_eq!(flat, general(&line), "{}", line);
        }
    }
}

/// The seed's value of `field`, as written in a line.
fn value_of(task: &crate::TaskRecord, field: Field) -> String {
    match field {
        Field::TaskStatus => task.status.as_str().to_owned(),
        Field::UtcCreate => task.utc_create.to_string(),
        Field::UtcModified => task.utc_modified.to_string(),
        Field::TaskId => task.task_id.clone(),
        Field::JobId => task.job_id.clone(),
        Field::FirmwareId => task.firmware_id.clone(),
        Field::IotId => task.iot_id.clone(),
        Field::ProductKey => task.product_key.clone(),
        Field::ProductName => task.product_name.clone(),
        Field::DeviceName => task.device_name.clone(),
        Field::ModuleName => task.module_name.clone(),
        Field::SrcVersion => task.src_version.clone(),
        Field::DestVersion => task.dest_version.clone(),
        Field::IotInstanceId => task.iot_instance_id.clone(),
        Field::Progress => task.progress.clone().unwrap_or_default(),
        Field::TaskDesc => task.task_desc.clone().unwrap_or_default(),
        Field::Timeout => task.timeout.clone().unwrap_or_default(),
    }
}
type TaskRecordOwned = crate::TaskRecord;

#[test]
fn stages_both_key_styles_and_ignores_unknown_keys() {
    let camel = stage(SEED).unwrap();
    assert_eq!(camel.task_id, "183371207782747****");
    assert_eq!(camel.status, TaskStatus::Notified);
    assert_eq!(camel.iot_instance_id, "");
    let pascal = SEED
        .replace("\"destVersion\"", "\"DestVersion\"")
        .replace("\"taskId\"", "\"TaskId\"")
        .replace("\"iotId\"", "\"IotId\"")
        .replace(
            '}',
            r#","Progress":"0.5","note":{"a":[1,2]},"IotInstanceId":"iot-1"}"#,
        );
    let p = stage(&pascal).unwrap();
    assert_eq!(p.dest_version, "3.9.0");
    assert_eq!(p.progress.as_deref(), Some("0.5"));
    assert_eq!(
        (p.task_desc.as_deref(), camel.progress.as_deref()),
        (None, None)
    );
    assert_eq!(p.iot_instance_id, "iot-1");
    assert_eq!(p.task_id, camel.task_id);
}

#[test]
fn escapes_are_decoded() {
    let line = SEED.replace(r#""3.9.0""#, r#""2.0 \"beta\" \u00e9""#);
    assert_eq!(stage(&line).unwrap().dest_version, "2.0 \"beta\" é");
}

/// Spans are 16 bits from the line's start: values at the far end of a line of the
/// longest length allowed, read flat or decoded, and several such lines in one input.
#[test]
fn values_at_the_end_of_the_longest_lines_are_staged_whole() {
    let want = general(SEED).unwrap();
    let pad = |line: &str| {
        let fill = MAX_LINE_BYTES - line.len() - r#""pad":"","#.len();
        line.replacen('{', &format!(r#"{{"pad":"{}","#, "x".repeat(fill)), 1)
    };
    let flat_line = pad(SEED);
    let decoded_line = pad(&SEED.replace("testProduct1", r"test\u0050roduct1"));
    for line in [&flat_line, &decoded_line] {
        assert_eq!(line.len(), MAX_LINE_BYTES);
        assert_eq!(stage(line).unwrap(), want);
    }
    assert!(flat(&flat_line).is_some() && flat(&decoded_line).is_none());
    let input = format!("{flat_line}\n{decoded_line}\n{flat_line}\n{decoded_line}\n");
    let mut s = Stager::new(input.as_bytes());
    s.stage_all(input.as_bytes(), 0).unwrap();
    assert_eq!(s.records.len(), 4);
    for i in 0..4 {
        assert_eq!(s.get(i).to_owned(), want, "record {i}");
    }
}

#[test]
fn field_faults_name_the_field() {
    let field_of = |line: &str| match stage(line) {
        Err(LoadErrorKind::InvalidField(e)) => (e.field, e.violation),
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        field_of(&SEED.replace(r#""taskId":"183371207782747****","#, "")),
        (Field::TaskId, Violation::Missing)
    );
    assert_eq!(
        field_of(&SEED.replace(r#""jobId":"183371207742901****""#, r#""jobId":7"#)),
        (Field::JobId, Violation::NotAString)
    );
    assert_eq!(
        field_of(&SEED.replace(r#""jobId":"183371207742901****""#, r#""jobId":null"#)),
        (Field::JobId, Violation::NotAString)
    );
    assert_eq!(
        field_of(&SEED.replace('}', r#","TaskId":"x"}"#)),
        (Field::TaskId, Violation::Duplicate)
    );
    assert_eq!(
        field_of(&SEED.replace("NOTIFIED", "notified")),
        (Field::TaskStatus, Violation::UnknownStatus)
    );
    assert_eq!(
        field_of(&SEED.replace("2024-09-11T06:27:24.649Z", "2024-09-11 06:27:24Z")),
        (Field::UtcModified, Violation::BadTimestamp)
    );
    assert!(matches!(
        field_of(&SEED.replace("device_actived", "dev")),
        (Field::DeviceName, Violation::Length { .. })
    ));
}

/// A CRLF line is read by the flat scanner, without its CR, as its LF twin is.
#[test]
fn crlf_lines_stay_flat() {
    let input = format!("{SEED}\r\n{}\r\n", SEED.replace("t1", "t2"));
    let mut s = Stager::new(input.as_bytes());
    s.stage_all(input.as_bytes(), 0).unwrap();
    assert_eq!(s.records.len(), 2);
    assert!(s.records.iter().all(|r| !r.decoded));
    assert_eq!(s.get(0).to_owned(), stage(SEED).unwrap());
}

#[test]
fn malformed_lines_are_json_errors() {
    assert!(matches!(stage("{\"taskId\":"), Err(LoadErrorKind::Json(_))));
    assert!(matches!(stage("[1,2]"), Err(LoadErrorKind::NotAnObject)));
    assert!(matches!(stage("\"x\""), Err(LoadErrorKind::NotAnObject)));
    assert!(matches!(
        stage(&format!("{SEED} x")),
        Err(LoadErrorKind::Json(_))
    ));
}

/// A reader that gives its input a few bytes at a time, as a pipe may.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.1.min(self.0.len()).min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn sorted(engine: &crate::Engine) -> Vec<crate::TaskRecord> {
    let mut t = engine.tasks();
    t.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    t
}

/// A load streamed in pieces of whole lines gives the store of one load, whatever the
/// reads' sizes; progress grows to the whole input; line numbers count over the whole input.
#[test]
fn a_streamed_load_is_the_whole_load_in_pieces() {
    let jsonl = crate::fleet::Fleet::new(600).to_jsonl();
    let mut input = b"\xEF\xBB\xBF".to_vec(); // a byte-order mark, skipped before line 1
    input.extend(
        jsonl
            .split(|&b| b == b'\n')
            .flat_map(|l| [l, b"\r\n"].concat()),
    );
    let whole = crate::Engine::new();
    whole.load_jsonl(&input).unwrap();
    let chunk = MAX_LINE_BYTES + 2;
    assert!(input.len() > 8 * chunk, "several pieces");
    for step in [1, 7, 4096, usize::MAX] {
        let streamed = crate::Engine::new();
        let mut seen: Vec<LoadProgress> = Vec::new();
        let report = streamed
            .load_jsonl_reader_in(Trickle(&input, step), chunk, |p| seen.push(*p))
            .unwrap();
        assert_eq!(report.records, whole.len());
        assert_eq!(sorted(&streamed), sorted(&whole), "reads of {step}");
        assert!(seen.len() > 8 && seen.windows(2).all(|w| w[0].bytes < w[1].bytes));
        let last = seen.last().unwrap();
        assert_eq!(last.bytes, input.len() as u64);
        assert_eq!(last.lines, input.iter().filter(|&&b| b == b'\n').count());
        streamed.internal_validate().unwrap();
    }
    // A bad line in a later piece: the pieces before it are applied, and the error counts
    // lines over the whole input.
    let lines: Vec<&[u8]> = jsonl.split(|&b| b == b'\n').collect();
    let bad_at = lines.len() - 3;
    let mut broken: Vec<u8> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        broken.extend_from_slice(if i == bad_at { b"{\"taskId\":1}" } else { line });
        broken.push(b'\n');
    }
    let engine = crate::Engine::new();
    let mut applied = 0;
    let error = engine
        .load_jsonl_reader_in(&broken[..], chunk, |p| applied = p.records)
        .unwrap_err();
    assert_eq!(error.line, bad_at + 1);
    assert!(applied > 0 && applied < bad_at, "{applied}");
    assert_eq!(engine.len(), applied);
    // A line longer than the limit is refused before it is read whole.
    let long = format!("{}\n", "x".repeat(3 * chunk));
    let error = crate::Engine::new()
        .load_jsonl_reader_in(long.as_bytes(), chunk, |_| {})
        .unwrap_err();
    assert!(
        matches!(error.kind, LoadErrorKind::LineTooLong { .. }),
        "{error}"
    );
    assert_eq!(error.line, 1);
}

/// A reader that fails is an I/O error, not a panic or a silent end.
#[test]
fn a_failing_reader_is_an_io_error() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("device gone"))
        }
    }
    let error = crate::Engine::new()
        .load_jsonl_reader(Broken, |_| {})
        .unwrap_err();
    assert_eq!(error.kind, LoadErrorKind::Io("device gone".into()));
}
