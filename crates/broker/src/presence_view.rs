//! The order of one presence channel's member events on this node.
//!
//! Every membership change carries the channel's presence sequence (see
//! [`crate::cluster::PresenceRoster`]). Two filters make what a socket sees consistent with the
//! roster it got:
//!
//! - Per socket (in `local_channels`): the sequence of the roster the socket received; member
//!   events at or below it are already reflected there and are not sent to it.
//! - Per channel (here): the last sequence delivered for each user. Member events published by
//!   different nodes can arrive out of order (node A's join commits sequence 5, node B's leave of
//!   the same user commits 6, but B publishes first); an event older than the last one delivered
//!   for its user would undo a newer state, so it is dropped for every socket.
//!
//! Together: a socket receives exactly the changes after its roster, each user's in order, so
//! its roster plus the events equals the cluster's membership once events quiesce.
//!
//! The view also remembers who the local sockets believe is present (members of rosters they
//! got, and the last event per user), which reconciliation after an outage compares with the
//! cluster's roster. Departed users are kept as tombstones (their last sequence) so a late,
//! older `member_added` cannot resurrect them; at most [`MAX_TOMBSTONES`] are kept, the oldest
//! dropped first (a late event older than that many later departures is not expected).

use std::collections::HashMap;

/// Departed users remembered per channel, to drop late events about them.
pub const MAX_TOMBSTONES: usize = 4096;

/// Per user: the last delivered sequence (0: known only from a roster) and whether present.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PresenceView {
    users: HashMap<String, (u64, bool)>,
    tombstones: usize,
}

impl PresenceView {
    /// A socket received `roster`: its members are believed present. Changes nothing known
    /// from events (their sequence stays, so no older event is let through or held back).
    pub fn learn_roster<'a>(&mut self, roster: impl IntoIterator<Item = &'a str>) {
        for id in roster {
            self.users.entry(id.to_owned()).or_insert((0, true));
        }
    }

    /// Whether the member event (`added` or removed) of `user_id` at `seq` is newer than the
    /// last one delivered for that user; if so, it is now the last.
    pub fn apply(&mut self, user_id: &str, seq: u64, added: bool) -> bool {
        let was_tombstone = match self.users.get_mut(user_id) {
            Some((last, _)) if *last >= seq => return false,
            Some(state) => {
                let was = !state.1;
                *state = (seq, added);
                was
            }
            None => {
                self.users.insert(user_id.to_owned(), (seq, added));
                false
            }
        };
        match (was_tombstone, added) {
            (true, true) => self.tombstones -= 1,
            (false, false) => self.tombstones += 1,
            _ => {}
        }
        if self.tombstones > MAX_TOMBSTONES {
            self.forget_oldest_tombstones();
        }
        true
    }

    /// Drop the older half of the tombstones.
    fn forget_oldest_tombstones(&mut self) {
        let mut seqs: Vec<u64> = self.users.values().filter(|(_, p)| !p).map(|(s, _)| *s).collect();
        let mid = seqs.len() / 2;
        let (_, cut, _) = seqs.select_nth_unstable(mid);
        let cut = *cut;
        self.users.retain(|_, (seq, present)| *present || *seq > cut);
        self.tombstones = self.users.values().filter(|(_, p)| !p).count();
    }

    /// Whether any socket on the channel has a roster or saw a member event.
    pub fn is_known(&self) -> bool {
        !self.users.is_empty()
    }

    /// Users some local socket may believe present.
    pub fn present(&self) -> impl Iterator<Item = &str> {
        self.users.iter().filter(|(_, (_, p))| *p).map(|(id, _)| id.as_str())
    }

    /// Whether `user_id` is believed present.
    #[cfg(test)]
    pub fn is_present(&self, user_id: &str) -> bool {
        self.users.get(user_id).is_some_and(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_one_user_apply_in_sequence_order_only() {
        let mut v = PresenceView::default();
        assert!(v.apply("u", 6, false), "the removal arrives first");
        assert!(!v.apply("u", 5, true), "the older join must not resurrect u");
        assert!(!v.apply("u", 6, false), "a duplicate is dropped");
        assert!(v.apply("u", 7, true));
        assert!(v.is_present("u"));
    }

    #[test]
    fn users_are_independent() {
        let mut v = PresenceView::default();
        assert!(v.apply("a", 9, true));
        assert!(v.apply("b", 3, true), "b's older sequence says nothing about a");
    }

    #[test]
    fn a_roster_never_holds_back_an_event() {
        // A socket with an older roster may still need x's member_added of sequence 4, even
        // though a newer socket's roster already lists x.
        let mut v = PresenceView::default();
        v.learn_roster(["x"]);
        assert!(v.is_present("x"));
        assert!(v.apply("x", 4, true));
        v.learn_roster(["y"]);
        assert!(v.apply("y", 1, false));
        assert!(!v.is_present("y"));
    }

    #[test]
    fn tombstones_are_bounded_and_the_oldest_go_first() {
        let mut v = PresenceView::default();
        for i in 0..=MAX_TOMBSTONES as u64 {
            assert!(v.apply(&format!("u{i}"), i + 1, false));
        }
        assert!(v.tombstones <= MAX_TOMBSTONES);
        assert!(
            !v.apply(&format!("u{MAX_TOMBSTONES}"), 1, true),
            "the newest tombstone is kept"
        );
        assert!(v.apply("u0", 1, true), "the oldest was forgotten");
    }
}
