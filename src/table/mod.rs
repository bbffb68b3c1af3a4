//! Collections that know nothing of tasks: a hash table of 4-byte tagged entries for
//! directories whose keys live elsewhere, and the string stores (a reference-counted
//! dictionary and a byte slab).

pub(crate) mod intern;
pub(crate) mod tagtable;
