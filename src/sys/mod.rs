//! Every system call, behind safe types and functions returning typed
//! errors or `io::Result`, in the style of rustix: System V shared memory
//! (`shm`), futexes (`futex`), the robust process-shared mutex (`mutex`),
//! and what `/proc` tells about processes and segments (`proc`). The only
//! code that calls `libc` (with the crash points' `raise`).

pub mod futex;
pub mod mutex;
pub mod proc;
pub mod shm;
