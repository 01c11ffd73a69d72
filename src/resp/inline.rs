//! Splitting an inline request line into arguments, exactly as Redis's `sdssplitargs` does.
//!
//! Blanks separate arguments. `"..."` takes the escapes `\n \r \t \b \a \\ \" \xHH` (any other `\c` is `c`);
//! `'...'` takes only `\'`. A closing quote must be followed by a blank or the end of the line, and a quote may
//! open in the middle of a word (`a"b c"` is `ab c`). As in C, a NUL byte ends the line. Unquoted words are
//! zero-copy slices of the line; quoted ones are copied.

use bytes::Bytes;

use super::error::ProtocolError;

/// Splits `line` (without its line ending) into arguments.
pub(crate) fn split_args(line: &Bytes) -> Result<Vec<Bytes>, ProtocolError> {
    let text = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => &line[..],
    };
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < text.len() && is_space(text[p]) {
            p += 1;
        }
        if p == text.len() {
            return Ok(args);
        }
        let start = p;
        loop {
            match at(text, p) {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                    args.push(line.slice(start..p));
                    break;
                }
                quote @ (b'"' | b'\'') => {
                    let mut word = text[start..p].to_vec();
                    p = if quote == b'"' {
                        double_quoted(text, p + 1, &mut word)?
                    } else {
                        single_quoted(text, p + 1, &mut word)?
                    };
                    args.push(Bytes::from(word));
                    break;
                }
                _ => p += 1,
            }
        }
    }
}

/// The byte at `i`, or NUL past the end (the C string's terminator).
fn at(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The value of a hex digit, if `b` is one.
fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// After a closing quote at `p`: the position after it, if a blank or the end follows.
fn close_quote(text: &[u8], p: usize) -> Result<usize, ProtocolError> {
    let next = at(text, p + 1);
    if next != 0 && !is_space(next) {
        return Err(ProtocolError::UnbalancedQuotes);
    }
    Ok(p + 1)
}

/// Reads a double-quoted word from `p` (after the opening quote) into `word`; returns the position after it.
fn double_quoted(text: &[u8], mut p: usize, word: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        match at(text, p) {
            b'\\' if at(text, p + 1) == b'x' => {
                if let (Some(hi), Some(lo)) = (hex_value(at(text, p + 2)), hex_value(at(text, p + 3))) {
                    word.push(hi * 16 + lo);
                    p += 4;
                } else {
                    word.push(b'x');
                    p += 2;
                }
            }
            b'\\' if at(text, p + 1) != 0 => {
                word.push(match at(text, p + 1) {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                p += 2;
            }
            b'"' => return close_quote(text, p),
            0 => return Err(ProtocolError::UnbalancedQuotes),
            other => {
                word.push(other);
                p += 1;
            }
        }
    }
}

/// Reads a single-quoted word from `p` (after the opening quote) into `word`; returns the position after it.
fn single_quoted(text: &[u8], mut p: usize, word: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        match at(text, p) {
            b'\\' if at(text, p + 1) == b'\'' => {
                word.push(b'\'');
                p += 2;
            }
            b'\'' => return close_quote(text, p),
            0 => return Err(ProtocolError::UnbalancedQuotes),
            other => {
                word.push(other);
                p += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        split_args(&Bytes::copy_from_slice(line)).map(|args| args.into_iter().map(|a| a.to_vec()).collect())
    }

    fn words(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|w| w.to_vec()).collect()
    }

    #[test]
    fn blanks_separate_words() {
        assert_eq!(split(b"SET a b").unwrap(), words(&[b"SET", b"a", b"b"]));
        assert_eq!(split(b"  PING \t ").unwrap(), words(&[b"PING"]));
        assert_eq!(split(b"").unwrap(), words(&[]));
        assert_eq!(split(b"   ").unwrap(), words(&[]));
        assert_eq!(split(b"a\x0bb").unwrap(), words(&[b"a\x0bb"]), "\\v separates only as a leading blank");
    }

    #[test]
    fn double_quotes_take_escapes() {
        assert_eq!(split(br#"SET a "b c""#).unwrap(), words(&[b"SET", b"a", b"b c"]));
        assert_eq!(split(br#""\n\r\t\b\a\\\"\x41\q""#).unwrap(), words(&[b"\n\r\t\x08\x07\\\"Aq"]));
        assert_eq!(split(br#""\x4""#).unwrap(), words(&[b"x4"]), "a bad \\x escape keeps the x");
        assert_eq!(split(br#""""#).unwrap(), words(&[b""]));
        assert_eq!(split(br#"a"b c" d"#).unwrap(), words(&[b"ab c", b"d"]));
    }

    #[test]
    fn single_quotes_take_only_quote_escape() {
        assert_eq!(split(br"'it\'s' '\n'").unwrap(), words(&[b"it's", b"\\n"]));
    }

    #[test]
    fn unbalanced_quotes_are_errors() {
        for line in [&br#"SET a "b"#[..], br#""a"b"#, b"'a", b"'a'b", br#""a\""#] {
            assert_eq!(split(line), Err(ProtocolError::UnbalancedQuotes), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(ProtocolError::UnbalancedQuotes.to_string(), "Protocol error: unbalanced quotes in request");
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(split(b"GET a\0b c").unwrap(), words(&[b"GET", b"a"]));
        assert_eq!(split(b"\"a\0\"").unwrap_err(), ProtocolError::UnbalancedQuotes);
    }
}
