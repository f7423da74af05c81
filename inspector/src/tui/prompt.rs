//! The one-line prompt in the footer (the filter's `/`, the debugger's `B`): a text buffer
//! edited by keys. What the submitted text means is the opener's business (`App`).
//!
//! Editing: characters append at the end (the cursor is always there), Backspace deletes the
//! last character, Enter submits, Esc cancels; other keys are ignored.

use super::input::Key;

/// What the prompt's text is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptKind {
    /// `/`: a filter (`Filter::parse`).
    Filter,
    /// The debugger view's `B`: a breakpoint command (`breakpoint_prompt_command`).
    Breakpoint,
    /// A replay's `g`: a time to jump to (`12s`, `1m20s`, `end`).
    Seek,
}

/// What a key did to the prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptEdit {
    /// Still open (the text may have changed).
    Editing,
    /// Esc: close it, nothing to do.
    Cancelled,
    /// Enter: close it and carry out this text (untrimmed).
    Submitted(String),
}

/// An open prompt. See the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub kind: PromptKind,
    text: String,
}

impl Prompt {
    /// A prompt for `kind` that starts with `text`.
    pub fn new(kind: PromptKind, text: impl Into<String>) -> Prompt {
        Prompt {
            kind,
            text: text.into(),
        }
    }

    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Takes in a key. After `Cancelled` or `Submitted` the caller closes the prompt.
    pub fn edit(&mut self, key: Key) -> PromptEdit {
        match key {
            Key::Esc => return PromptEdit::Cancelled,
            Key::Enter => return PromptEdit::Submitted(std::mem::take(&mut self.text)),
            Key::Backspace => {
                self.text.pop();
            }
            Key::Char(c) => self.text.push(c),
            _ => {}
        }
        PromptEdit::Editing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_edit_submit_and_cancel() {
        let mut p = Prompt::new(PromptKind::Filter, "pid:7");
        assert_eq!(p.edit(Key::Backspace), PromptEdit::Editing);
        assert_eq!(p.edit(Key::Char('9')), PromptEdit::Editing);
        assert_eq!(p.edit(Key::Left), PromptEdit::Editing, "ignored");
        assert_eq!(p.text(), "pid:9");
        assert_eq!(p.edit(Key::Enter), PromptEdit::Submitted("pid:9".into()));
        let mut p = Prompt::new(PromptKind::Breakpoint, "");
        assert_eq!(p.edit(Key::Backspace), PromptEdit::Editing);
        assert_eq!(
            p.edit(Key::Char('q')),
            PromptEdit::Editing,
            "typed, not a command"
        );
        assert_eq!(p.edit(Key::Esc), PromptEdit::Cancelled);
    }
}
