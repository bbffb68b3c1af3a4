//! Load without loss: `serve`'s own router hosted in this process (so that the test can write
//! to the engine it answers from), client threads on keep-alive loopback connections, and a
//! writer applying upserts to the engine all along. Writes go to the odd devices of the fleet,
//! queries to the even ones, so every answer has one right value: the library's direct answer,
//! computed before the load. Errors are counted (target: none); latency is printed, never
//! asserted.

#[path = "../examples/serve/app.rs"]
#[allow(dead_code)]
mod app;
mod serve_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ota_index::fleet::Fleet;
use ota_index::rpc::{HttpRequest, Service};
use ota_index::{Engine, TaskStatus, Timestamp};
use serve_support::{strip_request_id, KeepAlive};

const CLIENTS: usize = 6;
const REQUESTS_PER_CLIENT: usize = 400;
const DEVICES: u64 = 2_000;

#[test]
fn answers_stay_exact_while_writes_apply() {
    let fleet = Fleet::new(DEVICES);
    let engine = Engine::new();
    engine
        .load_jsonl(&fleet.to_jsonl())
        .expect("the fleet loads");
    let service = Service::new(engine.clone());

    // Queries about even devices, with their right answers.
    let mut queries = Vec::new();
    for i in (0..DEVICES).step_by(2) {
        let d = fleet.device(i);
        queries.push(format!(
            "Action=ListOTAUnfinishedTaskByDevice&IotId={}",
            d.iot_id
        ));
        queries.push(format!(
            "Action=ListOTAUnfinishedTaskByDevice&ProductKey={}&DeviceName={}&ModuleName={}",
            d.product_key,
            d.device_name,
            d.modules[0].to_uppercase()
        ));
    }
    let expected: Vec<(u16, String)> = queries
        .iter()
        .map(|q| {
            let mut out = Vec::new();
            let status = service.answer(&HttpRequest::get(q), &mut out);
            (status, strip_request_id(&out).0)
        })
        .collect();
    assert!(
        expected
            .iter()
            .filter(|(_, b)| b.contains("taskId"))
            .count()
            > queries.len() / 4
    );

    // The writer's pool: every task of the odd devices, status changes with newer times.
    let pool: Vec<_> = (1..DEVICES)
        .step_by(2)
        .flat_map(|i| fleet.device_tasks(i))
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let router = app::router(service.clone());
    runtime.spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let started = Instant::now();
    let (latencies, errors) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut task = pool[(k as usize) % pool.len()].clone();
                task.status = TaskStatus::ALL[(k % 7) as usize];
                task.utc_modified = Timestamp::from_millis(2_000_000_000_000 + k as i64);
                engine.upsert(&task).expect("a write of a known task");
                k += 1;
                if k.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            writes.store(k, Ordering::Relaxed);
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (queries, expected) = (&queries, &expected);
                scope.spawn(move || {
                    let mut connection = KeepAlive::connect_to(addr);
                    let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
                    let mut errors = Vec::new();
                    for n in 0..REQUESTS_PER_CLIENT {
                        let i = (c * 7919 + n * 31) % queries.len();
                        let sent = Instant::now();
                        let reply = connection.get(&format!("/?{}", queries[i]));
                        latencies.push(sent.elapsed());
                        let got = (reply.status, strip_request_id(&reply.body).0);
                        if got != expected[i] {
                            errors.push(queries[i].clone());
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let results: Vec<_> = clients
            .into_iter()
            .map(|c| c.join().expect("a client"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer");
        results
            .into_iter()
            .fold((Vec::new(), Vec::new()), |(mut l, mut e), (lat, err)| {
                l.extend(lat);
                e.extend(err);
                (l, e)
            })
    });
    let elapsed = started.elapsed();
    runtime.shutdown_background();

    assert_eq!(
        latencies.len(),
        CLIENTS * REQUESTS_PER_CLIENT,
        "every request answered"
    );
    assert!(
        errors.is_empty(),
        "{} answers differ: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let written = writes.load(Ordering::Relaxed);
    assert!(written > 0, "the writer ran during the load");
    engine
        .internal_validate()
        .expect("invariants hold after the load");

    let mut sorted = latencies;
    sorted.sort_unstable();
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "in-process serve load with writes: {} requests from {CLIENTS} clients in {:.2} s, \
         {written} upserts meanwhile; latency p50 {:.0} µs, p99 {:.0} µs",
        sorted.len(),
        elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
    );
}
