//! What a shard holds, in bytes, and giving back growth slack.

use super::{device_hash, variant_text, Device, Locality, Row, RowExtras, Shard, VariantSlot};
use crate::table::intern::table_bytes;

/// Bytes a shard holds, by part (heap capacity, so growth slack counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ShardMemory {
    /// The rows and their free list.
    pub(crate) rows: usize,
    /// The key slab (task ids that are not decimal numbers).
    pub(crate) task_ids: usize,
    /// The dictionary and the variants.
    pub(crate) strings: usize,
    /// Devices, posting lists, device strings, the `iotId` index and the locality entries.
    pub(crate) devices: usize,
    /// Status, module and job bitmaps.
    pub(crate) bitmaps: usize,
}

impl Shard {
    /// What this shard holds, by part.
    pub(crate) fn memory(&self) -> ShardMemory {
        let mut m = ShardMemory::default();
        m.rows += self.rows.capacity() * std::mem::size_of::<Row>()
            + self.extras.capacity() * std::mem::size_of::<RowExtras>()
            + self.free_rows.capacity() * 4;
        m.task_ids += self.keys.heap_bytes();
        m.strings += self.dict.heap_bytes()
            + self.variants.capacity() * std::mem::size_of::<VariantSlot>()
            + self.variant_free.capacity() * 4
            + table_bytes(&self.variant_table);
        m.devices += self.devices.capacity() * std::mem::size_of::<Device>()
            + self
                .devices
                .iter()
                .filter(|d| d.unfinished.spilled())
                .map(|d| d.unfinished.capacity() * 4)
                .sum::<usize>()
            + self.device_strs.heap_bytes()
            + self.by_iot.heap_bytes()
            + self.locality.capacity() * std::mem::size_of::<Locality>();
        m.bitmaps += self.bitmaps.heap_bytes();
        m
    }

    /// How many of the columns are held in mappings of their own (see [`Column`]).
    #[cfg(all(test, feature = "rpc"))]
    pub(crate) fn mapped_columns(&self) -> usize {
        [
            self.rows.is_mapped(),
            self.devices.is_mapped(),
            self.locality.is_mapped(),
        ]
        .into_iter()
        .filter(|&m| m)
        .count()
    }

    /// Compacts growth slack (after a bulk load).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.rows.shrink_to_fit();
        self.extras.shrink_to_fit();
        self.keys.shrink_to_fit();
        self.devices.shrink_to_fit();
        self.device_strs.shrink_to_fit();
        self.dict.shrink_to_fit();
        self.variants.shrink_to_fit();
        self.variant_free.shrink_to_fit();
        let (variants, dict, hasher) = (&self.variants, &self.dict, &self.hasher);
        self.variant_table.shrink_to_fit(|&id| {
            Self::text_hash(hasher, variant_text(dict, &variants[id as usize].variant))
        });
        let (devices, strs, hasher) = (&self.devices, &self.device_strs, &self.hasher);
        self.by_iot
            .shrink_to_fit(|d| device_hash(hasher, devices, strs, d));
        self.size_locality(self.devices.len());
        self.locality.shrink_to_fit();
    }
}
