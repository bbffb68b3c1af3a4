use super::devices::Locality;
use super::planner::Plan;
use super::*;
use crate::model::{StatusSet, TaskRecord, TaskStatus, Timestamp};
use smallvec::SmallVec;

fn record(i: u64, module: &str, status: TaskStatus, created: i64) -> TaskRecord {
    TaskRecord {
        task_id: format!("task-{}", (i * 7919) % 1009),
        job_id: format!("job-{}", i % 3),
        firmware_id: "fw".into(),
        iot_id: "gateway-1".into(),
        product_key: "pk".into(),
        product_name: "Gateway".into(),
        device_name: "gateway".into(),
        module_name: module.into(),
        src_version: String::new(),
        dest_version: "2.0".into(),
        status,
        utc_create: Timestamp::from_millis(created),
        utc_modified: Timestamp::from_millis(created),
        iot_instance_id: String::new(),
        progress: None,
        task_desc: None,
        timeout: None,
    }
}

/// Device `d`'s locality entry, if `d` owns its slot.
fn own_locality(shard: &Shard, d: DeviceIdx) -> Option<Locality> {
    let hash = device_hash(&shard.hasher, &shard.devices, &shard.device_strs, d.0);
    let entry = shard.locality[shard.locality_slot(hash)?];
    (entry.iot == shard.devices[d.idx()].iot.0).then_some(entry)
}

/// A device's locality entry names its first unfinished row after inserts that sort first
/// or last; a status change leaves it (the row stays the device's); a removal or a move of
/// the named row rewrites it; `validate` refuses an entry naming a row not the device's.
#[test]
fn locality_entries_name_a_row_of_their_device() {
    let mut shard = Shard::new(DefaultHashBuilder::default(), u32::MAX);
    let d = shard
        .add_device(InstanceId(0), "gateway-1", "pk", "gateway")
        .unwrap();
    let first = |shard: &Shard| own_locality(shard, d).map(|e| e.first_row);
    assert_eq!(first(&shard), Some(Locality::NONE));
    let late = record(1, "m", TaskStatus::Queued, 50);
    let r_late = shard.insert_task(d, &late.as_ref()).unwrap();
    assert_eq!(first(&shard), Some(r_late.0));
    let early = record(2, "m", TaskStatus::InProgress, 10);
    let r_early = shard.insert_task(d, &early.as_ref()).unwrap();
    assert_eq!(first(&shard), Some(r_early.0));
    let done = record(3, "m", TaskStatus::Succeeded, 5);
    let r_done = shard.insert_task(d, &done.as_ref()).unwrap();
    assert_eq!(
        first(&shard),
        Some(r_early.0),
        "a finished task is not posted"
    );
    // Status changes leave the entry: the row is still the device's.
    let mut succeeded = early.clone();
    succeeded.status = TaskStatus::Succeeded;
    assert!(shard.replace_task(r_early, d, &succeeded.as_ref()));
    assert_eq!(first(&shard), Some(r_early.0));
    shard.validate().unwrap();
    assert!(shard.replace_task(r_early, d, &early.as_ref()));
    assert_eq!(first(&shard), Some(r_early.0));
    // A removal of the named row (finished or not) rewrites the entry.
    assert!(shard.replace_task(r_early, d, &succeeded.as_ref()));
    shard.remove_task(r_early);
    assert_eq!(first(&shard), Some(r_late.0));
    shard.validate().unwrap();
    // A move of the named row to another device rewrites both devices' entries.
    let other = shard
        .add_device(InstanceId(0), "gateway-2", "pk", "gateway-2")
        .unwrap();
    let mut moved = late.clone();
    moved.iot_id = "gateway-2".into();
    moved.device_name = "gateway-2".into();
    assert!(shard.replace_task(r_late, other, &moved.as_ref()));
    // (The two devices may share a slot: then the later write, the move's, owns it.)
    assert!(matches!(first(&shard), Some(Locality::NONE) | None));
    assert_eq!(
        own_locality(&shard, other).map(|e| e.first_row),
        Some(r_late.0)
    );
    // Each removal rewrites its device's entry last, so that device owns the slot.
    shard.remove_task(r_late);
    assert_eq!(
        own_locality(&shard, other).map(|e| e.first_row),
        Some(Locality::NONE)
    );
    shard.remove_task(r_done);
    assert_eq!(first(&shard), Some(Locality::NONE));
    shard.validate().unwrap();

    // Many devices: every slot is sized and owned; a shrink keeps the entries.
    for i in 0..300u64 {
        let iot = format!("dev-{i}");
        let dev = shard.add_device(InstanceId(0), &iot, "pk", &iot).unwrap();
        let mut rec = record(i, "m", TaskStatus::Queued, i as i64);
        rec.iot_id = iot.clone();
        rec.device_name = iot;
        let row = shard.insert_task(dev, &rec.as_ref()).unwrap();
        if let Some(entry) = own_locality(&shard, dev) {
            assert_eq!(entry.first_row, row.0);
        }
    }
    assert_eq!(shard.locality.len(), 512);
    shard.validate().unwrap();
    // Batches reserve room for their devices: the slots grow to the next power of two
    // of what the batches add, not by each batch.
    for _ in 0..20 {
        shard.reserve(&Growth {
            rows: 0,
            key_bytes: 0,
            devices: 100,
            device_bytes: 0,
        });
        assert_eq!(shard.locality.len(), 512);
    }
    shard.reserve(&Growth {
        rows: 0,
        key_bytes: 0,
        devices: 300,
        device_bytes: 0,
    });
    assert_eq!(shard.locality.len(), 1024);
    shard.validate().unwrap();
    shard.shrink_to_fit();
    assert_eq!(shard.locality.len(), 512);
    shard.validate().unwrap();
    shard.shrink_to_fit();
    assert_eq!(shard.locality.len(), 512);
    shard.validate().unwrap();

    // A stale entry is caught.
    let owned = (0..shard.devices.len() as u32)
        .map(DeviceIdx)
        .find(|&d| own_locality(&shard, d).is_some_and(|e| e.first_row != Locality::NONE))
        .unwrap();
    let hash = device_hash(&shard.hasher, &shard.devices, &shard.device_strs, owned.0);
    let slot = shard.locality_slot(hash).unwrap();
    shard.locality[slot].first_row += 1;
    assert!(shard.validate().unwrap_err().contains("stale locality"));
    shard.locality[slot] = Locality::EMPTY;
    assert!(shard.validate().unwrap_err().contains("slot is empty"));
}

/// Both plans give the same rows in the same order, and the planner picks the bitmap for a
/// rare module of a large device.
#[test]
fn plans_agree_and_the_planner_picks_by_cardinality() {
    let mut shard = Shard::new(DefaultHashBuilder::default(), u32::MAX);
    let d = shard
        .add_device(InstanceId(0), "gateway-1", "pk", "gateway")
        .unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..400u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let module = match x % 100 {
            0 | 1 => "Rare",
            2..=40 => "wifi",
            _ => "ble",
        };
        let status = TaskStatus::ALL[(x >> 8) as usize % 7];
        let rec = record(i, module, status, (x >> 20) as i64 % 50);
        shard.insert_task(d, &rec.as_ref()).unwrap();
    }
    shard.validate().unwrap();
    for module in ["rare", "WIFI", "ble"] {
        let m = shard.module_key(module).unwrap();
        let bitmap = shard.bitmaps.module(InstanceId(0), m).unwrap();
        for statuses in [
            StatusSet::UNFINISHED,
            StatusSet::only(TaskStatus::Queued),
            StatusSet::only(TaskStatus::Confirm).with(TaskStatus::InProgress),
        ] {
            let (mut probe, mut by_bitmap) = (SmallVec::new(), SmallVec::new());
            shard.collect_by_probe(d, Some(m), statuses, &mut probe);
            shard.collect_by_bitmap(d, bitmap, statuses, &mut by_bitmap);
            assert_eq!(probe, by_bitmap, "{module} {statuses:?}");
        }
        let rare = module == "rare";
        assert_eq!(
            matches!(shard.plan(d, Some(m)), Plan::ModuleBitmap(_)),
            rare,
            "plan for {module}"
        );
    }
}
