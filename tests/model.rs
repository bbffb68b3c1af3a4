//! The main correctness test: random operation sequences applied in lockstep to the engine and
//! to a naive model of the reference (sections 1, 2, 3 and 7), with tiny key domains so that
//! task ids, devices, modules, timestamps and instances collide. Every answer is compared and
//! `internal_validate()` runs after every step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ota_index::rpc::{write_success, HttpRequest, KeyCase, Service};
use ota_index::{
    Engine, LoadErrorKind, Query, QueryError, Removal, StatusSet, TaskFields, TaskRecord,
    TaskStatus, Timestamp, UpsertOutcome, WriteError, WriteSummary,
};
use proptest::prelude::*;

/// Text ids, and ids the store keeps as numbers ("9", "10", "0") beside look-alikes it keeps
/// as text ("09", a number past 2^63): the answer orders them all by their bytes.
const TASK_IDS: [&str; 9] = [
    "t1",
    "t2",
    "t10",
    "t9",
    "9",
    "10",
    "0",
    "09",
    "9223372036854775808",
];
/// (iotId, productKey, deviceName): three consistent devices, then two identities that
/// contradict them (an iotId with another pair, a pair with another iotId).
const DEVICES: [(&str, &str, &str); 5] = [
    ("dev-a", "pk1", "lamp-a"),
    ("dev-b", "pk1", "lamp-b"),
    ("dev-c", "pk2", "lamp-a"),
    ("dev-a", "pk2", "lamp-z"),
    ("dev-x", "pk1", "lamp-a"),
];
const MODULES: [&str; 3] = ["ble", "BLE", "wifi"];
const INSTANCES: [&str; 3] = ["", "iot-2", "iot-3"];
const TIMES: [i64; 3] = [1_000, 2_000, 3_000];

#[derive(Debug, Clone)]
struct Rec {
    task: usize,
    device: usize,
    module: usize,
    instance: usize,
    status: usize,
    created: usize,
    modified: usize,
    version: u8,
    /// Breaks the deviceName rule (a bad record for bulk loads).
    invalid: bool,
}

impl Rec {
    fn record(&self) -> TaskRecord {
        let (iot, pk, dn) = DEVICES[self.device];
        TaskRecord {
            task_id: TASK_IDS[self.task].into(),
            job_id: format!("job-{}", self.version % 2),
            firmware_id: format!("fw-{}", self.version),
            iot_id: iot.into(),
            product_key: pk.into(),
            product_name: format!("Product \"{}\" é", self.version % 2),
            device_name: if self.invalid { "x".into() } else { dn.into() },
            module_name: MODULES[self.module].into(),
            src_version: if self.version.is_multiple_of(3) {
                String::new()
            } else {
                format!("1.{}", self.version)
            },
            dest_version: format!("2.{}", self.version),
            status: TaskStatus::ALL[self.status],
            utc_create: Timestamp::from_millis(TIMES[self.created]),
            utc_modified: Timestamp::from_millis(TIMES[self.modified]),
            iot_instance_id: INSTANCES[self.instance].into(),
            // The optional fields, from the version too (an empty one is unknown).
            progress: [None, Some("10"), Some("95"), Some("")][usize::from(self.version / 2 % 4)]
                .map(str::to_owned),
            task_desc: (self.version % 5 == 1).then(|| "offline".to_owned()),
            timeout: (self.version % 3 == 1).then(|| "1440".to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
enum DeviceSel {
    Iot(usize),
    Name(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Rec),
    Remove {
        instance: usize,
        task: usize,
    },
    Load(Vec<Rec>),
    RemoveTask {
        instance: usize,
        task: usize,
        time: usize,
    },
    RemoveDevice {
        instance: usize,
        device: usize,
        time: usize,
    },
    Query {
        instance: usize,
        device: DeviceSel,
        module: Option<usize>,
        statuses: u8,
    },
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0..TASK_IDS.len(),
        prop_oneof![4 => 0..3usize, 1 => 3..5usize],
        0..MODULES.len(),
        prop_oneof![3 => Just(0usize), 1 => 1..INSTANCES.len()],
        0..7usize,
        0..TIMES.len(),
        0..TIMES.len(),
        any::<u8>(),
    )
        .prop_map(
            |(task, device, module, instance, status, created, modified, version)| Rec {
                task,
                device,
                module,
                instance,
                status,
                created,
                modified,
                version,
                invalid: false,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => rec().prop_map(Op::Upsert),
        1 => (0..INSTANCES.len(), 0..TASK_IDS.len()).prop_map(|(instance, task)| Op::Remove { instance, task }),
        1 => (0..INSTANCES.len(), 0..TASK_IDS.len(), 0..TIMES.len())
            .prop_map(|(instance, task, time)| Op::RemoveTask { instance, task, time }),
        1 => (0..INSTANCES.len(), 0..DEVICES.len(), 0..TIMES.len())
            .prop_map(|(instance, device, time)| Op::RemoveDevice { instance, device, time }),
        1 => (proptest::collection::vec(rec(), 0..6), any::<u8>()).prop_map(|(mut recs, bad)| {
            // Sometimes one record of the load breaks a field rule.
            if bad.is_multiple_of(4) && !recs.is_empty() {
                let i = bad as usize % recs.len();
                recs[i].invalid = true;
            }
            Op::Load(recs)
        }),
        4 => (
            0..INSTANCES.len(),
            prop_oneof![(0..5usize).prop_map(DeviceSel::Iot), (0..5usize).prop_map(DeviceSel::Name)],
            proptest::option::of(0..MODULES.len()),
            0u8..16,
        )
            .prop_map(|(instance, device, module, statuses)| Op::Query { instance, device, module, statuses }),
    ]
}

/// A record's place in the order of a task's records: `utcModified`, the status's rank, then
/// the other fields in table order, the optional ones last (unknown first; empty is unknown).
#[allow(clippy::type_complexity)]
fn version(r: &TaskRecord) -> (Timestamp, u8, [&str; 10], Timestamp, [Option<&str>; 3]) {
    fn known(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|v| !v.is_empty())
    }
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
        [known(&r.progress), known(&r.task_desc), known(&r.timeout)],
    )
}

/// The reference's rules, written as plainly as possible.
#[derive(Default, Clone, Debug)]
struct Model {
    tasks: BTreeMap<(String, String), TaskRecord>,
    by_iot: HashMap<(String, String), (String, String)>,
    by_pair: HashMap<(String, String, String), String>,
    instances: BTreeSet<String>,
    /// (instance, taskId) → the latest removal of the task.
    task_tombs: HashMap<(String, String), Timestamp>,
    /// (instance, taskId) → the greatest version of the task a device's removal deleted.
    deleted: HashMap<(String, String), TaskRecord>,
    /// (instance, iotId) → the latest removal of the device.
    device_tombs: HashMap<(String, String), Timestamp>,
    /// (instance, productKey, deviceName) → the latest removal of the device bound to it.
    pair_tombs: HashMap<(String, String, String), Timestamp>,
    /// (instance, iotId) → the latest `utcModified` of a record that named the device bound.
    bound_at: HashMap<(String, String), Timestamp>,
}

fn later(slot: &mut Timestamp, at: Timestamp) {
    *slot = (*slot).max(at);
}

#[derive(Debug, PartialEq, Eq)]
enum ModelWrite {
    Done(UpsertOutcome),
    Invalid,
    Conflict,
}

impl Model {
    fn upsert(&mut self, r: &TaskRecord) -> ModelWrite {
        if r.validate().is_err() {
            return ModelWrite::Invalid;
        }
        let inst = r.iot_instance_id.clone();
        let iot_key = (inst.clone(), r.iot_id.clone());
        let pair_key = (inst.clone(), r.product_key.clone(), r.device_name.clone());
        let key = (inst.clone(), r.task_id.clone());
        // Covered by a tombstone: stale before any other check.
        let covers = |t: Option<&Timestamp>| t.copied().filter(|&t| t >= r.utc_modified);
        let by_task = covers(self.task_tombs.get(&key)).max(
            self.deleted
                .get(&key)
                .filter(|v| version(r) <= version(v))
                .map(|v| v.utc_modified),
        );
        let by_device =
            covers(self.device_tombs.get(&iot_key)).max(covers(self.pair_tombs.get(&pair_key)));
        let conflicts = self
            .by_iot
            .get(&iot_key)
            .is_some_and(|pair| *pair != (r.product_key.clone(), r.device_name.clone()))
            || self
                .by_pair
                .get(&pair_key)
                .is_some_and(|iot| *iot != r.iot_id);
        if let Some(at) = by_task.max(by_device) {
            if by_device.is_some() {
                // As the device's removal would have seen it: a greater record of the task
                // on the removed device is deleted with it. It binds nothing.
                let deletes = match self.tasks.get(&key) {
                    Some(s) => version(s) < version(r),
                    None => true,
                };
                if deletes {
                    self.tasks.remove(&key);
                    self.remember_deleted(key, r.clone());
                }
            } else if !conflicts {
                // Covered by its task's removal: it binds its device, as a stale record.
                later(
                    self.bound_at
                        .entry(iot_key.clone())
                        .or_insert(r.utc_modified),
                    r.utc_modified,
                );
                self.by_iot
                    .insert(iot_key, (r.product_key.clone(), r.device_name.clone()));
                self.by_pair.insert(pair_key, r.iot_id.clone());
            }
            return ModelWrite::Done(UpsertOutcome::Stale { stored: at });
        }
        if conflicts {
            return ModelWrite::Conflict;
        }
        // Every record not refused binds its device, stale or not.
        self.instances.insert(inst.clone());
        later(
            self.bound_at
                .entry(iot_key.clone())
                .or_insert(r.utc_modified),
            r.utc_modified,
        );
        self.by_iot
            .insert(iot_key, (r.product_key.clone(), r.device_name.clone()));
        self.by_pair.insert(pair_key, r.iot_id.clone());
        if let Some(stored) = self.tasks.get(&key) {
            match version(stored).cmp(&version(r)) {
                std::cmp::Ordering::Greater => {
                    return ModelWrite::Done(UpsertOutcome::Stale {
                        stored: stored.utc_modified,
                    })
                }
                std::cmp::Ordering::Equal => return ModelWrite::Done(UpsertOutcome::Unchanged),
                std::cmp::Ordering::Less => {}
            }
        }
        // Stored as the reference says: an empty optional field is unknown.
        let mut stored = r.clone();
        for value in [
            &mut stored.progress,
            &mut stored.task_desc,
            &mut stored.timeout,
        ] {
            if value.as_deref() == Some("") {
                *value = None;
            }
        }
        let outcome = if self.tasks.insert(key, stored).is_some() {
            UpsertOutcome::Replaced
        } else {
            UpsertOutcome::Inserted
        };
        ModelWrite::Done(outcome)
    }

    fn remember_deleted(&mut self, key: (String, String), version: TaskRecord) {
        match self.deleted.get(&key) {
            Some(kept) if crate::version(kept) >= crate::version(&version) => {}
            _ => {
                self.deleted.insert(key, version);
            }
        }
    }

    fn remove_task(&mut self, instance: &str, task: &str, at: Timestamp) -> Removal {
        self.instances.insert(instance.to_owned());
        let key = (instance.to_owned(), task.to_owned());
        later(self.task_tombs.entry(key.clone()).or_insert(at), at);
        if self.tasks.get(&key).is_some_and(|t| t.utc_modified <= at) {
            self.tasks.remove(&key);
            return Removal {
                tasks: 1,
                unbound: false,
            };
        }
        Removal::default()
    }

    fn remove_device(&mut self, instance: &str, iot: &str, at: Timestamp) -> Removal {
        self.instances.insert(instance.to_owned());
        let iot_key = (instance.to_owned(), iot.to_owned());
        later(self.device_tombs.entry(iot_key.clone()).or_insert(at), at);
        let Some((pk, dn)) = self.by_iot.get(&iot_key).cloned() else {
            return Removal::default();
        };
        let pair_key = (instance.to_owned(), pk, dn);
        later(self.pair_tombs.entry(pair_key.clone()).or_insert(at), at);
        let mine: Vec<(String, String)> = self
            .tasks
            .iter()
            .filter(|((inst, _), t)| inst == instance && t.iot_id == iot)
            .map(|(k, _)| k.clone())
            .collect();
        let mut removal = Removal::default();
        for key in &mine {
            if self.tasks[key].utc_modified <= at {
                let version = self.tasks.remove(key).unwrap();
                self.remember_deleted(key.clone(), version);
                removal.tasks += 1;
            }
        }
        // Unbound when no record naming it bound is newer than the removal.
        if self.bound_at[&iot_key] <= at {
            assert_eq!(removal.tasks, mine.len());
            self.by_iot.remove(&iot_key);
            self.by_pair.remove(&pair_key);
            self.bound_at.remove(&iot_key);
            removal.unbound = true;
        }
        removal
    }

    fn query(
        &self,
        instance: &str,
        device: &DeviceSel,
        module: Option<&str>,
        statuses: StatusSet,
    ) -> Result<Vec<TaskRecord>, ()> {
        if !instance.is_empty() && !self.instances.contains(instance) {
            return Err(());
        }
        let wanted = if statuses.is_empty() {
            StatusSet::UNFINISHED
        } else {
            statuses
        };
        let iot = match device {
            DeviceSel::Iot(d) => Some(DEVICES[*d].0.to_owned()),
            DeviceSel::Name(d) => {
                let (_, pk, dn) = DEVICES[*d];
                self.by_pair
                    .get(&(instance.to_owned(), pk.to_owned(), dn.to_owned()))
                    .cloned()
            }
        };
        let Some(iot) = iot else {
            return Ok(Vec::new());
        };
        let mut out: Vec<TaskRecord> = self
            .tasks
            .values()
            .filter(|t| t.iot_instance_id == instance && t.iot_id == iot)
            .filter(|t| t.status.is_unfinished() && wanted.contains(t.status))
            .filter(|t| module.is_none_or(|m| t.module_name.eq_ignore_ascii_case(m)))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (a.utc_create, a.task_id.as_bytes()).cmp(&(b.utc_create, b.task_id.as_bytes()))
        });
        Ok(out)
    }
}

fn to_jsonl(recs: &[TaskRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, r) in recs.iter().enumerate() {
        if i % 3 == 1 {
            out.extend_from_slice(b"   \n"); // blank lines are skipped, and counted
        }
        ota_index::fleet::write_record(&mut out, r);
        out.push(b'\n');
    }
    out
}

fn sorted_tasks(engine: &Engine) -> Vec<TaskRecord> {
    let mut t = engine.tasks();
    t.sort_by(|a, b| (&a.iot_instance_id, &a.task_id).cmp(&(&b.iot_instance_id, &b.task_id)));
    t
}

fn run(shards: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let engine = Engine::with_shards(shards);
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Upsert(r) => {
                let record = r.record();
                let want = model.upsert(&record);
                let got = engine.upsert(&record);
                match (&want, &got) {
                    (ModelWrite::Done(w), Ok(g)) => prop_assert_eq!(w, g, "step {}", step),
                    (ModelWrite::Conflict, Err(WriteError::IdentityConflict { .. })) => {}
                    (ModelWrite::Invalid, Err(WriteError::InvalidField(_))) => {}
                    _ => prop_assert!(false, "step {}: model {:?}, engine {:?}", step, want, got),
                }
            }
            Op::Remove { instance, task } => {
                let key = (INSTANCES[*instance].to_owned(), TASK_IDS[*task].to_owned());
                let want = model.tasks.remove(&key).is_some();
                prop_assert_eq!(
                    engine.remove(INSTANCES[*instance], TASK_IDS[*task]),
                    Ok(want)
                );
            }
            Op::RemoveTask {
                instance,
                task,
                time,
            } => {
                let at = Timestamp::from_millis(TIMES[*time]);
                let want = model.remove_task(INSTANCES[*instance], TASK_IDS[*task], at);
                prop_assert_eq!(
                    engine.remove_task(INSTANCES[*instance], TASK_IDS[*task], at),
                    Ok(want),
                    "step {}",
                    step
                );
            }
            Op::RemoveDevice {
                instance,
                device,
                time,
            } => {
                let at = Timestamp::from_millis(TIMES[*time]);
                let iot = DEVICES[*device].0;
                let want = model.remove_device(INSTANCES[*instance], iot, at);
                prop_assert_eq!(
                    engine.remove_device(INSTANCES[*instance], iot, at),
                    Ok(want),
                    "step {}",
                    step
                );
            }
            Op::Load(recs) => {
                let records: Vec<TaskRecord> = recs.iter().map(Rec::record).collect();
                let mut trial = model.clone();
                let mut failed_at = None;
                for (i, r) in records.iter().enumerate() {
                    match trial.upsert(r) {
                        ModelWrite::Done(_) => {}
                        ModelWrite::Invalid | ModelWrite::Conflict => {
                            failed_at = Some(i);
                            break;
                        }
                    }
                }
                let before = sorted_tasks(&engine);
                let got = engine.load_jsonl(&to_jsonl(&records));
                match (failed_at, got) {
                    (None, Ok(report)) => {
                        prop_assert_eq!(report.records, records.len());
                        model = trial;
                    }
                    (Some(i), Err(e)) => {
                        // Line numbers count the blank line written before records 1, 4, 7, …
                        let line = i + 1 + i.div_ceil(3);
                        prop_assert_eq!(e.line, line, "step {}: {}", step, e);
                        let expected_kind = matches!(
                            e.kind,
                            LoadErrorKind::InvalidField(_)
                                | LoadErrorKind::Write(WriteError::IdentityConflict { .. })
                        );
                        prop_assert!(expected_kind, "step {}: {}", step, e);
                        prop_assert_eq!(
                            sorted_tasks(&engine),
                            before,
                            "a failed load changed the store"
                        );
                    }
                    (want, got) => prop_assert!(
                        false,
                        "step {}: model fails at {:?}, engine {:?}",
                        step,
                        want,
                        got
                    ),
                }
            }
            Op::Query {
                instance,
                device,
                module,
                statuses,
            } => {
                let statuses: StatusSet = StatusSet::UNFINISHED
                    .iter()
                    .filter(|s| statuses & (1 << *s as u8) != 0)
                    .collect();
                let inst = INSTANCES[*instance];
                let module = module.map(|m| MODULES[m]);
                let mut query = match device {
                    DeviceSel::Iot(d) => Query::by_iot_id(DEVICES[*d].0),
                    DeviceSel::Name(d) => Query::by_name(DEVICES[*d].1, DEVICES[*d].2),
                }
                .statuses(statuses)
                .instance(inst);
                if let Some(m) = module {
                    query = query.module(m);
                }
                let want = model.query(inst, device, module, statuses);
                match (want, engine.unfinished(&query)) {
                    (Ok(want), Ok(answer)) => {
                        let got: Vec<TaskRecord> = answer.iter().map(|t| t.to_record()).collect();
                        prop_assert_eq!(&got, &want, "step {}: {:?}", step, query);
                        // The wire bytes: the engine's views (plain strings copied, the rest
                        // escaped) against the model's records, written field by field.
                        for case in [KeyCase::Camel, KeyCase::Pascal] {
                            let (mut wire, mut expected) = (Vec::new(), Vec::new());
                            write_success(&mut wire, case, "r", answer.iter());
                            write_success(&mut expected, case, "r", want.iter());
                            prop_assert_eq!(
                                String::from_utf8_lossy(&wire),
                                String::from_utf8_lossy(&expected),
                                "step {}: {:?}",
                                step,
                                case
                            );
                        }
                        drop(answer);
                        prop_assert_eq!(engine.count_unfinished(&query), Ok(want.len()));
                    }
                    (Err(()), Err(QueryError::InstanceNotFound(name))) => {
                        prop_assert_eq!(name, inst)
                    }
                    (want, got) => prop_assert!(
                        false,
                        "step {}: model {:?}, engine {:?}",
                        step,
                        want,
                        got.map(|a| a.len())
                    ),
                }
            }
        }
        if let Err(e) = engine.internal_validate() {
            prop_assert!(false, "step {}: invariant broken: {}", step, e);
        }
    }
    let want: Vec<TaskRecord> = model.tasks.values().cloned().collect();
    prop_assert_eq!(sorted_tasks(&engine), want);
    // Fleet-wide counts from the bitmaps agree with a scan of the model.
    let instances: Vec<String> = std::iter::once(String::new())
        .chain(model.instances.iter().cloned())
        .collect();
    for inst in &instances {
        for statuses in [
            StatusSet::EMPTY,
            StatusSet::UNFINISHED,
            StatusSet::only(TaskStatus::Failed),
        ] {
            for module in [None, Some("ble"), Some("WIFI"), Some("zigbee")] {
                for job in [None, Some("job-0"), Some("job-1"), Some("job-9")] {
                    let filter = ota_index::TaskFilter {
                        instance: Some(inst),
                        statuses,
                        module,
                        job,
                    };
                    let counted = model
                        .tasks
                        .values()
                        .filter(|t| &t.iot_instance_id == inst)
                        .filter(|t| statuses.is_empty() || statuses.contains(t.status))
                        .filter(|t| module.is_none_or(|m| t.module_name.eq_ignore_ascii_case(m)))
                        .filter(|t| job.is_none_or(|j| t.job_id == j))
                        .count() as u64;
                    prop_assert_eq!(engine.count_tasks(&filter), Ok(counted), "{:?}", filter);
                }
            }
        }
    }
    let mut instances = engine.instances();
    instances.retain(|i| !i.is_empty());
    let model_instances: Vec<String> = model
        .instances
        .iter()
        .filter(|i| !i.is_empty())
        .cloned()
        .collect();
    instances.sort();
    prop_assert_eq!(instances, model_instances);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_model(shards in 1usize..5, ops in proptest::collection::vec(op(), 1..60)) {
        run(shards, &ops)?;
    }
}

/// Upserts `records` in order, stopping at the first refusal: what a batch of them must do.
fn upsert_in_order(
    engine: &Engine,
    records: &[TaskRecord],
) -> Result<WriteSummary, (usize, WriteError)> {
    let mut summary = WriteSummary::default();
    for (i, r) in records.iter().enumerate() {
        match engine.upsert(r).map_err(|e| (i, e))? {
            UpsertOutcome::Inserted => summary.inserted += 1,
            UpsertOutcome::Replaced => summary.replaced += 1,
            UpsertOutcome::Unchanged => summary.unchanged += 1,
            UpsertOutcome::Stale { .. } => summary.stale += 1,
        }
    }
    Ok(summary)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// A batch (`write_batch`, and a bulk load of the same records) is its records upserted
    /// one by one, or nothing: the same counts and the same store; on a refusal, the same
    /// record and exactly the same error, and the store as it was. The tiny key domains make
    /// repeated tasks, stale records, bindings made and contradicted inside the batch and
    /// against the store (from the records upserted first, some of whose tasks are then
    /// removed) common; now and then a record breaks a field rule, after or before one that
    /// contradicts a binding.
    #[test]
    fn a_batch_is_its_records_upserted_in_order(
        shards in 1usize..4,
        prior in proptest::collection::vec(rec(), 0..8),
        removed in proptest::collection::vec((0..INSTANCES.len(), 0..TASK_IDS.len()), 0..4),
        batch in proptest::collection::vec(
            (rec(), prop_oneof![12 => Just(false), 1 => Just(true)])
                .prop_map(|(r, invalid)| Rec { invalid, ..r }),
            0..14,
        ),
    ) {
        let [batched, loaded, one_by_one] = [0; 3].map(|_| Engine::with_shards(shards));
        for r in &prior {
            let r = r.record();
            for engine in [&batched, &loaded, &one_by_one] {
                let _ = engine.upsert(&r);
            }
        }
        // Removing tasks leaves their devices bound: a store with bindings and no tasks.
        for &(instance, task) in &removed {
            for engine in [&batched, &loaded, &one_by_one] {
                let _ = engine.remove(INSTANCES[instance], TASK_IDS[task]);
            }
        }
        let before = sorted_tasks(&batched);
        let records: Vec<TaskRecord> = batch.iter().map(Rec::record).collect();
        let refs: Vec<_> = records.iter().map(TaskRecord::as_ref).collect();
        let want = upsert_in_order(&one_by_one, &records);
        let got = batched.write_batch(&refs);
        let load = loaded.load_jsonl(&to_jsonl(&records));
        match &want {
            Ok(summary) => {
                prop_assert_eq!(&got, &Ok(*summary));
                prop_assert_eq!(load.map(|r| r.summary), Ok(*summary));
                prop_assert_eq!(sorted_tasks(&batched), sorted_tasks(&one_by_one));
                prop_assert_eq!(sorted_tasks(&loaded), sorted_tasks(&one_by_one));
            }
            Err((i, e)) => {
                prop_assert_eq!(&got, &Err((*i, e.clone())));
                let load = load.expect_err("the load is refused");
                prop_assert_eq!(load.line, i + 1 + i.div_ceil(3));
                let kind = match e {
                    WriteError::InvalidField(f) => LoadErrorKind::InvalidField(f.clone()),
                    other => LoadErrorKind::Write(other.clone()),
                };
                prop_assert_eq!(load.kind, kind);
                prop_assert_eq!(sorted_tasks(&batched), before.clone());
                prop_assert_eq!(sorted_tasks(&loaded), before);
            }
        }
        for engine in [&batched, &loaded] {
            prop_assert!(engine.internal_validate().is_ok());
        }
    }
}

/// An event of a stored task: which task (an index into the store's tasks), its new status,
/// `utcModified` and `utcCreate` (indices into [`TIMES`]), and, rarely, one string changed
/// (`Some(k)`: the module, or another stored device's iotId, productKey or deviceName by `k`),
/// which takes the batch off the path for the usual event.
type Event = (usize, usize, usize, usize, Option<usize>);

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A batch of the usual events, stored tasks with every string unchanged (status
    /// changes, some stale, some of the same task one after the other, some moving a task's
    /// creation time), written shard by shard: the same counts and the same store as one by
    /// one, through `write_batch` and a bulk load alike; and so when one event changes a
    /// string too (a new module, or another device's iotId, productKey or deviceName, which
    /// may move the task or contradict a binding: then the same refusal, and nothing changed).
    #[test]
    fn a_batch_of_status_events_is_its_records_upserted_in_order(
        shards in 1usize..5,
        prior in proptest::collection::vec(rec(), 1..12),
        events in proptest::collection::vec(
            (
                any::<usize>(),
                0..7usize,
                0..TIMES.len(),
                0..TIMES.len(),
                prop_oneof![19 => Just(None), 1 => (0..4 * DEVICES.len()).prop_map(Some)],
            ),
            0..16,
        ),
    ) {
        let [batched, loaded, one_by_one] = [0; 3].map(|_| Engine::with_shards(shards));
        for r in &prior {
            let r = r.record();
            for engine in [&batched, &loaded, &one_by_one] {
                let _ = engine.upsert(&r);
            }
        }
        let stored = sorted_tasks(&one_by_one);
        prop_assume!(!stored.is_empty());
        let records: Vec<TaskRecord> = events
            .iter()
            .map(|&(task, status, modified, created, other): &Event| {
                let mut r = stored[task % stored.len()].clone();
                r.status = TaskStatus::ALL[status];
                r.utc_modified = Timestamp::from_millis(TIMES[modified]);
                r.utc_create = Timestamp::from_millis(TIMES[created]);
                if let Some(k) = other {
                    let (iot, pk, dn) = DEVICES[k / 4];
                    match k % 4 {
                        0 => r.module_name = format!("{}-x", r.module_name),
                        1 => r.iot_id = iot.into(),
                        2 => r.product_key = pk.into(),
                        _ => r.device_name = dn.into(),
                    }
                }
                r
            })
            .collect();
        let before = sorted_tasks(&batched);
        let refs: Vec<_> = records.iter().map(TaskRecord::as_ref).collect();
        let want = upsert_in_order(&one_by_one, &records);
        if events.iter().all(|e| e.4.is_none()) {
            prop_assert!(want.is_ok(), "events of stored tasks are never refused: {:?}", want);
        }
        prop_assert_eq!(batched.write_batch(&refs), want.clone());
        let load = loaded.load_jsonl(&to_jsonl(&records));
        match &want {
            Ok(summary) => {
                prop_assert_eq!(load.map(|r| r.summary), Ok(*summary));
                prop_assert_eq!(sorted_tasks(&batched), sorted_tasks(&one_by_one));
                prop_assert_eq!(sorted_tasks(&loaded), sorted_tasks(&one_by_one));
            }
            Err((_, e)) => {
                let load = load.expect_err("the load is refused");
                prop_assert_eq!(load.kind, LoadErrorKind::Write(e.clone()));
                prop_assert_eq!(sorted_tasks(&batched), before.clone());
                prop_assert_eq!(sorted_tasks(&loaded), before);
            }
        }
        for engine in [&batched, &loaded] {
            prop_assert!(engine.internal_validate().is_ok());
            // The answers too (the device posting lists and status bitmaps), where the batch
            // went in (a refused one left the store as it was, compared above).
            for (iot, _, _) in DEVICES.iter().filter(|_| want.is_ok()) {
                for instance in INSTANCES {
                    let query = Query::by_iot_id(iot).instance(instance);
                    let answer = |e: &Engine| {
                        e.unfinished(&query)
                            .map(|a| a.iter().map(|t| t.to_record()).collect::<Vec<_>>())
                            .map_err(|e| e.to_string())
                    };
                    prop_assert_eq!(answer(engine), answer(&one_by_one));
                }
            }
        }
    }
}

#[test]
fn binding_outlives_its_tasks() {
    let engine = Engine::new();
    let rec = Rec {
        task: 0,
        device: 0,
        module: 0,
        instance: 0,
        status: 1,
        created: 0,
        modified: 0,
        version: 1,
        invalid: false,
    };
    engine.upsert(&rec.record()).unwrap();
    assert_eq!(engine.remove("", "t1"), Ok(true));
    // dev-a is still bound to (pk1, lamp-a): another pair for it is a conflict.
    let other = Rec {
        device: 3,
        task: 1,
        ..rec.clone()
    };
    assert!(matches!(
        engine.upsert(&other.record()),
        Err(WriteError::IdentityConflict { .. })
    ));
    // And the pair is still bound to dev-a.
    let thief = Rec {
        device: 4,
        task: 2,
        ..rec
    };
    assert!(matches!(
        engine.upsert(&thief.record()),
        Err(WriteError::IdentityConflict { .. })
    ));
    engine.internal_validate().unwrap();
}

#[test]
fn identity_conflict_wins_over_staleness() {
    let engine = Engine::new();
    let new = Rec {
        task: 0,
        device: 0,
        module: 0,
        instance: 0,
        status: 1,
        created: 0,
        modified: 2,
        version: 1,
        invalid: false,
    };
    engine.upsert(&new.record()).unwrap();
    // Older than the stored task AND contradicting the binding: the conflict is reported.
    let old_conflicting = Rec {
        device: 3,
        modified: 0,
        ..new
    };
    assert!(matches!(
        engine.upsert(&old_conflicting.record()),
        Err(WriteError::IdentityConflict { .. })
    ));
}

/// A stale record binds its device (a binding is a fact about the device): a later record
/// contradicting that binding is refused, whether the two come one by one or in one load.
#[test]
fn a_stale_record_binds_its_device() {
    let engine = Engine::with_shards(1);
    let first = Rec {
        task: 3,
        device: 1,
        module: 0,
        instance: 0,
        status: 0,
        created: 0,
        modified: 1,
        version: 0,
        invalid: false,
    };
    engine.upsert(&first.record()).unwrap();
    let stale = Rec {
        device: 0,
        modified: 0,
        ..first.clone()
    };
    let other = Rec {
        task: 0,
        device: 3,
        modified: 0,
        ..first
    };
    let report = engine.load_jsonl(&to_jsonl(&[stale.record(), other.record()]));
    let error = report.expect_err("the second record contradicts the stale one's binding");
    assert_eq!(error.line, 3, "{error}"); // a blank line comes before the second record
    assert!(
        matches!(
            error.kind,
            LoadErrorKind::Write(WriteError::IdentityConflict { .. })
        ),
        "{error}"
    );
    assert_eq!(
        engine
            .upsert(&stale.record())
            .map(|o| matches!(o, UpsertOutcome::Stale { .. })),
        Ok(true)
    );
    assert!(matches!(
        engine.upsert(&other.record()),
        Err(WriteError::IdentityConflict { .. })
    ));
    engine.internal_validate().unwrap();
}

/// Tasks moving between devices of different shards while the task directory grows, fills
/// with removed entries and is rebuilt: a rebuild reads every task's row, so it must never
/// run while a move holds shard locks (it would wait on them forever), and every task must be
/// found on the device it last moved to.
#[test]
fn tasks_move_between_shards_while_the_directory_grows() {
    // A deadlock fails the test instead of hanging it (a liveness bound, not a timing one:
    // the work takes milliseconds).
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        move_tasks_between_shards();
        done.send(()).unwrap();
    });
    match finished.recv_timeout(std::time::Duration::from_secs(300)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("moving tasks deadlocked"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("moving tasks failed"),
    }
}

fn move_tasks_between_shards() {
    let engine = Engine::with_shards(4);
    let task = |t: usize, device: usize, modified: i64| TaskRecord {
        task_id: format!("task-{t}"),
        job_id: "job".into(),
        firmware_id: "fw".into(),
        iot_id: format!("dev-{device}"),
        product_key: "pk".into(),
        product_name: "Lamp".into(),
        device_name: format!("lamp-{device}"),
        module_name: "default".into(),
        src_version: "1.0".into(),
        dest_version: "2.0".into(),
        status: TaskStatus::Queued,
        utc_create: Timestamp::from_millis(1_000),
        utc_modified: Timestamp::from_millis(modified),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    };
    let mut model: BTreeMap<usize, usize> = BTreeMap::new();
    let mut clock = 1_000;
    let mut write = |t: usize, device: usize, model: &mut BTreeMap<usize, usize>| {
        clock += 1;
        let outcome = engine.upsert(&task(t, device, clock)).unwrap();
        let want = if model.insert(t, device).is_some() {
            UpsertOutcome::Replaced
        } else {
            UpsertOutcome::Inserted
        };
        assert_eq!(outcome, want, "task-{t} to dev-{device}");
    };
    for i in 0..600 {
        write(i, i % 16, &mut model);
        write(i / 2, (i + 7) % 16, &mut model);
        if i % 5 == 4 {
            let gone = i - 3;
            assert_eq!(
                engine.remove("", &format!("task-{gone}")),
                Ok(model.remove(&gone).is_some())
            );
        }
    }
    engine.internal_validate().unwrap();
    for device in 0..16 {
        let iot = format!("dev-{device}");
        let answer = engine.unfinished(&Query::by_iot_id(&iot)).unwrap();
        let mut got: Vec<String> = answer.iter().map(|t| t.task_id().to_owned()).collect();
        got.sort();
        let mut want: Vec<String> = model
            .iter()
            .filter(|&(_, &d)| d == device)
            .map(|(t, _)| format!("task-{t}"))
            .collect();
        want.sort();
        assert_eq!(got, want, "dev-{device}");
    }
}

/// Task ids the store keeps as numbers (the platform's are 19-digit decimals) and ids it keeps
/// as text come back byte for byte, are told apart where their numbers agree ("10", "010"),
/// and are ordered by their bytes (not their numbers) where `utcCreate` ties; upserts,
/// removals and lookups find each by its exact spelling.
#[test]
fn numeric_and_text_task_ids_keep_their_bytes_and_their_byte_order() {
    let engine = Engine::with_shards(2);
    let ids = [
        "1833712077827470001",
        "9",
        "10",
        "010",
        "100",
        "0",
        "00",
        "t",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551616",
    ];
    let task = |id: &str, status: TaskStatus, modified: i64| TaskRecord {
        task_id: id.into(),
        job_id: "1833634000000000001".into(),
        firmware_id: "fw".into(),
        iot_id: "dev-1".into(),
        product_key: "pk".into(),
        product_name: "Lamp".into(),
        device_name: "lamp-1".into(),
        module_name: "default".into(),
        src_version: "1.0".into(),
        dest_version: "2.0".into(),
        status,
        utc_create: Timestamp::from_millis(1_000),
        utc_modified: Timestamp::from_millis(modified),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    };
    for id in ids {
        assert_eq!(
            engine.upsert(&task(id, TaskStatus::Queued, 1_000)),
            Ok(UpsertOutcome::Inserted),
            "{id}"
        );
    }
    let listed = |engine: &Engine| -> Vec<String> {
        let answer = engine.unfinished(&Query::by_iot_id("dev-1")).unwrap();
        answer.iter().map(|t| t.task_id().to_owned()).collect()
    };
    let mut want: Vec<&str> = ids.to_vec();
    want.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(listed(&engine), want);
    for id in ids {
        assert_eq!(engine.get("", id).map(|t| t.task_id), Some(id.to_owned()));
    }
    assert_eq!(engine.get("", "0010"), None);
    assert_eq!(engine.get("", "1833712077827470002"), None);
    // A status change by the number's spelling touches that task only.
    assert_eq!(
        engine.upsert(&task("10", TaskStatus::InProgress, 2_000)),
        Ok(UpsertOutcome::Replaced)
    );
    assert_eq!(engine.get("", "10").unwrap().status, TaskStatus::InProgress);
    assert_eq!(engine.get("", "010").unwrap().status, TaskStatus::Queued);
    assert_eq!(engine.remove("", "10"), Ok(true));
    assert_eq!(engine.remove("", "10"), Ok(false));
    assert_eq!(engine.remove("", "00"), Ok(true));
    want.retain(|id| !["10", "00"].contains(id));
    assert_eq!(listed(&engine), want);
    // The wire answer writes a numeric id as its digits.
    let mut out = Vec::new();
    let service = Service::new(engine.clone());
    service.answer(
        &HttpRequest::get("Action=ListOTAUnfinishedTaskByDevice&IotId=dev-1"),
        &mut out,
    );
    let body = String::from_utf8(out).unwrap();
    assert!(body.contains(r#""taskId":"1833712077827470001""#), "{body}");
    assert!(body.contains(r#""taskId":"0""#), "{body}");
    assert!(!body.contains(r#""taskId":"10""#), "{body}");
    engine.internal_validate().unwrap();
}

/// A device's unfinished tasks as owned records.
fn answer(engine: &Engine, query: &Query<'_>) -> Vec<TaskRecord> {
    let found = engine.unfinished(query).unwrap();
    found.iter().map(|t| t.to_record()).collect()
}

/// A large batch of new tasks is applied shard by shard (runs of records under one shard
/// lock, the task directory filled last): the store it leaves must be the one upserting its
/// records one by one leaves, down to every device's answer by either name, the fleet-wide
/// counts by job (the job bitmaps) and the order in which instances got their ids. A second
/// batch of new tasks over the same devices goes the same way into a store that has them.
#[test]
fn a_fleet_loads_as_its_records_upserted_one_by_one() {
    let fleet = ota_index::fleet::Fleet::new(2_000);
    let mut records: Vec<TaskRecord> = fleet.tasks().collect();
    // Two named instances, first seen in this order, each holding a copy of some devices.
    let copies: Vec<TaskRecord> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 == 3)
        .map(|(i, r)| {
            let mut r = r.clone();
            r.iot_instance_id = if i % 2 == 0 { "iot-b" } else { "iot-a" }.into();
            r
        })
        .collect();
    records.extend(copies);
    // Held back for the second batch: every tenth task (new tasks of known devices).
    let (later, first): (Vec<_>, Vec<_>) = records
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 10 == 9);
    let first: Vec<TaskRecord> = first.into_iter().map(|(_, r)| r).collect();
    let later: Vec<TaskRecord> = later.into_iter().map(|(_, r)| r).collect();
    for shards in [1, 32] {
        let [loaded, batched, one_by_one] = [0; 3].map(|_| Engine::with_shards(shards));
        let want = upsert_in_order(&one_by_one, &first).expect("the first batch applies");
        assert_eq!(want.inserted, first.len());
        let got = loaded
            .load_jsonl(&to_jsonl(&first))
            .expect("the fleet loads");
        assert_eq!(got.summary, want);
        let refs: Vec<_> = first.iter().map(TaskRecord::as_ref).collect();
        assert_eq!(batched.write_batch(&refs), Ok(want));
        let want = upsert_in_order(&one_by_one, &later).expect("the second batch applies");
        assert_eq!(
            loaded.load_jsonl(&to_jsonl(&later)).map(|r| r.summary),
            Ok(want)
        );
        let refs: Vec<_> = later.iter().map(TaskRecord::as_ref).collect();
        assert_eq!(batched.write_batch(&refs), Ok(want));

        let expected = sorted_tasks(&one_by_one);
        assert_eq!(expected.len(), first.len() + later.len());
        for engine in [&loaded, &batched] {
            assert_eq!(engine.instances(), one_by_one.instances());
            assert_eq!(engine.device_count(), one_by_one.device_count());
            assert_eq!(sorted_tasks(engine), expected);
            engine.internal_validate().expect("a valid store");
            let mut jobs = BTreeSet::new();
            let mut devices = BTreeSet::new();
            for task in &expected {
                jobs.insert((task.iot_instance_id.clone(), task.job_id.clone()));
                let device = (&task.iot_instance_id, &task.iot_id, &task.module_name);
                if !devices.insert(device) {
                    continue; // asked already
                }
                let instance = task.iot_instance_id.as_str();
                let by_iot = Query::by_iot_id(&task.iot_id).instance(instance);
                let by_name = Query::by_name(&task.product_key, &task.device_name)
                    .instance(instance)
                    .module(&task.module_name);
                for query in [by_iot, by_name] {
                    assert_eq!(
                        answer(engine, &query),
                        answer(&one_by_one, &query),
                        "{query:?}"
                    );
                }
            }
            for (instance, job) in &jobs {
                let filter = ota_index::TaskFilter {
                    instance: Some(instance),
                    job: Some(job),
                    ..Default::default()
                };
                assert_eq!(engine.count_tasks(&filter), one_by_one.count_tasks(&filter));
            }
        }
    }
}

/// Every answer the engine can give over the tiny domains: each instance, device (by id and
/// by name), module filter and status set, as the RPC face writes it.
fn every_answer(engine: &Engine) -> Vec<String> {
    let service = Service::new(engine.clone());
    let mut out = Vec::new();
    for instance in INSTANCES {
        for (iot, pk, dn) in DEVICES {
            for device in [
                format!("IotId={iot}"),
                format!("ProductKey={pk}&DeviceName={dn}"),
            ] {
                for module in ["", "&ModuleName=ble", "&ModuleName=wifi"] {
                    for statuses in [
                        "",
                        "&TaskStatus=QUEUED",
                        "&TaskStatusList.1=CONFIRM&TaskStatusList.2=IN_PROGRESS",
                    ] {
                        let query = format!(
                            "Action=ListOTAUnfinishedTaskByDevice&{device}{module}{statuses}&IotInstanceId={instance}"
                        );
                        let mut body = Vec::new();
                        let status = service.answer(
                            &HttpRequest {
                                request_id: Some("r"),
                                ..HttpRequest::get(&query)
                            },
                            &mut body,
                        );
                        out.push(format!("{status} {}", String::from_utf8_lossy(&body)));
                    }
                }
            }
        }
    }
    out
}

/// One write of the convergence test: a record or a removal.
#[derive(Debug, Clone)]
enum Write {
    Record(Box<TaskRecord>),
    RemoveTask(usize, usize, usize),
    RemoveDevice(usize, usize, usize),
}

fn write() -> impl Strategy<Value = Write> {
    prop_oneof![
        8 => rec()
            .prop_filter("consistent devices only", |r| r.device < 3)
            .prop_map(|r| Write::Record(Box::new(r.record()))),
        1 => (0..INSTANCES.len(), 0..TASK_IDS.len(), 0..TIMES.len())
            .prop_map(|(i, t, m)| Write::RemoveTask(i, t, m)),
        1 => (0..INSTANCES.len(), 0..3usize, 0..TIMES.len())
            .prop_map(|(i, d, m)| Write::RemoveDevice(i, d, m)),
    ]
}

/// The engine's form of a convergence write.
fn as_write(w: &Write) -> ota_index::Write<'_> {
    let at = |m: usize| Timestamp::from_millis(TIMES[m]);
    match w {
        Write::Record(r) => ota_index::Write::Record(TaskRecord::as_ref(r)),
        Write::RemoveTask(i, t, m) => ota_index::Write::RemoveTask {
            instance: INSTANCES[*i],
            task_id: TASK_IDS[*t],
            utc_modified: at(*m),
        },
        Write::RemoveDevice(i, d, m) => ota_index::Write::RemoveDevice {
            instance: INSTANCES[*i],
            iot_id: DEVICES[*d].0,
            pair: None,
            utc_modified: at(*m),
        },
    }
}

/// Writes one of three ways: one at a time (upserts and removals), through
/// `Engine::apply_writes` in chunks, or bulk loaded in chunks as JSON Lines, removal lines
/// among the records (chunk sizes from `cuts`).
fn write_all(engine: &Engine, writes: &[Write], how: u8, cuts: &[usize]) {
    let mut rest = writes;
    let mut k = 0;
    while !rest.is_empty() {
        let n = match how % 3 {
            0 => 1,
            _ => (1 + cuts[k % cuts.len()]).min(rest.len()),
        };
        k += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        let writes: Vec<ota_index::Write<'_>> = chunk.iter().map(as_write).collect();
        match how % 3 {
            0 => match writes[0] {
                ota_index::Write::Record(r) => {
                    engine
                        .upsert_ref(&r)
                        .expect("conflict-free writes are accepted");
                }
                ota_index::Write::RemoveTask {
                    instance,
                    task_id,
                    utc_modified,
                } => {
                    engine.remove_task(instance, task_id, utc_modified).unwrap();
                }
                ota_index::Write::RemoveDevice {
                    instance,
                    iot_id,
                    utc_modified,
                    ..
                } => {
                    engine
                        .remove_device(instance, iot_id, utc_modified)
                        .unwrap();
                }
            },
            1 => {
                engine
                    .apply_writes(&writes)
                    .expect("conflict-free writes are accepted");
            }
            _ => {
                let mut text = Vec::new();
                for w in &writes {
                    ota_index::ingest::write_jsonl_write(&mut text, w);
                    text.push(b'\n');
                }
                engine
                    .load_jsonl(&text)
                    .expect("conflict-free writes are accepted");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Order never matters (reference section 2): a set of writes free of identity conflicts
    /// (the three consistent devices), with ties to the millisecond (three instants), repeats,
    /// every status and removals of tasks and devices, applied in two random orders, each
    /// through a random write path, ends in the same store: the same tasks and the same
    /// answer to every query.
    #[test]
    fn any_order_and_any_replay_ends_in_the_same_store(
        writes in proptest::collection::vec(write(), 1..40),
        repeats in proptest::collection::vec(0usize..40, 0..10),
        order in any::<u64>(),
        paths in (0u8..3, 0u8..3),
        cuts in proptest::collection::vec(0usize..8, 1..6),
        shards in (1usize..5, 1usize..5),
    ) {
        let mut first = writes.clone();
        for &i in &repeats {
            let again = first[i % first.len()].clone();
            first.push(again);
        }
        // A second order: a seeded shuffle of the first.
        let mut second = first.clone();
        let mut state = order | 1;
        for i in (1..second.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            second.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (a, b) = (Engine::with_shards(shards.0), Engine::with_shards(shards.1));
        write_all(&a, &first, paths.0, &cuts);
        write_all(&b, &second, paths.1, &cuts);
        a.internal_validate().map_err(TestCaseError::fail)?;
        b.internal_validate().map_err(TestCaseError::fail)?;
        let describe = |w: &[Write]| w.iter().map(|w| match w {
            Write::Record(r) => format!("R({} {} {} {:?} m{} v{})", r.task_id, r.iot_id, r.iot_instance_id, r.status, r.utc_modified.as_millis(), r.firmware_id),
            Write::RemoveTask(i, t, m) => format!("RT({} {} m{})", INSTANCES[*i], TASK_IDS[*t], TIMES[*m]),
            Write::RemoveDevice(i, d, m) => format!("RD({} {} m{})", INSTANCES[*i], DEVICES[*d].0, TIMES[*m]),
        }).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(sorted_tasks(&a), sorted_tasks(&b), "\nA {:?}: {}\nB {:?}: {}", paths.0, describe(&first), paths.1, describe(&second));
        prop_assert_eq!(a.device_count(), b.device_count(), "\nA {:?}: {}\nB {:?}: {}", paths.0, describe(&first), paths.1, describe(&second));
        prop_assert_eq!(every_answer(&a), every_answer(&b));
        // Replaying everything once more changes nothing.
        write_all(&a, &second, paths.1, &cuts);
        prop_assert_eq!(sorted_tasks(&a), sorted_tasks(&b), "\nREPLAY A {:?}: {}\nB {:?}: {}", paths.0, describe(&first), paths.1, describe(&second));
    }
}
