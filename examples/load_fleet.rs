//! Times bulk loads of the benchmark fleet into one engine, outside criterion: for A/B runs
//! of two builds, for profilers, and for loads into a store that already holds many tasks.
//!
//! ```sh
//! cargo run --release --example load_fleet -- 1000000
//! # ten loads of a million devices each into one engine, in the shape that shares nothing:
//! cargo run --release --example load_fleet -- 10000000 --chunk 1000000 --spread
//! # the fleet written to a file instead (for `query --data`, or a streamed load):
//! cargo run --release --example load_fleet -- 31000000 --write /tmp/fleet.jsonl
//! # instructions of the load alone:
//! valgrind --tool=callgrind --toggle-collect='*load_jsonl*' target/release/examples/load_fleet 20000
//! ```
//!
//! Each load's JSON Lines are generated before its clock starts.

use std::time::Instant;

use ota_index::fleet::Fleet;
use ota_index::Engine;

const USAGE: &str = "usage: load_fleet [DEVICES] [--chunk DEVICES] [--spread] [--write FILE]";

fn main() {
    let mut devices: u64 = 100_000;
    let mut chunk: Option<u64> = None;
    let mut spread = false;
    let mut write: Option<String> = None;
    let mut args = std::env::args().skip(1);
    let bad = |what: String| -> ! {
        eprintln!("load_fleet: {what}\n{USAGE}");
        std::process::exit(2);
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--spread" => spread = true,
            "--write" => {
                write = Some(
                    args.next()
                        .unwrap_or_else(|| bad("--write needs a path".into())),
                )
            }
            "--chunk" => {
                let v = args
                    .next()
                    .unwrap_or_else(|| bad("--chunk needs a count".into()));
                chunk = Some(
                    v.parse()
                        .unwrap_or_else(|e| bad(format!("--chunk {v}: {e}"))),
                );
            }
            n => devices = n.parse().unwrap_or_else(|e| bad(format!("{n}: {e}"))),
        }
    }
    let fleet = if spread {
        Fleet::new(devices).spread()
    } else {
        Fleet::new(devices)
    };
    let chunk = chunk.unwrap_or(devices).max(1);
    if let Some(path) = write {
        write_fleet(&fleet, devices, &path);
        return;
    }
    let engine = Engine::new();
    let (mut records, mut bytes, mut spent, mut grown) = (0, 0, 0.0, 0);
    let mut start_device = 0;
    while start_device < devices {
        let end = devices.min(start_device + chunk);
        let jsonl = fleet.jsonl_of(start_device..end);
        let held = engine.len();
        let resident_before = resident_bytes();
        let start = Instant::now();
        let report = match engine.load_jsonl(&jsonl) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("the fleet did not load: {e}");
                std::process::exit(1);
            }
        };
        let took = start.elapsed().as_secs_f64();
        grown += resident_bytes().saturating_sub(resident_before);
        if chunk < devices {
            println!(
                "devices {start_device}..{end}: {} tasks into {held} in {took:.3} s, {:.0} tasks/s",
                report.records,
                report.records as f64 / took
            );
        }
        records += report.records;
        bytes += jsonl.len();
        spent += took;
        start_device = end;
    }
    let m = engine.memory_usage();
    println!(
        "{devices} devices, {records} tasks, {bytes} bytes of JSON Lines: loaded in {spent:.3} s, \
         {:.0} tasks/s; {:.1} bytes a task (memory_usage), resident grew {:.1} bytes a task",
        records as f64 / spent,
        m.total() as f64 / records as f64,
        grown as f64 / records as f64
    );
    println!("{m:?}");
}

/// Writes the fleet's JSON Lines to `path`, 100,000 devices at a time.
fn write_fleet(fleet: &Fleet, devices: u64, path: &str) {
    use std::io::Write as _;
    let file = std::fs::File::create(path).unwrap_or_else(|e| {
        eprintln!("load_fleet: {path}: {e}");
        std::process::exit(1);
    });
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut bytes = 0;
    for start in (0..devices).step_by(100_000) {
        let jsonl = fleet.jsonl_of(start..devices.min(start + 100_000));
        bytes += jsonl.len();
        if let Err(e) = out.write_all(&jsonl) {
            eprintln!("load_fleet: {path}: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = out.flush() {
        eprintln!("load_fleet: {path}: {e}");
        std::process::exit(1);
    }
    println!("{devices} devices, {bytes} bytes of JSON Lines written to {path}");
}

/// Resident memory of this process, from `/proc/self/statm` (0 where there is none).
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}
