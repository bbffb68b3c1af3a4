//! The typed query of reference section 3: which device, which module, which statuses, which
//! instance.

use crate::model::{Field, FieldError, StatusSet, TaskStatus, Violation};

/// The device a query is about: by platform id, or by product key and device name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceRef<'a> {
    /// The device's `iotId`.
    IotId(&'a str),
    /// The pair (`productKey`, `deviceName`).
    Name {
        /// The product key.
        product_key: &'a str,
        /// The device name within the product.
        device_name: &'a str,
    },
}

/// "The unfinished tasks of this device", with its optional filters.
///
/// ```
/// use ota_index::{Query, StatusSet, TaskStatus};
/// let q = Query::by_iot_id("dev-1")
///     .module("ble")
///     .statuses(StatusSet::only(TaskStatus::Queued));
/// assert!(q.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Query<'a> {
    /// The device.
    pub device: DeviceRef<'a>,
    /// Only this module's tasks, matched ignoring ASCII case; `None` (or empty, as on the
    /// wire): every module.
    pub module: Option<&'a str>,
    /// Only these statuses; empty means all four unfinished statuses.
    pub statuses: StatusSet,
    /// The platform instance; `None` (or empty) is the default instance.
    pub instance: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// The unfinished tasks of the device with this `iotId`, in the default instance.
    pub fn by_iot_id(iot_id: &'a str) -> Query<'a> {
        Query {
            device: DeviceRef::IotId(iot_id),
            module: None,
            statuses: StatusSet::EMPTY,
            instance: None,
        }
    }

    /// The unfinished tasks of the device named `device_name` in product `product_key`.
    pub fn by_name(product_key: &'a str, device_name: &'a str) -> Query<'a> {
        Query {
            device: DeviceRef::Name {
                product_key,
                device_name,
            },
            module: None,
            statuses: StatusSet::EMPTY,
            instance: None,
        }
    }

    /// Only tasks of this module (ignoring ASCII case).
    #[must_use]
    pub fn module(mut self, module: &'a str) -> Query<'a> {
        self.module = Some(module);
        self
    }

    /// Only tasks in these statuses (each must be unfinished).
    #[must_use]
    pub fn statuses(mut self, statuses: StatusSet) -> Query<'a> {
        self.statuses = statuses;
        self
    }

    /// In this platform instance.
    #[must_use]
    pub fn instance(mut self, instance: &'a str) -> Query<'a> {
        self.instance = Some(instance);
        self
    }

    /// The statuses asked for: the set given, or all four unfinished ones when it is empty.
    pub fn effective_statuses(&self) -> StatusSet {
        if self.statuses.is_empty() {
            StatusSet::UNFINISHED
        } else {
            self.statuses
        }
    }

    /// The instance asked for, with empty meaning the default instance (`""`).
    pub fn instance_name(&self) -> &'a str {
        self.instance.unwrap_or("")
    }

    /// Checks the query's values in the reference's order: the device (`iotId`, or
    /// `productKey` then `deviceName`), the module, then the statuses.
    pub fn validate(&self) -> Result<(), QueryError> {
        let check = |field: Field, value: &str| {
            field
                .check(value)
                .map_err(|v| QueryError::InvalidField(FieldError::new(field, v)))
        };
        match self.device {
            DeviceRef::IotId(id) => check(Field::IotId, id)?,
            DeviceRef::Name {
                product_key,
                device_name,
            } => {
                check(Field::ProductKey, product_key)?;
                check(Field::DeviceName, device_name)?;
            }
        }
        if let Some(module) = self.module.filter(|m| !m.is_empty()) {
            check(Field::ModuleName, module)?;
        }
        if let Some(finished) = self.statuses.iter().find(|s| !s.is_unfinished()) {
            return Err(QueryError::FinishedStatus(finished));
        }
        Ok(())
    }
}

/// Why a query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A device or module value breaks its field rule.
    #[error("invalid query: {0}")]
    InvalidField(FieldError),
    /// A finished status was asked for; only unfinished statuses can be queried.
    #[error("status {0} is finished: only unfinished statuses (CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS) can be queried")]
    FinishedStatus(TaskStatus),
    /// The instance named is not one the store holds.
    #[error("instance `{0}` is not held by this store")]
    InstanceNotFound(String),
}

impl QueryError {
    /// The field at fault, when the error is about one.
    pub fn field(&self) -> Option<Field> {
        match self {
            QueryError::InvalidField(e) => Some(e.field),
            QueryError::FinishedStatus(_) => Some(Field::TaskStatus),
            QueryError::InstanceNotFound(_) => Some(Field::IotInstanceId),
        }
    }

    /// The violation, for field errors.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            QueryError::InvalidField(e) => Some(&e.violation),
            _ => None,
        }
    }
}
