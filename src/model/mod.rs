//! The task record, its statuses, timestamps and the field rules of the reference's
//! section 1: a leaf, imported by every layer above.

/// The task's fields, once. Each entry is `name Variant "camelCase" "PascalCase" "doc"`, by
/// kind: the strings in the order of the reference's task table (the order their rules are
/// checked in), the instance last; the status; the times; the optional strings (absent and
/// empty are one: unknown). Every list of the fields (the
/// record types, [`Field`], the readers' accessors, the response's key tables, the JSON Lines
/// writer, the staging of a load) expands this with a macro of its own, so adding a field is
/// an entry here plus its rule in [`Field::check`].
macro_rules! task_fields {
    ($callback:ident) => {
        $callback! {
            strings: [
                task_id TaskId "taskId" "TaskId" "The task's identity within its instance.";
                job_id JobId "jobId" "JobId" "The upgrade job (batch) the task belongs to.";
                firmware_id FirmwareId "firmwareId" "FirmwareId" "The firmware (upgrade package) id.";
                iot_id IotId "iotId" "IotId" "The device's platform-wide id.";
                product_key ProductKey "productKey" "ProductKey" "The product the device belongs to.";
                product_name ProductName "productName" "ProductName" "The product's display name.";
                device_name DeviceName "deviceName" "DeviceName" "The device's name within its product.";
                module_name ModuleName "moduleName" "ModuleName" "The OTA module; `default` is the whole firmware.";
                src_version SrcVersion "srcVersion" "SrcVersion" "The version before the upgrade; may be empty (unknown).";
                dest_version DestVersion "destVersion" "DestVersion" "The version after the upgrade.";
                iot_instance_id IotInstanceId "iotInstanceId" "IotInstanceId" "The platform instance; empty is the default instance.";
            ]
            status: [
                status TaskStatus "taskStatus" "TaskStatus" "The task's status.";
            ]
            times: [
                utc_create UtcCreate "utcCreate" "UtcCreate" "When the task was created.";
                utc_modified UtcModified "utcModified" "UtcModified" "When the task was last modified; the greater record wins (reference section 2).";
            ]
            optional: [
                progress Progress "progress" "Progress" "The device's last reported progress, as the platform writes it (`\"95\"`); `None`: unknown.";
                task_desc TaskDesc "taskDesc" "TaskDesc" "Why the task failed or was canceled; `None`: unknown.";
                timeout Timeout "timeout" "Timeout" "The job's timeout in minutes, decimal digits; `None`: unknown.";
            ]
        }
    };
}
pub(crate) use task_fields;

mod field;
mod record;
mod status;
mod time;
mod view;

#[cfg(test)]
mod tests;

pub use field::{Field, FieldError, Violation};
pub use record::{Record, RecordRef, TaskRecord};
pub use status::{StatusSet, TaskStatus};
pub use time::{Timestamp, TIMESTAMP_LEN};
pub use view::{FieldValue, PlainTask, TaskFields, JSON_STRING_ORDER};
