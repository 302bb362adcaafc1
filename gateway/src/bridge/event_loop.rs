//! The MQTT event loop: it connects, subscribes and routes each message to its reader's
//! queue, never waiting on the database or gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use phoenix_common::server::ShutdownToken;
use phoenix_reader_protocol::{is_valid_device_id, topics};
use rumqttc::{AsyncClient, Event, Packet, QoS, SubscribeFilter};
use tokio::sync::mpsc;

use super::acks::{AckMsg, ack_handle, acker};
use super::queue::{Job, Readers};
use super::{BridgeConfig, BridgeStats, Context, MAX_INCOMING_PACKET};

/// The payload a job carries: a payload over the contract's 4 KiB is cut to 4 KiB + 1 byte
/// (still oversized for [`decode_scan`](phoenix_reader_protocol::decode_scan), so it is
/// answered `malformed`), so a queued job never holds more than that.
fn bounded_payload(ctx: &Context, device: &str, payload: &[u8]) -> Vec<u8> {
    let max = phoenix_reader_protocol::MAX_SCAN_BYTES;
    if payload.len() <= max {
        return payload.to_vec();
    }
    BridgeStats::bump(&ctx.stats.oversized);
    tracing::warn!(%device, bytes = payload.len(), "oversized message refused (contract: at most 4 KiB)");
    payload[..=max].to_vec()
}

pub(super) async fn run(
    config: BridgeConfig,
    ctx: Arc<Context>,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    shutdown: ShutdownToken,
) -> anyhow::Result<()> {
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<AckMsg>();
    let acker = tokio::spawn(acker(client.clone(), ack_rx));
    let mut readers = Readers::new(ctx.clone(), ack_tx.clone(), &config);
    let filters = vec![
        SubscribeFilter::new(topics::scan_filter(&config.prefix, config.shared_group.as_deref()), QoS::AtLeastOnce),
        SubscribeFilter::new(topics::status_filter(&config.prefix, config.shared_group.as_deref()), QoS::AtLeastOnce),
    ];

    let mut epoch = 0u64;
    let mut seq = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                epoch += 1;
                let _ = ack_tx.send(AckMsg::Epoch(epoch));
                backoff = Duration::from_millis(100);
                BridgeStats::bump(&ctx.stats.connections);
                phoenix_common::metrics::mqtt_connection(true, Some("connected"));
                tracing::info!(session_present = ack.session_present, client_id = %config.client_id, "MQTT connected");
                // Never await the client inside the loop that drains its requests.
                let (c, f) = (client.clone(), filters.clone());
                tokio::spawn(async move {
                    if let Err(e) = c.subscribe_many(f).await {
                        tracing::warn!(error = %e, "MQTT subscribe could not be queued");
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let received = Instant::now();
                BridgeStats::bump(&ctx.stats.received);
                let ack_seq = (publish.qos != QoS::AtMostOnce).then(|| {
                    seq += 1;
                    seq
                });
                if let Some(s) = ack_seq {
                    let _ = ack_tx.send(AckMsg::Register { epoch, seq: s, publish: ack_handle(&publish) });
                }
                let routed = topics::parse(&ctx.prefix, &publish.topic)
                    .filter(|(_, device)| is_valid_device_id(device))
                    .map(|(kind, device)| (kind, device.to_owned()));
                let queued = match routed {
                    Some((kind, device)) => {
                        let payload = bounded_payload(&ctx, &device, &publish.payload);
                        readers.dispatch(Job { epoch, seq: ack_seq, kind, device, payload, received })
                    }
                    None => {
                        // Not a reader topic, or an invalid device id: no one to answer.
                        BridgeStats::bump(&ctx.stats.dropped);
                        false
                    }
                };
                if !queued && let Some(s) = ack_seq {
                    let _ = ack_tx.send(AckMsg::Done { epoch, seq: s });
                }
            }
            Ok(_) => {}
            Err(e) => {
                BridgeStats::bump(&ctx.stats.connection_errors);
                phoenix_common::metrics::mqtt_connection(false, Some("error"));
                if matches!(
                    &e,
                    rumqttc::ConnectionError::MqttState(rumqttc::StateError::Deserialization(
                        rumqttc::mqttbytes::Error::PayloadSizeLimitExceeded(_)
                    ))
                ) {
                    tracing::error!(error = %e, max = MAX_INCOMING_PACKET, "MQTT packet over the bridge's limit: cap the broker's message size below it");
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }

    // Stop: finish the work in hand (its acks may no longer reach the broker: those
    // messages are redelivered to the next session and answered from their receipts;
    // retries stop at once and leave their scans for a re-send).
    readers.close().await;
    drop(ack_tx);
    let _ = acker.await;
    let _ = client.try_disconnect();
    // Drive the event loop briefly so the DISCONNECT is sent.
    let _ = tokio::time::timeout(Duration::from_millis(200), async { while eventloop.poll().await.is_ok() {} }).await;
    phoenix_common::metrics::mqtt_connection(false, None);
    tracing::info!("MQTT bridge stopped");
    Ok(())
}
