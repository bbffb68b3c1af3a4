//! At-least-once delivery (reference section 2): a platform event stream replays and reorders
//! writes, and the store must end up holding the newest write of every task.
//!
//! A deterministic stream of 2,000 tasks over 200 devices, each written in several versions with
//! strictly increasing `utcModified` while its status walks through the lifecycle (some tasks
//! moving to another device on the way, some ending finished, some not), in two instances
//! that reuse the same device identities, is duplicated and shuffled with a seeded RNG, then
//! applied one record at a time and, separately, as bulk loads of random-sized chunks. Both
//! stores must equal the newest version of every task, answer every device's unfinished
//! tasks (by iotId and by name) as that state says, stay unchanged when the whole stream is
//! replayed once more, and pass `internal_validate()`.

use std::collections::BTreeMap;

use ota_index::fleet::SplitMix;
use ota_index::{Engine, Query, TaskFields, TaskRecord, TaskStatus, Timestamp, UpsertOutcome};

const TASKS: usize = 2000;
const DEVICES: usize = 200;
const INSTANCES: [&str; 2] = ["", "iot-soak"];
const BASE_MS: i64 = 1_731_398_400_000; // 2024-11-12T08:00:00Z
const MODULES: [&str; 3] = ["default", "ble", "Wifi_Module"];

/// Device `d`'s identity; the same in both instances (keys are scoped per instance).
fn device(d: usize) -> (String, String, String) {
    (
        format!("soak-iot-{d:03}"),
        format!("pk{}", d % 7),
        format!("device_{d:03}"),
    )
}

/// Every version of every task, in write order per task, and the newest version of each.
fn versions(rng: &mut SplitMix) -> (Vec<TaskRecord>, BTreeMap<(String, String), TaskRecord>) {
    let mut stream = Vec::new();
    let mut newest = BTreeMap::new();
    for t in 0..TASKS {
        let instance = INSTANCES[usize::from(t % 5 == 0)];
        let created = BASE_MS + rng.below(86_400_000) as i64;
        let mut dev = rng.below(DEVICES as u64) as usize;
        // The lifecycle, cut short for some tasks; the last step (when reached) is finished.
        let mut walk = vec![
            TaskStatus::Confirm,
            TaskStatus::Queued,
            TaskStatus::Notified,
            TaskStatus::InProgress,
        ];
        walk.push(
            [
                TaskStatus::Succeeded,
                TaskStatus::Failed,
                TaskStatus::Canceled,
            ][rng.below(3) as usize],
        );
        let steps = 1 + rng.below(walk.len() as u64) as usize;
        let start = rng.below(2) as usize; // some skip CONFIRM
        let mut modified = created;
        let module = MODULES[rng.below(3) as usize];
        for (k, &status) in walk.iter().enumerate().skip(start).take(steps) {
            if k > start && rng.percent(20) {
                dev = rng.below(DEVICES as u64) as usize; // the task moves to another device
            }
            modified += 1 + rng.below(3_600_000) as i64; // strictly increasing per task
            let (iot_id, product_key, device_name) = device(dev);
            let record = TaskRecord {
                task_id: format!("task-{t:04}"),
                job_id: format!("job-{}", t % 13),
                firmware_id: format!("fw-{}", t % 17),
                iot_id,
                product_name: format!("Produit n°{}", dev % 7),
                product_key,
                device_name,
                module_name: module.into(),
                src_version: "1.0".into(),
                dest_version: format!("1.{k}"),
                status,
                utc_create: Timestamp::from_millis(created),
                utc_modified: Timestamp::from_millis(modified),
                iot_instance_id: instance.into(),
                progress: None,
                task_desc: None,
                timeout: None,
            };
            newest.insert(
                (instance.to_owned(), record.task_id.clone()),
                record.clone(),
            );
            stream.push(record);
        }
    }
    (stream, newest)
}

/// Each record delivered one to three times, the whole shuffled (Fisher–Yates).
fn deliveries(stream: &[TaskRecord], rng: &mut SplitMix) -> Vec<TaskRecord> {
    let mut out = Vec::new();
    for record in stream {
        for _ in 0..1 + rng.below(3) {
            out.push(record.clone());
        }
    }
    for i in (1..out.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        out.swap(i, j);
    }
    out
}

fn json_line(r: &TaskRecord, pascal: bool) -> String {
    let stamp = |t: Timestamp| String::from_utf8(t.format().to_vec()).expect("ASCII");
    let fields = [
        ("taskId", r.task_id.clone()),
        ("jobId", r.job_id.clone()),
        ("firmwareId", r.firmware_id.clone()),
        ("iotId", r.iot_id.clone()),
        ("productKey", r.product_key.clone()),
        ("productName", r.product_name.clone()),
        ("deviceName", r.device_name.clone()),
        ("moduleName", r.module_name.clone()),
        ("srcVersion", r.src_version.clone()),
        ("destVersion", r.dest_version.clone()),
        ("taskStatus", r.status.as_str().to_owned()),
        ("utcCreate", stamp(r.utc_create)),
        ("utcModified", stamp(r.utc_modified)),
        ("iotInstanceId", r.iot_instance_id.clone()),
    ];
    let mut map = serde_json::Map::new();
    for (key, value) in fields {
        let key = if pascal {
            let mut k = key.to_owned();
            k[..1].make_ascii_uppercase();
            k
        } else {
            key.to_owned()
        };
        map.insert(key, value.into());
    }
    serde_json::Value::Object(map).to_string()
}

fn sorted(mut tasks: Vec<TaskRecord>) -> Vec<TaskRecord> {
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

/// The store holds exactly the newest versions, and every device's unfinished answer agrees.
fn check(engine: &Engine, newest: &BTreeMap<(String, String), TaskRecord>, label: &str) {
    if let Err(broken) = engine.internal_validate() {
        panic!("{label}: invariant broken: {broken}");
    }
    let expected: Vec<TaskRecord> = newest.values().cloned().collect();
    let stored = sorted(engine.tasks());
    assert_eq!(stored.len(), expected.len(), "{label}: task count");
    for (got, want) in stored.iter().zip(&expected) {
        assert_eq!(got, want, "{label}: task {}", want.task_id);
    }
    let mut unfinished_seen = 0;
    for instance in INSTANCES {
        for d in 0..DEVICES {
            let (iot_id, product_key, device_name) = device(d);
            let mut want: Vec<&TaskRecord> = expected
                .iter()
                .filter(|t| t.iot_instance_id == instance && t.iot_id == iot_id)
                .filter(|t| t.status.is_unfinished())
                .collect();
            want.sort_by(|a, b| (a.utc_create, &a.task_id).cmp(&(b.utc_create, &b.task_id)));
            let want: Vec<&str> = want.iter().map(|t| t.task_id.as_str()).collect();
            unfinished_seen += want.len();
            for query in [
                Query::by_iot_id(&iot_id).instance(instance),
                Query::by_name(&product_key, &device_name).instance(instance),
            ] {
                let answer = engine.unfinished(&query).expect("valid query");
                let got: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
                assert_eq!(got, want, "{label}: {query:?}");
                for task in answer.iter() {
                    let key = (instance.to_owned(), task.task_id().to_owned());
                    assert_eq!(task.to_record(), newest[&key], "{label}: answered fields");
                }
            }
        }
    }
    assert!(
        unfinished_seen > TASKS / 10,
        "{label}: the stream leaves unfinished tasks"
    );
}

#[test]
fn replayed_and_reordered_writes_converge_to_the_newest() {
    let mut rng = SplitMix::new(0x50a4_2024);
    let (stream, newest) = versions(&mut rng);
    assert!(stream.len() > 2 * TASKS, "several versions per task");
    let moved = newest
        .values()
        .filter(|t| {
            !stream
                .iter()
                .filter(|s| s.task_id == t.task_id && s.iot_instance_id == t.iot_instance_id)
                .all(|s| s.iot_id == t.iot_id)
        })
        .count();
    assert!(moved > 10, "some tasks move between devices ({moved})");
    let delivered = deliveries(&stream, &mut rng);

    // One write at a time.
    let one_by_one = Engine::with_shards(8);
    let (mut inserted, mut replaced, mut unchanged, mut stale) = (0, 0, 0, 0);
    for record in &delivered {
        match one_by_one.upsert(record) {
            Ok(UpsertOutcome::Inserted) => inserted += 1,
            Ok(UpsertOutcome::Replaced) => replaced += 1,
            Ok(UpsertOutcome::Unchanged) => unchanged += 1,
            Ok(UpsertOutcome::Stale { stored }) => {
                assert!(stored > record.utc_modified);
                stale += 1;
            }
            Err(e) => panic!("write refused: {e}"),
        }
    }
    assert_eq!(inserted, newest.len(), "each task inserted once");
    assert_eq!(inserted + replaced + unchanged + stale, delivered.len());
    assert!(stale > 0 && replaced > 0);
    check(&one_by_one, &newest, "one by one");

    // Bulk loads of random-sized chunks, both key styles.
    let bulk = Engine::new();
    let mut rest = &delivered[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(300) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        let pascal = rng.percent(50);
        let text: Vec<String> = chunk.iter().map(|r| json_line(r, pascal)).collect();
        let report = bulk
            .load_jsonl(text.join("\n").as_bytes())
            .expect("chunk loads");
        assert_eq!(report.records, n);
        rest = tail;
    }
    check(&bulk, &newest, "bulk chunks");

    // The whole stream again, in another order: nothing changes.
    let again = deliveries(&stream, &mut rng);
    for record in &again {
        assert!(!matches!(
            one_by_one.upsert(record),
            Ok(UpsertOutcome::Inserted) | Err(_)
        ));
    }
    check(&one_by_one, &newest, "replayed");
    let text: Vec<String> = again.iter().map(|r| json_line(r, false)).collect();
    let report = bulk
        .load_jsonl(text.join("\n").as_bytes())
        .expect("replay loads");
    assert_eq!(report.summary.inserted, 0);
    check(&bulk, &newest, "bulk replayed");
}
