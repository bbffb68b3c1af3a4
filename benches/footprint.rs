//! Memory footprint of each implementation holding the fleet (`harness = false`). Prints one
//! line per implementation and fleet size:
//!
//! ```text
//! footprint <impl> devices=<n> tasks=<n> bytes=<n> bytes_per_task=<x>
//! ```
//!
//! and, for ota-index, the parts of `Engine::memory_usage()`.
//!
//! **How bytes are measured.** Each implementation is built in a fresh child process (this
//! binary again, with `OTA_FOOTPRINT_CHILD=<impl>:<devices>`), and `bytes` is the growth of
//! the process's resident anonymous memory (`RssAnon` of `/proc/self/status`) from before
//! building to after (build inputs dropped). It counts what the process really holds: the
//! allocator's per-allocation headers and free-list slack included, and SQLite's own
//! allocations (C `malloc`, which a Rust `#[global_allocator]` would not see) included. A
//! counting global allocator (live requested bytes) is not possible here: the crate's
//! `[lints] unsafe_code = "forbid"` applies to bench targets and cannot be lifted per file,
//! and `unsafe impl GlobalAlloc` is unsafe code.
//!
//! The child exits without dropping what it built, so the exact live heap bytes of one
//! implementation (Rust and C allocations alike, what a counting allocator would report) can
//! be read from a heap profiler's "At t-end" line:
//!
//! ```text
//! OTA_BENCH_DEVICES=100000 cargo bench --bench footprint
//! OTA_FOOTPRINT_CHILD=ota-index:100000 valgrind --tool=dhat --dhat-out-file=/dev/null \
//!     target/release/deps/footprint-<hash>
//! ```

use std::process::Command;

use ota_index::fleet::Fleet;

mod common;
use common::{
    build_engine, device_counts, selected, Floor, NaiveStore, SqliteStore, FLOOR, NAIVE, OTA_INDEX,
    SQLITE,
};

/// glibc settings for the child processes: a fixed 128 KiB mmap threshold, so that every
/// large buffer freed while building (JSON Lines chunks, staging vectors, old capacities) goes
/// back to the kernel instead of leaving resident holes in the heap that would be counted as
/// the structure's (measured at 100,000 devices: ota-index 305 → 232 bytes a task, the
/// naive store unchanged). Set `GLIBC_TUNABLES` yourself to override.
const MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=131072";

/// The implementations, in the order measured.
const IMPLS: [&str; 4] = [OTA_INDEX, NAIVE, SQLITE, FLOOR];

/// Resident anonymous memory of this process, in bytes.
fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("RssAnon in /proc/self/status (Linux)")
}

fn print_line(name: &str, devices: u64, tasks: usize, bytes: u64) {
    println!(
        "footprint {name} devices={devices} tasks={tasks} bytes={bytes} bytes_per_task={:.1}",
        bytes as f64 / tasks.max(1) as f64
    );
}

/// Builds one implementation, measures, prints (in the child process).
fn child(spec: &str) {
    let (name, devices) = spec
        .split_once(':')
        .and_then(|(n, d)| Some((n, d.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("OTA_FOOTPRINT_CHILD={spec:?}: expected <impl>:<devices>"));
    let fleet = Fleet::new(devices);
    let before = rss_anon();
    match name {
        OTA_INDEX => {
            let engine = build_engine(&fleet);
            let after = rss_anon();
            let tasks = engine.len();
            print_line(name, devices, tasks, after.saturating_sub(before));
            let m = engine.memory_usage();
            let per = |b: usize| b as f64 / tasks.max(1) as f64;
            println!(
                "memory_usage {name} devices={devices} total={} ({:.1}/task) rows={} ({:.1}) \
                 task_ids={} ({:.1}) strings={} ({:.1}) devices={} ({:.1}) bitmaps={} ({:.1}) \
                 task_directory={} ({:.1}) pair_directory={} ({:.1})",
                m.total(),
                per(m.total()),
                m.rows,
                per(m.rows),
                m.task_ids,
                per(m.task_ids),
                m.strings,
                per(m.strings),
                m.devices,
                per(m.devices),
                m.bitmaps,
                per(m.bitmaps),
                m.task_directory,
                per(m.task_directory),
                m.pair_directory,
                per(m.pair_directory),
            );
            std::mem::forget(engine);
        }
        NAIVE => {
            let store = NaiveStore::from_fleet(&fleet);
            let after = rss_anon();
            print_line(name, devices, store.len(), after.saturating_sub(before));
            std::mem::forget(store);
        }
        SQLITE => {
            let store = SqliteStore::from_fleet(&fleet);
            let after = rss_anon();
            print_line(name, devices, store.len(), after.saturating_sub(before));
            std::mem::forget(store);
        }
        FLOOR => {
            let floor = Floor::from_fleet(&fleet);
            let after = rss_anon();
            // Per task of the fleet (the floor holds only rendered unfinished tasks).
            print_line(
                name,
                devices,
                fleet.tasks().count(),
                after.saturating_sub(before),
            );
            eprintln!("[bench] {FLOOR}: {} devices rendered", floor.len());
            std::mem::forget(floor);
        }
        other => panic!("unknown implementation {other:?}"),
    }
    // Each arm forgets what it built: no teardown time, and a heap profiler run on the child
    // (`valgrind --tool=dhat`) reports the structure's live bytes as "At t-end".
}

fn main() {
    if let Ok(spec) = std::env::var("OTA_FOOTPRINT_CHILD") {
        child(&spec);
        return;
    }
    let exe = std::env::current_exe().expect("this benchmark's path");
    println!("# footprint: bytes = growth of RssAnon in a fresh process per implementation");
    for devices in device_counts() {
        for name in IMPLS.into_iter().filter(|n| selected(n)) {
            let mut child = Command::new(&exe);
            child.env("OTA_FOOTPRINT_CHILD", format!("{name}:{devices}"));
            if std::env::var_os("GLIBC_TUNABLES").is_none() {
                child.env("GLIBC_TUNABLES", MALLOC_TUNABLES);
            }
            let status = child.status().expect("run the child process");
            assert!(status.success(), "{name} at {devices} devices: {status}");
        }
    }
}
