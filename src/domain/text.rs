//! Quoting text the relay does not control (frames, values, venue error
//! messages) in logs and error messages: cut to a few hundred bytes, so a
//! 5 MB value never becomes a 5 MB log line.

/// How much of an offending value (a frame, a string, an error text) logs
/// and error messages quote.
pub const CLIP: usize = 300;

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// `s` cut to [`CLIP`] bytes, with `…(N bytes)` appended when it was cut.
pub fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= CLIP {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(format!("{}…({} bytes)", truncate(s, CLIP), s.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_clipped_on_character_boundaries() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(1000);
        let c = clip(&long);
        assert!(c.len() < CLIP + 30, "{}", c.len());
        assert!(c.ends_with("…(2000 bytes)"), "{c}");
        assert_eq!(truncate("aé", 2), "a");
    }
}
