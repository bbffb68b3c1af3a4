//! Inputs the fuzz targets (`fuzz/`) once failed on, minimised, replayed through the public
//! API. Each input is a file under `tests/data/fuzz/`, also a seed of its target
//! (`fuzz/seeds/<target>/regression-*`), so that the fuzzer re-checks it on every run.

use ota_index::{Engine, LoadErrorKind, TaskRecord, WriteError, WriteSummary};

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

/// `engine_ops`: a bulk load must refuse what the same records upserted one by one refuse,
/// at the same record.
///
/// Record 2 reuses task `t1` with an older `utcModified`, so it is stale: dropped, but it
/// binds `dev-a` to (`pk1`, `dev_a`) all the same (a binding is a fact about the device).
/// Record 3 binds that pair to `dev-d`: an identity conflict, one by one and in the load
/// alike, whichever record the load checks first.
#[test]
fn bulk_load_agrees_with_upserts_when_a_stale_record_binds_an_identity() {
    let input = include_bytes!("data/fuzz/batch_stale_record_binds.jsonl");

    let one_by_one = Engine::new();
    let mut summary = WriteSummary::default();
    let mut refused = None;
    for (i, line) in input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        match one_by_one.load_jsonl(line) {
            Ok(report) => {
                summary.inserted += report.summary.inserted;
                summary.stale += report.summary.stale;
            }
            Err(e) => {
                refused = Some((i + 1, e.kind));
                break;
            }
        }
    }
    assert_eq!(
        summary,
        WriteSummary {
            inserted: 1,
            stale: 1,
            ..WriteSummary::default()
        }
    );
    let (line, kind) = refused.expect("record 3 contradicts record 2's binding");
    assert_eq!(line, 3);
    assert!(matches!(
        kind,
        LoadErrorKind::Write(WriteError::IdentityConflict { .. })
    ));

    let bulk = Engine::new();
    let error = bulk.load_jsonl(input).expect_err("the same conflict");
    assert_eq!(error.line, 3, "{error}");
    assert_eq!(error.kind, kind);
    assert!(bulk.is_empty());
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
