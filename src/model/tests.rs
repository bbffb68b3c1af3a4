use super::field::all_in_range;
use super::time::{civil_from_days, civil_from_days_hinnant, FORMATTED_DAYS};
use super::*;

#[test]
fn status_names_round_trip_and_split_four_three() {
    for s in TaskStatus::ALL {
        assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        assert_eq!(TaskStatus::from_u8(s as u8), Some(s));
    }
    let unfinished: Vec<_> = StatusSet::UNFINISHED
        .iter()
        .map(TaskStatus::as_str)
        .collect();
    assert_eq!(unfinished, ["CONFIRM", "QUEUED", "NOTIFIED", "IN_PROGRESS"]);
    let finished: Vec<_> = StatusSet::FINISHED.iter().map(TaskStatus::as_str).collect();
    assert_eq!(finished, ["SUCCEEDED", "FAILED", "CANCELED"]);
    assert_eq!(TaskStatus::parse("In_Progress"), None);
    assert_eq!(TaskStatus::from_u8(7), None);
}

#[test]
fn timestamps_parse_normalise_and_reject() {
    let cases = [
        ("2024-11-11T11:11:11Z", "2024-11-11T11:11:11.000Z"),
        ("2024-11-12T08:00:00.5Z", "2024-11-12T08:00:00.500Z"),
        ("2024-11-12T08:00:00.05Z", "2024-11-12T08:00:00.050Z"),
        ("2024-09-11T03:40:02.734Z", "2024-09-11T03:40:02.734Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
        ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
    ];
    for (input, output) in cases {
        let t = Timestamp::parse(input).unwrap_or_else(|| panic!("{input}"));
        assert_eq!(t.to_string(), output, "{input}");
    }
    assert_eq!(
        Timestamp::parse("1970-01-01T00:00:01.5Z")
            .unwrap()
            .as_millis(),
        1500
    );
    for bad in [
        "",
        "2024-11-11 11:11:11Z",
        "2024-11-11T11:11:11",
        "2024-11-11T11:11:11.Z",
        "2024-11-11T11:11:11.1234Z",
        "2024-13-01T00:00:00Z",
        "2024-00-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",
        "2024-1-01T00:00:00Z",
        "+024-01-01T00:00:00Z",
        "2024-01-01T00:00:00+00:00",
        "2024-01-01T00:00:00z",
        "2024-01-01T00:00:00.12aZ",
    ] {
        assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
    }
}

/// The first implementation of [`Timestamp::parse`]'s reading of the text (digit by
/// digit, early exits), kept as the reference for the one that tests all digits at once;
/// both end in the same range checks (`from_civil`, covered by the rejection tests).
fn reference_parse(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > TIMESTAMP_LEN || b[b.len() - 1] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = match b.len() {
        20 => 0,
        len if b[19] == b'.' && len >= 22 => {
            let digits = len - 21;
            num(20..20 + digits)? * [100, 10, 1][digits - 1]
        }
        _ => return None,
    };
    Timestamp::from_civil([year, month, day, hour, minute, second], millis)
}

#[test]
fn timestamp_parse_matches_the_reference_for_every_byte_at_every_position() {
    for text in [
        "2024-11-11T11:11:11Z",
        "2024-11-12T08:00:00.5Z",
        "2024-11-12T08:00:00.05Z",
        "2024-02-29T23:59:59.999Z",
        "1999-12-31T09:09:09.000Z",
        "0000-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "2023-02-28T19:30:45.678Z",
    ] {
        for at in 0..text.len() {
            for c in 0..=u8::MAX {
                let mut bytes = text.as_bytes().to_vec();
                bytes[at] = c;
                let Ok(mutated) = std::str::from_utf8(&bytes) else {
                    continue;
                };
                assert_eq!(
                    Timestamp::parse(mutated),
                    reference_parse(mutated),
                    "{mutated:?}"
                );
            }
        }
    }
}

#[test]
fn civil_dates_match_hinnant_for_every_formatted_day() {
    for days in *FORMATTED_DAYS.start() - 3..=*FORMATTED_DAYS.end() + 3 {
        assert_eq!(
            civil_from_days(days),
            civil_from_days_hinnant(days),
            "{days}"
        );
    }
    assert_eq!(civil_from_days(*FORMATTED_DAYS.start()), (0, 1, 1));
    assert_eq!(civil_from_days(*FORMATTED_DAYS.end()), (9999, 12, 31));
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    // Far outside the range: no overflow, the same dates.
    for days in [
        i64::from(i32::MIN),
        -10_000_000,
        10_000_000,
        i64::from(i32::MAX),
    ] {
        assert_eq!(civil_from_days(days), civil_from_days_hinnant(days));
    }
}

#[test]
fn timestamp_format_round_trips_over_all_years() {
    let first = Timestamp::parse("0000-01-01T00:00:00Z")
        .unwrap()
        .as_millis();
    let last = Timestamp::parse("9999-12-31T23:59:59.999Z")
        .unwrap()
        .as_millis();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = first + (x % (last - first + 1) as u64) as i64;
        let t = Timestamp::from_millis(ms);
        let text = t.to_string();
        assert_eq!(Timestamp::parse(&text), Some(t), "{ms} -> {text}");
    }
}

#[test]
fn timestamp_order_follows_time() {
    let a = Timestamp::parse("2024-11-12T08:00:00.5Z").unwrap();
    let b = Timestamp::parse("2024-11-12T08:00:00.499Z").unwrap();
    assert!(b < a);
}

#[test]
fn field_rules_of_contract_section_1() {
    use Violation::*;
    let ok = |f: Field, v: &str| assert_eq!(f.check(v), Ok(()), "{f} {v:?}");
    let bad = |f: Field, v: &str| assert!(f.check(v).is_err(), "{f} {v:?} should fail");
    for f in [
        Field::TaskId,
        Field::JobId,
        Field::FirmwareId,
        Field::IotId,
        Field::ProductKey,
    ] {
        ok(f, "a");
        ok(f, &"x".repeat(64));
        ok(f, "!~*#");
        bad(f, "");
        bad(f, &"x".repeat(65));
        bad(f, "a b");
        bad(f, "é");
        bad(f, "a\tb");
    }
    assert_eq!(Field::TaskId.check(""), Err(Missing));
    ok(Field::ProductName, "智能灯 \\ Lamp");
    ok(Field::ProductName, &"灯".repeat(64));
    bad(Field::ProductName, &"灯".repeat(65));
    bad(Field::ProductName, "");
    bad(Field::ProductName, "a\nb");
    bad(Field::ProductName, "a\u{7f}b");
    bad(Field::ProductName, "a\u{85}b");
    ok(Field::DeviceName, "mac:00-1A@home.x");
    ok(Field::DeviceName, "abcd");
    ok(Field::DeviceName, &"d".repeat(32));
    bad(Field::DeviceName, "abc");
    bad(Field::DeviceName, &"d".repeat(33));
    bad(Field::DeviceName, "dev ice");
    bad(Field::DeviceName, "dev/ice");
    bad(Field::DeviceName, "灯灯灯灯");
    ok(Field::ModuleName, "default");
    ok(Field::ModuleName, "Wifi_Module-2.1");
    ok(Field::ModuleName, "b");
    bad(Field::ModuleName, "");
    bad(Field::ModuleName, "a:b");
    bad(Field::ModuleName, "a b");
    bad(Field::ModuleName, &"m".repeat(65));
    ok(Field::SrcVersion, "");
    ok(Field::SrcVersion, "1.0 beta \"x\"");
    bad(Field::SrcVersion, "1\u{0}");
    bad(Field::SrcVersion, &"v".repeat(65));
    ok(Field::DestVersion, "2.0 \"beta\"");
    bad(Field::DestVersion, "");
    bad(Field::DestVersion, "2\r");
    ok(Field::IotInstanceId, "");
    ok(Field::IotInstanceId, "iot-c3j0000");
    bad(Field::IotInstanceId, "iot c3");
    assert!(matches!(
        Field::DeviceName.check("abc"),
        Err(Length { min: 4, max: 32 })
    ));
    assert!(matches!(
        Field::ModuleName.check("a:b"),
        Err(BadChar { ch: ':', .. })
    ));
}

#[test]
fn field_names_in_both_styles() {
    for f in Field::ALL {
        assert_eq!(Field::from_key(f.camel()), Some(f));
        assert_eq!(Field::from_key(f.pascal()), Some(f));
    }
    assert_eq!(Field::from_key("taskid"), None);
    assert_eq!(Field::from_key("progress"), Some(Field::Progress));
    assert_eq!(Field::from_key("op"), None);
    assert_eq!(Field::from_key("Op"), None);
    assert_eq!(Field::from_key(""), None);
    // Every key one ASCII byte away from a name (changed, dropped or added at any place)
    // is that field only if it is exactly one of the two spellings of one.
    let named = |key: &str| {
        Field::ALL
            .into_iter()
            .find(|f| f.camel() == key || f.pascal() == key)
    };
    for f in Field::ALL {
        let name = f.camel().as_bytes();
        for at in 0..=name.len() {
            for b in 0u8..0x80 {
                let mut changed = name.to_vec();
                let mut added = name.to_vec();
                added.insert(at, b);
                let mut keys = vec![added];
                if at < name.len() {
                    changed[at] = b;
                    keys.push(changed);
                    let mut dropped = name.to_vec();
                    dropped.remove(at);
                    keys.push(dropped);
                }
                for key in keys {
                    let key = String::from_utf8(key).unwrap();
                    assert_eq!(Field::from_key(&key), named(&key), "{key:?}");
                }
            }
        }
    }
}

proptest::proptest! {
    /// The byte-table fast path of `Field::check` accepts exactly what the char-by-char
    /// rules accept, for every field.
    #[test]
    fn fast_field_check_agrees_with_the_exact_rules(
        value in "[a-zA-Z0-9 _@.:\\-\"\\\\\t\x00\x7f~é智]{0,70}"
    ) {
        for field in Field::STRINGS {
            proptest::prop_assert_eq!(
                field.check(&value),
                field.check_exact(&value),
                "{} {:?}", field, value
            );
        }
    }
}

#[test]
fn fast_field_check_agrees_on_every_byte_position() {
    crate::raw::swar::each_byte_at_each_position(|text, _| {
        let want = text.iter().all(|&c| (0x21..=0x7e).contains(&c));
        assert_eq!(all_in_range(text, 0x21), want, "{text:?}");
        let want = text.iter().all(|&c| (0x20..=0x7e).contains(&c));
        assert_eq!(all_in_range(text, 0x20), want, "{text:?}");
    });
    assert!(all_in_range(b"", 0x21));
}

#[test]
fn fast_field_check_agrees_on_every_ascii_byte() {
    for field in Field::STRINGS {
        for b in 0u8..0x80 {
            for len in [1, 4, 32, 33, 64, 65] {
                let value = String::from(b as char).repeat(len);
                assert_eq!(
                    field.check(&value),
                    field.check_exact(&value),
                    "{field} {value:?}"
                );
                let mixed = format!("abcd{}", b as char);
                assert_eq!(
                    field.check(&mixed),
                    field.check_exact(&mixed),
                    "{field} {mixed:?}"
                );
            }
        }
    }
}

/// The optional fields' rules: `progress` 0–16 characters and `taskDesc` 0–256, neither with
/// a control character (C1 included); `timeout` 0–10 decimal digits; empty is always fine.
#[test]
fn optional_fields_rules() {
    for (field, max) in [(Field::Progress, 16), (Field::TaskDesc, 256)] {
        assert_eq!(field.check(""), Ok(()));
        assert_eq!(field.check(&"é".repeat(max)), Ok(()));
        assert_eq!(
            field.check(&"é".repeat(max + 1)),
            Err(Violation::Length { min: 0, max })
        );
        for bad in ["a\nb", "a\u{7f}", "a\u{85}"] {
            assert!(
                matches!(field.check(bad), Err(Violation::BadChar { .. })),
                "{field} {bad:?}"
            );
        }
    }
    assert_eq!(Field::Timeout.check(""), Ok(()));
    assert_eq!(Field::Timeout.check("1440"), Ok(()));
    assert_eq!(Field::Timeout.check("0123456789"), Ok(()));
    assert_eq!(
        Field::Timeout.check("01234567890"),
        Err(Violation::Length { min: 0, max: 10 })
    );
    for bad in ["12a", "-1", "1.5", " 1", "١"] {
        assert!(
            matches!(Field::Timeout.check(bad), Err(Violation::BadChar { .. })),
            "{bad:?}"
        );
    }
    assert!(Field::Progress.is_optional() && !Field::TaskId.is_optional());
    assert_eq!(Field::DEVICE_ANSWER.len(), 13);
    assert!(Field::DEVICE_ANSWER.iter().all(|f| !f.is_optional()));
}
