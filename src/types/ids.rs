//! Names: [`ModelId`], [`ProviderId`], [`ModelIndex`] and [`DecisionId`].

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a name. Cloning is a reference-count increment.
            pub fn new(name: impl AsRef<str>) -> Self {
                Self(Arc::from(name.as_ref()))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// The id of a model in the catalog, as the router and its users name it (`"gpt-4o-mini"`).
    ModelId
);
id_type!(
    /// The name of a registered [`Provider`](crate::Provider) (`"openai"`, `"simulated"`).
    ProviderId
);

/// The index of a model in its [`Catalog`](crate::Catalog), stable for the catalog's lifetime.
pub type ModelIndex = usize;

/// Identifies a decision for [`Router::feedback`](crate::Router::feedback). Unique within one router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DecisionId(pub(crate) u64);

impl DecisionId {
    /// The id as a number (for logs and storage).
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id from a number produced by [`get`](Self::get).
    pub fn from_u64(id: u64) -> Self {
        Self(id)
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}
