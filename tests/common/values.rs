//! The values the region tests publish. Each derives every field from its
//! version, so that a read tells a whole value from a torn or a foreign
//! one: [`is_whole`] checks any of them, archived or through a guard.

use std::collections::HashMap;

use shmstore::{Key, RegionRef, SharedRegion};

use super::{SegGuard, unique_key};

/// A value whose every archive has the same layout (the text has the same
/// length for every version below 10^8), so a guard whose buffer is
/// overwritten by another version reads other bytes at the same places
/// instead of following pointers out of its buffer.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
pub struct Text {
    pub version: u64,
    pub text: String,
}

impl Text {
    pub fn of(version: u64) -> Text {
        Text {
            version,
            text: format!("value-{version:08}-{}", "abcdefgh".repeat(4)),
        }
    }
}

/// What an archived `Text` says: its version field and its text.
pub fn text_of(t: &ArchivedText) -> (u64, String) {
    (t.version.to_native(), t.text.as_str().to_owned())
}

/// `read()` of `region`, as `ok` or the error (or what is wrong with the value).
pub fn describe_read(region: &SharedRegion<Text>) -> String {
    match region.read() {
        Ok(g) if is_whole(&g) && g.version.to_native() == g.version() => "ok".into(),
        Ok(g) => format!(
            "a broken value at version {}: {:?}",
            g.version(),
            text_of(&g)
        ),
        Err(e) => format!("{e} ({e:?})"),
    }
}

/// A value of about `size` bytes: `words` derive from `version`, so a read
/// can tell a whole value from garbage.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Clone, PartialEq)]
pub struct Words {
    pub version: u64,
    pub words: Vec<String>,
}

impl Words {
    pub fn of(version: u64, size: usize) -> Words {
        let n = (size / 16).max(1);
        Words {
            version,
            words: (0..n).map(|i| format!("{i:04}-{version:09}")).collect(),
        }
    }
}

/// A configuration whose every field derives from `version`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub struct Config {
    pub version: u64,
    pub name: String,
    pub ports: Vec<u32>,
    pub limits: HashMap<String, u64>,
}

impl Config {
    pub fn of(version: u64) -> Config {
        let n = (version % 17) as usize + 1;
        Config {
            version,
            name: format!("config-{version}"),
            ports: (0..n as u32).map(|i| i * 1000 + version as u32).collect(),
            limits: (0..n)
                .map(|i| (format!("k{i}"), version * 10 + i as u64))
                .collect(),
        }
    }
}

/// A region of `Config`s of `capacity` bytes at a fresh key, and the guard
/// that removes it.
pub fn new_region(capacity: usize) -> (SharedRegion<Config>, Key, SegGuard) {
    let key = unique_key();
    let region = SharedRegion::<Config>::create(key, capacity).unwrap();
    let guard = SegGuard(region.id());
    (region, key, guard)
}

/// An archived value that can tell whether it is whole.
pub trait Whole {
    fn whole(&self) -> bool;
}

/// Its text agrees with its version.
impl Whole for ArchivedText {
    fn whole(&self) -> bool {
        let t = self;
        t.version.to_native() < 100_000_000
            && t.text.as_str() == Text::of(t.version.to_native()).text
    }
}

/// Every word agrees with its version.
impl Whole for ArchivedWords {
    fn whole(&self) -> bool {
        let t = self;
        let v = t.version.to_native();
        t.words
            .iter()
            .enumerate()
            .all(|(i, w)| w.as_str() == format!("{i:04}-{v:09}"))
    }
}

/// Every field agrees with its version.
impl Whole for ArchivedConfig {
    fn whole(&self) -> bool {
        let c = self;
        let v = c.version.to_native();
        let want = Config::of(v);
        c.name.as_str() == want.name
            && c.ports
                .iter()
                .map(|p| p.to_native())
                .eq(want.ports.iter().copied())
            && c.limits.len() == want.limits.len()
            && want
                .limits
                .iter()
                .all(|(k, val)| c.limits.get(k.as_str()).map(|x| x.to_native()) == Some(*val))
    }
}

/// A guard of a value is whole when the value is.
impl<T> Whole for RegionRef<'_, T>
where
    T: rkyv::Archive,
    T::Archived: Whole,
{
    fn whole(&self) -> bool {
        (**self).whole()
    }
}

/// Whether `value`, an archived value of the types above or a guard of one,
/// is whole.
pub fn is_whole<W: Whole + ?Sized>(value: &W) -> bool {
    value.whole()
}
