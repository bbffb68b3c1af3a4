//! The measured fast path: the usual request read straight from its query string.

use super::rules::{non_empty, status_list_index};
use super::ParsedRequest;
use crate::model::{Field, StatusSet, TaskStatus};
use crate::query::DeviceRef;

/// [`parse_request`](super::parse_request) for the usual request, read straight from the query string: `Some`
/// when every pair of `query` is `name=value` with nothing to decode (no `%` or `+`), every
/// name is one the rules read (`Action`, `IotId` or `IoTID`, `ProductKey`, `DeviceName`,
/// `ModuleName`, `TaskStatus`, `TaskStatusList.N`, `IotInstanceId`) and given once, `Action`
/// is [`ACTION`](super::ACTION), and the request passes every rule; the result is then exactly what
/// decoding `query` and calling [`parse_request`](super::parse_request) returns. `None` for anything else (an error
/// to report, an ignored parameter, an escape, an empty pair): decode and call
/// [`parse_request`](super::parse_request), which decides it. [`parse_query`](super::parse_query) does both.
///
/// One pass over the text: each name is matched whole at its first letter, each value
/// scanned eight bytes at a time, and no [`Params`](crate::rpc::params::Params) is built. 677 instructions a request of
/// the benchmark mix, field checks included, where decoding and [`parse_request`](super::parse_request) take
/// about 1,960 (callgrind, 100,000 devices).
///
/// ```
/// use ota_index::rpc::request::parse_plain;
/// use ota_index::{DeviceRef, StatusSet, TaskStatus};
///
/// let request = parse_plain(
///     "Action=ListOTAUnfinishedTaskByDevice&IotId=dev-1&TaskStatusList.2=QUEUED",
/// )
/// .unwrap();
/// assert_eq!(request.device(), DeviceRef::IotId("dev-1"));
/// assert_eq!(request.statuses(), StatusSet::only(TaskStatus::Queued));
/// // An escape, an ignored parameter or an error: the full rules decide.
/// assert!(parse_plain("Action=ListOTAUnfinishedTaskByDevice&IotId=dev%2D1").is_none());
/// assert!(parse_plain("Action=ListOTAUnfinishedTaskByDevice&IotId=d&Format=JSON").is_none());
/// assert!(parse_plain("Action=ListOTAUnfinishedTaskByDevice").is_none());
/// ```
pub fn parse_plain(query: &str) -> Option<ParsedRequest<'_>> {
    plain_from(query, Some(0), false, "")
}

/// The usual request's first two pairs: `Action=ListOTAUnfinishedTaskByDevice&IotId=` and a
/// value with nothing to decode.
const USUAL_LEAD: &[u8] = b"Action=ListOTAUnfinishedTaskByDevice&IotId=";

/// Where a query that starts as the usual request does ([`usual_lead`]) has its `IotId`
/// value; [`parse_plain_after`] goes on from there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lead<'q> {
    /// The `IotId` value: not empty, nothing to decode.
    pub(crate) iot: &'q str,
    /// Where the value ends: the query's end or a `&`.
    end: usize,
}

/// The [`Lead`] of `query` when it starts with `Action=ListOTAUnfinishedTaskByDevice&IotId=`
/// and a value that is not empty and holds no `%` or `+`: what the service's early hint reads
/// without scanning the pairs, and what [`parse_plain_after`] need not read again.
pub(crate) fn usual_lead(query: &str) -> Option<Lead<'_>> {
    let bytes = query.as_bytes();
    if !bytes.starts_with(USUAL_LEAD) {
        return None;
    }
    let start = USUAL_LEAD.len();
    let end = crate::raw::swar::first_of(bytes, start, [b'&', b'%', b'+']).unwrap_or(bytes.len());
    if end > start && bytes.get(end).is_none_or(|&b| b == b'&') {
        return query.get(start..end).map(|iot| Lead { iot, end });
    }
    None
}

/// [`parse_plain`] of a query whose first two pairs `lead` has read: the same result, without
/// matching the `Action` pair or scanning the `IotId` value a second time.
pub(crate) fn parse_plain_after<'q>(query: &'q str, lead: Lead<'q>) -> Option<ParsedRequest<'q>> {
    let next = (lead.end < query.len()).then_some(lead.end + 1);
    plain_from(query, next, true, lead.iot)
}

/// The pass of [`parse_plain`] from pair start `start` (`None`: no pair left), with the
/// `Action` pair already read when `action`, and the `IotId` value `iot` when it is not
/// empty.
fn plain_from<'q>(
    query: &'q str,
    start: Option<usize>,
    action: bool,
    iot: &'q str,
) -> Option<ParsedRequest<'q>> {
    /// A name the fast path reads (`IotId` and `IoTID` are one: one parameter).
    #[derive(Clone, Copy)]
    enum Slot {
        Iot,
        ProductKey,
        DeviceName,
        Module,
        Instance,
        Status,
        /// `TaskStatusList.N`.
        Listed(u8),
    }
    const ACTION_PAIR: &[u8; 36] = b"Action=ListOTAUnfinishedTaskByDevice";
    let bytes = query.as_bytes();
    let (mut seen, mut listed, mut action) = (u8::from(!iot.is_empty()), 0u128, action);
    let (mut iot, mut product_key, mut device_name, mut module, mut instance) =
        (iot, "", "", "", "");
    let mut statuses = StatusSet::EMPTY;
    if let Some(mut at) = start {
        loop {
            // The name, `=` included, read by its first letter and compared whole: no scan.
            let (name, value_at) = match bytes.get(at)? {
                b'A' if starts_with(bytes, at, ACTION_PAIR) && !action => {
                    let end = at + ACTION_PAIR.len();
                    if end == bytes.len() {
                        action = true;
                        break;
                    }
                    if bytes[end] != b'&' {
                        return None;
                    }
                    action = true;
                    at = end + 1;
                    continue;
                }
                b'I' if starts_with(bytes, at, b"IotId=") || starts_with(bytes, at, b"IoTID=") => {
                    (Slot::Iot, at + 6)
                }
                b'I' if starts_with(bytes, at, b"IotInstanceId=") => (Slot::Instance, at + 14),
                b'P' if starts_with(bytes, at, b"ProductKey=") => (Slot::ProductKey, at + 11),
                b'D' if starts_with(bytes, at, b"DeviceName=") => (Slot::DeviceName, at + 11),
                b'M' if starts_with(bytes, at, b"ModuleName=") => (Slot::Module, at + 11),
                b'T' if starts_with(bytes, at, b"TaskStatus=") => (Slot::Status, at + 11),
                b'T' if starts_with(bytes, at, b"TaskStatusList.") => {
                    let digits = at + 15;
                    let eq = digits
                        + bytes
                            .get(digits..)?
                            .iter()
                            .take(4)
                            .position(|&b| b == b'=')?;
                    let n = status_list_index(query.get(at..eq)?)?;
                    (Slot::Listed(n), eq + 1)
                }
                _ => return None,
            };
            // The value, up to the next `&`: nothing to decode.
            let end = match crate::raw::swar::first_of(bytes, value_at, [b'&', b'%', b'+']) {
                Some(i) if bytes[i] != b'&' => return None,
                Some(i) => i,
                None => bytes.len(),
            };
            // The delimiters are ASCII: the value lies on char boundaries.
            let value = query.get(value_at..end)?;
            let (bit, slot) = match name {
                Slot::Iot => (1, &mut iot),
                Slot::ProductKey => (2, &mut product_key),
                Slot::DeviceName => (4, &mut device_name),
                Slot::Module => (8, &mut module),
                Slot::Instance => (16, &mut instance),
                Slot::Status | Slot::Listed(_) => {
                    if let Slot::Listed(n) = name {
                        let n = 1u128 << n;
                        if listed & n != 0 {
                            return None;
                        }
                        listed |= n;
                    } else if seen & 32 != 0 {
                        return None;
                    } else {
                        seen |= 32;
                    }
                    // Empty counts as absent; else an unfinished status.
                    if !value.is_empty() {
                        statuses.insert(unfinished(value)?);
                    }
                    if end == bytes.len() {
                        break;
                    }
                    at = end + 1;
                    continue;
                }
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            *slot = value;
            if end == bytes.len() {
                break;
            }
            at = end + 1;
        }
    }
    if !action {
        return None;
    }
    let device = if !iot.is_empty() {
        Field::IotId.check(iot).ok()?;
        DeviceRef::IotId(iot)
    } else if !product_key.is_empty() && !device_name.is_empty() {
        Field::ProductKey.check(product_key).ok()?;
        Field::DeviceName.check(device_name).ok()?;
        DeviceRef::Name {
            product_key,
            device_name,
        }
    } else {
        return None;
    };
    let module = non_empty(Some(module));
    if let Some(module) = module {
        Field::ModuleName.check(module).ok()?;
    }
    Some(ParsedRequest {
        device,
        module,
        statuses,
        instance: non_empty(Some(instance)),
    })
}

/// True when `bytes[at..]` starts with `want` (compared as one fixed-size array).
#[inline(always)]
fn starts_with<const N: usize>(bytes: &[u8], at: usize, want: &[u8; N]) -> bool {
    bytes
        .get(at..at.saturating_add(N))
        .and_then(|b| <&[u8; N]>::try_from(b).ok())
        .is_some_and(|b| b == want)
}

/// The unfinished status named `value`, if it names one: the rule of
/// `TaskStatus::parse(value).filter(TaskStatus::is_unfinished)`, kept as its own match because
/// routing the fast path through `TaskStatus::parse` changed the response writer's code
/// generation and measured slower; a test holds the two equal.
pub(super) fn unfinished(value: &str) -> Option<TaskStatus> {
    Some(match value {
        "CONFIRM" => TaskStatus::Confirm,
        "QUEUED" => TaskStatus::Queued,
        "NOTIFIED" => TaskStatus::Notified,
        "IN_PROGRESS" => TaskStatus::InProgress,
        _ => return None,
    })
}
