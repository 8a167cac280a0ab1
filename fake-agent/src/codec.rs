//! A tonic codec that hands the service the raw bytes of each request message.
//!
//! Written by hand because tonic's generated server decodes before the handler runs, and an
//! agent must report each message's encoded size and time its own decoding. Replies are encoded
//! with prost as usual.

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use alcor_schema::GoalStateOperationReply;

/// Requests as raw bytes, replies as `GoalStateOperationReply`.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = GoalStateOperationReply;
    type Decode = Bytes;
    type Encoder = ReplyEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ReplyEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// Encodes replies with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplyEncoder;

impl Encoder for ReplyEncoder {
    type Item = GoalStateOperationReply;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding reply: {e}")))
    }
}

/// Yields each request message's bytes without decoding them (no copy: tonic's buffer is split).
#[derive(Debug, Default, Clone, Copy)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}
