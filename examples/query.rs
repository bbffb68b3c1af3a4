//! Answers requests read from standard input against a JSON Lines file (reference section 8).
//!
//! ```text
//! cargo run --release --example query -- --data FILE [--case camel|pascal] [--request-id ID]
//!     [--dump OUT]
//! ```
//!
//! With `--dump OUT`, the loaded store is written to OUT as JSON Lines (a file a later
//! `--data` loads into the same store) before any request is read; a dump that cannot be
//! written: a message naming OUT, exit status 1.
//!
//! One request per input line (a query string, optionally with a leading `?`, or a whole
//! URL); one compact JSON response per output line. A bad data file: a message naming the
//! line, exit status 1, no output. Bad arguments (a flag given twice among them): usage on
//! standard error, exit status 2; `--help`: usage on standard output, exit status 0.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use ota_index::rpc::{query_part, HttpRequest, KeyCase, Service};
use ota_index::{Engine, LoadErrorKind};

const USAGE: &str = "usage: query --data FILE [--case camel|pascal] [--request-id ID] [--dump OUT]";

struct Args {
    data: String,
    case: KeyCase,
    request_id: Option<String>,
    dump: Option<String>,
}

/// The arguments, or `None` for `--help`. A flag given twice is a bad argument.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut data, mut case, mut request_id, mut dump) = (None, None, None, None);
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
        let once = |given: bool| {
            if given {
                Err(format!("{flag} is given twice"))
            } else {
                Ok(())
            }
        };
        match flag.as_str() {
            "--data" => {
                once(data.is_some())?;
                data = Some(value()?);
            }
            "--case" => {
                once(case.is_some())?;
                let v = value()?;
                case = Some(
                    KeyCase::parse(&v)
                        .ok_or_else(|| format!("--case must be camel or pascal, not {v:?}"))?,
                );
            }
            "--request-id" => {
                once(request_id.is_some())?;
                request_id = Some(value()?);
            }
            "--dump" => {
                once(dump.is_some())?;
                dump = Some(value()?);
            }
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args {
        data: data.ok_or("--data FILE is required")?,
        case: case.unwrap_or(KeyCase::Camel),
        request_id,
        dump,
    }))
}

/// A request line as text. A line that is not UTF-8 is still a request: its non-ASCII bytes
/// are percent-encoded, which decodes back to the same bytes, so the answer is the
/// `InvalidParameter` of reference section 3 rule 7 naming the parameter, not a dead program.
fn request_text(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => std::borrow::Cow::Owned(
            raw.iter()
                .map(|&b| {
                    if b.is_ascii() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect(),
        ),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("query: {e}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let engine = Engine::new();
    if let Err(e) = engine.load_jsonl_file_showing_progress(&args.data) {
        // A file that cannot be read: the error names it already.
        match e.kind {
            LoadErrorKind::Io(_) => eprintln!("query: {e}"),
            _ => eprintln!("query: {}: {e}", args.data),
        }
        return ExitCode::from(1);
    }
    if let Some(path) = &args.dump {
        let written =
            std::fs::File::create(path).and_then(|file| engine.dump_jsonl(BufWriter::new(file)));
        if let Err(e) = written {
            eprintln!("query: cannot write the dump to {path}: {e}");
            return ExitCode::from(1);
        }
    }
    let service = Service::new(engine).with_case(args.case);
    let mut stdin = std::io::stdin().lock();
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut out = Vec::with_capacity(4096);
    let mut raw = Vec::with_capacity(4096);
    loop {
        raw.clear();
        match stdin.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("query: cannot read standard input: {e}");
                return ExitCode::from(1);
            }
        }
        let line = request_text(&raw);
        if line.trim().is_empty() {
            continue;
        }
        out.clear();
        let request = HttpRequest {
            request_id: args.request_id.as_deref(),
            ..HttpRequest::get(query_part(&line))
        };
        service.answer(&request, &mut out);
        out.push(b'\n');
        if stdout.write_all(&out).is_err() {
            return ExitCode::from(1);
        }
    }
    if stdout.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
