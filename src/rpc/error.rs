//! The error codes of reference section 5, their HTTP statuses and envelopes.

use std::fmt;

/// Which JSON envelope an error is written in (reference section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// HTTP 200, the message under `errorMessage` (the `iot.*` codes).
    Business,
    /// HTTP 4xx/5xx, the message under `message` (every other code, and
    /// `iot.system.SystemException`).
    Gateway,
}

/// Every error code the RPC face answers with (reference section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `InvalidAction.NotFound`: `Action` missing or not `ListOTAUnfinishedTaskByDevice`.
    InvalidActionNotFound,
    /// `MissingParameter`: a mandatory parameter is absent.
    MissingParameter,
    /// `InvalidParameter`: a duplicate, a malformed `TaskStatusList.N` name, bad encoding.
    InvalidParameter,
    /// `iot.device.InvalidIoTId`
    InvalidIotId,
    /// `iot.prod.InvalidFormattedProductkey`
    InvalidFormattedProductKey,
    /// `iot.device.InvalidFormattedDeviceName`
    InvalidFormattedDeviceName,
    /// `iot.common.InvalidFormattedParameter`: a bad `ModuleName` or status.
    InvalidFormattedParameter,
    /// `iot.system.InstanceNotFound`
    InstanceNotFound,
    /// `SignatureDoesNotMatch`
    SignatureDoesNotMatch,
    /// `InvalidAccessKeyId.NotFound`
    InvalidAccessKeyIdNotFound,
    /// `SignatureNonceUsed`
    SignatureNonceUsed,
    /// `InvalidTimeStamp.Expired`
    InvalidTimeStampExpired,
    /// `InvalidTimeStamp.Format`
    InvalidTimeStampFormat,
    /// `iot.system.SystemException`: anything unexpected.
    SystemException,
}

impl ErrorCode {
    /// The code as written in the response's `code` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidActionNotFound => "InvalidAction.NotFound",
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::InvalidParameter => "InvalidParameter",
            ErrorCode::InvalidIotId => "iot.device.InvalidIoTId",
            ErrorCode::InvalidFormattedProductKey => "iot.prod.InvalidFormattedProductkey",
            ErrorCode::InvalidFormattedDeviceName => "iot.device.InvalidFormattedDeviceName",
            ErrorCode::InvalidFormattedParameter => "iot.common.InvalidFormattedParameter",
            ErrorCode::InstanceNotFound => "iot.system.InstanceNotFound",
            ErrorCode::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            ErrorCode::InvalidAccessKeyIdNotFound => "InvalidAccessKeyId.NotFound",
            ErrorCode::SignatureNonceUsed => "SignatureNonceUsed",
            ErrorCode::InvalidTimeStampExpired => "InvalidTimeStamp.Expired",
            ErrorCode::InvalidTimeStampFormat => "InvalidTimeStamp.Format",
            ErrorCode::SystemException => "iot.system.SystemException",
        }
    }

    /// The HTTP status `serve` answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidActionNotFound | ErrorCode::InvalidAccessKeyIdNotFound => 404,
            ErrorCode::MissingParameter
            | ErrorCode::InvalidParameter
            | ErrorCode::SignatureNonceUsed
            | ErrorCode::InvalidTimeStampExpired
            | ErrorCode::InvalidTimeStampFormat => 400,
            ErrorCode::SignatureDoesNotMatch => 403,
            ErrorCode::SystemException => 500,
            ErrorCode::InvalidIotId
            | ErrorCode::InvalidFormattedProductKey
            | ErrorCode::InvalidFormattedDeviceName
            | ErrorCode::InvalidFormattedParameter
            | ErrorCode::InstanceNotFound => 200,
        }
    }

    /// The envelope the error is written in.
    pub const fn envelope(self) -> Envelope {
        if self.http_status() == 200 {
            Envelope::Business
        } else {
            Envelope::Gateway
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: its code and a message naming the parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// The code of reference section 5.
    pub code: ErrorCode,
    /// What was wrong, naming the parameter.
    pub message: String,
}

impl RpcError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of the code.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}
