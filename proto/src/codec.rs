//! The gRPC codec of every Cairn service: prost's, except that a message that does not decode is
//! the sender's error. tonic answers a request it cannot decode with `INTERNAL`, which tells a
//! client the server failed; it is `INVALID_ARGUMENT` here, with the stable code in the
//! structured detail like every other Cairn error.

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

use crate::v1::{ErrorCode, ErrorDetail};

/// Prost encoding and decoding, decode failures as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct CairnCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for CairnCodec<T, U> {
    fn default() -> Self {
        CairnCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for CairnCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = InvalidOnFailure<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidOnFailure(self.0.decoder())
    }
}

/// A decoder whose failures are the sender's error.
#[derive(Debug)]
pub struct InvalidOnFailure<D>(D);

impl<D: Decoder<Error = Status>> Decoder for InvalidOnFailure<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|s| if s.code() == Code::Internal { malformed(s.message()) } else { s })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// `INVALID_ARGUMENT` for a message that is not valid protobuf of the expected type.
pub fn malformed(why: &str) -> Status {
    let message = format!("the message is not a valid protobuf message of the expected type: {why}");
    let detail = ErrorDetail {
        code: ErrorCode::InvalidArgument as i32,
        retriable: false,
        definite: true,
        message: message.clone(),
        ..ErrorDetail::default()
    };
    Status::with_details(Code::InvalidArgument, message, detail.encode_to_vec().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_failure_is_invalid_argument_with_the_stable_code() {
        let s = malformed("invalid wire type");
        assert_eq!(s.code(), Code::InvalidArgument);
        let d = ErrorDetail::decode(s.details()).expect("detail");
        assert_eq!(d.code(), ErrorCode::InvalidArgument);
        assert!(d.definite && !d.retriable);
        assert!(s.message().contains("invalid wire type"));
    }
}
