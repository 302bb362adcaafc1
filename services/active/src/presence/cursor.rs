//! Stream positions and the opaque cursors clients hold.
//!
//! The event log is ordered by `(tx_id, id)` and read only below the horizon
//! `pg_snapshot_xmin(pg_current_snapshot())`: every transaction below it has ended, so no
//! event can appear there any more and a position never skips a late commit.
//!
//! A [`Cursor`] says which events a client already has: every event up to a [`Position`]
//! (events carry their own position; heartbeats `(horizon, 0)` once everything below the
//! horizon was delivered), plus, for the board's cursor, every event of a transaction the
//! board's REPEATABLE READ [`Snapshot`] saw. A position alone cannot express a snapshot:
//! a transaction still running when the board was read can have a lower `tx_id` than one
//! the board contains. With the snapshot, watching from the board's cursor yields exactly
//! the changes the board does not show: transactions in its `xip` list and at/after `xmax`.
//!
//! Encoding: base64url (no padding) of a kind byte and big-endian integers; opaque to
//! clients and never trusted beyond its shape.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in stream order. `id = 0` stands just before every event of transaction `tx`
/// (event ids start at 1), so `(h, 0)` is "everything below horizon `h`".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub tx: i64,
    pub id: i64,
}

impl Position {
    /// A position of event `id` written by transaction `tx`.
    pub const fn new(tx: i64, id: i64) -> Self {
        Self { tx, id }
    }

    /// Just below every event of transaction `horizon` and later ones.
    pub const fn horizon(horizon: i64) -> Self {
        Self { tx: horizon, id: 0 }
    }
}

/// A database snapshot as `pg_current_snapshot()` describes it (64-bit transaction ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub xmin: i64,
    pub xmax: i64,
    /// Transactions in `[xmin, xmax)` still running at the snapshot, ascending.
    pub xip: Vec<i64>,
}

/// At most this many running transactions in an encoded snapshot (bounded in practice by
/// `max_connections`); anything longer is not a cursor of ours.
const MAX_XIP: usize = 10_000;

impl Snapshot {
    /// Parses `pg_snapshot` text, `xmin:xmax:xip1,xip2,…`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let list = parts.next()?;
        let mut xip: Vec<i64> = if list.is_empty() {
            Vec::new()
        } else {
            list.split(',').map(|x| x.parse().ok()).collect::<Option<_>>()?
        };
        xip.sort_unstable();
        xip.dedup();
        Self::checked(xmin, xmax, xip)
    }

    fn checked(xmin: i64, xmax: i64, xip: Vec<i64>) -> Option<Self> {
        let ordered = xip.windows(2).all(|w| w[0] < w[1]);
        let inside = xip.iter().all(|x| (xmin..xmax).contains(x));
        (xmin > 0 && xmin <= xmax && xip.len() <= MAX_XIP && ordered && inside).then_some(Self { xmin, xmax, xip })
    }

    /// Whether the snapshot saw transaction `tx` as ended (so contains its events if it
    /// committed).
    pub fn saw(&self, tx: i64) -> bool {
        tx < self.xmin || (tx < self.xmax && self.xip.binary_search(&tx).is_err())
    }
}

/// What a client has already received (see the module docs): every event up to `after`,
/// plus, while `snapshot` is set, every event of a transaction that snapshot saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub after: Position,
    pub snapshot: Option<Snapshot>,
}

const AFTER: u8 = 1;
const SNAPSHOT: u8 = 2;

impl Cursor {
    /// Every event up to and including `p`.
    pub fn after(p: Position) -> Self {
        Self { after: p, snapshot: None }
    }

    /// Exactly the events `snapshot` contains. Without running transactions that is simply
    /// everything below `xmax`.
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        if snapshot.xip.is_empty() {
            return Self::after(Position::horizon(snapshot.xmax));
        }
        Self { after: Position::horizon(snapshot.xmin), snapshot: Some(snapshot) }
    }

    /// Whether the event at `p` is already covered (delivered or in the snapshot).
    pub fn covers(&self, p: Position) -> bool {
        p <= self.after || self.snapshot.as_ref().is_some_and(|s| s.saw(p.tx))
    }

    /// The events after [`Cursor::after`] that are covered anyway: `Some((xmax, xip))` while
    /// a snapshot is attached (then only transactions in `xip` or at/after `xmax` are missing).
    pub fn pending(&self) -> Option<(i64, &[i64])> {
        self.snapshot.as_ref().map(|s| (s.xmax, s.xip.as_slice()))
    }

    /// The highest transaction id this cursor refers to (a cursor beyond the database's
    /// next transaction id is not one of its positions).
    pub fn highest_tx(&self) -> i64 {
        self.snapshot.as_ref().map_or(self.after.tx, |s| s.xmax.max(self.after.tx))
    }

    /// Every event up to `p` has now been delivered (in order): the cursor moves forward,
    /// never back, and drops its snapshot once past everything the snapshot could cover.
    pub fn advance_to(&mut self, p: Position) {
        self.after = self.after.max(p);
        if self.snapshot.as_ref().is_some_and(|s| self.after >= Position::horizon(s.xmax)) {
            self.snapshot = None;
        }
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(17);
        let mut put = |x: i64| bytes.extend_from_slice(&x.to_be_bytes());
        put(self.after.tx);
        put(self.after.id);
        if let Some(s) = &self.snapshot {
            put(s.xmin);
            put(s.xmax);
            for x in &s.xip {
                put(*x);
            }
        }
        let kind = if self.snapshot.is_some() { SNAPSHOT } else { AFTER };
        bytes.insert(0, kind);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Parses [`Cursor::encode`]'s output; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        if text.len() > 4 * (MAX_XIP + 8) * 8 / 3 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let (&kind, rest) = bytes.split_first()?;
        if rest.len() % 8 != 0 {
            return None;
        }
        let ints: Vec<i64> =
            rest.chunks_exact(8).map(|c| i64::from_be_bytes(c.try_into().unwrap_or_default())).collect();
        let (after, snapshot) = match (kind, ints.as_slice()) {
            (AFTER, &[tx, id]) => (Position::new(tx, id), None),
            (SNAPSHOT, &[tx, id, xmin, xmax, ref xip @ ..]) => {
                (Position::new(tx, id), Some(Snapshot::checked(xmin, xmax, xip.to_vec())?))
            }
            _ => return None,
        };
        let valid = after.tx > 0
            && after.id >= 0
            && snapshot
                .as_ref()
                .is_none_or(|s| after >= Position::horizon(s.xmin) && after < Position::horizon(s.xmax));
        valid.then_some(Self { after, snapshot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(xmin: i64, xmax: i64, xip: &[i64]) -> Cursor {
        Cursor::from_snapshot(Snapshot { xmin, xmax, xip: xip.to_vec() })
    }

    fn raw(kind: u8, ints: &[i64]) -> String {
        let mut b = vec![kind];
        for x in ints {
            b.extend_from_slice(&x.to_be_bytes());
        }
        URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut advanced = snap(5, 9, &[5, 7]);
        advanced.advance_to(Position::new(5, 3));
        for c in
            [Cursor::after(Position::new(7, 3)), Cursor::after(Position::horizon(9)), snap(5, 9, &[5, 7]), advanced]
        {
            assert_eq!(Cursor::decode(&c.encode()), Some(c.clone()), "{c:?}");
            assert!(c.encode().chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
        }
        for bad in ["", "!!!", "AQ", "not a cursor", " AQAAAAAAAAAHAAAAAAAAAAM", &URL_SAFE_NO_PAD.encode([1u8; 5])] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
        assert_eq!(Cursor::decode(&raw(AFTER, &[7, 3])), Some(Cursor::after(Position::new(7, 3))));
        assert_eq!(Cursor::decode(&raw(AFTER, &[0, 1])), None, "transaction ids start at 1");
        assert_eq!(Cursor::decode(&raw(AFTER, &[3, -1])), None);
        assert_eq!(Cursor::decode(&raw(3, &[3, 1])), None, "unknown kind");
        // xip outside [xmin, xmax), unordered, xmin > xmax, or a position outside the
        // snapshot's range are not cursors of ours.
        for ints in [
            [5, 0, 5, 9, 9].as_slice(),
            &[5, 0, 5, 9, 7, 6],
            &[9, 0, 9, 5],
            &[1, 0, 0, 3],
            &[4, 0, 5, 9],
            &[9, 0, 5, 9],
        ] {
            assert_eq!(Cursor::decode(&raw(SNAPSHOT, ints)), None, "{ints:?}");
        }
    }

    #[test]
    fn parses_pg_snapshot_text() {
        assert_eq!(Snapshot::parse("748:748:"), Some(Snapshot { xmin: 748, xmax: 748, xip: vec![] }));
        assert_eq!(Snapshot::parse("10:20:12,15"), Some(Snapshot { xmin: 10, xmax: 20, xip: vec![12, 15] }));
        assert_eq!(Snapshot::parse("10:20:25"), None);
        assert_eq!(Snapshot::parse("10:20"), None);
        // Nothing running: the snapshot is a plain position.
        assert_eq!(snap(4, 9, &[]), Cursor::after(Position::horizon(9)));
    }

    #[test]
    fn a_snapshot_covers_exactly_what_it_saw_committed() {
        let c = snap(10, 20, &[12, 15]);
        for tx in [1, 9, 10, 11, 13, 14, 16, 19] {
            assert!(c.covers(Position::new(tx, 1)), "{tx} ended before the snapshot");
        }
        for tx in [12, 15, 20, 21] {
            assert!(!c.covers(Position::new(tx, 1)), "{tx} was running or later");
        }
        assert_eq!(c.after, Position::horizon(10));
        assert_eq!(c.pending(), Some((20, [12, 15].as_slice())));
    }

    #[test]
    fn advancing_never_moves_back_and_keeps_the_snapshot_until_past_it() {
        let mut c = Cursor::after(Position::new(5, 9));
        c.advance_to(Position::new(5, 2));
        assert_eq!(c, Cursor::after(Position::new(5, 9)));
        c.advance_to(Position::horizon(8));
        assert_eq!(c, Cursor::after(Position::horizon(8)));

        // Delivering a late transaction's event (12) must not forget that the snapshot
        // already holds 16, which has a higher id.
        let mut s = snap(10, 20, &[12, 15]);
        s.advance_to(Position::new(12, 4));
        assert!(s.covers(Position::new(16, 1)), "tx 16 is in the snapshot");
        assert!(s.covers(Position::new(12, 4)) && !s.covers(Position::new(12, 5)));
        assert!(!s.covers(Position::new(15, 1)));
        // Past xmax the snapshot is no longer needed.
        s.advance_to(Position::horizon(21));
        assert_eq!(s, Cursor::after(Position::horizon(21)));
    }
}
