//! Hand-written SQL that the connection prepares once: [`prepared`] is diesel's `sql_query`
//! with `.bind::<T, _>(…)` and `.load`/`.get_result`/`.execute` as before, but its statement
//! goes into the connection's prepared-statement cache.
//!
//! diesel never caches a `sql_query` (its text could be built at run time, so the cache could
//! grow without bound): every execution is parsed, analysed and planned again. For the
//! statements a process runs many times a second that is most of their cost — the presence
//! hub's page reads spent half their database time in the parser and planner under
//! reader-bench (docs/performance.md "Prepared once"). A [`Prepared`] statement's text is a
//! `&'static str`, so the cache holds at most one entry per statement in the binary.
//!
//! The text's `$1`, `$2`, … are its parameters, as in `sql_query`; the text must hold no other
//! `$` (no dollar quoting). Each placeholder is sent as a parameter of its own, so a value
//! used twice is bound twice.

use std::marker::PhantomData;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// `sql` as a statement prepared once per connection; bind its `$n` in order with
/// [`Prepared::bind`].
pub fn prepared(sql: &'static str) -> Prepared<()> {
    Prepared { sql, binds: () }
}

/// A statement of [`prepared`] and its bound values so far.
#[derive(Debug, Clone, Copy)]
#[must_use = "a statement does nothing until it is loaded or executed"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

/// A bound value of SQL type `T`, after the values `prev`.
#[derive(Debug, Clone, Copy)]
pub struct Bound<Prev, T, U> {
    prev: Prev,
    value: U,
    sql_type: PhantomData<fn() -> T>,
}

impl<B: Binds> Prepared<B> {
    /// Binds the next parameter (`$1` first) to `value`, sent as SQL type `T`.
    pub fn bind<T, U>(self, value: U) -> Prepared<Bound<B, T, U>>
    where
        Pg: HasSqlType<T>,
        U: ToSql<T, Pg>,
    {
        Prepared { sql: self.sql, binds: Bound { prev: self.binds, value, sql_type: PhantomData } }
    }
}

/// The values of a statement, pushed by position.
pub trait Binds {
    /// How many values.
    const COUNT: usize;

    /// Pushes value `index` (0-based) as a parameter.
    fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl Binds for () {
    const COUNT: usize = 0;

    fn push<'b>(&'b self, index: usize, _out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Err(placeholder_error(format!("${} has no bound value", index + 1)))
    }
}

impl<Prev: Binds, T, U> Binds for Bound<Prev, T, U>
where
    Pg: HasSqlType<T>,
    U: ToSql<T, Pg>,
{
    const COUNT: usize = Prev::COUNT + 1;

    fn push<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if index == Prev::COUNT { out.push_bind_param::<T, U>(&self.value) } else { self.prev.push(index, out) }
    }
}

fn placeholder_error(message: String) -> Error {
    Error::QueryBuilderError(message.into())
}

impl<B: Binds> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
            let number: usize = rest[at + 1..at + 1 + digits]
                .parse()
                .map_err(|_| placeholder_error(format!("a `$` that is no placeholder in {:?}", self.sql)))?;
            if number == 0 || number > B::COUNT {
                return Err(placeholder_error(format!("${number} of a statement with {} bound values", B::COUNT)));
            }
            self.binds.push(number - 1, &mut out)?;
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl<B> QueryId for Prepared<B> {
    type QueryId = ();

    // The cache key is then the statement's text and its parameter types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B: Binds> Query for Prepared<B> {
    type SqlType = Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    #[test]
    fn placeholders_become_parameters_in_the_order_the_text_uses_them() {
        let q = prepared("SELECT $2 || x FROM t WHERE a = $1 AND b = $2").bind::<BigInt, _>(7_i64).bind::<Text, _>("s");
        let shown = debug_query::<Pg, _>(&q).to_string();
        assert!(shown.starts_with("SELECT $1 || x FROM t WHERE a = $2 AND b = $3 -- binds: "), "{shown}");
        assert!(shown.ends_with("[\"s\", 7, \"s\"]"), "{shown}");
    }

    #[test]
    fn a_placeholder_without_a_value_is_an_error_not_a_panic() {
        let sql = |q: &dyn QueryFragment<Pg>| {
            q.to_sql(&mut <Pg as diesel::backend::Backend>::QueryBuilder::default(), &Pg).map_err(|e| e.to_string())
        };
        let missing = sql(&prepared("SELECT $1, $2").bind::<BigInt, _>(1_i64)).unwrap_err();
        assert!(missing.contains("$2 of a statement with 1 bound values"), "{missing}");
        let stray = sql(&prepared("SELECT '$x'")).unwrap_err();
        assert!(stray.contains("no placeholder"), "{stray}");
        assert!(sql(&prepared("SELECT 1")).is_ok());
    }
}
