//! Every system call, behind safe types and functions returning typed
//! errors or `io::Result`, in the style of rustix: System V shared memory
//! (`shm`), futexes (`futex`), the robust process-shared mutex (`mutex`),
//! what `/proc` tells about processes and segments, and the signals of the
//! crash points (`proc`), and a file opened without following a link
//! (`fs`). The only code that uses `libc`.

pub mod fs;
pub mod futex;
pub mod mutex;
pub mod proc;
pub mod shm;
