//! The filter on allocations, events and leak reports: parsed from the `/` prompt's text,
//! matched against an owner, a tag and the owner's process name.

/// A filter on allocations and events, parsed from the `/` prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `pid:N`: owner is N.
    Pid(u32),
    /// `tag:T`: tag equals T (case-insensitive).
    Tag(String),
    /// Anything else: case-insensitive substring of the tag or the owner's process name.
    Text(String),
}

impl Filter {
    /// Parses prompt text. `Ok(None)` for empty text (clears the filter); `Err` names the problem.
    pub fn parse(text: &str) -> Result<Option<Filter>, String> {
        let t = text.trim();
        if t.is_empty() {
            return Ok(None);
        }
        if let Some(p) = t.strip_prefix("pid:") {
            return p
                .trim()
                .parse::<u32>()
                .map(|n| Some(Filter::Pid(n)))
                .map_err(|_| format!("not a pid: {:?} (try pid:7)", p.trim()));
        }
        if let Some(tag) = t.strip_prefix("tag:") {
            let tag = tag.trim();
            if tag.is_empty() {
                return Err("empty tag (try tag:heap)".into());
            }
            return Ok(Some(Filter::Tag(tag.to_lowercase())));
        }
        Ok(Some(Filter::Text(t.to_lowercase())))
    }

    /// Whether an allocation or event of `owner` with `tag` passes; `name` is the owner's
    /// process name when known.
    pub fn matches(&self, owner: u32, tag: &str, name: Option<&str>) -> bool {
        match self {
            Filter::Pid(p) => owner == *p,
            Filter::Tag(t) => tag.eq_ignore_ascii_case(t),
            Filter::Text(s) => {
                tag.to_lowercase().contains(s) || name.is_some_and(|n| n.to_lowercase().contains(s))
            }
        }
    }

    /// The filter as prompt text (what `parse` reads back).
    pub fn label(&self) -> String {
        match self {
            Filter::Pid(p) => format!("pid:{p}"),
            Filter::Tag(t) => format!("tag:{t}"),
            Filter::Text(s) => s.clone(),
        }
    }
}
