//! The requests a recorder wrote recently, by HAProxy's id (`arg_id`): what a type-2 record
//! (the primary's response) needs to carry the id of its request's record. Bounded: the
//! oldest entries go first.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Requests remembered at most; a response comes within seconds of its request.
pub(super) const CAPACITY: usize = 65_536;

#[derive(Default)]
pub(super) struct Recent {
    /// HAProxy's id → (the record's number, its timestamp in ns).
    by_key: HashMap<Bytes, (u64, i64)>,
    order: VecDeque<Bytes>,
}

impl Recent {
    pub(super) fn remember(&mut self, key: Bytes, n: u64, timestamp_ns: i64) {
        while self.order.len() >= CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.by_key.remove(&old);
            }
        }
        // A copy: the key may be a slice of a frame buffer.
        let key = Bytes::copy_from_slice(&key);
        if self.by_key.insert(key.clone(), (n, timestamp_ns)).is_none() {
            self.order.push_back(key);
        }
    }

    /// The record of the request with this key (once: a request has one response).
    pub(super) fn take(&mut self, key: &[u8]) -> Option<(u64, i64)> {
        // The key stays in `order` until it is pushed out; a stale entry there removes nothing.
        self.by_key.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_taken_once() {
        let mut r = Recent::default();
        for i in 0..(CAPACITY as u64 + 10) {
            r.remember(Bytes::from(format!("k{i}")), i, 0);
        }
        assert!(r.take(b"k0").is_none(), "the oldest went first");
        assert_eq!(r.take(b"k20"), Some((20, 0)));
        assert_eq!(r.take(b"k20"), None);
        assert!(r.by_key.len() <= CAPACITY && r.order.len() <= CAPACITY);
    }
}
