//! Low-level pieces that know nothing of tasks: the large columns and their memory
//! mappings, cache prefetch hints and byte tests eight bytes at a time. With `sync`,
//! the only home of `unsafe` in the crate.

pub(crate) mod column;
pub(crate) mod json;
pub(crate) mod prefetch;
pub(crate) mod swar;
