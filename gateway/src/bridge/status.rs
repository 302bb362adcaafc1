//! Status messages (`online` / `offline` / heartbeats): `last_seen` and the offline mark.

use phoenix_iot::presence;

use super::{BridgeStats, Context, lock};

/// `online` / `offline` / a JSON heartbeat (`{"status": "offline"}` counts as offline).
/// `None`: nothing to do (an empty payload clears a retained message).
fn parse_status(payload: &[u8]) -> Result<Option<bool>, ()> {
    if payload.len() > phoenix_reader_protocol::MAX_SCAN_BYTES {
        return Err(());
    }
    let text = std::str::from_utf8(payload).map_err(drop)?.trim();
    match text {
        "" => Ok(None),
        "online" => Ok(Some(true)),
        "offline" => Ok(Some(false)),
        json if json.starts_with('{') => {
            let value: serde_json::Value = serde_json::from_str(json).map_err(drop)?;
            Ok(Some(value.get("status").and_then(|s| s.as_str()) != Some("offline")))
        }
        _ => Err(()),
    }
}

/// Status messages are not signed (the contract has no signature for them; a Last Will is
/// fixed at connect time): they only move `last_seen` and the offline mark, and only for
/// known readers. Brokers should restrict the topic per device (ACLs).
pub(super) async fn handle_status(ctx: &Context, device: &str, payload: &[u8]) {
    BridgeStats::bump(&ctx.stats.status_messages);
    let online = match parse_status(payload) {
        Ok(Some(online)) => online,
        Ok(None) => return,
        Err(()) => {
            BridgeStats::bump(&ctx.stats.dropped);
            return;
        }
    };
    let Ok(Some(credentials)) = ctx.credentials(device, false).await else {
        BridgeStats::bump(&ctx.stats.dropped);
        return;
    };
    if online {
        ctx.seen(device, credentials.id).await;
    } else {
        // The next message must stamp `last_seen` again at once.
        lock(&ctx.seen).remove(&credentials.id);
        if let Err(e) = presence::record_offline(&ctx.deps.pool, credentials.id).await {
            tracing::warn!(%device, error = %e, "could not record offline");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_payloads() {
        assert_eq!(parse_status(b"online"), Ok(Some(true)));
        assert_eq!(parse_status(b" offline\n"), Ok(Some(false)));
        assert_eq!(parse_status(b""), Ok(None));
        assert_eq!(parse_status(br#"{"uptime": 12}"#), Ok(Some(true)));
        assert_eq!(parse_status(br#"{"status": "offline"}"#), Ok(Some(false)));
        assert_eq!(parse_status(b"maybe"), Err(()));
        assert_eq!(parse_status(b"{nope"), Err(()));
        assert_eq!(parse_status(&[0xff, 0xfe]), Err(()));
    }
}
