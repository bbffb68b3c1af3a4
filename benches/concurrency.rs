//! Group `concurrency`: ota-index read throughput (the query mix through `Service::answer`)
//! with 1 and 2 reader threads (`OTA_BENCH_READERS`, comma-separated, e.g. `1,2,4,8,16` on a
//! bigger machine), without and with one writer thread upserting existing tasks at a steady,
//! paced rate (100,000 a second unless `OTA_BENCH_WRITES_PER_SEC` says otherwise).
//!
//! The writer is an event-stream consumer: it wakes every millisecond
//! (`OTA_BENCH_WRITER_TICK_US`) and applies the events due since its last wakeup, paced by
//! the clock, as one [`Engine::write_batch`] (status changes of stored tasks); with
//! `OTA_BENCH_WRITER=each` it upserts them one by one ([`Engine::upsert`]) instead (the
//! writer of the reports before, with `OTA_BENCH_WRITER_TICK_US=200`). After each benchmark
//! it prints its rate while the readers ran (events due in its last tick before they were
//! done are not counted, about a millisecond's worth a round) and how many events were due
//! at a wakeup, on average and at most: a writer that keeps up finds about a tick's worth.
//!
//! For comparison the read-only baselines run the same reader counts without a writer:
//! `naive-hashmap-readers-<n>` and `floor-prerendered-readers-<n>` (SQLite's connection is
//! not `Sync`, so it has no multi-reader run). `OTA_BENCH_IMPLS` selects as in the other
//! benches.
//!
//! One iteration is one request answered by each reader (throughput `readers` elements), so
//! criterion's elements/s is the readers' combined throughput. The writer's achieved rate is
//! printed after each benchmark.
//!
//! ```text
//! OTA_BENCH_DEVICES=100000 cargo bench --bench concurrency -- --sample-size 10
//! OTA_BENCH_READERS=1,2,4,8,16 OTA_BENCH_DEVICES=1000000 cargo bench --bench concurrency
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ota_index::fleet::Fleet;
use ota_index::rpc::Service;
use ota_index::{Engine, TaskRecord, TaskStatus, Timestamp, UpsertOutcome};

mod common;
use common::{
    build_engine, device_counts, env_number, query_count, selected, timed, Answer, Floor,
    NaiveStore, OtaIndex, FLOOR, NAIVE, OTA_INDEX,
};

/// 2030-01-01T00:00:00Z: later than every `utcModified` of the fleet.
const FUTURE_MS: i64 = 1_893_456_000_000;

/// How the writer applies the events due at a wakeup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    /// One `write_batch` of them all.
    Batch,
    /// `upsert` each.
    Each,
}

/// The writer's changes: existing tasks, each upsert a new status and a newer `utcModified`.
struct Writer {
    pool: Vec<TaskRecord>,
    /// Changes made so far (also the millisecond offset of the next `utcModified`).
    changes: u64,
    rate: u64,
    mode: WriteMode,
    tick: Duration,
    /// Pool indices of the batch being made (reused).
    batch: Vec<usize>,
    /// Over every round of the current benchmark: upserts, time spent writing, wakeups that
    /// found events due, events found due at those wakeups, and the most found due at one.
    written: u64,
    busy: Duration,
    wakeups: u64,
    behind: u64,
    most_behind: u64,
}

impl Writer {
    fn new(fleet: &Fleet, rate: u64) -> Writer {
        let step = (fleet.device_count() / 50_000).max(1);
        let pool = (0..fleet.device_count())
            .step_by(step as usize)
            .flat_map(|i| fleet.device_tasks(i))
            .collect();
        let mode = match std::env::var("OTA_BENCH_WRITER").as_deref() {
            Ok("each") => WriteMode::Each,
            Ok("batch") | Err(_) => WriteMode::Batch,
            Ok(other) => panic!("OTA_BENCH_WRITER={other:?}: expected batch or each"),
        };
        let tick = env_number("OTA_BENCH_WRITER_TICK_US").unwrap_or(1_000);
        Writer {
            pool,
            changes: 0,
            rate,
            mode,
            tick: Duration::from_micros(tick),
            batch: Vec::new(),
            written: 0,
            busy: Duration::ZERO,
            wakeups: 0,
            behind: 0,
            most_behind: 0,
        }
    }

    /// The next change: the pool's next task with the next status and a newer `utcModified`;
    /// its index in the pool.
    fn next_change(&mut self) -> usize {
        let len = self.pool.len() as u64;
        let k = self.changes;
        let i = (k % len) as usize;
        let record = &mut self.pool[i];
        record.status = TaskStatus::ALL[((k / len) % 7) as usize];
        record.utc_modified = Timestamp::from_millis(FUTURE_MS + k as i64);
        self.changes += 1;
        i
    }

    /// Applies the next `n` changes.
    fn write(&mut self, engine: &Engine, n: u64) {
        match self.mode {
            WriteMode::Each => {
                for _ in 0..n {
                    let i = self.next_change();
                    let outcome = engine.upsert(&self.pool[i]);
                    debug_assert_eq!(outcome, Ok(UpsertOutcome::Replaced));
                    black_box(outcome).expect("upsert of an existing task");
                }
            }
            WriteMode::Batch => {
                let mut batch = std::mem::take(&mut self.batch);
                batch.clear();
                batch.extend((0..n).map(|_| self.next_change()));
                let refs: Vec<_> = batch.iter().map(|&i| self.pool[i].as_ref()).collect();
                let summary = engine
                    .write_batch(&refs)
                    .expect("a batch of existing tasks");
                debug_assert_eq!(summary.replaced, refs.len());
                black_box(summary);
                self.batch = batch;
            }
        }
    }

    /// Applies the events due at `rate` a second, paced by the clock, at each wakeup until
    /// `stop`.
    fn run(&mut self, engine: &Engine, stop: &AtomicBool) {
        let start = Instant::now();
        let mut done = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
            if due > done {
                self.wakeups += 1;
                self.behind += due - done;
                self.most_behind = self.most_behind.max(due - done);
                self.write(engine, due - done);
                done = due;
            }
            thread::sleep(self.tick);
        }
        self.written += done;
        self.busy += start.elapsed();
    }

    fn report(&mut self, name: &str) {
        if self.written > 0 {
            eprintln!(
                "[bench] {name}: writer made {} upserts in {:.2} s = {:.0}/s (target {}/s); \
                 {:?} every {} us, {:.1} events due a wakeup, at most {}",
                self.written,
                self.busy.as_secs_f64(),
                self.written as f64 / self.busy.as_secs_f64(),
                self.rate,
                self.mode,
                self.tick.as_micros(),
                self.behind as f64 / self.wakeups.max(1) as f64,
                self.most_behind,
            );
        }
        self.written = 0;
        self.busy = Duration::ZERO;
        self.wakeups = 0;
        self.behind = 0;
        self.most_behind = 0;
    }
}

/// `readers` threads each answer `iters` requests (starting at different places in the mix)
/// while the writer, if any, writes; the wall time from the common start to the last reader
/// done.
fn round(
    imp: &(dyn Answer + Sync),
    queries: &[String],
    readers: usize,
    writer: Option<(&mut Writer, &Engine)>,
    iters: u64,
) -> Duration {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(readers + 1 + usize::from(writer.is_some()));
    thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut out = Vec::with_capacity(64 * 1024);
                    let mut next = r * queries.len() / readers;
                    barrier.wait();
                    for _ in 0..iters {
                        out.clear();
                        imp.answer(&queries[next], &mut out);
                        black_box(out.len());
                        next += 1;
                        if next == queries.len() {
                            next = 0;
                        }
                    }
                })
            })
            .collect();
        let writing = writer.map(|(w, engine)| {
            let (barrier, stop) = (&barrier, &stop);
            s.spawn(move || {
                barrier.wait();
                w.run(engine, stop);
            })
        });
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("reader thread");
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(h) = writing {
            h.join().expect("writer thread");
        }
        elapsed
    })
}

/// Reader thread counts: `OTA_BENCH_READERS` (comma-separated), else 1 and 2.
fn reader_counts() -> Vec<usize> {
    match std::env::var("OTA_BENCH_READERS") {
        Ok(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or_else(|| {
                        panic!("OTA_BENCH_READERS={list:?}: expected comma-separated counts")
                    })
            })
            .collect(),
        Err(_) => vec![1, 2],
    }
}

/// A read-only baseline with 1.. readers: `<name>-readers-<n>`.
fn bench_baseline(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    devices: u64,
    imp: &(dyn Answer + Sync),
    queries: &[String],
) {
    for readers in reader_counts() {
        group.throughput(Throughput::Elements(readers as u64));
        group.bench_function(
            BenchmarkId::new(format!("{name}-readers-{readers}"), devices),
            |b| b.iter_custom(|iters| round(imp, queries, readers, None, iters)),
        );
    }
}

fn concurrency(c: &mut Criterion) {
    let rate = env_number("OTA_BENCH_WRITES_PER_SEC").unwrap_or(100_000);
    eprintln!(
        "[bench] {} CPUs available",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut group = c.benchmark_group("concurrency");
    for devices in device_counts() {
        let fleet = Fleet::new(devices);
        let queries = fleet.queries(query_count());
        if selected(OTA_INDEX) {
            let engine = timed(&format!("ota-index build, {devices} devices"), || {
                build_engine(&fleet)
            });
            let tasks = engine.len();
            let imp = OtaIndex(Service::new(engine));
            let engine = imp.0.engine();
            let mut writer = Writer::new(&fleet, rate);
            for readers in reader_counts() {
                for with_writer in [false, true] {
                    let name = if with_writer {
                        format!("readers-{readers}+writer")
                    } else {
                        format!("readers-{readers}")
                    };
                    group.throughput(Throughput::Elements(readers as u64));
                    group.bench_function(BenchmarkId::new(&name, devices), |b| {
                        b.iter_custom(|iters| {
                            let w = with_writer.then_some((&mut writer, engine));
                            round(&imp, &queries, readers, w, iters)
                        });
                    });
                    writer.report(&format!("concurrency/{name}/{devices}"));
                }
            }
            assert_eq!(engine.len(), tasks, "the writer only replaces tasks");
            engine
                .internal_validate()
                .expect("engine invariants after the concurrent writes");
        }
        if selected(NAIVE) {
            let naive = timed(&format!("{NAIVE} build, {devices} devices"), || {
                NaiveStore::from_fleet(&fleet)
            });
            bench_baseline(&mut group, NAIVE, devices, &naive, &queries);
        }
        if selected(FLOOR) {
            let floor = timed(&format!("{FLOOR} build, {devices} devices"), || {
                Floor::from_fleet(&fleet)
            });
            bench_baseline(&mut group, FLOOR, devices, &floor, &queries);
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    concurrency(&mut c);
    c.final_summary();
}
