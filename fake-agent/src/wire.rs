//! A decoding view of `GoalStateV2` for the agent's hot path.
//!
//! On the wire a protobuf map is a repeated entry message, so field 7 (`neighbor_states`) can be
//! read as `repeated bytes` (zero-copy slices of the received buffer) and each entry decoded
//! into a `Vec`. prost's generated type instead builds a SipHash `HashMap<String, NeighborState>`
//! with an allocated key per neighbor, which the agent would only take apart again: at 100k
//! neighbors that map is most of the decode time. Every other field is the generated type's.

use std::collections::HashMap;

use alcor_schema::{
    DhcpState, GatewayState, HostResources, NeighborState, PortState, RouterState, SecurityGroupState, SubnetState,
    VpcState,
};
use bytes::Bytes;
use prost::Message;

use crate::neighbor_ref::{NeighborRef, check_host_resources};

/// `alcor.schema.GoalStateV2` with its neighbor map left undecoded (field numbers as in
/// goalstate.proto).
#[derive(Clone, PartialEq, Message)]
pub struct GoalStateV2View {
    /// Field 1.
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    /// Field 2: the encoded map entries (host IP → the resources it must get), checked but
    /// not decoded: the agent applies what the message carries, and the listing holds one id
    /// string per resource.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub host_resources: Vec<Bytes>,
    /// Field 3.
    #[prost(map = "string, message", tag = "3")]
    pub vpc_states: HashMap<String, VpcState>,
    /// Field 4.
    #[prost(map = "string, message", tag = "4")]
    pub subnet_states: HashMap<String, SubnetState>,
    /// Field 5.
    #[prost(map = "string, message", tag = "5")]
    pub port_states: HashMap<String, PortState>,
    /// Field 6.
    #[prost(map = "string, message", tag = "6")]
    pub dhcp_states: HashMap<String, DhcpState>,
    /// Field 7: the encoded map entries.
    #[prost(bytes = "bytes", repeated, tag = "7")]
    pub neighbor_states: Vec<Bytes>,
    /// Field 8.
    #[prost(map = "string, message", tag = "8")]
    pub security_group_states: HashMap<String, SecurityGroupState>,
    /// Field 9.
    #[prost(map = "string, message", tag = "9")]
    pub router_states: HashMap<String, RouterState>,
    /// Field 10.
    #[prost(map = "string, message", tag = "10")]
    pub gateway_states: HashMap<String, GatewayState>,
}

/// One entry of the host-resources map, for prost to decode where the in-place check gives up.
#[derive(Clone, PartialEq, Message)]
struct HostResourcesEntry {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<HostResources>,
}

/// One entry of the neighbor map; the key (`"L2/<id>"`) is not needed, the state carries its id.
#[derive(Clone, PartialEq, Message)]
struct NeighborEntry {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(message, optional, tag = "2")]
    value: Option<NeighborState>,
}

/// A GoalStateV2 decoded for applying: everything typed, neighbors in wire order.
#[derive(Debug, Default)]
pub struct DecodedV2 {
    /// Every field but the neighbors.
    pub view: GoalStateV2View,
    /// The neighbor states, in wire order.
    pub neighbors: Vec<WireNeighbor>,
}

/// One neighbor state of a decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum WireNeighbor {
    /// Still encoded, already checked: read in place with
    /// [`NeighborRef::parse`](crate::neighbor_ref::NeighborRef::parse), which succeeds.
    Checked(Bytes),
    /// Decoded by prost (an entry the in-place reader leaves to it, or a message that came
    /// decoded).
    Decoded(NeighborState),
}

impl WireNeighbor {
    /// The state, decoded (allocating: for strict validation and tests, not the hot path).
    pub fn to_state(&self) -> NeighborState {
        match self {
            // Checked entries decode; a default state would be rejected as having no id.
            Self::Checked(b) => NeighborEntry::decode(b.clone())
                .ok()
                .and_then(|e| e.value)
                .unwrap_or_default(),
            Self::Decoded(s) => s.clone(),
        }
    }
}

/// Decodes a whole GoalStateV2; fails, having applied nothing, on any malformed part. Each
/// neighbor entry is checked in place (no allocation); prost decodes the few it cannot read so,
/// and its error is the message's.
pub fn decode_v2(raw: Bytes) -> Result<DecodedV2, prost::DecodeError> {
    let mut view = GoalStateV2View::decode(raw)?;
    for entry in &view.host_resources {
        if check_host_resources(entry).is_err() {
            HostResourcesEntry::decode(entry.clone())?;
        }
    }
    let entries = std::mem::take(&mut view.neighbor_states);
    let mut neighbors = Vec::with_capacity(entries.len());
    for entry in entries {
        neighbors.push(match NeighborRef::parse(&entry) {
            Ok(_) => WireNeighbor::Checked(entry),
            Err(_) => WireNeighbor::Decoded(NeighborEntry::decode(entry)?.value.unwrap_or_default()),
        });
    }
    Ok(DecodedV2 { view, neighbors })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use alcor_schema::GoalStateV2;

    #[test]
    fn the_view_reads_what_the_generated_type_writes() {
        let gs = sample::port_joining_subnet("127.1.0.1".parse().unwrap(), 50, 3, 2);
        let raw = Bytes::from(gs.encode_to_vec());
        let d = decode_v2(raw.clone()).unwrap();
        assert_eq!(d.view.port_states, gs.port_states);
        assert_eq!(d.view.subnet_states, gs.subnet_states);
        let listing: HashMap<String, HostResources> = d
            .view
            .host_resources
            .iter()
            .map(|e| {
                let e = HostResourcesEntry::decode(e.clone()).unwrap();
                (e.key, e.value.unwrap_or_default())
            })
            .collect();
        assert_eq!(listing, gs.host_resources);
        assert_eq!(d.view.security_group_states, gs.security_group_states);
        let mut got: Vec<_> = d.neighbors.iter().map(WireNeighbor::to_state).collect();
        assert!(d.neighbors.iter().all(|n| matches!(n, WireNeighbor::Checked(_))));
        let mut want: Vec<_> = gs.neighbor_states.values().cloned().collect();
        let id = |n: &NeighborState| n.configuration.as_ref().unwrap().id.clone();
        got.sort_by_key(id);
        want.sort_by_key(id);
        assert_eq!(got, want);
        // And back: the view re-encodes to a message the generated type decodes identically.
        let view = GoalStateV2View::decode(raw).unwrap();
        assert_eq!(GoalStateV2::decode(&view.encode_to_vec()[..]).unwrap(), gs);
    }

    #[test]
    fn an_entry_the_in_place_reader_leaves_is_decoded_by_prost_as_protobuf_merges_it() {
        use alcor_schema::NeighborConfiguration;
        // value { configuration { id: "x" } configuration { vpc_id: "v" } }: two configurations,
        // which protobuf merges into one.
        let part = |c: NeighborConfiguration| {
            let mut b = vec![0x12, c.encoded_len() as u8];
            b.extend(c.encode_to_vec());
            b
        };
        let mut state = part(NeighborConfiguration {
            id: "x".into(),
            ..Default::default()
        });
        state.extend(part(NeighborConfiguration {
            vpc_id: "v".into(),
            ..Default::default()
        }));
        let mut entry = vec![0x12, state.len() as u8];
        entry.extend(state);
        let mut msg = vec![0x3a, entry.len() as u8];
        msg.extend(entry);
        let d = decode_v2(Bytes::from(msg)).unwrap();
        match &d.neighbors[..] {
            [WireNeighbor::Decoded(s)] => {
                let c = s.configuration.as_ref().unwrap();
                assert_eq!((c.id.as_str(), c.vpc_id.as_str()), ("x", "v"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_host_resources_entry_fails_the_whole_message() {
        // Field 2, 3 bytes: an entry whose key (field 1, 1 byte) is not UTF-8.
        assert!(decode_v2(Bytes::from_static(&[0x12, 0x03, 0x0a, 0x01, 0xff])).is_err());
        // The same entry with a valid key decodes.
        assert!(decode_v2(Bytes::from_static(&[0x12, 0x03, 0x0a, 0x01, b'h'])).is_ok());
    }

    #[test]
    fn a_bad_neighbor_entry_fails_the_whole_message() {
        let mut bytes = GoalStateV2::default().encode_to_vec();
        // Field 7, 3 bytes: an entry whose value field claims 9 bytes.
        bytes.extend_from_slice(&[0x3a, 0x03, 0x12, 0x09, 0x00]);
        assert!(decode_v2(Bytes::from(bytes)).is_err());
    }
}
