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
}
