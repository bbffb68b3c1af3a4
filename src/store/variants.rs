//! The variants: the seven strings a task shares with its job (job, firmware, product name,
//! module, source and target versions, the job's timeout), interned once per distinct tuple,
//! so that they cost a row one 24-bit id.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;
use smallvec::SmallVec;

use super::{RowIdx, Shard, VariantId};
use crate::model::RecordRef;
use crate::table::intern::{Interner, Sym};

/// Longest module name (field rule), so case folding fits a stack buffer.
pub(super) const MODULE_MAX: usize = 64;

/// The shared strings of a task, interned once per distinct tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Variant {
    pub(crate) job: Sym,
    pub(crate) firmware: Sym,
    pub(crate) product_name: Sym,
    /// The stored spelling, echoed in answers.
    pub(crate) module: Sym,
    /// The ASCII-lower-case spelling, matched by queries.
    pub(crate) module_fold: Sym,
    pub(crate) src: Sym,
    pub(crate) dest: Sym,
    /// The job's timeout, `""` when unknown.
    pub(crate) timeout: Sym,
}

/// The strings of a variant, in hashing order (the folded module is derived, not hashed).
pub(super) type VariantText<'a> = [&'a str; 7];

pub(super) struct VariantSlot {
    pub(super) variant: Variant,
    /// Rows using this variant; freed (and its strings released) at zero.
    pub(super) refs: u32,
}

/// Variants a shard may hold (the low 24 bits of [`Row::variant_status`]).
const MAX_VARIANTS: usize = 1 << 24;

impl Shard {
    /// Variants are found by the hash of their seven strings, so a write resolves its tuple
    /// with one hash and one probe (then seven short comparisons) instead of a dictionary
    /// lookup a string and a tuple probe.
    pub(super) fn text_hash(hasher: &DefaultHashBuilder, t: VariantText<'_>) -> u64 {
        hasher.hash_one(t)
    }

    pub(super) fn variant_text(&self, v: &Variant) -> VariantText<'_> {
        variant_text(&self.dict, v)
    }

    pub(super) fn record_text<'r>(rec: &RecordRef<'r>) -> VariantText<'r> {
        [
            rec.job_id,
            rec.firmware_id,
            rec.product_name,
            rec.module_name,
            rec.src_version,
            rec.dest_version,
            rec.timeout.unwrap_or(""),
        ]
    }

    /// True when row `r`'s seven shared strings equal the record's.
    pub(crate) fn row_variant_matches(&self, r: RowIdx, rec: &RecordRef<'_>) -> bool {
        self.variant_matches(self.rows[r.idx()].variant(), rec)
    }

    pub(super) fn variant_matches(&self, id: VariantId, rec: &RecordRef<'_>) -> bool {
        self.variant_text(&self.variants[id.idx()].variant) == Self::record_text(rec)
    }

    pub(super) fn find_variant_text(&self, text: VariantText<'_>) -> Option<u32> {
        let hash = Self::text_hash(&self.hasher, text);
        self.variant_table
            .find(hash, |&id| {
                self.variant_text(&self.variants[id as usize].variant) == text
            })
            .copied()
    }

    /// The variant of `rec`, taking one reference to it; `None`, with nothing taken, when the
    /// dictionary's bytes are full.
    pub(super) fn intern_variant(&mut self, rec: &RecordRef<'_>) -> Option<VariantId> {
        let text = Self::record_text(rec);
        if let Some(id) = self.find_variant_text(text) {
            self.variants[id as usize].refs += 1;
            return Some(VariantId(id));
        }
        if self.variant_free.is_empty() && self.variants.len() >= MAX_VARIANTS {
            return None;
        }
        let mut buf = [0u8; MODULE_MAX];
        let fold = fold_module(rec.module_name, &mut buf);
        let mut taken: SmallVec<[Sym; 8]> = SmallVec::new();
        for s in [
            rec.job_id,
            rec.firmware_id,
            rec.product_name,
            rec.module_name,
            fold,
            rec.src_version,
            rec.dest_version,
            text[6],
        ] {
            match self.dict.intern(s) {
                Some(sym) => taken.push(sym),
                None => {
                    for sym in taken {
                        self.dict.release(sym);
                    }
                    return None;
                }
            }
        }
        let v = Variant {
            job: taken[0],
            firmware: taken[1],
            product_name: taken[2],
            module: taken[3],
            module_fold: taken[4],
            src: taken[5],
            dest: taken[6],
            timeout: taken[7],
        };
        let slot = VariantSlot {
            variant: v,
            refs: 1,
        };
        let id = match self.variant_free.pop() {
            Some(id) => {
                self.variants[id as usize] = slot;
                id
            }
            None => {
                self.variants.push(slot);
                (self.variants.len() - 1) as u32
            }
        };
        let hash = Self::text_hash(&self.hasher, text);
        let (variants, dict, hasher) = (&self.variants, &self.dict, &self.hasher);
        self.variant_table.insert_unique(hash, id, |&id| {
            Self::text_hash(hasher, variant_text(dict, &variants[id as usize].variant))
        });
        Some(VariantId(id))
    }

    pub(super) fn release_variant(&mut self, id: VariantId) {
        let slot = &mut self.variants[id.idx()];
        slot.refs -= 1;
        if slot.refs == 0 {
            let v = slot.variant;
            let hash = Self::text_hash(&self.hasher, self.variant_text(&v));
            if let Ok(entry) = self.variant_table.find_entry(hash, |&x| x == id.0) {
                entry.remove();
            }
            self.variant_free.push(id.0);
            self.release_strings(&v);
        }
    }

    pub(super) fn release_strings(&mut self, v: &Variant) {
        for sym in [
            v.job,
            v.firmware,
            v.product_name,
            v.module,
            v.module_fold,
            v.src,
            v.dest,
            v.timeout,
        ] {
            self.dict.release(sym);
        }
    }

    /// The query-side id of a module name (ASCII case ignored); `None` when no task of this
    /// shard has that module.
    pub(crate) fn module_key(&self, module: &str) -> Option<Sym> {
        let mut buf = [0u8; MODULE_MAX];
        self.dict.lookup(fold_module(module, &mut buf))
    }
}

/// The seven strings of a variant, in hashing order.
pub(super) fn variant_text<'d>(dict: &'d Interner, v: &Variant) -> VariantText<'d> {
    [
        dict.get(v.job),
        dict.get(v.firmware),
        dict.get(v.product_name),
        dict.get(v.module),
        dict.get(v.src),
        dict.get(v.dest),
        dict.get(v.timeout),
    ]
}

/// ASCII-lower-cases a module name (at most 64 bytes by its field rule) into `buf`.
pub(crate) fn fold_module<'b>(module: &'b str, buf: &'b mut [u8; MODULE_MAX]) -> &'b str {
    if !module.bytes().any(|b| b.is_ascii_uppercase()) || module.len() > MODULE_MAX {
        return module;
    }
    let out = &mut buf[..module.len()];
    out.copy_from_slice(module.as_bytes());
    out.make_ascii_lowercase();
    // Lower-casing ASCII bytes keeps UTF-8 valid.
    std::str::from_utf8(out).unwrap_or(module)
}
