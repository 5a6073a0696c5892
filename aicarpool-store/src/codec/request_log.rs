//! The request log's SQL, which both backends write alike: numbered
//! parameters differ only in their sigil (`?1` in SQLite, `$1` in
//! PostgreSQL) and every other construct is standard.

use aicarpool_core::usage::{RefusalReason, RequestQuery, StatusFilter};

/// A value a statement binds, in order.
pub(crate) enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// A statement and its parameters, numbered from 1.
pub(crate) struct Statement<'a> {
    pub sql: String,
    pub params: Vec<Param<'a>>,
}

/// Builds a statement's `WHERE` terms with numbered parameters.
struct Terms<'a> {
    sigil: char,
    sql: String,
    params: Vec<Param<'a>>,
}

impl<'a> Terms<'a> {
    fn next(&mut self, p: Param<'a>) -> String {
        self.params.push(p);
        format!("{}{}", self.sigil, self.params.len())
    }

    fn and(&mut self, term: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(term);
    }
}

/// One page of the request log (one row more than a page, to tell whether
/// there is a next). `scope` is the scope's condition with its ids
/// numbered from 1; `id_order` is how ids compare as bytes (PostgreSQL
/// needs `COLLATE "C"`, SQLite compares bytes already).
pub(crate) fn requests<'a>(
    sigil: char,
    id_order: &str,
    scope: (String, Vec<&'a str>),
    q: &'a RequestQuery,
) -> Statement<'a> {
    let (scope_sql, ids) = scope;
    let mut t = Terms {
        sigil,
        sql: format!("({scope_sql})"),
        params: ids.into_iter().map(Param::Text).collect(),
    };
    match q.status {
        None => {}
        Some(StatusFilter::Ok) => t.and("status < 400"),
        Some(StatusFilter::Error) => t.and("status >= 400"),
        Some(StatusFilter::Refused) => t.and("refusal IS NOT NULL"),
        Some(StatusFilter::Code(c)) => {
            let p = t.next(Param::Int(i64::from(c)));
            t.and(&format!("status = {p}"));
        }
    }
    if let Some(m) = &q.model {
        let p = t.next(Param::Text(m));
        t.and(&format!("(model = {p} OR served_model = {p})"));
    }
    // Stored times are whole milliseconds; rounding the bounds up keeps
    // `from` inclusive and `to` exclusive exactly.
    if let Some(from) = q.from {
        let p = t.next(Param::Int(super::ms_ceil(from)));
        t.and(&format!("at >= {p}"));
    }
    if let Some(to) = q.to {
        let p = t.next(Param::Int(super::ms_ceil(to)));
        t.and(&format!("at < {p}"));
    }
    if let Some(c) = &q.cursor {
        let at = t.next(Param::Int(c.at_ms));
        let id = t.next(Param::Text(&c.id));
        t.and(&format!("(at < {at} OR (at = {at} AND {id_order} < {id}))"));
    }
    let limit = t.next(Param::Int(
        i64::try_from(q.page_size() + 1).unwrap_or(i64::MAX),
    ));
    Statement {
        sql: format!(
            "SELECT {} FROM usage_records WHERE {} ORDER BY at DESC, {id_order} DESC LIMIT {limit}",
            super::rows::USAGE_RECORD_COLS,
            t.sql
        ),
        params: t.params,
    }
}

/// Adds the records of `source` (a table or a common table expression of
/// `usage_records` rows) to their hours' rollups, merging with the
/// rollups already there.
pub(crate) fn roll_up(source: &str) -> String {
    let sums = [
        "input_tokens",
        "output_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_read_tokens",
        "cost_micro_usd",
    ];
    let counts: Vec<(String, String)> = [
        ("errors", "status >= 400"),
        ("estimated", "accuracy = 'estimated'"),
        ("partial", "accuracy = 'partial'"),
    ]
    .into_iter()
    .map(|(c, when)| (c.to_owned(), when.to_owned()))
    .chain(
        RefusalReason::ALL
            .into_iter()
            .map(|r| (super::rows::refused_col(r), super::rows::refused_when(r))),
    )
    .collect();
    let columns: Vec<&str> = sums
        .iter()
        .copied()
        .chain(counts.iter().map(|(c, _)| c.as_str()))
        .collect();
    let selected: Vec<String> = sums
        .iter()
        .map(|c| format!("SUM({c})"))
        .chain(
            counts
                .iter()
                .map(|(_, when)| format!("SUM(CASE WHEN {when} THEN 1 ELSE 0 END)")),
        )
        .collect();
    let merged: Vec<String> = std::iter::once("requests")
        .chain(columns.iter().copied())
        .map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO usage_rollups (at, key_id, user_id, group_id, account_id, model, requests, {})
         SELECT at - (at % 3600000), key_id, MIN(user_id), MIN(group_id),
                COALESCE(account_id, ''), model, COUNT(*), {}
         FROM {source}
         GROUP BY at - (at % 3600000), key_id, COALESCE(account_id, ''), model
         ON CONFLICT (key_id, at, account_id, model) DO UPDATE SET {}",
        columns.join(", "),
        selected.join(", "),
        merged.join(", ")
    )
}
