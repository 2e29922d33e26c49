//! External programs some tests drive: Python tools (schemathesis, an SMTP server),
//! Node packages (a generated API client, Playwright), and Debian programs
//! (Chromium, PgBouncer). `bash .ci/tools` installs all of them with pinned
//! versions; `.ci/run` calls it.
//!
//! Each lookup returns where the tool is, or why it is missing. A test passes that to
//! [`require`]: a missing tool fails the test under `CI=true` and skips it elsewhere
//! with a message nobody can miss — the same rule as the PostgreSQL half of
//! [`crate::both_engines!`].

use std::path::{Path, PathBuf};

/// The workspace root (this crate lives in `crates/testkit`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the workspace root")
        .to_path_buf()
}

/// Where `.ci/tools` installs the Python tools: `AGENDA_TOOLS_VENV`, or
/// `target/tools/venv` under the workspace.
pub fn venv() -> PathBuf {
    std::env::var_os("AGENDA_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/tools/venv"))
}

/// A program installed into the tools virtualenv (`schemathesis`, `aiosmtpd`, ...).
pub fn python_tool(name: &str) -> Result<PathBuf, String> {
    let path = venv().join("bin").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{name} is not installed at {} (run `bash .ci/tools`)",
            path.display()
        ))
    }
}

/// The tools virtualenv's Python, for `python -m <module>`.
pub fn python() -> Result<PathBuf, String> {
    python_tool("python")
}

/// The Node project under `e2e/` with its packages installed (`npm ci`).
pub fn node_project() -> Result<PathBuf, String> {
    let dir = workspace_root().join("e2e");
    if dir.join("node_modules").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "the Node packages of {} are not installed (run `bash .ci/tools`)",
            dir.display()
        ))
    }
}

/// A program on `PATH` or in one of `extra` directories (Debian puts some daemons
/// in `/usr/sbin`, which is not on every user's `PATH`).
pub fn program(name: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed (run `bash .ci/tools`)"))
}

/// Debian's Chromium (`/usr/bin/chromium`).
pub fn chromium() -> Result<PathBuf, String> {
    program("chromium", &["/usr/bin"])
}

/// Debian's PgBouncer (`/usr/sbin/pgbouncer`).
pub fn pgbouncer() -> Result<PathBuf, String> {
    program("pgbouncer", &["/usr/sbin"])
}

/// The tool, or `None` after a loud skip message; under `CI=true` a missing tool
/// fails the test instead.
pub fn require(found: Result<PathBuf, String>) -> Option<PathBuf> {
    match found {
        Ok(path) => Some(path),
        Err(reason) => {
            if crate::in_ci() {
                panic!("this test must run under CI=true, but a tool is missing: {reason}");
            }
            eprintln!(
                "\n!!!!!!!!!! SKIPPING this test: {reason}\n\
                 !!!!!!!!!! Run `bash .ci/tools` to install what it needs.\n"
            );
            None
        }
    }
}
