use std::sync::atomic::Ordering;

use super::batch::BY_SHARD_RUN;
use super::*;
use crate::model::{Field, TaskFields, TaskRecord, TaskStatus, Timestamp, JSON_STRING_ORDER};
use crate::query::{DeviceRef, Query};
use crate::store::InstanceId;

/// The row named by the hint of the pair (`pk`, `dn`) of the default instance.
fn hinted_row(engine: &Engine, pk: &str, dn: &str) -> u32 {
    hint_of(engine, pk, dn) as u32
}

/// The whole hint: the row in the low half, the name's bytes in the high half.
fn hint_of(engine: &Engine, pk: &str, dn: &str) -> u64 {
    let hash = engine.pair_hash(InstanceId(0), pk, dn);
    let pairs = engine.inner.pairs[engine.pair_shard(hash)].0.read();
    pairs.hint(hash).expect("slots").load(Ordering::Relaxed)
}

/// Four shards holding 40 devices' tasks, all queued (so every one is unfinished).
fn four_shards_of_queued_tasks() -> (Engine, Vec<TaskRecord>) {
    let engine = Engine::with_shards(4);
    let fleet = crate::fleet::Fleet::new(40);
    let mut tasks: Vec<TaskRecord> = (0..40).flat_map(|d| fleet.device_tasks(d)).collect();
    for t in &mut tasks {
        t.status = TaskStatus::Queued;
        engine.upsert(t).unwrap();
    }
    (engine, tasks)
}

/// A task moving to a device of another shard is written under both shards' locks,
/// but the writer never waits for one while holding the other: here it must wait for an
/// answer held on the task's old shard (the higher), and a query of the new shard (the
/// lower, which a writer taking locks in index order would take first and hold) must
/// pass it meanwhile, or the answer's holder, the writer and the query wait for one
/// another.
#[test]
fn a_move_between_shards_never_holds_one_while_waiting_for_the_other() {
    use std::sync::mpsc;
    use std::time::Duration;
    let (engine, tasks) = four_shards_of_queued_tasks();
    let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
    let highest = tasks.iter().map(shard).max().expect("tasks");
    let moving = tasks.iter().find(|t| shard(t) == highest).unwrap().clone();
    let to = tasks.iter().find(|t| shard(t) < highest).unwrap().clone();
    let held = engine
        .unfinished(&Query::by_iot_id(&moving.iot_id))
        .unwrap();
    let writer = {
        let (engine, moved) = (
            engine.clone(),
            TaskRecord {
                iot_id: to.iot_id.clone(),
                product_key: to.product_key.clone(),
                device_name: to.device_name.clone(),
                utc_modified: Timestamp::from_millis(moving.utc_modified.as_millis() + 1),
                ..moving.clone()
            },
        );
        std::thread::spawn(move || engine.upsert(&moved))
    };
    std::thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished(), "the writer passed a held answer");
    let (tx, rx) = mpsc::channel();
    let reader = {
        let (engine, iot) = (engine.clone(), to.iot_id.clone());
        std::thread::spawn(move || {
            let n = engine.unfinished(&Query::by_iot_id(&iot)).unwrap().len();
            tx.send(n).unwrap();
        })
    };
    let answered = rx.recv_timeout(Duration::from_secs(30));
    drop(held);
    assert!(
        answered.is_ok(),
        "a query of the new shard waited for a writer holding it"
    );
    reader.join().unwrap();
    assert_eq!(writer.join().unwrap(), Ok(UpsertOutcome::Replaced));
    let ids = |iot: &str| -> Vec<String> {
        let answer = engine.unfinished(&Query::by_iot_id(iot)).unwrap();
        answer.iter().map(|v| v.task_id().to_owned()).collect()
    };
    assert!(ids(&to.iot_id).contains(&moving.task_id));
    assert!(!ids(&moving.iot_id).contains(&moving.task_id));
    engine.internal_validate().unwrap();
}

/// A batch of status events writes the shards no reader holds while one is held, and
/// waits only for the held one: a writer that took its records in order (or its shards in
/// order) would wait at the first, held, shard with every other shard's record unwritten.
#[test]
fn a_batch_writes_free_shards_while_one_is_held() {
    use std::time::{Duration, Instant};
    let (engine, tasks) = four_shards_of_queued_tasks();
    let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
    // The held shard comes first by input and by index alike.
    let lowest = tasks.iter().map(shard).min().expect("tasks");
    let pick = |first: bool| {
        let t = tasks.iter().find(|t| (shard(t) == lowest) == first);
        t.expect("40 devices over 4 shards, not all in one").clone()
    };
    let (held, free) = (pick(true), pick(false));
    let answer = engine.unfinished(&Query::by_iot_id(&held.iot_id)).unwrap();
    // The held shard's record first.
    let events: Vec<TaskRecord> = [&held, &free]
        .map(|t| TaskRecord {
            status: TaskStatus::Succeeded,
            utc_modified: Timestamp::from_millis(t.utc_modified.as_millis() + 1),
            ..t.clone()
        })
        .into();
    let writer = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
            engine.write_batch(&refs)
        })
    };
    let unfinished = |t: &TaskRecord| {
        let query = Query::by_iot_id(&t.iot_id);
        let answer = engine.unfinished(&query).unwrap();
        let found = answer.iter().any(|v| v.task_id() == t.task_id);
        found
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while unfinished(&free) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let free_written = !unfinished(&free);
    let held_unwritten = unfinished(&held) && !writer.is_finished();
    drop(answer);
    let summary = writer.join().expect("writer");
    assert!(
        free_written,
        "the free shard's record waited for the held shard"
    );
    assert!(held_unwritten, "the writer passed a held answer");
    assert_eq!(
        summary,
        Ok(WriteSummary {
            replaced: 2,
            ..WriteSummary::default()
        })
    );
    assert!(
        !unfinished(&held),
        "the held shard's record went in once let go"
    );
    engine.internal_validate().unwrap();
}

/// A batch with more than a run (256) of events for a held shard, and events for the
/// others: the others go in first, the held shard's runs once it is let go, each
/// shard's events in input order (a task's later events win); the store is the one
/// upserting the events one by one leaves.
#[test]
fn a_batch_writes_a_held_shard_in_runs_once_let_go() {
    use std::time::{Duration, Instant};
    let [engine, one_by_one] = [0; 2].map(|_| Engine::with_shards(2));
    let fleet = crate::fleet::Fleet::new(300);
    let mut tasks: Vec<TaskRecord> = (0..300).flat_map(|d| fleet.device_tasks(d)).collect();
    for t in &mut tasks {
        t.status = TaskStatus::Queued;
    }
    for t in &tasks {
        engine.upsert(t).unwrap();
        one_by_one.upsert(t).unwrap();
    }
    let shard = |t: &TaskRecord| engine.shard_index(&t.iot_id);
    let held = shard(&tasks[0]);
    let (mine, other): (Vec<&TaskRecord>, Vec<&TaskRecord>) =
        tasks.iter().partition(|t| shard(t) == held);
    assert!(mine.len() > 2 * BY_SHARD_RUN / 3 && !other.is_empty());
    // Every task of the held shard three times (queued, in progress, then a replayed
    // older event), then one event of the other shard.
    let mut events = Vec::new();
    for (k, status) in [
        (1, TaskStatus::Queued),
        (2, TaskStatus::InProgress),
        (0, TaskStatus::Succeeded),
    ] {
        for t in &mine {
            events.push(TaskRecord {
                status,
                utc_modified: Timestamp::from_millis(t.utc_modified.as_millis() + k),
                ..(*t).clone()
            });
        }
    }
    assert!(events.len() > BY_SHARD_RUN);
    let free = TaskRecord {
        status: TaskStatus::Succeeded,
        utc_modified: Timestamp::from_millis(other[0].utc_modified.as_millis() + 1),
        ..other[0].clone()
    };
    events.push(free.clone());
    let answer = engine
        .unfinished(&Query::by_iot_id(&tasks[0].iot_id))
        .unwrap();
    let writer = {
        let (engine, events) = (engine.clone(), events.clone());
        std::thread::spawn(move || {
            let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
            engine.write_batch(&refs)
        })
    };
    // By a query: `get` takes the writer lock, which the waiting writer holds.
    let written = || {
        let answer = engine.unfinished(&Query::by_iot_id(&free.iot_id)).unwrap();
        let found = !answer.iter().any(|v| v.task_id() == free.task_id);
        found
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !written() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let free_first = written();
    drop(answer);
    let summary = writer
        .join()
        .expect("writer")
        .expect("events of stored tasks");
    assert!(
        free_first,
        "the free shard's event waited for the held shard"
    );
    let mut want = WriteSummary::default();
    for e in &events {
        want.count(one_by_one.upsert(e).unwrap());
    }
    assert_eq!(summary, want);
    assert_eq!(want.stale, mine.len());
    let sorted = |e: &Engine| {
        let mut t = e.tasks();
        t.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        t
    };
    assert_eq!(sorted(&engine), sorted(&one_by_one));
    engine.internal_validate().unwrap();
}

/// A query by name leaves the device's first unfinished row in its pair's entry, and
/// corrects an entry a write made stale; the hint's steps read it and change nothing.
#[test]
fn queries_by_name_keep_the_row_entry() {
    let engine = Engine::with_shards(4);
    let fleet = crate::fleet::Fleet::new(50);
    let mut tasks = fleet.device_tasks(7);
    for (i, t) in tasks.iter_mut().enumerate() {
        t.status = TaskStatus::Queued;
        t.utc_create = Timestamp::from_millis(10_000 + i as i64);
        engine.upsert(t).unwrap();
    }
    let (pk, dn) = (tasks[0].product_key.clone(), tasks[0].device_name.clone());
    let iot = tasks[0].iot_id.clone();
    // Found by `iotId`, which leaves the pair's entry alone.
    let first_row = || {
        let (guard, d) = engine
            .locate(InstanceId(0), DeviceRef::IotId(&iot), None)
            .unwrap();
        guard.first_unfinished(d).unwrap().0
    };
    assert_eq!(hint_of(&engine, &pk, &dn), PairShard::NO_HINT);
    let query = Query::by_name(&pk, &dn);
    assert_eq!(engine.unfinished(&query).unwrap().len(), tasks.len());
    let first = first_row();
    assert_eq!(hinted_row(&engine, &pk, &dn), first);
    let name = {
        let (guard, d) = engine
            .locate(InstanceId(0), DeviceRef::IotId(&iot), None)
            .unwrap();
        guard.device(d).name.0
    };
    assert_eq!(hint_of(&engine, &pk, &dn) >> 32, u64::from(name));
    // A task created earlier than the others becomes the device's first row.
    let mut earlier = tasks[0].clone();
    earlier.task_id = "earlier".into();
    earlier.utc_create = Timestamp::from_millis(1_000);
    engine.upsert(&earlier).unwrap();
    assert_ne!(first_row(), first, "a new first row");
    assert_eq!(
        hinted_row(&engine, &pk, &dn),
        first,
        "stale until a query by name"
    );
    let hint = engine.prefetch_device(
        "",
        DeviceRef::Name {
            product_key: &pk,
            device_name: &dn,
        },
    );
    engine.prefetch_device_record(hint.expect("no writer holds the lock"));
    let answer = engine.unfinished(&query).unwrap();
    assert_eq!(answer.iter().next().unwrap().task_id(), "earlier");
    drop(answer);
    assert_eq!(hinted_row(&engine, &pk, &dn), first_row());
    engine.internal_validate().unwrap();
}

/// Four shards a CPU, a power of two from 4 to 64, and what `Engine::new` uses.
#[test]
fn default_shards_follow_the_cpus() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = default_shards();
    assert!(n.is_power_of_two() && (4..=64).contains(&n), "{n}");
    assert!(
        n >= (4 * cpus).min(64) && (n == 4 || n / 2 < 4 * cpus),
        "{n} for {cpus}"
    );
    assert_eq!(Engine::new().shards(), n);
}

/// A one-shard engine over 30,000 devices moves its rows (3 MB) into a huge-page mapping of
/// its own when shrunk after the load; sixteen shards keep every column with the
/// allocator. Both answer every request of the mix with the same bytes, loaded, shrunk,
/// grown past the mapping by upserts, and shrunk again.
#[test]
#[cfg(feature = "rpc")]
fn mapped_columns_answer_as_allocated_ones() {
    use crate::rpc::{HttpRequest, Service};
    let fleet = crate::fleet::Fleet::new(30_000);
    let (mapped, allocated) = (Engine::with_shards(1), Engine::with_shards(16));
    let jsonl = fleet.to_jsonl();
    for engine in [&mapped, &allocated] {
        engine.load_jsonl(&jsonl).unwrap();
    }
    let columns = |e: &Engine| -> usize {
        e.inner
            .shards
            .iter()
            .map(|s| s.0.read().mapped_columns())
            .sum()
    };
    let queries = fleet.queries(4_000);
    let compare = |when: &str| {
        let (a, b) = (
            Service::new(mapped.clone()),
            Service::new(allocated.clone()),
        );
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for q in &queries {
            let request = HttpRequest {
                request_id: Some("mapped"),
                ..HttpRequest::get(q)
            };
            x.clear();
            y.clear();
            assert_eq!(a.answer(&request, &mut x), b.answer(&request, &mut y));
            assert_eq!(x, y, "{when}: {q}");
        }
        mapped.internal_validate().unwrap();
    };
    assert_eq!(
        columns(&mapped),
        0,
        "a load grows columns with the allocator"
    );
    compare("loaded");
    for engine in [&mapped, &allocated] {
        engine.shrink_to_fit();
    }
    assert!(columns(&mapped) >= 1, "the rows are mapped");
    assert_eq!(columns(&allocated), 0);
    compare("shrunk");
    // New tasks for every 10th device: the rows grow past their mapping's capacity.
    let rows_before = mapped.memory_usage().rows;
    for d in (0..fleet.device_count()).step_by(10) {
        for mut t in fleet.device_tasks(d) {
            t.task_id = format!("{}-more", t.task_id);
            t.status = TaskStatus::InProgress;
            mapped.upsert(&t).unwrap();
            allocated.upsert(&t).unwrap();
        }
    }
    assert!(mapped.memory_usage().rows > rows_before);
    assert!(
        columns(&mapped) >= 1,
        "a mapped column grows into a mapping"
    );
    compare("grown");
    for engine in [&mapped, &allocated] {
        engine.shrink_to_fit();
    }
    compare("shrunk again");
}

/// `json_strings` lists the fields in `JSON_STRING_ORDER`, for the default implementation
/// and for the engine's override (whose plain flags are all set for a plain record).
#[test]
fn json_strings_follow_the_declared_order() {
    let record = crate::fleet::Fleet::new(3).device_tasks(1)[0].clone();
    let value = |field: Field| match field {
        Field::DestVersion => record.dest_version.as_str(),
        Field::DeviceName => &record.device_name,
        Field::FirmwareId => &record.firmware_id,
        Field::IotId => &record.iot_id,
        Field::JobId => &record.job_id,
        Field::ModuleName => &record.module_name,
        Field::ProductKey => &record.product_key,
        Field::ProductName => &record.product_name,
        Field::SrcVersion => &record.src_version,
        Field::TaskId => &record.task_id,
        other => panic!("{other:?} is not a string field"),
    };
    let expected: Vec<&str> = JSON_STRING_ORDER.iter().map(|&f| value(f)).collect();
    let owned = record.json_strings();
    assert_eq!(owned.map(|(v, _)| v).to_vec(), expected);
    assert!(owned.iter().all(|&(_, plain)| !plain));

    let mut record = record.clone();
    record.status = TaskStatus::Queued; // unfinished, so the query returns it
    let engine = Engine::new();
    engine.upsert(&record).unwrap();
    let answer = engine
        .unfinished(&Query::by_iot_id(&record.iot_id))
        .unwrap();
    let view = answer.iter().next().expect("the task is unfinished");
    let stored = view.json_strings();
    assert_eq!(stored.map(|(v, _)| v).to_vec(), expected);
    assert!(stored.iter().all(|&(_, plain)| plain), "{stored:?}");
}

/// The engine's `plain_json` is `Some` exactly when `json_strings` flags all ten plain,
/// and then holds the same bytes, status and times: for every field in turn holding a
/// string that needs escaping, one too long for a one-byte header (64 bytes and more), one
/// just under, and multi-byte text.
#[test]
fn plain_json_is_json_strings_when_all_are_plain() {
    let base = crate::fleet::Fleet::new(3).device_tasks(1)[0].clone();
    let values = [
        "a\"b",
        "tab\there",
        &"x".repeat(63),
        &"y".repeat(64),
        "智能灯",
        "",
    ];
    let engine = Engine::new();
    let (mut n, mut some, mut none) = (0, 0, 0);
    for field in 0..10 {
        for value in values {
            let mut record = base.clone();
            record.status = TaskStatus::Queued;
            n += 1;
            record.task_id = format!("plain-{n}");
            record.iot_id = format!("device-{n}");
            record.device_name = format!("name-{n}");
            let slot = match field {
                0 => &mut record.dest_version,
                1 => &mut record.device_name,
                2 => &mut record.firmware_id,
                3 => &mut record.iot_id,
                4 => &mut record.job_id,
                5 => &mut record.module_name,
                6 => &mut record.product_key,
                7 => &mut record.product_name,
                8 => &mut record.src_version,
                _ => &mut record.task_id,
            };
            *slot = value.to_owned();
            if engine.upsert(&record).is_err() {
                continue; // a value the field's rules refuse (an empty id, a quote)
            }
            let answer = engine
                .unfinished(&Query::by_iot_id(&record.iot_id))
                .unwrap();
            let view = answer.iter().next().expect("the task is unfinished");
            let strings = view.json_strings();
            let all_plain = strings.iter().all(|&(_, plain)| plain);
            match view.plain_json() {
                Some(plain) => {
                    some += 1;
                    assert!(all_plain, "{field} {value:?}");
                    assert_eq!(plain.strings, strings.map(|(s, _)| s.as_bytes()));
                    assert_eq!(plain.status, record.status);
                    assert_eq!(plain.utc_create, record.utc_create);
                    assert_eq!(plain.utc_modified, record.utc_modified);
                }
                None => {
                    none += 1;
                    assert!(!all_plain, "{field} {value:?}: {strings:?}");
                }
            }
            let plain_expected = !value.contains(['"', '\\', '\t']) && value.len() < 64;
            assert_eq!(all_plain, plain_expected, "{field} {value:?}");
        }
    }
    assert!(some >= 10 && none >= 10, "{some} plain, {none} not");
}
