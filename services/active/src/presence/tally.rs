//! The hub's school-wide counts, kept per pupil instead of counted again for every page.
//!
//! Counting every pupil is the costliest query of a page (12–15 ms at 10,000 pupils), and
//! every page waited for it. The tally holds each active pupil's state; a page reads the
//! states of only the pupils its events changed (the pupils named, and for an ended session
//! every pupil with a visit in it) in the page's own snapshot, and the counts move by the
//! difference. A pupil in a room is held with the room, so the pupils of each room (the
//! events' room counts) come from the tally too, not from a count per page.
//!
//! Why that is exact for every change with an event: a change and its presence event commit in
//! one transaction, so the snapshot of the page that reads the event holds the change, and a
//! later change of the same pupil comes with a later event that reads the pupil again. The
//! tally is therefore at least as new as every event it has been given. A page's snapshot
//! may also hold commits whose events it does not read yet (above its horizon, behind an older
//! running transaction, or past its limit); the pupils of those events are read in the same
//! snapshot too, so the counts are always those of one snapshot, never some pupils after a
//! change and the rest of the same change before it.
//!
//! Changes without an event (a sick flag, a pupil added, deactivated or erased, an attendance
//! correction) reach it with the next recount of every pupil: one every [`RECOUNT_EVERY`]
//! while someone watches, read on a pool connection while the hub goes on with its pages (a
//! recount takes 15–40 ms at 10,000 pupils; every event behind it would wait). Its snapshot
//! is newer than every page read before it began, and the pupils pages read while it was in
//! flight are read once more after it, so it never takes a pupil back to an older state.
//! When the business date changes, and when the hub read pages while nobody watched (it reads
//! no states then: nobody needs the counts), the next page recounts itself, in its own
//! snapshot.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::NaiveDate;
use tokio::time::Instant;

use super::repo::{Counts, PupilState};

/// How often the hub counts every pupil again while someone watches.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(5);

/// Each active pupil's state on one business date, and the counts of those states.
#[derive(Debug, Default)]
pub struct Tally {
    /// `None` until the first recount, and after a page whose states were not read.
    date: Option<NaiveDate>,
    recounted: Option<Instant>,
    states: HashMap<i64, PupilState>,
    counts: Counts,
    /// Pupils in each room's running session (rooms with none are absent).
    rooms: HashMap<i64, i64>,
    /// The recount in flight: its number and the pupils updated since it began.
    flight: Option<(u64, HashSet<i64>)>,
    flights: u64,
}

impl Tally {
    /// The counts of every state.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The pupils in `room`'s running session (0 without one).
    pub fn in_room(&self, room: i64) -> i64 {
        self.rooms.get(&room).copied().unwrap_or(0)
    }

    /// Counts one more (`by` = 1) or one fewer (`by` = -1) pupil in `state`.
    fn count(&mut self, state: PupilState, by: i64) {
        self.counts.add(state, by);
        if let PupilState::InRoom(room) = state {
            let n = self.rooms.entry(room).or_default();
            *n += by;
            if *n == 0 {
                self.rooms.remove(&room);
            }
        }
    }

    /// Whether the tally holds `today`'s states (not when the date changed or a page was
    /// missed): otherwise the next page reads every pupil's.
    pub fn is_of(&self, today: NaiveDate) -> bool {
        self.date == Some(today)
    }

    /// Whether a recount on the side is due: none in flight, the last [`RECOUNT_EVERY`] old.
    pub fn recount_due(&self, now: Instant) -> bool {
        self.flight.is_none() && self.recounted.is_none_or(|at| now - at >= RECOUNT_EVERY)
    }

    /// A recount on the side begins (its snapshot must be taken after this call); returns
    /// its number for [`Tally::finish_recount`].
    pub fn begin_recount(&mut self) -> u64 {
        self.flights += 1;
        self.flight = Some((self.flights, HashSet::new()));
        self.flights
    }

    /// Recount `flight`, begun at `began`, read `states` on `date`: they replace every state,
    /// and the pupils updated meanwhile are returned, for the caller to read once more and
    /// [`Tally::update`] (a page may have read them in a newer snapshot than the recount's).
    /// Nothing changes when that recount was overtaken (another recount, another date, a page
    /// missed).
    pub fn finish_recount(
        &mut self,
        flight: u64,
        date: NaiveDate,
        states: Vec<(i64, PupilState)>,
        began: Instant,
    ) -> Vec<i64> {
        match self.flight.take() {
            Some((n, updated)) if n == flight && self.date == Some(date) => {
                self.recount(date, states, began);
                updated.into_iter().collect()
            }
            other => {
                self.flight = other.filter(|(n, _)| *n != flight);
                Vec::new()
            }
        }
    }

    /// The recount in flight failed or was dropped.
    pub fn abandon_recount(&mut self) {
        self.flight = None;
    }

    /// Replaces every state by `states`, of every active pupil on `date`, read in a snapshot
    /// taken at `now` or later (a recount in flight is overtaken).
    pub fn recount(&mut self, date: NaiveDate, states: Vec<(i64, PupilState)>, now: Instant) {
        self.flight = None;
        self.counts = Counts::default();
        self.rooms.clear();
        for (_, state) in &states {
            self.count(*state, 1);
        }
        self.states = states.into_iter().collect();
        self.date = Some(date);
        self.recounted = Some(now);
    }

    /// Applies the states read for the pupils `asked` (plus any others `states` holds): an
    /// asked pupil without a state is no longer active and leaves the counts.
    pub fn update(&mut self, asked: &[i64], states: &[(i64, PupilState)]) {
        if let Some((_, updated)) = &mut self.flight {
            updated.extend(asked.iter().copied().chain(states.iter().map(|(id, _)| *id)));
        }
        for &(id, state) in states {
            if let Some(old) = self.states.insert(id, state) {
                self.count(old, -1);
            }
            self.count(state, 1);
        }
        let found: HashSet<i64> = states.iter().map(|(id, _)| *id).collect();
        for id in asked.iter().filter(|id| !found.contains(id)) {
            if let Some(old) = self.states.remove(id) {
                self.count(old, -1);
            }
        }
    }

    /// A page's changes were not applied (nobody watched): the next page recounts.
    pub fn invalidate(&mut self) {
        self.date = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PupilState::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).expect("date")
    }

    fn tally(states: &[(i64, PupilState)]) -> Tally {
        let mut t = Tally::default();
        t.recount(day(), states.to_vec(), Instant::now());
        t
    }

    #[test]
    fn a_recount_counts_each_state() {
        let t = tally(&[(1, InRoom(7)), (2, InRoom(7)), (3, Sick), (4, Absent), (5, GoneHome), (6, InTransit)]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, absent: 1, gone_home: 1, sick: 1, total: 6 });
    }

    #[test]
    fn an_update_moves_a_pupil_between_states_and_adds_new_ones() {
        let mut t = tally(&[(1, Absent), (2, InRoom(7))]);
        t.update(&[1, 3], &[(1, InRoom(7)), (3, InTransit)]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, total: 3, ..Counts::default() });
        t.update(&[2], &[(2, InRoom(7))]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, total: 3, ..Counts::default() }, "unchanged");
        assert_eq!(t.in_room(7), 2);
    }

    #[test]
    fn the_rooms_count_their_pupils_as_they_move() {
        let mut t = tally(&[(1, InRoom(7)), (2, InRoom(7)), (3, Absent)]);
        t.update(&[1, 3], &[(1, InRoom(8)), (3, InRoom(8))]);
        assert_eq!((t.in_room(7), t.in_room(8)), (1, 2), "a transfer moves one pupil, a check-in adds one");
        t.update(&[2], &[(2, InTransit)]);
        assert_eq!((t.in_room(7), t.in_room(9)), (0, 0), "an empty room and a room never seen count 0");
        assert_eq!(t.counts().in_room, 2);
    }

    #[test]
    fn an_asked_pupil_without_a_state_leaves_the_counts() {
        let mut t = tally(&[(1, InRoom(7)), (2, Sick)]);
        t.update(&[1, 9], &[]);
        assert_eq!(t.counts(), Counts { sick: 1, total: 1, ..Counts::default() });
    }

    #[test]
    fn a_page_recounts_on_another_day_and_after_a_missed_page() {
        let mut t = tally(&[]);
        assert!(t.is_of(day()));
        assert!(!t.is_of(day().succ_opt().expect("date")), "the date changed");
        t.invalidate();
        assert!(!t.is_of(day()), "a page was missed");
    }

    #[test]
    fn a_recount_on_the_side_is_due_every_interval_one_at_a_time() {
        let now = Instant::now();
        let mut t = Tally::default();
        t.recount(day(), vec![], now);
        assert!(!t.recount_due(now + RECOUNT_EVERY / 2));
        assert!(t.recount_due(now + RECOUNT_EVERY));
        t.begin_recount();
        assert!(!t.recount_due(now + RECOUNT_EVERY * 2), "one in flight");
        t.abandon_recount();
        assert!(t.recount_due(now + RECOUNT_EVERY * 2));
    }

    #[test]
    fn a_recount_on_the_side_replaces_every_state_and_returns_the_pupils_updated_meanwhile() {
        let now = Instant::now();
        let mut t = tally(&[(1, Absent), (2, Absent), (3, Absent)]);
        let flight = t.begin_recount();
        t.update(&[1], &[(1, InRoom(7))]); // a page during the flight, maybe newer than the recount
        // The recount's snapshot: 1 not yet in the room, 3 marked sick (no event).
        let again = t.finish_recount(flight, day(), vec![(1, Absent), (2, Absent), (3, Sick)], now);
        assert_eq!(again, [1], "read once more");
        assert_eq!(t.counts(), Counts { absent: 2, sick: 1, total: 3, ..Counts::default() });
        t.update(&again, &[(1, InRoom(7))]);
        assert_eq!(t.counts(), Counts { in_room: 1, absent: 1, sick: 1, total: 3, ..Counts::default() });
        assert!(!t.recount_due(now + RECOUNT_EVERY / 2), "the interval starts when the recount began");
    }

    #[test]
    fn an_overtaken_recount_changes_nothing() {
        let now = Instant::now();
        let mut t = tally(&[(1, InRoom(7))]);
        let old = t.begin_recount();
        t.recount(day(), vec![(1, GoneHome)], now); // a page recounted itself meanwhile
        assert!(t.finish_recount(old, day(), vec![(1, InRoom(7))], now).is_empty());
        assert_eq!(t.counts(), Counts { gone_home: 1, total: 1, ..Counts::default() });
        let flight = t.begin_recount();
        t.invalidate(); // a page missed
        assert!(t.finish_recount(flight, day(), vec![(1, InRoom(7))], now).is_empty());
        assert!(!t.is_of(day()), "still left behind: the next page recounts");
    }
}
