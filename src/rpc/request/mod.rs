//! The rules of reference section 3: decoded parameters in, a typed request or the one error
//! that wins out.
//!
//! Checks run in the order of reference section 3, rule 8 and the first fault wins:
//!
//! 1. `Action` ([`ErrorCode::InvalidActionNotFound`](crate::rpc::ErrorCode::InvalidActionNotFound));
//! 2. malformed or duplicate parameters ([`ErrorCode::InvalidParameter`](crate::rpc::ErrorCode::InvalidParameter));
//! 3. the device: missing ([`ErrorCode::MissingParameter`](crate::rpc::ErrorCode::MissingParameter)), then the format of `IotId`, or of
//!    `ProductKey` then `DeviceName`;
//! 4. `ModuleName`;
//! 5. the statuses: `TaskStatus`, then `TaskStatusList.N` in increasing `N`;
//! 6. `IotInstanceId` (carried through; the engine says whether the instance exists).
//!
//! Decisions beyond the reference's text (some make its rules precise), each a **(choice)**:
//!
//! - **Action.** The values of parameters named exactly `Action` (name and value decoded,
//!   value non-empty) are used, and the `x-acs-action` header is then not consulted even when
//!   it differs; the header is read only when no such parameter exists. Every `Action` value
//!   must be `ListOTAUnfinishedTaskByDevice`; two correct `Action` parameters are a duplicate
//!   (step 2). An `Action` whose value does not decode does not count as given: without
//!   the `x-acs-action` header (or a correct `Action`) the answer is
//!   `InvalidAction.NotFound`; with one, the parameter is reported as malformed at step 2.
//! - **Duplicates** are decided on decoded names, whatever the values: `ProductKey=a&ProductKey=`
//!   is a duplicate even though the second value is empty, so nothing is silently picked.
//!   This holds for every name, ignored ones (`Format`, …) included, and across the query
//!   string and the body. `IotId` and `IoTID` are one parameter under two spellings, so both
//!   present (with any values) is a duplicate too.
//! - **`TaskStatusList` names.** Any name starting with `TaskStatusList` must be exactly
//!   `TaskStatusList.N`, N from 1 to 100 in decimal without sign or leading zero; anything
//!   else (`TaskStatusList`, `TaskStatusList.`, `TaskStatusList.0`, `TaskStatusList.01`,
//!   `TaskStatusList.+1`, `TaskStatusList.101`, `TaskStatusList.1.x`, `TaskStatusListX`) is
//!   malformed. Names are case-sensitive: `taskstatuslist.1` is merely unknown, and ignored.
//! - **Too many parameters** (over [`MAX_PARAMS`](crate::rpc::params::MAX_PARAMS)) is `InvalidParameter`, checked first in
//!   step 2; `Action` is still looked for among every pair, also past the cap.
//! - **Missing device.** With neither form given, the message names `IotId` or `ProductKey`
//!   and `DeviceName`; with only one of the pair given, it names the other one.
//! - **`IotInstanceId`** is not format-checked here: an instance id that breaks its field rule
//!   cannot name an instance the store holds, so the engine answers
//!   `iot.system.InstanceNotFound` for it.
//!
//! Error messages name the parameter and echo at most 64 characters of what was received.

mod plain;
mod rules;

#[cfg(test)]
mod tests;

use super::error::RpcError;
use super::params::Params;
use crate::model::StatusSet;
use crate::query::{DeviceRef, Query};
use rules::{
    check_action, check_well_formed, non_empty, parse_device, parse_module, parse_statuses, Known,
};

pub use plain::parse_plain;
pub(crate) use plain::{parse_plain_after, usual_lead, Lead};

/// The only action this service answers.
pub const ACTION: &str = "ListOTAUnfinishedTaskByDevice";

/// The header that carries the action when it is not among the parameters (V3 signing).
pub const ACTION_HEADER: &str = "x-acs-action";

/// The largest `N` of `TaskStatusList.N`.
pub const MAX_STATUS_LIST_INDEX: u8 = 100;

/// Most characters of a received name or value echoed in an error message.
const ECHO_CHARS: usize = 64;

/// A request that passed every rule of reference section 3, with its decoded values.
///
/// ```
/// use ota_index::rpc::params::Params;
/// use ota_index::rpc::request::parse_request;
/// use ota_index::{DeviceRef, StatusSet, TaskStatus};
///
/// let params = Params::decode(
///     "Action=ListOTAUnfinishedTaskByDevice&IotId=dev-1&TaskStatusList.2=QUEUED",
///     None,
/// );
/// let request = parse_request(&params, None).unwrap();
/// let query = request.query();
/// assert_eq!(query.device, DeviceRef::IotId("dev-1"));
/// assert_eq!(query.statuses, StatusSet::only(TaskStatus::Queued));
/// ```
///
/// Values borrow from the decoded [`Params`]: a request answered from the wire allocates
/// nothing of its own unless a value needed percent-decoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParsedRequest<'p> {
    /// Checked against its field rules.
    device: DeviceRef<'p>,
    /// Non-empty and checked against the `ModuleName` rule when present.
    module: Option<&'p str>,
    /// Only unfinished statuses; empty means all four.
    statuses: StatusSet,
    /// Non-empty when present; not checked (the engine looks it up).
    instance: Option<&'p str>,
}

impl<'p> ParsedRequest<'p> {
    /// The typed query, borrowing this request's values.
    pub fn query(&self) -> Query<'p> {
        Query {
            device: self.device(),
            module: self.module(),
            statuses: self.statuses,
            instance: self.instance(),
        }
    }

    /// The device asked about.
    pub fn device(&self) -> DeviceRef<'p> {
        self.device
    }

    /// The module filter, `None` for every module.
    pub fn module(&self) -> Option<&'p str> {
        self.module
    }

    /// The statuses asked for; empty means all four unfinished statuses.
    pub fn statuses(&self) -> StatusSet {
        self.statuses
    }

    /// The `IotInstanceId` given, `None` for the default instance.
    pub fn instance(&self) -> Option<&'p str> {
        self.instance
    }
}

/// Applies the rules of reference section 3 to decoded parameters.
///
/// `action_header` is the value of the `x-acs-action` header, if any; it supplies the action
/// when no `Action` parameter does. See the module documentation for the order of checks and
/// the choices made.
pub fn parse_request<'p>(
    params: &'p Params<'_>,
    action_header: Option<&str>,
) -> Result<ParsedRequest<'p>, RpcError> {
    check_action(params, action_header)?;
    let mut known = Known::default();
    check_well_formed(params, &mut known)?;
    // From here on every name and value decoded and every name is unique.
    let device = parse_device(&known)?;
    let module = parse_module(&known)?;
    let statuses = parse_statuses(&known)?;
    let instance = non_empty(known.instance);
    Ok(ParsedRequest {
        device,
        module,
        statuses,
        instance,
    })
}

/// Decodes a request's parameters into `params` and applies the rules of section 3:
/// [`parse_plain`] when there is no form body and it reads the query string, else
/// [`Params::decode_into`] and [`parse_request`]. The same result either way.
///
/// ```
/// use ota_index::rpc::params::Params;
/// use ota_index::rpc::request::parse_query;
/// use ota_index::DeviceRef;
///
/// let mut params = Params::default();
/// let q = "Action=ListOTAUnfinishedTaskByDevice&IotId=dev%2D1";
/// let request = parse_query(&mut params, q, None, None).unwrap();
/// assert_eq!(request.device(), DeviceRef::IotId("dev-1"));
/// ```
pub fn parse_query<'p, 'q: 'p>(
    params: &'p mut Params<'q>,
    query: &'q str,
    body: Option<&'q [u8]>,
    action_header: Option<&str>,
) -> Result<ParsedRequest<'p>, RpcError> {
    if body.is_none() {
        if let Some(request) = parse_plain(query) {
            return Ok(request);
        }
    }
    params.decode_into(query, body);
    parse_request(params, action_header)
}
