//! The rows' own optional strings (`progress`, `taskDesc`), in a column beside the rows that
//! the device query never reads, interned in the shard's dictionary. (`timeout`, the job's,
//! is one of the variant's strings.)

use super::{RowIdx, Shard};
use crate::model::RecordRef;
use crate::table::intern::Sym;

/// A row's progress and task description as dictionary symbols, [`RowExtras::NONE`] when
/// unknown: 8 bytes a row, in their own column so that rows stay 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowExtras {
    pub(super) progress: u32,
    pub(super) desc: u32,
}

impl RowExtras {
    /// No string: the field is unknown.
    pub(super) const NONE: u32 = u32::MAX;
    /// Both fields unknown.
    pub(super) const EMPTY: RowExtras = RowExtras {
        progress: Self::NONE,
        desc: Self::NONE,
    };

    /// The symbols held, for reference counts.
    pub(super) fn syms(self) -> impl Iterator<Item = Sym> {
        [self.progress, self.desc]
            .into_iter()
            .filter(|&s| s != Self::NONE)
            .map(Sym)
    }
}

/// A known value: `None` for an absent or empty one (the same, unknown).
fn known(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

impl Shard {
    /// The record's extras, one dictionary reference taken for each known one; `None`, with
    /// nothing taken, when the dictionary's bytes are full.
    pub(super) fn intern_extras(&mut self, rec: &RecordRef<'_>) -> Option<RowExtras> {
        let progress = match known(rec.progress) {
            Some(text) => self.dict.intern(text)?.0,
            None => RowExtras::NONE,
        };
        let desc = match known(rec.task_desc) {
            Some(text) => match self.dict.intern(text) {
                Some(sym) => sym.0,
                None => {
                    if progress != RowExtras::NONE {
                        self.dict.release(Sym(progress));
                    }
                    return None;
                }
            },
            None => RowExtras::NONE,
        };
        Some(RowExtras { progress, desc })
    }

    /// Gives back the references [`Shard::intern_extras`] took.
    pub(super) fn release_extras(&mut self, extras: RowExtras) {
        for sym in extras.syms() {
            self.dict.release(sym);
        }
    }

    fn extra_text(&self, sym: u32) -> Option<&str> {
        (sym != RowExtras::NONE).then(|| self.dict.get(Sym(sym)))
    }

    /// True when row `r`'s progress and description are the record's.
    pub(crate) fn row_extras_match(&self, r: RowIdx, rec: &RecordRef<'_>) -> bool {
        let extras = self.extras[r.idx()];
        let same = |sym: u32, value: Option<&str>| match known(value) {
            None => sym == RowExtras::NONE,
            Some(text) => sym != RowExtras::NONE && self.dict.get(Sym(sym)) == text,
        };
        same(extras.progress, rec.progress) && same(extras.desc, rec.task_desc)
    }

    /// Row `r`'s `progress`, if known.
    pub(crate) fn row_progress(&self, r: RowIdx) -> Option<&str> {
        self.extra_text(self.extras[r.idx()].progress)
    }

    /// Row `r`'s `taskDesc`, if known.
    pub(crate) fn row_task_desc(&self, r: RowIdx) -> Option<&str> {
        self.extra_text(self.extras[r.idx()].desc)
    }

    /// Row `r`'s `timeout` (its job's, in the variant), if known.
    pub(crate) fn row_timeout(&self, r: RowIdx) -> Option<&str> {
        known(Some(self.dict.get(self.row_variant(r).timeout)))
    }

    /// Sets row `r`'s extras to the record's (which differ); `false`, with nothing changed,
    /// when the dictionary's bytes are full.
    pub(super) fn set_extras(&mut self, r: RowIdx, rec: &RecordRef<'_>) -> bool {
        let Some(new) = self.intern_extras(rec) else {
            return false;
        };
        let old = std::mem::replace(&mut self.extras[r.idx()], new);
        self.release_extras(old);
        true
    }
}
