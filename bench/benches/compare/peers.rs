//! The peers that share a value between processes without shmstore:
//! `shared_memory` + `raw_sync` (a process-shared mutex around a copy) and a
//! Unix domain socket carrying the value encoded with `bincode`.

use std::ffi::CString;
use std::hint::black_box;
use std::io::{ErrorKind, Read, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raw_sync::locks::{LockImpl, LockInit, Mutex as RawSyncMutex};
use shared_memory::{Shmem, ShmemConf};

use crate::common::child::Peer;
use crate::common::sys::DATA_AT;
use crate::ctl::{ChildResult, Ctl, Hammer, hammer_loop, spawn};
use crate::value::Bytes;

/// A `shared_memory` mapping (POSIX `shm_open`, with a flink file) holding a
/// `raw_sync` mutex at offset 0 and a value at [`DATA_AT`].
pub struct ShmRawSync {
    lock: Box<dyn LockImpl>,
    shmem: Shmem,
    flink: PathBuf,
}

impl ShmRawSync {
    pub fn create(dir: &Path, name: &str, value_size: usize) -> Self {
        let flink = dir.join(format!("shmem-{name}"));
        let shmem = ShmemConf::new()
            .size(DATA_AT + value_size)
            .flink(&flink)
            .create()
            .expect("create a shared_memory mapping");
        let base = shmem.as_ptr();
        // SAFETY: the mapping is fresh, page-aligned, writable and at least
        // DATA_AT + value_size bytes long; the mutex goes at its start and its
        // data pointer at DATA_AT, past the mutex (checked below).
        let (lock, used) =
            unsafe { RawSyncMutex::new(base, base.add(DATA_AT)) }.expect("create a raw_sync mutex");
        assert!(used <= DATA_AT);
        ShmRawSync { lock, shmem, flink }
    }

    pub fn open(flink: &Path) -> Self {
        let shmem = ShmemConf::new()
            .flink(flink)
            .open()
            .expect("open the shared_memory mapping");
        let base = shmem.as_ptr();
        // SAFETY: the creator initialised a raw_sync mutex at the start of
        // this mapping before any child could open it; the data lies at
        // DATA_AT inside it.
        let (lock, _) = unsafe { RawSyncMutex::from_existing(base, base.add(DATA_AT)) }
            .expect("open the raw_sync mutex");
        ShmRawSync {
            lock,
            shmem,
            flink: flink.to_owned(),
        }
    }

    /// Remove the flink and the POSIX object now (the mappings stay): once
    /// every process has it open, nothing is left behind whatever happens.
    pub fn unlink(&mut self) {
        let _ = std::fs::remove_file(&self.flink);
        let name = CString::new(self.shmem.get_os_id()).expect("os id without NUL");
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        unsafe { libc::shm_unlink(name.as_ptr()) };
        self.shmem.set_owner(false);
    }

    #[inline]
    pub fn load<const N: usize>(&self) -> Bytes<N> {
        assert!(DATA_AT + N <= self.shmem.len());
        let guard = self.lock.lock().expect("raw_sync lock");
        let mut out = MaybeUninit::<Bytes<N>>::uninit();
        // SAFETY: the guard's pointer is the mapping's DATA_AT, valid for N
        // bytes (asserted); writers copy into it only under the lock we hold.
        unsafe {
            std::ptr::copy_nonoverlapping((*guard).cast::<Bytes<N>>(), out.as_mut_ptr(), 1);
        }
        drop(guard);
        // SAFETY: all N bytes were copied in; any bytes are a valid Bytes<N>.
        unsafe { out.assume_init() }
    }

    #[inline]
    pub fn store<const N: usize>(&self, value: &Bytes<N>) {
        assert!(DATA_AT + N <= self.shmem.len());
        let guard = self.lock.lock().expect("raw_sync lock");
        // SAFETY: as in `load`; we hold the lock, so nobody else reads or
        // writes the value meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(value, (*guard).cast::<Bytes<N>>(), 1) };
        drop(guard);
    }
}

/// A shared_memory + raw_sync value and a child process storing into it as
/// fast as it can, counting its stores in the control page.
pub struct ShmHammer<const N: usize> {
    pub shm: ShmRawSync,
    pub hammer: Hammer,
}

impl<const N: usize> ShmHammer<N> {
    /// Start the child, wait until it stores, then count its stores alone
    /// for `alone`.
    pub fn start(dir: &Path, name: &str, alone: Duration) -> Self {
        let mut shm = ShmRawSync::create(dir, &format!("{name}-contended"), N);
        shm.store(&Bytes::<N>::pattern(0));
        let ctl = Ctl::new();
        let peer = spawn("shm_hammer", &[N as i64, ctl.id().into()], Some(&shm.flink));
        let hammer = Hammer::running(ctl, peer, alone);
        // The child has the object open once it stores.
        shm.unlink();
        ShmHammer { shm, hammer }
    }
}

pub fn shm_hammer<const N: usize>(ctl: i32, flink: &Path) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let shm = ShmRawSync::open(flink);
    let mut value = Bytes::<N>::pattern(0);
    hammer_loop(&ctl, |n| {
        value.set_tag(n);
        shm.store(&value);
        Ok(())
    })
}

/// A Unix domain socket to a child process that decodes each value
/// (bincode, behind a 4-byte length) and sends it back encoded again.
pub struct UdsEcho<const N: usize> {
    stream: UnixStream,
    buf: Vec<u8>,
    value: Bytes<N>,
    n: u64,
    peer: Peer,
}

const BINCODE: bincode::config::Configuration = bincode::config::standard();

impl<const N: usize> UdsEcho<N> {
    pub fn start(dir: &Path, name: &str) -> Box<Self> {
        let path = dir.join(format!("uds-{name}.sock"));
        let listener = UnixListener::bind(&path).expect("bind the socket");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let mut peer = spawn("uds_echo", &[N as i64], Some(&path));
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    peer.check();
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        drop(listener);
        let _ = std::fs::remove_file(&path);
        stream.set_nonblocking(false).expect("blocking socket");
        Box::new(UdsEcho {
            stream,
            buf: vec![0; N + 64],
            value: Bytes::pattern(0),
            n: 0,
            peer,
        })
    }

    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            self.n += 1;
            self.value.set_tag(self.n);
            send(&mut self.stream, &mut self.buf, &self.value).expect("send to the child");
            let back: Bytes<N> = receive(&mut self.stream, &mut self.buf)
                .expect("receive from the child")
                .expect("the child hung up");
            assert_eq!(back.tag(), self.n, "the child echoed another value");
            black_box(&back);
        }
        let elapsed = start.elapsed();
        self.peer.check();
        elapsed
    }
}

/// Encode `value` behind its length into `buf` and write it.
fn send<const N: usize>(
    stream: &mut UnixStream,
    buf: &mut [u8],
    value: &Bytes<N>,
) -> std::io::Result<()> {
    let len = bincode::encode_into_slice(value, &mut buf[4..], BINCODE)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    stream.write_all(&buf[..4 + len])
}

/// Read one length-prefixed value and decode it; `None` at end of stream.
fn receive<const N: usize>(
    stream: &mut UnixStream,
    buf: &mut [u8],
) -> std::io::Result<Option<Bytes<N>>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > buf.len() {
        return Err(std::io::Error::other("message too long"));
    }
    stream.read_exact(&mut buf[..len])?;
    let (value, _) = bincode::decode_from_slice::<Bytes<N>, _>(&buf[..len], BINCODE)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(Some(value))
}

pub fn uds_echo<const N: usize>(path: &Path) -> ChildResult {
    let mut stream = UnixStream::connect(path)?;
    let mut inbuf = vec![0u8; N + 64];
    let mut outbuf = vec![0u8; N + 64];
    while let Some(value) = receive::<N>(&mut stream, &mut inbuf)? {
        send(&mut stream, &mut outbuf, &value)?;
    }
    Ok(())
}
