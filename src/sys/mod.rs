//! Every system call, behind safe types and functions returning
//! `io::Result`, in the style of rustix: System V shared memory (`shm`),
//! futexes (`futex`), an eventfd counter (`eventfd`), the robust process-shared mutex (`mutex`), what
//! `/proc` tells about processes and segments, and the signals of the
//! crash points (`proc`), and a file opened without following a link
//! (`fs`). The only code that uses `libc`.
//!
//! The exception is the public segment API ([`Segment`](shm::Segment),
//! its options and [`SegmentInfo`](shm::SegmentInfo), and
//! [`list_segments`](proc::list_segments)), which returns the crate's
//! `Result`: a failed call becomes an `Error`, with the key or id it is
//! about, in one function (`shm/failure.rs`).

pub mod eventfd;
pub mod fs;
pub mod futex;
pub mod mutex;
pub mod pipe;
pub mod proc;
pub mod shm;
