//! [`Capabilities`]: what a model offers and a request needs.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde::{Deserialize, Serialize};

/// A set of capabilities a model offers or a request needs.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capability.
    pub const NONE: Self = Self(0);
    /// Tool (function) calling.
    pub const TOOLS: Self = Self(1);
    /// Image inputs.
    pub const VISION: Self = Self(1 << 1);
    /// A JSON response format (JSON mode or a JSON schema).
    pub const JSON: Self = Self(1 << 2);
    /// Streaming responses.
    pub const STREAMING: Self = Self(1 << 3);
    /// Built-in reasoning (thinking) tokens.
    pub const REASONING: Self = Self(1 << 4);
    /// Every capability above.
    pub const ALL: Self = Self(0b1_1111);

    const NAMES: [(Self, &'static str); 5] = [
        (Self::TOOLS, "tools"),
        (Self::VISION, "vision"),
        (Self::JSON, "json"),
        (Self::STREAMING, "streaming"),
        (Self::REASONING, "reasoning"),
    ];

    /// Whether every capability in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The capabilities in `self` that are not in `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The capabilities in `self` or in `other` (`|` in a `const` context).
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capability named `name` (`"tools"`, `"vision"`, `"json"`, `"streaming"`, `"reasoning"`).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// The names of the capabilities in the set.
    pub(crate) fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.into_iter().filter(move |(c, _)| self.contains(*c)).map(|(_, n)| n)
    }
}

impl BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for n in self.names() {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(n)?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl Serialize for Capabilities {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut caps = Self::NONE;
        for name in &names {
            caps |= Self::from_name(name).ok_or_else(|| {
                serde::de::Error::custom(format_args!(
                    "unknown capability `{name}`, expected one of tools, vision, json, streaming, reasoning"
                ))
            })?;
        }
        Ok(caps)
    }
}
