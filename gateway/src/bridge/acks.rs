//! PUBACKs in arrival order, per connection (MQTT 3.1.1 §4.6 \[MQTT-4.6.0-2\]).

use std::collections::VecDeque;

use rumqttc::{AsyncClient, Publish};
use tokio::sync::mpsc;

pub(super) enum AckMsg {
    /// A new connection: acks of older ones are void.
    Epoch(u64),
    /// A QoS ≥ 1 message arrived and must be acked in this order (only its packet id and
    /// QoS are kept, never its payload).
    Register { epoch: u64, seq: u64, publish: Box<Publish> },
    /// Its processing finished.
    Done { epoch: u64, seq: u64 },
}

/// What the acker needs to ack `publish`: its packet id and QoS, without the payload.
pub(super) fn ack_handle(publish: &Publish) -> Box<Publish> {
    let mut handle = Publish::new("", publish.qos, Vec::new());
    handle.pkid = publish.pkid;
    Box::new(handle)
}

/// The order in which PUBACKs may be sent: messages are acked in arrival order, each once its
/// processing is done, and only on the connection that delivered it (the broker redelivers
/// the unacked messages of an older connection itself).
#[derive(Debug, Default)]
struct AckQueue {
    epoch: u64,
    queue: VecDeque<(u64, Box<Publish>, bool)>,
}

impl AckQueue {
    /// A new connection: forget the old one's messages.
    fn new_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.queue.clear();
    }

    fn register(&mut self, epoch: u64, seq: u64, publish: Box<Publish>) {
        if epoch == self.epoch {
            self.queue.push_back((seq, publish, false));
        }
    }

    /// Marks `seq` done; returns the messages that may now be acked, in order.
    fn done(&mut self, epoch: u64, seq: u64) -> Vec<Publish> {
        if epoch != self.epoch {
            return Vec::new();
        }
        if let Some(entry) = self.queue.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.2 = true;
        }
        let mut ready = Vec::new();
        while self.queue.front().is_some_and(|(_, _, done)| *done) {
            if let Some((_, publish, _)) = self.queue.pop_front() {
                ready.push(*publish);
            }
        }
        ready
    }
}

/// Sends PUBACKs strictly in arrival order, only for the current connection.
pub(super) async fn acker(client: AsyncClient, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
    let mut acks = AckQueue::default();
    while let Some(msg) = rx.recv().await {
        let ready = match msg {
            AckMsg::Epoch(e) => {
                acks.new_epoch(e);
                continue;
            }
            AckMsg::Register { epoch, seq, publish } => {
                acks.register(epoch, seq, publish);
                continue;
            }
            AckMsg::Done { epoch, seq } => acks.done(epoch, seq),
        };
        for publish in ready {
            if let Err(e) = client.ack(&publish).await {
                tracing::warn!(error = %e, "MQTT ack could not be queued");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn publish(pkid: u16) -> Box<Publish> {
        let mut p = Publish::new("p/readers/r/scan", QoS::AtLeastOnce, vec![]);
        p.pkid = pkid;
        Box::new(p)
    }

    fn pkids(ready: Vec<Publish>) -> Vec<u16> {
        ready.into_iter().map(|p| p.pkid).collect()
    }

    #[test]
    fn acks_go_out_in_arrival_order_whatever_order_work_finishes() {
        let mut q = AckQueue::default();
        q.new_epoch(1);
        for seq in 1..=4 {
            q.register(1, seq, publish(seq as u16 + 10));
        }
        assert_eq!(pkids(q.done(1, 3)), Vec::<u16>::new(), "3 waits for 1 and 2");
        assert_eq!(pkids(q.done(1, 2)), Vec::<u16>::new());
        assert_eq!(pkids(q.done(1, 1)), [11, 12, 13]);
        assert_eq!(pkids(q.done(1, 4)), [14]);
        assert_eq!(pkids(q.done(1, 4)), Vec::<u16>::new(), "never twice");
    }

    #[test]
    fn acks_of_an_old_connection_are_dropped() {
        let mut q = AckQueue::default();
        q.new_epoch(1);
        q.register(1, 1, publish(1));
        q.register(1, 2, publish(2));
        q.new_epoch(2);
        assert_eq!(pkids(q.done(1, 1)), Vec::<u16>::new(), "the broker redelivers it on the new connection");
        q.register(1, 3, publish(3));
        q.register(2, 4, publish(1));
        assert_eq!(pkids(q.done(2, 4)), [1]);
    }

    #[test]
    fn acks_keep_only_the_packet_id_and_qos() {
        let mut p = Publish::new("p/readers/r/scan", QoS::AtLeastOnce, vec![7u8; 2 * 1024 * 1024]);
        p.pkid = 42;
        let handle = ack_handle(&p);
        assert_eq!((handle.pkid, handle.qos, handle.payload.len()), (42, QoS::AtLeastOnce, 0));
    }
}
