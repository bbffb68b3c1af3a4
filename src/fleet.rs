//! A deterministic, realistic fleet and query mix: the demo data of `serve`, and the workload
//! of the tests and benchmarks.
//!
//! Shape (per [`Fleet::new`]): 200 products with 1–3 OTA modules each; devices spread over the
//! products; 99% of devices hold 1–4 tasks (40/30/20/10%), 1% hold 50–200 (about 3.2 tasks a
//! device overall); about 60% of tasks unfinished; each product runs a few upgrade jobs, each
//! job one firmware of one module, with three source versions. Everything derives from the
//! seed and the device's index, so device `i` can be regenerated alone.
//!
//! [`Fleet::spread`] gives the same devices and task counts a shape with nothing shared:
//! jobs span products and modules, so nearly every task has its own combination of job,
//! firmware, product name, module and versions (the worst case for sharing those strings as
//! one tuple).

use crate::ingest::write_jsonl_record;
use crate::model::{TaskFields, TaskRecord, TaskStatus, Timestamp};

/// The modules a product may have, in order (product `p` has the first `1 + p % 3`).
const MODULES: [&str; 3] = ["default", "ble", "wifi"];
/// Upgrade jobs per product and module.
const JOBS_PER_MODULE: u64 = 4;
/// Why failed tasks failed, as the platform words it.
const FAILURES: [&str; 3] = [
    "The device is offline.",
    "Firmware download failed.",
    "Firmware verification failed.",
];
/// 2024-11-01T00:00:00Z.
const EPOCH_MS: i64 = 1_730_419_200_000;

/// A deterministic fleet of devices and their tasks.
///
/// ```
/// use ota_index::{fleet::Fleet, Engine};
/// let fleet = Fleet::new(1_000);
/// let engine = Engine::new();
/// engine.load_jsonl(&fleet.to_jsonl()).unwrap();
/// assert_eq!(engine.len(), fleet.tasks().count());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    devices: u64,
    products: u64,
    seed: u64,
    spread: bool,
}

/// One device of a [`Fleet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetDevice {
    /// The device's index in the fleet.
    pub index: u64,
    /// Its `iotId` (26 characters, like the platform's).
    pub iot_id: String,
    /// Its product key.
    pub product_key: String,
    /// Its device name.
    pub device_name: String,
    /// The modules of its product.
    pub modules: &'static [&'static str],
    product: u64,
}

/// splitmix64: a tiny, well-mixed, seedable generator (no dependency, same on every machine).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Fleet {
    /// A fleet of `devices` devices over 200 products, seed 42.
    pub fn new(devices: u64) -> Fleet {
        Fleet {
            devices,
            products: 200,
            seed: 42,
            spread: false,
        }
    }

    /// The same devices and task counts, each task of a job drawn over the whole fleet (a
    /// job spans products and modules) and a source version drawn apart: almost no two tasks
    /// share their combination of job, firmware, product name, module and versions.
    #[must_use]
    pub fn spread(mut self) -> Fleet {
        self.spread = true;
        self
    }

    /// The same shape with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Fleet {
        self.seed = seed;
        self
    }

    /// The number of devices.
    pub fn device_count(&self) -> u64 {
        self.devices
    }

    fn rng(&self, stream: u64, index: u64) -> SplitMix {
        let mut r = SplitMix::new(self.seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.0 ^= index.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        r.next_u64();
        r
    }

    /// Device `index` (`0..device_count()`).
    pub fn device(&self, index: u64) -> FleetDevice {
        let mut r = self.rng(1, index);
        let product = r.below(self.products);
        let mut iot_id = String::with_capacity(26);
        for _ in 0..26 {
            iot_id.push(BASE62[r.below(62) as usize] as char);
        }
        FleetDevice {
            index,
            iot_id,
            product_key: format!("a1{:09}", product * 7919 % 1_000_000_000),
            device_name: format!("dev-{index:08}"),
            modules: &MODULES[..1 + (product % 3) as usize],
            product,
        }
    }

    /// The tasks of device `index`.
    pub fn device_tasks(&self, index: u64) -> Vec<TaskRecord> {
        let device = self.device(index);
        let mut r = self.rng(2, index);
        let count = if r.percent(1) {
            50 + r.below(151)
        } else {
            match r.below(10) {
                0..=3 => 1,
                4..=6 => 2,
                7..=8 => 3,
                _ => 4,
            }
        };
        (0..count)
            .map(|k| {
                let module_ix = r.below(device.modules.len() as u64);
                let job = r.below(JOBS_PER_MODULE);
                let job_no = (device.product * 3 + module_ix) * JOBS_PER_MODULE + job;
                let status = if r.percent(60) {
                    TaskStatus::ALL[r.below(4) as usize]
                } else {
                    TaskStatus::ALL[4 + r.below(3) as usize]
                };
                // Tasks of one job are created together; devices differ by seconds.
                let created = EPOCH_MS + job_no as i64 * 3_600_000 + r.below(600_000) as i64;
                let modified = created + r.below(86_400_000) as i64;
                if self.spread {
                    return self.spread_task(&device, k, status, &mut r);
                }
                TaskRecord {
                    // In 128 bits: unique for every index (a fleet of any size), and for
                    // the indexes below 2^56 the same ids as ever.
                    task_id: format!(
                        "{}",
                        1_833_712_077_000_000_000u128 + u128::from(index) * 256 + u128::from(k)
                    ),
                    job_id: format!("{}", 1_833_634_000_000_000_000u64 + job_no),
                    firmware_id: format!("{}", 100_000 + job_no),
                    iot_id: device.iot_id.clone(),
                    product_key: device.product_key.clone(),
                    product_name: format!("Product {}", device.product),
                    device_name: device.device_name.clone(),
                    module_name: device.modules[module_ix as usize].to_owned(),
                    src_version: format!("1.{}.{}", job, r.below(3)),
                    dest_version: format!("2.{job}.0"),
                    status,
                    utc_create: Timestamp::from_millis(created),
                    utc_modified: Timestamp::from_millis(modified),
                    iot_instance_id: String::new(),
                    // Derived from values drawn above (no draw of their own, so every other
                    // field is what it always was): tasks upgrading report a progress, failed
                    // ones a reason, and half the jobs set a timeout.
                    progress: (status == TaskStatus::InProgress)
                        .then(|| format!("{}", modified % 100)),
                    task_desc: (status == TaskStatus::Failed)
                        .then(|| FAILURES[job_no as usize % FAILURES.len()].to_owned()),
                    timeout: job_no.is_multiple_of(2).then(|| "1440".to_owned()),
                }
            })
            .collect()
    }

    /// Task `k` of `device` in the [`Fleet::spread`] shape: a job drawn from about one for
    /// every two devices, so that a job's few tasks fall on any product and module; the
    /// source version drawn apart from it, the target version the job's firmware's.
    fn spread_task(
        &self,
        device: &FleetDevice,
        k: u64,
        status: TaskStatus,
        r: &mut SplitMix,
    ) -> TaskRecord {
        let job_no = r.below((self.devices / 2).max(1));
        let module_ix = r.below(device.modules.len() as u64);
        let created = EPOCH_MS + r.below(365 * 86_400_000) as i64;
        let modified = created + r.below(86_400_000) as i64;
        TaskRecord {
            task_id: format!(
                "{}",
                1_833_712_077_000_000_000u128 + u128::from(device.index) * 256 + u128::from(k)
            ),
            job_id: format!("{}", 1_833_634_000_000_000_000u64.wrapping_add(job_no)),
            firmware_id: format!("{}", 100_000u64.wrapping_add(job_no)),
            iot_id: device.iot_id.clone(),
            product_key: device.product_key.clone(),
            product_name: format!("Product {}", device.product),
            device_name: device.device_name.clone(),
            module_name: device.modules[module_ix as usize].to_owned(),
            src_version: format!("1.{}.{}", r.below(20), r.below(10)),
            dest_version: format!("2.{}.{}", job_no % 1000, job_no / 1000 % 100),
            status,
            utc_create: Timestamp::from_millis(created),
            utc_modified: Timestamp::from_millis(modified),
            iot_instance_id: String::new(),
            progress: (status == TaskStatus::InProgress).then(|| format!("{}", modified % 100)),
            task_desc: (status == TaskStatus::Failed)
                .then(|| FAILURES[job_no as usize % FAILURES.len()].to_owned()),
            timeout: job_no.is_multiple_of(2).then(|| "1440".to_owned()),
        }
    }

    /// Every task of the fleet, device by device.
    pub fn tasks(&self) -> impl Iterator<Item = TaskRecord> + '_ {
        (0..self.devices).flat_map(|i| self.device_tasks(i))
    }

    /// The fleet as JSON Lines (camelCase), ready for [`Engine::load_jsonl`](crate::Engine).
    pub fn to_jsonl(&self) -> Vec<u8> {
        self.jsonl_of(0..self.devices)
    }

    /// The tasks of the devices in `devices` as JSON Lines: a fleet in pieces, for loads
    /// that stream or come in batches.
    pub fn jsonl_of(&self, devices: std::ops::Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for task in devices.flat_map(|i| self.device_tasks(i)) {
            write_record(&mut out, &task);
            out.push(b'\n');
        }
        out
    }

    /// `n` request query strings of the benchmark mix: 80% by `IotId`, 20% by `ProductKey` +
    /// `DeviceName`, 30% with a `ModuleName`, half with one or more statuses, 5% for devices
    /// the fleet does not have.
    pub fn queries(&self, n: usize) -> Vec<String> {
        let mut r = self.rng(3, 0);
        (0..n)
            .map(|_| {
                let mut q = String::from("Action=ListOTAUnfinishedTaskByDevice");
                let device = self.device(r.below(self.devices.max(1)));
                let unknown = r.percent(5);
                if r.percent(80) {
                    let id = if unknown {
                        "UnknownDevice0000000000000"
                    } else {
                        &device.iot_id
                    };
                    q.push_str("&IotId=");
                    q.push_str(id);
                } else {
                    q.push_str("&ProductKey=");
                    q.push_str(&device.product_key);
                    q.push_str("&DeviceName=");
                    q.push_str(if unknown {
                        "no-such-device"
                    } else {
                        &device.device_name
                    });
                }
                if r.percent(30) {
                    q.push_str("&ModuleName=");
                    q.push_str(device.modules[r.below(device.modules.len() as u64) as usize]);
                }
                if r.percent(50) {
                    let first = TaskStatus::ALL[r.below(4) as usize];
                    if r.percent(50) {
                        q.push_str("&TaskStatus=");
                        q.push_str(first.as_str());
                    } else {
                        q.push_str("&TaskStatusList.1=");
                        q.push_str(first.as_str());
                        q.push_str("&TaskStatusList.2=");
                        q.push_str(TaskStatus::ALL[r.below(4) as usize].as_str());
                    }
                }
                q
            })
            .collect()
    }
}

/// Writes a record as one JSON Lines record ([`write_jsonl_record`]).
pub fn write_record(out: &mut Vec<u8>, task: &impl TaskFields) {
    write_jsonl_record(out, task);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped_as_documented() {
        let fleet = Fleet::new(20_000);
        assert_eq!(fleet.device(7), fleet.device(7));
        assert_eq!(fleet.device_tasks(7), Fleet::new(20_000).device_tasks(7));
        let tasks: Vec<TaskRecord> = fleet.tasks().collect();
        let per_device = tasks.len() as f64 / 20_000.0;
        assert!(
            (2.9..3.6).contains(&per_device),
            "{per_device} tasks a device"
        );
        let unfinished = tasks.iter().filter(|t| t.status.is_unfinished()).count();
        let share = unfinished as f64 / tasks.len() as f64;
        assert!((0.55..0.65).contains(&share), "{share} unfinished");
        for t in &tasks {
            assert_eq!(t.validate(), Ok(()), "{t:?}");
        }
        let ids: std::collections::HashSet<&str> =
            tasks.iter().map(|t| t.task_id.as_str()).collect();
        assert_eq!(ids.len(), tasks.len(), "task ids are unique");
    }

    /// The spread shape: the same devices and task counts, valid tasks, and almost no two
    /// tasks sharing job, product name, module and versions (98 % of them unique here).
    #[test]
    fn the_spread_shape_shares_almost_nothing() {
        let fleet = Fleet::new(5_000);
        let spread = fleet.spread();
        let mut combos = std::collections::HashSet::new();
        let mut n = 0;
        for i in 0..5_000 {
            let (a, b) = (fleet.device_tasks(i), spread.device_tasks(i));
            assert_eq!(a.len(), b.len());
            assert_eq!(fleet.device(i), spread.device(i));
            for t in &b {
                assert_eq!(t.validate(), Ok(()), "{t:?}");
                combos.insert((
                    t.job_id.clone(),
                    t.product_name.clone(),
                    t.module_name.clone(),
                    t.src_version.clone(),
                    t.dest_version.clone(),
                ));
                n += 1;
            }
        }
        assert!(combos.len() * 100 >= n * 98, "{} of {n}", combos.len());
        let jsonl = spread.to_jsonl();
        assert_eq!(
            [spread.jsonl_of(0..1_000), spread.jsonl_of(1_000..5_000)].concat(),
            jsonl
        );
    }

    /// Every index of `0..device_count()` gives valid tasks with ids of their own, the last
    /// ones of the largest fleet too (the ids once overflowed 64 bits there); the first ones
    /// keep their ids.
    #[test]
    fn the_largest_indexes_give_valid_distinct_tasks() {
        let fleet = Fleet::new(u64::MAX);
        let mut ids = std::collections::HashSet::new();
        for index in [u64::MAX - 2, u64::MAX - 1, 1 << 56, (1 << 56) - 1] {
            for t in fleet.device_tasks(index) {
                assert_eq!(t.validate(), Ok(()), "{t:?}");
                assert!(ids.insert(t.task_id.clone()), "{} twice", t.task_id);
            }
        }
        assert_eq!(fleet.device_tasks(0)[0].task_id, "1833712077000000000");
    }

    #[test]
    fn query_mix_proportions() {
        let qs = Fleet::new(1000).queries(10_000);
        let by_id = qs.iter().filter(|q| q.contains("&IotId=")).count();
        let module = qs.iter().filter(|q| q.contains("ModuleName=")).count();
        assert!((7_700..8_300).contains(&by_id), "{by_id}");
        assert!((2_700..3_300).contains(&module), "{module}");
    }
}
