//! Feeds an engine with a retention horizon a steady population's status events and prints
//! the memory it holds as the events go by: it must stay flat, however many events.
//!
//! ```sh
//! # 10^8 events over a population of 1,000,000 tasks in flight, 100 a batch:
//! cargo run --release --example retention_soak -- 100000000 1000000
//! ```
//!
//! Each of `live` slots runs one task at a time through QUEUED, IN_PROGRESS and SUCCEEDED,
//! one event a millisecond of the store's clock, and then starts a new task (a new id); the
//! horizon is `live` milliseconds, so about `live` tasks are in flight and a third as many
//! finished within the horizon. Without a horizon every finished task would stay: the store
//! would hold `events / 3` tasks.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ota_index::fleet::Fleet;
use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp};

const STEPS: [TaskStatus; 3] = [
    TaskStatus::Queued,
    TaskStatus::InProgress,
    TaskStatus::Succeeded,
];
const BATCH: usize = 100;

fn arg(n: usize, default: u64) -> u64 {
    match std::env::args().nth(n).map(|s| s.parse()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            eprintln!("usage: retention_soak [events] [live]: {e}");
            std::process::exit(2);
        }
    }
}

/// Resident memory of this process, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let events = arg(1, 10_000_000);
    let live = arg(2, 100_000).max(1) as usize;
    let engine = Engine::builder()
        .retention(Duration::from_millis(live as u64))
        .build();
    // One record a slot, from the bench fleet's shapes (a device a slot), changed in place.
    let fleet = Fleet::new(live as u64);
    let mut slots: Vec<TaskRecord> = (0..live as u64)
        .map(|d| fleet.device_tasks(d).swap_remove(0))
        .collect();
    let start = Instant::now();
    let mut report_at = events / 10;
    let mut i: u64 = 0;
    println!("events     tasks held  live bytes   resident    events/s");
    while i < events {
        let n = (BATCH as u64).min(events - i);
        let first = i;
        let changed: Vec<usize> = (first..first + n)
            .map(|e| {
                let slot = (e % live as u64) as usize;
                let round = e / live as u64;
                let record = &mut slots[slot];
                record.task_id.clear();
                let _ = write!(record.task_id, "{slot}-{}", round / 3);
                record.status = STEPS[(round % 3) as usize];
                record.utc_modified = Timestamp::from_millis(1_893_456_000_000 + e as i64);
                record.utc_create = record.utc_modified;
                slot
            })
            .collect();
        // A batch never holds one slot twice (a batch is far smaller than the population).
        let refs: Vec<_> = changed.iter().map(|&s| slots[s].as_ref()).collect();
        if let Err((at, e)) = engine.write_batch(&refs) {
            eprintln!("event {}: {e}", first + at as u64);
            std::process::exit(1);
        }
        i += n;
        if i >= report_at || i == events {
            let m = engine.memory_usage();
            println!(
                "{i:<10} {:<11} {:<12} {:<11} {:.0}",
                engine.len(),
                m.total(),
                resident_bytes(),
                i as f64 / start.elapsed().as_secs_f64()
            );
            report_at += events / 10;
        }
    }
}
