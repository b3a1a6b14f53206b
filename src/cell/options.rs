//! How a cell is opened or created: [`CellOpener`] and [`CellCreator`], the
//! shared [`Options`] with what only a cell has (its number of slots, for a
//! creation).

use bytemuck::Pod;

use super::{SharedCell, init};
use crate::error::{Error, Result};
use crate::format::{Kind, Layout, MAX_SLOTS, TypeDesc};
use crate::key::Key;
use crate::store::{Access, Common, Create, Flavor, Open, Options, ReadWrite, Store};

/// The slots of a new cell unless [`CellCreator::slots`] says otherwise.
pub const DEFAULT_CELL_SLOTS: usize = 4;

/// What only a cell's builders have: the number of slots of a created cell.
#[derive(Debug, Clone)]
pub struct CellSettings {
    slots: usize,
}

impl Default for CellSettings {
    fn default() -> Self {
        CellSettings {
            slots: DEFAULT_CELL_SLOTS,
        }
    }
}

/// How to open an existing [`SharedCell`] with access `A`: timeouts, owner
/// checks and the type's identity ([`Options`]), and for a read-write
/// handle removal on drop. Made by [`SharedCell::opener`].
pub type CellOpener<T, A = ReadWrite> = Options<T, CellSettings, Open<A>>;

/// How to create a [`SharedCell`]: what an opener has, and the mode, the
/// group, removal on drop and the number of slots. Made by
/// [`SharedCell::creator`].
pub type CellCreator<T> = Options<T, CellSettings, Create>;

impl<T: Pod> Flavor<T> for CellSettings {
    type Handle<A: Access> = SharedCell<T, A>;

    fn type_desc(common: &Common) -> Result<TypeDesc> {
        common.type_desc::<T>(Kind::Cell, size_of::<T>(), align_of::<T>(), 0)
    }

    fn handle<A: Access>(store: Store, _: &CellSettings) -> SharedCell<T, A> {
        SharedCell::wrap(store)
    }
}

/// What only a cell's creation has.
impl<T: Pod> Options<T, CellSettings, Create> {
    /// The number of slots a created cell keeps the value in: a power of two
    /// from 2 to 64, [`DEFAULT_CELL_SLOTS`] by default. A reader's copy
    /// survives `slots - 1` commits made while it copies, so more slots help
    /// readers of large values keep up with a writer that never pauses; each
    /// costs one more `size_of::<T>()` of shared memory. Opening an existing
    /// cell takes the count it was created with.
    pub fn slots(&mut self, n: usize) -> &mut Self {
        self.kind.slots = n;
        self
    }

    fn layout(&self) -> Result<Layout> {
        cell_layout(
            size_of::<T>(),
            align_of::<T>(),
            self.kind.slots,
            self.common.schema_len(),
        )
    }

    /// Create the cell at `key` holding `initial`; fails with
    /// [`Error::AlreadyExists`] if the key is taken.
    pub fn create(&self, key: Key, initial: T) -> Result<SharedCell<T>> {
        let ty = <CellSettings as Flavor<T>>::type_desc(&self.common)?;
        let store = Store::create(key, &self.common, &ty, &self.layout()?, |store| {
            init(store, &initial);
            Ok(())
        })?;
        Ok(SharedCell::wrap(store))
    }

    /// Open the cell at `key`, or create it holding `initial`; if `key`
    /// reaches a shmstore object of another type (a new release of the
    /// program that made it), remove that one and create this one. Processes
    /// attached to the old object learn it: their waits return
    /// [`Error::Removed`].
    pub fn open_or_replace(&self, key: Key, initial: T) -> Result<SharedCell<T>> {
        let ty = <CellSettings as Flavor<T>>::type_desc(&self.common)?;
        let store = Store::open_or_replace(key, &self.common, &ty, &self.layout()?, |store| {
            init(store, &initial);
            Ok(())
        })?;
        Ok(SharedCell::wrap(store))
    }

    /// Open the cell at `key`, or create it holding `initial`.
    pub fn open_or_create(&self, key: Key, initial: T) -> Result<SharedCell<T>> {
        let ty = <CellSettings as Flavor<T>>::type_desc(&self.common)?;
        let store = Store::open_or_create(key, &self.common, &ty, &self.layout()?, |store| {
            init(store, &initial);
            Ok(())
        })?;
        Ok(SharedCell::wrap(store))
    }
}

/// The layout of a created cell of values of `size` bytes aligned to
/// `align` in `slots` slots (a power of two from 2 to 64), after a schema
/// of `schema_len` bytes: for typed and raw handles alike.
pub(crate) fn cell_layout(
    size: usize,
    align: usize,
    slots: usize,
    schema_len: usize,
) -> Result<Layout> {
    if !(2..=MAX_SLOTS as usize).contains(&slots) || !slots.is_power_of_two() {
        return Err(Error::InvalidLayout {
            reason: format!("{slots} slots; a cell has a power of two from 2 to {MAX_SLOTS}"),
        });
    }
    Layout::for_value(size, align, slots, schema_len)
}
