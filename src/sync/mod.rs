//! The building blocks of the cross-process protocols, free of system
//! calls: the atomics they are generic over (`atomic`, std's or loom's),
//! copies through atomic words (`copy`), waiting for a change (`notify`),
//! the creation state word (`ready`) and one backoff for every loop that
//! waits on another thread or process (`backoff`).

pub mod atomic;
pub mod backoff;
pub mod copy;
pub mod notify;
pub mod ready;
