//! Multi-row statements: a batch's rows in one round trip instead of one each.

use std::fmt::Write;

/// `VALUES (…), (…), …` with `rows` copies of `row`, each `$` a parameter in turn:
/// `("($, $, 0)", 2)` gives `VALUES ($1, $2, 0), ($3, $4, 0)` on PostgreSQL and
/// `VALUES (?, ?, 0), (?, ?, 0)` on SQLite (where sqlx looks up each `$N` by name, a cost
/// that grows with a batch's thousands of parameters).
pub(crate) fn values(conn: &sqlx::AnyConnection, row: &str, rows: usize) -> String {
    values_for(conn.backend_name() == "SQLite", row, rows)
}

fn values_for(sqlite: bool, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(8 + rows * (row.len() + 8));
    sql.push_str("VALUES ");
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for c in row.chars() {
            if c == '$' && sqlite {
                sql.push('?');
            } else if c == '$' {
                n += 1;
                let _ = write!(sql, "${n}");
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::values_for;

    #[test]
    fn placeholders_are_numbered_across_rows() {
        assert_eq!(
            values_for(false, "($, $, 'queued', $)", 2),
            "VALUES ($1, $2, 'queued', $3), ($4, $5, 'queued', $6)"
        );
        assert_eq!(values_for(false, "($)", 1), "VALUES ($1)");
        assert_eq!(
            values_for(true, "($, 0, $)", 2),
            "VALUES (?, 0, ?), (?, 0, ?)"
        );
    }
}
