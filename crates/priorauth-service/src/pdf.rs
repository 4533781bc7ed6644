//! A notice as PDF: its paragraphs set in the standard Helvetica on US Letter pages, the first
//! as the heading. The file format is pdf-writer's; only the layout is here: words wrapped to
//! the measure by Helvetica's widths, a new page when one is full. No font is embedded (the
//! fourteen standard fonts are every reader's), so the text is WinAnsi: a character outside it
//! is written as `?`.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

const PAGE_WIDTH: f32 = 612.0;
const PAGE_HEIGHT: f32 = 792.0;
const MARGIN: f32 = 72.0;
const BODY_SIZE: f32 = 11.0;
const HEADING_SIZE: f32 = 15.0;
const LEADING: f32 = 1.35;

/// A line as laid out: its size and its WinAnsi text; `None` is the space after a paragraph.
type Line = Option<(f32, Vec<u8>)>;

/// The PDF of a notice whose first paragraph is its heading.
pub fn notice(title: &str, paragraphs: &[String]) -> Vec<u8> {
    // Lay out first: (size, line) per line, `None` for the space between paragraphs.
    let measure = PAGE_WIDTH - 2.0 * MARGIN;
    let mut lines: Vec<Line> = Vec::new();
    for (i, paragraph) in paragraphs.iter().enumerate() {
        let size = if i == 0 { HEADING_SIZE } else { BODY_SIZE };
        for line in wrap(&win_ansi(paragraph), size, measure) {
            lines.push(Some((size, line)));
        }
        lines.push(None);
    }
    let mut pages: Vec<Vec<Line>> = vec![Vec::new()];
    let mut y = PAGE_HEIGHT - MARGIN;
    for line in lines {
        let height = line
            .as_ref()
            .map_or(BODY_SIZE * 0.6, |(size, _)| size * LEADING);
        if y - height < MARGIN {
            pages.push(Vec::new());
            y = PAGE_HEIGHT - MARGIN;
        }
        y -= height;
        if let Some(page) = pages.last_mut() {
            page.push(line);
        }
    }

    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let page_ref = |n: usize| Ref::new(6 + 2 * i32::try_from(n).unwrap_or(0));
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages.len()).map(page_ref))
        .count(i32::try_from(pages.len()).unwrap_or(1));
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr("priorauth"));
    for (n, lines) in pages.iter().enumerate() {
        let id = page_ref(n);
        let contents = Ref::new(id.get() + 1);
        let mut page = pdf.page(id);
        page.parent(tree)
            .media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .contents(contents);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), font);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        let mut content = Content::new();
        let mut y = PAGE_HEIGHT - MARGIN;
        for line in lines {
            match line {
                None => y -= BODY_SIZE * 0.6,
                Some((size, text)) => {
                    y -= size * LEADING;
                    let face = if *size > BODY_SIZE { b"F2" } else { b"F1" };
                    content.begin_text();
                    content.set_font(Name(face), *size);
                    content.next_line(MARGIN, y);
                    content.show(Str(text));
                    content.end_text();
                }
            }
        }
        pdf.stream(contents, &content.finish());
    }
    pdf.finish()
}

/// Text in WinAnsi (Windows-1252): Latin-1 as is, the typographic quotes and dashes where
/// WinAnsi has them, anything else `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201C}' => 0x93,
            '\u{201D}' => 0x94,
            '\u{2022}' => 0x95,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{20AC}' => 0x80,
            c if (' '..='~').contains(&c) || ('\u{A0}'..='\u{FF}').contains(&c) => {
                u8::try_from(u32::from(c)).unwrap_or(b'?')
            }
            _ => b'?',
        })
        .collect()
}

/// Words wrapped into lines no wider than `measure` points at `size`.
fn wrap(text: &[u8], size: f32, measure: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in text.split(|b| *b == b' ').filter(|w| !w.is_empty()) {
        let candidate = if line.is_empty() {
            width(word, size)
        } else {
            width(&line, size) + width(b" ", size) + width(word, size)
        };
        if candidate > measure && !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(b' ');
        }
        line.extend_from_slice(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The width of WinAnsi text in Helvetica at `size`, from the font's metrics (AFM, in
/// thousandths of the size) for ASCII, and a wide letter's for the rest, so a line never
/// runs past the margin.
fn width(text: &[u8], size: f32) -> f32 {
    const ASCII: [u16; 95] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
        556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722,
        722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722,
        667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
        556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500,
        500, 334, 260, 334, 584,
    ];
    let units: u32 = text
        .iter()
        .map(|b| {
            usize::from(*b)
                .checked_sub(32)
                .and_then(|i| ASCII.get(i))
                .map_or(722, |w| u32::from(*w))
        })
        .sum();
    units as f32 * size / 1000.0
}

/// The text a notice's pages show, line by line, as Latin-1 (its strings are literal, or hex
/// where they hold bytes outside ASCII): what a test or a reader of the file can check.
pub fn shown_text(pdf: &[u8]) -> String {
    // Each line is `x y Td` then its string then ` Tj`, as `notice` writes it.
    let mut out = String::new();
    let mut rest = pdf;
    while let Some(start) = find(rest, b" Td\n") {
        let after = rest.get(start + 4..).unwrap_or_default();
        let Some(end) = find(after, b" Tj") else {
            break;
        };
        let string = after.get(..end).unwrap_or_default();
        let line = match string.first() {
            Some(b'<') => hex_bytes(string.get(1..end.saturating_sub(1)).unwrap_or_default()),
            _ => unescape(string.get(1..end.saturating_sub(1)).unwrap_or_default()),
        };
        out.extend(line.iter().map(|b| char::from(*b)));
        out.push('\n');
        rest = after.get(end + 3..).unwrap_or_default();
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn hex_bytes(hex: &[u8]) -> Vec<u8> {
    hex.chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

fn unescape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut escaped = false;
    for b in text {
        if escaped || *b != b'\\' {
            out.push(*b);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_a_pdf_with_its_words_on_pages() {
        let long = "word ".repeat(3000);
        let pdf = notice(
            "Notice",
            &[
                "Notice of denial".into(),
                "To Ana Díaz — member (id M-1)".into(),
                long,
            ],
        );
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.trim_ascii_end().ends_with(b"%%EOF"));
        // Latin-1 kept, the dash in WinAnsi, on more than one page.
        let text = shown_text(&pdf);
        assert!(
            text.starts_with("Notice of denial\nTo Ana D\u{ed}az \u{97} member (id M-1)\n"),
            "{}",
            &text[..80]
        );
        let page_text = String::from_utf8_lossy(&pdf);
        let pages =
            page_text.matches("/Type /Page").count() - page_text.matches("/Type /Pages").count();
        assert!(pages >= 2, "{pages} pages");
        assert_eq!(text.matches("word").count(), 3000);
    }

    #[test]
    fn lines_stay_within_the_measure() {
        for line in wrap(&"abcdefghij ".repeat(200).into_bytes(), 11.0, 468.0) {
            assert!(width(&line, 11.0) <= 468.0);
        }
        assert_eq!(win_ansi("a\u{4e2d}b"), b"a?b");
    }
}
