//! Names in the tests: the key derivation as FORMAT.md writes it, names no
//! other test uses, guards that remove what a name's keys hold, and a look
//! at those keys that does not go through the library's resolver.

use shmstore::{Key, NAME_PROBES, Segment};

/// Key `i` of `name`'s sequence, as FORMAT.md ("Names") defines it.
pub fn documented_key(name: &str, i: u8) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in [i].iter().chain(b"shmstore:").chain(name.as_bytes()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h | 0x8000_0000) as i32
}

/// A name no other test or run uses.
pub fn fresh_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "shmstore-test/{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Remove whatever a name's keys hold when dropped.
pub struct NameGuard(pub Vec<i32>);

impl NameGuard {
    pub fn of(name: &str) -> NameGuard {
        NameGuard((0..NAME_PROBES).map(|i| documented_key(name, i)).collect())
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        for &raw in &self.0 {
            if let Ok(seg) = Segment::options()
                .allow_foreign_owner(true)
                .read_only(true)
                .open(Key::new(raw).unwrap())
            {
                let _ = seg.remove();
            }
        }
    }
}

/// What one of a name's keys holds, read byte by byte as FORMAT.md says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtKey {
    /// The key's index in the name's sequence.
    pub index: u8,
    pub id: i32,
    /// shmstore's magic and this name.
    pub named: bool,
    /// The `state` word.
    pub state: u32,
}

/// Every segment at `name`'s keys.
pub fn at_keys(name: &str) -> Vec<AtKey> {
    (0..NAME_PROBES)
        .filter_map(|i| {
            let seg = Segment::options()
                .read_only(true)
                .allow_foreign_owner(true)
                .open(Key::new(documented_key(name, i)).unwrap())
                .ok()?;
            let mut head = vec![0u8; 512.min(seg.len())];
            seg.read_at(0, &mut head).ok()?;
            let word = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap());
            let named = head.len() == 512
                && &head[..8] == b"shmstore"
                && word(112) as usize == name.len()
                && &head[384..384 + name.len()] == name.as_bytes();
            Some(AtKey {
                index: i,
                id: seg.id(),
                named,
                state: if head.len() >= 20 { word(16) } else { 0 },
            })
        })
        .collect()
}

/// The objects of `name` (shmstore's magic, the name, READY) at its keys.
pub fn objects_of(name: &str) -> Vec<i32> {
    at_keys(name)
        .into_iter()
        .filter(|k| k.named && k.state == 2)
        .map(|k| k.id)
        .collect()
}
