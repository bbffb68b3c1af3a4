//! The task record, generic over its strings: owned ([`TaskRecord`]) or borrowed
//! ([`RecordRef`]).

use super::field::{Field, FieldError, Violation};
use super::status::TaskStatus;
use super::time::Timestamp;

macro_rules! define_record {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
    ) => {
        /// One task: the thirteen fields of the reference's section 1 plus the instance, its
        /// strings of type `S`. [`TaskRecord`] owns them, [`RecordRef`] borrows them.
        ///
        /// Build one with struct syntax and check it with [`Record::validate`]; the engine
        /// validates every record it is given.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct Record<S> {
            $(#[doc = $sd] pub $s: S,)*
            $(#[doc = $td] pub $t: TaskStatus,)*
            $(#[doc = $md] pub $m: Timestamp,)*
        }

        impl<S> Record<S> {
            /// The same record with each string mapped by `f`.
            pub fn map_strings<'s, T>(&'s self, mut f: impl FnMut(&'s S) -> T) -> Record<T> {
                Record {
                    $($s: f(&self.$s),)*
                    $($t: self.$t,)*
                    $($m: self.$m,)*
                }
            }

            /// The record of these strings (in [`Field::STRINGS`] order), status and times.
            pub(crate) fn from_strings(
                strings: [S; Field::STRINGS.len()],
                $($t: TaskStatus,)*
                $($m: Timestamp,)*
            ) -> Record<S> {
                let [$($s,)*] = strings;
                Record { $($s,)* $($t,)* $($m,)* }
            }

            /// The string fields with their values, in [`Field::STRINGS`] order.
            pub(crate) fn string_fields(&self) -> [(Field, &S); Field::STRINGS.len()] {
                [$((Field::$sv, &self.$s),)*]
            }

            /// The times with their fields, `utcCreate` first.
            pub(crate) fn time_fields(&self) -> [(Field, Timestamp); [$(Field::$mv,)*].len()] {
                [$((Field::$mv, self.$m),)*]
            }
        }
    };
}

super::task_fields!(define_record);

/// One task, owned.
///
/// ```
/// use ota_index::{Field, TaskRecord, TaskStatus, Timestamp};
/// let mut task = TaskRecord {
///     task_id: "t1".into(),
///     job_id: "j1".into(),
///     firmware_id: "f1".into(),
///     iot_id: "dev-1".into(),
///     product_key: "pk1".into(),
///     product_name: "Lamp".into(),
///     device_name: "lamp-01".into(),
///     module_name: "default".into(),
///     src_version: "1.0".into(),
///     dest_version: "1.1".into(),
///     status: TaskStatus::Queued,
///     utc_create: Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
///     utc_modified: Timestamp::parse("2024-01-01T00:00:00Z").unwrap(),
///     iot_instance_id: String::new(),
/// };
/// assert!(task.validate().is_ok());
/// task.device_name = "abc".into(); // 4 to 32 characters
/// assert_eq!(task.validate().unwrap_err().field, Field::DeviceName);
/// ```
pub type TaskRecord = Record<String>;

/// One task whose strings are borrowed (from a parse buffer, a view, an owned record).
pub type RecordRef<'a> = Record<&'a str>;

impl<S: AsRef<str>> Record<S> {
    /// Checks every field rule of the reference's section 1: the first broken rule, in table
    /// order, the times last (each must be one the format can write,
    /// [`Timestamp::is_writable`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        for (field, value) in self.string_fields() {
            field
                .check(value.as_ref())
                .map_err(|v| FieldError::new(field, v))?;
        }
        for (field, time) in self.time_fields() {
            if !time.is_writable() {
                return Err(FieldError::new(field, Violation::BadTimestamp));
            }
        }
        Ok(())
    }

    /// A borrowed view of this record.
    pub fn as_ref(&self) -> RecordRef<'_> {
        self.map_strings(|s| s.as_ref())
    }

    /// An owned copy.
    pub fn to_owned(&self) -> TaskRecord {
        self.map_strings(|s| s.as_ref().to_owned())
    }

    /// True when no string is longer in bytes than any field rule allows (64 characters of
    /// up to 4 bytes) and both times are writable: a cheap bound, checked before a record's
    /// strings are hashed under a lock without having been validated (a record equal to a
    /// stored task but for its status and times needs no other check).
    pub(crate) fn within_bounds(&self) -> bool {
        self.string_fields()
            .iter()
            .all(|(_, v)| v.as_ref().len() <= 4 * 64)
            && self.time_fields().iter().all(|(_, t)| t.is_writable())
    }
}
