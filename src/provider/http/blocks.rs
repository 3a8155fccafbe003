//! Tool calls streamed as indexed content blocks (Anthropic's Messages API, Bedrock's ConverseStream):
//! a block starts with the call's id and name, its arguments arrive as JSON fragments, and the call is
//! whole at the block's end.

use crate::error::{Error, Result};
use crate::request::ToolCall;

/// The most content blocks one streamed message may have.
const MAX_BLOCKS: usize = 1024;

/// `index` if it is within [`MAX_BLOCKS`]; else a decode error naming `provider`.
pub(crate) fn block_index(provider: &str, index: usize) -> Result<usize> {
    if index < MAX_BLOCKS {
        Ok(index)
    } else {
        Err(Error::decode(format!(
            "provider `{provider}` streamed content block {index}, over the limit of {MAX_BLOCKS}"
        )))
    }
}

struct Open {
    id: String,
    name: String,
    json: String,
}

/// The tool-call blocks of one streamed message that have started and not yet stopped.
#[derive(Default)]
pub(crate) struct ToolBlocks {
    open: Vec<Option<Open>>,
}

impl ToolBlocks {
    /// A tool call starts at block `index` (from [`block_index`]), with `json` as its first
    /// arguments (usually empty).
    pub(crate) fn start(&mut self, index: usize, id: String, name: String, json: String) {
        if index >= MAX_BLOCKS {
            return;
        }
        if self.open.len() <= index {
            self.open.resize_with(index + 1, || None);
        }
        self.open[index] = Some(Open { id, name, json });
    }

    /// More of the arguments of the call at block `index`; nothing if no call is open there.
    pub(crate) fn append(&mut self, index: usize, fragment: &str) {
        if let Some(Some(call)) = self.open.get_mut(index) {
            call.json.push_str(fragment);
        }
    }

    /// The call at block `index`, whole, if one was open there (arguments `{}` when none came).
    pub(crate) fn stop(&mut self, index: usize) -> Option<ToolCall> {
        let call = self.open.get_mut(index).and_then(Option::take)?;
        let json = if call.json.trim().is_empty() { "{}".to_owned() } else { call.json };
        Some(ToolCall::new(call.id, call.name, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_assembled_per_block_and_bounded() {
        let mut blocks = ToolBlocks::default();
        blocks.start(2, "t1".into(), "f".into(), String::new());
        blocks.append(2, "{\"a\":");
        blocks.append(1, "ignored");
        blocks.append(2, "1}");
        assert_eq!(blocks.stop(1), None);
        assert_eq!(blocks.stop(2), Some(ToolCall::new("t1", "f", "{\"a\":1}")));
        assert_eq!(blocks.stop(2), None, "a stopped call is gone");
        blocks.start(0, "t2".into(), "g".into(), "  ".into());
        assert_eq!(blocks.stop(0), Some(ToolCall::new("t2", "g", "{}")));
        assert!(block_index("p", MAX_BLOCKS - 1).is_ok());
        assert!(block_index("p", MAX_BLOCKS).expect_err("over").to_string().contains("content block 1024"));
        blocks.start(MAX_BLOCKS, "t3".into(), "h".into(), String::new());
        assert!(blocks.open.len() <= MAX_BLOCKS);
    }
}
