//! Group `query_mix`: one iteration answers one request of `Fleet::queries` into a reused
//! buffer, for ota-index and the alternatives of `common` (same group, same requests, same
//! bytes, checked before timing).
//!
//! ```text
//! cargo bench --bench query                                   # 100,000 and 1,000,000 devices
//! OTA_BENCH_DEVICES=100000 cargo bench --bench query -- --sample-size 10
//! OTA_BENCH_IMPLS=ota-index,floor-prerendered cargo bench --bench query
//! ```
//!
//! `OTA_BENCH_PROFILE=<impl> OTA_BENCH_PROFILE_QUERIES=<n>` skips criterion: it builds that one
//! implementation and answers `n` requests in `profile_loop` (for `valgrind --tool=callgrind
//! --toggle-collect=*profile_loop*`) and prints the time a request. It cycles `OTA_BENCH_QUERIES`
//! requests (100,000 unless set), as the timed runs do.
//!
//! `OTA_BENCH_INTERLEAVE=<rounds>` skips criterion too: it builds every selected
//! implementation, then in each round lets each answer the same next slice of the mix
//! (`OTA_BENCH_INTERLEAVE_SLICE` requests, 10,000 unless set), the order rotating by round, and
//! prints each one's median time a request and the median over rounds of each ratio of the
//! target table. Every implementation meets the machine's drift in every round, so these
//! ratios hold where a criterion run's, whose implementations are timed minutes apart, move
//! with the machine.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use ota_index::fleet::Fleet;
use ota_index::rpc::Service;

mod common;
use common::{
    build_engine, device_counts, query_count, selected, timed, Answer, Floor, NaiveStore, OtaIndex,
    Reference, SqliteStore, FLOOR, NAIVE, OTA_INDEX, SQLITE,
};

/// Times one implementation on the cycled request list.
fn bench_one(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    devices: u64,
    imp: &dyn Answer,
    queries: &[String],
) {
    group.bench_function(BenchmarkId::new(name, devices), |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        let mut next = 0;
        b.iter(|| {
            let query = &queries[next];
            next += 1;
            if next == queries.len() {
                next = 0;
            }
            out.clear();
            imp.answer(query, &mut out);
            black_box(out.len())
        });
    });
}

/// Builds, checks and times each implementation in turn, dropping each before building the
/// next (a 1,000,000-device fleet in SQLite alone takes about a gigabyte).
fn query_mix(c: &mut Criterion) {
    let mut group = c.benchmark_group("query_mix");
    group.throughput(Throughput::Elements(1));
    for devices in device_counts() {
        let fleet = Fleet::new(devices);
        let queries = fleet.queries(query_count());
        let mut reference: Option<Reference> = None;
        let mut run = |name: &'static str, imp: &dyn Answer, only_unfiltered: bool| {
            match &reference {
                Some(r) => {
                    r.check(name, imp, &queries, only_unfiltered);
                }
                None if only_unfiltered => {
                    panic!("{name} cannot be the reference: select another implementation too")
                }
                None => reference = Some(Reference::record(name, imp, &queries)),
            }
            bench_one(&mut group, name, devices, imp, &queries);
        };
        if selected(OTA_INDEX) {
            let engine = timed(&format!("{OTA_INDEX} build, {devices} devices"), || {
                build_engine(&fleet)
            });
            eprintln!("[bench] {OTA_INDEX}: {} tasks", engine.len());
            run(OTA_INDEX, &OtaIndex(Service::new(engine)), false);
        }
        if selected(NAIVE) {
            let naive = timed(&format!("{NAIVE} build, {devices} devices"), || {
                NaiveStore::from_fleet(&fleet)
            });
            run(NAIVE, &naive, false);
        }
        if selected(SQLITE) {
            let sqlite = timed(&format!("{SQLITE} build, {devices} devices"), || {
                SqliteStore::from_fleet(&fleet)
            });
            run(SQLITE, &sqlite, false);
        }
        if selected(FLOOR) {
            let floor = timed(&format!("{FLOOR} build, {devices} devices"), || {
                Floor::from_fleet(&fleet)
            });
            run(FLOOR, &floor, true);
        }
    }
    group.finish();
}

/// Answers `n` requests of the mix; a separate function so callgrind can collect only it.
#[inline(never)]
fn profile_loop(imp: &dyn Answer, queries: &[String], n: usize) -> usize {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut total = 0;
    for query in queries.iter().cycle().take(n) {
        out.clear();
        imp.answer(query, &mut out);
        total += out.len();
    }
    total
}

/// The number in environment variable `name`, or `default`.
fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The profile and interleave modes' fleet and cycled mix: the mix as timed (100,000
/// requests), where `query_count`'s test-mode 2,000 would let a 1,000,000-device run answer
/// from a warm cache.
fn fleet_and_mix() -> (Fleet, Vec<String>) {
    let fleet = Fleet::new(device_counts()[0]);
    let queries = fleet.queries(env_number("OTA_BENCH_QUERIES", 100_000));
    (fleet, queries)
}

/// Builds implementation `name` over `fleet`.
fn build(name: &str, fleet: &Fleet) -> Box<dyn Answer> {
    match name {
        OTA_INDEX => Box::new(OtaIndex(Service::new(build_engine(fleet)))),
        NAIVE => Box::new(NaiveStore::from_fleet(fleet)),
        SQLITE => Box::new(SqliteStore::from_fleet(fleet)),
        FLOOR => Box::new(Floor::from_fleet(fleet)),
        other => panic!("{other:?}: not an implementation"),
    }
}

fn profile(name: &str) {
    let n = env_number("OTA_BENCH_PROFILE_QUERIES", 100_000);
    let (fleet, queries) = fleet_and_mix();
    let mix = queries.len();
    let imp = build(name, &fleet);
    eprintln!("[bench] profile: {name} built, answering {n} requests");
    let start = std::time::Instant::now();
    let bytes = profile_loop(imp.as_ref(), &queries, n);
    let elapsed = start.elapsed();
    eprintln!(
        "[bench] profiled {name}: {n} requests ({mix} distinct), {bytes} response bytes, {:.1} ns a request",
        elapsed.as_nanos() as f64 / n.max(1) as f64
    );
}

/// Median of `v` (sorted in place); NaN when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn interleave(rounds: usize) {
    let slice = env_number("OTA_BENCH_INTERLEAVE_SLICE", 10_000);
    let (fleet, queries) = fleet_and_mix();
    let mut imps: Vec<(&str, Box<dyn Answer>)> = Vec::new();
    for name in [OTA_INDEX, NAIVE, SQLITE, FLOOR] {
        if selected(name) {
            imps.push((name, build(name, &fleet)));
            eprintln!("[bench] interleave: {name} built");
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); imps.len()];
    let mut out = Vec::with_capacity(64 * 1024);
    for round in 0..rounds {
        let from = round * slice % queries.len();
        let batch: Vec<&String> = queries.iter().cycle().skip(from).take(slice).collect();
        for k in 0..imps.len() {
            let i = (k + round) % imps.len();
            let start = std::time::Instant::now();
            for query in &batch {
                out.clear();
                imps[i].1.answer(query, &mut out);
                black_box(out.len());
            }
            times[i].push(start.elapsed().as_nanos() as f64 / slice.max(1) as f64);
        }
    }
    for (i, (name, _)) in imps.iter().enumerate() {
        let mut t = times[i].clone();
        eprintln!(
            "[bench] interleaved {name}: {:.1} ns a request (median of {rounds} rounds of {slice})",
            median(&mut t)
        );
    }
    let Some(ota) = imps.iter().position(|(n, _)| *n == OTA_INDEX) else {
        return;
    };
    for (i, (name, _)) in imps.iter().enumerate().filter(|&(i, _)| i != ota) {
        let mut ratios: Vec<f64> = times[i]
            .iter()
            .zip(&times[ota])
            .map(|(o, e)| o / e)
            .collect();
        let mid = median(&mut ratios);
        let (low, high) = (ratios[ratios.len() / 10], ratios[ratios.len() * 9 / 10]);
        eprintln!(
            "[bench] interleaved queries/s ota-index / {name}: {mid:.2} (median of per-round ratios; middle 80 % {low:.2}–{high:.2})"
        );
    }
}

fn main() {
    if let Some(rounds) = std::env::var("OTA_BENCH_INTERLEAVE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        interleave(rounds);
        return;
    }
    if let Ok(name) = std::env::var("OTA_BENCH_PROFILE") {
        profile(&name);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    query_mix(&mut c);
    c.final_summary();
}
