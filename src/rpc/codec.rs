//! The tonic codec of `isp.Message`, with Go's texts for bytes that are
//! not a message.

use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::message::Message;

/// Encodes and decodes `isp.Message` with prost. A server's decode error is
/// `Internal`, `grpc: error unmarshalling request: …`, as grpc-go's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IspCodec;

/// The client's codec: the same, with the text of a bad response.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IspClientCodec;

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
            what: "grpc: error unmarshalling request",
        }
    }
}

impl Codec for IspClientCodec {
    type Encode = Message;
    type Decode = Message;
    type Encoder = IspEncoder;
    type Decoder = IspDecoder;

    fn encoder(&mut self) -> IspEncoder {
        IspEncoder
    }

    fn decoder(&mut self) -> IspDecoder {
        IspDecoder {
            what: "grpc: failed to unmarshal the received message",
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
