//! Readers and writers on several threads for a bounded time: no torn task, no answer that
//! mixes instances or devices, answers always in answer order, and a final state equal to
//! the writers' last writes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ota_index::fleet::SplitMix;
use ota_index::{Engine, Query, TaskFields, TaskRecord, TaskStatus, Timestamp};

const DEVICES: usize = 24;
const TASKS_PER_WRITER: usize = 40;
const WRITERS: usize = 2;
const INSTANCES: [&str; 2] = ["", "iot-b"];

fn iot(d: usize) -> String {
    format!("device-{d:03}")
}

/// Version `v` of task `t` of instance `i`: every field encodes `v` (or the instance), so a
/// reader can tell a torn task from a whole one.
fn version(i: usize, t: usize, v: u64) -> TaskRecord {
    let device = (t + v as usize / 7) % DEVICES; // tasks move between devices (and shards)
    let status = if v % 11 == 10 {
        TaskStatus::Succeeded
    } else {
        TaskStatus::ALL[(v % 4) as usize]
    };
    TaskRecord {
        task_id: format!("task-{t:04}"),
        job_id: format!("job-{i}-{}", v % 3),
        firmware_id: format!("fw-{v}"),
        iot_id: iot(device),
        product_key: format!("pk-{}", device % 3),
        product_name: format!("Product of instance {i}"),
        device_name: format!("name-{device:03}"),
        module_name: if v.is_multiple_of(2) {
            "ble".into()
        } else {
            "wifi".into()
        },
        src_version: format!("s{v}"),
        dest_version: format!("d{v}"),
        status,
        utc_create: Timestamp::from_millis(1_000 + (t as i64 % 5)),
        utc_modified: Timestamp::from_millis(10_000 + v as i64),
        iot_instance_id: INSTANCES[i].into(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

fn check_whole(task: &impl TaskFields, instance: usize, device: usize) -> Result<(), String> {
    let v: u64 = task
        .dest_version()
        .strip_prefix('d')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad dest {}", task.dest_version()))?;
    let t: usize = task.task_id()[5..]
        .parse()
        .map_err(|_| "bad task id".to_owned())?;
    let want = version(instance, t, v);
    let got = task.to_record();
    if got != want {
        return Err(format!(
            "torn or foreign task:\n got  {got:?}\n want {want:?}"
        ));
    }
    if got.iot_id != iot(device) {
        return Err(format!(
            "task of {} in the answer for {}",
            got.iot_id,
            iot(device)
        ));
    }
    if !got.status.is_unfinished() {
        return Err("finished task in an unfinished answer".into());
    }
    Ok(())
}

#[test]
fn readers_never_see_torn_or_foreign_tasks() {
    let engine = Engine::with_shards(8);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (engine, stop) = (engine.clone(), stop.clone());
        writers.push(thread::spawn(move || {
            // Last version written per (instance, task).
            let mut last: BTreeMap<(usize, usize), u64> = BTreeMap::new();
            let mut rng = SplitMix::new(w as u64);
            let mut v = 0u64;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                let t = w * TASKS_PER_WRITER + rng.below(TASKS_PER_WRITER as u64) as usize;
                let i = rng.below(2) as usize;
                if v.is_multiple_of(50) {
                    // A bulk load of several versions at once.
                    let mut jsonl = Vec::new();
                    for k in 0..5 {
                        let tk = w * TASKS_PER_WRITER + (t + k) % TASKS_PER_WRITER;
                        ota_index::fleet::write_record(&mut jsonl, &version(i, tk, v));
                        jsonl.push(b'\n');
                        last.insert((i, tk), v);
                    }
                    engine.load_jsonl(&jsonl).expect("bulk load");
                } else {
                    engine.upsert(&version(i, t, v)).expect("upsert");
                    last.insert((i, t), v);
                }
            }
            last
        }));
    }
    let mut readers = Vec::new();
    for r in 0..2 {
        let (engine, stop, reads) = (engine.clone(), stop.clone(), reads.clone());
        readers.push(thread::spawn(move || -> Result<(), String> {
            let mut rng = SplitMix::new(100 + r);
            while !stop.load(Ordering::Relaxed) {
                let d = rng.below(DEVICES as u64) as usize;
                let i = rng.below(2) as usize;
                let id = iot(d);
                let (pk, name) = (format!("pk-{}", d % 3), format!("name-{d:03}"));
                let query = if rng.percent(50) {
                    Query::by_iot_id(&id)
                } else {
                    Query::by_name(&pk, &name)
                };
                let query = query.instance(INSTANCES[i]);
                let answer = match engine.unfinished(&query) {
                    Ok(a) => a,
                    // The second instance exists once a writer named it.
                    Err(ota_index::QueryError::InstanceNotFound(_)) if i == 1 => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let mut previous: Option<(Timestamp, String)> = None;
                for task in answer.iter() {
                    check_whole(&task, i, d)?;
                    let key = (task.utc_create(), task.task_id().to_owned());
                    if previous.as_ref().is_some_and(|p| *p >= key) {
                        return Err("answer out of order".into());
                    }
                    previous = Some(key);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let mut expected: BTreeMap<(String, String), TaskRecord> = BTreeMap::new();
    for w in writers {
        for ((i, t), v) in w.join().expect("writer thread") {
            let rec = version(i, t, v);
            expected.insert((rec.iot_instance_id.clone(), rec.task_id.clone()), rec);
        }
    }
    for r in readers {
        r.join()
            .expect("reader thread")
            .expect("a reader saw a bad answer");
    }
    assert!(reads.load(Ordering::Relaxed) > 100, "readers made progress");
    engine.internal_validate().unwrap();
    let mut got = engine.tasks();
    got.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    let want: Vec<TaskRecord> = expected.into_values().collect();
    assert_eq!(got, want, "final state differs from the last writes");
}

#[test]
fn engine_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<ota_index::rpc::Service>();
}

/// One shard holding devices 0 and 1 (`version(0, t, 0)` puts task `t` on device `t`).
fn one_shard_of_two_devices() -> Engine {
    let engine = Engine::with_shards(1);
    for d in 0..2 {
        engine.upsert(&version(0, d, 0)).expect("seed");
    }
    engine
}

/// A writer finishing device 1's task, left time to reach the shard's lock and wait there:
/// the caller holds an answer of that shard, which the writer cannot pass.
fn writer_waiting_for_the_shard(
    engine: &Engine,
) -> thread::JoinHandle<Result<ota_index::UpsertOutcome, ota_index::WriteError>> {
    let writer = {
        let engine = engine.clone();
        thread::spawn(move || {
            let mut next = version(0, 1, 0);
            next.status = TaskStatus::Succeeded;
            next.utc_modified = Timestamp::from_millis(99_999);
            engine.upsert(&next)
        })
    };
    thread::sleep(Duration::from_millis(200));
    assert!(!writer.is_finished(), "the writer passed a held answer");
    writer
}

/// A query enters a shard that another answer holds even while a writer waits for that
/// shard (the engine's readers do not queue behind a waiting writer): otherwise the holder,
/// the writer and the second reader would wait for one another for as long as the answer is
/// held. Device queries by `iotId` and by name alike; one shard, so every device shares it.
#[test]
fn queries_pass_a_writer_waiting_for_a_held_answer() {
    use std::sync::mpsc;
    let engine = one_shard_of_two_devices();
    let (first, second) = (iot(0), iot(1));
    let held = engine.unfinished(&Query::by_iot_id(&first)).expect("query");
    assert_eq!(held.len(), 1);
    let writer = writer_waiting_for_the_shard(&engine);
    let (tx, rx) = mpsc::channel();
    let reader = {
        let engine = engine.clone();
        thread::spawn(move || {
            let by_iot = engine
                .unfinished(&Query::by_iot_id(&iot(1)))
                .expect("query")
                .len();
            let by_name = engine
                .unfinished(&Query::by_name("pk-1", "name-001"))
                .expect("query")
                .len();
            tx.send((by_iot, by_name)).expect("send");
        })
    };
    let answered = rx.recv_timeout(Duration::from_secs(30));
    drop(held); // lets the writer, and a reader stuck behind it, go on
    assert_eq!(
        answered,
        Ok((1, 1)),
        "a reader queued behind a writer that waits for a held answer (or saw its write early)"
    );
    reader.join().expect("reader");
    assert!(writer.join().expect("writer").is_ok());
    let after = engine
        .unfinished(&Query::by_iot_id(&second))
        .expect("query");
    assert!(
        after.is_empty(),
        "the write applied once the answer was let go"
    );
}

/// The same through the RPC face: the service's usual request keeps its hint's shard lock
/// for its query, and must take it past a writer waiting for a shard another answer holds
/// (a hint that waited for the lock, or queued behind the writer, would hang here).
#[test]
fn service_queries_pass_a_writer_waiting_for_a_held_answer() {
    use ota_index::rpc::{HttpRequest, Service};
    use std::sync::mpsc;
    let engine = one_shard_of_two_devices();
    let first = iot(0);
    let held = engine.unfinished(&Query::by_iot_id(&first)).expect("query");
    let writer = writer_waiting_for_the_shard(&engine);
    let (tx, rx) = mpsc::channel();
    let reader = {
        let service = Service::new(engine.clone());
        thread::spawn(move || {
            let mut body = Vec::new();
            let request = format!("Action=ListOTAUnfinishedTaskByDevice&IotId={}", iot(1));
            let request = HttpRequest::get(&request);
            let status = service.answer(&request, &mut body);
            tx.send((status, String::from_utf8(body).expect("utf-8")))
                .expect("send");
        })
    };
    let answered = rx.recv_timeout(Duration::from_secs(30));
    drop(held);
    let (status, body) = answered.expect("the service's query waited behind the writer");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"taskId\":\"task-0001\""), "{body}");
    reader.join().expect("reader");
    assert!(writer.join().expect("writer").is_ok());
}
