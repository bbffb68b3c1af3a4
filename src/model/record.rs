//! The task record, generic over its strings: owned ([`TaskRecord`]) or borrowed
//! ([`RecordRef`]).

use std::cmp::Ordering;

use super::field::{Field, FieldError, Violation};
use super::status::TaskStatus;
use super::time::Timestamp;

macro_rules! define_record {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
        optional: [$($o:ident $ov:ident $oc:literal $op:literal $od:literal;)*]
    ) => {
        /// One task: the thirteen fields of the reference's section 1, its three optional
        /// fields and the instance, its strings of type `S`. [`TaskRecord`] owns them,
        /// [`RecordRef`] borrows them.
        ///
        /// Build one with struct syntax and check it with [`Record::validate`]; the engine
        /// validates every record it is given.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct Record<S> {
            $(#[doc = $sd] pub $s: S,)*
            $(#[doc = $td] pub $t: TaskStatus,)*
            $(#[doc = $md] pub $m: Timestamp,)*
            $(#[doc = $od] pub $o: Option<S>,)*
        }

        impl<S> Record<S> {
            /// The same record with each string mapped by `f`.
            pub fn map_strings<'s, T>(&'s self, mut f: impl FnMut(&'s S) -> T) -> Record<T> {
                Record {
                    $($s: f(&self.$s),)*
                    $($t: self.$t,)*
                    $($m: self.$m,)*
                    $($o: self.$o.as_ref().map(&mut f),)*
                }
            }

            /// The record of these strings (in [`Field::STRINGS`] order), status, times and
            /// optional strings (in [`Field::OPTIONAL`] order).
            pub(crate) fn from_strings(
                strings: [S; Field::STRINGS.len()],
                $($t: TaskStatus,)*
                $($m: Timestamp,)*
                optional: [Option<S>; Field::OPTIONAL.len()],
            ) -> Record<S> {
                let [$($s,)*] = strings;
                let [$($o,)*] = optional;
                Record { $($s,)* $($t,)* $($m,)* $($o,)* }
            }

            /// The optional fields with their values, in [`Field::OPTIONAL`] order.
            pub(crate) fn optional_fields(&self) -> [(Field, Option<&S>); Field::OPTIONAL.len()] {
                [$((Field::$ov, self.$o.as_ref()),)*]
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
///     progress: None,
///     task_desc: None,
///     timeout: None,
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
        for (field, value) in self.optional_fields() {
            if let Some(value) = value {
                field
                    .check(value.as_ref())
                    .map_err(|v| FieldError::new(field, v))?;
            }
        }
        Ok(())
    }

    /// The order of two records of one task (reference section 2): `utcModified`, then the
    /// status's rank (the order of [`TaskStatus`]), then every other field of the task
    /// table in its order, as byte strings (`utcCreate` as written back, which orders as its
    /// instant). Of two records of a task the greater is kept and the lesser is stale; two
    /// equal ones are the same write. The instance is not compared: a task's records share it.
    ///
    /// ```
    /// use std::cmp::Ordering;
    /// use ota_index::{fleet::Fleet, TaskStatus};
    ///
    /// let a = Fleet::new(1).device_tasks(0)[0].clone();
    /// let mut b = a.clone();
    /// assert_eq!(a.cmp_version(&b), Ordering::Equal);
    /// b.status = TaskStatus::Canceled; // same utcModified: the higher rank wins
    /// assert_eq!(a.cmp_version(&b), (a.status as u8).cmp(&(TaskStatus::Canceled as u8)));
    /// b.status = a.status;
    /// b.dest_version.push('x'); // then the fields, as bytes
    /// assert_eq!(a.cmp_version(&b), Ordering::Less);
    /// ```
    pub fn cmp_version<T: AsRef<str>>(&self, other: &Record<T>) -> Ordering {
        self.utc_modified
            .cmp(&other.utc_modified)
            .then((self.status as u8).cmp(&(other.status as u8)))
            .then_with(|| {
                let theirs = other.string_fields();
                for (k, (field, mine)) in self.string_fields().into_iter().enumerate() {
                    if field == Field::IotInstanceId {
                        continue;
                    }
                    let order = mine
                        .as_ref()
                        .as_bytes()
                        .cmp(theirs[k].1.as_ref().as_bytes());
                    if order.is_ne() {
                        return order;
                    }
                }
                Ordering::Equal
            })
            .then(self.utc_create.cmp(&other.utc_create))
            .then_with(|| {
                // Absent sorts first; empty is absent.
                fn known(v: Option<&str>) -> Option<&[u8]> {
                    v.filter(|v| !v.is_empty()).map(str::as_bytes)
                }
                let theirs = other.optional_fields();
                for (k, (_, mine)) in self.optional_fields().into_iter().enumerate() {
                    let mine = known(mine.map(AsRef::as_ref));
                    let order = mine.cmp(&known(theirs[k].1.map(AsRef::as_ref)));
                    if order.is_ne() {
                        return order;
                    }
                }
                Ordering::Equal
            })
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
            && self
                .optional_fields()
                .iter()
                .all(|(_, v)| v.is_none_or(|v| v.as_ref().len() <= 4 * 256))
    }
}
