//! Inputs the fuzz targets (`fuzz/`) once failed on, minimised, replayed through the public
//! API. Each input is a file under `tests/data/fuzz/`, also a seed of its target
//! (`fuzz/seeds/<target>/regression-*`), so that the fuzzer re-checks it on every run.

use ota_index::{Engine, TaskRecord, WriteSummary};

const EXAMPLES: &[u8] = include_bytes!("data/contract/tasks.jsonl");

fn sorted(mut tasks: Vec<TaskRecord>) -> Vec<TaskRecord> {
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

fn validate(engine: &Engine) {
    if let Err(broken) = engine.internal_validate() {
        panic!("invariant broken: {broken}");
    }
}

/// `engine_ops`: a bulk load must accept what the same records upserted one by one accept.
///
/// Record 2 reuses task `t1` with an older `utcModified`, so it is stale: dropped, and it
/// binds nothing (as an upsert it creates no device). Record 3 binds the pair
/// (`pk1`, `dev_a`) that record 2 would have bound to `dev-a`. One by one, all three are
/// accepted (2 inserted, 1 stale); the bulk load must agree rather than report record 3 as an
/// identity conflict with a binding no record made.
#[test]
fn bulk_load_agrees_with_upserts_when_a_stale_record_names_a_new_identity() {
    let input = include_bytes!("data/fuzz/batch_stale_record_binds.jsonl");

    let one_by_one = Engine::new();
    let mut summary = WriteSummary::default();
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let report = one_by_one
            .load_jsonl(line)
            .expect("each record alone is accepted");
        summary.inserted += report.summary.inserted;
        summary.replaced += report.summary.replaced;
        summary.stale += report.summary.stale;
    }
    assert_eq!(
        summary,
        WriteSummary {
            inserted: 2,
            replaced: 0,
            stale: 1
        }
    );

    let bulk = Engine::new();
    let report = bulk
        .load_jsonl(input)
        .expect("the bulk load accepts what the upserts accepted");
    assert_eq!(report.summary, summary);
    assert_eq!(sorted(bulk.tasks()), sorted(one_by_one.tasks()));
    assert_eq!(bulk.device_count(), one_by_one.device_count());
    validate(&bulk);
}

/// `ingest_jsonl`: a bulk load into a store holding the reference's examples must leave every
/// invariant intact (it once left a shard with a free task-key entry but no free row).
#[test]
fn bulk_load_after_the_examples_keeps_the_store_consistent() {
    let input = include_bytes!("data/fuzz/ingest_free_key_entries.jsonl");
    let engine = Engine::with_shards(4);
    engine.load_jsonl(EXAMPLES).expect("the examples load");
    validate(&engine);
    let before = sorted(engine.tasks());
    match engine.load_jsonl(input) {
        Ok(report) => assert_eq!(engine.len(), before.len() + report.summary.inserted),
        Err(error) => assert_eq!(
            sorted(engine.tasks()),
            before,
            "refused load changed the store: {error}"
        ),
    }
    validate(&engine);
}

/// `ingest_jsonl` once stopped on an input holding only a byte-order mark: the loader skips a
/// BOM before the first line, so it is an empty load, and the store is unchanged.
#[test]
fn a_lone_byte_order_mark_is_an_empty_load() {
    let input = include_bytes!("data/fuzz/ingest_bom_only.jsonl");
    let engine = Engine::new();
    engine.load_jsonl(EXAMPLES).unwrap();
    let before = sorted(engine.tasks());
    let report = engine.load_jsonl(input).expect("an empty load");
    assert_eq!(report.records, 0);
    assert_eq!(sorted(engine.tasks()), before);
    validate(&engine);
}
