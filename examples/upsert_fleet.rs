//! Times upserts of existing tasks (status changes, as the `ingest` bench's `upsert` does)
//! outside criterion: for A/B runs of two builds and for profilers (BENCHMARKS.md, "What
//! changed"). Loads the benchmark fleet, then replaces 100,000 tasks spread over it in turn,
//! each with the next status and a newer `utcModified`, and prints the time an upsert.
//!
//! ```sh
//! cargo run --release --example upsert_fleet -- 1000000 10000000
//! # instructions of the upserts alone:
//! valgrind --tool=callgrind --toggle-collect='*Engine::upsert' target/release/examples/upsert_fleet 20000 200000
//! ```

use std::time::Instant;

use ota_index::fleet::Fleet;
use ota_index::{Engine, TaskStatus, Timestamp, UpsertOutcome};

fn arg(n: usize, default: u64) -> u64 {
    match std::env::args().nth(n).map(|s| s.parse()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("usage: upsert_fleet [devices] [upserts]: {e}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let devices = arg(1, 100_000).max(1);
    let upserts = arg(2, 10_000_000);
    let fleet = Fleet::new(devices);
    let engine = Engine::new();
    if let Err(e) = engine.load_jsonl(&fleet.to_jsonl()) {
        eprintln!("the fleet did not load: {e}");
        std::process::exit(1);
    }
    let step = (devices / 100_000).max(1) as usize;
    let mut pool: Vec<_> = (0..devices)
        .step_by(step)
        .flat_map(|d| fleet.device_tasks(d))
        .collect();
    pool.truncate(100_000);
    let len = pool.len() as u64;
    let start = Instant::now();
    for k in 0..upserts {
        let record = &mut pool[(k % len) as usize];
        record.status = TaskStatus::ALL[((k / len) % 7) as usize];
        record.utc_modified = Timestamp::from_millis(1_893_456_000_000 + k as i64);
        if engine.upsert(record) != Ok(UpsertOutcome::Replaced) {
            eprintln!(
                "upsert {k} of task {:?} was not a replacement",
                record.task_id
            );
            std::process::exit(1);
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{devices} devices, {upserts} upserts of {len} tasks: {:.0} ns an upsert, {:.0} upserts/s",
        elapsed.as_nanos() as f64 / upserts.max(1) as f64,
        upserts as f64 / elapsed.as_secs_f64()
    );
}
