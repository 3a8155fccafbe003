//! The store a limiter keeps its counters in, told apart once, when the router is built.
//!
//! [`StateStore`] has async methods only. The router's own [`MemoryStore`] also admits and settles
//! without I/O, and that is the fast path of in-process budgets: a request's first choice reserved
//! straight into the store's counters and settled by lease id, full admissions made without a
//! timeout or a boxed future, settlements applied at once rather than sent with the next admission.
//! Those are inherent `pub(crate)` methods of `MemoryStore`, so the limiter must hold the store as
//! a `MemoryStore` to use them: [`Store::Memory`]. Any other store, a user's own included, is
//! [`Store::Shared`] and goes through the trait alone, as a shared store must.
//!
//! The builder hands the limiter an `Arc<dyn StateStore>` (the store set with
//! [`RouterBuilder::state_store`](crate::RouterBuilder::state_store) or `state_store_arc`, or a
//! `MemoryStore` of its own). A setter generic over the store's type could tell a `MemoryStore`
//! from its type, but not one that reaches it already behind `Arc<dyn StateStore>`, as
//! `state_store_arc` takes it and as several routers sharing one store hold it; such a store would
//! lose the fast path without a word. So the store is recognised from the trait object itself,
//! through a sealed supertrait of `StateStore` that every `Send + Sync + 'static` type implements
//! (it asks nothing of an implementation, and none can override it) and that converts an
//! `Arc<dyn StateStore>` into `Arc<dyn Any>` to downcast ([`memory_store`]). With trait upcasting
//! (Rust 1.86, above this crate's minimum) an `Any` supertrait would do the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
use crate::state::{Admit, Admitted, Counter, MemoryStore, StateStore, memory_store};

/// A limiter's store: its own kind of in-process store, or any other.
pub(super) enum Store {
    /// A [`MemoryStore`]: admitted and settled synchronously, first choices reserved directly.
    Memory(Arc<MemoryStore>),
    /// Any other store, shared by replicas or not, through [`StateStore`]'s methods alone.
    Shared(Arc<dyn StateStore>),
}

impl Store {
    /// `store` as a [`Store::Memory`] when it is a [`MemoryStore`] (or an `Arc` of one).
    pub(super) fn new(store: Arc<dyn StateStore>) -> Self {
        match memory_store(&store) {
            Some(memory) => Self::Memory(memory),
            None => Self::Shared(store),
        }
    }

    /// The in-process store, when it is one.
    pub(super) fn memory(&self) -> Option<&MemoryStore> {
        match self {
            Self::Memory(memory) => Some(memory),
            Self::Shared(_) => None,
        }
    }

    /// The store's name, for logs and errors.
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Memory(memory) => StateStore::name(&**memory),
            Self::Shared(store) => store.name(),
        }
    }

    /// [`StateStore::admit`]. A boxed future, as the trait's: a future of this call is held across
    /// an `await` by every request's future, which stays as small as it was.
    pub(super) fn admit<'a>(&'a self, admit: &'a Admit) -> Boxed<'a, Result<Admitted>> {
        match self {
            Self::Memory(memory) => Box::pin(async move { memory.admit_now(admit) }),
            Self::Shared(store) => store.admit(admit),
        }
    }

    /// [`StateStore::read`].
    pub(super) fn read<'a>(&'a self, counters: &'a [Counter]) -> Boxed<'a, Result<Vec<f64>>> {
        match self {
            Self::Memory(memory) => Box::pin(async move { Ok(memory.read_now(counters)) }),
            Self::Shared(store) => store.read(counters),
        }
    }
}

/// A future as [`StateStore`]'s methods return it.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
