//! The composer: a multi-line text field with a cursor and a recall of earlier
//! prompts (Up/Down on the first/last line). It only edits text; what Enter
//! means is decided by the app. The cursor moves by grapheme cluster (a flag or
//! a ZWJ family is one step), and [`Composer::layout`] wraps the text to a width.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// The composer's text wrapped to a width: the rows to draw and where the
/// cursor is among them (row, column in cells).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub rows: Vec<String>,
    pub cursor: (usize, usize),
}

/// The text being typed.
#[derive(Debug, Default, Clone)]
pub struct Composer {
    text: String,
    /// Byte offset of the cursor, always on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// Where Up/Down recall is (`history.len()` = the draft).
    recall: usize,
    /// What was typed before recall started.
    draft: String,
}

impl Composer {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Replaces the text, cursor at the end.
    pub fn set_text(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.text.len();
    }

    /// Takes the text out (for sending), remembering it for recall.
    pub fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        self.recall = self.history.len();
        self.draft.clear();
        text
    }

    /// Puts text back after a refused send, without losing what is there.
    pub fn restore(&mut self, text: &str) {
        if self.text.is_empty() {
            self.set_text(text);
        } else if self.text != text {
            self.text = format!("{text}\n{}", self.text);
            self.cursor = self.text.len();
        }
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    pub fn insert(&mut self, s: &str) {
        let s = s.replace("\r\n", "\n").replace('\r', "\n");
        self.text.insert_str(self.cursor, &s);
        self.cursor += s.len();
    }

    pub fn backspace(&mut self) {
        if let Some(g) = self.text[..self.cursor].graphemes(true).next_back() {
            let start = self.cursor - g.len();
            self.text.replace_range(start..self.cursor, "");
            self.cursor = start;
        }
    }

    pub fn delete(&mut self) {
        if let Some(g) = self.text[self.cursor..].graphemes(true).next() {
            let end = self.cursor + g.len();
            self.text.replace_range(self.cursor..end, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(g) = self.text[..self.cursor].graphemes(true).next_back() {
            self.cursor -= g.len();
        }
    }

    pub fn right(&mut self) {
        if let Some(g) = self.text[self.cursor..].graphemes(true).next() {
            self.cursor += g.len();
        }
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..].find('\n').map_or(self.text.len(), |i| self.cursor + i)
    }

    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    /// Deletes from the start of the line to the cursor.
    pub fn kill_line_before(&mut self) {
        let start = self.line_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Up: the line above, or (on the first line) the previous prompt.
    pub fn up(&mut self) {
        let start = self.line_start();
        if start == 0 {
            self.recall_step(-1);
            return;
        }
        let col = self.text[start..self.cursor].chars().count();
        let prev_start = self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        self.cursor = advance(&self.text, prev_start, start - 1, col);
    }

    /// Down: the line below, or (on the last line) the next prompt.
    pub fn down(&mut self) {
        let end = self.line_end();
        if end == self.text.len() {
            self.recall_step(1);
            return;
        }
        let col = self.text[self.line_start()..self.cursor].chars().count();
        let next_start = end + 1;
        let next_end = self.text[next_start..].find('\n').map_or(self.text.len(), |i| next_start + i);
        self.cursor = advance(&self.text, next_start, next_end, col);
    }

    fn recall_step(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        if self.recall == self.history.len() {
            self.draft = self.text.clone();
        }
        let next = self.recall as isize + step;
        if next < 0 || next > self.history.len() as isize {
            return;
        }
        self.recall = next as usize;
        let text =
            if self.recall == self.history.len() { self.draft.clone() } else { self.history[self.recall].clone() };
        self.set_text(&text);
    }

    /// How many lines the text takes (at least one).
    pub fn line_count(&self) -> usize {
        self.text.split('\n').count()
    }

    /// The cursor's line and column (in chars).
    pub fn cursor_line_col(&self) -> (usize, usize) {
        let before = &self.text[..self.cursor];
        let line = before.matches('\n').count();
        let col = before[self.line_start()..].chars().count();
        (line, col)
    }
}

impl Composer {
    /// The text wrapped to `width` cells — at the last space where there is
    /// one, never inside a grapheme cluster (measured as the screen measures
    /// it) — and the cursor's place in the rows. A cursor after a full row
    /// starts the next one.
    pub fn layout(&self, width: usize) -> Layout {
        let width = width.max(1);
        let mut rows = Vec::new();
        let mut cursor = (0, 0);
        let mut offset = 0;
        for line in self.text.split('\n') {
            // (where the row starts in the text, its text)
            let mut line_rows: Vec<(usize, String)> = vec![(offset, String::new())];
            let mut w = 0;
            for (i, g) in line.grapheme_indices(true) {
                let gw = g.width();
                if w + gw > width && w > 0 {
                    let (start, row) = line_rows.last_mut().expect("a row");
                    match row.rfind(' ') {
                        Some(sp) => {
                            let tail = row.split_off(sp + 1);
                            let tail_start = *start + sp + 1;
                            w = tail.width();
                            line_rows.push((tail_start, tail));
                        }
                        None => {
                            line_rows.push((offset + i, String::new()));
                            w = 0;
                        }
                    }
                    if w + gw > width && w > 0 {
                        line_rows.push((offset + i, String::new()));
                        w = 0;
                    }
                }
                line_rows.last_mut().expect("a row").1.push_str(g);
                w += gw;
            }
            let end = offset + line.len();
            if (offset..=end).contains(&self.cursor) {
                let r = line_rows.iter().rposition(|(start, _)| *start <= self.cursor).unwrap_or(0);
                let (start, row) = &line_rows[r];
                let col = row[..self.cursor - start].width();
                if self.cursor == end && col >= width {
                    line_rows.push((end, String::new()));
                    cursor = (rows.len() + line_rows.len() - 1, 0);
                } else {
                    cursor = (rows.len() + r, col);
                }
            }
            rows.extend(line_rows.into_iter().map(|(_, row)| row));
            offset = end + 1;
        }
        Layout { rows, cursor }
    }
}

/// The byte offset `col` chars after `start`, but not past `end`.
fn advance(text: &str, start: usize, end: usize, col: usize) -> usize {
    text[start..end].char_indices().nth(col).map_or(end, |(i, _)| start + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_and_moves_by_chars() {
        let mut c = Composer::default();
        c.insert("héllo");
        c.left();
        c.left();
        c.backspace();
        assert_eq!(c.text(), "hélo");
        c.home();
        c.delete();
        assert_eq!(c.text(), "élo");
        c.end();
        c.insert("\nworld");
        assert_eq!(c.line_count(), 2);
        assert_eq!(c.cursor_line_col(), (1, 5));
        c.up();
        assert_eq!(c.cursor_line_col(), (0, 3));
        c.down();
        assert_eq!(c.cursor_line_col(), (1, 3));
        c.kill_line_before();
        assert_eq!(c.text(), "élo\nld");
    }

    #[test]
    fn up_and_down_recall_prompts_and_keep_the_draft() {
        let mut c = Composer::default();
        c.insert("first");
        assert_eq!(c.take(), "first");
        c.insert("second");
        c.take();
        c.insert("draft");
        c.up();
        assert_eq!(c.text(), "second");
        c.up();
        assert_eq!(c.text(), "first");
        c.up();
        assert_eq!(c.text(), "first");
        c.down();
        c.down();
        assert_eq!(c.text(), "draft");
    }

    #[test]
    fn layout_wraps_and_places_the_cursor() {
        let mut c = Composer::default();
        c.insert("abcdefgh\nxy");
        let l = c.layout(3);
        assert_eq!(l.rows, ["abc", "def", "gh", "xy"]);
        assert_eq!(l.cursor, (3, 2));
        // Words move to the next row whole when they can.
        c.set_text("one two three");
        assert_eq!(c.layout(9).rows, ["one two ", "three"]);
        assert_eq!(c.layout(9).cursor, (1, 5));
        c.home();
        for _ in 0..8 {
            c.right();
        }
        assert_eq!(c.layout(9).cursor, (1, 0), "after the space: the start of the next row");
        c.set_text("abcdef");
        assert_eq!(c.layout(3), Layout { rows: vec!["abc".into(), "def".into(), "".into()], cursor: (2, 0) });
        c.home();
        c.right();
        c.right();
        c.right();
        assert_eq!(c.layout(3).cursor, (1, 0));
        // A wide character never straddles two rows.
        c.set_text("ab日本");
        assert_eq!(c.layout(3).rows, ["ab", "日", "本"]);
    }

    #[test]
    fn flags_and_zwj_families_are_one_step_each() {
        let mut c = Composer::default();
        c.insert("a🇫🇷👩\u{200d}👩\u{200d}👧b");
        c.left();
        c.left();
        assert_eq!(&c.text()[c.cursor()..], "👩\u{200d}👩\u{200d}👧b");
        c.backspace();
        assert_eq!(c.text(), "a👩\u{200d}👩\u{200d}👧b");
        c.delete();
        assert_eq!(c.text(), "ab");
        let rows = {
            c.set_text("🇫🇷🇫🇷🇫🇷");
            c.layout(4).rows
        };
        assert_eq!(rows, ["🇫🇷🇫🇷", "🇫🇷"]);
    }

    #[test]
    fn restore_never_drops_what_is_typed() {
        let mut c = Composer::default();
        c.restore("sent");
        assert_eq!(c.text(), "sent");
        c.set_text("new");
        c.restore("old");
        assert_eq!(c.text(), "old\nnew");
    }
}
