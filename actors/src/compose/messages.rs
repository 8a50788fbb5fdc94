//! What flows into the compositor pool. `Debug` prints sizes and ids,
//! never image bytes.

use actix::Message;

use super::options::StampOptions;
use super::stamp::{StampError, Stamped};

/// An upload to stamp with a mark: the HTTP handler sends it to the
/// [`super::Compositor`] pool and answers with the result.
#[derive(Message)]
#[rtype(result = "Result<Stamped, StampError>")]
pub struct Stamp {
    /// The request's id, for the logs (and the panic report).
    pub request_id: String,
    /// The uploaded image, as received.
    pub body: bytes::Bytes,
    pub options: StampOptions,
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stamp")
            .field("request_id", &self.request_id)
            .field("body_bytes", &self.body.len())
            .field("options", &self.options)
            .finish()
    }
}
