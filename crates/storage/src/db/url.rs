//! Database URLs: parsing, normalisation of the forms other stacks use, and redaction.
//!
//! Accepted forms (case of the scheme does not matter):
//!
//! | given                                   | understood as                        |
//! |-----------------------------------------|--------------------------------------|
//! | `postgres://…`, `postgresql://…`        | itself                               |
//! | `postgresql+asyncpg://…` (any `+driver`) | `postgresql://…`; `ssl=` → `sslmode=` |
//! | `sqlite://path`, `sqlite:path`          | itself (a relative or absolute path) |
//! | `sqlite+aiosqlite:///rel.db` (SQLAlchemy) | `sqlite://rel.db`; `////abs.db` → `/abs.db` |
//! | `file:./local.db` (libSQL / Drizzle)    | `sqlite://./local.db`                |
//!
//! A SQLite file is created when missing unless the URL says otherwise with `mode=`.

use std::fmt;

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    /// The engine behind a sea-orm connection (MySQL is not supported and never
    /// reaches here: URLs are parsed into one of the two engines first).
    pub fn of(backend: sea_orm::DbBackend) -> Engine {
        match backend {
            sea_orm::DbBackend::Sqlite => Engine::Sqlite,
            _ => Engine::Postgres,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated, normalised database URL. Its `Debug` and `Display` never show the
/// password; only [`DatabaseUrl::expose`] does, for handing to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    engine: Engine,
    /// What was changed to understand the given URL, for the startup log.
    normalized_from: Option<&'static str>,
}

/// Why a URL was refused. Its message names the expected forms and shows the given
/// value redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{reason}; expected postgres://user:password@host:5432/dbname, postgresql+asyncpg://…, sqlite://path.db or file:./path.db (got \"{given}\")"
)]
pub struct UrlError {
    reason: String,
    given: String,
}

impl UrlError {
    fn new(reason: impl Into<String>, given: &str) -> Self {
        UrlError {
            reason: reason.into(),
            given: redact(given),
        }
    }
}

impl DatabaseUrl {
    /// Parses and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(UrlError::new("it is empty", raw));
        }
        let Some((scheme, rest)) = trimmed.split_once(':') else {
            return Err(UrlError::new("it has no scheme", raw));
        };
        let scheme = scheme.to_ascii_lowercase();
        let (base, driver) = match scheme.split_once('+') {
            Some((base, driver)) => (base.to_owned(), Some(driver.to_owned())),
            None => (scheme.clone(), None),
        };
        match base.as_str() {
            "postgres" | "postgresql" => Self::postgres(rest, driver.is_some(), raw),
            "sqlite" if driver.is_some() => Self::sqlalchemy_sqlite(rest, raw),
            "sqlite" => Self::sqlite(rest, None, raw),
            "file" => Self::sqlite(
                rest,
                Some("file: URL (libSQL/Drizzle form) as sqlite:"),
                raw,
            ),
            other => Err(UrlError::new(
                format!(
                    "the engine \"{other}\" is not supported (Agenda runs on PostgreSQL or SQLite)"
                ),
                raw,
            )),
        }
    }

    fn postgres(rest: &str, had_driver: bool, raw: &str) -> Result<Self, UrlError> {
        let candidate = format!("postgresql:{rest}");
        let mut parsed = url::Url::parse(&candidate)
            .map_err(|e| UrlError::new(format!("it is not a valid URL ({e})"), raw))?;
        if parsed.host_str().is_none_or(str::is_empty) && !candidate.contains("host=") {
            return Err(UrlError::new("it names no host", raw));
        }
        let mut note =
            had_driver.then_some("SQLAlchemy driver suffix (+asyncpg, +psycopg…) dropped");
        // asyncpg spells TLS as `ssl=`; libpq and this driver as `sslmode=`.
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.iter().any(|(k, _)| k == "ssl") {
            let mapped = pairs.into_iter().map(|(k, v)| {
                if k == "ssl" {
                    let mode = match v.as_str() {
                        "true" | "1" | "on" => "require".to_owned(),
                        "false" | "0" | "off" => "disable".to_owned(),
                        other => other.to_owned(),
                    };
                    ("sslmode".to_owned(), mode)
                } else {
                    (k, v)
                }
            });
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(mapped)
                .finish();
            parsed.set_query(Some(&query));
            note = Some(if had_driver {
                "SQLAlchemy driver suffix dropped and asyncpg's ssl= read as sslmode="
            } else {
                "asyncpg's ssl= read as sslmode="
            });
        }
        Ok(DatabaseUrl {
            url: parsed.into(),
            engine: Engine::Postgres,
            normalized_from: note,
        })
    }

    /// SQLAlchemy's form: `sqlite+driver:///relative.db`, `sqlite+driver:////abs.db`.
    fn sqlalchemy_sqlite(rest: &str, raw: &str) -> Result<Self, UrlError> {
        let Some(path) = rest.strip_prefix("///") else {
            return Err(UrlError::new(
                "a SQLAlchemy SQLite URL starts with sqlite+driver:///",
                raw,
            ));
        };
        Self::sqlite(
            path,
            Some("SQLAlchemy sqlite+driver:/// URL as sqlite:"),
            raw,
        )
    }

    fn sqlite(rest: &str, note: Option<&'static str>, raw: &str) -> Result<Self, UrlError> {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(UrlError::new("it names no database file", raw));
        }
        if path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory")) {
            return Err(UrlError::new(
                "in-memory SQLite is not supported (each pooled connection would see its own empty database)",
                raw,
            ));
        }
        let mut note = note;
        let query = match query {
            Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => q.to_owned(),
            Some(q) => {
                note = note.or(Some("mode=rwc added: the file is created when missing"));
                format!("{q}&mode=rwc")
            }
            None => {
                note = note.or(Some("mode=rwc added: the file is created when missing"));
                "mode=rwc".to_owned()
            }
        };
        Ok(DatabaseUrl {
            url: format!("sqlite://{path}?{query}"),
            engine: Engine::Sqlite,
            normalized_from: note,
        })
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The URL with its password, for the driver only. Never log this.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// The URL with any password replaced by `***`, safe to log and show.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// What normalisation did, if anything, to be logged at startup.
    pub fn normalization(&self) -> Option<&'static str> {
        self.normalized_from
    }

    /// The same database, never created: for SQLite a `mode=rwc` URL becomes
    /// `mode=rw`, so that a command which only reads or restores into an existing
    /// database does not leave an empty file behind when pointed at a wrong path.
    /// PostgreSQL URLs (and SQLite URLs with another `mode=`) are unchanged.
    pub fn existing_only(&self) -> DatabaseUrl {
        let mut url = self.clone();
        if self.engine == Engine::Sqlite
            && let Some((path, query)) = self.url.split_once('?')
        {
            let query: Vec<&str> = query
                .split('&')
                .map(|kv| if kv == "mode=rwc" { "mode=rw" } else { kv })
                .collect();
            url.url = format!("{path}?{}", query.join("&"));
        }
        url
    }

    /// Whether `other` names the same database: the same engine and the same
    /// PostgreSQL database name (user, password, host and port may differ — an owner
    /// URL straight to the server and an application URL through PgBouncer are one
    /// database), or the same SQLite file. A PostgreSQL URL without a database name
    /// is taken to match (libpq's default depends on the user).
    pub fn same_database(&self, other: &DatabaseUrl) -> bool {
        match (self.engine, other.engine) {
            (Engine::Sqlite, Engine::Sqlite) => {
                let canonical = |url: &DatabaseUrl| {
                    let path = url.sqlite_path().unwrap_or_default();
                    std::fs::canonicalize(path)
                        .unwrap_or_else(|_| std::path::PathBuf::from(path.trim_start_matches("./")))
                };
                canonical(self) == canonical(other)
            }
            (Engine::Postgres, Engine::Postgres) => {
                match (self.postgres_database(), other.postgres_database()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
            }
            _ => false,
        }
    }

    /// The database name of a PostgreSQL URL (`None` when it names none).
    fn postgres_database(&self) -> Option<String> {
        let parsed = url::Url::parse(&self.url).ok()?;
        let name = parsed.path().trim_start_matches('/');
        let name = url::form_urlencoded::parse(format!("n={name}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())?;
        (!name.is_empty()).then_some(name)
    }

    /// The SQLite file path, for SQLite URLs.
    pub fn sqlite_path(&self) -> Option<&str> {
        match self.engine {
            Engine::Sqlite => {
                let rest = self.url.strip_prefix("sqlite://")?;
                Some(rest.split_once('?').map_or(rest, |(p, _)| p))
            }
            Engine::Postgres => None,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of anything URL-shaped with `***`, also when the text does
/// not parse as a URL (so a malformed URL in an error message leaks nothing), and
/// masks `password=` query parameters.
pub fn redact(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = authority_start + colon + 1;
                let end = authority_start + at;
                out.replace_range(start..end, "***");
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(pos) = lower.find("password=") {
        let start = pos + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_forms() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/agenda").unwrap();
        assert_eq!(url.engine(), Engine::Postgres);
        assert_eq!(url.expose(), "postgresql://app:s3cret@db:5432/agenda");
        assert_eq!(url.redacted(), "postgresql://app:***@db:5432/agenda");
        assert_eq!(url.normalization(), None);

        let url =
            DatabaseUrl::parse("postgresql+asyncpg://app:pw@localhost/agenda?ssl=true").unwrap();
        assert_eq!(
            url.expose(),
            "postgresql://app:pw@localhost/agenda?sslmode=require"
        );
        assert!(url.normalization().unwrap().contains("driver suffix"));
        assert!(!format!("{url:?}{url}").contains("pw@"));
    }

    #[test]
    fn sqlite_forms() {
        let default = DatabaseUrl::parse("sqlite://agenda.db?mode=rwc").unwrap();
        assert_eq!(default.expose(), "sqlite://agenda.db?mode=rwc");
        assert_eq!(default.sqlite_path(), Some("agenda.db"));
        assert_eq!(default.normalization(), None);

        let bare = DatabaseUrl::parse("sqlite:data/agenda.db").unwrap();
        assert_eq!(bare.expose(), "sqlite://data/agenda.db?mode=rwc");

        let file = DatabaseUrl::parse("file:./local.db").unwrap();
        assert_eq!(file.engine(), Engine::Sqlite);
        assert_eq!(file.expose(), "sqlite://./local.db?mode=rwc");
        assert!(file.normalization().is_some());

        let alchemy = DatabaseUrl::parse("sqlite+aiosqlite:///rel.db").unwrap();
        assert_eq!(alchemy.sqlite_path(), Some("rel.db"));
        let alchemy_abs = DatabaseUrl::parse("sqlite+aiosqlite:////var/lib/a.db").unwrap();
        assert_eq!(alchemy_abs.sqlite_path(), Some("/var/lib/a.db"));

        let read_only = DatabaseUrl::parse("sqlite:///tmp/x.db?mode=ro").unwrap();
        assert_eq!(read_only.expose(), "sqlite:///tmp/x.db?mode=ro");
        assert_eq!(
            read_only.existing_only().expose(),
            "sqlite:///tmp/x.db?mode=ro"
        );
        assert_eq!(
            default.existing_only().expose(),
            "sqlite://agenda.db?mode=rw"
        );
        let pg = DatabaseUrl::parse("postgres://u:p@h/d").unwrap();
        assert_eq!(pg.existing_only(), pg);
    }

    #[test]
    fn same_database_ignores_credentials_and_hosts() {
        let parse = |u: &str| DatabaseUrl::parse(u).unwrap();
        let owner = parse("postgres://owner:a@db:5432/agenda");
        assert!(owner.same_database(&parse("postgres://app:b@pgbouncer:6432/agenda")));
        assert!(!owner.same_database(&parse("postgres://owner:a@db:5432/other")));
        assert!(owner.same_database(&parse("postgres://owner:a@db:5432")));
        assert!(!owner.same_database(&parse("sqlite://agenda.db")));
        let file = parse("sqlite://./agenda.db");
        assert!(file.same_database(&parse("sqlite://agenda.db?mode=rwc")));
        assert!(!file.same_database(&parse("sqlite://other.db")));
    }

    #[test]
    fn refused_forms_never_show_the_password() {
        for bad in [
            "mysql://root:hunter2@localhost/db",
            "",
            "agenda.db",
            "postgres://user:hunter2@/",
            "sqlite::memory:",
            "sqlite://",
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("expected postgres://"), "{err}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("postgres://u:p@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(
            redact("postgres://u:p:q@h:1/d?x=1"),
            "postgres://u:***@h:1/d?x=1"
        );
        assert_eq!(
            redact("host=h password=secret&x=1"),
            "host=h password=***&x=1"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
