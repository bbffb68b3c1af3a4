//! Removals (reference section 2): tasks and devices removed as of an instant, the tombstones
//! that keep their older records stale, and a device's name registered again.

use ota_index::{
    Engine, Query, Removal, TaskRecord, TaskStatus, Timestamp, UpsertOutcome, WriteError,
};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_730_000_000_000 + ms)
}

fn task(id: &str, iot: &str, name: &str, modified: i64) -> TaskRecord {
    TaskRecord {
        task_id: id.into(),
        job_id: "j1".into(),
        firmware_id: "f1".into(),
        iot_id: iot.into(),
        product_key: "pk1".into(),
        product_name: "Lamp".into(),
        device_name: name.into(),
        module_name: "default".into(),
        src_version: "1.0".into(),
        dest_version: "2.0".into(),
        status: TaskStatus::Queued,
        utc_create: t(0),
        utc_modified: t(modified),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

fn ids(engine: &Engine, query: &Query<'_>) -> Vec<String> {
    engine
        .unfinished(query)
        .unwrap()
        .iter()
        .map(|t| t.task_id().to_owned())
        .collect()
}

#[test]
fn a_removed_task_stays_removed_whatever_arrives_after() {
    let engine = Engine::new();
    engine.upsert(&task("t1", "dev-1", "lamp-1", 10)).unwrap();
    // Older than the stored task: recorded, nothing deleted.
    assert_eq!(engine.remove_task("", "t1", t(5)), Ok(Removal::default()));
    assert_eq!(engine.len(), 1);
    assert_eq!(
        engine.remove_task("", "t1", t(20)),
        Ok(Removal {
            tasks: 1,
            unbound: false
        })
    );
    assert!(engine.is_empty());
    // A replayed or late record not newer than the removal is stale.
    for m in [10, 15, 20] {
        assert_eq!(
            engine.upsert(&task("t1", "dev-1", "lamp-1", m)),
            Ok(UpsertOutcome::Stale { stored: t(20) }),
            "{m}"
        );
    }
    assert!(engine.is_empty());
    // An older removal changes nothing; a newer record brings the task back.
    assert_eq!(engine.remove_task("", "t1", t(1)), Ok(Removal::default()));
    assert_eq!(
        engine.upsert(&task("t1", "dev-1", "lamp-1", 21)),
        Ok(UpsertOutcome::Inserted)
    );
    // The device stayed bound all along: a task removal is not a device's.
    assert!(matches!(
        engine.upsert(&task("t2", "dev-1", "other-name", 30)),
        Err(WriteError::IdentityConflict { .. })
    ));
    engine.internal_validate().unwrap();
}

#[test]
fn a_device_registered_again_binds_its_name_to_the_new_iot_id() {
    let engine = Engine::new();
    engine.upsert(&task("t1", "dev-old", "lamp", 10)).unwrap();
    engine.upsert(&task("t2", "dev-old", "lamp", 11)).unwrap();
    // Before the removal the name is the old device's.
    assert!(matches!(
        engine.upsert(&task("t3", "dev-new", "lamp", 12)),
        Err(WriteError::IdentityConflict { .. })
    ));
    assert_eq!(
        engine.remove_device("", "dev-old", t(20)),
        Ok(Removal {
            tasks: 2,
            unbound: true
        })
    );
    assert!(engine.is_empty());
    assert_eq!(engine.device_count(), 0);
    // The platform registers the name again under a new iotId.
    assert_eq!(
        engine.upsert(&task("t3", "dev-new", "lamp", 25)),
        Ok(UpsertOutcome::Inserted)
    );
    assert_eq!(ids(&engine, &Query::by_name("pk1", "lamp")), ["t3"]);
    assert_eq!(
        ids(&engine, &Query::by_iot_id("dev-old")),
        Vec::<String>::new()
    );
    // A late record of the old device (not newer than its removal) is stale, not a conflict.
    assert!(matches!(
        engine.upsert(&task("t1", "dev-old", "lamp", 15)),
        Ok(UpsertOutcome::Stale { .. })
    ));
    // The old iotId named again after its removal comes back, bound as the record says.
    assert_eq!(
        engine.upsert(&task("t9", "dev-old", "lamp-other", 30)),
        Ok(UpsertOutcome::Inserted)
    );
    assert_eq!(engine.device_count(), 2);
    engine.internal_validate().unwrap();
}

#[test]
fn a_device_keeps_its_binding_while_a_record_newer_than_its_removal_names_it() {
    let engine = Engine::new();
    engine.upsert(&task("t1", "dev-1", "lamp", 10)).unwrap();
    engine.upsert(&task("t2", "dev-1", "lamp", 30)).unwrap();
    // t1 goes, t2 (newer than the removal) stays, and with it the binding.
    assert_eq!(
        engine.remove_device("", "dev-1", t(20)),
        Ok(Removal {
            tasks: 1,
            unbound: false
        })
    );
    assert_eq!(ids(&engine, &Query::by_iot_id("dev-1")), ["t2"]);
    assert!(matches!(
        engine.upsert(&task("t3", "dev-2", "lamp", 40)),
        Err(WriteError::IdentityConflict { .. })
    ));
    // A removal of a device the store never saw is recorded: its records stay stale.
    assert_eq!(
        engine.remove_device("", "dev-9", t(50)),
        Ok(Removal::default())
    );
    assert!(matches!(
        engine.upsert(&task("t4", "dev-9", "lamp-9", 50)),
        Ok(UpsertOutcome::Stale { .. })
    ));
    assert_eq!(engine.device_count(), 1);
    engine.internal_validate().unwrap();
}

#[test]
fn removals_check_their_fields_and_name_their_instance() {
    let engine = Engine::new();
    assert!(matches!(
        engine.remove_task("", "", t(1)),
        Err(WriteError::InvalidField(_))
    ));
    assert!(matches!(
        engine.remove_device("bad instance", "dev-1", t(1)),
        Err(WriteError::InvalidField(_))
    ));
    assert!(matches!(
        engine.remove_task("", "t1", Timestamp::from_millis(i64::MAX)),
        Err(WriteError::InvalidField(_))
    ));
    assert_eq!(engine.instances(), [""]);
    // A removal is a write that names its instance: the instance exists from then on.
    engine.remove_task("iot-2", "t1", t(1)).unwrap();
    assert_eq!(engine.instances(), ["", "iot-2"]);
}

fn line(task: &TaskRecord) -> String {
    let mut out = Vec::new();
    ota_index::fleet::write_record(&mut out, task);
    String::from_utf8(out).unwrap()
}

/// Removal lines in a load: both spellings, their instance, unknown keys ignored, the order
/// of the file (a name registered again after its device's removal line).
#[test]
fn a_load_applies_removal_lines_in_order() {
    let engine = Engine::new();
    let input = [
        line(&task("t1", "dev-old", "lamp", 10)),
        line(&task("t2", "dev-old", "lamp", 11)),
        r#"{"op":"removeDevice","iotId":"dev-old","utcModified":"2024-10-27T03:33:20.020Z","note":[1]}"#.to_owned(),
        line(&task("t3", "dev-new", "lamp", 30)),
        format!(r#"{{"Op":"removeTask","TaskId":"t3","UtcModified":"{}"}}"#, t(25)),
        format!(r#"{{"op":"removeTask","taskId":"t7","utcModified":"{}","iotInstanceId":"iot-2"}}"#, t(1)),
    ]
    .join("\n");
    let report = engine.load_jsonl(input.as_bytes()).unwrap();
    assert_eq!(report.records, 6);
    assert_eq!(report.summary.inserted, 3);
    assert_eq!((report.summary.removals, report.summary.removed), (3, 2));
    assert_eq!(ids(&engine, &Query::by_name("pk1", "lamp")), ["t3"]);
    assert_eq!(engine.instances(), ["", "iot-2"]);
    engine.internal_validate().unwrap();
}

/// A bad removal line is refused naming its line and what is wrong, and nothing is applied.
#[test]
fn bad_removal_lines_are_refused() {
    let good = line(&task("t1", "dev-1", "lamp", 10));
    let at = t(20);
    for (bad, wanted) in [
        (r#"{"op":"removeTask","utcModified":"2024-10-27T03:33:20Z"}"#.to_owned(), "`taskId` is missing"),
        (r#"{"op":"removeDevice","taskId":"t1","utcModified":"2024-10-27T03:33:20Z"}"#.to_owned(), "`iotId` is missing"),
        (r#"{"op":"removeTask","taskId":"t1"}"#.to_owned(), "`utcModified` is missing"),
        (r#"{"op":"removeTask","taskId":"t1","utcModified":"yesterday"}"#.to_owned(), "`utcModified` is not a UTC time"),
        (r#"{"op":"deleteTask","taskId":"t1","utcModified":"2024-10-27T03:33:20Z"}"#.to_owned(), "field `op` must be"),
        (r#"{"op":1,"taskId":"t1","utcModified":"2024-10-27T03:33:20Z"}"#.to_owned(), "field `op` must be a JSON string"),
        (r#"{"op":"removeTask","Op":"removeTask","taskId":"t1","utcModified":"2024-10-27T03:33:20Z"}"#.to_owned(), "field `op` is given twice"),
        (format!(r#"{{"op":"removeDevice","iotId":"dev 1","utcModified":"{at}"}}"#), "`iotId` holds"),
        (format!(r#"{{"op":"removeTask","taskId":"t1","deviceName":"x","utcModified":"{at}"}}"#), "`deviceName` must be 4 to 32"),
    ] {
        let engine = Engine::new();
        let error = engine
            .load_jsonl(format!("{good}\n{bad}\n").as_bytes())
            .expect_err(&bad);
        assert_eq!(error.line, 2, "{bad}: {error}");
        assert!(error.to_string().contains(wanted), "{bad}: {error}");
        assert!(engine.is_empty(), "{bad}");
    }
}

/// A dump carries the tombstones: loaded into an empty engine, it answers as the store, and
/// the writes that made the store, replayed into both, leave them alike.
#[test]
fn a_dump_carries_the_tombstones() {
    let writes = [
        task("t1", "dev-a", "lamp-a", 10),
        task("t2", "dev-a", "lamp-a", 12),
        task("t3", "dev-b", "lamp-b", 10),
        task("t4", "dev-c", "lamp-c", 40),
    ];
    let engine = Engine::new();
    for w in &writes {
        engine.upsert(w).unwrap();
    }
    engine.remove_device("", "dev-a", t(20)).unwrap();
    engine.remove_task("", "t3", t(15)).unwrap();
    engine.remove_device("", "dev-z", t(50)).unwrap();
    let mut dump = Vec::new();
    let report = engine.dump_jsonl(&mut dump).unwrap();
    assert_eq!(report.records, engine.len());
    assert!(report.removals >= 4, "{report:?}");
    let copy = Engine::new();
    copy.load_jsonl(&dump).unwrap();
    let sorted = |e: &Engine| {
        let mut t = e.tasks();
        t.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        t
    };
    assert_eq!(sorted(&copy), sorted(&engine));
    // Every write again, and each earlier version: stale in both, alike.
    for engine in [&engine, &copy] {
        for w in &writes {
            let outcome = engine.upsert(w).unwrap();
            assert!(
                matches!(
                    outcome,
                    UpsertOutcome::Stale { .. } | UpsertOutcome::Unchanged
                ),
                "{outcome:?}"
            );
        }
        assert!(matches!(
            engine.upsert(&task("t9", "dev-z", "lamp-z", 45)),
            Ok(UpsertOutcome::Stale { .. })
        ));
    }
    assert_eq!(sorted(&copy), sorted(&engine));
    // The name of the removed device is free in both.
    for engine in [&engine, &copy] {
        assert_eq!(
            engine.upsert(&task("t5", "dev-new", "lamp-a", 30)),
            Ok(UpsertOutcome::Inserted)
        );
    }
    copy.internal_validate().unwrap();
}
