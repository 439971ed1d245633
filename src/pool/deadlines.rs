//! A min-queue of deadlines tuned for the way a pool's deadlines arrive.
//!
//! A key's deadline is `now + key_ttl` and a block's is `now + block_ttl`, with
//! a TTL that is constant for the whole run, so within a run deadlines are
//! pushed in (almost) nondecreasing order. [`DeadlineQueue`] therefore keeps a
//! FIFO of entries in nondecreasing order, and only the entries that arrive
//! earlier than the FIFO's back (the clock stepped back, a restore from an
//! image, replay of a fuzzy snapshot's overlap, a changed TTL) go to a small
//! fallback binary heap. The earliest entry is the smaller of the FIFO's front
//! and the heap's top.
//!
//! Why: a binary heap's sift-up and sift-down touch log n cache lines scattered
//! over the heap, which at a million keys are cache misses; a push to the back
//! of a FIFO touches one line that is already in cache, and so does a pop from
//! its front. Push and pop are O(1) on the FIFO path and O(log h) on the
//! heap path (h = entries in the heap), so the O(log n) bound still holds.
//!
//! The queue knows nothing of keys: the shard stores `(due, slot, gen)` and
//! decides which entries are still live (lazy deletion), dropping the rest as
//! they surface or in [`DeadlineQueue::retain`], which also merges the heap
//! back into the FIFO so that the queue is one sorted run again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::clock::Millis;

/// One deadline: `slot` of the shard's slab is due at `due`, if the slot still
/// holds generation `gen` of its keys (so an entry of a deleted key never
/// applies to the key that reuses its slot). 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Entry {
    pub(super) due: Millis,
    pub(super) slot: u32,
    pub(super) gen: u32,
}

/// A min-queue of [`Entry`] by `due`: a nondecreasing FIFO plus a fallback heap
/// for entries that arrive out of order. Ties between entries with the same
/// `due` come out in any order.
#[derive(Debug, Default)]
pub(super) struct DeadlineQueue {
    /// Entries in nondecreasing `due` order; pushes go to the back when they
    /// are not earlier than it.
    fifo: VecDeque<Entry>,
    /// Entries that were earlier than the FIFO's back when pushed.
    late: BinaryHeap<Reverse<Entry>>,
}

impl DeadlineQueue {
    /// Adds an entry. O(1) when `e.due` is not earlier than the latest FIFO
    /// entry (the usual case), O(log h) otherwise.
    pub(super) fn push(&mut self, e: Entry) {
        match self.fifo.back() {
            Some(back) if e.due < back.due => self.late.push(Reverse(e)),
            _ => self.fifo.push_back(e),
        }
    }

    /// The entry with the earliest `due`, if any.
    pub(super) fn peek(&self) -> Option<Entry> {
        match (self.fifo.front(), self.late.peek()) {
            (Some(&f), Some(&Reverse(l))) => Some(if l.due < f.due { l } else { f }),
            (f, l) => f.copied().or(l.map(|r| r.0)),
        }
    }

    /// Removes and answers the entry with the earliest `due`, if any.
    pub(super) fn pop(&mut self) -> Option<Entry> {
        let from_heap = match (self.fifo.front(), self.late.peek()) {
            (Some(f), Some(Reverse(l))) => l.due < f.due,
            (None, Some(_)) => true,
            _ => false,
        };
        if from_heap {
            self.late.pop().map(|r| r.0)
        } else {
            self.fifo.pop_front()
        }
    }

    /// Removes and answers the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Millis) -> Option<Entry> {
        match self.peek() {
            Some(e) if e.due <= now => self.pop(),
            _ => None,
        }
    }

    /// How many entries, live or stale.
    pub(super) fn len(&self) -> usize {
        self.fifo.len() + self.late.len()
    }

    /// How many entries sit in the fallback heap (for tests and diagnostics).
    #[cfg(test)]
    pub(super) fn late_len(&self) -> usize {
        self.late.len()
    }

    /// Every entry, in no particular order (for tests).
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.fifo.iter().chain(self.late.iter().map(|r| &r.0))
    }

    /// Keeps only the entries for which `live` holds, and leaves them all in
    /// the FIFO as one sorted run (the heap's survivors are sorted and merged
    /// in). If more than `expected` entries survive, the survivors hold
    /// duplicates (replay can set a deadline back to a value it had before) and
    /// they are dropped too, so the queue holds at most `expected` entries.
    /// O(n + h log h), or O(n log n) in the rare duplicate case.
    pub(super) fn retain(&mut self, expected: usize, mut live: impl FnMut(&Entry) -> bool) {
        self.fifo.retain(|e| live(e));
        if !self.late.is_empty() {
            let mut late: Vec<Entry> = std::mem::take(&mut self.late)
                .into_vec()
                .into_iter()
                .map(|r| r.0)
                .filter(|e| live(e))
                .collect();
            late.sort_unstable();
            self.fifo = merge(std::mem::take(&mut self.fifo), late);
        }
        if self.fifo.len() > expected {
            let mut all = Vec::from(std::mem::take(&mut self.fifo));
            all.sort_unstable();
            all.dedup();
            self.fifo = VecDeque::from(all);
        }
    }

    /// Moves every entry into the FIFO as one sorted run, e.g. after a
    /// restore pushed a whole image's deadlines in slab order.
    pub(super) fn normalize(&mut self) {
        self.retain(usize::MAX, |_| true);
    }
}

/// Merges two runs sorted by `due` into one.
fn merge(a: VecDeque<Entry>, b: Vec<Entry>) -> VecDeque<Entry> {
    let mut out = VecDeque::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if y.due < x.due => b.next(),
            (Some(_), _) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(e) => out.push_back(e),
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn e(due: Millis, slot: u32) -> Entry {
        Entry { due, slot, gen: 0 }
    }

    fn drain(q: &mut DeadlineQueue) -> Vec<Millis> {
        std::iter::from_fn(|| q.pop()).map(|e| e.due).collect()
    }

    #[test]
    fn in_order_pushes_stay_in_the_fifo() {
        let mut q = DeadlineQueue::default();
        for (i, due) in [5, 5, 7, 9, 9, 12].into_iter().enumerate() {
            q.push(e(due, i as u32));
        }
        assert_eq!(q.late_len(), 0);
        assert_eq!(q.peek(), Some(e(5, 0)));
        assert_eq!(drain(&mut q), vec![5, 5, 7, 9, 9, 12]);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn out_of_order_pushes_fall_back_to_the_heap_and_come_out_in_order() {
        let mut q = DeadlineQueue::default();
        q.push(e(100, 0));
        q.push(e(200, 1));
        // The clock stepped back: earlier than the back, so into the heap.
        q.push(e(150, 2));
        q.push(e(50, 3));
        q.push(e(200, 4)); // not earlier than the back: FIFO
        assert_eq!(q.late_len(), 2);
        assert_eq!(q.peek().map(|e| e.due), Some(50));
        assert_eq!(q.pop_due(49), None);
        assert_eq!(q.pop_due(50), Some(e(50, 3)));
        assert_eq!(q.pop_due(120), Some(e(100, 0)));
        assert_eq!(q.pop_due(120), None);
        assert_eq!(drain(&mut q), vec![150, 200, 200]);
    }

    #[test]
    fn retain_drops_the_dead_and_merges_the_heap_into_the_fifo() {
        let mut q = DeadlineQueue::default();
        for (slot, due) in [10, 20, 30, 40, 15, 25, 5].into_iter().enumerate() {
            q.push(e(due, slot as u32));
        }
        assert_eq!(q.late_len(), 3);
        q.retain(usize::MAX, |e| e.due != 20 && e.due != 25);
        assert_eq!(q.late_len(), 0, "the heap was merged into the FIFO");
        assert_eq!(q.len(), 5);
        // Pushes after the merge keep to the FIFO when in order.
        q.push(e(40, 9));
        assert_eq!(q.late_len(), 0);
        assert_eq!(drain(&mut q), vec![5, 10, 15, 30, 40, 40]);
    }

    #[test]
    fn retain_drops_duplicates_beyond_the_expected_count() {
        let mut q = DeadlineQueue::default();
        for due in [10, 20, 10, 20, 10] {
            q.push(e(due, 1));
        }
        q.push(e(15, 2));
        q.retain(2, |_| true);
        assert_eq!(q.len(), 3, "(10,1), (15,2) and (20,1) are distinct");
        q.retain(2, |e| e.due != 20);
        assert_eq!(drain(&mut q), vec![10, 15]);
    }

    #[test]
    fn normalize_sorts_everything_into_the_fifo() {
        let mut q = DeadlineQueue::default();
        for (slot, due) in [9, 3, 7, 1, 8, 2].into_iter().enumerate() {
            q.push(e(due, slot as u32));
        }
        q.normalize();
        assert_eq!(q.late_len(), 0);
        assert_eq!(drain(&mut q), vec![1, 2, 3, 7, 8, 9]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Push at the latest due plus this much (in order).
        Ahead(u8),
        /// Push this far before the latest due (out of order).
        Behind(u8),
        Pop,
        PopDue(u8),
        /// Drop entries whose slot is divisible by this.
        Retain(u8),
        Normalize,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u8>().prop_map(|d| Op::Ahead(d % 4)),
            2 => any::<u8>().prop_map(Op::Behind),
            3 => Just(Op::Pop),
            2 => any::<u8>().prop_map(Op::PopDue),
            1 => (2..5u8).prop_map(Op::Retain),
            1 => Just(Op::Normalize),
        ]
    }

    proptest! {
        /// Against a sorted multiset: every pop answers a minimal `due`.
        #[test]
        fn behaves_like_a_sorted_multiset(ops in prop::collection::vec(op(), 1..300)) {
            let mut q = DeadlineQueue::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut latest: Millis = 1_000;
            let mut slot = 0u32;
            for op in ops {
                match op {
                    Op::Ahead(d) | Op::Behind(d) => {
                        let due = match op {
                            Op::Ahead(_) => latest + Millis::from(d),
                            _ => latest.saturating_sub(Millis::from(d)),
                        };
                        latest = latest.max(due);
                        slot += 1;
                        q.push(e(due, slot));
                        model.push(e(due, slot));
                    }
                    Op::Pop | Op::PopDue(_) => {
                        let now = match op {
                            Op::PopDue(d) => latest.saturating_sub(Millis::from(d)),
                            _ => Millis::MAX,
                        };
                        let min = model.iter().map(|e| e.due).min();
                        let got = if now == Millis::MAX { q.pop() } else { q.pop_due(now) };
                        match got {
                            Some(g) => {
                                prop_assert_eq!(Some(g.due), min);
                                prop_assert!(g.due <= now);
                                let i = model.iter().position(|m| *m == g);
                                prop_assert!(i.is_some(), "popped an entry never pushed");
                                model.swap_remove(i.unwrap_or_default());
                            }
                            None => prop_assert!(min.is_none_or(|m| m > now)),
                        }
                    }
                    Op::Retain(k) => {
                        let keep = |e: &Entry| !e.slot.is_multiple_of(u32::from(k));
                        q.retain(usize::MAX, keep);
                        model.retain(keep);
                        prop_assert_eq!(q.late_len(), 0);
                    }
                    Op::Normalize => {
                        q.normalize();
                        prop_assert_eq!(q.late_len(), 0);
                    }
                }
                prop_assert_eq!(q.len(), model.len());
                prop_assert_eq!(q.peek().map(|e| e.due), model.iter().map(|e| e.due).min());
            }
            let mut rest: Vec<Millis> = model.iter().map(|e| e.due).collect();
            rest.sort_unstable();
            prop_assert_eq!(drain(&mut q), rest);
        }
    }
}
