//! What the server asks of PostgreSQL: statement counts from `pg_stat_statements`,
//! the exact statements of single requests with their bound values (from the server
//! log, captured with `log_min_duration_statement = 0`), and the `pgbench` ceiling
//! that replays those statements with the same number of connections.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use sqlx::{Connection, PgConnection, Row};

/// A superuser connection for statistics and settings.
pub struct Admin {
    conn: PgConnection,
    pub app_role: String,
}

/// One statement's share of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StatementStat {
    pub query: String,
    pub calls: i64,
    pub mean_ms: f64,
}

/// The database side of a scenario run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DbSide {
    pub statements: i64,
    pub exec_ms: f64,
    pub top: Vec<StatementStat>,
}

impl Admin {
    pub async fn connect(url: &str, app_role: &str) -> Result<Admin, String> {
        let conn = PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Admin {
            conn,
            app_role: app_role.to_owned(),
        })
    }

    pub async fn exec(&mut self, sql: &str) -> Result<(), String> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| format!("{sql}: {e}"))
    }

    pub async fn reset_statements(&mut self) -> Result<(), String> {
        self.exec("SELECT pg_stat_statements_reset()").await
    }

    /// Statements run by the application role since the last reset.
    pub async fn statements(&mut self) -> Result<DbSide, String> {
        let rows = sqlx::query(
            "SELECT s.query, s.calls, s.total_exec_time FROM pg_stat_statements s \
             JOIN pg_roles r ON r.oid = s.userid \
             WHERE r.rolname = $1 AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY s.calls DESC, s.total_exec_time DESC",
        )
        .bind(&self.app_role)
        .fetch_all(&mut self.conn)
        .await
        .map_err(|e| e.to_string())?;
        let mut side = DbSide::default();
        for row in rows {
            let calls: i64 = row.get(1);
            let total: f64 = row.get(2);
            side.statements += calls;
            side.exec_ms += total;
            side.top.push(StatementStat {
                query: row.get(0),
                calls,
                mean_ms: if calls > 0 { total / calls as f64 } else { 0.0 },
            });
        }
        Ok(side)
    }

    /// The database's current instant, as text.
    pub async fn now(&mut self) -> Result<String, String> {
        let row = sqlx::query("SELECT now()::text")
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    pub async fn version(&mut self) -> Result<String, String> {
        let row = sqlx::query("SELECT version()")
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }

    /// Logs every statement with its bound values (or stops doing so).
    pub async fn log_statements(&mut self, on: bool) -> Result<(), String> {
        if on {
            self.exec("ALTER SYSTEM SET log_min_duration_statement = 0")
                .await?;
            self.exec("ALTER SYSTEM SET log_line_prefix = '%u|%p|'")
                .await?;
        } else {
            self.exec("ALTER SYSTEM RESET log_min_duration_statement")
                .await?;
            self.exec("ALTER SYSTEM RESET log_line_prefix").await?;
        }
        self.exec("SELECT pg_reload_conf()").await?;
        // The reload reaches the backends asynchronously.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Ok(())
    }

    /// Writes a marker into the log between two captured requests.
    pub async fn mark(&mut self) -> Result<(), String> {
        self.exec(&format!("SELECT '{MARKER}'")).await
    }
}

const MARKER: &str = "agenda-bench-marker";

/// The statements of each captured request, with their values written in as
/// literals, from the server log after `offset`. Requests are separated by markers.
pub fn captured_requests(log: &str, app_role: &str) -> Vec<Vec<String>> {
    let mut requests = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut pending: Option<String> = None;
    let prefix = format!("{app_role}|");
    for line in log.lines() {
        if line.contains(MARKER) && line.contains("LOG:") {
            if let Some(sql) = pending.take() {
                current.push(sql);
            }
            requests.push(std::mem::take(&mut current));
            continue;
        }
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        // `<pid>|LOG:  duration: 0.1 ms  execute <name>: SQL` or `… statement: SQL`;
        // `<pid>|DETAIL:  parameters: $1 = '…', …` follows an execute.
        let rest = rest.split_once('|').map_or(rest, |(_, r)| r);
        if let Some(detail) = rest.strip_prefix("DETAIL:  parameters: ") {
            if let Some(sql) = pending.take() {
                current.push(substitute(&sql, &parse_parameters(detail)));
            }
        } else if let Some(log) = rest.strip_prefix("LOG:  duration: ") {
            if let Some(sql) = pending.take() {
                current.push(sql);
            }
            let sql = if let Some((_, s)) = log.split_once(" statement: ") {
                s
            } else if let Some((_, s)) = log.split_once(" execute ") {
                s.split_once(": ").map_or(s, |(_, sql)| sql)
            } else {
                continue;
            };
            pending = Some(sql.to_owned());
        }
    }
    requests
}

/// `$1 = 'a''b', $2 = NULL` → `["'a''b'", "NULL"]` (values stay SQL literals).
pub fn parse_parameters(detail: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut rest = detail.trim();
    while let Some(eq) = rest.find(" = ") {
        rest = &rest[eq + 3..];
        let value_len = if rest.starts_with('\'') {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            (i + 1).min(rest.len())
        } else {
            rest.find(", $").unwrap_or(rest.len())
        };
        values.push(rest[..value_len].to_owned());
        rest = &rest[value_len..];
    }
    values
}

/// Replaces `$n` placeholders by the n-th value.
pub fn substitute(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                let n: usize = sql[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if let Some(v) = n.checked_sub(1).and_then(|k| values.get(k)) {
                    out.push_str(v);
                    i += 1 + digits;
                    continue;
                }
            }
        }
        let ch = sql[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// A pgbench script replaying one request: one statement a line, a transaction
/// ending in ROLLBACK instead of COMMIT so that its writes can be replayed.
///
/// A server that ends a read by dropping its transaction sends the `ROLLBACK` with
/// the connection's release check, after the answer — so the log may show it after
/// the marker, at the head of the next request's statements. The script therefore
/// starts at the first `BEGIN` and ends an unfinished transaction itself.
pub fn pgbench_script(statements: &[String]) -> String {
    let begins = |s: &String| s.trim().trim_end_matches(';').eq_ignore_ascii_case("BEGIN");
    let ends = |s: &str| s.eq_ignore_ascii_case("ROLLBACK") || s.eq_ignore_ascii_case("COMMIT");
    let statements = match statements.iter().position(begins) {
        Some(first) => &statements[first..],
        None => statements,
    };
    let mut script = String::new();
    let mut open = false;
    for s in statements {
        let s = s.trim().trim_end_matches(';');
        let s = if s.eq_ignore_ascii_case("COMMIT") {
            "ROLLBACK"
        } else {
            s
        };
        if s.eq_ignore_ascii_case("BEGIN") {
            open = true;
        } else if ends(s) {
            open = false;
        }
        script.push_str(s);
        script.push_str(";\n");
    }
    if open {
        script.push_str("ROLLBACK;\n");
    }
    script
}

/// Runs pgbench with the scripts (chosen at random per transaction) and returns its
/// transactions per second (without connection time).
pub fn pgbench(
    dir: &Path,
    scripts: &[String],
    port: u16,
    role: &str,
    database: &str,
    clients: usize,
    seconds: u64,
) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, s) in scripts.iter().enumerate() {
        let path = dir.join(format!("request-{i:03}.sql"));
        std::fs::write(&path, s).map_err(|e| e.to_string())?;
        files.push(path);
    }
    let mut cmd = Command::new(pgbench_binary());
    cmd.args(["-n", "-M", "prepared", "-h", "127.0.0.1"])
        .args(["-p", &port.to_string(), "-U", role])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &seconds.to_string()]);
    for f in &files {
        cmd.arg("-f").arg(f);
    }
    cmd.arg(database);
    let out = cmd.output().map_err(|e| format!("run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(
        dir.join("pgbench.out"),
        format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
    )
    .ok();
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ));
    }
    parse_tps(&text).ok_or_else(|| format!("no tps in pgbench output: {text}"))
}

fn pgbench_binary() -> PathBuf {
    ["/usr/bin/pgbench", "/usr/lib/postgresql/15/bin/pgbench"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

/// `tps = 1234.5 (without initial connection time)` → 1234.5.
pub fn parse_tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection time"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_literal_form() {
        let v =
            parse_parameters("$1 = 'it''s', $2 = NULL, $3 = '2026-01-01 10:00:00+00', $4 = '21'");
        assert_eq!(v, ["'it''s'", "NULL", "'2026-01-01 10:00:00+00'", "'21'"]);
    }

    #[test]
    fn placeholders_are_replaced_by_position() {
        let values = vec!["'a'".to_owned(), "'b'".to_owned()];
        let sql = "SELECT * FROM t WHERE x = $1 AND y IN ($2, $1) LIMIT $10";
        assert_eq!(
            substitute(sql, &values),
            "SELECT * FROM t WHERE x = 'a' AND y IN ('b', 'a') LIMIT $10"
        );
    }

    #[test]
    fn requests_are_split_at_markers() {
        let log = "\
agenda_app|10|LOG:  duration: 0.020 ms  statement: BEGIN
agenda_app|10|LOG:  duration: 0.100 ms  execute sqlx_s_1: SELECT a FROM t WHERE id = $1
agenda_app|10|DETAIL:  parameters: $1 = '42'
agenda_app|10|LOG:  duration: 0.020 ms  statement: COMMIT
postgres|11|LOG:  duration: 0.010 ms  statement: SELECT 'agenda-bench-marker'
agenda_app|10|LOG:  duration: 0.100 ms  execute sqlx_s_2: SELECT 1
postgres|11|LOG:  duration: 0.010 ms  statement: SELECT 'agenda-bench-marker'
";
        let requests = captured_requests(log, "agenda_app");
        assert_eq!(
            requests,
            vec![
                vec!["BEGIN", "SELECT a FROM t WHERE id = '42'", "COMMIT"],
                vec!["SELECT 1"],
            ]
        );
        assert_eq!(
            pgbench_script(&requests[0]),
            "BEGIN;\nSELECT a FROM t WHERE id = '42';\nROLLBACK;\n"
        );
        // The previous request's late ROLLBACK first, this one's not yet logged.
        let late: Vec<String> = ["ROLLBACK", "BEGIN", "SELECT 2"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(pgbench_script(&late), "BEGIN;\nSELECT 2;\nROLLBACK;\n");
    }

    #[test]
    fn tps_line() {
        let out = "latency average = 1.2 ms\ntps = 6543.210987 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(6543.210987));
    }
}
