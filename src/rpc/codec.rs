//! The tonic codec of `isp.Message`, with Go's texts for bytes that are
//! not a message.

use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::message::Message;

/// Encodes and decodes `isp.Message` with prost; bytes that are not a
/// message are `Internal` with grpc-go's text for the side that read them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IspCodec {
    decode_error: &'static str,
}

impl IspCodec {
    /// The server's: a bad request is `grpc: error unmarshalling request: …`.
    pub(crate) const SERVER: Self = Self {
        decode_error: "grpc: error unmarshalling request",
    };
    /// The client's: the text of a bad response.
    pub(crate) const CLIENT: Self = Self {
        decode_error: "grpc: failed to unmarshal the received message",
    };
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct IspEncoder;

#[derive(Debug, Clone, Copy)]
pub(crate) struct IspDecoder {
    what: &'static str,
}

impl Codec for IspCodec {
    type Encode = Message;
    type Decode = Message;
    type Encoder = IspEncoder;
    type Decoder = IspDecoder;

    fn encoder(&mut self) -> IspEncoder {
        IspEncoder
    }

    fn decoder(&mut self) -> IspDecoder {
        IspDecoder {
            what: self.decode_error,
        }
    }
}

impl Encoder for IspEncoder {
    type Item = Message;
    type Error = Status;

    fn encode(&mut self, item: Message, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("grpc: error while marshaling: {e}")))
    }
}

impl Decoder for IspDecoder {
    type Item = Message;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Message>, Status> {
        Message::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("{}: {e}", self.what)))
    }
}
