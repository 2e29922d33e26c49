//! The results: one JSON document, a Markdown table and an SVG bar chart drawn by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::seed::{SeedReport, SeedSize};
use crate::sql::StatementStat;
use crate::stats::LatencySummary;

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub generated_at: String,
    pub mode: String,
    pub machine: BTreeMap<String, String>,
    pub settings: Settings,
    pub seed_size: SeedSize,
    pub seed: SeedReport,
    pub scenarios: Vec<ScenarioResult>,
    /// (a) paced at half of its measured throughput.
    pub half_peak: Option<Paced>,
    /// The same scenario on the server before and after a change, alternated.
    pub comparison: Option<Comparison>,
    pub server_peak_rss_mib: f64,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub repeats: usize,
    pub server_pool: String,
    pub postgres: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub key: String,
    pub title: String,
    pub route: String,
    /// The run with the median throughput of the repeats.
    pub latency: LatencySummary,
    /// Throughput of every repeat.
    pub repeat_rps: Vec<f64>,
    pub statements_per_request: f64,
    pub db_exec_ms_per_request: f64,
    pub server_cpu_s: f64,
    pub server_cpu_ms_per_request: f64,
    /// CPU of the PostgreSQL cluster's processes over the window ÷ requests.
    pub postgres_cpu_ms_per_request: f64,
    /// Cores busy with processes other than the server, PostgreSQL and the load
    /// generator over the window (other engineers' builds, ...).
    pub other_load_cores: f64,
    /// Mean time inside the server (its own `/metrics` histogram), milliseconds.
    pub server_time_ms: Option<f64>,
    pub server_peak_rss_mib: f64,
    pub pgbench_tps: Option<f64>,
    pub ceiling_ratio: Option<f64>,
    pub captured_sql: Vec<String>,
    pub top_statements: Vec<StatementStat>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Paced {
    pub scenario: String,
    pub target_rps: f64,
    pub latency: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub before_binary: String,
    pub after_binary: String,
    pub before_rps: Vec<f64>,
    pub after_rps: Vec<f64>,
    pub before_p99_ms: Vec<f64>,
    pub after_p99_ms: Vec<f64>,
    pub before_statements_per_request: f64,
    pub after_statements_per_request: f64,
    pub before_cpu_ms_per_request: Vec<f64>,
    pub after_cpu_ms_per_request: Vec<f64>,
    /// Median after / median before.
    pub throughput_ratio: f64,
    pub cpu_per_request_ratio: f64,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn errors(e: &BTreeMap<String, u64>) -> String {
    if e.is_empty() {
        "0".to_owned()
    } else {
        e.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Agenda benchmark results\n");
    let _ = writeln!(
        md,
        "Generated {} ({} mode). {} connections, {} s per run after {} s of warm-up, median of {} run(s). Server pool: {}. {}.\n",
        r.generated_at,
        r.mode,
        r.settings.connections,
        r.settings.duration_s,
        r.settings.warmup_s,
        r.settings.repeats,
        r.settings.server_pool,
        r.settings.postgres
    );
    let rows: Vec<String> = r
        .seed
        .rows
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    let _ = writeln!(md, "Data set: {}.\n", rows.join(", "));
    let _ = writeln!(
        md,
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors | SQL/req | server ms/req | server CPU s | CPU ms/req | PG CPU ms/req | other load (cores) | peak RSS MiB | pgbench tps | API / ceiling |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &r.scenarios {
        let l = &s.latency;
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {} | {:.1} | {:.3} | {:.3} | {:.2} | {:.0} | {} | {} |",
            s.title,
            l.throughput_rps,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            errors(&l.errors),
            s.statements_per_request,
            opt(s.server_time_ms, 2),
            s.server_cpu_s,
            s.server_cpu_ms_per_request,
            s.postgres_cpu_ms_per_request,
            s.other_load_cores,
            s.server_peak_rss_mib,
            opt(s.pgbench_tps, 0),
            s.ceiling_ratio
                .map_or_else(|| "–".to_owned(), |v| format!("{:.0}%", v * 100.0)),
        );
    }
    if let Some(p) = &r.half_peak {
        let _ = writeln!(
            md,
            "\n**{} paced at half of peak** ({:.0} req/s offered, {:.0} served): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, errors {}.",
            p.scenario,
            p.target_rps,
            p.latency.throughput_rps,
            p.latency.p50_ms,
            p.latency.p95_ms,
            p.latency.p99_ms,
            errors(&p.latency.errors)
        );
    }
    let _ = writeln!(
        md,
        "\nServer peak memory over the whole run: {:.0} MiB.",
        r.server_peak_rss_mib
    );
    if let Some(c) = &r.comparison {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "\n## Before and after ({})\n\nAlternating runs of the two server binaries in the same session.\n\n\
             | | req/s (each run) | SQL/req | CPU ms/req (median) |\n|---|---|---:|---:|\n\
             | before | {} | {:.2} | {:.3} |\n| after | {} | {:.2} | {:.3} |\n\n\
             Throughput ratio after/before (medians): **{:.2}×**; server CPU per request ratio: **{:.2}×**.",
            c.scenario,
            list(&c.before_rps),
            c.before_statements_per_request,
            crate::stats::median(&c.before_cpu_ms_per_request),
            list(&c.after_rps),
            c.after_statements_per_request,
            crate::stats::median(&c.after_cpu_ms_per_request),
            c.throughput_ratio,
            c.cpu_per_request_ratio
        );
    }
    let _ = writeln!(md, "\n## SQL per request\n");
    for s in &r.scenarios {
        if s.captured_sql.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "**{}** ({:.2} statements per request under load):\n\n```sql",
            s.title, s.statements_per_request
        );
        for q in &s.captured_sql {
            let _ = writeln!(md, "{};", abbreviate(q));
        }
        let _ = writeln!(md, "```\n");
    }
    if !r.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Shortens the column lists of a statement for reading (`SELECT … FROM`,
/// `RETURNING …`); results.json keeps the full text.
pub fn abbreviate(sql: &str) -> String {
    let mut out = sql.to_owned();
    if let (Some(0), Some(from)) = (out.find("SELECT \""), out.find(" FROM ")) {
        out.replace_range(7..from, "…");
    }
    if let Some(at) = out.find(" RETURNING ") {
        out.truncate(at);
        out.push_str(" RETURNING …");
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart: the API's throughput per scenario, and the pgbench
/// ceiling beside it where there is one.
pub fn svg(r: &Results) -> String {
    let (label_w, bar_w, row_h, top) = (260.0, 520.0, 46.0, 56.0);
    let width = label_w + bar_w + 120.0;
    let height = top + row_h * r.scenarios.len() as f64 + 40.0;
    let max = r
        .scenarios
        .iter()
        .flat_map(|s| [Some(s.latency.throughput_rps), s.pgbench_tps])
        .flatten()
        .fold(1.0_f64, f64::max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">Agenda: requests per second ({} connections)</text>"#,
        r.settings.connections
    );
    let _ = writeln!(
        out,
        r##"<rect x="10" y="32" width="12" height="12" fill="#2f6db5"/><text x="27" y="43">API</text><rect x="70" y="32" width="12" height="12" fill="#b9c9de"/><text x="87" y="43">pgbench ceiling (same SQL, same connections)</text>"##
    );
    for (i, s) in r.scenarios.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            label_w - 8.0,
            y + 18.0,
            escape(s.title.as_str())
        );
        let w = |v: f64| (v / max * bar_w).max(1.0);
        let api = s.latency.throughput_rps;
        let _ = writeln!(
            out,
            r##"<rect x="{label_w}" y="{y}" width="{:.1}" height="18" fill="#2f6db5"/><text x="{:.1}" y="{}">{api:.0}</text>"##,
            w(api),
            label_w + w(api) + 5.0,
            y + 14.0
        );
        if let Some(tps) = s.pgbench_tps {
            let ratio = s.ceiling_ratio.unwrap_or(0.0) * 100.0;
            let _ = writeln!(
                out,
                r##"<rect x="{label_w}" y="{}" width="{:.1}" height="14" fill="#b9c9de"/><text x="{:.1}" y="{}" fill="#555">{tps:.0} (API {ratio:.0}%)</text>"##,
                y + 20.0,
                w(tps),
                label_w + w(tps) + 5.0,
                y + 32.0
            );
        }
    }
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let latency = LatencySummary {
            requests: 1000,
            ok: 990,
            throughput_rps: 500.0,
            p50_ms: 1.0,
            p95_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 9.0,
            errors: [("409".to_owned(), 10)].into_iter().collect(),
        };
        let scenario = |title: &str, ceiling: Option<f64>| ScenarioResult {
            key: "k".into(),
            title: title.into(),
            route: "/r".into(),
            latency: latency.clone(),
            repeat_rps: vec![500.0],
            statements_per_request: 4.0,
            db_exec_ms_per_request: 0.1,
            server_cpu_s: 1.5,
            server_cpu_ms_per_request: 0.3,
            postgres_cpu_ms_per_request: 0.4,
            other_load_cores: 0.5,
            server_time_ms: Some(1.2),
            server_peak_rss_mib: 40.0,
            pgbench_tps: ceiling,
            ceiling_ratio: ceiling.map(|c| 500.0 / c),
            captured_sql: vec!["SELECT 1".into()],
            top_statements: vec![],
        };
        Results {
            generated_at: "now".into(),
            mode: "quick".into(),
            machine: BTreeMap::new(),
            settings: Settings {
                connections: 8,
                duration_s: 5.0,
                warmup_s: 1.0,
                repeats: 1,
                server_pool: "8".into(),
                postgres: "PostgreSQL 15".into(),
            },
            seed_size: SeedSize {
                organizations: 1,
                providers_per_organization: 1,
                clients_per_organization: 1,
                appointments: 1,
            },
            seed: SeedReport {
                seconds: 1.0,
                weeks_of_history: 1,
                rows: vec![("appointments".into(), 10)],
            },
            scenarios: vec![
                scenario("(a) <get>", Some(1000.0)),
                scenario("(e) health", None),
            ],
            half_peak: None,
            comparison: None,
            server_peak_rss_mib: 50.0,
            notes: vec![],
        }
    }

    #[test]
    fn markdown_has_a_row_per_scenario_with_the_ratio() {
        let md = markdown(&sample());
        assert!(md.contains("| (a) <get> | 500 | 1.00 | 2.00 | 3.00 | 409: 10 | 4.00 | 1.20 |"));
        assert!(md.contains("| 1000 | 50% |"));
        assert!(md.contains("| (e) health | 500 |"));
        assert!(md.contains("```sql\nSELECT 1;\n```"));
    }

    #[test]
    fn column_lists_are_abbreviated() {
        assert_eq!(
            abbreviate(r#"SELECT "t"."a", "t"."b" FROM "t" WHERE "t"."a" = '1'"#),
            r#"SELECT … FROM "t" WHERE "t"."a" = '1'"#
        );
        assert_eq!(
            abbreviate(r#"INSERT INTO "t" ("a") VALUES ('1') RETURNING "a", "b""#),
            r#"INSERT INTO "t" ("a") VALUES ('1') RETURNING …"#
        );
        assert_eq!(abbreviate("BEGIN"), "BEGIN");
    }

    #[test]
    fn svg_is_well_formed_and_escaped() {
        let svg = svg(&sample());
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("(a) &lt;get&gt;"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2 + 1);
        assert!(svg.contains("1000 (API 50%)"));
    }
}
