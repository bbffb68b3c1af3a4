//! Read access to one task's fields, whatever holds them.

use super::field::Field;
use super::record::{Record, TaskRecord};
use super::status::TaskStatus;
use super::time::Timestamp;

/// The string fields in the order of [`TaskFields::json_strings`]: the response's key order
/// ([`Field::DEVICE_ANSWER`]) up to the status and timestamps.
pub const JSON_STRING_ORDER: [Field; 10] = {
    // The device answer's first ten fields are the strings.
    let mut order = [Field::TaskId; 10];
    let mut i = 0;
    while i < order.len() {
        order[i] = Field::DEVICE_ANSWER[i];
        i += 1;
    }
    order
};

/// A task whose ten strings need no JSON escaping, as [`TaskFields::plain_json`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainTask<'a> {
    /// The ten strings' bytes in [`JSON_STRING_ORDER`].
    pub strings: [&'a [u8]; 10],
    /// `taskStatus`
    pub status: TaskStatus,
    /// `utcCreate`
    pub utc_create: Timestamp,
    /// `utcModified`
    pub utc_modified: Timestamp,
}

/// One field's value, as [`TaskFields::value`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A string field's value.
    Str(&'a str),
    /// `taskStatus`
    Status(TaskStatus),
    /// `utcCreate` or `utcModified`
    Time(Timestamp),
    /// An optional field without a value (unknown).
    Absent,
}

macro_rules! define_task_fields {
    (
        strings: [$($s:ident $sv:ident $sc:literal $sp:literal $sd:literal;)*]
        status: [$($t:ident $tv:ident $tc:literal $tp:literal $td:literal;)*]
        times: [$($m:ident $mv:ident $mc:literal $mp:literal $md:literal;)*]
        optional: [$($o:ident $ov:ident $oc:literal $op:literal $od:literal;)*]
    ) => {
        /// The fields of a task, borrowed. Implemented by the engine's zero-copy
        /// [`TaskView`](crate::TaskView) and by the owned and borrowed records, so that the
        /// response writer and the tests take any of them.
        pub trait TaskFields {
            $(#[doc = concat!("`", $sc, "`: ", $sd)] fn $s(&self) -> &str;)*
            $(#[doc = concat!("`", $tc, "`: ", $td)] fn $t(&self) -> TaskStatus;)*
            $(#[doc = concat!("`", $mc, "`: ", $md)] fn $m(&self) -> Timestamp;)*
            $(#[doc = concat!("`", $oc, "`: ", $od, " Never `Some(\"\")`.")] fn $o(&self) -> Option<&str>;)*

            /// The value of `field`.
            ///
            /// ```
            /// use ota_index::fleet::Fleet;
            /// use ota_index::{Field, FieldValue, TaskFields};
            ///
            /// let record = &Fleet::new(1).device_tasks(0)[0];
            /// assert_eq!(record.value(Field::TaskId), FieldValue::Str(&record.task_id));
            /// assert_eq!(record.value(Field::TaskStatus), FieldValue::Status(record.status));
            /// ```
            fn value(&self, field: Field) -> FieldValue<'_> {
                match field {
                    $(Field::$sv => FieldValue::Str(self.$s()),)*
                    $(Field::$tv => FieldValue::Status(self.$t()),)*
                    $(Field::$mv => FieldValue::Time(self.$m()),)*
                    $(Field::$ov => match self.$o() {
                        Some(text) => FieldValue::Str(text),
                        None => FieldValue::Absent,
                    },)*
                }
            }

            /// The ten string fields in the order the response writes them
            /// ([`JSON_STRING_ORDER`]), each paired with `true` when the implementation knows
            /// the value holds no byte JSON escapes (a control character, `"` or `\\`): the
            /// response writer then copies it without looking. The default pairs every value
            /// with `false` (each is checked). An override must never say `true` of a value
            /// that needs escaping: the response would not be JSON.
            ///
            /// ```
            /// use ota_index::fleet::Fleet;
            /// use ota_index::{Engine, Query, TaskFields, JSON_STRING_ORDER};
            ///
            /// let fleet = Fleet::new(1);
            /// let record = &fleet.device_tasks(0)[0];
            /// // An owned record knows nothing: every value is checked.
            /// assert!(record.json_strings().iter().all(|&(_, plain)| !plain));
            ///
            /// // The engine knows, for each stored string, from when it was stored.
            /// let engine = Engine::new();
            /// engine.upsert(record)?;
            /// let answer = engine.unfinished(&Query::by_iot_id(&record.iot_id))?;
            /// if let Some(task) = answer.iter().next() {
            ///     let strings = task.json_strings();
            ///     assert_eq!(strings[JSON_STRING_ORDER.len() - 1], (record.task_id.as_str(), true));
            /// }
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            fn json_strings(&self) -> [(&str, bool); 10] {
                JSON_STRING_ORDER.map(|field| {
                    let value = match field {
                        $(Field::$sv => self.$s(),)*
                        _ => "",
                    };
                    (value, false)
                })
            }

            /// The task ready to be copied into a response, when the implementation knows
            /// that none of its ten strings holds a byte JSON escapes: the strings' bytes in
            /// [`JSON_STRING_ORDER`], the status and both timestamps, read in one go. The
            /// response writer then copies each value without looking at it. `None` (the
            /// default) sends the writer through [`TaskFields::json_strings`] and the other
            /// accessors. An override must answer `None` whenever a string would need
            /// escaping, and give exactly the bytes of the accessors' strings; otherwise the
            /// response would not be what they say.
            ///
            /// ```
            /// use ota_index::fleet::Fleet;
            /// use ota_index::{Engine, Query, TaskFields};
            ///
            /// let fleet = Fleet::new(1);
            /// let record = &fleet.device_tasks(0)[0];
            /// assert!(record.plain_json().is_none());
            ///
            /// let engine = Engine::new();
            /// engine.upsert(record)?;
            /// let answer = engine.unfinished(&Query::by_iot_id(&record.iot_id))?;
            /// if let Some(task) = answer.iter().next() {
            ///     let plain = task.plain_json().expect("the fleet's strings need no escaping");
            ///     assert_eq!(plain.strings[9], record.task_id.as_bytes());
            ///     assert_eq!(plain.status, record.status);
            /// }
            /// # Ok::<(), Box<dyn std::error::Error>>(())
            /// ```
            fn plain_json(&self) -> Option<PlainTask<'_>> {
                None
            }

            /// The task as a borrowed record.
            fn as_record(&self) -> Record<&str> {
                Record {
                    $($s: self.$s(),)*
                    $($t: self.$t(),)*
                    $($m: self.$m(),)*
                    $($o: self.$o(),)*
                }
            }

            /// An owned copy of the task.
            fn to_record(&self) -> TaskRecord {
                Record {
                    $($s: self.$s().to_owned(),)*
                    $($t: self.$t(),)*
                    $($m: self.$m(),)*
                    $($o: self.$o().map(str::to_owned),)*
                }
            }
        }

        impl<S: AsRef<str>> TaskFields for Record<S> {
            $(fn $s(&self) -> &str { self.$s.as_ref() })*
            $(fn $t(&self) -> TaskStatus { self.$t })*
            $(fn $m(&self) -> Timestamp { self.$m })*
            $(fn $o(&self) -> Option<&str> {
                self.$o.as_ref().map(AsRef::as_ref).filter(|v| !v.is_empty())
            })*
        }

        impl<T: TaskFields + ?Sized> TaskFields for &T {
            $(fn $s(&self) -> &str { (**self).$s() })*
            $(fn $t(&self) -> TaskStatus { (**self).$t() })*
            $(fn $m(&self) -> Timestamp { (**self).$m() })*
            $(fn $o(&self) -> Option<&str> { (**self).$o() })*
            fn json_strings(&self) -> [(&str, bool); 10] {
                (**self).json_strings()
            }
            fn plain_json(&self) -> Option<PlainTask<'_>> {
                (**self).plain_json()
            }
        }
    };
}

super::task_fields!(define_task_fields);
