//! tonic codecs for messages that travel as bytes encoded elsewhere, with the operation reply
//! decoded as usual. tonic's generated code decodes requests before a handler runs and encodes
//! every request itself; these let
//! - an agent see each request's bytes (to report its size and time its own decoding):
//!   [`RawRequestCodec`], server side;
//! - a controller send a goal state it encoded once and cached, or arbitrary bytes in tests:
//!   [`RawClientCodec`], client side.

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::GoalStateOperationReply;

/// Server side: requests as raw bytes, replies encoded with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawRequestCodec;

/// Client side: requests as raw bytes, replies decoded with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawClientCodec;

/// Writes bytes as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesEncoder;

/// Reads a whole message as bytes (no copy: tonic's buffer is split off).
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesDecoder;

/// Encodes operation replies with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplyEncoder;

/// Decodes operation replies with prost.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplyDecoder;

impl Codec for RawRequestCodec {
    type Encode = GoalStateOperationReply;
    type Decode = Bytes;
    type Encoder = ReplyEncoder;
    type Decoder = BytesDecoder;
    fn encoder(&mut self) -> ReplyEncoder {
        ReplyEncoder
    }
    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

impl Codec for RawClientCodec {
    type Encode = Bytes;
    type Decode = GoalStateOperationReply;
    type Encoder = BytesEncoder;
    type Decoder = ReplyDecoder;
    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> ReplyDecoder {
        ReplyDecoder
    }
}

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

impl Encoder for ReplyEncoder {
    type Item = GoalStateOperationReply;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding reply: {e}")))
    }
}

impl Decoder for ReplyDecoder {
    type Item = GoalStateOperationReply;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let len = src.remaining();
        GoalStateOperationReply::decode(src.copy_to_bytes(len))
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding reply: {e}")))
    }
}
