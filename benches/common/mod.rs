//! Shared benchmark code: the workload knobs, the ota-index builder, the three alternatives a
//! platform engineer would otherwise use, and the byte-equality check that runs before any
//! timing.
//!
//! The alternatives, each answering the same request strings into a reused buffer:
//!
//! - [`NaiveStore`] (`naive-hashmap`): `HashMap<String, Vec<NaiveTask>>` keyed by `iotId`
//!   (std `HashMap`, SipHash: the default a platform engineer reaches for), owned `String`
//!   fields, a second map (`productKey`, `deviceName`) → `iotId`, filter + sort per query,
//!   `serde_json` with `#[derive(Serialize)]`.
//! - [`SqliteStore`] (`sqlite-memory`): SQLite in memory (rusqlite, bundled), one table,
//!   indexes on (`iot_id`, `task_status`) and (`product_key`, `device_name`), cached prepared
//!   statements, rows read into owned structs and serialized with `serde_json`.
//! - [`Floor`] (`floor-prerendered`): each device's whole unfiltered response pre-rendered; a
//!   query is one hash lookup and one copy. It ignores filters: a floor, not a peer.
//!
//! All of them decode and validate the request with the crate's own
//! [`Params::decode`] + [`parse_request`], so request parsing costs the same everywhere and
//! the implementations differ only in lookup, filter and serialization.
#![allow(dead_code)] // each bench binary uses a different part of this module

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use ota_index::fleet::{write_record, Fleet};
use ota_index::rpc::{
    parse_query, parse_request, write_error, write_success, ErrorCode, HttpRequest, KeyCase,
    Params, RpcError, Service,
};
use ota_index::{DeviceRef, Engine, Query, StatusSet, TaskRecord, TaskStatus};
use serde::{Deserialize, Serialize};

/// The request id every benchmark request carries, so that responses are comparable bytes.
pub const REQUEST_ID: &str = "bench";

/// The implementation names used in benchmark ids (keep them stable).
pub const OTA_INDEX: &str = "ota-index";
/// See [`NaiveStore`].
pub const NAIVE: &str = "naive-hashmap";
/// See [`SqliteStore`].
pub const SQLITE: &str = "sqlite-memory";
/// See [`Floor`].
pub const FLOOR: &str = "floor-prerendered";

// ---- workload knobs ----------------------------------------------------------------------

/// True when the binary runs as a benchmark (`cargo bench` passes `--bench`); false under
/// `cargo test --benches`, where every bench runs once on a tiny fleet as a smoke test.
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The number in the environment variable `name`, if set (underscores allowed); panics,
/// naming it, on anything else.
pub fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let n = text
        .trim()
        .replace('_', "")
        .parse()
        .unwrap_or_else(|_| panic!("{name}={text:?}: expected a number (underscores allowed)"));
    Some(n)
}

/// Fleet sizes: `OTA_BENCH_DEVICES` (comma-separated, underscores allowed, e.g.
/// `100_000,1_000_000,5_000_000`), else 100,000 and 1,000,000 when benchmarking, else 2,000.
pub fn device_counts() -> Vec<u64> {
    match std::env::var("OTA_BENCH_DEVICES") {
        Ok(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim().replace('_', "").parse().unwrap_or_else(|_| {
                    panic!("OTA_BENCH_DEVICES={list:?}: expected comma-separated numbers")
                })
            })
            .collect(),
        Err(_) if bench_mode() => vec![100_000, 1_000_000],
        Err(_) => vec![2_000],
    }
}

/// Requests in the cycled query mix: `OTA_BENCH_QUERIES`, else 100,000 (2,000 in test mode).
pub fn query_count() -> usize {
    env_number("OTA_BENCH_QUERIES").unwrap_or(if bench_mode() { 100_000 } else { 2_000 }) as usize
}

/// Requests whose responses are compared byte for byte between implementations before
/// timing: `OTA_BENCH_CHECK`, else 20,000 (all of them in test mode).
pub fn check_count() -> usize {
    env_number("OTA_BENCH_CHECK").unwrap_or(20_000) as usize
}

/// Which implementations to build: `OTA_BENCH_IMPLS` (comma-separated names), else all.
pub fn selected(name: &str) -> bool {
    match std::env::var("OTA_BENCH_IMPLS") {
        Ok(list) => list.split(',').any(|s| s.trim() == name),
        Err(_) => true,
    }
}

/// Runs `build`, printing how long it took on stderr.
pub fn timed<T>(what: &str, build: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = build();
    eprintln!("[bench] {what}: {:.2} s", start.elapsed().as_secs_f64());
    value
}

// ---- the request front shared by every implementation -----------------------------------

/// Anything that answers one request string (a query string) into `out` (appending).
pub trait Answer {
    /// Appends the response to the request `query`.
    fn answer(&self, query: &str, out: &mut Vec<u8>);
}

/// ota-index behind its RPC service, exactly as served.
pub struct OtaIndex(pub Service);

impl Answer for OtaIndex {
    fn answer(&self, query: &str, out: &mut Vec<u8>) {
        self.0.answer(
            &HttpRequest {
                request_id: Some(REQUEST_ID),
                ..HttpRequest::get(query)
            },
            out,
        );
    }
}

/// Decodes and validates a request the way the service does; the baselines' common front.
/// `on_query` writes the success response; errors are written here, as the service would.
fn answer_with(query: &str, out: &mut Vec<u8>, on_query: impl FnOnce(&Query<'_>, &mut Vec<u8>)) {
    let mut params = Params::default();
    match parse_query(&mut params, query, None, None) {
        Ok(request) => {
            let query = request.query();
            match query.instance_name() {
                // The baselines hold only the default instance.
                "" => on_query(&query, out),
                other => write_error(
                    out,
                    KeyCase::Camel,
                    REQUEST_ID,
                    &RpcError::new(
                        ErrorCode::InstanceNotFound,
                        format!(
                            "The instance named by parameter IotInstanceId does not exist: {other:?}"
                        ),
                    ),
                ),
            }
        }
        Err(error) => write_error(out, KeyCase::Camel, REQUEST_ID, &error),
    }
}

/// True when a task in `status` of `module` passes the query's filters.
fn passes(query: &Query<'_>, status: TaskStatus, module: &str) -> bool {
    status.is_unfinished()
        && query.effective_statuses().contains(status)
        && query.module.is_none_or(|m| m.eq_ignore_ascii_case(module))
}

// ---- ota-index ----------------------------------------------------------------------------

/// Appends device `index`'s tasks to `out` as JSON Lines.
pub fn device_jsonl(fleet: &Fleet, index: u64, out: &mut Vec<u8>) {
    for task in fleet.device_tasks(index) {
        write_record(out, &task);
        out.push(b'\n');
    }
}

/// An engine holding the whole fleet, loaded through `Engine::load_jsonl` in chunks of 50,000
/// devices (so that a 1,000,000-device fleet never needs its 1.2 GB of JSON Lines at once).
/// `OTA_BENCH_SHARDS` sets its shard count (`Engine::with_shards`), else `Engine::new`'s
/// (`ota_index::default_shards`).
pub fn build_engine(fleet: &Fleet) -> Engine {
    const CHUNK: u64 = 50_000;
    let engine = match env_number("OTA_BENCH_SHARDS") {
        Some(n) => Engine::with_shards(n as usize),
        None => Engine::new(),
    };
    let mut jsonl = Vec::new();
    let mut start = 0;
    while start < fleet.device_count() {
        let end = (start + CHUNK).min(fleet.device_count());
        jsonl.clear();
        for i in start..end {
            device_jsonl(fleet, i, &mut jsonl);
        }
        engine
            .load_jsonl(&jsonl)
            .unwrap_or_else(|e| panic!("fleet chunk {start}..{end} did not load: {e}"));
        start = end;
    }
    // As a service does after its initial load (`examples/serve`): the growth slack given
    // back and the large columns moved onto huge pages.
    engine.shrink_to_fit();
    engine
}

// ---- naive-hashmap ------------------------------------------------------------------------

/// One task, every field an owned `String`, serialized by serde's derive. Fields are declared
/// in the response's key order, which is the order serde writes them in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NaiveTask {
    /// `destVersion`
    #[serde(alias = "DestVersion")]
    pub dest_version: String,
    /// `deviceName`
    #[serde(alias = "DeviceName")]
    pub device_name: String,
    /// `firmwareId`
    #[serde(alias = "FirmwareId")]
    pub firmware_id: String,
    /// `iotId`
    #[serde(alias = "IotId")]
    pub iot_id: String,
    /// `jobId`
    #[serde(alias = "JobId")]
    pub job_id: String,
    /// `moduleName`
    #[serde(alias = "ModuleName")]
    pub module_name: String,
    /// `productKey`
    #[serde(alias = "ProductKey")]
    pub product_key: String,
    /// `productName`
    #[serde(alias = "ProductName")]
    pub product_name: String,
    /// `srcVersion`
    #[serde(alias = "SrcVersion")]
    pub src_version: String,
    /// `taskId`
    #[serde(alias = "TaskId")]
    pub task_id: String,
    /// `taskStatus`, the status name.
    #[serde(alias = "TaskStatus")]
    pub task_status: String,
    /// `utcCreate`, as `YYYY-MM-DDThh:mm:ss.fffZ` (so string order is time order).
    #[serde(alias = "UtcCreate")]
    pub utc_create: String,
    /// `utcModified`, same format.
    #[serde(alias = "UtcModified")]
    pub utc_modified: String,
}

impl From<&TaskRecord> for NaiveTask {
    fn from(t: &TaskRecord) -> NaiveTask {
        let time = |ts: ota_index::Timestamp| String::from_utf8_lossy(&ts.format()).into_owned();
        NaiveTask {
            dest_version: t.dest_version.clone(),
            device_name: t.device_name.clone(),
            firmware_id: t.firmware_id.clone(),
            iot_id: t.iot_id.clone(),
            job_id: t.job_id.clone(),
            module_name: t.module_name.clone(),
            product_key: t.product_key.clone(),
            product_name: t.product_name.clone(),
            src_version: t.src_version.clone(),
            task_id: t.task_id.clone(),
            task_status: t.status.as_str().to_owned(),
            utc_create: time(t.utc_create),
            utc_modified: time(t.utc_modified),
        }
    }
}

/// The success envelope, derived.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    code: &'static str,
    data: Data<T>,
    #[serde(rename = "requestId")]
    request_id: &'a str,
    success: bool,
}

#[derive(Serialize)]
struct Data<T: Serialize> {
    #[serde(rename = "simpleOTATaskInfo")]
    simple_ota_task_info: Vec<T>,
}

/// Serializes the success envelope (stage "serialize"; not inlined, for profiles).
#[inline(never)]
fn write_envelope<T: Serialize>(out: &mut Vec<u8>, tasks: Vec<T>) {
    let envelope = Envelope {
        code: "",
        data: Data {
            simple_ota_task_info: tasks,
        },
        request_id: REQUEST_ID,
        success: true,
    };
    serde_json::to_writer(out, &envelope).expect("writing to a Vec cannot fail");
}

/// What an upsert did (the baselines' counterpart of `UpsertOutcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NaiveOutcome {
    /// A new task id.
    Inserted,
    /// A known task id, replaced.
    Replaced,
    /// The stored task is newer: dropped.
    Stale,
}

/// The hash-map store a platform engineer writes in an afternoon.
///
/// Simplifications, each in the baseline's favour (less work, less memory): no identity
/// conflict check, no field validation, and a task is found for an upsert only among the
/// tasks of the record's own device (no task-id → device map, so a task moving to another
/// device is not handled). Finished tasks are kept, as the engine keeps them.
#[derive(Default)]
pub struct NaiveStore {
    /// `iotId` → every task of the device, in arrival order.
    pub by_iot: HashMap<String, Vec<NaiveTask>>,
    /// (`productKey`, `deviceName`) → `iotId`.
    pub by_name: HashMap<(String, String), String>,
}

impl NaiveStore {
    /// The whole fleet, record by record.
    pub fn from_fleet(fleet: &Fleet) -> NaiveStore {
        let mut store = NaiveStore::default();
        for task in fleet.tasks() {
            store.upsert(NaiveTask::from(&task));
        }
        store
    }

    /// Bulk load of JSON Lines (camelCase or PascalCase keys), one `serde_json` parse a line.
    pub fn load_jsonl(&mut self, input: &[u8]) -> Result<usize, String> {
        let mut loaded = 0;
        for (i, line) in input.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let task: NaiveTask =
                serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            self.upsert(task);
            loaded += 1;
        }
        Ok(loaded)
    }

    /// Adds or replaces a task; a stored task with a newer `utcModified` wins.
    pub fn upsert(&mut self, task: NaiveTask) -> NaiveOutcome {
        let pair = (task.product_key.clone(), task.device_name.clone());
        self.by_name
            .entry(pair)
            .or_insert_with(|| task.iot_id.clone());
        let tasks = self.by_iot.entry(task.iot_id.clone()).or_default();
        match tasks.iter_mut().find(|t| t.task_id == task.task_id) {
            Some(stored) if stored.utc_modified > task.utc_modified => NaiveOutcome::Stale,
            Some(stored) => {
                *stored = task;
                NaiveOutcome::Replaced
            }
            None => {
                tasks.push(task);
                NaiveOutcome::Inserted
            }
        }
    }

    /// Tasks held.
    pub fn len(&self) -> usize {
        self.by_iot.values().map(Vec::len).sum()
    }

    /// The device's tasks (stage "lookup"; not inlined, so profiles can tell the stages apart).
    #[inline(never)]
    fn lookup(&self, device: DeviceRef<'_>) -> Option<&Vec<NaiveTask>> {
        match device {
            DeviceRef::IotId(id) => self.by_iot.get(id),
            DeviceRef::Name {
                product_key,
                device_name,
            } => self
                .by_name
                .get(&(product_key.to_owned(), device_name.to_owned()))
                .and_then(|id| self.by_iot.get(id)),
        }
    }

    /// The tasks passing the filters, in answer order (stage "filter").
    #[inline(never)]
    fn select<'s>(tasks: Option<&'s Vec<NaiveTask>>, query: &Query<'_>) -> Vec<&'s NaiveTask> {
        let mut hits: Vec<&NaiveTask> = tasks
            .into_iter()
            .flatten()
            .filter(|t| {
                TaskStatus::parse(&t.task_status)
                    .is_some_and(|status| passes(query, status, &t.module_name))
            })
            .collect();
        hits.sort_by(|a, b| {
            (a.utc_create.as_str(), a.task_id.as_str()).cmp(&(&b.utc_create, &b.task_id))
        });
        hits
    }

    fn respond(&self, query: &Query<'_>, out: &mut Vec<u8>) {
        let hits = NaiveStore::select(self.lookup(query.device), query);
        write_envelope(out, hits);
    }
}

impl Answer for NaiveStore {
    fn answer(&self, query: &str, out: &mut Vec<u8>) {
        answer_with(query, out, |q, out| self.respond(q, out));
    }
}

// ---- sqlite-memory ------------------------------------------------------------------------

/// The columns selected, in response key order.
const SQL_COLUMNS: &str = "dest_version, device_name, firmware_id, iot_id, job_id, module_name, \
     product_key, product_name, src_version, task_id, task_status, utc_create, utc_modified";

const SQL_BY_IOT: &str = "WHERE iot_id = ?1 AND task_status IN (?2, ?3, ?4, ?5)";
const SQL_BY_NAME: &str =
    "WHERE product_key = ?1 AND device_name = ?6 AND task_status IN (?2, ?3, ?4, ?5)";
const SQL_MODULE: &str = " AND module_name = ?7 COLLATE NOCASE";
const SQL_ORDER: &str = " ORDER BY utc_create, task_id";

/// SQLite in memory: one table, two indexes, four cached statements (device by id or by
/// name, with or without a module).
///
/// No primary key on `task_id` (the query path never needs it; it would add a third index):
/// in SQLite's favour for memory and bulk insert.
pub struct SqliteStore {
    conn: rusqlite::Connection,
    /// The four statement texts: [by id, by id + module, by name, by name + module].
    sql: [String; 4],
}

impl SqliteStore {
    /// An empty store (table, no indexes yet).
    fn empty() -> SqliteStore {
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite in memory");
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             CREATE TABLE tasks (
                 task_id TEXT NOT NULL, job_id TEXT NOT NULL, firmware_id TEXT NOT NULL,
                 iot_id TEXT NOT NULL, product_key TEXT NOT NULL, product_name TEXT NOT NULL,
                 device_name TEXT NOT NULL, module_name TEXT NOT NULL,
                 src_version TEXT NOT NULL, dest_version TEXT NOT NULL,
                 task_status TEXT NOT NULL, utc_create TEXT NOT NULL, utc_modified TEXT NOT NULL
             );",
        )
        .expect("create table");
        conn.set_prepared_statement_cache_capacity(16);
        let select = |filter: &str, module: &str| {
            format!("SELECT {SQL_COLUMNS} FROM tasks {filter}{module}{SQL_ORDER}")
        };
        SqliteStore {
            sql: [
                select(SQL_BY_IOT, ""),
                select(SQL_BY_IOT, SQL_MODULE),
                select(SQL_BY_NAME, ""),
                select(SQL_BY_NAME, SQL_MODULE),
            ],
            conn,
        }
    }

    /// The whole fleet, inserted in one transaction; indexes built afterwards.
    pub fn from_fleet(fleet: &Fleet) -> SqliteStore {
        let mut store = SqliteStore::empty();
        let tx = store.conn.transaction().expect("begin");
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO tasks (task_id, job_id, firmware_id, iot_id, product_key,
                     product_name, device_name, module_name, src_version, dest_version,
                     task_status, utc_create, utc_modified)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .expect("prepare insert");
            for t in fleet.tasks() {
                let create = t.utc_create.format();
                let modified = t.utc_modified.format();
                let text = |b: &[u8]| std::str::from_utf8(b).expect("ASCII timestamp").to_owned();
                insert
                    .execute(rusqlite::params![
                        t.task_id,
                        t.job_id,
                        t.firmware_id,
                        t.iot_id,
                        t.product_key,
                        t.product_name,
                        t.device_name,
                        t.module_name,
                        t.src_version,
                        t.dest_version,
                        t.status.as_str(),
                        text(&create),
                        text(&modified),
                    ])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        store
            .conn
            .execute_batch(
                // No ANALYZE: with the bundled build's STAT4, statistics make every statement
                // whose plan depends on a bound value re-prepare on each new binding (measured:
                // two thirds of the query time went to sqlite3Reprepare).
                "CREATE INDEX tasks_by_iot ON tasks (iot_id, task_status);
                 CREATE INDEX tasks_by_name ON tasks (product_key, device_name);",
            )
            .expect("create indexes");
        store
    }

    fn respond(&self, query: &Query<'_>, out: &mut Vec<u8>) {
        write_envelope(out, self.fetch(query));
    }

    /// Runs the statement and reads the rows into owned tasks (stages "lookup" and "filter",
    /// both inside SQLite; not inlined, for profiles).
    #[inline(never)]
    fn fetch(&self, query: &Query<'_>) -> Vec<NaiveTask> {
        let (device, name, by_name) = match query.device {
            DeviceRef::IotId(id) => (id, "", false),
            DeviceRef::Name {
                product_key,
                device_name,
            } => (product_key, device_name, true),
        };
        let sql = &self.sql[usize::from(by_name) * 2 + usize::from(query.module.is_some())];
        let mut stmt = self.conn.prepare_cached(sql).expect("prepare query");
        // The status set padded to four values by repeating one.
        let mut statuses = ["", "", "", ""];
        let mut set = query.effective_statuses().iter();
        let first = set.next().map_or("", TaskStatus::as_str);
        for (slot, status) in statuses.iter_mut().zip(
            std::iter::once(first)
                .chain(set.map(TaskStatus::as_str).chain(std::iter::repeat(first))),
        ) {
            *slot = status;
        }
        let module = query.module.unwrap_or("");
        let row_task = |row: &rusqlite::Row<'_>| -> rusqlite::Result<NaiveTask> {
            Ok(NaiveTask {
                dest_version: row.get(0)?,
                device_name: row.get(1)?,
                firmware_id: row.get(2)?,
                iot_id: row.get(3)?,
                job_id: row.get(4)?,
                module_name: row.get(5)?,
                product_key: row.get(6)?,
                product_name: row.get(7)?,
                src_version: row.get(8)?,
                task_id: row.get(9)?,
                task_status: row.get(10)?,
                utc_create: row.get(11)?,
                utc_modified: row.get(12)?,
            })
        };
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![&device];
        bound.extend(statuses.iter().map(|s| s as &dyn rusqlite::ToSql));
        if by_name {
            bound.push(&name);
        }
        if query.module.is_some() {
            if !by_name {
                // ?6 is not used by the iotId statements: keep the numbering dense.
                bound.push(&name);
            }
            bound.push(&module);
        }
        let bound = &bound[..stmt.parameter_count()];
        stmt.query_map(bound, row_task)
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("read rows")
    }

    /// Tasks held.
    pub fn len(&self) -> usize {
        self.conn
            .query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get::<_, i64>(0))
            .expect("count") as usize
    }
}

impl Answer for SqliteStore {
    fn answer(&self, query: &str, out: &mut Vec<u8>) {
        answer_with(query, out, |q, out| self.respond(q, out));
    }
}

// ---- floor-prerendered --------------------------------------------------------------------

/// A (`productKey`, `deviceName`) lookup key that borrows, hashing like the owned tuple.
struct PairKey<'a>(&'a str, &'a str);

impl Hash for PairKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The same calls as `(Box<str>, Box<str>)::hash`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl hashbrown::Equivalent<(Box<str>, Box<str>)> for PairKey<'_> {
    fn equivalent(&self, key: &(Box<str>, Box<str>)) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

/// Every device's whole response (no filters) rendered ahead of time.
#[derive(Default)]
pub struct Floor {
    by_iot: hashbrown::HashMap<Box<str>, u32>,
    by_name: hashbrown::HashMap<(Box<str>, Box<str>), u32>,
    responses: Vec<Box<[u8]>>,
    empty: Vec<u8>,
}

impl Floor {
    /// Renders every device of the fleet.
    pub fn from_fleet(fleet: &Fleet) -> Floor {
        let mut floor = Floor::default();
        write_success(
            &mut floor.empty,
            KeyCase::Camel,
            REQUEST_ID,
            std::iter::empty::<&TaskRecord>(),
        );
        let mut out = Vec::new();
        for i in 0..fleet.device_count() {
            let device = fleet.device(i);
            let mut tasks: Vec<TaskRecord> = fleet
                .device_tasks(i)
                .into_iter()
                .filter(|t| t.status.is_unfinished())
                .collect();
            tasks.sort_by(|a, b| (a.utc_create, &a.task_id).cmp(&(b.utc_create, &b.task_id)));
            out.clear();
            write_success(&mut out, KeyCase::Camel, REQUEST_ID, tasks.iter());
            let ix = u32::try_from(floor.responses.len()).expect("under 2^32 devices");
            floor.responses.push(out.as_slice().into());
            floor.by_iot.insert(device.iot_id.into(), ix);
            floor
                .by_name
                .insert((device.product_key.into(), device.device_name.into()), ix);
        }
        floor
    }

    /// Devices held.
    pub fn len(&self) -> usize {
        self.responses.len()
    }
}

impl Answer for Floor {
    fn answer(&self, query: &str, out: &mut Vec<u8>) {
        answer_with(query, out, |q, out| {
            let ix = match q.device {
                DeviceRef::IotId(id) => self.by_iot.get(id),
                DeviceRef::Name {
                    product_key,
                    device_name,
                } => self.by_name.get(&PairKey(product_key, device_name)),
            };
            match ix {
                Some(&ix) => out.extend_from_slice(&self.responses[ix as usize]),
                None => out.extend_from_slice(&self.empty),
            }
        });
    }
}

// ---- the byte-equality check --------------------------------------------------------------

/// True when the request has neither a module nor a status filter (the floor's domain).
pub fn unfiltered(query: &str) -> bool {
    let params = Params::decode(query, None);
    parse_request(&params, None)
        .map(|r| r.module().is_none() && r.statuses() == StatusSet::EMPTY)
        .unwrap_or(false)
}

/// The reference answers to the first [`check_count`] requests of the mix.
pub struct Reference {
    /// Who produced them.
    pub name: &'static str,
    responses: Vec<Vec<u8>>,
}

impl Reference {
    /// Answers the first requests with `imp`, asserting the answers are not trivially empty.
    pub fn record(name: &'static str, imp: &dyn Answer, queries: &[String]) -> Reference {
        let n = check_count().min(queries.len());
        let mut non_empty = 0;
        let responses: Vec<Vec<u8>> = queries[..n]
            .iter()
            .map(|q| {
                let mut out = Vec::new();
                imp.answer(q, &mut out);
                assert!(
                    out.starts_with(br#"{"code":"","data":{"simpleOTATaskInfo":["#),
                    "{name} did not answer {q:?} with success: {}",
                    String::from_utf8_lossy(&out)
                );
                if !out.starts_with(br#"{"code":"","data":{"simpleOTATaskInfo":[]"#) {
                    non_empty += 1;
                }
                out
            })
            .collect();
        assert!(
            non_empty * 3 > n,
            "only {non_empty} of {n} answers list a task: the check would prove little"
        );
        eprintln!("[bench] reference: {n} answers from {name}, {non_empty} with tasks");
        Reference { name, responses }
    }

    /// Asserts that `imp` answers every checked request with the same bytes (for the floor,
    /// only the requests without filters). Returns how many requests were compared.
    pub fn check(
        &self,
        name: &str,
        imp: &dyn Answer,
        queries: &[String],
        only_unfiltered: bool,
    ) -> usize {
        let mut out = Vec::new();
        let mut compared = 0;
        for (q, expected) in queries.iter().zip(&self.responses) {
            if only_unfiltered && !unfiltered(q) {
                continue;
            }
            out.clear();
            imp.answer(q, &mut out);
            assert!(
                out == *expected,
                "{name} and {} disagree on {q:?}:\n{name}: {}\n{}: {}",
                self.name,
                String::from_utf8_lossy(&out),
                self.name,
                String::from_utf8_lossy(expected),
            );
            compared += 1;
        }
        assert!(compared > 0, "nothing compared for {name}");
        eprintln!(
            "[bench] check: {name} == {} on {compared} requests",
            self.name
        );
        compared
    }
}
