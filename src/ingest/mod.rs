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

use std::io::Read;
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

/// How much of its input a streamed load has read, checked and applied
/// ([`Engine::load_jsonl_reader`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadProgress {
    /// Lines done (blank ones included).
    pub lines: usize,
    /// Bytes done.
    pub bytes: u64,
    /// Non-blank lines applied.
    pub records: usize,
}

/// A progress callback that shows, on standard error when it is a terminal, a line saying
/// how far the load of `label` is (`total` bytes, when known, gives a percentage), once the
/// load has taken more than two seconds; silent otherwise.
fn progress_on_stderr(label: String, total: Option<u64>) -> impl FnMut(&LoadProgress) {
    use std::io::{IsTerminal, Write as _};
    let start = std::time::Instant::now();
    let shown = std::io::stderr().is_terminal();
    move |p: &LoadProgress| {
        if !shown || start.elapsed() < std::time::Duration::from_secs(2) {
            return;
        }
        let percent = total
            .filter(|&t| t > 0)
            .map_or(String::new(), |t| format!(" ({}%)", p.bytes * 100 / t));
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rloading {label}: {} lines, {} MB{percent}   ",
            p.lines,
            p.bytes >> 20
        );
        let _ = err.flush();
    }
}

/// Ends the line [`progress_on_stderr`] may have drawn (a newline on a terminal).
fn finish_progress() {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

/// Bytes of whole lines a streamed load reads, checks and applies at a time: the memory it
/// holds beside the store, and the largest input it loads all or nothing.
pub const LOAD_CHUNK_BYTES: usize = 64 << 20;

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
        self.load_lines(input, 0)
    }

    /// [`Engine::load_jsonl`] of `input`, whose first line is line `first_line + 1` of a
    /// longer input.
    fn load_lines(&self, input: &[u8], first_line: usize) -> Result<LoadReport, LoadError> {
        let mut stager = Stager::new(input);
        let write_error = |stager: &Stager, (i, e): (usize, WriteError)| LoadError {
            line: stager.records.get(i).map_or(0, |r| r.line as usize),
            kind: match e {
                WriteError::InvalidField(f) => LoadErrorKind::InvalidField(f),
                other => LoadErrorKind::Write(other),
            },
        };
        if let Err(parse_error) = stager.stage_all(input, first_line) {
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

    /// Streams a JSON Lines file through [`Engine::load_jsonl_reader`].
    pub fn load_jsonl_file(&self, path: impl AsRef<Path>) -> Result<LoadReport, LoadError> {
        self.load_jsonl_file_with(path, |_| {})
    }

    /// [`Engine::load_jsonl_file`] with a progress callback (see
    /// [`Engine::load_jsonl_reader`]; [`Engine::load_jsonl_file_showing_progress`] draws it on a terminal).
    pub fn load_jsonl_file_with(
        &self,
        path: impl AsRef<Path>,
        progress: impl FnMut(&LoadProgress),
    ) -> Result<LoadReport, LoadError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| LoadError {
            line: 0,
            kind: LoadErrorKind::Io(format!("{}: {e}", path.display())),
        })?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        self.load_jsonl_reader(reader, progress).map_err(|mut e| {
            if let LoadErrorKind::Io(why) = &mut e.kind {
                *why = format!("{}: {why}", path.display());
            }
            e
        })
    }

    /// [`Engine::load_jsonl_file`], drawing how far it is on standard error when that is a
    /// terminal and the load takes more than two seconds (lines, megabytes, percent).
    pub fn load_jsonl_file_showing_progress(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<LoadReport, LoadError> {
        let path = path.as_ref();
        let total = std::fs::metadata(path).ok().map(|m| m.len());
        let progress = progress_on_stderr(path.display().to_string(), total);
        let report = self.load_jsonl_file_with(path, progress);
        finish_progress();
        report
    }

    /// Loads JSON Lines of any length from `reader`, in bounded memory: it reads, checks
    /// and applies [`LOAD_CHUNK_BYTES`] of whole lines at a time, as [`Engine::load_jsonl`]
    /// does each piece, and calls `progress` after each with the lines and bytes done so far.
    ///
    /// All or nothing holds for an input of up to [`LOAD_CHUNK_BYTES`] (one piece). A larger
    /// input applies piece by piece, each all or nothing: on a fault, the pieces before the
    /// faulty line's stay applied (the last `progress` said how far), and the error names the
    /// line (counted over the whole input). Load it again, fixed, to finish: writes converge,
    /// so the lines applied twice change nothing.
    ///
    /// ```
    /// use ota_index::{fleet::Fleet, Engine};
    ///
    /// let engine = Engine::new();
    /// let jsonl = Fleet::new(20).to_jsonl();
    /// let mut seen = Vec::new();
    /// let report = engine.load_jsonl_reader(&jsonl[..], |p| seen.push(p.bytes)).unwrap();
    /// assert_eq!(report.records, engine.len());
    /// assert_eq!(seen.last(), Some(&(jsonl.len() as u64)));
    /// ```
    pub fn load_jsonl_reader(
        &self,
        reader: impl Read,
        progress: impl FnMut(&LoadProgress),
    ) -> Result<LoadReport, LoadError> {
        self.load_jsonl_reader_in(reader, LOAD_CHUNK_BYTES, progress)
    }

    /// [`Engine::load_jsonl_reader`] in pieces of `chunk` bytes.
    pub(crate) fn load_jsonl_reader_in(
        &self,
        mut reader: impl Read,
        chunk: usize,
        mut progress: impl FnMut(&LoadProgress),
    ) -> Result<LoadReport, LoadError> {
        let chunk = chunk.clamp(MAX_LINE_BYTES + 2, MAX_LOAD_BYTES);
        let io = |e: std::io::Error| LoadError {
            line: 0,
            kind: LoadErrorKind::Io(e.to_string()),
        };
        let mut done = LoadProgress::default();
        let mut report = LoadReport::default();
        // One buffer for the whole load: `filled` bytes of it hold input not yet applied.
        let mut buf = vec![0u8; chunk];
        let mut filled = 0;
        let mut eof = false;
        while !eof || filled > 0 {
            // Fill to a piece's size (or the end of the input).
            while !eof && filled < chunk {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io(e)),
                }
            }
            // Whole lines only; the rest waits for the next piece.
            let cut = if eof {
                filled
            } else {
                match memchr::memrchr(b'\n', &buf[..filled]) {
                    Some(at) => at + 1,
                    None => {
                        return Err(LoadError {
                            line: done.lines + 1,
                            kind: LoadErrorKind::LineTooLong { bytes: filled },
                        })
                    }
                }
            };
            let piece = &buf[..cut];
            let lines = memchr::memchr_iter(b'\n', piece).count()
                + usize::from(piece.last().is_some_and(|&b| b != b'\n'));
            let applied = self.load_lines(piece, done.lines)?;
            report.records += applied.records;
            report.summary.add(applied.summary);
            done.lines += lines;
            done.bytes += cut as u64;
            done.records = report.records;
            progress(&done);
            buf.copy_within(cut..filled, 0);
            filled -= cut;
        }
        Ok(report)
    }
}
