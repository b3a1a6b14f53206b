//! Whether the reader of an output has gone, asked without writing.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Whether `fd` is a pipe (or socket) whose reading end is closed: it polls
/// as an error (`POLLERR`) at once, with nothing written. What ends a
/// command that has nothing to print for a while (`shmstore watch |
/// head -1`) when its reader goes, rather than at its next line.
pub fn reader_gone(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for a descriptor the borrow keeps open, and
    // no wait.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n == 1 && poll.revents & libc::POLLERR != 0)
}
