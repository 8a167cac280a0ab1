//! Alcor's `alcor.schema` protobuf package: goal states (V1 and V2), every resource state and
//! configuration, the operation reply, and the `GoalStateProvisioner` gRPC service, generated
//! with prost and tonic from `.proto` files written against the protocol reference.
//!
//! Wire compatibility is what matters here: package name, message numbers and field numbers equal
//! Alcor's (including the post-August-2022 neighbor numbering and the `uint64` subnet
//! `tunnel_id`). This crate holds the generated code, a few constants about the wire, and
//! [`codec`]s for messages encoded elsewhere; nothing else.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

/// Generated types of the `alcor.schema` package.
#[allow(missing_docs)]
pub mod alcor {
    /// The `alcor.schema` protobuf package.
    pub mod schema {
        tonic::include_proto!("alcor.schema");
    }
}

pub use alcor::schema::*;

pub mod codec;

/// Port on which Alcor's controllers dial every agent (hard-coded in NCM and DPM).
pub const AGENT_GRPC_PORT: u16 = 50001;

/// The gRPC service name that agents serve.
pub const GOAL_STATE_PROVISIONER: &str = "alcor.schema.GoalStateProvisioner";

/// Map key under which Alcor's DPM places an L2 or L3 neighbor in `GoalStateV2.neighbor_states`.
pub fn neighbor_key(kind: NeighborType, port_id: &str) -> String {
    match kind {
        NeighborType::L2 => format!("L2/{port_id}"),
        NeighborType::L3 => format!("L3/{port_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Field numbers are the contract: encode a value into one field and check the tag byte
    /// on the wire equals (field_number << 3 | wire_type).
    fn first_tag(bytes: &[u8]) -> u8 {
        bytes[0]
    }

    #[test]
    fn neighbor_fields_use_post_2022_numbers() {
        let mac = NeighborConfiguration {
            mac_address: "aa".into(),
            ..Default::default()
        };
        assert_eq!(first_tag(&mac.encode_to_vec()), 7 << 3 | 2);
        let host_mac = NeighborConfiguration {
            host_mac_address: "aa".into(),
            ..Default::default()
        };
        assert_eq!(first_tag(&host_mac.encode_to_vec()), 8 << 3 | 2);
        let host_ip = NeighborConfiguration {
            host_ip_address: "1.2.3.4".into(),
            ..Default::default()
        };
        assert_eq!(first_tag(&host_ip.encode_to_vec()), 9 << 3 | 2);
        let fixed = NeighborConfiguration {
            fixed_ips: vec![Default::default()],
            ..Default::default()
        };
        assert_eq!(first_tag(&fixed.encode_to_vec()), 10 << 3 | 2);
        let pairs = NeighborConfiguration {
            allow_address_pairs: vec![Default::default()],
            ..Default::default()
        };
        assert_eq!(first_tag(&pairs.encode_to_vec()), 11 << 3 | 2);
    }

    #[test]
    fn subnet_tunnel_id_is_uint64() {
        let s = SubnetConfiguration {
            tunnel_id: 1 << 40,
            ..Default::default()
        };
        let bytes = s.encode_to_vec();
        assert_eq!(first_tag(&bytes), 9 << 3);
        assert_eq!(SubnetConfiguration::decode(&bytes[..]).unwrap().tunnel_id, 1 << 40);
    }

    #[test]
    fn goal_state_v2_maps_use_their_numbers() {
        let mut gs = GoalStateV2::default();
        gs.neighbor_states.insert("L2/p".into(), NeighborState::default());
        assert_eq!(first_tag(&gs.encode_to_vec()), 7 << 3 | 2);
        let mut gs = GoalStateV2::default();
        gs.port_states.insert("p".into(), PortState::default());
        assert_eq!(first_tag(&gs.encode_to_vec()), 5 << 3 | 2);
        let mut gs = GoalStateV2::default();
        gs.dhcp_states.insert("d".into(), DhcpState::default());
        assert_eq!(first_tag(&gs.encode_to_vec()), 6 << 3 | 2);
    }

    #[test]
    fn reply_status_fields() {
        let st = goal_state_operation_reply::GoalStateOperationStatus {
            state_elapse_time: 5,
            ..Default::default()
        };
        assert_eq!(first_tag(&st.encode_to_vec()), 7 << 3);
        let r = GoalStateOperationReply {
            message_total_operation_time: 1,
            ..Default::default()
        };
        assert_eq!(first_tag(&r.encode_to_vec()), 3 << 3);
    }

    #[test]
    fn enum_values_match_alcor() {
        assert_eq!(ResourceType::Gateway as i32, 7);
        assert_eq!(OperationType::Delete as i32, 4);
        assert_eq!(OperationStatus::OutOfOrder as i32, 4);
        assert_eq!(NetworkType::VxlanGpe as i32, 4);
        assert_eq!(GatewayType::Arion as i32, 5);
        assert_eq!(neighbor_key(NeighborType::L3, "x"), "L3/x");
    }

    #[test]
    fn service_path() {
        // The path a real controller dials.
        assert_eq!(goal_state_provisioner_server::SERVICE_NAME, GOAL_STATE_PROVISIONER);
    }
}
