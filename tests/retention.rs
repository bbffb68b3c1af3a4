//! Retention (reference section 2): the store's clock, records past the horizon stale on
//! arrival, finished tasks and tombstones forgotten and their memory reused.

use std::time::Duration;

use ota_index::{
    Engine, Query, Removal, TaskRecord, TaskStatus, Timestamp, UpsertOutcome, WriteError,
};

/// The horizon of these tests: one second.
const H: Duration = Duration::from_millis(1_000);

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_730_000_000_000 + ms)
}

fn task(id: &str, iot: &str, status: TaskStatus, modified: i64) -> TaskRecord {
    TaskRecord {
        task_id: id.into(),
        job_id: "j1".into(),
        firmware_id: "f1".into(),
        iot_id: iot.into(),
        product_key: "pk1".into(),
        product_name: "Lamp".into(),
        device_name: format!("name-{iot}"),
        module_name: "default".into(),
        src_version: "1.0".into(),
        dest_version: "2.0".into(),
        status,
        utc_create: t(0),
        utc_modified: t(modified),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

fn retained() -> Engine {
    Engine::builder().shards(4).retention(H).build()
}

fn sorted(engine: &Engine) -> Vec<TaskRecord> {
    let mut tasks = engine.tasks();
    tasks.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    tasks
}

fn dumped(engine: &Engine) -> String {
    let mut out = Vec::new();
    engine.dump_jsonl(&mut out).unwrap();
    let mut lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

#[test]
fn the_clock_is_the_newest_utc_modified_accepted() {
    let engine = retained();
    assert_eq!(engine.retention(), Some(H));
    assert_eq!(engine.clock(), None);
    engine
        .upsert(&task("t1", "d1", TaskStatus::Queued, 5_000))
        .unwrap();
    assert_eq!(engine.clock(), Some(t(5_000)));
    // An older record, accepted, leaves the clock where it is.
    engine
        .upsert(&task("t2", "d2", TaskStatus::Queued, 4_500))
        .unwrap();
    assert_eq!(engine.clock(), Some(t(5_000)));
    // A stale one too.
    let stale = engine.upsert(&task("t1", "d1", TaskStatus::Queued, 4_900));
    assert!(
        matches!(stale, Ok(UpsertOutcome::Stale { .. })),
        "{stale:?}"
    );
    assert_eq!(engine.clock(), Some(t(5_000)));
    // A removal moves it.
    engine.remove_task("", "t9", t(6_000)).unwrap();
    assert_eq!(engine.clock(), Some(t(6_000)));
    // A refused record does not.
    let mut bad = task("t3", "d3", TaskStatus::Queued, 9_000);
    bad.job_id.clear();
    assert!(engine.upsert(&bad).is_err());
    assert_eq!(engine.clock(), Some(t(6_000)));
    // An engine without a horizon keeps no clock.
    let keeps_all = Engine::new();
    keeps_all
        .upsert(&task("t1", "d1", TaskStatus::Queued, 5_000))
        .unwrap();
    assert_eq!((keeps_all.retention(), keeps_all.clock()), (None, None));
}

#[test]
fn a_record_past_the_horizon_is_stale_on_arrival_and_binds_nothing() {
    let engine = retained();
    engine
        .upsert(&task("t1", "d1", TaskStatus::Queued, 10_000))
        .unwrap();
    // clock − H = 9,000: a record of 8,999 is stale, even for a task never seen, and its
    // device is not bound.
    let old = task("t2", "d2", TaskStatus::Queued, 8_999);
    assert_eq!(
        engine.upsert(&old),
        Ok(UpsertOutcome::Stale { stored: t(9_000) })
    );
    assert_eq!(engine.get("", "t2"), None);
    assert_eq!(engine.device_count(), 1);
    assert!(engine
        .unfinished(&Query::by_iot_id("d2"))
        .unwrap()
        .is_empty());
    // The record at the cutoff itself is within the horizon.
    let edge = task("t2", "d2", TaskStatus::Queued, 9_000);
    assert_eq!(engine.upsert(&edge), Ok(UpsertOutcome::Inserted));
    // A record past the horizon still has its fields checked, and a bad one changes
    // nothing.
    let mut bad = task("t3", "d3", TaskStatus::Queued, 1);
    bad.dest_version.clear();
    assert!(matches!(
        engine.upsert(&bad),
        Err(WriteError::InvalidField(_))
    ));
    // And one that would contradict a binding is stale, not refused: stale comes first.
    let mut conflicting = task("t4", "d1", TaskStatus::Queued, 1);
    conflicting.device_name = "another-name".into();
    assert!(matches!(
        engine.upsert(&conflicting),
        Ok(UpsertOutcome::Stale { .. })
    ));
    assert_eq!(engine.len(), 2);
}

#[test]
fn finished_tasks_past_the_horizon_are_forgotten_and_unfinished_ones_kept() {
    let engine = retained();
    engine
        .upsert(&task("done", "d1", TaskStatus::Succeeded, 1_000))
        .unwrap();
    engine
        .upsert(&task("open", "d1", TaskStatus::InProgress, 1_000))
        .unwrap();
    engine
        .upsert(&task("late", "d2", TaskStatus::Failed, 2_500))
        .unwrap();
    assert_eq!(engine.len(), 3);
    // The clock moves to 3,000: the cutoff is 2,000.
    engine
        .upsert(&task("new", "d3", TaskStatus::Queued, 3_000))
        .unwrap();
    // Reads skip the forgotten task at once, before its row is freed.
    assert_eq!(engine.get("", "done"), None);
    let names: Vec<String> = sorted(&engine).into_iter().map(|t| t.task_id).collect();
    assert_eq!(names, ["late", "new", "open"]);
    assert!(!dumped(&engine).contains("\"done\""));
    engine.forget_expired();
    assert_eq!(engine.len(), 3);
    // The unfinished task stays, answered as before.
    let answer = engine.unfinished(&Query::by_iot_id("d1")).unwrap();
    let open: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
    assert_eq!(open, ["open"]);
    drop(answer);
    // A new record of the forgotten task adds it again.
    let again = task("done", "d1", TaskStatus::Queued, 3_000);
    assert_eq!(engine.upsert(&again), Ok(UpsertOutcome::Inserted));
    // The device keeps its binding.
    let mut rebound = task("x", "d1", TaskStatus::Queued, 3_000);
    rebound.device_name = "other".into();
    assert!(matches!(
        engine.upsert(&rebound),
        Err(WriteError::IdentityConflict { .. })
    ));
}

#[test]
fn a_forgotten_task_not_yet_freed_is_gone_for_writes_too() {
    let engine = retained();
    engine
        .upsert(&task("done", "d1", TaskStatus::Canceled, 1_000))
        .unwrap();
    engine
        .upsert(&task("new", "d2", TaskStatus::Queued, 3_000))
        .unwrap();
    // Too few writes for the sweep to have run: the row is still held.
    assert_eq!(engine.len(), 2);
    // Its removal deletes nothing that was not forgotten already.
    assert_eq!(
        engine.remove_task("", "done", t(3_000)),
        Ok(Removal::default())
    );
    assert_eq!(engine.len(), 1);
    engine
        .upsert(&task("done2", "d3", TaskStatus::Failed, 1_000))
        .unwrap_err_or_stale();
    let engine = retained();
    engine
        .upsert(&task("done", "d1", TaskStatus::Canceled, 1_000))
        .unwrap();
    engine
        .upsert(&task("new", "d2", TaskStatus::Queued, 3_000))
        .unwrap();
    let removal = engine.remove_device("", "d1", t(3_000)).unwrap();
    assert_eq!(removal.tasks, 0);
    assert!(removal.unbound);
    assert_eq!(engine.len(), 1);
}

/// A record's outcome, for records that may only be stale.
trait StaleOnly {
    fn unwrap_err_or_stale(self);
}

impl StaleOnly for Result<UpsertOutcome, WriteError> {
    fn unwrap_err_or_stale(self) {
        assert!(matches!(self, Ok(UpsertOutcome::Stale { .. })), "{self:?}");
    }
}

#[test]
fn tombstones_past_the_horizon_are_forgotten() {
    let engine = retained();
    engine
        .upsert(&task("t1", "d1", TaskStatus::Queued, 1_000))
        .unwrap();
    engine.remove_task("", "t1", t(1_500)).unwrap();
    engine.remove_device("", "d9", t(1_500)).unwrap();
    let held = engine.memory_usage().tombstones;
    assert!(held > 0);
    assert!(dumped(&engine).contains("removeTask"));
    // The clock passes the tombstones by more than the horizon.
    engine
        .upsert(&task("t2", "d2", TaskStatus::Queued, 3_000))
        .unwrap();
    let dump = dumped(&engine);
    assert!(
        !dump.contains("removeTask") && !dump.contains("removeDevice"),
        "{dump}"
    );
    engine.forget_expired();
    assert_eq!(engine.memory_usage().tombstones, 0);
    // What they covered is past the horizon: stale all the same.
    engine
        .upsert(&task("t1", "d1", TaskStatus::Queued, 1_400))
        .unwrap_err_or_stale();
    assert_eq!(engine.get("", "t1"), None);
}

#[test]
fn a_batch_judges_each_record_against_the_clock_the_records_before_it_leave() {
    // New, then old: the old record is past the horizon when it comes.
    let engine = retained();
    let new = task("new", "d1", TaskStatus::Queued, 10_000);
    let old = task("old", "d2", TaskStatus::Queued, 1_000);
    let summary = engine.write_batch(&[new.as_ref(), old.as_ref()]).unwrap();
    assert_eq!((summary.inserted, summary.stale), (1, 1));
    assert_eq!(engine.get("", "old"), None);
    assert_eq!(engine.device_count(), 1);
    // Old, then new: the old record is accepted, and stays while unfinished.
    let engine = retained();
    let summary = engine.write_batch(&[old.as_ref(), new.as_ref()]).unwrap();
    assert_eq!((summary.inserted, summary.stale), (2, 0));
    assert!(engine.get("", "old").is_some());
    // A finished one is forgotten as soon as the newer record moves the clock.
    let engine = retained();
    let done = task("old", "d2", TaskStatus::Succeeded, 1_000);
    engine.write_batch(&[done.as_ref(), new.as_ref()]).unwrap();
    assert_eq!(engine.get("", "old"), None);
    // The same as JSON Lines.
    let engine = retained();
    let lines = format!("{}\n{}\n", jsonl(&new), jsonl(&old));
    let report = engine.load_jsonl(lines.as_bytes()).unwrap();
    assert_eq!((report.summary.inserted, report.summary.stale), (1, 1));
    assert_eq!(engine.clock(), Some(t(10_000)));
}

#[test]
fn a_bad_record_past_the_horizon_refuses_its_batch() {
    let engine = retained();
    engine
        .upsert(&task("t0", "d0", TaskStatus::Queued, 10_000))
        .unwrap();
    let before = sorted(&engine);
    let fine = task("t1", "d1", TaskStatus::Queued, 10_000);
    let mut bad = task("t2", "d2", TaskStatus::Queued, 1);
    bad.firmware_id.clear();
    let error = engine
        .write_batch(&[fine.as_ref(), bad.as_ref()])
        .unwrap_err();
    assert_eq!(error.0, 1);
    assert!(matches!(error.1, WriteError::InvalidField(_)));
    assert_eq!(sorted(&engine), before);
    // An identity conflict before it is reported first, as one by one would meet it.
    let mut conflict = task("t3", "d0", TaskStatus::Queued, 10_000);
    conflict.device_name = "not-d0".into();
    let error = engine
        .write_batch(&[conflict.as_ref(), bad.as_ref()])
        .unwrap_err();
    assert_eq!(error.0, 0);
    assert!(matches!(error.1, WriteError::IdentityConflict { .. }));
    assert_eq!(sorted(&engine), before);
}

/// The record as one JSON Lines line.
fn jsonl(task: &TaskRecord) -> String {
    let mut out = Vec::new();
    ota_index::fleet::write_record(&mut out, task);
    String::from_utf8(out).unwrap()
}

#[test]
fn a_replay_and_a_dump_end_in_the_same_store() {
    let events = steady_events(20_000, 300);
    let one = retained();
    let two = retained();
    for e in &events {
        one.upsert(e).unwrap();
    }
    let refs: Vec<_> = events.iter().map(TaskRecord::as_ref).collect();
    for chunk in refs.chunks(97) {
        two.write_batch(chunk).unwrap();
    }
    assert_eq!(sorted(&one), sorted(&two));
    assert_eq!(one.clock(), two.clock());
    let mut dump = Vec::new();
    one.dump_jsonl(&mut dump).unwrap();
    let three = retained();
    three.load_jsonl(&dump).unwrap();
    assert_eq!(sorted(&three), sorted(&one));
    assert_eq!(three.clock(), one.clock());
}

/// `n` status events over a steady population: task `k` of the `live` in flight goes
/// through QUEUED, IN_PROGRESS and SUCCEEDED, one event a millisecond, and is followed by a
/// new task; so about `live` tasks are unfinished at any time, and the finished ones pile
/// up without a horizon.
fn steady_events(n: usize, live: usize) -> Vec<TaskRecord> {
    const STEPS: [TaskStatus; 3] = [
        TaskStatus::Queued,
        TaskStatus::InProgress,
        TaskStatus::Succeeded,
    ];
    (0..n)
        .map(|i| {
            let slot = i % live;
            let round = i / live;
            let generation = round / STEPS.len();
            let id = format!("task-{slot}-{generation}");
            let device = format!("dev-{slot}");
            task(&id, &device, STEPS[round % STEPS.len()], i as i64)
        })
        .collect()
}

#[test]
fn a_steady_population_stays_bounded_in_memory() {
    let live = 1_000;
    let events = steady_events(300_000, live);
    // The horizon spans 1,000 events: the tasks within it are the 1,000 in flight and the
    // ~333 finished in its span.
    let engine = retained();
    let unbounded = Engine::builder().shards(4).build();
    let mut peak_rows = 0;
    let mut peak_bytes = Vec::new();
    for (i, chunk) in events.chunks(1_000).enumerate() {
        for e in chunk {
            engine.upsert(e).unwrap();
        }
        let refs: Vec<_> = chunk.iter().map(TaskRecord::as_ref).collect();
        unbounded.write_batch(&refs).unwrap();
        peak_rows = peak_rows.max(engine.len());
        if i % 50 == 49 {
            peak_bytes.push(engine.memory_usage().total());
        }
    }
    assert_eq!(engine.internal_validate(), Ok(()));
    // In flight, finished within the horizon, and what the sweep has yet to free (at most
    // a third more): 1,333 × 4 / 3.
    assert!(peak_rows <= 1_800, "{peak_rows} rows held at the peak");
    let listed = engine.tasks().len();
    assert!((1_000..=2_000).contains(&listed), "{listed} tasks listed");
    // The memory held does not grow with the events fed.
    let (first, last) = (peak_bytes[0], *peak_bytes.last().unwrap());
    assert!(last <= first + first / 10, "{peak_bytes:?}");
    // Without a horizon every finished task stays.
    assert_eq!(unbounded.len(), 100_000);
    assert!(unbounded.memory_usage().total() > 10 * last);
}
