//! Group `ingest`: bulk load of the fleet's JSON Lines into an empty store
//! (`load/<impl>`, throughput in tasks), and single upserts of existing tasks, each a status
//! change with a newer `utcModified` than any before (`upsert/<impl>`, throughput in
//! upserts), for ota-index and naive-hashmap; and the same changes a hundred at a time with
//! `Engine::write_batch`, as a stream consumer applies them (`upsert-batch-100/ota-index`,
//! throughput in upserts).
//!
//! ```text
//! OTA_BENCH_DEVICES=100000 cargo bench --bench ingest -- --sample-size 10
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ota_index::fleet::Fleet;
use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, UpsertOutcome};

mod common;
use common::{
    build_engine, device_counts, selected, timed, NaiveOutcome, NaiveStore, NaiveTask, NAIVE,
    OTA_INDEX,
};

/// Changes a `upsert-batch-<n>/ota-index` iteration applies with one `write_batch`.
const EVENT_BATCH: u64 = 100;

/// Existing tasks the upsert benchmarks cycle through.
const UPSERT_POOL: u64 = 100_000;

/// 2030-01-01T00:00:00Z: later than every `utcModified` of the fleet, so each upsert replaces.
const FUTURE_MS: i64 = 1_893_456_000_000;

/// Tasks of devices spread evenly over the fleet (deterministic), at most [`UPSERT_POOL`].
fn upsert_pool(fleet: &Fleet) -> Vec<TaskRecord> {
    let devices = fleet.device_count();
    let step = (devices / UPSERT_POOL).max(1);
    let mut pool: Vec<TaskRecord> = (0..devices)
        .step_by(step as usize)
        .flat_map(|i| fleet.device_tasks(i))
        .collect();
    pool.truncate(UPSERT_POOL as usize);
    pool
}

/// Gives record `pool[k % len]` its `k`-th change: the next status and a `utcModified` one
/// millisecond later than the change before.
fn next_change(pool: &mut [TaskRecord], k: u64) -> &TaskRecord {
    let len = pool.len() as u64;
    let record = &mut pool[(k % len) as usize];
    record.status = TaskStatus::ALL[((k / len) % 7) as usize];
    record.utc_modified = Timestamp::from_millis(FUTURE_MS + k as i64);
    record
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    for devices in device_counts() {
        let fleet = Fleet::new(devices);
        let tasks = fleet.tasks().count() as u64;

        // Bulk loads: every iteration loads the whole fleet into an empty store; the store is
        // dropped outside the timed span. `load-spread`: the same devices and task counts in
        // the shape that shares nothing (`Fleet::spread`).
        group.sampling_mode(SamplingMode::Flat);
        for (name, fleet) in [("load", fleet), ("load-spread", fleet.spread())] {
            let jsonl = timed(&format!("{name} JSON Lines, {devices} devices"), || {
                fleet.to_jsonl()
            });
            eprintln!("[bench] {} bytes of JSON Lines, {tasks} tasks", jsonl.len());
            group.throughput(Throughput::Elements(tasks));
            if selected(OTA_INDEX) {
                let check = Engine::new();
                let report = check.load_jsonl(&jsonl).expect("the fleet loads");
                assert_eq!(check.len() as u64, tasks, "{report:?}");
                drop(check);
                group.bench_function(
                    BenchmarkId::new(format!("{name}/{OTA_INDEX}"), devices),
                    |b| {
                        b.iter_custom(|iters| {
                            let mut spent = Duration::ZERO;
                            for _ in 0..iters {
                                let engine = Engine::new();
                                let start = Instant::now();
                                black_box(engine.load_jsonl(&jsonl).expect("the fleet loads"));
                                spent += start.elapsed();
                                drop(engine);
                            }
                            spent
                        });
                    },
                );
            }
            if selected(NAIVE) {
                let mut check = NaiveStore::default();
                assert_eq!(check.load_jsonl(&jsonl), Ok(tasks as usize));
                assert_eq!(check.len() as u64, tasks);
                drop(check);
                group.bench_function(BenchmarkId::new(format!("{name}/{NAIVE}"), devices), |b| {
                    b.iter_custom(|iters| {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            let mut store = NaiveStore::default();
                            let start = Instant::now();
                            black_box(store.load_jsonl(&jsonl).expect("the fleet loads"));
                            spent += start.elapsed();
                            drop(store);
                        }
                        spent
                    });
                });
            }
        }

        // Upserts of existing tasks, one per iteration.
        group.sampling_mode(SamplingMode::Auto);
        group.throughput(Throughput::Elements(1));
        let mut pool = upsert_pool(&fleet);
        if selected(OTA_INDEX) {
            let engine = timed(&format!("{OTA_INDEX} build, {devices} devices"), || {
                build_engine(&fleet)
            });
            let mut k = 0u64;
            for _ in 0..pool.len() {
                let record = next_change(&mut pool, k);
                assert_eq!(engine.upsert(record), Ok(UpsertOutcome::Replaced));
                k += 1;
            }
            assert_eq!(
                engine.len() as u64,
                tasks,
                "upserts of existing tasks add nothing"
            );
            engine
                .internal_validate()
                .expect("engine invariants after upserts");
            group.bench_function(
                BenchmarkId::new(format!("upsert/{OTA_INDEX}"), devices),
                |b| {
                    b.iter(|| {
                        let record = next_change(&mut pool, k);
                        k += 1;
                        black_box(engine.upsert(record))
                    });
                },
            );
            // The same changes as a stream consumer applies them: a batch at a time.
            group.throughput(Throughput::Elements(EVENT_BATCH));
            group.bench_function(
                BenchmarkId::new(format!("upsert-batch-{EVENT_BATCH}/{OTA_INDEX}"), devices),
                |b| {
                    b.iter(|| {
                        let len = pool.len() as u64;
                        for j in 0..EVENT_BATCH {
                            next_change(&mut pool, k + j);
                        }
                        let refs: Vec<_> = (0..EVENT_BATCH)
                            .map(|j| pool[((k + j) % len) as usize].as_ref())
                            .collect();
                        k += EVENT_BATCH;
                        black_box(engine.write_batch(&refs))
                    });
                },
            );
            group.throughput(Throughput::Elements(1));
            assert_eq!(engine.len() as u64, tasks, "changes add nothing");
            engine
                .internal_validate()
                .expect("engine invariants after batches of changes");
        }
        if selected(NAIVE) {
            let mut store = timed(&format!("{NAIVE} build, {devices} devices"), || {
                NaiveStore::from_fleet(&fleet)
            });
            // Restart the change counter: the naive store has not seen the changes above.
            let mut k = 0u64;
            for _ in 0..pool.len() {
                let record = next_change(&mut pool, k);
                assert_eq!(
                    store.upsert(NaiveTask::from(record)),
                    NaiveOutcome::Replaced
                );
                k += 1;
            }
            assert_eq!(
                store.len() as u64,
                tasks,
                "upserts of existing tasks add nothing"
            );
            group.bench_function(BenchmarkId::new(format!("upsert/{NAIVE}"), devices), |b| {
                b.iter(|| {
                    let record = next_change(&mut pool, k);
                    k += 1;
                    // The event arrives as an owned record, as from a JSON decoder.
                    black_box(store.upsert(NaiveTask::from(record)))
                });
            });
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    c.final_summary();
}
