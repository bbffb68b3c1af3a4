//! Times one bulk load of the benchmark fleet into an empty engine, outside criterion: for
//! A/B runs of two builds and for profilers.
//!
//! ```sh
//! cargo run --release --example load_fleet -- 1000000
//! # instructions of the load alone:
//! valgrind --tool=callgrind --toggle-collect='*load_jsonl*' target/release/examples/load_fleet 20000
//! ```

use std::time::Instant;

use ota_index::fleet::Fleet;
use ota_index::Engine;

fn main() {
    let devices: u64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 100_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: load_fleet [devices]: {e}");
            std::process::exit(2);
        }
    };
    let jsonl = Fleet::new(devices).to_jsonl();
    let engine = Engine::new();
    let start = Instant::now();
    let report = match engine.load_jsonl(&jsonl) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("the fleet did not load: {e}");
            std::process::exit(1);
        }
    };
    let spent = start.elapsed();
    println!(
        "{devices} devices, {} tasks, {} bytes of JSON Lines: loaded in {:.3} s, {:.0} tasks/s",
        report.records,
        jsonl.len(),
        spent.as_secs_f64(),
        report.records as f64 / spent.as_secs_f64()
    );
}
