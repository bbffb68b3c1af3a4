//! Times upserts of existing tasks (status changes, as the `ingest` bench's `upsert` does)
//! outside criterion: for A/B runs of two builds and for profilers. Loads the benchmark fleet, then replaces 100,000 tasks spread over it in turn,
//! each with the next status and a newer `utcModified`, and prints the time an upsert. With a
//! third argument `batch` over 1, the changes go in `batch` at a time through
//! `Engine::write_batch`, as a stream consumer applies them (`upsert-batch-100` in the bench).
//!
//! ```sh
//! cargo run --release --example upsert_fleet -- 1000000 10000000
//! cargo run --release --example upsert_fleet -- 1000000 10000000 100
//! # instructions of the upserts alone, one by one and a hundred at a time:
//! valgrind --tool=callgrind --toggle-collect='*Engine::upsert' target/release/examples/upsert_fleet 20000 200000
//! valgrind --tool=callgrind --toggle-collect='*Engine::write_batch' target/release/examples/upsert_fleet 20000 200000 100
//! ```

use std::time::Instant;

use ota_index::fleet::Fleet;
use ota_index::{Engine, TaskStatus, Timestamp, UpsertOutcome};

fn arg(n: usize, default: u64) -> u64 {
    match std::env::args().nth(n).map(|s| s.parse()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("usage: upsert_fleet [devices] [upserts] [batch]: {e}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let devices = arg(1, 100_000).max(1);
    let upserts = arg(2, 10_000_000);
    let batch = arg(3, 1).clamp(1, 100_000) as usize;
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
    let change = |pool: &mut [ota_index::TaskRecord], k: u64| {
        let i = (k % len) as usize;
        let record = &mut pool[i];
        record.status = TaskStatus::ALL[((k / len) % 7) as usize];
        record.utc_modified = Timestamp::from_millis(1_893_456_000_000 + k as i64);
        i
    };
    let start = Instant::now();
    let mut k = 0;
    while k < upserts {
        if batch == 1 {
            let i = change(&mut pool, k);
            if engine.upsert(&pool[i]) != Ok(UpsertOutcome::Replaced) {
                eprintln!(
                    "upsert {k} of task {:?} was not a replacement",
                    pool[i].task_id
                );
                std::process::exit(1);
            }
            k += 1;
            continue;
        }
        let n = (batch as u64).min(upserts - k);
        let at: Vec<usize> = (k..k + n).map(|k| change(&mut pool, k)).collect();
        let refs: Vec<_> = at.iter().map(|&i| pool[i].as_ref()).collect();
        match engine.write_batch(&refs) {
            Ok(summary) if summary.replaced == refs.len() => {}
            other => {
                eprintln!("the batch of changes {k}.. was not all replacements: {other:?}");
                std::process::exit(1);
            }
        }
        k += n;
    }
    let elapsed = start.elapsed();
    println!(
        "{devices} devices, {upserts} upserts of {len} tasks, {batch} at a time: {:.0} ns an upsert, {:.0} upserts/s",
        elapsed.as_nanos() as f64 / upserts.max(1) as f64,
        upserts as f64 / elapsed.as_secs_f64()
    );
}
