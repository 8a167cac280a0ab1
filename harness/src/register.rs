//! Registers agents as nodes with an Alcor node manager (`POST /nodes/bulk`, protocol reference
//! §3.3), so that a real Alcor deployment pushes goal states to them.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use reqwest::Url;
use serde::Serialize;

/// Nodes per `POST /nodes/bulk` request: keeps bodies small for large fleets.
const BATCH: usize = 500;

/// A node as Alcor's node manager takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Node id (UUID-shaped, derived from the IP so that runs are repeatable).
    pub node_id: String,
    /// Node name: what ports name in `binding:host_id`.
    pub node_name: String,
    /// The agent's IP: where goal states are pushed.
    pub local_ip: String,
    /// Host MAC: becomes the neighbors' `host_mac_address`.
    pub mac_address: String,
    /// Host interface.
    pub veth: String,
    /// The agent's gRPC port.
    pub server_port: u16,
    /// DVR MAC of the host.
    pub host_dvr_mac: String,
    /// Tunnel IP: becomes the neighbors' `host_ip_address` (must be set, or Alcor drops
    /// neighbors).
    #[serde(rename = "data-path-ip")]
    pub data_path_ip: String,
}

impl NodeInfo {
    /// The node for an agent at `ip:port`, named `{prefix}{index}` with the index zero-padded.
    pub fn for_agent(prefix: &str, index: usize, ip: Ipv4Addr, port: u16) -> Self {
        Self::named(format!("{prefix}{index:05}"), ip, port)
    }

    /// The node for an agent at `ip:port`, named `name`.
    pub fn named(name: String, ip: Ipv4Addr, port: u16) -> Self {
        let [a, b, c, d] = ip.octets();
        Self {
            node_id: format!("00000000-0000-4000-8000-{:012x}", u32::from(ip)),
            node_name: name,
            local_ip: ip.to_string(),
            // Locally administered MACs that embed the IP, unique per agent.
            mac_address: format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
            veth: "eth0".into(),
            server_port: port,
            host_dvr_mac: format!("02:01:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
            data_path_ip: ip.to_string(),
        }
    }
}

/// Parses a control-plane URL: `http://` or `https://`, on any host the user names (the
/// defaults all stay on loopback).
pub fn target_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("`{raw}` is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("`{raw}`: only http:// and https:// URLs are supported");
    }
    if url.host().is_none() {
        bail!("`{raw}` has no host");
    }
    Ok(url)
}

/// Posts `nodes` to `{base}/nodes/bulk` in batches; returns how many were registered.
pub async fn register_nodes(base: &Url, nodes: &[NodeInfo]) -> anyhow::Result<usize> {
    let endpoint = base
        .join("nodes/bulk")
        .with_context(|| format!("joining nodes/bulk to {base}"))?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let mut done = 0;
    for batch in nodes.chunks(BATCH) {
        let body = serde_json::json!({ "host_infos": batch });
        let resp = client
            .post(endpoint.clone())
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {endpoint}"))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!(
                "POST {endpoint} answered {status} after {done} of {} nodes were registered: {}",
                nodes.len(),
                text.chars().take(500).collect::<String>()
            );
        }
        done += batch.len();
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_is_derived_from_the_ip() {
        let n = NodeInfo::for_agent("host-", 7, Ipv4Addr::new(127, 1, 0, 8), 50001);
        assert_eq!(n.node_name, "host-00007");
        assert_eq!(n.mac_address, "02:00:7f:01:00:08");
        assert_eq!(n.node_id, "00000000-0000-4000-8000-00007f010008");
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["data-path-ip"], "127.1.0.8");
        assert_eq!(json["local_ip"], "127.1.0.8");
        assert_eq!(json["server_port"], 50001);
    }

    #[test]
    fn target_urls_are_http_or_https_on_any_host() {
        for ok in [
            "http://127.0.0.1:9007",
            "http://localhost:9007/",
            "http://[::1]:9007",
            "https://alcor.example.com:8443/api",
            "http://198.18.0.10:9009",
        ] {
            assert!(target_url(ok).is_ok(), "{ok}");
        }
        for bad in ["ftp://127.0.0.1", "nonsense", "unix:/run/x.sock"] {
            assert!(target_url(bad).is_err(), "{bad}");
        }
    }
}
