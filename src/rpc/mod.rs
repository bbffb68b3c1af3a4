//! The RPC face: requests as the platform receives them in, the platform's bytes out.

pub mod error;

pub use error::{Envelope, ErrorCode, RpcError};
