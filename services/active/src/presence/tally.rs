//! The hub's school-wide counts, kept per pupil instead of counted again for every page.
//!
//! Counting every pupil is the costliest query of a page (12–15 ms at 10,000 pupils), and
//! every page waited for it. The tally holds each active pupil's state; a page reads the
//! states of only the pupils its events changed (the pupils named, and for an ended session
//! every pupil with a visit in it) in the page's own snapshot, and the counts move by the
//! difference.
//!
//! Why that is exact for every change with an event: a change and its presence event commit in
//! one transaction, so the snapshot of the page that reads the event holds the change, and a
//! later change of the same pupil comes with a later event that reads the pupil again. The
//! tally is therefore at least as new as every event it has been given.
//!
//! Changes without an event (a sick flag, a pupil added, deactivated or erased, an attendance
//! correction) reach it with the next recount of every pupil: one every [`RECOUNT_EVERY`]
//! while someone watches, and at once when the business date changes. While nobody watches
//! the hub reads no states (nobody needs the counts) and the first page watched again
//! recounts.

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
}

impl Tally {
    /// The counts of every state.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Whether the next page must read every pupil's state: the tally is not of `today`
    /// (or was left behind), or its last recount is [`RECOUNT_EVERY`] old.
    pub fn needs_recount(&self, today: NaiveDate, now: Instant) -> bool {
        self.date != Some(today) || self.recounted.is_none_or(|at| now - at >= RECOUNT_EVERY)
    }

    /// Replaces every state by `states`, of every active pupil on `date`.
    pub fn recount(&mut self, date: NaiveDate, states: Vec<(i64, PupilState)>, now: Instant) {
        self.counts = Counts::default();
        for (_, state) in &states {
            self.counts.add(*state, 1);
        }
        self.states = states.into_iter().collect();
        self.date = Some(date);
        self.recounted = Some(now);
    }

    /// Applies the states read for the pupils `asked` (plus any others `states` holds): an
    /// asked pupil without a state is no longer active and leaves the counts.
    pub fn update(&mut self, asked: &[i64], states: &[(i64, PupilState)]) {
        for &(id, state) in states {
            if let Some(old) = self.states.insert(id, state) {
                self.counts.add(old, -1);
            }
            self.counts.add(state, 1);
        }
        let found: HashSet<i64> = states.iter().map(|(id, _)| *id).collect();
        for id in asked.iter().filter(|id| !found.contains(id)) {
            if let Some(old) = self.states.remove(id) {
                self.counts.add(old, -1);
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
        let t = tally(&[(1, InRoom), (2, InRoom), (3, Sick), (4, Absent), (5, GoneHome), (6, InTransit)]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, absent: 1, gone_home: 1, sick: 1, total: 6 });
    }

    #[test]
    fn an_update_moves_a_pupil_between_states_and_adds_new_ones() {
        let mut t = tally(&[(1, Absent), (2, InRoom)]);
        t.update(&[1, 3], &[(1, InRoom), (3, InTransit)]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, total: 3, ..Counts::default() });
        t.update(&[2], &[(2, InRoom)]);
        assert_eq!(t.counts(), Counts { in_room: 2, in_transit: 1, total: 3, ..Counts::default() }, "unchanged");
    }

    #[test]
    fn an_asked_pupil_without_a_state_leaves_the_counts() {
        let mut t = tally(&[(1, InRoom), (2, Sick)]);
        t.update(&[1, 9], &[]);
        assert_eq!(t.counts(), Counts { sick: 1, total: 1, ..Counts::default() });
    }

    #[test]
    fn a_recount_is_needed_for_another_day_after_a_missed_page_and_every_interval() {
        let now = Instant::now();
        let mut t = Tally::default();
        assert!(t.needs_recount(day(), now), "never counted");
        t.recount(day(), vec![], now);
        assert!(!t.needs_recount(day(), now));
        assert!(t.needs_recount(day().succ_opt().expect("date"), now), "the date changed");
        assert!(!t.needs_recount(day(), now + RECOUNT_EVERY / 2));
        assert!(t.needs_recount(day(), now + RECOUNT_EVERY), "due");
        t.invalidate();
        assert!(t.needs_recount(day(), now), "a page was missed");
    }
}
