//! Arbitrary bytes as a JSON Lines bulk load into an engine holding the reference's examples.
//!
//! Checked: never a panic; a refused load leaves every task as it was (all or nothing) and
//! names a line of the input (or 0, for the whole input) with a message; an accepted load
//! read every non-blank line and added exactly `inserted` tasks; `internal_validate()` holds
//! either way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_index::{Engine, TaskRecord};

const TASKS: &[u8] = include_bytes!("../../tests/data/contract/tasks.jsonl");

fn sorted(mut tasks: Vec<TaskRecord>) -> Vec<TaskRecord> {
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

fuzz_target!(|data: &[u8]| {
    let engine = Engine::with_shards(4);
    engine
        .load_jsonl(TASKS)
        .expect("the contract examples load");
    let before = sorted(engine.tasks());

    let lines = data.split(|&b| b == b'\n').count();
    // A byte-order mark before the first line is skipped by the loader.
    let body = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let non_blank = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    match engine.load_jsonl(data) {
        Ok(report) => {
            assert_eq!(report.records, non_blank, "records read");
            let s = report.summary;
            assert_eq!(
                s.inserted + s.replaced + s.unchanged + s.stale + s.removals,
                non_blank,
                "{s:?}"
            );
            assert_eq!(engine.len(), before.len() + s.inserted, "{s:?}");
        }
        Err(error) => {
            assert!(error.line <= lines, "error line {} of {lines}", error.line);
            assert!(!error.to_string().is_empty());
            let after = sorted(engine.tasks());
            assert!(after == before, "a refused load changed the store: {error}");
        }
    }
    if let Err(broken) = engine.internal_validate() {
        panic!("invariant broken: {broken}");
    }
});
