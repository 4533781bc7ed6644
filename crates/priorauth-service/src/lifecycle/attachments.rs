//! Files sent with a request or an appeal (clinical notes, pathology and imaging reports,
//! letters of medical necessity): each checked as what it says it is by its first bytes,
//! limited in size and number, stored in the database with its SHA-256 as part of its
//! request's audited state, and every read of one audited.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::requests::{fetch, is_pending};
use super::retries::{Begun, Retry, begin};
use super::{Error, Service, invalid, raced, require, text, timestamp};
use crate::keys::{Caller, Role};
use crate::store::attachments::{self as records, Attachment, NewAttachment};
use crate::store::{self, Tx, now_ms};

/// The largest file a request takes: a scanned clinical note of a few pages.
pub const FILE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The most files one request holds.
const FILES_PER_REQUEST: usize = 20;
/// The types a file of a request may have: documents and images a reviewer can open.
pub const REQUEST_FILE_TYPES: &[&str] = &["application/pdf", "image/png", "image/jpeg"];
/// The types a file of an appeal may have (a letter may also be plain text).
const APPEAL_FILE_TYPES: &[&str] = &["application/pdf", "image/png", "image/jpeg", "text/plain"];
/// The most files of an appeal (the body limit bounds their size).
pub const APPEAL_FILES_MAX: usize = 10;
const TITLE_MAX: usize = 200;

/// A file sent with an appeal (a letter of medical necessity, a pathology report).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentBody {
    pub title: String,
    /// `application/pdf`, `image/png`, `image/jpeg` or `text/plain`.
    pub content_type: String,
    /// The file, base64.
    pub data: String,
}

/// Whether `bytes` are a file of `content_type`, by the signature every such file begins
/// with (a PDF's `%PDF-`, PNG's eight bytes, JPEG's start-of-image marker) or, for text,
/// UTF-8 without NUL. A file whose declared type is not what it is would open as something
/// else in a reviewer's browser.
fn is_of_type(content_type: &str, bytes: &[u8]) -> bool {
    match content_type {
        "application/pdf" => bytes.starts_with(b"%PDF-"),
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(b"\xFF\xD8\xFF"),
        "text/plain" => std::str::from_utf8(bytes).is_ok_and(|text| !text.contains('\0')),
        _ => false,
    }
}

/// The type and bytes of a file checked, or the problem naming `field`.
fn check_file(
    field: &str,
    content_type: &str,
    allowed: &[&str],
    bytes: &[u8],
) -> Result<(), Error> {
    if !allowed.contains(&content_type) {
        return Err(invalid(field, format!("one of {}", allowed.join(", "))));
    }
    if bytes.is_empty() {
        return Err(invalid(field, "the file is empty"));
    }
    if !is_of_type(content_type, bytes) {
        return Err(invalid(
            field,
            format!("the file's content is not {content_type}"),
        ));
    }
    Ok(())
}

/// A file's `n` from its address, 1 to `most` (any other is not found).
pub(super) fn file_number(n: &str, most: usize) -> Result<i64, Error> {
    n.parse()
        .ok()
        .filter(|n| (1..=most as i64).contains(n))
        .ok_or(Error::NotFound)
}

/// The bytes of a file as stored (base64).
pub(super) fn stored_bytes(data: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|_| Error::Internal("a stored file is not base64".into()))
}

/// A checked file as a request stores it, sent now by `caller`.
fn new_file(caller: &Caller, title: String, content_type: String, bytes: &[u8]) -> NewAttachment {
    NewAttachment {
        title,
        content_type,
        bytes: bytes.len() as i64,
        sha256: sha256_bytes(bytes),
        data: base64::engine::general_purpose::STANDARD.encode(bytes),
        added_by: caller.key_id.clone(),
        added_name: caller.name.clone(),
        added_at: now_ms(),
    }
}

fn sha256_bytes(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

/// An appeal's files checked: their description (`[{n, title, content_type, bytes, sha256}]`)
/// and the rows to store (content type, base64).
pub(super) fn appeal_files(
    attachments: &[AttachmentBody],
) -> Result<(String, Vec<(String, String)>), Error> {
    if attachments.len() > APPEAL_FILES_MAX {
        return Err(invalid(
            "attachments",
            format!("at most {APPEAL_FILES_MAX} files"),
        ));
    }
    let mut described = Vec::new();
    let mut stored = Vec::new();
    for (i, attachment) in attachments.iter().enumerate() {
        let field = |name: &str| format!("attachments[{i}].{name}");
        let title = text(&field("title"), &attachment.title, TITLE_MAX)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(attachment.data.as_bytes())
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .ok_or_else(|| invalid(&field("data"), "the file's bytes in base64, not empty"))?;
        check_file(
            &field("content_type"),
            &attachment.content_type,
            APPEAL_FILE_TYPES,
            &bytes,
        )?;
        described.push(json!({
            "n": i + 1,
            "title": title,
            "content_type": attachment.content_type,
            "bytes": bytes.len(),
            "sha256": sha256_bytes(&bytes),
        }));
        stored.push((attachment.content_type.clone(), attachment.data.clone()));
    }
    Ok((Value::Array(described).to_string(), stored))
}

/// What identifies a file sent to a request, for a retry with the same `Idempotency-Key`.
#[derive(Debug, Serialize)]
pub struct FileCall<'a> {
    pub title: &'a str,
    pub content_type: String,
    pub sha256: String,
}

impl<'a> FileCall<'a> {
    /// The call as the service reads it: the title trimmed, the type without its parameters
    /// and in lower case (a retry formatted otherwise is the same call).
    pub fn new(title: &'a str, content_type: &'a str, bytes: &[u8]) -> FileCall<'a> {
        FileCall {
            title: title.trim(),
            content_type: media_type(content_type),
            sha256: sha256_bytes(bytes),
        }
    }
}

/// A `Content-Type` without its parameters, in lower case (`application/pdf; name=x` is
/// `application/pdf`).
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Adds a file to a pending request: by its requester's organization (to support it) or by
/// a reviewer (a report the prescriber's office sent by other means). A file is part of the
/// request's record, which the requester reads too (a reviewer's own notes are comments). A
/// decided request takes new files with an appeal. The answer: the file as listed; true when
/// it is a retry's.
pub async fn add(
    service: &Service,
    caller: &Caller,
    id: &str,
    file_title: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
    retry: Option<&Retry>,
) -> Result<(Value, bool), Error> {
    require(caller, &[Role::Submitter, Role::Reviewer])?;
    let file_title = text("title", file_title.unwrap_or_default(), TITLE_MAX)?;
    let content_type = media_type(content_type.unwrap_or_default());
    check_file("Content-Type", &content_type, REQUEST_FILE_TYPES, bytes)?;
    if bytes.len() > FILE_BYTES_MAX {
        return Err(invalid(
            "body",
            format!("a file is at most {FILE_BYTES_MAX} bytes"),
        ));
    }
    let mut tx = match begin(service, caller, retry).await? {
        Begun::Fresh(tx) => tx,
        Begun::Replayed(answer) => return Ok((answer, true)),
    };
    let row = fetch(&mut tx, caller, id).await?;
    if !is_pending(&row.status) {
        return Err(Error::Conflict(format!(
            "the request is `{}`: files are sent while it is pending, or with an appeal once it is decided",
            row.status
        )));
    }
    if records::of_request(&mut tx, id).await?.len() >= FILES_PER_REQUEST {
        return Err(invalid(
            "body",
            format!("a request holds at most {FILES_PER_REQUEST} files"),
        ));
    }
    let file = new_file(caller, file_title, content_type, bytes);
    let n = records::add(&mut tx, id, &file)
        .await
        .map_err(|error| raced(error, "file"))?;
    audit_added(&mut tx, caller, id).await?;
    let mut answer = file_view(&Attachment {
        n,
        title: file.title,
        content_type: file.content_type,
        bytes: file.bytes,
        sha256: file.sha256,
        added_name: file.added_name,
        added_at: file.added_at,
    });
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("request_id".into(), json!(id));
    }
    if let Some(retry) = retry {
        retry.remember(&mut tx, caller, &answer).await?;
    }
    tx.commit().await?;
    Ok((answer, false))
}

/// A file that came with a request through another interface (a document of a PAS Claim).
#[derive(Debug, Clone)]
pub struct SentFile {
    /// Where it was in what was sent, for a problem about it.
    pub field: String,
    pub title: String,
    pub content_type: String,
    /// The file, base64.
    pub data: String,
}

/// Files sent with a submission checked before anything is stored: each a PDF, PNG, JPEG
/// or plain text (as an appeal's) by its content, at most `FILE_BYTES_MAX`, and at most
/// `FILES_PER_REQUEST` of them. A file this service cannot keep is refused, naming it,
/// rather than dropped: a reviewer would decide without it.
pub fn check_sent(files: &[SentFile]) -> Result<Vec<(SentFile, Vec<u8>)>, Error> {
    if files.len() > FILES_PER_REQUEST {
        return Err(invalid(
            files
                .get(FILES_PER_REQUEST)
                .map_or("", |f| f.field.as_str()),
            format!("a request holds at most {FILES_PER_REQUEST} files"),
        ));
    }
    files
        .iter()
        .map(|file| {
            // FHIR's base64Binary may be broken into lines.
            let data: String = file
                .data
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|_| invalid(&file.field, "the document's data is not base64"))?;
            check_file(&file.field, &file.content_type, APPEAL_FILE_TYPES, &bytes)?;
            if bytes.len() > FILE_BYTES_MAX {
                return Err(invalid(
                    &file.field,
                    format!("a file is at most {FILE_BYTES_MAX} bytes"),
                ));
            }
            let checked = SentFile {
                title: text(&file.field, &file.title, TITLE_MAX)?,
                ..file.clone()
            };
            Ok((checked, bytes))
        })
        .collect()
}

/// Stores the files checked by `check_sent` with the request they came with, each once: a
/// submission sent again (the same request answered again) adds none it already holds.
pub async fn add_sent(
    service: &Service,
    caller: &Caller,
    id: &str,
    files: &[(SentFile, Vec<u8>)],
) -> Result<(), Error> {
    if files.is_empty() {
        return Ok(());
    }
    require(caller, &[Role::Submitter, Role::Admin])?;
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    let mut held: Vec<String> = records::of_request(&mut tx, &row.id)
        .await?
        .into_iter()
        .map(|f| f.sha256)
        .collect();
    let mut added = false;
    for (file, bytes) in files {
        let new = new_file(caller, file.title.clone(), file.content_type.clone(), bytes);
        if held.contains(&new.sha256) {
            continue;
        }
        records::add(&mut tx, id, &new)
            .await
            .map_err(|error| raced(error, "file"))?;
        held.push(new.sha256);
        added = true;
    }
    if added {
        audit_added(&mut tx, caller, id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The files of a request as its readers see them listed (without their bytes).
pub(super) async fn listed(tx: &mut Tx, id: &str) -> Result<Value, Error> {
    let files = records::of_request(tx, id).await?;
    Ok(Value::Array(files.iter().map(file_view).collect()))
}

/// A file as the request lists it (without its bytes).
fn file_view(f: &Attachment) -> Value {
    json!({
        "n": f.n,
        "title": f.title,
        "content_type": f.content_type,
        "bytes": f.bytes,
        "sha256": f.sha256,
        "added_by": f.added_name,
        "added_at": timestamp(f.added_at),
    })
}

/// The audit entry of files added to a request, bound to it: its audited state now holds
/// them (the entry's target is the request, as every entry that binds one).
async fn audit_added(tx: &mut Tx, caller: &Caller, id: &str) -> Result<(), Error> {
    store::audit(
        tx,
        &caller
            .audit_record("request.attachment.add", id)
            .binding(store::Binds::Request),
    )
    .await?;
    Ok(())
}

/// A file of a request: its content type and bytes (the read audited).
pub async fn read(
    service: &Service,
    caller: &Caller,
    id: &str,
    n: &str,
) -> Result<(String, Vec<u8>), Error> {
    let n = file_number(n, FILES_PER_REQUEST)?;
    let mut tx = service.store.pool.begin().await?;
    let row = fetch(&mut tx, caller, id).await?;
    let (content_type, data) = records::data(&mut tx, &row.id, n)
        .await?
        .ok_or(Error::NotFound)?;
    let bytes = stored_bytes(&data)?;
    store::audit(
        &mut tx,
        &caller.audit_record("request.attachment.read", &format!("{id}/{n}")),
    )
    .await?;
    tx.commit().await?;
    Ok((content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_what_its_first_bytes_say() {
        assert!(is_of_type("application/pdf", b"%PDF-1.7\n..."));
        assert!(!is_of_type("application/pdf", b"<html><script>"));
        assert!(is_of_type("image/png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(!is_of_type("image/png", b"%PDF-1.7"));
        assert!(is_of_type("image/jpeg", b"\xFF\xD8\xFF\xE0\0\x10JFIF"));
        assert!(!is_of_type("image/jpeg", b"GIF89a"));
        assert!(is_of_type("text/plain", "Dear reviewer, é".as_bytes()));
        assert!(!is_of_type("text/plain", b"\xFF\xFE"));
        assert!(!is_of_type("text/html", b"<html>"));
    }

    #[test]
    fn an_appeal_file_names_the_field_at_fault() {
        let file = |content_type: &str, data: &str| AttachmentBody {
            title: "Letter".into(),
            content_type: content_type.into(),
            data: data.into(),
        };
        let field = |files: &[AttachmentBody]| match appeal_files(files) {
            Err(Error::Invalid(problems)) => problems[0].0.clone(),
            _ => String::new(),
        };
        assert_eq!(field(&[file("text/plain", "")]), "attachments[0].data");
        assert_eq!(field(&[file("text/plain", "***")]), "attachments[0].data");
        // "<html>" in base64, declared a PDF.
        assert_eq!(
            field(&[file("application/pdf", "PGh0bWw+")]),
            "attachments[0].content_type"
        );
        assert_eq!(
            field(&[file("text/html", "PGh0bWw+")]),
            "attachments[0].content_type"
        );
        assert!(appeal_files(&[file("text/plain", "PGh0bWw+")]).is_ok());
    }
}
