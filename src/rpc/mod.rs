//! The RPC face: requests as the platform receives them in, the platform's bytes out.

pub mod error;
pub mod params;
pub mod request;
pub mod response;
pub mod signature;

pub use error::{Envelope, ErrorCode, RpcError};
pub use params::{Param, Params, Source};
pub use request::{parse_plain, parse_query, parse_request, ParsedRequest};
pub use response::{new_request_id, write_error, write_json_string, write_success, KeyCase};
pub use signature::{SignedRequest, Verifier};
pub mod service;
pub use service::{query_part, HttpRequest, Service, MAX_REQUEST_BYTES};
