//! Variants rendered once for the whole engine: the JSON text of a task's six shared strings
//! with their keys, which an answer copies in four pieces instead of writing ten keys and
//! six values from six dictionary entries.
//!
//! A variant (job, firmware, product name, module, source and target version) is shared by
//! the tasks of one job, in every shard that holds some of them. Each shard keeps its own
//! variant ids and strings (a shard's writer needs no other lock), but the rendered text is
//! kept once, in the engine's [`FragmentPool`]: each shard's variant slot holds an
//! `Arc<[u8]>` of it. The fleet of the benchmarks has about 4,800 variants and 32 shards, so
//! the text is 4,800 entries (about 2 MB, both key styles) instead of 150,000, and stays in
//! the caches where six dictionary strings a task did not.
//!
//! The layout of a fragment is [`render_variant`]'s: a header with the ends of the four
//! pieces, then the text in camelCase, then in PascalCase. A reader holding a shard's read
//! lock reads its slot's fragment without any other lock: the `Arc` keeps it alive while the
//! slot does, and slots change only under the shard's write lock.
//!
//! The pool is bounded ([`POOL_MAX_BYTES`]): a variant rendered past the bound gets no
//! fragment, and its tasks are written field by field, with the same bytes.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::rpc::response::{render_variant, KeyCase};

/// Most bytes of rendered text the pool keeps, for the whole engine. Realistic data
/// (tasks of the same job share a variant) needs a few megabytes; data where every task has
/// its own job would otherwise add a fragment of a few hundred bytes a task.
pub(crate) const POOL_MAX_BYTES: usize = 32 << 20;

/// Bytes before a fragment's text: the ends of its four pieces, as `u16`.
const HEADER: usize = 8;

/// The four pieces of `fragment`'s text in `case`: `{"destVersion":"…","deviceName":"`,
/// `","firmwareId":"…","iotId":"`, `","jobId":"…","moduleName":"…","productKey":"` and
/// `","productName":"…","srcVersion":"…","taskId":"` (keys in `case`'s style).
#[inline(always)]
pub(crate) fn pieces(fragment: &[u8], case: KeyCase) -> [&[u8]; 4] {
    const NONE: [&[u8]; 4] = [&[]; 4];
    let Some((header, texts)) = fragment.split_first_chunk::<HEADER>() else {
        return NONE;
    };
    let ends = u64::from_le_bytes(*header);
    let end = |i: u32| (ends >> (16 * i)) as u16 as usize;
    let len = end(3);
    let text = match case {
        KeyCase::Camel => texts.get(..len),
        KeyCase::Pascal => texts.get(len..2 * len),
    };
    let split = || {
        let (a, rest) = text?.split_at_checked(end(0))?;
        let (b, rest) = rest.split_at_checked(end(1).checked_sub(end(0))?)?;
        let (c, d) = rest.split_at_checked(end(2).checked_sub(end(1))?)?;
        Some([a, b, c, d])
    };
    split().unwrap_or(NONE)
}

/// One rendered variant of the pool, with what finds it.
struct Entry {
    /// The shards' hash of the six strings ([`Shard`](crate::store::Shard)'s variant hash).
    hash: u64,
    /// The six strings in the shards' order: job, firmware, product name, module, source
    /// and target version.
    strings: [Box<str>; 6],
    fragment: Arc<[u8]>,
}

/// The engine's rendered variants, each once, shared by the shards' variant slots. Found by
/// the hash the shards already computed for their own variant tables (every shard hashes
/// alike) and the six strings, so that a shard adding a variant the pool has renders nothing.
pub(crate) struct FragmentPool {
    table: HashTable<Entry>,
    /// Bytes held: text (headers included) and the strings.
    bytes: usize,
    /// Most bytes held: [`POOL_MAX_BYTES`] (tests lower it).
    limit: usize,
}

impl Default for FragmentPool {
    fn default() -> FragmentPool {
        FragmentPool {
            table: HashTable::new(),
            bytes: 0,
            limit: POOL_MAX_BYTES,
        }
    }
}

impl FragmentPool {
    /// The fragment of the six strings (job, firmware, product name, module, source and
    /// target version), whose variant hash is `hash`: shared if the pool has it; `None` when
    /// it would pass [`POOL_MAX_BYTES`] or a piece is longer than 65,535 bytes.
    pub(crate) fn get(&mut self, hash: u64, strings: [&str; 6]) -> Option<Arc<[u8]>> {
        let same = |e: &Entry| e.hash == hash && e.strings.iter().map(|s| &**s).eq(strings);
        if let Some(found) = self.table.find(hash, same) {
            return Some(Arc::clone(&found.fragment));
        }
        let [job, firmware, product_name, module, src, dest] = strings;
        let mut text = Vec::new();
        render_variant(&mut text, [dest, firmware, job, module, product_name, src])?;
        let size = text.len() + strings.iter().map(|s| s.len()).sum::<usize>();
        if self.bytes + size > self.limit {
            return None;
        }
        let fragment: Arc<[u8]> = Arc::from(text);
        self.bytes += size;
        let entry = Entry {
            hash,
            strings: strings.map(Box::from),
            fragment: Arc::clone(&fragment),
        };
        self.table.insert_unique(hash, entry, |e| e.hash);
        Some(fragment)
    }

    /// Gives back a slot's fragment (of the variant hashed `hash`); the pool drops its own
    /// when no slot holds it any more.
    pub(crate) fn release(&mut self, hash: u64, fragment: Arc<[u8]>) {
        // Two: the caller's and the pool's. Every clone is made under the pool's lock.
        if Arc::strong_count(&fragment) == 2 {
            if let Ok(entry) = self
                .table
                .find_entry(hash, |e| Arc::ptr_eq(&e.fragment, &fragment))
            {
                let (e, _) = entry.remove();
                self.bytes -= Self::size(&e);
            }
        }
    }

    fn size(e: &Entry) -> usize {
        e.fragment.len() + e.strings.iter().map(|s| s.len()).sum::<usize>()
    }

    /// Heap bytes: the fragments, their strings and the table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes
            + self.table.len() * 2 * std::mem::size_of::<usize>() // each Arc's counts
            + self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
    }

    /// Checks the pool against `held`, how many variant slots hold each fragment (by the
    /// address of its bytes): every held fragment is the pool's, every pool entry is held
    /// by exactly that many slots (none leaked), and the byte count is the entries' sum.
    pub(crate) fn validate(&self, held: &hashbrown::HashMap<usize, usize>) -> Result<(), String> {
        let mut bytes = 0;
        for e in self.table.iter() {
            bytes += Self::size(e);
            let fragment = &e.fragment;
            let slots = held
                .get(&(fragment.as_ptr() as usize))
                .copied()
                .unwrap_or(0);
            if slots == 0 || Arc::strong_count(fragment) != slots + 1 {
                return Err(format!(
                    "a fragment held by {slots} slots counts {} references",
                    Arc::strong_count(fragment)
                ));
            }
        }
        if held.len() != self.table.len() {
            return Err(format!(
                "slots hold {} fragments, the pool {}",
                held.len(),
                self.table.len()
            ));
        }
        if bytes != self.bytes {
            return Err(format!("{} bytes counted, {bytes} held", self.bytes));
        }
        Ok(())
    }

    /// Fragments held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Lowers the bound, for tests.
    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Job, firmware, product name, module, source and target version.
    const STRINGS: [&str; 6] = ["job-1", "fw-1", "Lamp", "wifi", "1.0", "2.0"];

    /// A variant hash (the shards' is random per engine; any function of the strings works).
    fn hash(strings: [&str; 6]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        strings.hash(&mut h);
        h.finish()
    }

    #[test]
    fn pieces_are_the_keys_and_values_in_each_style() {
        let mut pool = FragmentPool::default();
        let f = pool.get(hash(STRINGS), STRINGS).unwrap();
        let camel = pieces(&f, KeyCase::Camel);
        assert_eq!(
            camel.map(|p| std::str::from_utf8(p).unwrap()),
            [
                r#"{"destVersion":"2.0","deviceName":""#,
                r#"","firmwareId":"fw-1","iotId":""#,
                r#"","jobId":"job-1","moduleName":"wifi","productKey":""#,
                r#"","productName":"Lamp","srcVersion":"1.0","taskId":""#,
            ]
        );
        let pascal = pieces(&f, KeyCase::Pascal);
        assert_eq!(
            pascal.map(|p| std::str::from_utf8(p).unwrap()),
            [
                r#"{"DestVersion":"2.0","DeviceName":""#,
                r#"","FirmwareId":"fw-1","IotId":""#,
                r#"","JobId":"job-1","ModuleName":"wifi","ProductKey":""#,
                r#"","ProductName":"Lamp","SrcVersion":"1.0","TaskId":""#,
            ]
        );
    }

    #[test]
    fn values_are_escaped() {
        let mut pool = FragmentPool::default();
        let strings = ["e\nf", "c\\d", "智能灯", "\u{1}", "", "a\"b"];
        let f = pool.get(hash(strings), strings).unwrap();
        let text: Vec<u8> = pieces(&f, KeyCase::Camel).concat();
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            r#"{"destVersion":"a\"b","deviceName":"","firmwareId":"c\\d","iotId":"","jobId":"e\nf","moduleName":"\u0001","productKey":"","productName":"智能灯","srcVersion":"","taskId":""#
        );
    }

    #[test]
    fn equal_variants_share_one_fragment_until_the_last_is_released() {
        let mut pool = FragmentPool::default();
        let a = pool.get(hash(STRINGS), STRINGS).unwrap();
        let b = pool.get(hash(STRINGS), STRINGS).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let mut other = STRINGS;
        other[4] = "1.1";
        let c = pool.get(hash(other), other).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(pool.len(), 2);
        let held = pool.bytes;
        pool.release(hash(STRINGS), a);
        assert_eq!((pool.len(), pool.bytes), (2, held), "b still holds it");
        pool.release(hash(STRINGS), b);
        pool.release(hash(other), c);
        assert_eq!((pool.len(), pool.bytes), (0, 0));
        // Rendered again after being dropped.
        assert!(pool.get(hash(STRINGS), STRINGS).is_some());
        assert_eq!(pool.len(), 1);
    }

    /// Past the bound, variants have no fragment and their tasks are written field by field:
    /// the answers are the same bytes either way, in both key styles, through removals
    /// that free fragments and make room for new ones.
    #[test]
    fn answers_are_the_same_with_and_without_fragments() {
        use crate::fleet::Fleet;
        use crate::rpc::response::write_success;
        use crate::{Engine, Query, TaskFields, TaskRecord, TaskStatus};

        let engine = Engine::with_shards(4);
        engine.fragment_pool().lock().set_limit(20 * 1024);
        let fleet = Fleet::new(60);
        let mut records: Vec<TaskRecord> = Vec::new();
        for (i, mut record) in fleet.tasks().enumerate() {
            record.status = TaskStatus::Queued;
            // Every task its own variant, some needing escapes.
            record.job_id = format!("job-{i}");
            record.product_name = format!("Lamp \"{i}\" \\ é");
            engine.upsert(&record).unwrap();
            records.push(record);
        }
        let check = |records: &[TaskRecord]| {
            let (mut with, mut without) = (0, 0);
            for device in 0..fleet.device_count() {
                let iot = fleet.device(device).iot_id;
                let answer = engine.unfinished(&Query::by_iot_id(&iot)).unwrap();
                for task in answer.iter() {
                    if task.rendered_json(KeyCase::Camel).is_some() {
                        with += 1;
                    } else {
                        without += 1;
                    }
                }
                let mut want: Vec<&TaskRecord> =
                    records.iter().filter(|r| r.iot_id == iot).collect();
                want.sort_by(|a, b| {
                    (a.utc_create, a.task_id.as_bytes()).cmp(&(b.utc_create, b.task_id.as_bytes()))
                });
                for case in [KeyCase::Camel, KeyCase::Pascal] {
                    let (mut got, mut expected) = (Vec::new(), Vec::new());
                    write_success(&mut got, case, "r", answer.iter());
                    write_success(&mut expected, case, "r", want.iter().copied());
                    assert_eq!(
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&expected)
                    );
                }
            }
            engine.internal_validate().unwrap();
            (with, without)
        };
        let (with, without) = check(&records);
        assert!(with > 10 && without > 10, "{with} rendered, {without} not");
        assert!(engine.fragment_pool().lock().bytes <= 20 * 1024);
        // Removing tasks frees their variants' fragments; new variants get them again.
        let removed: Vec<TaskRecord> = records.drain(..records.len() / 2).collect();
        for r in &removed {
            assert!(engine.remove("", &r.task_id).unwrap());
        }
        for r in records.iter_mut().take(20) {
            r.dest_version = format!("{}-b", r.dest_version);
            engine.upsert(r).unwrap();
        }
        let (with_after, _) = check(&records);
        assert!(with_after >= 20, "{with_after} rendered after the removals");
    }

    #[test]
    fn the_pool_is_bounded_and_a_piece_fits_its_header() {
        let mut pool = FragmentPool::default();
        let long = "x".repeat(40_000);
        assert!(
            pool.get(0, ["", "", &long, "", &long, ""]).is_none(),
            "piece > 64 KiB"
        );
        assert_eq!(pool.len(), 0);
        let big = "y".repeat(30_000);
        let mut held = Vec::new();
        let mut n = 0u64;
        while let Some(f) = pool.get(n, [&n.to_string(), "", "", "", "", &big]) {
            held.push(f);
            n += 1;
        }
        assert!(pool.bytes <= POOL_MAX_BYTES);
        assert!(pool.bytes + 120_000 > POOL_MAX_BYTES, "{} held", pool.bytes);
        assert_eq!(pool.len(), held.len());
    }
}
