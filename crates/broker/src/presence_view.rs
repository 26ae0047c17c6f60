//! What this node's sockets on a presence channel have been told about its members.
//!
//! Each socket learns a roster when it subscribes and then every member event delivered to
//! the channel. Keeping a roster per socket would cost memory per socket, so the node keeps two
//! sets that need no ordering between subscribes: `everyone`, the members every roster-holding
//! socket knows (the intersection), and `someone`, the members at least one knows (the union).
//!
//! - A `member_added` for someone in `everyone` tells nobody anything and is dropped; otherwise
//!   it is delivered. A `member_removed` for someone not in `someone` is dropped likewise.
//!   When in doubt the event is delivered: a redundant `member_removed` is ignored by
//!   pusher-js, a redundant `member_added` is merely repeated, but a missed one would leave a
//!   roster wrong.
//! - After an outage, reconciliation compares both sets with the cluster's roster: members in
//!   `someone` but gone from the cluster are removed, members of the cluster not in `everyone`
//!   are added.

use std::collections::HashSet;

/// The presence knowledge of one channel's local sockets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PresenceView {
    /// `None` until a socket received a roster: nothing is filtered before that.
    everyone: Option<HashSet<String>>,
    someone: HashSet<String>,
}

impl PresenceView {
    /// A socket received `roster` with its `subscription_succeeded`.
    pub fn learn_roster<'a>(&mut self, roster: impl IntoIterator<Item = &'a str>) {
        let roster: HashSet<String> = roster.into_iter().map(str::to_owned).collect();
        self.someone.extend(roster.iter().cloned());
        self.everyone = Some(match self.everyone.take() {
            None => roster,
            Some(all) => all.intersection(&roster).cloned().collect(),
        });
    }

    /// Whether a member event must be delivered; if so, every socket now knows it.
    pub fn apply(&mut self, user_id: &str, added: bool) -> bool {
        let Some(everyone) = self.everyone.as_mut() else {
            return true;
        };
        if added {
            if everyone.contains(user_id) {
                return false;
            }
            everyone.insert(user_id.to_owned());
            self.someone.insert(user_id.to_owned());
        } else {
            if !self.someone.remove(user_id) {
                return false;
            }
            everyone.remove(user_id);
        }
        true
    }

    /// Whether any socket has a roster yet.
    pub fn is_known(&self) -> bool {
        self.everyone.is_some()
    }

    /// Members some socket may still believe in that are not in `members`.
    pub fn stale<'a>(&'a self, members: &'a HashSet<&str>) -> impl Iterator<Item = &'a String> {
        self.someone.iter().filter(move |id| !members.contains(id.as_str()))
    }

    /// Members of `members` that some socket may not know about.
    pub fn missing<'a>(&'a self, members: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let everyone = self.everyone.as_ref();
        members
            .into_iter()
            .filter(|id| !everyone.is_some_and(|all| all.contains(*id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_filtered_before_a_roster() {
        let mut v = PresenceView::default();
        assert!(v.apply("u", true));
        assert!(v.apply("u", false));
        assert!(!v.is_known());
    }

    #[test]
    fn duplicates_are_dropped_once_every_socket_knows() {
        let mut v = PresenceView::default();
        v.learn_roster(["a", "b"]);
        assert!(!v.apply("a", true), "everyone knows a");
        assert!(v.apply("c", true));
        assert!(!v.apply("c", true));
        assert!(v.apply("b", false));
        assert!(!v.apply("b", false), "nobody knows b any more");
    }

    #[test]
    fn rosters_taken_at_different_times_never_hide_an_event() {
        // Socket 1 subscribed before x joined; socket 2 after. x's member_added, still in
        // flight, must reach socket 1 whatever order the rosters were learned in.
        for order in [[0, 1], [1, 0]] {
            let rosters = [vec!["a", "y"], vec!["a", "x"]];
            let mut v = PresenceView::default();
            for i in order {
                v.learn_roster(rosters[i].iter().copied());
            }
            assert!(v.apply("x", true), "socket 1 does not know x");
            assert!(v.apply("y", false), "socket 1 still believes in y");
        }
    }

    #[test]
    fn reconciliation_sees_stale_and_missing_members() {
        let mut v = PresenceView::default();
        v.learn_roster(["a", "gone"]);
        v.learn_roster(["a", "gone", "new"]);
        let cluster: HashSet<&str> = ["a", "new", "later"].into_iter().collect();
        let mut stale: Vec<_> = v.stale(&cluster).cloned().collect();
        stale.sort();
        assert_eq!(stale, ["gone"]);
        let mut missing = v.missing(cluster.iter().copied());
        missing.sort();
        assert_eq!(missing, ["later", "new"]);
    }
}
