//! Characters a person cannot see or tell apart from ASCII: a no-break space
//! pasted from a web page, a zero-width space, a NUL, a Cyrillic `а` in
//! `@lowpаss`. The language is ASCII outside strings and comments, so such a
//! character is always a mistake; the messages name it by its code point and
//! say what it looks like, and the suggestion spells the name in ASCII.

/// How a character looks to a reader of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Looks {
    /// Nothing is drawn (zero-width characters, NUL, a byte-order mark).
    Invisible,
    /// Drawn as a space.
    Space,
    /// Drawn like this ASCII text.
    Like(&'static str),
    /// Visible and unlike any ASCII character, or not in the table.
    Other,
}

/// Name and look of the characters people paste by mistake. Not all of
/// Unicode: the invisible ones, the spaces, and the letters and signs that are
/// drawn like ASCII (Cyrillic and Greek homoglyphs, typographic quotes and
/// dashes, full-width forms' most common members).
const TABLE: &[(char, &str, Looks)] = &[
    ('\u{0000}', "NULL", Looks::Invisible),
    ('\u{000B}', "LINE TABULATION", Looks::Space),
    ('\u{000C}', "FORM FEED", Looks::Space),
    ('\u{007F}', "DELETE", Looks::Invisible),
    ('\u{00A0}', "NO-BREAK SPACE", Looks::Space),
    ('\u{00AD}', "SOFT HYPHEN", Looks::Invisible),
    ('\u{1680}', "OGHAM SPACE MARK", Looks::Space),
    ('\u{180E}', "MONGOLIAN VOWEL SEPARATOR", Looks::Invisible),
    ('\u{2000}', "EN QUAD", Looks::Space),
    ('\u{2001}', "EM QUAD", Looks::Space),
    ('\u{2002}', "EN SPACE", Looks::Space),
    ('\u{2003}', "EM SPACE", Looks::Space),
    ('\u{2004}', "THREE-PER-EM SPACE", Looks::Space),
    ('\u{2005}', "FOUR-PER-EM SPACE", Looks::Space),
    ('\u{2006}', "SIX-PER-EM SPACE", Looks::Space),
    ('\u{2007}', "FIGURE SPACE", Looks::Space),
    ('\u{2008}', "PUNCTUATION SPACE", Looks::Space),
    ('\u{2009}', "THIN SPACE", Looks::Space),
    ('\u{200A}', "HAIR SPACE", Looks::Space),
    ('\u{200B}', "ZERO WIDTH SPACE", Looks::Invisible),
    ('\u{200C}', "ZERO WIDTH NON-JOINER", Looks::Invisible),
    ('\u{200D}', "ZERO WIDTH JOINER", Looks::Invisible),
    ('\u{200E}', "LEFT-TO-RIGHT MARK", Looks::Invisible),
    ('\u{200F}', "RIGHT-TO-LEFT MARK", Looks::Invisible),
    ('\u{2010}', "HYPHEN", Looks::Like("-")),
    ('\u{2011}', "NON-BREAKING HYPHEN", Looks::Like("-")),
    ('\u{2012}', "FIGURE DASH", Looks::Like("-")),
    ('\u{2013}', "EN DASH", Looks::Like("-")),
    ('\u{2014}', "EM DASH", Looks::Like("-")),
    ('\u{2018}', "LEFT SINGLE QUOTATION MARK", Looks::Like("'")),
    ('\u{2019}', "RIGHT SINGLE QUOTATION MARK", Looks::Like("'")),
    ('\u{201C}', "LEFT DOUBLE QUOTATION MARK", Looks::Like("\"")),
    ('\u{201D}', "RIGHT DOUBLE QUOTATION MARK", Looks::Like("\"")),
    ('\u{2028}', "LINE SEPARATOR", Looks::Space),
    ('\u{2029}', "PARAGRAPH SEPARATOR", Looks::Space),
    ('\u{202F}', "NARROW NO-BREAK SPACE", Looks::Space),
    ('\u{205F}', "MEDIUM MATHEMATICAL SPACE", Looks::Space),
    ('\u{2060}', "WORD JOINER", Looks::Invisible),
    ('\u{2212}', "MINUS SIGN", Looks::Like("-")),
    ('\u{3000}', "IDEOGRAPHIC SPACE", Looks::Space),
    ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE (byte-order mark)", Looks::Invisible),
    ('\u{FF08}', "FULLWIDTH LEFT PARENTHESIS", Looks::Like("(")),
    ('\u{FF09}', "FULLWIDTH RIGHT PARENTHESIS", Looks::Like(")")),
    ('\u{FF0C}', "FULLWIDTH COMMA", Looks::Like(",")),
    ('\u{FF1D}', "FULLWIDTH EQUALS SIGN", Looks::Like("=")),
    ('\u{0131}', "LATIN SMALL LETTER DOTLESS I", Looks::Like("i")),
    ('\u{0391}', "GREEK CAPITAL LETTER ALPHA", Looks::Like("A")),
    ('\u{0392}', "GREEK CAPITAL LETTER BETA", Looks::Like("B")),
    ('\u{0395}', "GREEK CAPITAL LETTER EPSILON", Looks::Like("E")),
    ('\u{0396}', "GREEK CAPITAL LETTER ZETA", Looks::Like("Z")),
    ('\u{0397}', "GREEK CAPITAL LETTER ETA", Looks::Like("H")),
    ('\u{0399}', "GREEK CAPITAL LETTER IOTA", Looks::Like("I")),
    ('\u{039A}', "GREEK CAPITAL LETTER KAPPA", Looks::Like("K")),
    ('\u{039C}', "GREEK CAPITAL LETTER MU", Looks::Like("M")),
    ('\u{039D}', "GREEK CAPITAL LETTER NU", Looks::Like("N")),
    ('\u{039F}', "GREEK CAPITAL LETTER OMICRON", Looks::Like("O")),
    ('\u{03A1}', "GREEK CAPITAL LETTER RHO", Looks::Like("P")),
    ('\u{03A4}', "GREEK CAPITAL LETTER TAU", Looks::Like("T")),
    ('\u{03A5}', "GREEK CAPITAL LETTER UPSILON", Looks::Like("Y")),
    ('\u{03A7}', "GREEK CAPITAL LETTER CHI", Looks::Like("X")),
    ('\u{03B1}', "GREEK SMALL LETTER ALPHA", Looks::Like("a")),
    ('\u{03BD}', "GREEK SMALL LETTER NU", Looks::Like("v")),
    ('\u{03BF}', "GREEK SMALL LETTER OMICRON", Looks::Like("o")),
    ('\u{03C1}', "GREEK SMALL LETTER RHO", Looks::Like("p")),
    ('\u{0405}', "CYRILLIC CAPITAL LETTER DZE", Looks::Like("S")),
    ('\u{0406}', "CYRILLIC CAPITAL LETTER BYELORUSSIAN-UKRAINIAN I", Looks::Like("I")),
    ('\u{0408}', "CYRILLIC CAPITAL LETTER JE", Looks::Like("J")),
    ('\u{0410}', "CYRILLIC CAPITAL LETTER A", Looks::Like("A")),
    ('\u{0412}', "CYRILLIC CAPITAL LETTER VE", Looks::Like("B")),
    ('\u{0415}', "CYRILLIC CAPITAL LETTER IE", Looks::Like("E")),
    ('\u{041A}', "CYRILLIC CAPITAL LETTER KA", Looks::Like("K")),
    ('\u{041C}', "CYRILLIC CAPITAL LETTER EM", Looks::Like("M")),
    ('\u{041D}', "CYRILLIC CAPITAL LETTER EN", Looks::Like("H")),
    ('\u{041E}', "CYRILLIC CAPITAL LETTER O", Looks::Like("O")),
    ('\u{0420}', "CYRILLIC CAPITAL LETTER ER", Looks::Like("P")),
    ('\u{0421}', "CYRILLIC CAPITAL LETTER ES", Looks::Like("C")),
    ('\u{0422}', "CYRILLIC CAPITAL LETTER TE", Looks::Like("T")),
    ('\u{0425}', "CYRILLIC CAPITAL LETTER HA", Looks::Like("X")),
    ('\u{0430}', "CYRILLIC SMALL LETTER A", Looks::Like("a")),
    ('\u{0435}', "CYRILLIC SMALL LETTER IE", Looks::Like("e")),
    ('\u{043E}', "CYRILLIC SMALL LETTER O", Looks::Like("o")),
    ('\u{0440}', "CYRILLIC SMALL LETTER ER", Looks::Like("p")),
    ('\u{0441}', "CYRILLIC SMALL LETTER ES", Looks::Like("c")),
    ('\u{0443}', "CYRILLIC SMALL LETTER U", Looks::Like("y")),
    ('\u{0445}', "CYRILLIC SMALL LETTER HA", Looks::Like("x")),
    ('\u{0455}', "CYRILLIC SMALL LETTER DZE", Looks::Like("s")),
    ('\u{0456}', "CYRILLIC SMALL LETTER BYELORUSSIAN-UKRAINIAN I", Looks::Like("i")),
    ('\u{0458}', "CYRILLIC SMALL LETTER JE", Looks::Like("j")),
    ('\u{04BB}', "CYRILLIC SMALL LETTER SHHA", Looks::Like("h")),
    ('\u{0501}', "CYRILLIC SMALL LETTER KOMI DE", Looks::Like("d")),
];

/// Whether a character needs naming in a message: outside ASCII, or an
/// ASCII control other than the line and tab characters the grammar reads.
pub fn is_suspicious(c: char) -> bool {
    !c.is_ascii() || (c.is_ascii_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// How `c` looks.
pub fn looks(c: char) -> Looks {
    match TABLE.iter().find(|(t, _, _)| *t == c) {
        Some((_, _, looks)) => *looks,
        None if c.is_control() => Looks::Invisible,
        None if c.is_whitespace() => Looks::Space,
        None => Looks::Other,
    }
}

/// `U+0430 CYRILLIC SMALL LETTER A (looks like `a`)`, `U+00A0 NO-BREAK SPACE
/// (looks like a space)`, `U+200B ZERO WIDTH SPACE (invisible)`; a character
/// outside the table by its code point alone.
pub fn describe(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    let name = TABLE.iter().find(|(t, _, _)| *t == c).map(|(_, name, _)| *name);
    let head = match name {
        Some(name) => format!("{code} {name}"),
        None => code,
    };
    match looks(c) {
        Looks::Invisible => format!("{head} (invisible)"),
        Looks::Space => format!("{head} (looks like a space)"),
        Looks::Like(ascii) => format!("{head} (looks like `{ascii}`)"),
        Looks::Other => head,
    }
}

/// The word around byte `at` of `source` (ASCII name characters and
/// look-alikes of them, invisible characters included) spelt in ASCII, when
/// that changes it: `lowpаss` → `lowpass`, `con\u{200B}v` → `conv`. With the
/// byte range of the word in `source`.
pub fn ascii_spelling(source: &str, at: usize) -> Option<(std::ops::Range<usize>, String)> {
    let in_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || ascii_letter_for(c).is_some();
    let start = source[..at].char_indices().rev().take_while(|&(_, c)| in_word(c)).last().map_or(at, |(i, _)| i);
    let end = at + source[at..].char_indices().find(|&(_, c)| !in_word(c)).map_or(source.len() - at, |(i, _)| i);
    let word = &source[start..end];
    let spelt: String = word.chars().filter_map(|c| if c.is_ascii() { Some(Some(c)) } else { ascii_letter_for(c) }).flatten().collect();
    (spelt != word && !spelt.is_empty() && spelt.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_'))
        .then_some((start..end, spelt))
}

/// The ASCII letter a look-alike stands for (`Some(Some('a'))`), or
/// `Some(None)` for an invisible character that drops out of a word; `None`
/// for a character that is neither.
fn ascii_letter_for(c: char) -> Option<Option<char>> {
    match looks(c) {
        Looks::Invisible if c != '\0' => Some(None),
        Looks::Like(ascii) => {
            let mut chars = ascii.chars();
            match (chars.next(), chars.next()) {
                (Some(a), None) if a.is_ascii_alphanumeric() => Some(Some(a)),
                _ => None,
            }
        }
        Looks::Invisible | Looks::Space | Looks::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_code_points_and_looks() {
        assert_eq!(describe('\u{00A0}'), "U+00A0 NO-BREAK SPACE (looks like a space)");
        assert_eq!(describe('\u{0430}'), "U+0430 CYRILLIC SMALL LETTER A (looks like `a`)");
        assert_eq!(describe('\u{200B}'), "U+200B ZERO WIDTH SPACE (invisible)");
        assert_eq!(describe('\0'), "U+0000 NULL (invisible)");
        assert_eq!(describe('中'), "U+4E2D");
    }

    #[test]
    fn spells_names_in_ascii() {
        let source = "conv @lowp\u{0430}ss(cutoff=0.2)";
        let at = source.find('\u{0430}').unwrap();
        let (range, spelt) = ascii_spelling(source, at).unwrap();
        assert_eq!((&source[range], spelt.as_str()), ("lowp\u{0430}ss", "lowpass"));
        let source = "con\u{200B}v(out=1)";
        assert_eq!(ascii_spelling(source, 3).map(|(_, s)| s).as_deref(), Some("conv"));
        // A space is not part of a name: nothing to spell.
        assert_eq!(ascii_spelling("relu\u{00A0}", 4), None);
    }
}
