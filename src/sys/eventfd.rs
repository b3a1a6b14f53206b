//! An `eventfd(2)` counter: the descriptor a subscription hands to epoll,
//! mio or tokio, made readable by [`EventFd::signal`] from any thread.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new counter at zero (not readable).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointer; a non-negative result is a new
        // descriptor that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by no one
        // else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Make the descriptor readable (add one to the counter).
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives across the call,
        // to a descriptor this value owns.
        let n = unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
        if n == 8 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // The counter is at its maximum: it is readable already.
            Some(libc::EAGAIN) => Ok(()),
            _ => Err(err),
        }
    }

    /// Reset the counter; returns whether it was signalled since the last
    /// drain. Never blocks.
    pub fn drain(&self) -> io::Result<bool> {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`, which lives across the
        // call, from a descriptor this value owns.
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&raw mut count).cast(), 8) };
        if n == 8 {
            return Ok(count != 0);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => Ok(false),
            _ => Err(err),
        }
    }

    /// Block until the counter is signalled, at most `timeout` (`None`:
    /// for as long as it takes); returns whether it is. Leaves the counter
    /// as it is.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let ms = timeout.map_or(-1, |t| {
            // Rounded up, so that a short timeout still sleeps.
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        });
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd, borrowed for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => Ok(false),
            _ => Err(err),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri does not implement poll")]
    fn signal_then_drain_once() {
        let e = EventFd::new().unwrap();
        assert!(!e.drain().unwrap());
        e.signal().unwrap();
        e.signal().unwrap();
        assert!(e.drain().unwrap());
        assert!(!e.drain().unwrap());
        assert!(!e.wait(Some(Duration::from_millis(1))).unwrap());
        e.signal().unwrap();
        assert!(e.wait(None).unwrap());
    }
}
