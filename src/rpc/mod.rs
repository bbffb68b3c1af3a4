//! The RPC face: requests as the platform receives them in, the platform's bytes out.

pub mod error;
pub mod params;
pub mod request;
pub mod response;

pub use error::{Envelope, ErrorCode, RpcError};
pub use params::{Param, Params, Source};
pub use request::{parse_request, ParsedRequest};
pub use response::{new_request_id, write_error, write_json_string, write_success, KeyCase};
