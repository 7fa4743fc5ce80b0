//! Text cut to a bound on a character boundary.

use std::fmt;

/// Text cut to at most `.1` bytes on a character boundary, saying how much
/// was left out: for names and texts from the network or user code that a
/// log line, an ack or an error carries.
pub(crate) struct Bounded<'a>(pub(crate) &'a str, pub(crate) usize);

impl fmt::Display for Bounded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Bounded(text, max) = *self;
        if text.len() <= max {
            return f.write_str(text);
        }
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} more bytes)", &text[..end], text.len() - end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary_and_says_how_much_is_left_out() {
        assert_eq!(Bounded("ééé", 3).to_string(), "é… (4 more bytes)");
        assert_eq!(Bounded("ééé", 6).to_string(), "ééé");
    }
}
