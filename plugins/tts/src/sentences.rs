//! Splits the input into sentences, each synthesised and sent on its own so the first audio
//! arrives early; a sentence longer than [`MAX_CHARS`] is cut at a space before it.

/// The longest piece synthesised at once, in characters.
pub const MAX_CHARS: usize = 300;

/// The sentences of `text`: cut after `.`, `!`, `?`, `;` or `:` followed by white space, and at
/// line breaks; trimmed, empty ones dropped, long ones cut at spaces (or anywhere, when a piece
/// has none) into pieces of at most `max_chars` characters.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let breaks = match c {
            '\n' | '\r' => true,
            '.' | '!' | '?' | ';' | ':' => chars.peek().is_none_or(|next| next.is_whitespace()),
            _ => false,
        };
        current.push(c);
        if breaks {
            push_pieces(&mut sentences, &current, max_chars);
            current.clear();
        }
    }
    push_pieces(&mut sentences, &current, max_chars);
    sentences
}

/// Pushes `sentence`, trimmed, cut into pieces of at most `max_chars` characters.
fn push_pieces(out: &mut Vec<String>, sentence: &str, max_chars: usize) {
    let mut rest = sentence.trim();
    while rest.chars().count() > max_chars {
        let limit = rest
            .char_indices()
            .nth(max_chars)
            .map_or(rest.len(), |(at, _)| at);
        let cut = rest[..limit]
            .rfind(char::is_whitespace)
            .filter(|&at| at > 0)
            .unwrap_or(limit);
        out.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_at_their_ends_and_lines() {
        assert_eq!(
            split(
                "Hello there. How are you?I am fine!\nNew line; more: end",
                300
            ),
            [
                "Hello there.",
                "How are you?I am fine!",
                "New line;",
                "more:",
                "end"
            ]
        );
        assert_eq!(split("Pi is 3.14 roughly.", 300), ["Pi is 3.14 roughly."]);
        assert!(split("  \n ", 300).is_empty());
    }

    #[test]
    fn long_sentences_are_cut_at_spaces() {
        assert_eq!(split("aaa bbb ccc ddd", 8), ["aaa bbb", "ccc ddd"]);
        assert_eq!(split("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(split("éééé éé", 5), ["éééé", "éé"]);
    }
}
