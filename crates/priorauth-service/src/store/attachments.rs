//! The SQL of what is added to a request beside its case: the files sent with it
//! (`request_attachments`) and the reviewers' comments on it (`request_comments`). Both belong
//! to their request: its audit entries bind them (`audit::Binds::Request`).

use sqlx::Row;

use super::{StoreError, Tx};

/// A file sent with a request, as checked when it came.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub title: String,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: String,
    /// The file, base64.
    pub data: String,
    pub added_by: String,
    pub added_name: String,
    pub added_at: i64,
}

/// A file sent with a request, without its data.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub n: i64,
    pub title: String,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: String,
    pub added_name: String,
    pub added_at: i64,
}

/// Adds a file as the request's next; its `n`. Two at once on one request: one of them meets
/// the other's `n` and fails with a unique violation, to be sent again.
pub async fn add(tx: &mut Tx, request_id: &str, file: &NewAttachment) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO request_attachments (request_id, n, title, content_type, bytes, sha256, data, added_by, added_name, added_at) \
         SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9 FROM request_attachments WHERE request_id = $1 \
         RETURNING n",
    )
    .bind(request_id)
    .bind(&file.title)
    .bind(&file.content_type)
    .bind(file.bytes)
    .bind(&file.sha256)
    .bind(&file.data)
    .bind(&file.added_by)
    .bind(&file.added_name)
    .bind(file.added_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("n")?)
}

/// The files of a request, in the order they came.
pub async fn of_request(tx: &mut Tx, request_id: &str) -> Result<Vec<Attachment>, StoreError> {
    let rows = sqlx::query(
        "SELECT n, title, content_type, bytes, sha256, added_name, added_at FROM request_attachments \
         WHERE request_id = $1 ORDER BY n",
    )
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Attachment {
                n: row.try_get("n")?,
                title: row.try_get("title")?,
                content_type: row.try_get("content_type")?,
                bytes: row.try_get("bytes")?,
                sha256: row.try_get("sha256")?,
                added_name: row.try_get("added_name")?,
                added_at: row.try_get("added_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}

/// A file's content type and data (base64).
pub async fn data(
    tx: &mut Tx,
    request_id: &str,
    n: i64,
) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT content_type, data FROM request_attachments WHERE request_id = $1 AND n = $2",
    )
    .bind(request_id)
    .bind(n)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row
        .map(|row| -> Result<(String, String), sqlx::Error> {
            Ok((row.try_get("content_type")?, row.try_get("data")?))
        })
        .transpose()?)
}

/// A reviewer's comment on a request, or on one of its policy's criteria.
#[derive(Debug, Clone)]
pub struct Comment {
    pub n: i64,
    pub criterion: Option<String>,
    pub body: String,
    pub author_key: String,
    pub author_name: String,
    pub at: i64,
}

/// Adds a comment as the request's next (its `n` is ignored); its `n`.
pub async fn comment(tx: &mut Tx, request_id: &str, comment: &Comment) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO request_comments (request_id, n, criterion, body, author_key, author_name, at) \
         SELECT $1, COALESCE(MAX(n), 0) + 1, $2, $3, $4, $5, $6 FROM request_comments WHERE request_id = $1 \
         RETURNING n",
    )
    .bind(request_id)
    .bind(&comment.criterion)
    .bind(&comment.body)
    .bind(&comment.author_key)
    .bind(&comment.author_name)
    .bind(comment.at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("n")?)
}

/// The comments on a request, in the order they were made.
pub async fn comments(tx: &mut Tx, request_id: &str) -> Result<Vec<Comment>, StoreError> {
    let rows = sqlx::query(
        "SELECT n, criterion, body, author_key, author_name, at FROM request_comments \
         WHERE request_id = $1 ORDER BY n",
    )
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Comment {
                n: row.try_get("n")?,
                criterion: row.try_get("criterion")?,
                body: row.try_get("body")?,
                author_key: row.try_get("author_key")?,
                author_name: row.try_get("author_name")?,
                at: row.try_get("at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
}
