//! Listing filters as SQL: a `WHERE` clause with its parameters, and one counted page.

use rusqlite::Row;
use rusqlite::types::Value;

use super::writer::Db;
use super::{connection::sql_error, limit_offset};
use crate::store::{Page, StoreResult, Timestamp, to_micros};

/// A `WHERE` clause under construction; empty filters add nothing.
#[derive(Debug, Default)]
pub(super) struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    /// No condition yet.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Add `condition` (with `?` placeholders for `params`, in order).
    pub(super) fn clause(&mut self, condition: &str, params: impl IntoIterator<Item = Value>) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
        self.params.extend(params);
    }

    /// `column = value` when a value is given.
    pub(super) fn eq(&mut self, column: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.clause(&format!("{column} = ?"), [Value::Text(value.to_owned())]);
        }
    }

    /// `column` is one of `values`, when any are given (one parameter, however many).
    pub(super) fn one_of<S: AsRef<str>>(&mut self, column: &str, values: &[S]) {
        if values.is_empty() {
            return;
        }
        let list: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        self.clause(
            &format!("{column} IN (SELECT value FROM json_each(?))"),
            [Value::Text(json_list(&list))],
        );
    }

    /// [`Where::one_of`] on a column whose index is partial, leaving out the rows holding
    /// `left_out` (`… WHERE column <> 'left_out'`): when `values` do not name it, the clause
    /// also says `column <> 'left_out'` in the index's own words, which is what lets SQLite
    /// choose that index (it uses a partial index only for a query whose `WHERE` holds the
    /// index's condition as written).
    pub(super) fn one_of_partial<S: AsRef<str>>(
        &mut self,
        column: &str,
        values: &[S],
        left_out: &str,
    ) {
        if values.is_empty() {
            return;
        }
        self.one_of(column, values);
        if values.iter().all(|v| v.as_ref() != left_out) {
            self.clause(&format!("{column} <> '{left_out}'"), []);
        }
    }

    /// `column > t` when given.
    pub(super) fn after(&mut self, column: &str, t: Option<Timestamp>) {
        if let Some(t) = t {
            self.clause(&format!("{column} > ?"), [Value::Integer(to_micros(t))]);
        }
    }

    /// `column < t` when given.
    pub(super) fn before(&mut self, column: &str, t: Option<Timestamp>) {
        if let Some(t) = t {
            self.clause(&format!("{column} < ?"), [Value::Integer(to_micros(t))]);
        }
    }

    /// Fetch the `page` of the rows of `table` matching, in `order`, each row's `columns`
    /// mapped by `map`, and count all the rows matching. The count is a second query only when
    /// the page does not tell it: a page shorter than its limit (or unlimited) ends the rows.
    pub(super) fn page<R>(
        &self,
        db: &Db<'_, '_>,
        table: &str,
        columns: &str,
        order: &str,
        page: Page,
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<R>,
    ) -> StoreResult<(Vec<R>, u64)> {
        let conn = db.conn();
        let (limit, offset) = limit_offset(page);
        let limits = [Value::Integer(limit), Value::Integer(offset)];
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM {table}{} ORDER BY {order} LIMIT ? OFFSET ?",
                self.sql
            ))
            .map_err(sql_error)?;
        let rows = statement
            .query_map(
                rusqlite::params_from_iter(self.params.iter().chain(limits.iter())),
                |row| map(row),
            )
            .map_err(sql_error)?
            .collect::<rusqlite::Result<Vec<R>>>()
            .map_err(sql_error)?;
        let fetched = rows.len() as u64;
        let last_page = page.limit.is_none_or(|l| fetched < l);
        // An empty page past the first may lie beyond the end: only a count says where.
        if last_page && (fetched > 0 || page.offset == 0) {
            return Ok((rows, page.offset.saturating_add(fetched)));
        }
        let total: i64 = conn
            .prepare_cached(&format!("SELECT count(*) FROM {table}{}", self.sql))
            .and_then(|mut s| {
                s.query_row(rusqlite::params_from_iter(self.params.iter()), |r| r.get(0))
            })
            .map_err(sql_error)?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}

/// A JSON array of strings, for `json_each(?)`.
pub(super) fn json_list(values: &[&str]) -> String {
    // Serialising strings cannot fail.
    serde_json::to_string(values).unwrap_or_else(|_| "[]".into())
}
