//! What an admission hands the caller: the candidate taken and the ticket that holds its
//! reservation until it is settled or dropped.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use crate::limits::CallerLimits;

use super::Limiter;
use crate::catalog::ModelIndex;
use crate::state::{Lease, Settlement};

/// A candidate admitted: which (its position among those offered), its reservation, whether the
/// sticky entry chose it, and the models passed over because their circuit is open elsewhere.
pub(crate) struct Admission {
    pub(crate) position: usize,
    pub(crate) ticket: Ticket,
    pub(crate) sticky: bool,
    pub(crate) blocked: SmallVec<[(ModelIndex, Duration); 2]>,
    /// Where the caller stands against its rate limits, when any applies.
    pub(crate) caller: Option<CallerLimits>,
}

/// What a charge of a lease measures, to settle it with the right actual amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Usd,
    /// A model's requests: one per attempt on it.
    Requests,
    Tokens,
    /// A caller's request: one for the whole request, however many attempts it takes; kept when
    /// the request is cancelled, given back when no model was called.
    Call,
}

impl Role {
    /// What a charge of this role settles to when the ticket is dropped unsettled (the request was
    /// cancelled): nothing, except the caller's request, which was made.
    fn dropped(self) -> f64 {
        match self {
            Self::Call => 1.0,
            Self::Usd | Self::Requests | Self::Tokens => 0.0,
        }
    }
}

/// A reservation held for one model while the request uses it; settled once, or given back when
/// dropped.
pub(crate) struct Ticket {
    pub(super) limiter: Arc<Limiter>,
    pub(super) held: Option<Held>,
    pub(super) roles: SmallVec<[Role; 4]>,
    /// Reserved in the local fallback store rather than the shared one.
    pub(super) local: bool,
    /// Actual use so far (attempts on this model).
    pub(crate) usd: f64,
    pub(crate) tokens: u64,
    pub(crate) requests: u32,
}

/// What a ticket holds: a lease from an admission, or the id of a reservation that an in-process
/// store keeps the charges of ([`MemoryStore::reserve`](crate::state::MemoryStore::reserve)).
#[derive(Debug)]
pub(super) enum Held {
    Lease(Lease),
    Reserved(u64),
}

impl Ticket {
    /// Reconciles the reservation with what the attempts on this model used.
    pub(crate) fn settle(mut self) {
        let Some(held) = self.held.take() else { return };
        let actual: SmallVec<[f64; 4]> = self
            .roles
            .iter()
            .map(|r| match r {
                Role::Usd => self.usd,
                Role::Requests => f64::from(self.requests),
                Role::Tokens => self.tokens as f64,
                Role::Call => f64::from(u8::from(self.requests > 0)),
            })
            .collect();
        match held {
            Held::Lease(lease) => self.limiter.settle(Settlement { lease, actual }, self.local),
            Held::Reserved(id) => self.limiter.settle_reserved(id, &actual),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Not settled: the request was cancelled or ended without a word. Give it all back, except
        // the caller's request (a caller must not dodge its limit by hanging up).
        match self.held.take() {
            Some(Held::Lease(lease)) => {
                let settlement = if self.roles.contains(&Role::Call) {
                    let actual = self.roles.iter().map(|r| r.dropped()).collect();
                    Settlement { lease, actual }
                } else {
                    Settlement::release(lease)
                };
                self.limiter.settle(settlement, self.local);
            }
            Some(Held::Reserved(id)) => {
                let actual: SmallVec<[f64; 4]> = self.roles.iter().map(|r| r.dropped()).collect();
                self.limiter.settle_reserved(id, &actual);
            }
            None => {}
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket").field("held", &self.held).field("local", &self.local).finish_non_exhaustive()
    }
}
