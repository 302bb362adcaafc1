//! The hand-written diesel `table!` definitions (`services/db/src/schema/*.rs`) must match
//! the migrated database: same tables, same columns, same types and nullability, same keys.
//! Fails naming every difference, so a migration without its `table!` change cannot land.

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::RunQueryDsl;
use phoenix_tests::TestDb;

/// `schema.table` → column → (diesel type, nullable).
type Columns = BTreeMap<String, BTreeMap<String, (String, bool)>>;

#[derive(Debug, Default)]
struct Model {
    columns: Columns,
    primary_keys: BTreeMap<String, Vec<String>>,
}

/// Reads `table!` blocks: a header `schema.table (pk, …) {` then `name -> Type,` lines.
fn parse_schema_files() -> Model {
    let dir = phoenix_tests::workspace_root().join("services/db/src/schema");
    let mut model = Model::default();
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("schema dir").flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read schema file");
        let mut current: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if let Some(cur) = &current {
                if line == "}" {
                    current = None;
                } else if let Some((name, ty)) = line.split_once("->") {
                    let name = name.trim().trim_start_matches("r#").to_owned();
                    let ty = ty.trim().trim_end_matches(',').trim();
                    let (ty, nullable) = match ty.strip_prefix("Nullable<").and_then(|t| t.strip_suffix('>')) {
                        Some(inner) => (inner, true),
                        None => (ty, false),
                    };
                    // print-schema writes array elements as nullable; both spellings mean the same column.
                    let ty = ty.replace("Array<Nullable<", "Array<").replace(">>", ">");
                    model.columns.entry(cur.clone()).or_default().insert(name, (ty, nullable));
                }
            } else if let Some((head, rest)) = line.split_once(" (")
                && head.contains('.')
                && !head.contains(' ')
                && rest.ends_with(") {")
            {
                let pk = rest.trim_end_matches(") {").split(',').map(|c| c.trim().to_owned()).collect();
                model.primary_keys.insert(head.to_owned(), pk);
                model.columns.entry(head.to_owned()).or_default();
                current = Some(head.to_owned());
            }
        }
    }
    model
}

#[derive(QueryableByName)]
struct DbColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    udt_name: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct DbKey {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

fn diesel_type(udt: &str) -> String {
    let base = |t: &str| {
        match t {
            "int2" => "Int2",
            "int4" => "Int4",
            "int8" => "Int8",
            "bool" => "Bool",
            "text" => "Text",
            "varchar" => "Varchar",
            "bpchar" => "Bpchar",
            "bytea" => "Bytea",
            "timestamptz" => "Timestamptz",
            "timestamp" => "Timestamp",
            "date" => "Date",
            "time" => "Time",
            "jsonb" => "Jsonb",
            "json" => "Json",
            "uuid" => "Uuid",
            "inet" => "Inet",
            "numeric" => "Numeric",
            "float8" => "Float8",
            other => other,
        }
        .to_owned()
    };
    match udt.strip_prefix('_') {
        Some(elem) => format!("Array<{}>", base(elem)),
        None => base(udt),
    }
}

/// The migrated tables, partitions left out (their parent is the table), and primary keys
/// without a partitioned table's partition key (PostgreSQL requires it in the key; `table!`
/// names the columns that identify a row, e.g. `active.visits (id)`).
async fn database_model(db: &TestDb) -> Model {
    let mut conn = db.conn().await;
    let cols: Vec<DbColumn> = diesel::sql_query(
        "SELECT (c.table_schema || '.' || c.table_name)::text AS table_name, c.column_name::text AS column_name, \
                c.udt_name::text AS udt_name, (c.is_nullable = 'YES') AS nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('public', 'pg_catalog', 'information_schema') \
           AND NOT EXISTS (SELECT 1 FROM pg_class p JOIN pg_namespace pn ON pn.oid = p.relnamespace \
                           WHERE pn.nspname = c.table_schema AND p.relname = c.table_name AND p.relispartition)",
    )
    .load(&mut conn)
    .await
    .expect("information_schema.columns");
    let keys: Vec<DbKey> = diesel::sql_query(
        "SELECT (n.nspname || '.' || t.relname)::text AS table_name, a.attname::text AS column_name \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE i.indisprimary AND n.nspname NOT IN ('public', 'pg_catalog') AND NOT t.relispartition \
           AND NOT EXISTS (SELECT 1 FROM pg_partitioned_table pt \
                           WHERE pt.partrelid = t.oid AND a.attnum = ANY (pt.partattrs::int2[])) \
         ORDER BY 1, k.pos",
    )
    .load(&mut conn)
    .await
    .expect("primary keys");
    let mut model = Model::default();
    for c in cols {
        model.columns.entry(c.table_name).or_default().insert(c.column_name, (diesel_type(&c.udt_name), c.nullable));
    }
    for k in keys {
        model.primary_keys.entry(k.table_name).or_default().push(k.column_name);
    }
    model
}

#[tokio::test]
async fn table_definitions_match_the_migrated_database() {
    let db = TestDb::new().await;
    let code = parse_schema_files();
    let database = database_model(&db).await;
    let mut problems = Vec::new();

    let code_tables: BTreeSet<_> = code.columns.keys().collect();
    let db_tables: BTreeSet<_> = database.columns.keys().collect();
    for t in db_tables.difference(&code_tables) {
        problems.push(format!("table {t} exists in the database but has no table! definition"));
    }
    for t in code_tables.difference(&db_tables) {
        problems.push(format!("table! {t} has no table in the database"));
    }
    for (table, db_cols) in &database.columns {
        let Some(code_cols) = code.columns.get(table) else { continue };
        for (col, (ty, nullable)) in db_cols {
            match code_cols.get(col) {
                None => problems.push(format!("{table}.{col} is missing from table!")),
                Some((cty, cnull)) if cty != ty || cnull != nullable => problems.push(format!(
                    "{table}.{col}: table! says {}{cty}, database has {}{ty}",
                    if *cnull { "Nullable " } else { "" },
                    if *nullable { "Nullable " } else { "" },
                )),
                Some(_) => {}
            }
        }
        for col in code_cols.keys().filter(|c| !db_cols.contains_key(*c)) {
            problems.push(format!("{table}.{col} is in table! but not in the database"));
        }
        if code.primary_keys.get(table) != database.primary_keys.get(table) {
            problems.push(format!(
                "{table}: table! primary key {:?}, database {:?}",
                code.primary_keys.get(table),
                database.primary_keys.get(table)
            ));
        }
    }
    assert!(problems.is_empty(), "schema drift ({}):\n  {}", problems.len(), problems.join("\n  "));
    assert!(code.columns.len() >= 40, "the data model's tables were all parsed ({} found)", code.columns.len());
}
