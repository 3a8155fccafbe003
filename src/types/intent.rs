//! [`Intent`]: what kind of task a request is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of task a request is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Writing, reading or fixing code.
    Code,
    /// Calculation, word problems, proofs.
    Math,
    /// Analysis, argument, planning, multi-step reasoning in prose.
    Reasoning,
    /// Stories, poems, marketing copy.
    Creative,
    /// Extraction, classification and summaries of given text.
    Extraction,
    /// Translation between languages.
    Translation,
    /// Small talk, advice, simple questions.
    Chat,
}

impl Intent {
    /// Every intent, in declaration order.
    pub const ALL: [Intent; 7] = [
        Intent::Code,
        Intent::Math,
        Intent::Reasoning,
        Intent::Creative,
        Intent::Extraction,
        Intent::Translation,
        Intent::Chat,
    ];

    /// The snake-case name used in configs (`"code"`, `"extraction"`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Intent::Code => "code",
            Intent::Math => "math",
            Intent::Reasoning => "reasoning",
            Intent::Creative => "creative",
            Intent::Extraction => "extraction",
            Intent::Translation => "translation",
            Intent::Chat => "chat",
        }
    }
}

impl fmt::Display for Intent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
