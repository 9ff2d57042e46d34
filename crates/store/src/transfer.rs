//! Full export and import of an instance: every table the clinic owns (audit chain and
//! controlled-substance ledger included) as one NDJSON file per table plus `manifest.json`,
//! loadable into an empty database of either engine. The format is documented in
//! docs/export-format.md; it is also the way to move from SQLite to PostgreSQL.
//!
//! Export reads one snapshot (a read transaction) and streams each table in key order to its
//! file, line by line. Import checks the manifest, then reads every file once to validate each
//! line and its SHA-256 before writing anything, then loads all tables in foreign-key order in one
//! transaction (re-checking each file's hash as it goes): a refusal changes nothing.

mod tables;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use kapstone_domain::UtcTs;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, QueryBuilder, Row};

pub use tables::{EXCLUDED, TABLES};

use crate::{Backend, Db, DbTs, Result, StoreError, Tx, on_read, on_tx};

/// The `format` value of every manifest.
pub const FORMAT: &str = "kapstone-export";
/// Bumped on any change to how rows are written; import refuses another version.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// The canonical form of a column in the export (docs/export-format.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// UUID column (PostgreSQL `uuid`, SQLite 16-byte BLOB): lower-case hyphenated string.
    Uuid,
    /// Text, JSON documents included (kept as the exact text, never re-serialised).
    Text,
    /// 32-bit integer (`integer`): JSON number.
    Int,
    /// 64-bit integer (`bigint`): JSON number.
    BigInt,
    /// `true` / `false` (SQLite 0/1).
    Bool,
    /// Instant (`timestamptz`, SQLite INTEGER microseconds): `2026-01-02T03:04:05.000006Z`.
    Ts,
    /// Calendar date (PostgreSQL `date`, SQLite TEXT): `YYYY-MM-DD`.
    Date,
}

impl Kind {
    /// The PostgreSQL `information_schema.columns.data_type` of this kind.
    pub fn pg_type(self) -> &'static str {
        match self {
            Kind::Uuid => "uuid",
            Kind::Text => "text",
            Kind::Int => "integer",
            Kind::BigInt => "bigint",
            Kind::Bool => "boolean",
            Kind::Ts => "timestamp with time zone",
            Kind::Date => "date",
        }
    }

    /// The declared SQLite column types this kind is stored as.
    pub fn sqlite_types(self) -> &'static [&'static str] {
        match self {
            Kind::Uuid => &["BLOB"],
            Kind::Text | Kind::Date => &["TEXT"],
            Kind::Int => &["INTEGER"],
            Kind::BigInt | Kind::Ts => &["BIGINT", "INTEGER"],
            Kind::Bool => &["BOOLEAN"],
        }
    }
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// The table this column refers to (a foreign key to its `id`).
    pub refs: Option<&'static str>,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The primary key: rows are exported in this order.
    pub key: &'static [&'static str],
    /// Holds a row the migrations insert (`audit_head`): import overwrites it instead of adding.
    pub seeded: bool,
    pub columns: &'static [Column],
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind, refs: None }
}

const fn fk(name: &'static str, kind: Kind, refs: &'static str) -> Column {
    Column { name, kind, refs: Some(refs) }
}

impl Table {
    pub fn file(&self) -> String {
        format!("{}.ndjson", self.name)
    }

    fn column_list(&self) -> String {
        self.columns.iter().map(|c| format!("\"{}\"", c.name)).collect::<Vec<_>>().join(", ")
    }

    fn select_sql(&self, backend: Backend) -> String {
        let order = self
            .key
            .iter()
            .map(|k| {
                let text = self.columns.iter().any(|c| c.name == *k && c.kind == Kind::Text);
                // Byte order on both engines (SQLite's BINARY collation is byte order already).
                if text && backend == Backend::Postgres { format!("\"{k}\" COLLATE \"C\"") } else { format!("\"{k}\"") }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {} FROM \"{}\" ORDER BY {order}", self.column_list(), self.name)
    }

    /// The column that refers to this same table, if any (amendments, reschedules).
    fn self_ref(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.refs == Some(self.name))
    }
}

/// One table's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub file: String,
    pub rows: u64,
    pub sha256: String,
    pub columns: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// The last migration applied to the source; import needs a target at the same version.
    pub schema_version: i64,
    pub source_backend: String,
    pub exported_at: String,
    pub kapstone_version: String,
    pub tables: Vec<TableEntry>,
    pub excluded: Vec<String>,
}

/// A value in its engine-neutral form.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Uuid(uuid::Uuid),
    Text(String),
    Int(i64),
    Bool(bool),
    Ts(UtcTs),
    Date(time::Date),
}

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn refused(msg: impl Into<String>) -> StoreError {
    StoreError::Refused(msg.into())
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    refused(format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Schema checks

/// The last migration applied to `db` (0 for a database never migrated).
pub async fn schema_version(db: &Db) -> Result<i64> {
    let v: Option<i64> = on_read!(db, |c| {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success").fetch_one(c).await?
    });
    Ok(v.unwrap_or(0))
}

/// The last migration this build ships.
pub fn shipped_schema_version(backend: Backend) -> i64 {
    Db::migration_versions(backend).last().copied().unwrap_or(0)
}

/// The tables of the database (without SQLite's internal ones).
pub async fn database_tables(db: &Db) -> Result<Vec<String>> {
    let mut names: Vec<String> = match db {
        Db::Sqlite { read, .. } => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .fetch_all(&mut *read.acquire().await?)
                .await?
        }
        Db::Postgres { pool: p, .. } => {
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(p)
            .await?
        }
    };
    names.sort();
    Ok(names)
}

/// Where the live schema and [`TABLES`] disagree: a table or column the export does not cover,
/// one it expects but the database lacks, a column whose type is not its kind's, or a foreign
/// key not declared. Empty when the export covers the database exactly.
/// (name, name) pairs read from the catalogue: columns with their types, references with their tables.
type Pairs = Vec<(String, String)>;

pub async fn schema_problems(db: &Db) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let live = database_tables(db).await?;
    for t in &live {
        if !TABLES.iter().any(|s| s.name == t) && !EXCLUDED.iter().any(|(e, _)| e == t) {
            problems.push(format!("table {t} is not covered by the export (list it in store/src/transfer/tables.rs)"));
        }
    }
    for spec in TABLES {
        if !live.iter().any(|t| t == spec.name) {
            problems.push(format!("table {} of the export does not exist in the database", spec.name));
            continue;
        }
        // (name, declared type) in column order, and (column, referenced table) pairs.
        let (cols, fks): (Pairs, Pairs) = match db {
            Db::Sqlite { read, .. } => {
                let mut conn = read.acquire().await?;
                (
                    sqlx::query_as("SELECT name, upper(type) FROM pragma_table_info($1) ORDER BY cid")
                        .bind(spec.name)
                        .fetch_all(&mut *conn)
                        .await?,
                    sqlx::query_as("SELECT \"from\", \"table\" FROM pragma_foreign_key_list($1)")
                        .bind(spec.name)
                        .fetch_all(&mut *conn)
                        .await?,
                )
            }
            Db::Postgres { pool: p, .. } => (
                sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(spec.name)
                .fetch_all(p)
                .await?,
                sqlx::query_as(
                    "SELECT a.attname::text, r.relname::text FROM pg_constraint x \
                     JOIN pg_class t ON t.oid = x.conrelid JOIN pg_class r ON r.oid = x.confrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     JOIN pg_attribute a ON a.attrelid = x.conrelid AND a.attnum = x.conkey[1] \
                     WHERE x.contype = 'f' AND n.nspname = current_schema() AND t.relname = $1",
                )
                .bind(spec.name)
                .fetch_all(p)
                .await?,
            ),
        };
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<&str> = spec.columns.iter().map(|c| c.name).collect();
        if names != expected {
            problems.push(format!("columns of {} differ: database {names:?}, export {expected:?}", spec.name));
            continue;
        }
        for (c, (_, ty)) in spec.columns.iter().zip(&cols) {
            let ok = match db {
                Db::Sqlite { .. } => c.kind.sqlite_types().contains(&ty.as_str()),
                Db::Postgres { .. } => c.kind.pg_type() == ty,
            };
            if !ok {
                problems.push(format!("column {}.{} is {ty} in the database, not {:?}", spec.name, c.name, c.kind));
            }
        }
        let mut live_fks: Vec<(String, String)> = fks;
        live_fks.sort();
        let mut spec_fks: Vec<(String, String)> =
            spec.columns.iter().filter_map(|c| c.refs.map(|r| (c.name.to_owned(), r.to_owned()))).collect();
        spec_fks.sort();
        if live_fks != spec_fks {
            problems.push(format!("foreign keys of {} differ: database {live_fks:?}, export {spec_fks:?}", spec.name));
        }
    }
    Ok(problems)
}

/// Problems in [`TABLES`] itself: a reference to a table listed later (import would break the
/// foreign key), a key column that does not exist, a table listed twice.
pub fn spec_problems() -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for t in TABLES {
        if !seen.insert(t.name) {
            problems.push(format!("table {} is listed twice", t.name));
        }
        for k in t.key {
            if !t.columns.iter().any(|c| c.name == *k) {
                problems.push(format!("key column {}.{k} is not a column", t.name));
            }
        }
        for c in t.columns {
            if let Some(r) = c.refs
                && r != t.name
                && !seen.contains(r)
            {
                problems.push(format!("{}.{} refers to {r}, which is not listed before it", t.name, c.name));
            }
        }
        if let Some(i) = t.self_ref()
            && (t.key != ["id"] || t.columns[i].kind != Kind::Uuid)
        {
            problems.push(format!("{} refers to itself but its key is not a uuid `id`", t.name));
        }
    }
    problems
}

async fn ensure_covered(db: &Db) -> Result<()> {
    let mut problems = spec_problems();
    problems.extend(schema_problems(db).await?);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(refused(format!("the export does not match this database's schema: {}", problems.join("; "))))
    }
}

// ---------------------------------------------------------------------------------------------
// Export

fn uuid_decode(v: Option<uuid::Uuid>) -> Val {
    v.map_or(Val::Null, Val::Uuid)
}

fn sqlite_val(row: &SqliteRow, i: usize, table: &str, c: &Column) -> Result<Val> {
    Ok(match c.kind {
        Kind::Uuid => uuid_decode(row.try_get(i)?),
        Kind::Text => row.try_get::<Option<String>, _>(i)?.map_or(Val::Null, Val::Text),
        Kind::Int | Kind::BigInt => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
        Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map_or(Val::Null, Val::Bool),
        Kind::Ts => row.try_get::<Option<DbTs>, _>(i)?.map_or(Val::Null, |t| Val::Ts(t.0)),
        Kind::Date => {
            match row.try_get::<Option<String>, _>(i)? {
                None => Val::Null,
                Some(s) => Val::Date(time::Date::parse(&s, DATE_FORMAT).map_err(|_| {
                    StoreError::Corrupt(format!("{table}.{}: {s:?} is not a date (YYYY-MM-DD)", c.name))
                })?),
            }
        }
    })
}

fn pg_val(row: &PgRow, i: usize, _table: &str, c: &Column) -> Result<Val> {
    Ok(match c.kind {
        Kind::Uuid => uuid_decode(row.try_get(i)?),
        Kind::Text => row.try_get::<Option<String>, _>(i)?.map_or(Val::Null, Val::Text),
        Kind::Int => row.try_get::<Option<i32>, _>(i)?.map_or(Val::Null, |n| Val::Int(i64::from(n))),
        Kind::BigInt => row.try_get::<Option<i64>, _>(i)?.map_or(Val::Null, Val::Int),
        Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map_or(Val::Null, Val::Bool),
        Kind::Ts => row.try_get::<Option<DbTs>, _>(i)?.map_or(Val::Null, |t| Val::Ts(t.0)),
        Kind::Date => row.try_get::<Option<time::Date>, _>(i)?.map_or(Val::Null, Val::Date),
    })
}

fn push_json_str(out: &mut String, s: &str) {
    // serde_json's escaping of a string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Appends `v` in its canonical JSON form.
fn push_val(out: &mut String, v: &Val) {
    use std::fmt::Write as _;
    match v {
        Val::Null => out.push_str("null"),
        Val::Uuid(u) => {
            let _ = write!(out, "\"{}\"", u.hyphenated());
        }
        Val::Text(s) => push_json_str(out, s),
        Val::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Ts(t) => {
            let _ = write!(out, "\"{}\"", t.rfc3339());
        }
        Val::Date(d) => {
            let _ = write!(out, "\"{:04}-{:02}-{:02}\"", d.year(), u8::from(d.month()), d.day());
        }
    }
}

/// The row as one NDJSON line (with its `\n`): an object with the columns in schema order.
fn row_line(out: &mut String, table: &Table, vals: &[Val]) {
    out.clear();
    out.push('{');
    for (i, (c, v)) in table.columns.iter().zip(vals).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, c.name);
        out.push(':');
        push_val(out, v);
    }
    out.push_str("}\n");
}

/// Writes one file while hashing and counting its lines.
struct TableWriter {
    path: PathBuf,
    out: BufWriter<File>,
    hash: Sha256,
    rows: u64,
}

impl TableWriter {
    fn create(path: PathBuf) -> Result<Self> {
        let file = File::options().write(true).create_new(true).open(&path).map_err(|e| io_err(&path, e))?;
        Ok(Self { path, out: BufWriter::with_capacity(1 << 18, file), hash: Sha256::new(), rows: 0 })
    }

    fn line(&mut self, line: &str) -> Result<()> {
        self.hash.update(line.as_bytes());
        self.rows += 1;
        self.out.write_all(line.as_bytes()).map_err(|e| io_err(&self.path, e))
    }

    fn finish(self) -> Result<(u64, String)> {
        let file = self.out.into_inner().map_err(|e| io_err(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| io_err(&self.path, e))?;
        Ok((self.rows, hex::encode(self.hash.finalize())))
    }
}

fn prepare_out_dir(out: &Path) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| io_err(out, e))?;
        if entries.next().is_some() {
            return Err(refused(format!("{} is not empty; export into a new directory", out.display())));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    #[cfg(unix)]
    {
        // The export holds every patient's record and the password hashes: owner only.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o700)).map_err(|e| io_err(out, e))?;
    }
    Ok(())
}

/// Exports the whole instance into `out` (a new or empty directory); `progress` is called after
/// each table. Refuses a database whose schema the export does not cover exactly.
pub async fn export(db: &Db, out: &Path, progress: &mut dyn FnMut(&TableEntry)) -> Result<Manifest> {
    let schema_version = schema_version(db).await?;
    let shipped = shipped_schema_version(db.backend());
    if schema_version != shipped {
        return Err(refused(format!(
            "the database is at migration {schema_version} and this kapstone ships {shipped}; run `kapstone migrate` \
             with this version first"
        )));
    }
    ensure_covered(db).await?;
    prepare_out_dir(out)?;

    let mut entries = Vec::with_capacity(TABLES.len());
    let mut line = String::with_capacity(1024);
    // One snapshot for every table, so the files agree with each other while the server runs.
    macro_rules! dump_all {
        ($tx:expr, $decode:path, $backend:expr) => {{
            for table in TABLES {
                let mut w = TableWriter::create(out.join(table.file()))?;
                {
                    let sql = table.select_sql($backend);
                    let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut *$tx);
                    let mut vals = Vec::with_capacity(table.columns.len());
                    while let Some(row) = rows.try_next().await? {
                        vals.clear();
                        for (i, c) in table.columns.iter().enumerate() {
                            vals.push($decode(&row, i, table.name, c)?);
                        }
                        row_line(&mut line, table, &vals);
                        w.line(&line)?;
                    }
                }
                let (rows, sha256) = w.finish()?;
                let entry = TableEntry {
                    name: table.name.to_owned(),
                    file: table.file(),
                    rows,
                    sha256,
                    columns: table.columns.iter().map(|c| c.name.to_owned()).collect(),
                };
                progress(&entry);
                entries.push(entry);
            }
        }};
    }
    match db {
        Db::Sqlite { read, .. } => {
            let mut conn = read.acquire().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            dump_all!(tx, sqlite_val, Backend::Sqlite);
            tx.rollback().await?;
        }
        Db::Postgres { pool: p, .. } => {
            let mut tx = p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
            dump_all!(tx, pg_val, Backend::Postgres);
            tx.rollback().await?;
        }
    }

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        format_version: FORMAT_VERSION,
        schema_version,
        source_backend: backend_name(db.backend()).to_owned(),
        exported_at: UtcTs::now().rfc3339(),
        kapstone_version: env!("CARGO_PKG_VERSION").to_owned(),
        tables: entries,
        excluded: EXCLUDED.iter().map(|(t, _)| (*t).to_owned()).collect(),
    };
    // Written last: a directory without a manifest is an export that did not finish.
    let path = out.join(MANIFEST);
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| refused(format!("manifest: {e}")))?;
    let mut f = File::options().write(true).create_new(true).open(&path).map_err(|e| io_err(&path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&path, e))?;
    Ok(manifest)
}

// ---------------------------------------------------------------------------------------------
// Import

/// Reads and checks `manifest.json` against this build's tables.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| refused(format!("{}: {e} (an export without its manifest did not finish)", path.display())))?;
    parse_manifest(&text, &path)
}

/// Parses a manifest's text (read from `path`, named in errors) and checks it against this
/// build's tables. No I/O: the fuzz target feeds it arbitrary bytes.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest> {
    let m: Manifest = serde_json::from_str(text).map_err(|e| refused(format!("{}: {e}", path.display())))?;
    if m.format != FORMAT || m.format_version != FORMAT_VERSION {
        return Err(refused(format!(
            "{}: format {} version {}; this kapstone reads {FORMAT} version {FORMAT_VERSION}",
            path.display(),
            m.format,
            m.format_version
        )));
    }
    for t in TABLES {
        let Some(e) = m.tables.iter().find(|e| e.name == t.name) else {
            return Err(refused(format!("{}: table {} is missing", path.display(), t.name)));
        };
        let expected: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        if e.columns != expected || e.file != t.file() {
            return Err(refused(format!(
                "{}: table {} has columns {:?} in {}; this kapstone expects {expected:?} in {}",
                path.display(),
                t.name,
                e.columns,
                e.file,
                t.file()
            )));
        }
    }
    if let Some(e) = m.tables.iter().find(|e| !TABLES.iter().any(|t| t.name == e.name)) {
        return Err(refused(format!("{}: table {} is unknown to this kapstone", path.display(), e.name)));
    }
    Ok(m)
}

fn parse_val(c: &Column, v: &serde_json::Value) -> std::result::Result<Val, String> {
    use serde_json::Value as J;
    if v.is_null() {
        return Ok(Val::Null);
    }
    let want = |what: &str| format!("expected {what}, found {v}");
    Ok(match c.kind {
        Kind::Uuid => {
            let s = v.as_str().ok_or_else(|| want("a uuid string"))?;
            Val::Uuid(uuid::Uuid::parse_str(s).map_err(|_| want("a uuid string"))?)
        }
        Kind::Text => Val::Text(v.as_str().ok_or_else(|| want("a string"))?.to_owned()),
        Kind::Int => {
            let n = v.as_i64().ok_or_else(|| want("an integer"))?;
            i32::try_from(n).map_err(|_| want("a 32-bit integer"))?;
            Val::Int(n)
        }
        Kind::BigInt => Val::Int(v.as_i64().ok_or_else(|| want("an integer"))?),
        Kind::Bool => match v {
            J::Bool(b) => Val::Bool(*b),
            _ => return Err(want("true or false")),
        },
        Kind::Ts => {
            let s = v.as_str().ok_or_else(|| want("a timestamp string"))?;
            // Only the canonical form: anything else could lose precision silently.
            match UtcTs::parse_rfc3339(s) {
                Some(t) if t.rfc3339() == s => Val::Ts(t),
                _ => return Err(want("a UTC timestamp with microseconds like 2026-01-02T03:04:05.000000Z")),
            }
        }
        Kind::Date => {
            let s = v.as_str().ok_or_else(|| want("a date string"))?;
            Val::Date(time::Date::parse(s, DATE_FORMAT).map_err(|_| want("a date YYYY-MM-DD"))?)
        }
    })
}

/// One line of a table's file as the values of its columns, in the table's column order; the
/// error says what is wrong (the caller adds file and line). No I/O: the fuzz target feeds it
/// arbitrary bytes.
pub fn parse_row(table: &Table, line: &[u8]) -> std::result::Result<Vec<Val>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = value.as_object() else { return Err("not a JSON object".into()) };
    if let Some(k) = obj.keys().find(|k| !table.columns.iter().any(|c| c.name == k.as_str())) {
        return Err(format!("unknown column {k:?}"));
    }
    let mut vals = Vec::with_capacity(table.columns.len());
    for c in table.columns {
        let v = obj.get(c.name).ok_or_else(|| format!("column {} is missing", c.name))?;
        vals.push(parse_val(c, v).map_err(|e| format!("column {}: {e}", c.name))?);
    }
    Ok(vals)
}

/// Reads a table's file line by line, parsing each into values; checks the row count and
/// SHA-256 against the manifest at the end. Errors name the file and the line.
struct TableReader<'a> {
    table: &'static Table,
    entry: &'a TableEntry,
    path: PathBuf,
    input: BufReader<File>,
    hash: Sha256,
    line_no: u64,
    buf: Vec<u8>,
}

impl<'a> TableReader<'a> {
    fn open(dir: &Path, table: &'static Table, entry: &'a TableEntry) -> Result<Self> {
        let path = dir.join(&entry.file);
        let file = File::open(&path).map_err(|e| io_err(&path, e))?;
        Ok(Self {
            table,
            entry,
            path,
            input: BufReader::with_capacity(1 << 18, file),
            hash: Sha256::new(),
            line_no: 0,
            buf: Vec::with_capacity(1024),
        })
    }

    fn at(&self, why: impl std::fmt::Display) -> StoreError {
        refused(format!("{} line {}: {why}", self.path.display(), self.line_no))
    }

    /// The next row, or `None` at the end of the file (after checking count and hash).
    fn next_row(&mut self) -> Result<Option<Vec<Val>>> {
        self.buf.clear();
        let n = self.input.read_until(b'\n', &mut self.buf).map_err(|e| io_err(&self.path, e))?;
        if n == 0 {
            return self.finish().map(|()| None);
        }
        self.line_no += 1;
        self.hash.update(&self.buf);
        if self.buf.last() != Some(&b'\n') {
            return Err(self.at("the line does not end (the file is truncated)"));
        }
        parse_row(self.table, &self.buf).map(Some).map_err(|why| self.at(why))
    }

    fn finish(&mut self) -> Result<()> {
        if self.line_no != self.entry.rows {
            return Err(refused(format!(
                "{}: {} rows, the manifest says {} (the file is truncated or was changed)",
                self.path.display(),
                self.line_no,
                self.entry.rows
            )));
        }
        let sha = hex::encode(std::mem::take(&mut self.hash).finalize());
        if sha != self.entry.sha256 {
            return Err(refused(format!(
                "{}: SHA-256 {sha} differs from the manifest's {} (the file was changed)",
                self.path.display(),
                self.entry.sha256
            )));
        }
        Ok(())
    }
}

/// What [`import`] loaded.
#[derive(Debug, Clone)]
pub struct Imported {
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
}

/// Tables of the target that hold rows (migration-seeded tables excepted).
pub async fn non_empty_tables(db: &Db) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in database_tables(db).await? {
        if t == "_sqlx_migrations" || TABLES.iter().any(|s| s.name == t && s.seeded) {
            continue;
        }
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{t}\")");
        let any: bool = on_read!(db, |c| sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(c).await?);
        if any {
            out.push(t);
        }
    }
    Ok(out)
}

async fn non_empty_in_tx(tx: &mut Tx, tables: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for t in tables {
        if t == "_sqlx_migrations" || TABLES.iter().any(|s| s.name == t && s.seeded) {
            continue;
        }
        let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{t}\")");
        let any: bool = on_tx!(tx, |c| sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *c).await?);
        if any {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn refuse_non_empty(tables: &[String]) -> StoreError {
    refused(format!(
        "the target database already holds data (in {}); import only into an empty database",
        tables.join(", ")
    ))
}

/// Loads the export in `dir` into `db`, which must be migrated to the export's schema version
/// and empty. Everything is checked before the first write, and everything is written in one
/// transaction: a refusal or a failure changes nothing.
pub async fn import(db: &Db, dir: &Path, progress: &mut dyn FnMut(&str, u64)) -> Result<Imported> {
    let manifest = read_manifest(dir)?;
    let target_version = schema_version(db).await?;
    if manifest.schema_version != target_version {
        return Err(refused(format!(
            "the export is at migration {} and the target at {target_version}; import with the kapstone version \
             that made the export",
            manifest.schema_version
        )));
    }
    ensure_covered(db).await?;
    let live = database_tables(db).await?;
    let busy = non_empty_tables(db).await?;
    if !busy.is_empty() {
        return Err(refuse_non_empty(&busy));
    }

    // Pass 1: every line of every file parses, and each file matches its manifest entry.
    let entries: Vec<(&'static Table, &TableEntry)> = TABLES
        .iter()
        .map(|t| manifest.tables.iter().find(|e| e.name == t.name).map(|e| (t, e)))
        .collect::<Option<_>>()
        .ok_or_else(|| refused("manifest: a table is missing"))?;
    for (table, entry) in &entries {
        let mut r = TableReader::open(dir, table, entry)?;
        while r.next_row()?.is_some() {}
    }

    // Pass 2: one transaction for everything.
    let mut tx = db.begin().await?;
    let busy = non_empty_in_tx(&mut tx, &live).await?;
    if !busy.is_empty() {
        return Err(refuse_non_empty(&busy));
    }
    let mut imported = Imported { tables: Vec::new(), rows: 0 };
    for (table, entry) in &entries {
        let rows = load_table(&mut tx, dir, table, entry).await?;
        progress(table.name, rows);
        imported.rows += rows;
        imported.tables.push((table.name.to_owned(), rows));
    }
    tx.commit().await?;
    Ok(imported)
}

/// Rows per INSERT: under both engines' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
fn batch_rows(table: &Table) -> usize {
    (30_000 / table.columns.len().max(1)).clamp(1, 500)
}

async fn load_table(tx: &mut Tx, dir: &Path, table: &'static Table, entry: &TableEntry) -> Result<u64> {
    let mut r = TableReader::open(dir, table, entry)?;
    let limit = batch_rows(table);
    let self_ref = table.self_ref();
    let key_index = table.columns.iter().position(|c| table.key.first() == Some(&c.name));
    let mut batch: Vec<Vec<Val>> = Vec::with_capacity(limit);
    // Rows of a self-referencing table whose parent is not loaded yet, by parent id, with their line.
    let mut parked: HashMap<uuid::Uuid, Vec<(u64, Vec<Val>)>> = HashMap::new();
    let mut batch_ids: HashSet<uuid::Uuid> = HashSet::new();
    let mut rows = 0u64;
    while let Some(vals) = r.next_row()? {
        rows += 1;
        if let (Some(si), Some(ki)) = (self_ref, key_index) {
            if let Val::Uuid(parent) = vals[si]
                && !batch_ids.contains(&parent)
                && !row_exists(tx, table, parent).await?
            {
                parked.entry(parent).or_default().push((r.line_no, vals));
                continue;
            }
            // This row, then any parked rows waiting for it (and for them), in order.
            let mut ready = vec![vals];
            while let Some(row) = ready.pop() {
                if let Val::Uuid(id) = row[ki] {
                    batch_ids.insert(id);
                    if let Some(children) = parked.remove(&id) {
                        ready.extend(children.into_iter().map(|(_, v)| v));
                    }
                }
                batch.push(row);
            }
        } else {
            batch.push(vals);
        }
        if batch.len() >= limit {
            insert_batch(tx, table, &mut batch).await?;
            batch_ids.clear();
        }
    }
    if !batch.is_empty() {
        insert_batch(tx, table, &mut batch).await?;
    }
    if let Some((parent, waiting)) = parked.iter().next()
        && let Some((line, _)) = waiting.first()
    {
        return Err(refused(format!(
            "{} line {line}: refers to {} {parent}, which is not in the export",
            dir.join(&entry.file).display(),
            table.name
        )));
    }
    Ok(rows)
}

async fn row_exists(tx: &mut Tx, table: &Table, id: uuid::Uuid) -> Result<bool> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM \"{}\" WHERE id = $1)", table.name);
    Ok(on_tx!(tx, |c| sqlx::query_scalar(AssertSqlSafe(sql)).bind(id).fetch_one(&mut *c).await?))
}

fn insert_prefix(table: &Table) -> String {
    format!("INSERT INTO \"{}\" ({}) ", table.name, table.column_list())
}

fn upsert_suffix(table: &Table) -> Option<String> {
    table.seeded.then(|| {
        let keys = table.key.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", ");
        let sets = table
            .columns
            .iter()
            .filter(|c| !table.key.contains(&c.name))
            .map(|c| format!("\"{0}\" = excluded.\"{0}\"", c.name))
            .collect::<Vec<_>>()
            .join(", ");
        format!(" ON CONFLICT ({keys}) DO UPDATE SET {sets}")
    })
}

async fn insert_batch(tx: &mut Tx, table: &Table, batch: &mut Vec<Vec<Val>>) -> Result<()> {
    let rows = std::mem::take(batch);
    match tx {
        Tx::Sqlite(t) => {
            let mut q = QueryBuilder::<sqlx::Sqlite>::new(insert_prefix(table));
            q.push_values(rows, |mut b, row| {
                for (c, v) in table.columns.iter().zip(row) {
                    match (c.kind, v) {
                        (Kind::Uuid, Val::Uuid(u)) => b.push_bind(Some(u)),
                        (Kind::Text, Val::Text(s)) => b.push_bind(Some(s)),
                        (Kind::Int | Kind::BigInt, Val::Int(n)) => b.push_bind(Some(n)),
                        (Kind::Bool, Val::Bool(x)) => b.push_bind(Some(x)),
                        (Kind::Ts, Val::Ts(ts)) => b.push_bind(Some(DbTs(ts))),
                        // Stored as TEXT on SQLite, in the canonical form.
                        (Kind::Date, Val::Date(d)) => {
                            b.push_bind(Some(format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())))
                        }
                        // Null (the parser makes every other value match its kind).
                        _ => b.push_bind(None::<String>),
                    };
                }
            });
            if let Some(s) = upsert_suffix(table) {
                q.push(s);
            }
            q.build().execute(&mut **t).await?;
        }
        Tx::Postgres(t) => {
            let mut q = QueryBuilder::<sqlx::Postgres>::new(insert_prefix(table));
            let mut bad_int = None;
            q.push_values(rows, |mut b, row| {
                for (c, v) in table.columns.iter().zip(row) {
                    match (c.kind, v) {
                        (Kind::Uuid, Val::Uuid(u)) => b.push_bind(Some(u)),
                        (Kind::Uuid, _) => b.push_bind(None::<uuid::Uuid>),
                        (Kind::Text, Val::Text(s)) => b.push_bind(Some(s)),
                        (Kind::Text, _) => b.push_bind(None::<String>),
                        (Kind::Int, Val::Int(n)) => match i32::try_from(n) {
                            Ok(n) => b.push_bind(Some(n)),
                            Err(_) => {
                                bad_int = Some(c.name);
                                b.push_bind(None::<i32>)
                            }
                        },
                        (Kind::Int, _) => b.push_bind(None::<i32>),
                        (Kind::BigInt, Val::Int(n)) => b.push_bind(Some(n)),
                        (Kind::BigInt, _) => b.push_bind(None::<i64>),
                        (Kind::Bool, Val::Bool(x)) => b.push_bind(Some(x)),
                        (Kind::Bool, _) => b.push_bind(None::<bool>),
                        (Kind::Ts, Val::Ts(ts)) => b.push_bind(Some(DbTs(ts))),
                        (Kind::Ts, _) => b.push_bind(None::<DbTs>),
                        (Kind::Date, Val::Date(d)) => b.push_bind(Some(d)),
                        (Kind::Date, _) => b.push_bind(None::<time::Date>),
                    };
                }
            });
            if let Some(name) = bad_int {
                return Err(refused(format!("{}.{name}: a value does not fit a 32-bit integer", table.name)));
            }
            if let Some(s) = upsert_suffix(table) {
                q.push(s);
            }
            q.build().execute(&mut **t).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_list_is_in_foreign_key_order() {
        assert_eq!(spec_problems(), Vec::<String>::new());
    }

    #[test]
    fn values_have_one_canonical_form() {
        let t = TABLES.iter().find(|t| t.name == "patients").unwrap_or(&TABLES[0]);
        let birth = t.columns.iter().find(|c| c.name == "birth_date").unwrap_or(&t.columns[0]);
        assert_eq!(
            parse_val(birth, &serde_json::json!("1980-02-29")),
            Ok(Val::Date(time::macros::date!(1980 - 02 - 29)))
        );
        assert!(parse_val(birth, &serde_json::json!("1981-02-29")).is_err());
        let created = t.columns.iter().find(|c| c.name == "created_at").unwrap_or(&t.columns[0]);
        let ts = UtcTs::from_unix_micros(1_767_312_245_000_006);
        let mut out = String::new();
        push_val(&mut out, &Val::Ts(ts));
        assert_eq!(out, "\"2026-01-02T00:04:05.000006Z\"");
        assert_eq!(parse_val(created, &serde_json::json!("2026-01-02T00:04:05.000006Z")), Ok(Val::Ts(ts)));
        // Another spelling of the same instant is refused rather than silently normalised.
        assert!(parse_val(created, &serde_json::json!("2026-01-02T01:04:05.000006+01:00")).is_err());
        assert!(parse_val(created, &serde_json::json!("2026-01-02T00:04:05.0000061Z")).is_err());
    }
}
