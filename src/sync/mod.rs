//! Synchronisation: the shards' reader-writer lock, whose readers write only their own
//! thread's cache line. With `raw`, the only home of `unsafe` in the crate.

pub(crate) mod slotlock;
