//! A shard's scratch buffer: one 64 KiB buffer that readers lend for the
//! length of one poll, so that a read can take whatever is there without
//! each connection keeping a buffer that size. The opaque pumps read into
//! it, and so does h2's adapter.

use std::cell::{RefCell, RefMut};
use std::rc::Rc;

/// How much one read into the scratch buffer can take.
const SCRATCH_BYTES: usize = 64 * 1024;

/// A handle on the shard's scratch buffer; clones share it.
#[derive(Clone)]
pub struct Scratch(Rc<RefCell<Box<[u8]>>>);

impl Scratch {
    pub fn new() -> Scratch {
        Scratch(Rc::new(RefCell::new(
            vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
        )))
    }

    /// The buffer, for one poll: never held across an await.
    pub fn borrow_mut(&self) -> RefMut<'_, Box<[u8]>> {
        self.0.borrow_mut()
    }
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch::new()
    }
}
