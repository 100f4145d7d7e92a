//! Stop sequences, enforced by agm rather than by Google.
//!
//! Gemini takes `stopSequences`, but when one of them ends an answer it reports
//! `finishReason: STOP` and leaves the matched text out, so a gateway that forwards
//! them cannot tell a stop sequence from the model's own end, nor which sequence it was.
//! Anthropic's `stop_reason: "stop_sequence"` with `stop_sequence: "<matched>"` needs
//! both. So the translators do **not** send the client's stop sequences upstream:
//! [`StopScanner`] watches the visible answer text as it streams, cuts it before the
//! first match, and the transcoder ends the answer there. The price is that Google
//! keeps generating past the match until the caller drops the stream (streams: at
//! once, see [`Transcoder::finished`](crate::common::Transcoder::finished); whole answers: only after Google
//! finished it), and the usage reported is what Google generated.
//!
//! Only visible text is scanned: thoughts and tool calls never match. A tool call or a
//! shown thought ends the text before it, so no match spans one.
//!
//! "First match" means the match that is complete earliest in the text (the model
//! would have stopped there), and of those ending at the same place the one that
//! starts first. The answer does not depend on how the text is cut into chunks.

use crate::common::request::stop_sequences;

/// The client's stop sequences, matched against the visible answer text as it
/// streams in.
///
/// It holds back the tail of the text that could still be the start of a stop
/// sequence (at most the longest sequence's length minus one byte), so that a sequence
/// split across chunks is still caught and never reaches the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StopScanner {
    stops: Vec<String>,
    /// Text not passed on yet: the longest tail that is a proper prefix of a sequence.
    held: String,
}

/// What scanning a piece of text found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The text to pass on now.
    pub text: String,
    /// The stop sequence that ended the answer; `text` is then all the text before it,
    /// and nothing more may be passed on.
    pub stop: Option<String>,
}

impl StopScanner {
    /// A scanner for these sequences (empty ones dropped, repeats ignored).
    pub fn new<'a>(stops: impl IntoIterator<Item = &'a str>) -> StopScanner {
        StopScanner {
            stops: stop_sequences(stops),
            held: String::new(),
        }
    }

    /// Scans the next piece of visible text.
    pub fn push(&mut self, text: &str) -> Scan {
        if self.stops.is_empty() {
            return Scan {
                text: text.to_owned(),
                stop: None,
            };
        }
        let mut buffer = std::mem::take(&mut self.held);
        buffer.push_str(text);
        // (end, start, sequence) of the match completed first.
        let mut first: Option<(usize, usize, &str)> = None;
        for stop in &self.stops {
            if let Some(start) = buffer.find(stop.as_str()) {
                let end = start + stop.len();
                if first.is_none_or(|(e, s, _)| (end, start) < (e, s)) {
                    first = Some((end, start, stop));
                }
            }
        }
        if let Some((_, start, stop)) = first {
            let stop = stop.to_owned();
            buffer.truncate(start);
            return Scan {
                text: buffer,
                stop: Some(stop),
            };
        }
        let keep = self.partial_tail(&buffer);
        self.held = buffer.split_off(buffer.len() - keep);
        Scan {
            text: buffer,
            stop: None,
        }
    }

    /// The held-back text, released: the text ended (a tool call or a thought follows,
    /// or the answer ended) without completing a stop sequence.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The length in bytes of the longest tail of `text` that a stop sequence starts
    /// with (and is longer than).
    fn partial_tail(&self, text: &str) -> usize {
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = text.len().saturating_sub(longest.saturating_sub(1));
        while from < text.len() {
            if text.is_char_boundary(from) {
                let tail = &text[from..];
                if self
                    .stops
                    .iter()
                    .any(|s| s.len() > tail.len() && s.starts_with(tail))
                {
                    return tail.len();
                }
            }
            from += 1;
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `pieces` through a scanner: the text passed on and the stop sequence hit.
    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let mut scanner = StopScanner::new(stops.iter().copied());
        let mut out = String::new();
        for piece in pieces {
            let scan = scanner.push(piece);
            out.push_str(&scan.text);
            if scan.stop.is_some() {
                return (out, scan.stop);
            }
        }
        out.push_str(&scanner.flush());
        (out, None)
    }

    #[test]
    fn a_match_inside_one_piece_cuts_there() {
        assert_eq!(
            run(&["\n\nHuman:"], &["Hello.\n\nHuman: more"]),
            ("Hello.".to_owned(), Some("\n\nHuman:".to_owned()))
        );
    }

    #[test]
    fn a_match_split_across_pieces_is_caught_and_never_leaks() {
        let mut scanner = StopScanner::new(["END"]);
        assert_eq!(scanner.push("abc E").text, "abc ");
        assert_eq!(scanner.push("N").text, "");
        let scan = scanner.push("D tail");
        assert_eq!(
            (scan.text.as_str(), scan.stop.as_deref()),
            ("", Some("END"))
        );
    }

    #[test]
    fn held_text_that_goes_nowhere_is_released() {
        let mut scanner = StopScanner::new(["END"]);
        assert_eq!(scanner.push("abc EN").text, "abc ");
        assert_eq!(scanner.push("X").text, "ENX");
        assert_eq!(scanner.push("E").text, "");
        assert_eq!(scanner.flush(), "E");
        assert_eq!(scanner.flush(), "");
    }

    #[test]
    fn no_sequences_pass_everything_at_once() {
        let mut scanner = StopScanner::new(["", ""]);
        assert_eq!(
            scanner.push("END"),
            Scan {
                text: "END".into(),
                stop: None
            }
        );
    }

    #[test]
    fn the_earliest_match_wins() {
        assert_eq!(
            run(&["zzz", "b", "ab"], &["xxabzzz"]),
            ("xx".to_owned(), Some("ab".to_owned())),
            "`b` and `ab` end together: the one starting first"
        );
        assert_eq!(
            run(&["abcd", "c"], &["ab", "cd"]),
            ("ab".to_owned(), Some("c".to_owned())),
            "`c` is complete before `abcd` is"
        );
        assert_eq!(
            run(&["two", "one"], &["one two"]),
            (String::new(), Some("one".to_owned()))
        );
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        assert_eq!(
            run(&["éé!"], &["café", "é", "é", "!"]),
            ("café".to_owned(), Some("éé!".to_owned()))
        );
        assert_eq!(run(&["日本"], &["今日", "は"]), ("今日は".to_owned(), None));
    }

    proptest! {
        /// However the text is cut, the same text reaches the client and the same
        /// sequence ends it; nothing of a sequence ever leaks.
        #[test]
        fn any_cutting_gives_the_same_answer(
            pieces in proptest::collection::vec("[abc ]{0,8}", 0..6),
            stops in proptest::collection::vec("[abc]{1,4}", 0..4),
        ) {
            let stops: Vec<&str> = stops.iter().map(String::as_str).collect();
            let text = pieces.concat();
            let whole = run(&stops, &[&text]);
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            prop_assert_eq!(&run(&stops, &pieces), &whole);
            if let Some(stop) = &whole.1 {
                prop_assert!(text[whole.0.len()..].starts_with(stop.as_str()));
                prop_assert!(stops.iter().all(|s| !whole.0.contains(s)));
            } else {
                prop_assert_eq!(&whole.0, &text);
            }
        }
    }
}
