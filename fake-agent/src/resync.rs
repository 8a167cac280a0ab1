//! What an agent back from a crash asks of its control plane: `RequestGoalStates` with one
//! request of type `AGENT_RESTARTED` (the enum value Alcor's schema has for it), the host's IP
//! in `source_ip`, so that the control plane sends the host everything it should hold.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use alcor_schema::goal_state_provisioner_client::GoalStateProvisionerClient;
use alcor_schema::host_request::ResourceStateRequest;
use alcor_schema::{HostRequest, RequestType};

/// Tries before giving up: the control plane may itself be restarting.
const TRIES: u32 = 5;
/// Each try's limit.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// The request an agent at `host` sends after a restart.
pub fn restarted(host: Ipv4Addr) -> HostRequest {
    HostRequest {
        format_version: 1,
        state_requests: vec![ResourceStateRequest {
            request_type: RequestType::AgentRestarted as i32,
            request_id: format!("restart-{host}"),
            source_ip: host.to_string(),
            ..Default::default()
        }],
    }
}

/// Asks the control plane at `cp` to resync `host`, a bounded number of times.
pub async fn request(cp: SocketAddr, host: Ipv4Addr) {
    let mut wait = Duration::from_millis(200);
    for attempt in 1..=TRIES {
        let call = async {
            let mut client = GoalStateProvisionerClient::connect(format!("http://{cp}")).await?;
            client.request_goal_states(restarted(host)).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout(TRY_TIMEOUT, call).await {
            Ok(Ok(())) => {
                tracing::debug!(%host, %cp, "asked for a resync");
                return;
            }
            Ok(Err(e)) => tracing::debug!(%host, %cp, attempt, error = %e, "resync request failed"),
            Err(_) => tracing::debug!(%host, %cp, attempt, "resync request timed out"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    tracing::warn!(%host, %cp, "the control plane did not take the resync request; the host stays empty until it is sent its state");
}
