//! A creator's claim of a name, and the rule that decides, among the claims
//! of one name at different keys, which creator goes on: the steps of the
//! naming protocol that order memory, for the argument in `mod.rs` and the
//! model in `tests/loom_life.rs`, which runs these functions.

use std::sync::atomic::Ordering::{Acquire, Release, SeqCst};

use crate::format::MAGIC;
use crate::sync::atomic::{Model, Word32, Word64};
use crate::sync::ready;

/// The creator's claim, on a segment it just made: its identity (`write`:
/// pid, start time and name, relaxed stores), then the magic (release, so
/// that whoever sees the magic sees the identity), then `state =
/// INITIALIZING`, then a sequentially consistent fence, after which it
/// looks at the other keys of the name.
pub fn claim<M: Model>(magic: &M::U64, state: &M::U32, write: impl FnOnce()) {
    write();
    magic.store(MAGIC, Release);
    ready::begin::<M>(state);
    M::fence(SeqCst);
}

/// A look at another segment's claim: `None` if its magic is not there (a
/// creator at its first instructions, or another program's bytes);
/// otherwise its state (acquire) and what `read` reads of its identity
/// (relaxed loads, after the acquire load of the magic).
pub fn look<M: Model, T>(
    magic: &M::U64,
    state: &M::U32,
    read: impl FnOnce() -> T,
) -> Option<(u32, T)> {
    if magic.load(Acquire) != MAGIC {
        return None;
    }
    let identity = read();
    Some((state.load(Acquire), identity))
}

/// Another key of the name, as a creator's look found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The object of the name (READY).
    Object,
    /// A claim of the name, not READY, at the key of index `index`, whose
    /// creator `pid` lives.
    Claim {
        /// The key's index in the name's sequence.
        index: usize,
        /// Its creator.
        pid: i32,
    },
    /// Anything else: no segment, another name, another program's or
    /// another user's segment, a creator that has not written its magic
    /// yet, a claim whose creator died.
    Other,
}

/// What a creator whose claim is at key `own` does, given what its look at
/// the other keys found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No other claim stands in the way: finish and publish READY.
    Proceed,
    /// The object exists, or a claim at a lower key: remove this claim.
    Yield,
    /// A live claim at a higher key: wait until it is decided, then look
    /// again.
    Wait {
        /// The creator of that claim.
        pid: i32,
    },
}

/// The rule: an object anywhere, or a live claim at a lower key, makes this
/// claim yield; else a live claim at a higher key makes it wait; else it
/// proceeds. Waits go only from lower keys to higher ones, and the highest
/// claim never waits, so no set of claims waits forever on itself.
pub fn decide(own: usize, peers: impl IntoIterator<Item = Peer>) -> Decision {
    let mut wait = None;
    for peer in peers {
        match peer {
            Peer::Object => return Decision::Yield,
            Peer::Claim { index, .. } if index < own => return Decision::Yield,
            Peer::Claim { pid, .. } => wait = wait.or(Some(pid)),
            Peer::Other => {}
        }
    }
    match wait {
        Some(pid) => Decision::Wait { pid },
        None => Decision::Proceed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        use Decision::*;
        let claim = |index| Peer::Claim { index, pid: 7 };
        assert_eq!(decide(3, []), Proceed);
        assert_eq!(decide(3, [Peer::Other, Peer::Other]), Proceed);
        assert_eq!(decide(3, [claim(5)]), Wait { pid: 7 });
        assert_eq!(decide(3, [claim(5), claim(1)]), Yield);
        assert_eq!(decide(0, [claim(5), Peer::Object]), Yield);
        assert_eq!(decide(7, [claim(6)]), Yield);
    }
}
