//! Plain text typed by a person (notes, journal entries, reasons), parsed once at the edge.
//!
//! Trimmed, not empty, at most `max` characters (characters, not bytes, so text in another script
//! is not cut short), and no control characters other than line breaks where lines are allowed.
//! A browser sends a textarea's line breaks as CR LF; they are kept as LF so the stored text is
//! the same whichever client wrote it.

use crate::FieldError;

/// Parses `raw` as plain text; `field` names the input in an error.
pub fn plain(field: &'static str, raw: &str, max: usize, multiline: bool) -> Result<String, FieldError> {
    let text = raw.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "write something here"));
    }
    if text.chars().count() > max {
        return Err(FieldError::new(field, format!("use at most {max} characters")));
    }
    if text.chars().any(|c| c.is_control() && !(multiline && c == '\n')) {
        let allowed = if multiline { " other than line breaks" } else { "" };
        return Err(FieldError::new(field, format!("use plain text (no control characters{allowed})")));
    }
    Ok(text.to_owned())
}

/// Like [`plain`], but an empty input is "not given" rather than an error.
pub fn optional(field: &'static str, raw: &str, max: usize, multiline: bool) -> Result<Option<String>, FieldError> {
    if raw.trim().is_empty() { Ok(None) } else { plain(field, raw, max, multiline).map(Some) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_with_line_breaks_normalised() {
        assert_eq!(plain("t", "  a\r\nb\rc  ", 10, true), Ok("a\nb\nc".to_owned()));
        assert_eq!(plain("t", "  ", 10, true).map_err(|e| e.field), Err("t"));
        assert!(plain("t", "a\nb", 10, false).is_err(), "one line only");
        assert!(plain("t", "tab\there", 20, true).is_err());
        assert!(plain("t", &"é".repeat(10), 10, false).is_ok(), "characters, not bytes");
        assert!(plain("t", &"x".repeat(11), 10, false).is_err_and(|e| e.message.contains("10")));
        assert_eq!(optional("t", "   ", 10, false), Ok(None));
        assert_eq!(optional("t", " x ", 10, false), Ok(Some("x".to_owned())));
        assert!(optional("t", "\u{7}", 10, false).is_err());
    }
}
