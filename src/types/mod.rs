//! The vocabulary every stage shares: names ([`ModelId`], [`ProviderId`], [`ModelIndex`],
//! [`DecisionId`]), [`Capabilities`], [`Intent`], [`ErrorKind`], and the records errors and
//! responses carry ([`Attempt`], [`Inadequacy`], [`Rejection`]).
//!
//! This module imports nothing else of the crate, so that every stage can import it without a
//! cycle. Its types are re-exported at the crate root and by the stage that produces them
//! (`catalog::ModelId`, `policy::Rejection`, ...).

mod attempt;
mod caller_limits;
mod capabilities;
mod feedback;
mod ids;
mod intent;
mod kind;
pub(crate) mod millis;
mod rejection;

pub use self::attempt::{Attempt, AttemptOutcome, AttemptReason, Inadequacy};
pub use self::caller_limits::{CallerLimits, LimitRoom};
pub use self::capabilities::Capabilities;
pub use self::feedback::Feedback;
pub use self::ids::{DecisionId, ModelId, ModelIndex, ProviderId};
pub use self::intent::Intent;
pub use self::kind::ErrorKind;
pub use self::rejection::{RejectReason, Rejection};
