//! Private namespaces of names: a directory that holds a secret, from which
//! the keys of its names are derived (`Key::named_in`, FORMAT.md, "Names in
//! a private namespace").
//!
//! The keys of a name made by `Key::named` are a function of the name
//! alone: any local user can compute them and take all of them, so that the
//! name cannot be made (`Error::NameTaken`). In a private namespace the keys
//! are SipHash-2-4 of the name under a 16-byte secret kept in
//! `DIR/shmstore.secret`: a user who cannot read that file cannot tell a
//! name's keys, nor compute them from other keys it sees in `ipcs -m`, so it
//! cannot take them. The directory must belong to this user or root and
//! not be writable by its group or other users (one could otherwise put its
//! own secret there), and the secret must be a regular file of this user or
//! root that no other user may read: all checked at every use. Users of
//! different uids share a namespace when root makes the directory and the
//! secret (mode `0640`, in their group).
//!
//! The secret is made on first use: 16 bytes of `/dev/urandom` written to a
//! file of this process's own, then linked to its name, which fails if
//! another process got there first (its secret is then the one read), so
//! the file is never seen half written.
//!
//! Reading the secret goes through `sys/` (`sys::fs::open_no_follow`,
//! `sys::proc`), which the rest of `key/` does not use: this file, with
//! [`Key::named_in`], sits above `sys/` (ARCHITECTURE.md, "Layers").

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Key, SECRET_FILE, SECRET_LEN, check_name, intern, name_key};
use crate::error::{Error, Result};
use crate::sys::{fs::open_no_follow, proc};

impl Key {
    /// The key of an object named `name` in the private namespace of the
    /// directory `dir`: as [`Key::named`], but the name's keys are derived
    /// from a secret kept in `dir` (made there on first use, 16 random
    /// bytes in [`SECRET_FILE`]), so that a user who cannot read it can
    /// neither tell the name's keys nor take them to deny the name. `dir`
    /// must belong to this user or root and not be writable by its group or
    /// others; the secret must be a regular file of this user or root that
    /// no other user may read. Users of different uids share a namespace
    /// when root makes the directory and the secret (mode `0640`, in their
    /// group). Every process that uses the name must use the same directory
    /// (FORMAT.md, "Names in a private namespace").
    ///
    /// ```
    /// use shmstore::{Key, SharedCell};
    /// # let dir = std::env::temp_dir().join(format!("shmstore-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # use std::os::unix::fs::PermissionsExt;
    /// # std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    ///
    /// let key = Key::named_in(&dir, "acme/config")?;
    /// assert_ne!(key.raw(), Key::named("acme/config")?.raw());
    /// let cell = SharedCell::<u64>::create(key, 7)?;
    /// assert_eq!(SharedCell::<u64>::open(Key::named_in(&dir, "acme/config")?)?.load(), 7);
    /// cell.remove()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn named_in(dir: impl AsRef<Path>, name: &str) -> Result<Key> {
        check_name(name)?;
        let secret = secret(dir.as_ref())?;
        let name = intern(name, Some(secret));
        Ok(Key(name_key(name, 0), Some(name)))
    }
}

/// How many times the secret is looked for (and made where it is missing)
/// before a secret that keeps coming and going is refused: once made, by
/// this process or another, it is there at the next look unless someone
/// removes it.
const SECRET_ROUNDS: usize = 4;

fn refuse(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Namespace {
        dir: dir.to_path_buf(),
        reason: reason.into(),
    }
}

/// Whether this process trusts a file or directory of user `uid`: its own,
/// or root's.
fn trusted(uid: u32) -> bool {
    uid == proc::euid() || uid == 0
}

/// The secret of the namespace in `dir`, made if it has none yet.
fn secret(dir: &Path) -> Result<[u8; SECRET_LEN]> {
    let meta = fs::metadata(dir).map_err(|e| refuse(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(refuse(dir, "it is not a directory"));
    }
    if !trusted(meta.uid()) {
        return Err(refuse(
            dir,
            format!("it belongs to uid {}, not to this user or root", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(
            dir,
            "its group or other users may write it (and so put a secret of theirs there): \
             chmod go-w",
        ));
    }
    let path = dir.join(SECRET_FILE);
    let group = (meta.mode() & 0o040 != 0).then_some(meta.gid());
    for _ in 0..SECRET_ROUNDS {
        match read(dir, &path)? {
            Some(secret) => return Ok(secret),
            None => make(dir, &path, group)?,
        }
    }
    Err(refuse(
        dir,
        "its secret came and went while it was read; try again",
    ))
}

/// The secret in `path`, if the file exists; checked: a regular file (not
/// followed through a symbolic link, nor a FIFO or a device, which are
/// opened without blocking and refused), this user's or root's, no access
/// for other users, exactly [`SECRET_LEN`] bytes.
fn read(dir: &Path, path: &Path) -> Result<Option<[u8; SECRET_LEN]>> {
    let mut file = match open_no_follow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(dir, format!("{SECRET_FILE}: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| refuse(dir, format!("{SECRET_FILE}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(dir, format!("{SECRET_FILE} is not a regular file")));
    }
    if !trusted(meta.uid()) {
        return Err(refuse(
            dir,
            format!("{SECRET_FILE} belongs to uid {}", meta.uid()),
        ));
    }
    if meta.mode() & 0o007 != 0 {
        return Err(refuse(
            dir,
            format!("other users may read {SECRET_FILE}: chmod o-rwx"),
        ));
    }
    let mut bytes = Vec::with_capacity(SECRET_LEN + 1);
    Read::by_ref(&mut file)
        .take(SECRET_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(dir, format!("{SECRET_FILE}: {e}")))?;
    let secret: [u8; SECRET_LEN] = bytes.as_slice().try_into().map_err(|_| {
        refuse(
            dir,
            format!("{SECRET_FILE} has {} bytes, not {SECRET_LEN}", bytes.len()),
        )
    })?;
    Ok(Some(secret))
}

/// Make the secret: random bytes in a file of this process's, linked to
/// `path` unless another process made it first. Readable by the
/// directory's group (`group`) if the directory is.
fn make(dir: &Path, path: &Path, group: Option<u32>) -> Result<()> {
    let mut secret = [0u8; SECRET_LEN];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .map_err(|e| refuse(dir, format!("/dev/urandom: {e}")))?;
    let tmp: PathBuf = dir.join(format!(
        ".{SECRET_FILE}.{}.{}",
        proc::own_pid(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let mode = if group.is_some() { 0o640 } else { 0o600 };
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            // The directory's group (this user may give a file only to a
            // group it is in: otherwise the file keeps this user's group),
            // and the mode asked for, whatever the umask took away.
            if let Some(gid) = group {
                let _ = std::os::unix::fs::fchown(&f, None, Some(gid));
            }
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(&secret)?;
            f.sync_all()
        });
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&tmp);
    linked.map_err(|e| refuse(dir, format!("making {SECRET_FILE}: {e}")))
}
