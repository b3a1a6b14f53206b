//! iceoryx2's blackboard, a peer of `SharedCell::load` and `store`: a
//! key-value service whose one entry (key 0) holds a `Bytes<N>`. In one
//! process, nobody else attached: a writer's `update_with_copy` and a
//! reader's `get`, which returns a copy of the value. Across processes: the
//! reader's `get` while a writer in a child process calls `update_with_copy`
//! nonstop, counting its writes in the control page as the cell's hammer
//! does (`ctl.rs`). Measured for 64 B and 4 KiB values ([`MAX_VALUE`]).
//!
//! iceoryx2 0.10.0 keeps an entry in two copies and a write counter: a write
//! copies the value into the copy readers are not pointed at, then bumps
//! the counter; a read copies the other one out, then compare-exchanges the
//! counter with the value it started from, and copies again if a write
//! moved it meanwhile. An entry has one writer at a time.
//!
//! Each run names its services after the parent's pid and the value size;
//! their files go as `iox.rs` says, with the last node that uses them. It
//! makes no System V segment.

use std::hint::black_box;
use std::time::Duration;

use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use iceoryx2::port::reader::{EntryHandle, Reader};
use iceoryx2::port::writer::{EntryHandleMut, Writer};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::blackboard::PortFactory;

use crate::ctl::{ChildResult, Ctl, Hammer, WriterWindow, hammer_loop, spawn};
use crate::iox::{Ipc, node, service_name};
use crate::value::Bytes;

/// The largest value measured here and in `pubsub.rs`. iceoryx2 sets no
/// limit on a value's size (a blackboard's key is limited, to 64 bytes):
/// 64 KiB is left out to keep the run short.
pub const MAX_VALUE: usize = 4096;

/// The blackboard's key type, and the key of its one entry.
type Key = u64;
const KEY: Key = 0;

type Board = PortFactory<Ipc, Key>;

/// The name of the blackboard of `N`-byte values: in one process, or
/// (`contended`) shared with a writer child.
fn what<const N: usize>(contended: bool) -> String {
    let ipc = if contended { "-contended" } else { "" };
    format!("blackboard-{N}{ipc}")
}

/// A node of this process and its new blackboard `what`, the entry holding
/// a pattern.
fn create<const N: usize>(what: &str) -> (Node<Ipc>, Board) {
    let me = std::process::id() as libc::pid_t;
    let node = node().expect("an iceoryx2 node");
    let board = node
        .service_builder(&service_name(me, what).expect("a service name"))
        .blackboard_creator::<Key>()
        .add::<Bytes<N>>(KEY, Bytes::pattern(0))
        .create()
        .expect("a blackboard");
    (node, board)
}

/// A reader of the entry.
fn reader<const N: usize>(board: &Board) -> (Reader<Ipc, Key>, EntryHandle<Ipc, Key, Bytes<N>>) {
    let reader = board.reader_builder().create().expect("a reader");
    let entry = reader.entry::<Bytes<N>>(&KEY).expect("the reader's entry");
    (reader, entry)
}

/// A blackboard with a reader and a writer of its entry, in this process.
struct Local<const N: usize> {
    read: EntryHandle<Ipc, Key, Bytes<N>>,
    write: EntryHandleMut<Ipc, Key, Bytes<N>>,
    _reader: Reader<Ipc, Key>,
    _writer: Writer<Ipc, Key>,
    _board: Board,
    _node: Node<Ipc>,
}

impl<const N: usize> Local<N> {
    fn create() -> Self {
        let (node, board) = create::<N>(&what::<N>(false));
        let (reader, read) = reader::<N>(&board);
        let writer = board.writer_builder().create().expect("a writer");
        let write = writer.entry::<Bytes<N>>(&KEY).expect("the writer's entry");
        Local {
            read,
            write,
            _reader: reader,
            _writer: writer,
            _board: board,
            _node: node,
        }
    }
}

/// The in-process rows, in the group of `SharedCell::load` and `store`
/// (values of at most [`MAX_VALUE`] bytes).
pub fn bench_local<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>) {
    let mut local: Option<Local<N>> = None;
    g.bench_function("iceoryx2_blackboard_read", |b| {
        let l = local.get_or_insert_with(Local::create);
        b.iter(|| {
            let v = l.read.get();
            black_box(&*v);
        })
    });
    g.bench_function("iceoryx2_blackboard_write", |b| {
        let l = local.get_or_insert_with(Local::create);
        let mut value = Bytes::<N>::pattern(1);
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            value.0[8] = n as u8;
            l.write.update_with_copy(black_box(value));
        })
    });
}

/// A blackboard read in this process while a child process writes its
/// entry nonstop.
struct Contended<const N: usize> {
    /// Declared first: the child has stopped writing and exited before the
    /// blackboard goes.
    hammer: Hammer,
    read: EntryHandle<Ipc, Key, Bytes<N>>,
    _reader: Reader<Ipc, Key>,
    _board: Board,
    _node: Node<Ipc>,
}

impl<const N: usize> Contended<N> {
    /// Start the child, wait until it writes, then count its writes alone
    /// for `alone`.
    fn start(alone: Duration) -> Self {
        let (node, board) = create::<N>(&what::<N>(true));
        let (reader, read) = reader::<N>(&board);
        let ctl = Ctl::new();
        let peer = spawn("board_writer", &[N as i64, ctl.id().into()], None);
        Contended {
            hammer: Hammer::running(ctl, peer, alone),
            read,
            _reader: reader,
            _board: board,
            _node: node,
        }
    }
}

/// The contended row, in the group of `SharedCell::load` contended (values
/// of at most [`MAX_VALUE`] bytes); the writer child's writes per second
/// alone (for `alone`, before any read) and while the reader ran, if
/// measured.
pub fn bench_contended<const N: usize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    alone: Duration,
) -> (Option<f64>, Option<f64>) {
    let mut contended: Option<Contended<N>> = None;
    let mut window = WriterWindow::default();
    g.bench_function("iceoryx2_blackboard_read_contended", |b| {
        let c = contended.get_or_insert_with(|| Contended::start(alone));
        window.mark(&c.hammer.ctl);
        b.iter(|| {
            let v = c.read.get();
            black_box(&*v);
        });
        window.mark(&c.hammer.ctl);
    });
    (contended.map(|c| c.hammer.alone), window.rate())
}

/// The child of [`Contended`]: open the parent's blackboard and write its
/// entry nonstop, a new tag each time, until halted.
pub fn board_writer<const N: usize>(parent: libc::pid_t, ctl: i32) -> ChildResult {
    let ctl = Ctl::attach(ctl)?;
    let node = node()?;
    let board = node
        .service_builder(&service_name(parent, &what::<N>(true))?)
        .blackboard_opener::<Key>()
        .open()?;
    let writer = board.writer_builder().create()?;
    let entry = writer.entry::<Bytes<N>>(&KEY)?;
    let mut value = Bytes::<N>::pattern(0);
    hammer_loop(&ctl, |n| {
        value.set_tag(n);
        entry.update_with_copy(value);
        Ok(())
    })
}
