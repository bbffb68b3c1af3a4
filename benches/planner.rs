//! Group `planner`: the engine's two device-query plans, reached through the public API.
//!
//! A target device holds `N` unfinished tasks (`N` = 4, 64, 200, 2,000, 20,000): `N - 2` of
//! module `default`, 2 of module `rare`. The query asks for the device's unfinished tasks
//! (`Engine::unfinished`, result dropped without serializing):
//!
//! - `no-module/N`: no module filter: every row of the device (the posting-list walk).
//! - `module-rare/N`: `ModuleName=rare`, the shard's `rare` bitmap holding just the device's 2
//!   rows: the bitmap plan wherever the planner allows it (today: `N >= 64`).
//! - `module-eighth/N`: the same query, with other devices' `rare` tasks added to the shard
//!   until the bitmap holds `N/8 - 1` rows: the bitmap plan at its most expensive (just under
//!   the planner's 8x ratio); `N >= 64` only.
//! - `module-common/N`: the same query, the bitmap holding `N/8 + 2` rows (more): the
//!   posting-list probe.
//!
//! Each fleet lives in a one-shard engine (`Engine::with_shards(1)`), so that the bitmap the
//! planner weighs is exactly the bitmap built here (with 64 shards, which shard a device
//! lands in depends on a per-process hash seed). Answers are checked before timing.
//!
//! ```text
//! cargo bench --bench planner
//! ```

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use ota_index::{Engine, Query, TaskRecord, TaskStatus, Timestamp};

/// Unfinished tasks of the target device.
const SIZES: [usize; 5] = [4, 64, 200, 2_000, 20_000];

/// The smallest device the planner considers for the bitmap plan (mirrors
/// `store::BITMAP_PLAN_MIN_ROWS`; only used to skip scenarios that cannot differ).
const BITMAP_MIN_ROWS: usize = 64;

const TARGET_IOT: &str = "PlannerTargetDevice0000001";
const EPOCH_MS: i64 = 1_730_419_200_000;

fn task(task_id: String, iot: &str, pk: &str, dn: &str, module: &str, k: usize) -> TaskRecord {
    TaskRecord {
        task_id,
        job_id: format!("job-{module}"),
        firmware_id: format!("fw-{module}"),
        iot_id: iot.to_owned(),
        product_key: pk.to_owned(),
        product_name: format!("Product {pk}"),
        device_name: dn.to_owned(),
        module_name: module.to_owned(),
        src_version: "1.0.0".to_owned(),
        dest_version: "2.0.0".to_owned(),
        status: TaskStatus::ALL[k % 4],
        utc_create: Timestamp::from_millis(EPOCH_MS + k as i64 * 1000),
        utc_modified: Timestamp::from_millis(EPOCH_MS + k as i64 * 1000 + 500),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

/// A one-shard engine: the target device with `n` unfinished tasks (2 of them `rare`) and
/// `background` `rare` tasks of other devices (4 a device).
fn build(n: usize, background: usize) -> Engine {
    let mut records: Vec<TaskRecord> = (0..n)
        .map(|k| {
            // The two `rare` tasks sit in the middle of the device's list.
            let module = if k == n / 3 || k == 2 * n / 3 {
                "rare"
            } else {
                "default"
            };
            task(
                format!("target-{k}"),
                TARGET_IOT,
                "a1plantarget",
                "target-0001",
                module,
                k,
            )
        })
        .collect();
    records.extend((0..background).map(|j| {
        let d = j / 4;
        task(
            format!("bg-{j}"),
            &format!("PlannerBackground{d:09}"),
            "a1planbackgr",
            &format!("bg-{d:08}"),
            "rare",
            j,
        )
    }));
    let engine = Engine::with_shards(1);
    let refs: Vec<_> = records.iter().map(TaskRecord::as_ref).collect();
    engine.write_batch(&refs).expect("planner fleet loads");
    engine
}

fn check(engine: &Engine, n: usize) {
    let all = engine
        .unfinished(&Query::by_iot_id(TARGET_IOT))
        .expect("query");
    assert_eq!(all.len(), n);
    drop(all);
    let rare = engine
        .unfinished(&Query::by_iot_id(TARGET_IOT).module("RARE"))
        .expect("query");
    let ids: Vec<String> = rare.iter().map(|t| t.task_id().to_owned()).collect();
    let mut expected = vec![format!("target-{}", n / 3), format!("target-{}", 2 * n / 3)];
    expected.dedup();
    assert_eq!(
        ids, expected,
        "the module filter selects the device's rare tasks, in order"
    );
}

/// Times `Engine::unfinished` for `query` (the answer's length taken, the answer dropped).
fn measure(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    n: usize,
    engine: &Engine,
    query: &Query<'_>,
) {
    group.bench_function(BenchmarkId::new(name, n), |b| {
        b.iter(|| black_box(engine.unfinished(black_box(query)).map(|a| a.len())));
    });
}

fn planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("planner");
    group.throughput(Throughput::Elements(1));
    let all = Query::by_iot_id(TARGET_IOT);
    let rare = Query::by_iot_id(TARGET_IOT).module("rare");
    for n in SIZES {
        // Background so that the shard's `rare` bitmap (2 target rows + background) holds
        // `rows` rows.
        let background_for = |rows: usize| rows.saturating_sub(2);
        let alone = build(n, 0);
        check(&alone, n);
        measure(&mut group, "no-module", n, &alone, &all);
        measure(&mut group, "module-rare", n, &alone, &rare);
        drop(alone);
        if n >= BITMAP_MIN_ROWS {
            let eighth = build(n, background_for(n / 8 - 1));
            check(&eighth, n);
            measure(&mut group, "module-eighth", n, &eighth, &rare);
        }
        let common = build(n, background_for(n / 8 + 2));
        check(&common, n);
        measure(&mut group, "module-common", n, &common, &rare);
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    planner(&mut c);
    c.final_summary();
}
