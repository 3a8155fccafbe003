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
    /// The arguments came whole with the start; fragments that follow replace them.
    from_start: bool,
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
        let from_start = !json.trim().is_empty();
        self.open[index] = Some(Open { id, name, json, from_start });
    }

    /// More of the arguments of the call at block `index`; nothing if no call is open there. The
    /// first fragment replaces arguments that came with the start, rather than adding a second JSON
    /// value to them.
    pub(crate) fn append(&mut self, index: usize, fragment: &str) {
        if let Some(Some(call)) = self.open.get_mut(index) {
            if !fragment.trim().is_empty() && std::mem::take(&mut call.from_start) {
                call.json.clear();
            }
            call.json.push_str(fragment);
        }
    }

    /// At the message's end: a decode error naming `provider` when a call has started and not
    /// stopped (its arguments may be cut short), so that no call is dropped or sent on half-written.
    pub(crate) fn check_all_stopped(&self, provider: &str) -> Result<()> {
        match self.open.iter().position(Option::is_some) {
            Some(index) => Err(Error::decode(format!(
                "provider `{provider}` ended its message with the tool call of content block {index} unfinished"
            ))),
            None => Ok(()),
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
        // Arguments that came whole with the start are replaced by fragments, not glued to them.
        blocks.start(3, "t4".into(), "k".into(), "{\"x\":1}".into());
        assert_eq!(blocks.stop(3), Some(ToolCall::new("t4", "k", "{\"x\":1}")));
        blocks.start(3, "t5".into(), "k".into(), "{\"x\":1}".into());
        blocks.append(3, "");
        assert_eq!(blocks.stop(3), Some(ToolCall::new("t5", "k", "{\"x\":1}")), "an empty fragment keeps them");
        blocks.start(3, "t5".into(), "k".into(), "{\"x\":1}".into());
        blocks.append(3, "");
        blocks.append(3, "{\"x\":");
        blocks.append(3, "2}");
        assert_eq!(blocks.stop(3), Some(ToolCall::new("t5", "k", "{\"x\":2}")));
        // A call still open at the end is an error, not a silent loss.
        assert!(blocks.check_all_stopped("p").is_ok());
        blocks.start(5, "t6".into(), "k".into(), String::new());
        let e = blocks.check_all_stopped("p").expect_err("open").to_string();
        assert!(e.contains("content block 5 unfinished"), "{e}");
    }
}
