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
//! binary again, with `OTA_FOOTPRINT_CHILD=<impl>:<devices>`). `bytes` is what a counting
//! global allocator reports: live requested bytes after building minus before (build inputs
//! dropped): the store's live bytes. SQLite allocates with C `malloc`, which a Rust
//! global allocator does not see, so its line adds SQLite's own count
//! (`sqlite3_memory_used`); ota-index keeps its largest columns in memory mappings of its own
//! (for huge pages), so its line adds those (`ota_index::mapped_bytes`). A second line per
//! implementation, `rss …`, gives the growth of the process's resident anonymous memory
//! (`RssAnon`), which also counts the allocator's headers and free-list slack.
//!
//! The child exits without dropping what it built, so a heap profiler's "At t-end" line
//! cross-checks the count:
//!
//! ```text
//! OTA_BENCH_DEVICES=100000 cargo bench --bench footprint
//! OTA_FOOTPRINT_CHILD=ota-index:100000 valgrind --tool=dhat --dhat-out-file=/dev/null \
//!     target/release/deps/footprint-<hash>
//! ```
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live requested bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counter is only arithmetic on the layouts' sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes: the Rust heap plus SQLite's own allocations and ota-index's own mappings (its
/// large columns, which the global allocator does not see).
fn live_bytes() -> u64 {
    // SAFETY: `sqlite3_memory_used` only reads SQLite's global statistics counter.
    let sqlite = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    LIVE.load(Ordering::Relaxed) as u64
        + u64::try_from(sqlite).unwrap_or(0)
        + ota_index::mapped_bytes() as u64
}

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

/// Live bytes and resident bytes at one point.
#[derive(Clone, Copy)]
struct Mark {
    live: u64,
    rss: u64,
}

fn mark() -> Mark {
    Mark {
        live: live_bytes(),
        rss: rss_anon(),
    }
}

fn print_line(name: &str, devices: u64, tasks: usize, before: Mark) {
    let after = mark();
    let bytes = after.live.saturating_sub(before.live);
    let rss = after.rss.saturating_sub(before.rss);
    let per = |b: u64| b as f64 / tasks.max(1) as f64;
    println!(
        "footprint {name} devices={devices} tasks={tasks} bytes={bytes} bytes_per_task={:.1}",
        per(bytes)
    );
    println!(
        "rss {name} devices={devices} tasks={tasks} bytes={rss} bytes_per_task={:.1}",
        per(rss)
    );
}

/// Builds one implementation, measures, prints (in the child process).
fn child(spec: &str) {
    let (name, devices) = spec
        .split_once(':')
        .and_then(|(n, d)| Some((n, d.parse::<u64>().ok()?)))
        .unwrap_or_else(|| panic!("OTA_FOOTPRINT_CHILD={spec:?}: expected <impl>:<devices>"));
    let fleet = Fleet::new(devices);
    let before = mark();
    match name {
        OTA_INDEX => {
            let engine = build_engine(&fleet);
            let tasks = engine.len();
            print_line(name, devices, tasks, before);
            let m = engine.memory_usage();
            let per = |b: usize| b as f64 / tasks.max(1) as f64;
            println!(
                "memory_usage {name} devices={devices} total={} ({:.1}/task) rows={} ({:.1}) \
                 task_ids={} ({:.1}) strings={} ({:.1}) devices={} ({:.1}) bitmaps={} ({:.1}) \
                 task_directory={} ({:.1}) pair_directory={} ({:.1}) locks={} ({:.1})",
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
                m.locks,
                per(m.locks),
            );
            std::mem::forget(engine);
        }
        NAIVE => {
            let store = NaiveStore::from_fleet(&fleet);
            print_line(name, devices, store.len(), before);
            std::mem::forget(store);
        }
        SQLITE => {
            let store = SqliteStore::from_fleet(&fleet);
            print_line(name, devices, store.len(), before);
            std::mem::forget(store);
        }
        FLOOR => {
            let floor = Floor::from_fleet(&fleet);
            // Per task of the fleet (the floor holds only rendered unfinished tasks).
            print_line(name, devices, fleet.tasks().count(), before);
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
    println!(
        "# footprint: bytes = live heap bytes (counting allocator, plus SQLite's own and \
         ota-index's mappings) after building minus before, in a fresh process per \
         implementation; rss: growth of RssAnon"
    );
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
