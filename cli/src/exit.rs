//! Exit codes (DESIGN §5) and the one error type the commands return.

use tandem_client::ClientError;
use tandem_protocol::ErrorCode;

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const BUSY: u8 = 3;
pub const NOT_FOUND: u8 = 4;
pub const UNREACHABLE: u8 = 5;
pub const INTERRUPTED: u8 = 130;

/// A failed command: what to print and which code to exit with.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    pub fn new(code: u8, message: impl Into<String>) -> Fail {
        Fail { code, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Fail {
        Fail::new(USAGE, message)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// The exit code for a client error.
pub fn code_for(e: &ClientError) -> u8 {
    match e {
        ClientError::Rpc(rpc) => {
            if rpc.is(ErrorCode::Busy) {
                BUSY
            } else if rpc.is(ErrorCode::ThreadNotFound)
                || rpc.is(ErrorCode::TurnNotFound)
                || rpc.reason() == Some("linkNotFound")
            {
                NOT_FOUND
            } else if rpc.is(ErrorCode::InvalidParams) || rpc.reason() == Some("frameTooLarge") {
                USAGE
            } else {
                FAILURE
            }
        }
        ClientError::Decode(_) | ClientError::Unattributed { .. } => FAILURE,
        ClientError::TooLarge { .. } => USAGE,
        // The server it started said its configuration (config.toml, the
        // environment) is wrong, as `tandem app-server start` would (2).
        ClientError::ServerExited { code: Some(2), .. } => USAGE,
        ClientError::ServerExited { .. } => FAILURE,
        // A token refused at the door (or a link that lost its access): the
        // server is there, the caller may not use it.
        ClientError::Refused { error, .. }
            if error.is(ErrorCode::Forbidden) || error.reason() == Some("unauthorized") =>
        {
            FAILURE
        }
        _ => UNREACHABLE,
    }
}

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        let code = code_for(&e);
        let mut message = e.to_string();
        if let ClientError::Unreachable { .. } = e {
            message
                .push_str("\nIs it running? Start it with `tandem app-server start`, or check --server and try again.");
        }
        Fail::new(code, message)
    }
}
