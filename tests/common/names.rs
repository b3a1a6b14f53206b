//! Names in the tests: the key derivation as FORMAT.md writes it (in a
//! private namespace too), names no other test uses, namespaces' directories,
//! guards that remove what a name's keys hold, and a look at those keys that
//! does not go through the library's resolver.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use shmstore::{Key, NAME_PROBES, SECRET_FILE, Segment};

/// Key `i` of `name`'s sequence, as FORMAT.md ("Names") defines it.
pub fn documented_key(name: &str, i: u8) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in [i].iter().chain(b"shmstore:").chain(name.as_bytes()) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h | 0x8000_0000) as i32
}

/// SipHash-2-4 of `data` under the 16-byte `key`, written from its paper
/// (Aumasson and Bernstein): the tests' own, to check the library's and the
/// readers' against (the tests check it against the reference vectors).
pub fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    fn sip_round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[2] = v[2].wrapping_add(v[3]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[1]);
        v[0] = v[0].wrapping_add(v[3]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].rotate_left(32);
    }
    let word = |bytes: &[u8]| {
        bytes
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i))
    };
    let (k0, k1) = (word(&key[..8]), word(&key[8..]));
    let mut v = [
        k0 ^ u64::from_be_bytes(*b"somepseu"),
        k1 ^ u64::from_be_bytes(*b"dorandom"),
        k0 ^ u64::from_be_bytes(*b"lygenera"),
        k1 ^ u64::from_be_bytes(*b"tedbytes"),
    ];
    let whole = data.len() / 8 * 8;
    let last = word(&data[whole..]) | (data.len() as u64) << 56;
    for m in data[..whole].chunks(8).map(word).chain([last]) {
        v[3] ^= m;
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        sip_round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// Key `i` of `name`'s sequence in the private namespace whose secret is
/// `secret`, as FORMAT.md ("Names in a private namespace") defines it.
pub fn documented_key_in(secret: &[u8; 16], name: &str, i: u8) -> i32 {
    let mut message = vec![i];
    message.extend_from_slice(b"shmstore:");
    message.extend_from_slice(name.as_bytes());
    (siphash24(secret, &message) as u32 | 0x8000_0000) as i32
}

/// A private namespace's directory of this user, made with mode `mode`
/// (its secret is made by the first `Key::named_in` there), removed when
/// dropped.
pub struct Namespace(PathBuf);

impl Namespace {
    pub fn new(mode: u32) -> Namespace {
        let path = std::env::temp_dir().join(fresh_name("ns").replace('/', "-"));
        std::fs::create_dir(&path).expect("make the namespace's directory");
        set_mode(&path, mode);
        Namespace(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory as a command's argument.
    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary directory")
    }

    pub fn secret_path(&self) -> PathBuf {
        self.0.join(SECRET_FILE)
    }

    /// The secret, made by the library if there is none yet.
    pub fn secret(&self) -> [u8; 16] {
        Key::named_in(&self.0, "shmstore-test/secret").expect("use the namespace");
        std::fs::read(self.secret_path())
            .expect("read the secret")
            .try_into()
            .expect("a secret of 16 bytes")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Set the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
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

    /// The guard of `name` in the private namespace of `secret`.
    pub fn in_namespace(secret: &[u8; 16], name: &str) -> NameGuard {
        NameGuard(
            (0..NAME_PROBES)
                .map(|i| documented_key_in(secret, name, i))
                .collect(),
        )
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

/// Offsets of the header fields the helpers below write (FORMAT.md,
/// "Header").
const OFF_STATE: usize = 16;
const OFF_CREATOR_PID: usize = 24;
const OFF_CREATOR_START: usize = 104;
const OFF_NOTIFY: usize = 264;
const OFF_LIFE: usize = 288;

/// The bytes of a `SharedCell<[u64; 4]>` named `name` holding `value`, as
/// this process (its creator: pid and start time) leaves it; the cell is
/// made at the name's first free key and removed again.
pub fn cell_image(name: &str, value: [u64; 4]) -> Vec<u8> {
    let cell = shmstore::SharedCell::<[u64; 4]>::options()
        .remove_on_drop(true)
        .create(Key::named(name).unwrap(), value)
        .expect("create the cell to copy");
    let seg = Segment::options()
        .read_only(true)
        .attach_id(cell.id())
        .expect("attach the cell");
    let mut image = vec![0; seg.len()];
    seg.read_at(0, &mut image).expect("copy the cell");
    image
}

/// `image` with another creator in its header (pid, start time).
pub fn with_creator(image: &[u8], pid: i32, start: u64) -> Vec<u8> {
    let mut image = image.to_vec();
    image[OFF_CREATOR_PID..OFF_CREATOR_PID + 4].copy_from_slice(&pid.to_le_bytes());
    image[OFF_CREATOR_START..OFF_CREATOR_START + 8].copy_from_slice(&start.to_le_bytes());
    image
}

/// A segment made by this process at key `raw` holding `image` as a
/// creator leaves it part way: every byte but the magic and the state,
/// then `state`, then the magic (a release store) if `magic`. With the
/// magic and a state below READY it is a claim of the image's name.
pub fn plant(raw: i32, image: &[u8], magic: bool, state: u32) -> (Segment, super::SegGuard) {
    let seg = Segment::options()
        .size(image.len())
        .create(true)
        .exclusive(true)
        .open(Key::new(raw).unwrap())
        .expect("plant a segment");
    let guard = super::SegGuard(seg.id());
    seg.write_at(8, &image[8..]).expect("write the image");
    store_u32(&seg, OFF_STATE, state);
    if magic {
        let word = u64::from_le_bytes(image[..8].try_into().unwrap());
        store_u64(&seg, 0, word);
    }
    (seg, guard)
}

/// Make a planted claim the object: `state = READY`, a release store.
pub fn make_ready(seg: &Segment) {
    store_u32(seg, OFF_STATE, 2);
}

/// Store `life` (FORMAT.md, "Removal") into the object in `seg`.
pub fn set_life(seg: &Segment, word: u64) {
    store_u64(seg, OFF_LIFE, word);
}

/// Store `notify` (FORMAT.md, "Waiting for a change") into the object in
/// `seg`: a plain store, as a faulty peer may make, waking nobody.
pub fn set_notify(seg: &Segment, word: u32) {
    store_u32(seg, OFF_NOTIFY, word);
}

/// A `life` word: `state` (1 COLLECTING, 2 REMOVING) by process `pid`
/// started at `start`.
pub fn life_word(state: u64, pid: i32, start: u64) -> u64 {
    state | ((pid as u64 & 0x3f_ffff) << 2) | ((start & ((1 << 40) - 1)) << 24)
}

fn store_u32(seg: &Segment, at: usize, value: u32) {
    assert!(at + 4 <= seg.len() && at.is_multiple_of(4));
    // SAFETY: an aligned word inside the read-write attachment, which stays
    // mapped while `seg` lives; other processes access it atomically only.
    let word = unsafe { std::sync::atomic::AtomicU32::from_ptr(seg.as_ptr().add(at).cast()) };
    word.store(value, std::sync::atomic::Ordering::Release);
}

fn store_u64(seg: &Segment, at: usize, value: u64) {
    assert!(at + 8 <= seg.len() && at.is_multiple_of(8));
    // SAFETY: as in store_u32.
    let word = unsafe { std::sync::atomic::AtomicU64::from_ptr(seg.as_ptr().add(at).cast()) };
    word.store(value, std::sync::atomic::Ordering::Release);
}

/// This process's start time (field 22 of /proc/self/stat).
pub fn own_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let after = stat.rsplit_once(')').expect("a stat line").1;
    after
        .split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .unwrap()
}

/// The pid of a process that has exited (and been reaped).
pub fn dead_pid() -> i32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("run true");
    let pid = child.id() as i32;
    child.wait().expect("reap true");
    pid
}

/// Another program's segment at key `raw`: 4096 bytes that start with text.
pub fn squat(raw: i32) -> (Segment, super::SegGuard) {
    let seg = Segment::options()
        .size(4096)
        .create(true)
        .exclusive(true)
        .open(Key::new(raw).unwrap())
        .expect("create a foreign segment");
    let guard = super::SegGuard(seg.id());
    seg.write_at(0, b"another program's segment")
        .expect("write it");
    (seg, guard)
}

/// A name whose 8 keys hold, in order: a claim of the name by a live
/// creator (this process), a segment whose state shows but not its magic
/// (its creator, this process, alive), a claim whose creator died, four
/// segments of another program, and at the last key the name's object, a
/// cell holding `value`. What a look must do at each: wait for nothing
/// while the object exists, skip a segment without the magic at once, pass
/// over the dead claim and the other programs' segments.
pub struct Crowded {
    /// The object at the last key.
    pub cell: shmstore::SharedCell<[u64; 4]>,
    pub planted: Vec<(Segment, super::SegGuard)>,
    pub guard: NameGuard,
}

pub fn crowded(name: &str, value: [u64; 4]) -> Crowded {
    let guard = NameGuard::of(name);
    let image = cell_image(name, [0; 4]);
    let keys: Vec<i32> = (0..NAME_PROBES).map(|i| documented_key(name, i)).collect();
    let last = keys.len() - 1;
    let squatters: Vec<_> = keys[..last].iter().map(|&k| squat(k)).collect();
    let cell = shmstore::SharedCell::<[u64; 4]>::options()
        .remove_on_drop(true)
        .create(Key::named(name).unwrap(), value)
        .expect("create the object at the last key");
    assert_eq!(
        objects_of(name),
        vec![cell.id()],
        "the object at the last key"
    );
    assert_eq!(
        cell.info().unwrap().key.raw(),
        keys[last],
        "the object at the last key"
    );
    let mut planted = Vec::new();
    for (i, squatter) in squatters.into_iter().enumerate() {
        if i > 2 {
            planted.push(squatter);
            continue;
        }
        drop(squatter);
        planted.push(match i {
            0 => plant(keys[0], &image, true, 1),
            1 => plant(keys[1], &image, false, 1),
            _ => plant(keys[2], &with_creator(&image, dead_pid(), 1), true, 1),
        });
    }
    Crowded {
        cell,
        planted,
        guard,
    }
}

/// Write `name` into the header of segment `id` (FORMAT.md: `name_len` at
/// 112, `name` at 384), as a peer that plants a claim of the name would.
pub fn claim_name(id: i32, name: &str) {
    let seg = Segment::options()
        .allow_foreign_owner(true)
        .attach_id(id)
        .unwrap();
    seg.write_at(384, name.as_bytes()).unwrap();
    seg.write_at(112, &(name.len() as u32).to_le_bytes())
        .unwrap();
}
