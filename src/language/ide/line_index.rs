//! Byte offsets ↔ (line, column) as editors count them. The Language Server
//! Protocol counts columns in UTF-16 code units by default, so `é` is one
//! unit and `𝜈` two, while our spans count bytes (two and four).

/// The starts of a text's lines, found once per version of the text.
pub struct LineIndex {
    /// Byte offset of the first character of each line.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        LineIndex { starts, len: text.len() }
    }

    /// The 0-based line and UTF-16 column of a byte offset (clamped to the text).
    pub fn position(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = floor_char_boundary(text, offset.min(self.len));
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let column: usize = text[self.starts[line]..offset].chars().map(char::len_utf16).sum();
        (line as u32, column as u32)
    }

    /// The byte offset of a 0-based line and UTF-16 column. A line past the
    /// end gives the end of the text; a column past the end of its line gives
    /// the end of the line; a column inside a surrogate pair, the character's start.
    pub fn offset(&self, text: &str, line: u32, column: u32) -> usize {
        let Some(&start) = self.starts.get(line as usize) else { return self.len };
        let end = self.starts.get(line as usize + 1).map(|&next| next - 1).unwrap_or(self.len);
        let mut units = 0usize;
        for (at, c) in text[start..end].char_indices() {
            units += c.len_utf16();
            if units > column as usize {
                return start + at;
            }
        }
        end
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::LineIndex;

    #[test]
    fn columns_count_utf16_units_after_non_ascii_text() {
        // `é` is 2 bytes and 1 unit; `𝜈` (U+1D708) is 4 bytes and 2 units:
        // `ok` starts at byte 11, unit 8.
        let text = "// é 𝜈 ok\n  conv(k=3)\n";
        let index = LineIndex::new(text);
        let ok = text.find("ok").unwrap();
        assert_eq!(ok, 11);
        assert_eq!(index.position(text, ok), (0, 8));
        assert_eq!(index.offset(text, 0, 8), ok);
        let conv = text.find("conv").unwrap();
        assert_eq!(index.position(text, conv), (1, 2));
        assert_eq!(index.offset(text, 1, 2), conv);
        // Every character boundary goes there and back.
        for (at, _) in text.char_indices() {
            let (line, column) = index.position(text, at);
            assert_eq!(index.offset(text, line, column), at, "offset {at}");
        }
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let text = "ab\ncd";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, 0, 99), 2, "past the line's end: the end of the line");
        assert_eq!(index.offset(text, 9, 0), text.len(), "past the last line: the end");
        assert_eq!(index.position(text, 99), (1, 2));
        // Inside the surrogate pair of 𝜈: its start.
        let text = "𝜈x";
        assert_eq!(LineIndex::new(text).offset(text, 0, 1), 0);
        assert_eq!(LineIndex::new(text).offset(text, 0, 2), 4);
    }
}
