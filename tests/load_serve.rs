//! A bounded load on `serve` over loopback: client threads on keep-alive connections send
//! the fleet's query mix, and every answer must equal the library's own answer to the same
//! request. Latency percentiles are printed (`--nocapture`), never asserted.
//! (`tests/serve_support`: build the example first when running this file alone).

mod serve_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ota_index::fleet::Fleet;
use ota_index::rpc::{HttpRequest, Service};
use ota_index::Engine;
use serve_support::{strip_request_id, KeepAlive, Server};

const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 500;
const DEVICES: u64 = 2_000;
/// Present once per task in a camelCase answer.
const TASK_KEY: &[u8] = br#""taskId":""#;

#[test]
fn concurrent_clients_get_the_librarys_answers() {
    let fleet = Fleet::new(DEVICES);
    let path = std::env::temp_dir().join(format!("load_serve_{}.jsonl", std::process::id()));
    std::fs::write(&path, fleet.to_jsonl()).expect("write the fleet");
    let path_text = path.to_str().expect("a UTF-8 temp path").to_owned();
    let server = Server::start(&["--addr", "127.0.0.1:0", "--data", &path_text]);
    let engine = Engine::new();
    let loaded = engine.load_jsonl_file(&path);
    let _ = std::fs::remove_file(&path);
    loaded.expect("the fleet loads");
    let service = Arc::new(Service::new(engine));
    let queries = Arc::new(fleet.queries(CLIENTS * REQUESTS_PER_CLIENT));

    let started = Instant::now();
    let (latencies, mismatches, non_empty) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (server, service, queries) = (&server, &service, &queries);
                scope.spawn(move || {
                    let mut connection = KeepAlive::connect(server);
                    let mut latencies = Vec::with_capacity(REQUESTS_PER_CLIENT);
                    let mut mismatches = Vec::new();
                    let mut non_empty = 0usize;
                    let mut expected = Vec::new();
                    for query in queries.iter().skip(client).step_by(CLIENTS) {
                        let sent = Instant::now();
                        let reply = connection.get(&format!("/?{query}"));
                        latencies.push(sent.elapsed());
                        expected.clear();
                        let status = service.answer(&HttpRequest::get(query), &mut expected);
                        let answer = (reply.status, strip_request_id(&reply.body).0);
                        if answer != (status, strip_request_id(&expected).0) {
                            mismatches.push(query.clone());
                        }
                        if reply.body.windows(TASK_KEY.len()).any(|w| w == TASK_KEY) {
                            non_empty += 1;
                        }
                    }
                    (latencies, mismatches, non_empty)
                })
            })
            .collect();
        workers.into_iter().fold(
            (Vec::new(), Vec::new(), 0),
            |(mut all, mut bad, count), worker| {
                let (latencies, mismatches, non_empty) = worker.join().expect("a client thread");
                all.extend(latencies);
                bad.extend(mismatches);
                (all, bad, count + non_empty)
            },
        )
    });
    let elapsed = started.elapsed();

    assert_eq!(
        latencies.len(),
        CLIENTS * REQUESTS_PER_CLIENT,
        "every request answered"
    );
    assert!(
        mismatches.is_empty(),
        "answers differ from the library's: {mismatches:?}"
    );
    // The mix must exercise real answers, not only empty lists.
    assert!(
        non_empty > latencies.len() / 4,
        "{non_empty} non-empty answers"
    );

    let mut sorted = latencies;
    sorted.sort_unstable();
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p) as usize];
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "serve load: {} requests from {CLIENTS} keep-alive clients in {:.2} s ({:.0} req/s); \
         latency p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        sorted.len(),
        elapsed.as_secs_f64(),
        sorted.len() as f64 / elapsed.as_secs_f64(),
        micros(at(0.5)),
        micros(at(0.99)),
        micros(at(1.0)),
    );
}
