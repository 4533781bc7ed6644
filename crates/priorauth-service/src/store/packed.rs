//! The texts a request keeps (its case as received, its decision record, its first answer,
//! a completion's case), compressed where they are stored and restored where they are read.
//! Callers read JSON text only; they hand a new text over as a [`Packed`], whose stored form
//! they cannot see.
//!
//! Each text is a kilobyte or so of the same keys and values again and again, too short for
//! plain deflate to find much to share (about half its size). Deflate with a *preset
//! dictionary* of those keys and values (`dictionary-1.txt`: example cases, decision records
//! and answers) finds them there and stores the text in about a tenth of its size.
//!
//! Stored form: `z1:` then the zlib stream (with its checksum and the dictionary's id) in
//! base64, so that the columns stay text on both back ends. A JSON text never starts with
//! `z`, so a text stored before this format (or an empty one) reads back unchanged.
//!
//! `dictionary-1.txt` must never change once a release has written with it: the texts it
//! packed cannot be read without it (a test holds its SHA-256). A better dictionary is a new
//! file and a new prefix (`z2:`), with `z1:` still read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::StoreError;

/// The preset dictionary of `z1:` texts.
pub const DICTIONARY_1: &[u8] = include_bytes!("dictionary-1.txt");

const PREFIX_1: &str = "z1:";

/// The most a packed text may restore to: far above any case or answer the service accepts
/// (its request bodies are bounded well below this), so that a damaged row cannot make a
/// read allocate without bound.
const MAX_TEXT: usize = 8 << 20;

/// A text in its stored form, packed by whoever makes it: a new request's texts are packed
/// in the task that decided it, on any core, and not in the group commit's one writing task,
/// whose time every request of a batch waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(String);

impl Packed {
    pub fn new(text: &str) -> Packed {
        Packed(pack(text))
    }

    /// A long text (a PAS Bundle as received, several kilobytes) packed at deflate's fastest
    /// level, with the same dictionary: read back as any `z1:` text. At the default level
    /// such a Bundle took about a tenth of a PAS submission's CPU (by `perf`) to store 26% of
    /// its size; at the fastest, half that time for 29%.
    pub fn fast(text: &str) -> Packed {
        Packed(pack_at(text, &FAST))
    }

    /// The stored form, as it is bound to a statement.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A text as it is stored. The empty text stays empty (it means "as the request's").
pub fn pack(text: &str) -> String {
    pack_at(text, &COMPRESS)
}

fn pack_at(
    text: &str,
    compressor: &'static std::thread::LocalKey<std::cell::RefCell<Compress>>,
) -> String {
    if text.is_empty() {
        return String::new();
    }
    match deflate(compressor, text.as_bytes()) {
        Some(bytes) => {
            let mut stored = String::with_capacity(PREFIX_1.len() + bytes.len() * 4 / 3 + 4);
            stored.push_str(PREFIX_1);
            STANDARD_NO_PAD.encode_string(bytes, &mut stored);
            stored
        }
        // Deflate cannot fail on a buffer it may grow; were it to, the text is stored as is
        // (and read back as is).
        None => text.to_string(),
    }
}

/// A stored text as it was packed; texts stored before packing come back unchanged.
pub fn unpack(stored: String) -> Result<String, StoreError> {
    match stored.strip_prefix(PREFIX_1) {
        Some(encoded) => {
            restore(encoded, MAX_TEXT)?.ok_or_else(|| damaged("truncated or too long".into()))
        }
        None => Ok(stored),
    }
}

/// A stored text as it was packed if it restores to at most `limit` bytes, `None` if it is
/// longer: inflating stops at the limit, so finding out costs at most that. A stored text is
/// a small fraction of its size (a PAS Bundle of copies of one entry, a hundredth), so its
/// stored length says nothing of the work of restoring and reading it; this does.
pub fn unpack_within(stored: &str, limit: usize) -> Result<Option<String>, StoreError> {
    match stored.strip_prefix(PREFIX_1) {
        Some(encoded) => restore(encoded, limit.min(MAX_TEXT)),
        None => Ok((stored.len() <= limit).then(|| stored.to_string())),
    }
}

/// The text a `z1:` stored form (after its prefix) restores to, if at most `limit` bytes.
fn restore(encoded: &str, limit: usize) -> Result<Option<String>, StoreError> {
    // Deflate adds at most 5 bytes per 64 KB block and the stream's 10 of its own: a stored
    // text longer than that over the limit restores to more than it, known without decoding.
    if encoded.len() / 4 * 3 > limit + limit / 8192 + 64 {
        return Ok(None);
    }
    let bytes = STANDARD_NO_PAD
        .decode(encoded)
        .map_err(|e| damaged(format!("base64: {e}")))?;
    match inflate(&bytes, limit)? {
        Some(text) => String::from_utf8(text)
            .map(Some)
            .map_err(|_| damaged("not UTF-8".into())),
        None => Ok(None),
    }
}

fn damaged(what: String) -> StoreError {
    StoreError(sqlx::Error::Decode(
        format!("a packed text does not unpack ({what})").into(),
    ))
}

thread_local! {
    /// One compressor per thread, reset for each text: a new one allocates about 300 KB of
    /// tables (from the system, at that size) and frees them again, which measured as much
    /// as the compression itself.
    static COMPRESS: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::default(), true));
    /// As `COMPRESS`, at the fastest level (`Packed::fast`).
    static FAST: std::cell::RefCell<Compress> =
        std::cell::RefCell::new(Compress::new(Compression::fast(), true));
}

fn deflate(
    compressor: &'static std::thread::LocalKey<std::cell::RefCell<Compress>>,
    input: &[u8],
) -> Option<Vec<u8>> {
    compressor.with(|compress| {
        let mut compress = compress.try_borrow_mut().ok()?;
        deflate_with(&mut compress, input)
    })
}

fn deflate_with(compress: &mut Compress, input: &[u8]) -> Option<Vec<u8>> {
    compress.reset();
    compress.set_dictionary(DICTIONARY_1).ok()?;
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compress.total_in()).ok()?;
        let rest = input.get(consumed..)?;
        match compress
            .compress_vec(rest, &mut out, FlushCompress::Finish)
            .ok()?
        {
            Status::StreamEnd => return Some(out),
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
        }
    }
}

/// The bytes `input` inflates to, if at most `limit`; `None` past it.
fn inflate(input: &[u8], limit: usize) -> Result<Option<Vec<u8>>, StoreError> {
    let mut decompress = Decompress::new(true);
    let mut out = Vec::with_capacity((input.len() * 8).min(limit.saturating_add(1)));
    loop {
        let consumed = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX);
        let rest = input
            .get(consumed..)
            .ok_or_else(|| damaged("truncated".into()))?;
        let before = (decompress.total_in(), decompress.total_out());
        match decompress.decompress_vec(rest, &mut out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if decompress.total_in() == input.len() as u64 => {
                return Ok((out.len() <= limit).then_some(out));
            }
            Ok(Status::StreamEnd) => return Err(damaged("bytes after its end".into())),
            Ok(Status::Ok | Status::BufError) => {
                let progressed = before != (decompress.total_in(), decompress.total_out());
                if out.len() > limit {
                    return Ok(None);
                }
                if !progressed && out.len() < out.capacity() {
                    return Err(damaged("truncated".into()));
                }
                // Never more than one byte past the limit: enough to know it is passed.
                let room = out.capacity().max(256).min(limit + 1 - out.len());
                out.reserve_exact(room.max(1));
            }
            Err(e) if e.needs_dictionary().is_some() => {
                decompress
                    .set_dictionary(DICTIONARY_1)
                    .map_err(|e| damaged(format!("dictionary: {e}")))?;
            }
            Err(e) => return Err(damaged(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_dictionary_of_stored_texts_never_changes() {
        // Texts packed with it cannot be read without it: a new dictionary is a new file.
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_1)),
            "d51752a407bcd2e2e789ff281c438c5794daded1f31fbeae8d927dc605551696"
        );
    }

    #[test]
    fn texts_round_trip_and_shrink() {
        let case = r#"{"request":{"drug":"inotuzumab_ozogamicin","kind":"initial","date":"2026-07-01","dose":{"value":0.8,"unit":"mg/m2"},"cycles":3},"patient":{"birth_date":"1980-01-01","weight_kg":80},"diagnosis":{"icd10":["C91.00"],"disease_status":"refractory"},"id":"x"}"#;
        for text in [case, "{}", "[1,2,3]", "\"é ✓\"", &"{\"a\":1}".repeat(5000)] {
            let stored = pack(text);
            assert!(stored.starts_with("z1:"), "{stored}");
            assert_eq!(unpack(stored).unwrap(), text);
        }
        assert!(pack(case).len() < case.len() / 2, "{}", pack(case).len());
    }

    #[test]
    fn a_text_packed_fast_reads_back_as_any_other() {
        let bundle = include_str!("../../../../tests/fhir/cases/E01-masshealth.json");
        let fast = Packed::fast(bundle);
        assert!(fast.as_str().starts_with("z1:"));
        assert_eq!(unpack(fast.as_str().to_string()).unwrap(), bundle);
        assert!(
            fast.as_str().len() < bundle.len() / 2,
            "{}",
            fast.as_str().len()
        );
        assert_eq!(Packed::fast(""), Packed::new(""));
    }

    #[test]
    fn empty_and_earlier_texts_read_unchanged() {
        assert_eq!(pack(""), "");
        for text in ["", "{\"outcome\":\"approve\"}", "[]"] {
            assert_eq!(unpack(text.to_string()).unwrap(), text);
        }
    }

    #[test]
    fn a_text_is_restored_within_a_limit_or_found_longer() {
        let long = "{\"a\":1}".repeat(5000);
        let stored = pack(&long);
        assert!(stored.len() < 1000, "{}", stored.len());
        for limit in [long.len(), long.len() + 1, MAX_TEXT] {
            assert_eq!(
                unpack_within(&stored, limit).unwrap().as_deref(),
                Some(long.as_str())
            );
        }
        for limit in [0, 1, 255, 256, 4096, long.len() - 1] {
            assert_eq!(unpack_within(&stored, limit).unwrap(), None, "{limit}");
        }
        // A text stored before packing, by its own length.
        assert_eq!(unpack_within("[1]", 3).unwrap().as_deref(), Some("[1]"));
        assert_eq!(unpack_within("[1]", 2).unwrap(), None);
        // Damage is still damage, whatever the limit.
        assert!(unpack_within("z1:!!!", 10).is_err());
        // A stored text longer than the limit allows is over it without being decoded: it
        // is found damaged only when restored whole.
        let long_damaged = format!("z1:{}", "!".repeat(4000));
        assert_eq!(unpack_within(&long_damaged, 1000).unwrap(), None);
        assert!(unpack(long_damaged).is_err());
        // A text deflate cannot shrink (its stored form is longer than it): still restored
        // within a limit of its own length.
        let noise: String = (0..20_000u32)
            .map(|i| char::from(b'!' + u8::try_from(i.wrapping_mul(2_654_435_761) >> 26).unwrap()))
            .collect();
        let stored = pack(&noise);
        assert_eq!(
            unpack_within(&stored, noise.len()).unwrap().as_deref(),
            Some(noise.as_str())
        );
        assert_eq!(unpack_within(&stored, noise.len() - 1).unwrap(), None);
    }

    #[test]
    fn a_damaged_text_is_an_error_not_a_panic() {
        let stored = pack(r#"{"request":{"drug":"blinatumomab"}}"#);
        let cut = stored.get(..stored.len() - 3).unwrap().to_string();
        for bad in [
            "z1:".to_string(),
            "z1:!!!".to_string(),
            "z1:AAAA".to_string(),
            cut,
            format!("{stored}AAAA"),
        ] {
            assert!(unpack(bad.clone()).is_err(), "{bad}");
        }
    }
}
