//! Bulk load from JSON Lines (reference section 2), all or nothing.
//!
//! Two readers, one result. A line that is a flat object of plain strings (no escapes: what
//! exports and the fleet generator write) is read in place by a small scanner (`flat`), and
//! its values stay in the input. Any other line is read by serde_json (`json`), which
//! takes every valid JSON value under an ignored key and says at which column a malformed
//! line goes wrong; its values are decoded into one staging buffer. Either way the line
//! becomes a fixed-size staged record once its fields pass their rules (`staged`). Once every
//! line has, the batch goes to [`Engine::write_batch`]'s path, which checks identities
//! against the store and the batch itself before applying anything. Any error leaves the
//! store as it was.
//!
//! A third reader, simd-json's tape, read the escaped lines about three times as fast as
//! serde_json does (640,000 lines, each with one `\u` escape: 0.33 s against 1.1 s over the
//! flat lines' load), but it refuses valid JSON (numbers past `f64`) and says little of what
//! is wrong, so serde_json had to read those lines again anyway; escaped lines are rare in
//! the platform's exports, and two readers are one less to keep in agreement.

mod dump;
mod error;
mod flat;
mod json;
mod staged;
mod stager;

#[cfg(test)]
mod tests;

use std::path::Path;

use crate::engine::{Engine, WriteError, WriteSummary};
use stager::Stager;

pub use dump::{write_jsonl_record, write_jsonl_write, DumpReport};
pub use error::{LoadError, LoadErrorKind};

/// Longest line accepted, in bytes, not counting its line ending (`\n` or `\r\n`). A
/// record's own fields take at most about 1.5 KiB; the rest leaves room for the unknown keys
/// of `ListOTATaskByJob` records (`taskDesc`, …).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest input one load accepts (offsets in the staging buffer are 32-bit).
pub const MAX_LOAD_BYTES: usize = u32::MAX as usize;

/// What a bulk load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Non-blank lines read (records and removals).
    pub records: usize,
    /// What the lines did: tasks added, replaced, unchanged, records dropped as stale, tasks
    /// removed.
    pub summary: WriteSummary,
}

impl Engine {
    /// Loads JSON Lines (reference section 2): one task record or removal per line, camelCase
    /// or PascalCase keys, blank lines skipped, unknown keys ignored. Every line is read and
    /// checked before anything is applied. All or nothing: on error the store is as it was,
    /// and the error names the line and the field. An input that holds removal lines applies
    /// in order, the records between two removals as one all-or-nothing batch: a line refused
    /// for its identity after a removal leaves the lines before that removal's run applied
    /// (a removal frees the bindings the records after it are checked against).
    ///
    /// ```
    /// use ota_index::{Engine, Field};
    /// let engine = Engine::new();
    /// let err = engine.load_jsonl(b"\n{\"taskId\":\"t1\"}\n").unwrap_err();
    /// assert_eq!(err.line, 2);
    /// assert_eq!(err.field(), Some(Field::DestVersion)); // the first missing field
    /// assert!(engine.is_empty());
    /// ```
    pub fn load_jsonl(&self, input: &[u8]) -> Result<LoadReport, LoadError> {
        let mut stager = Stager::new(input);
        let write_error = |stager: &Stager, (i, e): (usize, WriteError)| LoadError {
            line: stager.records.get(i).map_or(0, |r| r.line as usize),
            kind: match e {
                WriteError::InvalidField(f) => LoadErrorKind::InvalidField(f),
                other => LoadErrorKind::Write(other),
            },
        };
        if let Err(parse_error) = stager.stage_all(input) {
            // Report the first bad line: an earlier record (before any removal) may
            // contradict a binding.
            let n = stager.records_in_a_run(0);
            return Err(match self.first_identity_conflict(n, |i| stager.get(i)) {
                Some(conflict) => write_error(&stager, conflict),
                None => parse_error,
            });
        }
        let n = stager.records.len();
        let mut summary = WriteSummary::default();
        let mut at = 0;
        while at < n {
            let run = stager.records_in_a_run(at);
            if run == 0 {
                let removal = stager.removal(at);
                let done = self
                    .apply_writes(std::slice::from_ref(&removal))
                    .map_err(|(_, e)| write_error(&stager, (at, e)))?;
                summary.add(done);
                at += 1;
                continue;
            }
            let done = self
                .write_batch_by(
                    run,
                    true,
                    |i| stager.get(at + i),
                    |i, l| stager.prefetch(at + i, l),
                )
                .map_err(|(i, e)| write_error(&stager, (at + i, e)))?;
            summary.add(done);
            at += run;
        }
        Ok(LoadReport {
            records: n,
            summary,
        })
    }

    /// Reads a JSON Lines file and loads it with [`Engine::load_jsonl`].
    pub fn load_jsonl_file(&self, path: impl AsRef<Path>) -> Result<LoadReport, LoadError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| LoadError {
            line: 0,
            kind: LoadErrorKind::Io(format!("{}: {e}", path.display())),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_LOAD_BYTES as u64 {
            return Err(LoadError {
                line: 0,
                kind: LoadErrorKind::InputTooLarge {
                    bytes: usize::try_from(len).unwrap_or(usize::MAX),
                },
            });
        }
        let input = std::fs::read(path).map_err(io)?;
        self.load_jsonl(&input)
    }
}
