//! Random operation sequences applied in lockstep to the engine and to a naive model of
//! reference sections 1–3 and 7, over tiny key domains so that keys collide.
//!
//! Domains: 3 task ids; 2 instances (`""` and `iot-2`; queries also name an unknown one);
//! 3 devices with fixed identities plus 2 conflicting identities (one reuses a bound pair,
//! one rebinds a bound iotId); 2 modules differing only in case; all 7 statuses; a few
//! timestamps, so that `utcModified` ties and stale writes are common. Writes are single
//! upserts, removes, and bulk loads of a few records (as JSON Lines or through
//! `write_batch`), sometimes with one bad record. Every answer is compared with the model's
//! (whole records, in order), every error with the model's error, and after each step the
//! stored tasks, bindings, instances and `internal_validate()` are checked. No answer may hold
//! a task of another instance: job ids carry their instance's index.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ota_index::{
    Binding, Engine, Field, FieldError, LoadError, LoadErrorKind, Query, QueryError, RecordRef,
    StatusSet, TaskFields, TaskFilter, TaskRecord, TaskStatus, Timestamp, UpsertOutcome, Violation,
    WriteError, WriteSummary,
};

/// Text ids and ids the store keeps as numbers ("9", "10"; "010" stays text), which answers
/// order by their bytes.
const TASK_IDS: [&str; 6] = ["t1", "t2", "t3", "9", "10", "010"];
const INSTANCES: [&str; 2] = ["", "iot-2"];
const QUERY_INSTANCES: [&str; 3] = ["", "iot-2", "iot-none"];
/// (iotId, productKey, deviceName): 0–2 are the fleet; 3 reuses 0's pair with another
/// iotId, 4 binds 1's iotId to another pair.
const IDENTITIES: [(&str, &str, &str); 5] = [
    ("dev-a", "pk1", "dev_a"),
    ("dev-b", "pk1", "dev_b"),
    ("dev-c", "pk2", "dev_a"),
    ("dev-d", "pk1", "dev_a"),
    ("dev-b", "pk2", "dev_b"),
];
const QUERY_IOT_IDS: [&str; 5] = ["dev-a", "dev-b", "dev-c", "dev-d", "dev-zz"];
const QUERY_PAIRS: [(&str, &str); 5] = [
    ("pk1", "dev_a"),
    ("pk1", "dev_b"),
    ("pk2", "dev_a"),
    ("pk2", "dev_b"),
    ("pk9", "dev_z"),
];
const MODULES: [&str; 2] = ["ble", "BLE"];
const QUERY_MODULES: [&str; 5] = ["ble", "Ble", "BLE", "default", "bad module"];
const BASE_MS: i64 = 1_731_398_400_000; // 2024-11-12T08:00:00Z

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Rec {
    task: u8,
    device: u8,
    instance: bool,
    module: bool,
    status: u8,
    created: u8,
    modified: u8,
    job: bool,
    dest: bool,
    src: bool,
    /// Which optional fields are known (bits: progress, taskDesc, timeout).
    extras: u8,
}

impl Rec {
    fn record(self) -> TaskRecord {
        let inst = usize::from(self.instance);
        let (iot, pk, dn) = IDENTITIES[usize::from(self.device) % IDENTITIES.len()];
        TaskRecord {
            task_id: TASK_IDS[usize::from(self.task) % TASK_IDS.len()].into(),
            job_id: format!("j{inst}-{}", u8::from(self.job)),
            firmware_id: format!("f{inst}"),
            iot_id: iot.into(),
            product_key: pk.into(),
            product_name: if pk == "pk1" { "Lamp" } else { "Lamp Ω" }.into(),
            device_name: dn.into(),
            module_name: MODULES[usize::from(self.module)].into(),
            src_version: if self.src { "1.0" } else { "" }.into(),
            dest_version: if self.dest { "2.0" } else { "2.1 beta" }.into(),
            status: TaskStatus::ALL[usize::from(self.status) % 7],
            utc_create: Timestamp::from_millis(BASE_MS + i64::from(self.created % 3) * 1000),
            utc_modified: Timestamp::from_millis(BASE_MS + i64::from(self.modified % 4) * 1000),
            iot_instance_id: INSTANCES[inst].into(),
            // Optional fields of equal records but for them order the records too.
            progress: (self.extras & 1 != 0).then(|| "50".into()),
            task_desc: (self.extras & 2 != 0).then(|| "The device is offline.".into()),
            timeout: (self.extras & 4 != 0).then(|| "1440".into()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Upsert(Rec),
    Remove {
        instance: bool,
        task: u8,
    },
    Bulk {
        records: Vec<Rec>,
        /// A bad record: its kind and position.
        bad: Option<u8>,
        jsonl: bool,
        pascal: bool,
    },
    ByIotId {
        instance: u8,
        device: u8,
        module: Option<u8>,
        statuses: u8,
    },
    ByName {
        instance: u8,
        device: u8,
        module: Option<u8>,
        statuses: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    shards: u8,
    ops: Vec<Op>,
}

/// A record's place in the order of a task's records: `utcModified`, the status's rank,
/// then the other fields in table order, as bytes.
/// The order of section 2: time, status rank, the other fields, then the optional fields
/// (an absent one first).
#[allow(clippy::type_complexity)]
fn version(r: &TaskRecord) -> (Timestamp, u8, [&str; 10], Timestamp, [Option<&str>; 3]) {
    (
        r.utc_modified,
        r.status as u8,
        [
            &r.task_id,
            &r.job_id,
            &r.firmware_id,
            &r.iot_id,
            &r.product_key,
            &r.product_name,
            &r.device_name,
            &r.module_name,
            &r.src_version,
            &r.dest_version,
        ],
        r.utc_create,
        [
            r.progress.as_deref(),
            r.task_desc.as_deref(),
            r.timeout.as_deref(),
        ],
    )
}

/// Reference sections 1–3 and 7, naively.
#[derive(Clone, Default)]
struct Model {
    /// (instance, taskId) → the stored task.
    tasks: BTreeMap<(String, String), TaskRecord>,
    /// (instance, iotId) → (productKey, deviceName); bindings outlive their tasks.
    by_iot: HashMap<(String, String), (String, String)>,
    /// (instance, productKey, deviceName) → iotId.
    by_pair: HashMap<(String, String, String), String>,
    /// Instances named by an applied record (the default one always exists).
    instances: BTreeSet<String>,
}

impl Model {
    fn new() -> Model {
        Model {
            instances: BTreeSet::from([String::new()]),
            ..Model::default()
        }
    }

    fn conflict(&self, r: &TaskRecord) -> Option<WriteError> {
        let inst = r.iot_instance_id.clone();
        let bound = if let Some((pk, dn)) = self.by_iot.get(&(inst.clone(), r.iot_id.clone())) {
            if (pk, dn) == (&r.product_key, &r.device_name) {
                return None;
            }
            Binding::IotIdBoundTo {
                product_key: pk.clone(),
                device_name: dn.clone(),
            }
        } else {
            let key = (inst, r.product_key.clone(), r.device_name.clone());
            Binding::PairBoundTo {
                iot_id: self.by_pair.get(&key)?.clone(),
            }
        };
        Some(WriteError::IdentityConflict {
            iot_id: r.iot_id.clone(),
            product_key: r.product_key.clone(),
            device_name: r.device_name.clone(),
            bound,
        })
    }

    /// Section 2: identity first (every record not refused binds its device), then the
    /// order of the task's records: the greater is kept, an equal one is a no-op.
    fn upsert(&mut self, r: &TaskRecord) -> Result<UpsertOutcome, WriteError> {
        if let Some(e) = self.conflict(r) {
            return Err(e);
        }
        let key = (r.iot_instance_id.clone(), r.task_id.clone());
        let outcome = match self.tasks.get(&key) {
            Some(stored) => match version(stored).cmp(&version(r)) {
                std::cmp::Ordering::Greater => Some(UpsertOutcome::Stale {
                    stored: stored.utc_modified,
                }),
                std::cmp::Ordering::Equal => Some(UpsertOutcome::Unchanged),
                std::cmp::Ordering::Less => None,
            },
            None => None,
        };
        let inst = r.iot_instance_id.clone();
        self.instances.insert(inst.clone());
        self.by_iot.insert(
            (inst.clone(), r.iot_id.clone()),
            (r.product_key.clone(), r.device_name.clone()),
        );
        self.by_pair.insert(
            (inst, r.product_key.clone(), r.device_name.clone()),
            r.iot_id.clone(),
        );
        if let Some(kept) = outcome {
            return Ok(kept);
        }
        Ok(match self.tasks.insert(key, r.clone()) {
            Some(_) => UpsertOutcome::Replaced,
            None => UpsertOutcome::Inserted,
        })
    }

    /// All or nothing, records applied in order.
    #[allow(clippy::result_large_err)] // the shape of `Engine::write_batch`'s answer
    fn batch(&mut self, records: &[TaskRecord]) -> Result<WriteSummary, (usize, WriteError)> {
        let mut next = self.clone();
        let mut summary = WriteSummary::default();
        for (i, r) in records.iter().enumerate() {
            match next.upsert(r).map_err(|e| (i, e))? {
                UpsertOutcome::Inserted => summary.inserted += 1,
                UpsertOutcome::Replaced => summary.replaced += 1,
                UpsertOutcome::Unchanged => summary.unchanged += 1,
                UpsertOutcome::Stale { .. } => summary.stale += 1,
            }
        }
        *self = next;
        Ok(summary)
    }

    fn remove(&mut self, instance: &str, task: &str) -> bool {
        self.tasks
            .remove(&(instance.to_owned(), task.to_owned()))
            .is_some()
    }

    /// Section 3: validation (device, module, statuses), then the instance, then the answer.
    fn unfinished(
        &self,
        instance: &str,
        device: Result<&str, (&str, &str)>,
        module: Option<&str>,
        statuses: StatusSet,
    ) -> Result<Vec<TaskRecord>, QueryError> {
        if let Some(m) = module {
            if let Err(v) = Field::ModuleName.check(m) {
                return Err(QueryError::InvalidField(FieldError::new(
                    Field::ModuleName,
                    v,
                )));
            }
        }
        if let Some(finished) = statuses.iter().find(|s| !s.is_unfinished()) {
            return Err(QueryError::FinishedStatus(finished));
        }
        if !self.instances.contains(instance) {
            return Err(QueryError::InstanceNotFound(instance.to_owned()));
        }
        let statuses = if statuses.is_empty() {
            StatusSet::UNFINISHED
        } else {
            statuses
        };
        let iot = match device {
            Ok(iot) => iot.to_owned(),
            Err((pk, dn)) => {
                match self
                    .by_pair
                    .get(&(instance.to_owned(), pk.to_owned(), dn.to_owned()))
                {
                    Some(iot) => iot.clone(),
                    None => return Ok(Vec::new()),
                }
            }
        };
        let mut answer: Vec<TaskRecord> = self
            .tasks
            .values()
            .filter(|t| t.iot_instance_id == instance && t.iot_id == iot)
            .filter(|t| t.status.is_unfinished() && statuses.contains(t.status))
            .filter(|t| module.is_none_or(|m| t.module_name.eq_ignore_ascii_case(m)))
            .cloned()
            .collect();
        answer.sort_by(|a, b| (a.utc_create, &a.task_id).cmp(&(b.utc_create, &b.task_id)));
        Ok(answer)
    }
}

fn status_set(bits: u8) -> StatusSet {
    let mut set = StatusSet::EMPTY;
    for (i, s) in TaskStatus::ALL.into_iter().enumerate() {
        // Finished statuses asked for only now and then.
        if bits & (1 << i) != 0 && (s.is_unfinished() || bits & 0x80 != 0) {
            set.insert(s);
        }
    }
    set
}

fn json_line(r: &TaskRecord, pascal: bool) -> String {
    let mut fields = vec![
        (Field::TaskId, r.task_id.clone()),
        (Field::JobId, r.job_id.clone()),
        (Field::FirmwareId, r.firmware_id.clone()),
        (Field::IotId, r.iot_id.clone()),
        (Field::ProductKey, r.product_key.clone()),
        (Field::ProductName, r.product_name.clone()),
        (Field::DeviceName, r.device_name.clone()),
        (Field::ModuleName, r.module_name.clone()),
        (Field::SrcVersion, r.src_version.clone()),
        (Field::DestVersion, r.dest_version.clone()),
        (Field::TaskStatus, r.status.as_str().to_owned()),
        (Field::UtcCreate, stamp(r.utc_create)),
        (Field::UtcModified, stamp(r.utc_modified)),
    ];
    if !r.iot_instance_id.is_empty() {
        fields.push((Field::IotInstanceId, r.iot_instance_id.clone()));
    }
    for (field, value) in [
        (Field::Progress, &r.progress),
        (Field::TaskDesc, &r.task_desc),
        (Field::Timeout, &r.timeout),
    ] {
        if let Some(v) = value {
            fields.push((field, v.clone()));
        }
    }
    let body: Vec<String> = fields
        .into_iter()
        .map(|(f, v)| {
            let k = if pascal { f.pascal() } else { f.camel() };
            format!("{}:{}", serde_json::json!(k), serde_json::json!(v))
        })
        .collect();
    // An unknown key, ignored whatever its value.
    format!("{{{},\"rolloutRate\":\"0.5\"}}", body.join(","))
}

fn stamp(t: Timestamp) -> String {
    String::from_utf8(t.format().to_vec()).expect("timestamps are ASCII")
}

fn sorted(mut tasks: Vec<TaskRecord>) -> Vec<TaskRecord> {
    tasks.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    tasks
}

/// The bad record of a bulk load: `kind % 3` picks malformed JSON, a too-short deviceName or
/// a jobId that is a number (the last two only for JSON Lines; `write_batch` gets the short
/// name).
fn bad_line(kind: u8, good: &TaskRecord, pascal: bool) -> (String, fn(&LoadErrorKind) -> bool) {
    match kind % 3 {
        0 => (r#"{"taskId":"t1","#.to_owned(), |k| {
            matches!(k, LoadErrorKind::Json(_))
        }),
        1 => {
            let mut r = good.clone();
            r.device_name = "abc".into();
            (json_line(&r, pascal), |k| {
                matches!(k, LoadErrorKind::InvalidField(e)
                    if e.field == Field::DeviceName && matches!(e.violation, Violation::Length { .. }))
            })
        }
        _ => {
            let line = json_line(good, pascal);
            let key = if pascal { "\"JobId\":" } else { "\"jobId\":" };
            let start = line.find(key).expect("jobId is written") + key.len();
            let end = start + line[start..].find(',').expect("more fields follow");
            (format!("{}7{}", &line[..start], &line[end..]), |k| {
                matches!(k, LoadErrorKind::InvalidField(e)
                    if e.field == Field::JobId && e.violation == Violation::NotAString)
            })
        }
    }
}

fn check_state(engine: &Engine, model: &Model) {
    if let Err(broken) = engine.internal_validate() {
        panic!("invariant broken: {broken}");
    }
    let stored = sorted(engine.tasks());
    let expected: Vec<TaskRecord> = model.tasks.values().cloned().collect();
    assert_eq!(stored, sorted(expected), "stored tasks");
    assert_eq!(engine.len(), model.tasks.len());
    for inst in INSTANCES {
        for task in TASK_IDS {
            let want = model.tasks.get(&(inst.to_owned(), task.to_owned()));
            assert_eq!(
                engine.get(inst, task).as_ref(),
                want,
                "get({inst:?}, {task})"
            );
        }
    }
    let instances: BTreeSet<String> = engine.instances().into_iter().collect();
    assert_eq!(instances, model.instances, "instances");
    assert_eq!(engine.device_count(), model.by_iot.len(), "devices bound");
    for (idx, inst) in INSTANCES.iter().enumerate() {
        if !model.instances.contains(*inst) {
            continue;
        }
        let of_inst = || model.tasks.values().filter(|t| t.iot_instance_id == *inst);
        let all = TaskFilter {
            instance: Some(inst),
            ..TaskFilter::default()
        };
        assert_eq!(engine.count_tasks(&all), Ok(of_inst().count() as u64));
        let job = format!("j{idx}-0");
        let filter = TaskFilter {
            instance: Some(inst),
            statuses: StatusSet::UNFINISHED,
            module: Some("Ble"),
            job: Some(&job),
        };
        let want = of_inst()
            .filter(|t| t.status.is_unfinished() && t.job_id == job)
            .count();
        assert_eq!(engine.count_tasks(&filter), Ok(want as u64), "{filter:?}");
    }
}

fn check_query(
    engine: &Engine,
    model: &Model,
    instance: u8,
    device: Result<u8, u8>,
    module: Option<u8>,
    statuses: u8,
) {
    let inst_idx = usize::from(instance) % QUERY_INSTANCES.len();
    let inst = QUERY_INSTANCES[inst_idx];
    let module = module.map(|m| QUERY_MODULES[usize::from(m) % QUERY_MODULES.len()]);
    let statuses = status_set(statuses);
    let (mut query, model_device) = match device {
        Ok(d) => {
            let iot = QUERY_IOT_IDS[usize::from(d) % QUERY_IOT_IDS.len()];
            (Query::by_iot_id(iot), Ok(iot))
        }
        Err(d) => {
            let (pk, dn) = QUERY_PAIRS[usize::from(d) % QUERY_PAIRS.len()];
            (Query::by_name(pk, dn), Err((pk, dn)))
        }
    };
    query = query.statuses(statuses);
    if let Some(m) = module {
        query = query.module(m);
    }
    if !inst.is_empty() || instance & 0x80 != 0 {
        query = query.instance(inst);
    }
    let want = model.unfinished(inst, model_device, module, statuses);
    let got = engine
        .unfinished(&query)
        .map(|a| a.iter().map(|t| t.to_record()).collect::<Vec<_>>());
    assert_eq!(got, want, "{query:?}");
    assert_eq!(
        engine.count_unfinished(&query),
        want.map(|w| w.len()),
        "count of {query:?}"
    );
    if let Ok(answer) = &got {
        let marker = format!("j{inst_idx}-");
        for t in answer {
            assert!(
                t.job_id.starts_with(&marker),
                "task of another instance: {t:?} for {query:?}"
            );
        }
    }
}

fuzz_target!(|input: Input| {
    let engine = Engine::with_shards([1, 2, 4, 64][usize::from(input.shards % 4)]);
    let mut model = Model::new();
    for op in input.ops.into_iter().take(64) {
        match op {
            Op::Upsert(rec) => {
                let r = rec.record();
                let want = model.upsert(&r);
                assert_eq!(engine.upsert(&r), want, "upsert {r:?}");
            }
            Op::Remove { instance, task } => {
                let inst = INSTANCES[usize::from(instance)];
                let task = TASK_IDS[usize::from(task) % TASK_IDS.len()];
                let want = model.remove(inst, task);
                assert_eq!(
                    engine.remove(inst, task),
                    Ok(want),
                    "remove {inst:?} {task}"
                );
            }
            Op::Bulk {
                records,
                bad,
                jsonl,
                pascal,
            } => {
                let records: Vec<TaskRecord> =
                    records.into_iter().take(5).map(Rec::record).collect();
                let bad_at = bad.map(|b| usize::from(b / 3) % (records.len() + 1));
                if jsonl {
                    let mut lines: Vec<String> =
                        records.iter().map(|r| json_line(r, pascal)).collect();
                    let mut bad_check = None;
                    if let (Some(kind), Some(at)) = (bad, bad_at) {
                        let template = records.first().cloned().unwrap_or_else(|| {
                            Rec {
                                task: 0,
                                device: 0,
                                instance: false,
                                module: false,
                                status: 0,
                                created: 0,
                                modified: 0,
                                job: false,
                                dest: false,
                                src: false,
                                extras: 0,
                            }
                            .record()
                        });
                        let (line, check) = bad_line(kind, &template, pascal);
                        lines.insert(at, line);
                        bad_check = Some((at, check));
                    }
                    let input = lines.join("\n");
                    let got = engine.load_jsonl(input.as_bytes());
                    match bad_check {
                        Some((at, check)) => {
                            // The first bad line is reported: an identity conflict among the
                            // lines before the malformed one wins.
                            let e = got.expect_err("a bad line is refused");
                            match model.clone().batch(&records[..at]) {
                                Err((i, conflict)) => assert_eq!(
                                    e,
                                    LoadError {
                                        line: i + 1,
                                        kind: LoadErrorKind::Write(conflict)
                                    }
                                ),
                                Ok(_) => {
                                    assert_eq!(e.line, at + 1, "line of {e}");
                                    assert!(check(&e.kind), "kind of {e}");
                                }
                            }
                        }
                        None => {
                            let want = model.batch(&records).map_err(|(i, e)| LoadError {
                                line: i + 1,
                                kind: LoadErrorKind::Write(e),
                            });
                            let got = got.map(|report| {
                                assert_eq!(report.records, records.len());
                                report.summary
                            });
                            assert_eq!(got, want, "bulk load of\n{input}");
                        }
                    }
                } else {
                    let mut records = records;
                    if let Some(at) = bad_at {
                        let mut r = records.first().cloned().unwrap_or_else(|| {
                            Rec {
                                task: 1,
                                device: 1,
                                instance: true,
                                module: true,
                                status: 1,
                                created: 1,
                                modified: 1,
                                job: true,
                                dest: true,
                                src: true,
                                extras: 7,
                            }
                            .record()
                        });
                        r.device_name = "abc".into();
                        records.insert(at, r);
                    }
                    let refs: Vec<RecordRef<'_>> = records.iter().map(TaskRecord::as_ref).collect();
                    let got = engine.write_batch(&refs);
                    match bad_at {
                        Some(at) => {
                            // Refused at the first record one by one would refuse: an
                            // earlier identity conflict, else the bad record.
                            let (i, e) = got.expect_err("a bad record is refused");
                            match model.clone().batch(&records[..at]) {
                                Err(earlier) => assert_eq!((i, e), earlier),
                                Ok(_) => {
                                    assert_eq!(i, at);
                                    assert_eq!(e.field(), Some(Field::DeviceName));
                                }
                            }
                        }
                        None => assert_eq!(got, model.batch(&records), "write_batch {records:?}"),
                    }
                }
            }
            Op::ByIotId {
                instance,
                device,
                module,
                statuses,
            } => {
                check_query(&engine, &model, instance, Ok(device), module, statuses);
            }
            Op::ByName {
                instance,
                device,
                module,
                statuses,
            } => {
                check_query(&engine, &model, instance, Err(device), module, statuses);
            }
        }
        check_state(&engine, &model);
    }
});
