//! Opening a file that another user may have put in place of the one
//! expected: never through a symbolic link, never blocking.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open `path` for reading as the file itself: not through a symbolic link
/// (`O_NOFOLLOW`: `ELOOP`), without blocking on a FIFO or a device
/// (`O_NONBLOCK`), and never as this process's controlling terminal
/// (`O_NOCTTY`). The caller checks what it opened (`File::metadata`).
pub fn open_no_follow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}
