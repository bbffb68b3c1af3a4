//! Serves `ListOTAUnfinishedTaskByDevice` over HTTP, as the platform's RPC endpoint does
//! (reference section 8).
//!
//! ```text
//! cargo run --release --example serve -- [--data FILE] [--addr 127.0.0.1:8686]
//!     [--case camel|pascal] [--access-key ID:SECRET ...]
//! ```
//!
//! - `--data FILE`: JSON Lines tasks (reference section 2); once loaded, a line says how many
//!   records were read, tasks added, replaced, unchanged and dropped as stale. Without it, a generated
//!   demo fleet (`Fleet::new(10_000)`, about 32,000 tasks) is served and a ready-to-paste
//!   `curl` line for one of its devices is printed.
//! - `--addr`: where to listen (default `127.0.0.1:8686`); port `0` picks a free port. Once
//!   bound, the line `listening on http://ADDR` (the real address) is printed.
//! - `--case`: key style of the answers (default `camel`, the platform's API page's). The official
//!   Alibaba Cloud SDKs read PascalCase keys: use `--case pascal` for them.
//! - `--access-key ID:SECRET`, repeatable: requests must be signed with one of these keys
//!   (RPC v1 HMAC-SHA1 or V3 ACS3-HMAC-SHA256, reference section 6).
//!
//! Every flag also takes the `--flag=value` form. Bad arguments (a flag other than
//! `--access-key` given twice among them): usage on standard error, exit status 2;
//! `--help`: usage on standard output, exit status 0. A bad data file: a message naming the
//! line, exit status 1.
//!
//! HTTP face (choices of this program, beyond the reference):
//!
//! - Path `/` only, any method: `GET /?…` and `POST /` with parameters in the query string, a
//!   form body (`Content-Type: application/x-www-form-urlencoded`), or both; another method
//!   is answered like `GET` (query string only). Every other path is answered 404 with the
//!   gateway envelope and code `InvalidAction.NotFound`: the platform's RPC endpoint lives at
//!   `/`, and V3 signatures are computed over the path `/`.
//! - Every answer is `Content-Type: application/json;charset=utf-8`, in the envelopes of
//!   reference section 4, with the HTTP status of section 5.
//! - Every request header is passed to the signature layer as received.
//! - Limits: a body over 64 KiB is answered 413 (at once, unread, when its `Content-Length`
//!   says so), and a body that cannot be read (a broken chunked encoding) 400, both with the
//!   gateway envelope and code `InvalidParameter`; a request not answered within 10 s (a
//!   client that sends its body slowly) is answered 408 (code `RequestTimeout`); at most
//!   1,024 requests are answered at once, the rest wait their turn.
//! - What the HTTP library (hyper) refuses before a request reaches this program is answered
//!   by it, with an empty body: a request line of about 64 KiB or more (414), too many or
//!   too long headers (431), a malformed HTTP/1 message (400). The service's own limit on
//!   the query string (`InvalidParameter`, `ota_index::rpc::MAX_REQUEST_BYTES`) applies
//!   to callers of the library.
//! - The service call itself runs on the async worker: it takes microseconds and never
//!   blocks, so a `spawn_blocking` hop would cost more than it saves.
//! - SIGINT (Ctrl-C) or SIGTERM: stop accepting, let requests in flight finish (at most
//!   5 s), exit status 0.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use ota_index::fleet::Fleet;
use ota_index::rpc::{KeyCase, Service, Verifier};
use ota_index::{Engine, LoadErrorKind};

mod app;
use app::router;

const USAGE: &str = "usage: serve [--data FILE] [--addr 127.0.0.1:8686] [--case camel|pascal] \
                     [--access-key ID:SECRET ...]";
const DEFAULT_ADDR: &str = "127.0.0.1:8686";
/// Devices of the demo fleet served without `--data`.
const DEMO_DEVICES: u64 = 10_000;
/// How long a shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The command line.
struct Args {
    data: Option<String>,
    /// The `--addr` text, and what it resolved to.
    addr: (String, Vec<SocketAddr>),
    case: KeyCase,
    access_keys: Vec<(String, String)>,
}

/// The arguments, or `None` for `--help`. A flag other than `--access-key` given twice is a
/// bad argument.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        data: None,
        addr: (DEFAULT_ADDR.to_owned(), Vec::new()),
        case: KeyCase::Camel,
        access_keys: Vec::new(),
    };
    let mut given: Vec<String> = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        if ["--data", "--addr", "--case"].contains(&flag.as_str()) {
            if given.contains(&flag) {
                return Err(format!("{flag} is given twice"));
            }
            given.push(flag.clone());
        }
        match flag.as_str() {
            "--data" => parsed.data = Some(value()?),
            "--addr" => parsed.addr.0 = value()?,
            "--case" => {
                let v = value()?;
                parsed.case = KeyCase::parse(&v)
                    .ok_or_else(|| format!("--case must be camel or pascal, not {v:?}"))?;
            }
            "--access-key" => {
                let v = value()?;
                match v.split_once(':') {
                    Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                        parsed.access_keys.push((id.to_owned(), secret.to_owned()));
                    }
                    _ => return Err(format!("--access-key must be ID:SECRET, not {v:?}")),
                }
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    // A malformed address is a bad argument (exit 2); one that cannot be bound is not.
    parsed.addr.1 = match parsed.addr.0.to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("--addr {:?} is not HOST:PORT: {e}", parsed.addr.0)),
    };
    if parsed.addr.1.is_empty() {
        return Err(format!("--addr {:?} names no address", parsed.addr.0));
    }
    Ok(Some(parsed))
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives between the "listening" line and the
/// first poll (a busy machine) must stop the server, not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A demo-fleet device for the printed `curl` line: the first with two to four unfinished
/// tasks (an answer that fits a terminal), else the first with any.
fn demo_device(fleet: &Fleet) -> Option<(String, String)> {
    let unfinished = |i: u64| {
        fleet
            .device_tasks(i)
            .iter()
            .filter(|t| t.status.is_unfinished())
            .count()
    };
    let devices = 0..fleet.device_count();
    let index = devices
        .clone()
        .find(|&i| (2..=4).contains(&unfinished(i)))
        .or_else(|| devices.clone().find(|&i| unfinished(i) > 0))?;
    let device = fleet.device(index);
    Some((device.product_key, device.device_name))
}

/// Percent-encodes a value for the printed URL.
fn url_value(value: &str) -> String {
    let mut out = String::new();
    ota_index::rpc::signature::percent_encode(value, &mut out);
    out
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("serve: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let engine = Engine::new();
    let mut demo = None;
    match &args.data {
        Some(path) => match engine.load_jsonl_file_showing_progress(path) {
            Ok(report) => {
                let s = report.summary;
                println!(
                    "loaded {} records from {path}: {} tasks added, {} replaced, {} unchanged, {} dropped as stale",
                    report.records, s.inserted, s.replaced, s.unchanged, s.stale
                );
            }
            Err(e) => {
                // A file that cannot be read: the error names it already.
                match e.kind {
                    LoadErrorKind::Io(_) => eprintln!("serve: {e}"),
                    _ => eprintln!("serve: {path}: {e}"),
                }
                return ExitCode::from(1);
            }
        },
        None => {
            let fleet = Fleet::new(DEMO_DEVICES);
            if let Err(e) = engine.load_jsonl(&fleet.to_jsonl()) {
                eprintln!("serve: the demo fleet did not load: {e}");
                return ExitCode::from(1);
            }
            println!(
                "serving a demo fleet: {} tasks of {DEMO_DEVICES} devices",
                engine.len()
            );
            demo = demo_device(&fleet);
        }
    }
    // The initial load is in: give back its growth slack and move the large columns onto
    // huge pages (queries about 3 % faster at 1,000,000 devices).
    engine.shrink_to_fit();
    let signed = !args.access_keys.is_empty();
    let mut service = Service::new(engine).with_case(args.case);
    if signed {
        service = service.with_verifier(Verifier::new(args.access_keys));
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serve: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.addr.1.as_slice()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("serve: cannot listen on {}: {e}", args.addr.0);
                return ExitCode::from(1);
            }
        };
        let addr: SocketAddr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("serve: cannot read the bound address: {e}");
                return ExitCode::from(1);
            }
        };
        if let Some((product_key, device_name)) = &demo {
            println!(
                "try: curl 'http://{addr}/?Action=ListOTAUnfinishedTaskByDevice&ProductKey={}&DeviceName={}'",
                url_value(product_key),
                url_value(device_name)
            );
        }
        if signed {
            println!(
                "requests must be signed with a --access-key (RPC v1 HMAC-SHA1 or V3 \
                 ACS3-HMAC-SHA256); unsigned ones are refused with MissingParameter"
            );
        }
        let shutdown = shutdown_signal();
        println!("listening on http://{addr}");
        // Tests and scripts wait for the line above; stdout is a pipe there, so flush.
        let _ = std::io::stdout().flush();

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, router(service)).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let mut server = tokio::spawn(async move { server.await });
        tokio::select! {
            result = &mut server => {
                // The server ended on its own: an accept-loop failure.
                eprintln!("serve: the server stopped: {result:?}");
                return ExitCode::from(1);
            }
            () = shutdown => {}
        }
        println!("shutting down");
        let _ = std::io::stdout().flush();
        let _ = stop.send(());
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
            Ok(Ok(Err(e))) => {
                eprintln!("serve: {e}");
                ExitCode::from(1)
            }
            Ok(Err(e)) => {
                eprintln!("serve: {e}");
                ExitCode::from(1)
            }
            // Requests still in flight after the grace period are dropped; the stop was asked.
            Err(_) => ExitCode::SUCCESS,
        }
    })
}
