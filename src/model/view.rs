//! Read access to one task's fields, whatever holds them.

use crate::model::{Field, RecordRef, TaskRecord, TaskStatus, Timestamp};

/// The string fields in the order of [`TaskFields::json_strings`]: the response's key order
/// ([`Field::ALL`]) up to the status, timestamps and instance.
pub const JSON_STRING_ORDER: [Field; 10] = {
    // The response order is `Field::ALL`'s; its first ten are the strings.
    let mut order = [Field::TaskId; 10];
    let mut i = 0;
    while i < order.len() {
        order[i] = Field::ALL[i];
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

/// The thirteen fields of a task, borrowed. Implemented by the engine's zero-copy
/// [`TaskView`](crate::TaskView) and by the owned and borrowed records, so that the response
/// writer and the tests take any of them.
pub trait TaskFields {
    /// `taskId`
    fn task_id(&self) -> &str;
    /// `jobId`
    fn job_id(&self) -> &str;
    /// `firmwareId`
    fn firmware_id(&self) -> &str;
    /// `iotId`
    fn iot_id(&self) -> &str;
    /// `productKey`
    fn product_key(&self) -> &str;
    /// `productName`
    fn product_name(&self) -> &str;
    /// `deviceName`
    fn device_name(&self) -> &str;
    /// `moduleName`, in the stored spelling
    fn module_name(&self) -> &str;
    /// `srcVersion`
    fn src_version(&self) -> &str;
    /// `destVersion`
    fn dest_version(&self) -> &str;
    /// `taskStatus`
    fn status(&self) -> TaskStatus;
    /// `utcCreate`
    fn utc_create(&self) -> Timestamp;
    /// `utcModified`
    fn utc_modified(&self) -> Timestamp;
    /// The instance (`""` for the default one).
    fn iot_instance_id(&self) -> &str;

    /// The ten string fields in the order the response writes them ([`JSON_STRING_ORDER`]),
    /// each paired with `true` when the implementation knows the value holds no byte JSON
    /// escapes (a control character, `"` or `\\`): the response writer then copies it without
    /// looking. The default pairs every value with `false` (each is checked). An override must
    /// never say `true` of a value that needs escaping: the response would not be JSON.
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
        [
            (self.dest_version(), false),
            (self.device_name(), false),
            (self.firmware_id(), false),
            (self.iot_id(), false),
            (self.job_id(), false),
            (self.module_name(), false),
            (self.product_key(), false),
            (self.product_name(), false),
            (self.src_version(), false),
            (self.task_id(), false),
        ]
    }

    /// The task ready to be copied into a response, when the implementation knows that none of
    /// its ten strings holds a byte JSON escapes: the strings' bytes in [`JSON_STRING_ORDER`],
    /// the status and both timestamps, read in one go. The response writer then copies each
    /// value without looking at it. `None` (the default) sends the writer through
    /// [`TaskFields::json_strings`] and the other accessors. An override must answer `None`
    /// whenever a string would need escaping, and give exactly the bytes of the accessors'
    /// strings; otherwise the response would not be what they say.
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

    /// An owned copy of the task.
    fn to_record(&self) -> TaskRecord {
        TaskRecord {
            task_id: self.task_id().to_owned(),
            job_id: self.job_id().to_owned(),
            firmware_id: self.firmware_id().to_owned(),
            iot_id: self.iot_id().to_owned(),
            product_key: self.product_key().to_owned(),
            product_name: self.product_name().to_owned(),
            device_name: self.device_name().to_owned(),
            module_name: self.module_name().to_owned(),
            src_version: self.src_version().to_owned(),
            dest_version: self.dest_version().to_owned(),
            status: self.status(),
            utc_create: self.utc_create(),
            utc_modified: self.utc_modified(),
            iot_instance_id: self.iot_instance_id().to_owned(),
        }
    }
}

macro_rules! record_fields {
    ($ty:ty) => {
        impl TaskFields for $ty {
            fn task_id(&self) -> &str {
                &self.task_id
            }
            fn job_id(&self) -> &str {
                &self.job_id
            }
            fn firmware_id(&self) -> &str {
                &self.firmware_id
            }
            fn iot_id(&self) -> &str {
                &self.iot_id
            }
            fn product_key(&self) -> &str {
                &self.product_key
            }
            fn product_name(&self) -> &str {
                &self.product_name
            }
            fn device_name(&self) -> &str {
                &self.device_name
            }
            fn module_name(&self) -> &str {
                &self.module_name
            }
            fn src_version(&self) -> &str {
                &self.src_version
            }
            fn dest_version(&self) -> &str {
                &self.dest_version
            }
            fn status(&self) -> TaskStatus {
                self.status
            }
            fn utc_create(&self) -> Timestamp {
                self.utc_create
            }
            fn utc_modified(&self) -> Timestamp {
                self.utc_modified
            }
            fn iot_instance_id(&self) -> &str {
                &self.iot_instance_id
            }
        }
    };
}

record_fields!(TaskRecord);
record_fields!(RecordRef<'_>);

impl<T: TaskFields + ?Sized> TaskFields for &T {
    fn task_id(&self) -> &str {
        (**self).task_id()
    }
    fn job_id(&self) -> &str {
        (**self).job_id()
    }
    fn firmware_id(&self) -> &str {
        (**self).firmware_id()
    }
    fn iot_id(&self) -> &str {
        (**self).iot_id()
    }
    fn product_key(&self) -> &str {
        (**self).product_key()
    }
    fn product_name(&self) -> &str {
        (**self).product_name()
    }
    fn device_name(&self) -> &str {
        (**self).device_name()
    }
    fn module_name(&self) -> &str {
        (**self).module_name()
    }
    fn src_version(&self) -> &str {
        (**self).src_version()
    }
    fn dest_version(&self) -> &str {
        (**self).dest_version()
    }
    fn status(&self) -> TaskStatus {
        (**self).status()
    }
    fn utc_create(&self) -> Timestamp {
        (**self).utc_create()
    }
    fn utc_modified(&self) -> Timestamp {
        (**self).utc_modified()
    }
    fn iot_instance_id(&self) -> &str {
        (**self).iot_instance_id()
    }
    fn json_strings(&self) -> [(&str, bool); 10] {
        (**self).json_strings()
    }
    fn plain_json(&self) -> Option<PlainTask<'_>> {
        (**self).plain_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Query};

    /// `json_strings` lists the fields in `JSON_STRING_ORDER`, for the default implementation
    /// and for the engine's override (whose plain flags are all set for a plain record).
    #[test]
    fn json_strings_follow_the_declared_order() {
        let record = crate::fleet::Fleet::new(3).device_tasks(1)[0].clone();
        let value = |field: Field| match field {
            Field::DestVersion => record.dest_version.as_str(),
            Field::DeviceName => &record.device_name,
            Field::FirmwareId => &record.firmware_id,
            Field::IotId => &record.iot_id,
            Field::JobId => &record.job_id,
            Field::ModuleName => &record.module_name,
            Field::ProductKey => &record.product_key,
            Field::ProductName => &record.product_name,
            Field::SrcVersion => &record.src_version,
            Field::TaskId => &record.task_id,
            other => panic!("{other:?} is not a string field"),
        };
        let expected: Vec<&str> = JSON_STRING_ORDER.iter().map(|&f| value(f)).collect();
        let owned = record.json_strings();
        assert_eq!(owned.map(|(v, _)| v).to_vec(), expected);
        assert!(owned.iter().all(|&(_, plain)| !plain));

        let mut record = record.clone();
        record.status = TaskStatus::Queued; // unfinished, so the query returns it
        let engine = Engine::new();
        engine.upsert(&record).unwrap();
        let answer = engine
            .unfinished(&Query::by_iot_id(&record.iot_id))
            .unwrap();
        let view = answer.iter().next().expect("the task is unfinished");
        let stored = view.json_strings();
        assert_eq!(stored.map(|(v, _)| v).to_vec(), expected);
        assert!(stored.iter().all(|&(_, plain)| plain), "{stored:?}");
    }

    /// The engine's `plain_json` is `Some` exactly when `json_strings` flags all ten plain,
    /// and then holds the same bytes, status and times: for every field in turn holding a
    /// string that needs escaping, one too long for a one-byte header (64 bytes and more), one
    /// just under, and multi-byte text.
    #[test]
    fn plain_json_is_json_strings_when_all_are_plain() {
        let base = crate::fleet::Fleet::new(3).device_tasks(1)[0].clone();
        let values = [
            "a\"b",
            "tab\there",
            &"x".repeat(63),
            &"y".repeat(64),
            "智能灯",
            "",
        ];
        let engine = Engine::new();
        let (mut n, mut some, mut none) = (0, 0, 0);
        for field in 0..10 {
            for value in values {
                let mut record = base.clone();
                record.status = TaskStatus::Queued;
                n += 1;
                record.task_id = format!("plain-{n}");
                record.iot_id = format!("device-{n}");
                record.device_name = format!("name-{n}");
                let slot = match field {
                    0 => &mut record.dest_version,
                    1 => &mut record.device_name,
                    2 => &mut record.firmware_id,
                    3 => &mut record.iot_id,
                    4 => &mut record.job_id,
                    5 => &mut record.module_name,
                    6 => &mut record.product_key,
                    7 => &mut record.product_name,
                    8 => &mut record.src_version,
                    _ => &mut record.task_id,
                };
                *slot = value.to_owned();
                if engine.upsert(&record).is_err() {
                    continue; // a value the field's rules refuse (an empty id, a quote)
                }
                let answer = engine
                    .unfinished(&Query::by_iot_id(&record.iot_id))
                    .unwrap();
                let view = answer.iter().next().expect("the task is unfinished");
                let strings = view.json_strings();
                let all_plain = strings.iter().all(|&(_, plain)| plain);
                match view.plain_json() {
                    Some(plain) => {
                        some += 1;
                        assert!(all_plain, "{field} {value:?}");
                        assert_eq!(plain.strings, strings.map(|(s, _)| s.as_bytes()));
                        assert_eq!(plain.status, record.status);
                        assert_eq!(plain.utc_create, record.utc_create);
                        assert_eq!(plain.utc_modified, record.utc_modified);
                    }
                    None => {
                        none += 1;
                        assert!(!all_plain, "{field} {value:?}: {strings:?}");
                    }
                }
                let plain_expected = !value.contains(['"', '\\', '\t']) && value.len() < 64;
                assert_eq!(all_plain, plain_expected, "{field} {value:?}");
            }
        }
        assert!(some >= 10 && none >= 10, "{some} plain, {none} not");
    }
}
