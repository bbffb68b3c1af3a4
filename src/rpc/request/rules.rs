//! The rules of the reference's section 3 over decoded parameters, in the order of rule 8.

use std::borrow::Cow;
use std::collections::HashMap;

use smallvec::SmallVec;

use super::{ACTION, ACTION_HEADER, ECHO_CHARS, MAX_STATUS_LIST_INDEX};
use crate::model::{Field, StatusSet, TaskStatus};
use crate::query::DeviceRef;
use crate::rpc::error::{ErrorCode, RpcError};
use crate::rpc::params::{Param, Params, MAX_PARAMS};

/// The parameters steps 3–6 read, found by step 2's one pass over the names (which are
/// unique by then): each rule then reads its value instead of searching for it.
#[derive(Default)]
pub(super) struct Known<'p> {
    /// `IotId` or its alias `IoTID`: the name given and its value.
    pub(super) iot_id: Option<(&'p str, &'p str)>,
    pub(super) product_key: Option<&'p str>,
    pub(super) device_name: Option<&'p str>,
    pub(super) module: Option<&'p str>,
    pub(super) task_status: Option<&'p str>,
    pub(super) instance: Option<&'p str>,
    /// Every `TaskStatusList.N` pair in received order: `N`, the name, the value.
    pub(super) status_list: SmallVec<[(u8, &'p str, &'p str); 4]>,
}

/// A name step 2 knows, or none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum KnownName {
    IotId,
    ProductKey,
    DeviceName,
    ModuleName,
    TaskStatus,
    IotInstanceId,
    Other,
}

impl KnownName {
    fn of(name: &str) -> KnownName {
        match name {
            "IotId" | "IoTID" => KnownName::IotId,
            "ProductKey" => KnownName::ProductKey,
            "DeviceName" => KnownName::DeviceName,
            "ModuleName" => KnownName::ModuleName,
            "TaskStatus" => KnownName::TaskStatus,
            "IotInstanceId" => KnownName::IotInstanceId,
            _ => KnownName::Other,
        }
    }
}

/// Step 4: `ModuleName`, when given, must meet its field rule.
pub(super) fn parse_module<'p>(known: &Known<'p>) -> Result<Option<&'p str>, RpcError> {
    let Some(module) = non_empty(known.module) else {
        return Ok(None);
    };
    Field::ModuleName.check(module).map_err(|v| {
        RpcError::new(
            ErrorCode::InvalidFormattedParameter,
            format!("The format of the module name is invalid: parameter ModuleName {v}."),
        )
    })?;
    Ok(Some(module))
}

/// Step 1: every usable `Action` parameter (else the header) must name [`ACTION`].
pub(super) fn check_action(params: &Params<'_>, header: Option<&str>) -> Result<(), RpcError> {
    let not_found = |what: String| {
        RpcError::new(
            ErrorCode::InvalidActionNotFound,
            format!(
                "The specified action is not found: {what}; this service answers only {ACTION}."
            ),
        )
    };
    let mut given = false;
    let mut undecodable = false;
    let mut check = |param: &Param<'_>| -> Result<(), RpcError> {
        if !param.is_named("Action") {
            return Ok(());
        }
        match param.value_str() {
            None => {
                undecodable = true;
                Ok(())
            }
            Some("") => Ok(()),
            Some(ACTION) => {
                given = true;
                Ok(())
            }
            Some(other) => Err(not_found(format!("parameter Action is `{}`", echo(other)))),
        }
    };
    for param in params.iter() {
        check(param)?;
    }
    for param in params.unread() {
        check(&param)?;
    }
    if given {
        return Ok(());
    }
    match header {
        Some(ACTION) => Ok(()),
        Some(other) if !other.is_empty() => Err(not_found(format!(
            "header {ACTION_HEADER} is `{}`",
            echo(other)
        ))),
        _ if undecodable => Err(not_found(
            "parameter Action is not valid form encoding".to_owned(),
        )),
        _ => Err(not_found("parameter Action is missing".to_owned())),
    }
}

/// Step 2: too many parameters, undecodable names or values, duplicates, malformed
/// `TaskStatusList` names; the first in received order. Notes in `known` where the
/// parameters later steps read are.
pub(super) fn check_well_formed<'p>(
    params: &'p Params<'_>,
    known: &mut Known<'p>,
) -> Result<(), RpcError> {
    let invalid = |message: String| RpcError::new(ErrorCode::InvalidParameter, message);
    if params.too_many() {
        return Err(invalid(format!(
            "The request has more than {MAX_PARAMS} parameters; at most {MAX_PARAMS} are accepted."
        )));
    }
    // The names step 2 does not know, to find their duplicates: canonical name to the
    // spelling first received (bounded by MAX_PARAMS). A handful of parameters is the rule:
    // a linear scan beats hashing them; past 16, hash.
    let mut seen_few: SmallVec<[&str; 16]> = SmallVec::new();
    let mut seen_many: HashMap<&str, ()> = HashMap::new();
    for param in params {
        let name = match &param.name {
            Ok(name) => name.as_ref(),
            Err(e) => {
                return Err(invalid(format!(
                    "The parameter name `{}` in the {} cannot be decoded: {e}.",
                    echo(&String::from_utf8_lossy(param.raw_name)),
                    param.source,
                )))
            }
        };
        let value = match &param.value {
            Ok(value) => value.as_ref(),
            Err(e) => {
                return Err(invalid(format!(
                    "The value of parameter {} in the {} cannot be decoded: {e}.",
                    echo(name),
                    param.source,
                )))
            }
        };
        let slot = match KnownName::of(name) {
            KnownName::IotId => {
                // `IoTID` is the API page's spelling of `IotId`: one parameter.
                if let Some((first, _)) = known.iot_id {
                    return Err(invalid(duplicate(first, name)));
                }
                known.iot_id = Some((name, value));
                continue;
            }
            KnownName::ProductKey => &mut known.product_key,
            KnownName::DeviceName => &mut known.device_name,
            KnownName::ModuleName => &mut known.module,
            KnownName::TaskStatus => &mut known.task_status,
            KnownName::IotInstanceId => &mut known.instance,
            KnownName::Other => {
                let earlier = if seen_few.len() < seen_few.inline_size() {
                    let found = seen_few.contains(&name);
                    if !found {
                        seen_few.push(name);
                    }
                    found
                } else {
                    if seen_many.is_empty() {
                        seen_many.extend(seen_few.iter().map(|&n| (n, ())));
                    }
                    seen_many.insert(name, ()).is_some()
                };
                if earlier {
                    return Err(invalid(duplicate(name, name)));
                }
                if name.starts_with("TaskStatusList") {
                    let Some(index) = status_list_index(name) else {
                        return Err(invalid(format!(
                            "The parameter name {} is malformed: it must be TaskStatusList.N, N a \
                             decimal integer from 1 to {MAX_STATUS_LIST_INDEX} with no sign and \
                             no leading zero.",
                            echo(name)
                        )));
                    };
                    known.status_list.push((index, name, value));
                }
                continue;
            }
        };
        if slot.is_some() {
            return Err(invalid(duplicate(name, name)));
        }
        *slot = Some(value);
    }
    Ok(())
}

/// The message for a parameter given twice: `first` as first received, `again` now.
pub(super) fn duplicate(first: &str, again: &str) -> String {
    if first == again {
        format!(
            "The parameter {} is given more than once; give it once.",
            echo(again)
        )
    } else {
        "The parameters IotId and IoTID are the same parameter and are both given; \
         give one of them once."
            .to_owned()
    }
}

/// `N` of a well-formed `TaskStatusList.N` name.
pub(super) fn status_list_index(name: &str) -> Option<u8> {
    let digits = name.strip_prefix("TaskStatusList.")?;
    let well_formed = (1..=3).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    digits
        .parse::<u8>()
        .ok()
        .filter(|n| (1..=MAX_STATUS_LIST_INDEX).contains(n))
}

/// A parameter's value when given and not empty (an empty value counts as absent).
pub(super) fn non_empty(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// Step 3: `IotId` (or `IoTID`) wins; else `ProductKey` and `DeviceName`, both required.
pub(super) fn parse_device<'p>(known: &Known<'p>) -> Result<DeviceRef<'p>, RpcError> {
    if let Some((name, iot_id)) = known.iot_id.filter(|(_, value)| !value.is_empty()) {
        Field::IotId.check(iot_id).map_err(|v| {
            RpcError::new(
                ErrorCode::InvalidIotId,
                format!("The format of the device id is invalid: parameter {name} {v}."),
            )
        })?;
        return Ok(DeviceRef::IotId(iot_id));
    }
    let missing = |what: &str| {
        RpcError::new(
            ErrorCode::MissingParameter,
            format!(
                "The input parameter {what} that is mandatory for processing this request is \
                 not supplied."
            ),
        )
    };
    let (product_key, device_name) =
        match (non_empty(known.product_key), non_empty(known.device_name)) {
            (Some(pk), Some(dn)) => (pk, dn),
            (None, None) => return Err(missing("IotId or ProductKey and DeviceName")),
            (None, Some(_)) => return Err(missing("ProductKey")),
            (Some(_), None) => return Err(missing("DeviceName")),
        };
    Field::ProductKey.check(product_key).map_err(|v| {
        RpcError::new(
            ErrorCode::InvalidFormattedProductKey,
            format!("The format of the product key is invalid: parameter ProductKey {v}."),
        )
    })?;
    Field::DeviceName.check(device_name).map_err(|v| {
        RpcError::new(
            ErrorCode::InvalidFormattedDeviceName,
            format!("The format of the device name is invalid: parameter DeviceName {v}."),
        )
    })?;
    Ok(DeviceRef::Name {
        product_key,
        device_name,
    })
}

/// Step 5: `TaskStatus`, then `TaskStatusList.N` by increasing `N`; the union of them all.
pub(super) fn parse_statuses(known: &Known<'_>) -> Result<StatusSet, RpcError> {
    let mut set = StatusSet::EMPTY;
    if let Some(value) = non_empty(known.task_status) {
        set.insert(unfinished_status("TaskStatus", value)?);
    }
    // Keep the error of the smallest index, since the entries arrive in any order.
    let mut first_error: Option<(u8, RpcError)> = None;
    for &(index, name, value) in &known.status_list {
        if value.is_empty() {
            continue;
        }
        match unfinished_status(name, value) {
            Ok(status) => set.insert(status),
            Err(e) => {
                if first_error.as_ref().is_none_or(|(at, _)| index < *at) {
                    first_error = Some((index, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(set),
    }
}

/// The status named `value`, which must be one of the four unfinished ones.
pub(super) fn unfinished_status(name: &str, value: &str) -> Result<TaskStatus, RpcError> {
    let message = match TaskStatus::parse(value) {
        Some(status) if status.is_unfinished() => return Ok(status),
        Some(status) => format!(
            "The format of the parameter is invalid: parameter {name} is {status}, a finished \
             status; only unfinished statuses (CONFIRM, QUEUED, NOTIFIED, IN_PROGRESS) can be \
             queried."
        ),
        None => format!(
            "The format of the parameter is invalid: parameter {name} is `{}`, not a task \
             status; expected CONFIRM, QUEUED, NOTIFIED or IN_PROGRESS.",
            echo(value)
        ),
    };
    Err(RpcError::new(ErrorCode::InvalidFormattedParameter, message))
}

/// At most [`ECHO_CHARS`] characters of `text`, with `…` when cut.
pub(super) fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}…", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}
