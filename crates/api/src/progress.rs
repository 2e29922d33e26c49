//! A one-line progress bar on stderr for the long commands (`backup create`,
//! `restore --yes`). It is drawn only when stderr is a terminal and `--json` is off, so
//! logs, pipes, scripts and CI output never see control characters.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agenda_storage::backup::Progress;

/// Redraws at most this often (the last update is always drawn).
const REDRAW: Duration = Duration::from_millis(100);
const BAR_WIDTH: usize = 24;

pub struct ProgressLine {
    label: &'static str,
    started: Instant,
    enabled: bool,
    last_drawn: Mutex<Option<Instant>>,
}

impl ProgressLine {
    /// A bar labelled `label`, shown only when stderr is a terminal and not `quiet`.
    pub fn new(label: &'static str, quiet: bool) -> Self {
        ProgressLine {
            label,
            started: Instant::now(),
            enabled: !quiet && std::io::stderr().is_terminal(),
            last_drawn: Mutex::new(None),
        }
    }

    /// Draws `p` (throttled), replacing the previous line.
    pub fn update(&self, p: Progress<'_>) {
        if !self.enabled {
            return;
        }
        let mut last = self.last_drawn.lock().unwrap_or_else(|e| e.into_inner());
        let finished = p.tables_done == p.tables_total;
        if !finished && last.is_some_and(|at| at.elapsed() < REDRAW) {
            return;
        }
        *last = Some(Instant::now());
        let line = render(self.label, p, self.started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    /// Clears the bar so the command's summary starts on a clean line.
    pub fn finish(&self) {
        let drawn = self
            .last_drawn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if self.enabled && drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// The text of one progress line: a bar by rows when the total is known (restore),
/// else by tables (backup), then the counts, the current table and the time so far.
pub fn render(label: &str, p: Progress<'_>, elapsed: Duration) -> String {
    let (fraction, counts) = match p.rows_total {
        Some(total) => (
            if total == 0 {
                1.0
            } else {
                p.rows_done as f64 / total as f64
            },
            format!("{}/{} rows", p.rows_done, total),
        ),
        None => (
            if p.tables_total == 0 {
                1.0
            } else {
                p.tables_done as f64 / p.tables_total as f64
            },
            format!(
                "{}/{} tables, {} rows",
                p.tables_done, p.tables_total, p.rows_done
            ),
        ),
    };
    let fraction = fraction.clamp(0.0, 1.0);
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    format!(
        "{label} [{}{}] {:>3}%  {counts}  {}  {:.1}s",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        (fraction * 100.0).floor() as u32,
        p.table,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(rows_done: u64, rows_total: Option<u64>, tables_done: usize) -> Progress<'static> {
        Progress {
            table: "appointments",
            tables_done,
            tables_total: 4,
            rows_done,
            rows_total,
        }
    }

    #[test]
    fn the_bar_follows_rows_when_the_total_is_known_and_tables_otherwise() {
        let line = render(
            "restore",
            progress(250, Some(1000), 1),
            Duration::from_millis(1500),
        );
        assert_eq!(
            line,
            "restore [######------------------]  25%  250/1000 rows  appointments  1.5s"
        );
        let line = render("backup", progress(7, None, 2), Duration::from_secs(3));
        assert_eq!(
            line,
            "backup [############------------]  50%  2/4 tables, 7 rows  appointments  3.0s"
        );
        let done = render("restore", progress(0, Some(0), 4), Duration::ZERO);
        assert!(done.contains("[########################] 100%"), "{done}");
        let over = render("restore", progress(12, Some(10), 4), Duration::ZERO);
        assert!(over.contains("100%"), "never past the end: {over}");
    }

    #[test]
    fn nothing_is_drawn_when_quiet() {
        let bar = ProgressLine::new("backup", true);
        assert!(!bar.enabled);
        bar.update(progress(1, None, 4));
        assert!(bar.last_drawn.lock().unwrap().is_none());
    }
}
