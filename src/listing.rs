//! Every System V shared-memory segment on the system, as
//! `/proc/sysvipc/shm` lists them (also those this user cannot attach).

use std::time::{Duration, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::key::Key;
use crate::segment::SegmentInfo;

/// The kernel's list of segments.
pub const PROC_SHM: &str = "/proc/sysvipc/shm";

/// Every segment on the system, in the kernel's order.
///
/// ```
/// let all = shmstore::list_segments()?;
/// for seg in &all {
///     println!("{} {} {} bytes", seg.key, seg.id, seg.size);
/// }
/// # Ok::<(), shmstore::Error>(())
/// ```
pub fn list_segments() -> Result<Vec<SegmentInfo>> {
    let text = std::fs::read_to_string(PROC_SHM).map_err(|source| Error::Os {
        target: None,
        op: "read /proc/sysvipc/shm",
        source,
    })?;
    Ok(parse(&text))
}

/// Parse the text of `/proc/sysvipc/shm`; lines that do not parse are
/// skipped.
pub fn parse(text: &str) -> Vec<SegmentInfo> {
    text.lines().skip(1).filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<SegmentInfo> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 14 {
        return None;
    }
    let num = |i: usize| f[i].parse::<i64>().ok();
    let time = |i: usize| {
        num(i)
            .filter(|&t| t > 0)
            .map(|t| UNIX_EPOCH + Duration::from_secs(t as u64))
    };
    let raw_key = f[0].parse::<i32>().ok()?;
    // The kernel prints the mode in octal, with SHM_DEST (0o1000) and
    // SHM_LOCKED (0o2000) above the permission bits.
    let perms = u32::from_str_radix(f[2], 8).ok()?;
    Some(SegmentInfo {
        id: f[1].parse().ok()?,
        key: if raw_key == 0 {
            Key::PRIVATE
        } else {
            Key::new(raw_key).ok()?
        },
        size: f[3].parse().ok()?,
        mode: perms & 0o777,
        marked_for_removal: perms & 0o1000 != 0,
        locked: perms & 0o2000 != 0,
        cpid: num(4)? as i32,
        lpid: num(5)? as i32,
        nattch: num(6)? as u64,
        uid: num(7)? as u32,
        gid: num(8)? as u32,
        cuid: num(9)? as u32,
        cgid: num(10)? as u32,
        atime: time(11),
        dtime: time(12),
        ctime: time(13),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_format() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    1392508929      32769  1600                 30272 15964 15970      1     0     0     0     0 1795708267          0 1795708260                 28672                     0\n\
                    garbage\n";
        let all = parse(text);
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!(s.key.raw(), 1_392_508_929);
        assert_eq!((s.id, s.size, s.mode), (32769, 30272, 0o600));
        assert!(s.marked_for_removal && !s.locked);
        assert_eq!((s.cpid, s.lpid, s.nattch), (15964, 15970, 1));
        assert!(s.atime.is_some() && s.dtime.is_none());
    }
}
