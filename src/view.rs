//! Read access to one task's fields, whatever holds them.

use crate::model::{RecordRef, TaskRecord, TaskStatus, Timestamp};

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
}
