//! The dump (`Engine::dump_jsonl`, `query --dump`): every stored task as JSON Lines, which
//! loads into an empty engine as the same store.

use ota_index::fleet::Fleet;
use ota_index::{Engine, Query, StatusSet, TaskFields, TaskRecord};

const EXAMPLES: &[u8] = include_bytes!("data/contract/tasks.jsonl");

fn sorted(mut tasks: Vec<TaskRecord>) -> Vec<TaskRecord> {
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

/// Every unfinished answer of every device of `engine`'s tasks, by id and by name.
fn answers(engine: &Engine) -> Vec<Vec<TaskRecord>> {
    let mut out = Vec::new();
    for task in sorted(engine.tasks()) {
        let inst = task.iot_instance_id.as_str();
        for query in [
            Query::by_iot_id(&task.iot_id).instance(inst),
            Query::by_name(&task.product_key, &task.device_name)
                .instance(inst)
                .statuses(StatusSet::UNFINISHED),
        ] {
            let answer = engine.unfinished(&query).unwrap();
            out.push(answer.iter().map(|t| t.to_record()).collect());
        }
    }
    out
}

#[test]
fn a_dump_loads_into_the_same_store() {
    let engine = Engine::with_shards(4);
    engine.load_jsonl(&Fleet::new(3_000).to_jsonl()).unwrap();
    // Instances, escapes, non-ASCII text and a stale record, over the fleet.
    engine.load_jsonl(EXAMPLES).unwrap();
    // Rows freed and reused: the walk skips free rows (tasks of the fleet's default instance
    // only: an instance left with no task is not in a dump).
    let some: Vec<TaskRecord> = sorted(engine.tasks())
        .into_iter()
        .filter(|t| t.iot_instance_id.is_empty())
        .step_by(7)
        .collect();
    for task in &some {
        assert!(engine.remove(&task.iot_instance_id, &task.task_id).unwrap());
    }
    let mut dump = Vec::new();
    let report = engine.dump_jsonl(&mut dump).unwrap();
    assert_eq!(report.records, engine.len());
    assert_eq!(report.bytes, dump.len());
    assert_eq!(dump.iter().filter(|&&b| b == b'\n').count(), engine.len());
    let copy = Engine::with_shards(2);
    let loaded = copy.load_jsonl(&dump).unwrap();
    assert_eq!(loaded.summary.inserted, engine.len());
    assert_eq!(sorted(copy.tasks()), sorted(engine.tasks()));
    assert_eq!(copy.instances(), engine.instances());
    assert_eq!(answers(&copy), answers(&engine));
    // The optional fields come through.
    assert!(copy.tasks().iter().any(|t| t.progress.is_some()));
    assert!(copy.tasks().iter().any(|t| t.task_desc.is_some()));
    assert!(copy.tasks().iter().any(|t| t.timeout.is_some()));
    copy.internal_validate().unwrap();
    // A dump of the copy is the same lines (in another order: other shards).
    let mut again = Vec::new();
    copy.dump_jsonl(&mut again).unwrap();
    let lines = |d: &[u8]| {
        let mut l: Vec<Vec<u8>> = d.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        l.sort();
        l
    };
    assert_eq!(lines(&again), lines(&dump));
}

#[test]
fn an_empty_store_dumps_nothing() {
    let mut dump = Vec::new();
    let report = Engine::new().dump_jsonl(&mut dump).unwrap();
    assert_eq!((report.records, report.bytes), (0, 0));
    assert!(dump.is_empty());
}

/// A writer that fails: the dump says so instead of claiming success.
#[test]
fn a_failing_writer_is_an_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let engine = Engine::new();
    engine.load_jsonl(EXAMPLES).unwrap();
    let error = engine.dump_jsonl(Broken).unwrap_err();
    assert_eq!(error.to_string(), "disk full");
}
