//! One module per table, plus the writes that span tables.

pub mod idempotency_keys;
pub mod processing_jobs;
pub mod sign_in_failures;
pub mod uploads;
pub mod users;
pub mod video_sources;

/// A table's column list (`"a, b, c"`) qualified with a table alias (`"v.a, v.b, v.c"`).
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many columns a column list names.
pub(crate) fn width(columns: &str) -> i32 {
    columns.split(", ").count() as i32
}

use crate::db::{self, DbError, OwnedRow};

/// The id an `INSERT … RETURNING id` step returned, if it inserted a row.
pub fn inserted_id(rows: &[OwnedRow]) -> Result<Option<i64>, DbError> {
    rows.first().map(|r| db::int(r, 0)).transpose()
}

/// A new video's 201 body is stored with its idempotency key (and its upload) in the same
/// transaction that inserts the video and its job, one round trip, before their ids are known.
/// So the body is rendered with these stand-in ids, and the ids are put in by SQL
/// ([`fill_ids_sql`]) in the statement that stores it, and by Rust ([`fill_ids`]) for the answer:
/// the same replacements, so the stored body and the first answer are the same text. Each
/// pattern is a JSON key with its number and the comma after it: inside a JSON string a `"` is
/// always escaped, so no title or link can contain a pattern.
pub(crate) const VIDEO_ID_SLOT: i64 = -4_611_686_018_427_387_904;
pub(crate) const JOB_ID_SLOT: i64 = -4_611_686_018_427_387_905;

fn id_patterns() -> [(String, &'static str, bool); 3] {
    [
        (format!("\"id\":{VIDEO_ID_SLOT},"), "\"id\":", false),
        (
            format!("\"video_source_id\":{VIDEO_ID_SLOT},"),
            "\"video_source_id\":",
            false,
        ),
        (format!("\"id\":{JOB_ID_SLOT},"), "\"id\":", true),
    ]
}

/// `template` with the stand-in ids replaced by the real ones.
pub(crate) fn fill_ids(template: &str, video_id: i64, job_id: i64) -> String {
    let mut body = template.to_owned();
    for (pattern, key, is_job) in id_patterns() {
        let id = if is_job { job_id } else { video_id };
        body = body.replace(&pattern, &format!("{key}{id},"));
    }
    body
}

/// [`fill_ids`] as an SQL expression: `template` (an SQL expression, e.g. `?3`) with the ids the
/// SQL expressions `video_id` and `job_id` give.
pub(crate) fn fill_ids_sql(template: &str, video_id: &str, job_id: &str) -> String {
    let mut expr = template.to_owned();
    for (pattern, key, is_job) in id_patterns() {
        let id = if is_job { job_id } else { video_id };
        expr = format!("replace({expr}, '{pattern}', '{key}' || ({id}) || ',')");
    }
    expr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_ids_are_replaced_and_text_that_looks_like_them_is_not() {
        let hostile = format!("\"id\":{VIDEO_ID_SLOT}, and \"id\":{JOB_ID_SLOT},");
        let template = serde_json::json!({
            "video_source": {"id": VIDEO_ID_SLOT, "title": hostile, "user_id": 1},
            "processing_job": {"id": JOB_ID_SLOT, "video_source_id": VIDEO_ID_SLOT, "x": 1},
        })
        .to_string();
        let body = fill_ids(&template, 12, 34);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["video_source"]["id"], 12);
        assert_eq!(v["processing_job"]["id"], 34);
        assert_eq!(v["processing_job"]["video_source_id"], 12);
        assert_eq!(v["video_source"]["title"], hostile.as_str());
    }
}
