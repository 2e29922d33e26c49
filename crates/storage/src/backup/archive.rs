//! The archive file: writing it from spooled table files, reading it back entry by
//! entry with every check (`verify`), and listing a directory of archives.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{BackupError, FORMAT_NAME, FORMAT_VERSION, MANIFEST_FILE, Manifest, TableManifest};

/// The largest manifest read into memory (36 tables take a few kilobytes).
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// At most this many problems are reported; the rest are counted.
const MAX_PROBLEMS: usize = 50;

/// The path of a table's data file inside the archive.
pub(crate) fn data_file(table: &str) -> String {
    format!("data/{table}.jsonl")
}

/// Lower-case hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes the archive: `manifest.json` first, then each table's spooled data file in
/// manifest order. Entry headers carry the snapshot time, mode 0644 and no owner, so
/// the archive depends on nothing but the data and the manifest.
pub(crate) fn write(
    writer: impl Write,
    manifest: &Manifest,
    spooled: &[PathBuf],
) -> Result<(), BackupError> {
    let failed = |e| BackupError::io("writing the backup archive", e);
    let mtime = u64::try_from(manifest.created_at.timestamp()).unwrap_or(0);
    let mut builder = tar::Builder::new(GzEncoder::new(writer, Compression::default()));
    let header = |size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let mut text = serde_json::to_vec_pretty(manifest).map_err(|e| failed(io::Error::other(e)))?;
    text.push(b'\n');
    builder
        .append_data(
            &mut header(text.len() as u64),
            MANIFEST_FILE,
            text.as_slice(),
        )
        .map_err(failed)?;
    for (table, path) in manifest.tables.iter().zip(spooled) {
        let file = File::open(path).map_err(failed)?;
        let size = file.metadata().map_err(failed)?.len();
        if size != table.bytes {
            return Err(failed(io::Error::other(format!(
                "the spooled {} changed size",
                table.file
            ))));
        }
        builder
            .append_data(&mut header(size), &table.file, BufReader::new(file))
            .map_err(failed)?;
    }
    let gz = builder.into_inner().map_err(failed)?;
    let mut writer = gz.finish().map_err(failed)?;
    writer.flush().map_err(failed)
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub path: PathBuf,
    /// Size of the archive file.
    pub archive_bytes: u64,
    /// The manifest, when it could be read.
    pub manifest: Option<Manifest>,
    /// Everything found wrong; empty when the archive is sound.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.manifest.is_some() && self.problems.is_empty()
    }

    /// The report as an error, when there are problems.
    pub fn into_result(self) -> Result<Manifest, BackupError> {
        match (self.manifest, self.problems.is_empty()) {
            (Some(manifest), true) => Ok(manifest),
            (_, _) => Err(BackupError::Invalid {
                path: self.path,
                problems: if self.problems.is_empty() {
                    vec!["no manifest".into()]
                } else {
                    self.problems
                },
            }),
        }
    }
}

/// Re-reads the archive at `path` from start to end and checks it against its
/// manifest: the format and its version, every data file present once and in order,
/// each file's row count, size and SHA-256, every line a JSON object with exactly the
/// manifest's columns, rows in ascending primary-key order, and the gzip checksum at
/// the end. Problems are collected, not returned as an error; an error means the file
/// could not be opened at all.
pub fn verify(path: &Path) -> Result<VerifyReport, BackupError> {
    scan(path, |_| Ok(()))
}

/// What [`scan`] hands to its visitor.
pub(crate) enum Event {
    /// One row of the table at `index` in the manifest, already checked to have
    /// exactly the manifest's columns.
    Row {
        index: usize,
        row: serde_json::Map<String, serde_json::Value>,
    },
    /// The data file of the table at `index` has been read completely and matched
    /// its manifest entry.
    TableDone { index: usize },
}

/// Why a visitor stopped the scan.
pub(crate) struct Stop(pub String);

/// Reads the archive once, checking everything [`verify`] promises, and hands each
/// row to `visit`. A visitor error is recorded as a problem and ends the scan.
pub(crate) fn scan(
    path: &Path,
    mut visit: impl FnMut(Event) -> Result<(), Stop>,
) -> Result<VerifyReport, BackupError> {
    let file =
        File::open(path).map_err(|e| BackupError::io(format!("opening {}", path.display()), e))?;
    let archive_bytes = file
        .metadata()
        .map_err(|e| BackupError::io(format!("reading {}", path.display()), e))?
        .len();
    let mut report = VerifyReport {
        path: path.to_owned(),
        archive_bytes,
        manifest: None,
        problems: Vec::new(),
    };
    let mut problems = Problems::default();
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let complete = scan_entries(
        &mut archive,
        &mut report.manifest,
        &mut problems,
        &mut visit,
    );
    if complete {
        // tar stops at its end marker; reading on to the end of the gzip stream makes
        // flate2 check the CRC and length in the gzip trailer.
        let mut rest = archive.into_inner();
        if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
            problems.push(format!("the archive is truncated or damaged ({e})"));
        }
    }
    report.problems = problems.finish();
    Ok(report)
}

#[derive(Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(problem);
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list.push(format!("… and {} more problems", self.more));
        }
        self.list
    }
}

/// Walks the entries. Returns false when the walk had to stop early (the rest of
/// the stream is then not worth checking).
fn scan_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    manifest_out: &mut Option<Manifest>,
    problems: &mut Problems,
    visit: &mut impl FnMut(Event) -> Result<(), Stop>,
) -> bool {
    let damaged = |e: io::Error| format!("the archive is truncated or damaged ({e})");
    let mut entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            problems.push(damaged(e));
            return false;
        }
    };

    // The manifest comes first.
    let manifest = match entries.next() {
        None => {
            problems.push("the archive is empty".into());
            return false;
        }
        Some(Err(e)) => {
            problems.push(format!(
                "not a gzip-compressed tar archive, or damaged ({e})"
            ));
            return false;
        }
        Some(Ok(entry)) => match read_manifest_entry(entry) {
            Ok(m) => m,
            Err(problem) => {
                problems.push(problem);
                return false;
            }
        },
    };
    if let Err(problem) = check_manifest(&manifest) {
        problems.push(problem);
        *manifest_out = Some(manifest);
        return false;
    }
    *manifest_out = Some(manifest);
    let manifest = manifest_out.as_ref().expect("just set");

    let mut next = 0usize;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(damaged(e));
                return false;
            }
        };
        let name = match entry.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => {
                problems.push(damaged(e));
                return false;
            }
        };
        let Some(index) = manifest.tables.iter().position(|t| t.file == name) else {
            problems.push(format!("unexpected file {name} in the archive"));
            continue;
        };
        if index != next {
            problems.push(format!(
                "{name} is out of place: expected {}",
                manifest
                    .tables
                    .get(next)
                    .map_or("the end of the archive", |t| t.file.as_str())
            ));
            return false;
        }
        next += 1;
        let table = &manifest.tables[index];
        match check_table(entry, index, table, problems, visit) {
            Ok(()) => {}
            Err(TableError::Io(e)) => {
                problems.push(damaged(e));
                return false;
            }
            Err(TableError::Stopped(reason)) => {
                problems.push(reason);
                return false;
            }
        }
    }
    for table in &manifest.tables[next..] {
        problems.push(format!("{} is missing from the archive", table.file));
    }
    true
}

fn read_manifest_entry(entry: tar::Entry<'_, impl Read>) -> Result<Manifest, String> {
    let name = entry
        .path()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name != MANIFEST_FILE {
        return Err(format!(
            "the first file is {name:?}, not {MANIFEST_FILE}: not an Agenda backup"
        ));
    }
    if entry.size() > MAX_MANIFEST_BYTES {
        return Err(format!("{MANIFEST_FILE} is implausibly large"));
    }
    let mut text = Vec::new();
    entry
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("the archive is truncated or damaged ({e})"))?;
    // Check the format before the rest, so a newer format says so instead of
    // failing on a field this build does not know.
    let head: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{MANIFEST_FILE} is not valid JSON ({e})"))?;
    if head.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(format!("{MANIFEST_FILE} is not an Agenda backup manifest"));
    }
    match head.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "format version {v} is not supported (this build reads version {FORMAT_VERSION})"
            ));
        }
        None => return Err(format!("{MANIFEST_FILE} has no format_version")),
    }
    serde_json::from_value(head).map_err(|e| format!("{MANIFEST_FILE} is not valid ({e})"))
}

/// Internal consistency of the manifest itself.
fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    for (i, table) in manifest.tables.iter().enumerate() {
        if table.file != data_file(&table.name) {
            return Err(format!(
                "{MANIFEST_FILE}: table {} has the file {:?}, expected {:?}",
                table.name,
                table.file,
                data_file(&table.name)
            ));
        }
        if manifest.tables[..i].iter().any(|t| t.name == table.name) {
            return Err(format!(
                "{MANIFEST_FILE}: table {} is listed twice",
                table.name
            ));
        }
        if !table.columns.iter().any(|c| c == "id") {
            return Err(format!(
                "{MANIFEST_FILE}: table {} has no id column",
                table.name
            ));
        }
    }
    if manifest.migrations.last() != Some(&manifest.schema_version) {
        return Err(format!(
            "{MANIFEST_FILE}: schema_version {:?} is not the last of its migrations",
            manifest.schema_version
        ));
    }
    Ok(())
}

enum TableError {
    Io(io::Error),
    Stopped(String),
}

/// Reads one data file: counts, hashes and checks its lines, hands each row to the
/// visitor, and compares the totals with the manifest.
fn check_table(
    entry: tar::Entry<'_, impl Read>,
    index: usize,
    table: &TableManifest,
    problems: &mut Problems,
    visit: &mut impl FnMut(Event) -> Result<(), Stop>,
) -> Result<(), TableError> {
    let mut reader = BufReader::with_capacity(64 * 1024, entry);
    let mut hasher = Sha256::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut line = Vec::new();
    let mut last_id: Option<String> = None;
    // After the first bad line of a file, the rest is only counted and hashed.
    let mut line_problem = false;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(TableError::Io)?;
        if n == 0 {
            break;
        }
        hasher.update(&line);
        bytes += n as u64;
        rows += 1;
        if line_problem {
            continue;
        }
        let at = || format!("{} line {rows}", table.file);
        if line.last() != Some(&b'\n') {
            problems.push(format!("{}: the file does not end with a newline", at()));
            line_problem = true;
            continue;
        }
        let row = match parse_row(&line[..n - 1], table, last_id.as_deref()) {
            Ok((row, id)) => {
                last_id = Some(id);
                row
            }
            Err(problem) => {
                problems.push(format!("{}: {problem}", at()));
                line_problem = true;
                continue;
            }
        };
        if problems.is_empty() {
            visit(Event::Row { index, row })
                .map_err(|Stop(reason)| TableError::Stopped(format!("{}: {reason}", at())))?;
        }
    }
    let sha256 = hex(&hasher.finalize());
    if rows != table.rows {
        problems.push(format!(
            "{}: {rows} rows, the manifest says {}",
            table.file, table.rows
        ));
    }
    if bytes != table.bytes {
        problems.push(format!(
            "{}: {bytes} bytes, the manifest says {}",
            table.file, table.bytes
        ));
    }
    if sha256 != table.sha256 {
        problems.push(format!(
            "{}: SHA-256 {sha256} does not match the manifest's {}",
            table.file, table.sha256
        ));
    }
    if problems.is_empty() {
        visit(Event::TableDone { index })
            .map_err(|Stop(reason)| TableError::Stopped(format!("{}: {reason}", table.file)))?;
    }
    Ok(())
}

/// One line: a JSON object with exactly the manifest's columns and an `id` greater
/// than the previous line's.
fn parse_row(
    line: &[u8],
    table: &TableManifest,
    last_id: Option<&str>,
) -> Result<(serde_json::Map<String, serde_json::Value>, String), String> {
    let row: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| format!("not a JSON object ({e})"))?;
    if row.len() != table.columns.len() || !table.columns.iter().all(|c| row.contains_key(c)) {
        return Err(format!(
            "the columns are not the manifest's ({})",
            table.columns.join(", ")
        ));
    }
    let id = row
        .get("id")
        .and_then(|v| v.as_str())
        .ok_or("the id is not a string")?
        .to_owned();
    // Canonical UUID strings sort like the 16-byte keys both engines order by.
    if last_id.is_some_and(|last| last >= id.as_str()) {
        return Err(format!("the id {id} is not in ascending order"));
    }
    Ok((row, id))
}

/// One archive found by [`list`].
#[derive(Debug, Clone, Serialize)]
pub struct BackupListing {
    pub path: PathBuf,
    pub file_name: String,
    /// Size of the archive file.
    pub bytes: u64,
    /// The manifest, when it could be read (only the first entry is read: listing
    /// does not verify; use [`verify`]).
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read.
    pub error: Option<String>,
}

/// The archives (`*.tar.gz`) in `dir`, oldest name first (the default names start
/// with a UTC timestamp). A missing directory has none.
pub fn list(dir: &Path) -> Result<Vec<BackupListing>, BackupError> {
    let read_dir = match std::fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(format!("reading {}", dir.display()), e)),
    };
    let mut found = Vec::new();
    for item in read_dir {
        let item = item.map_err(|e| BackupError::io(format!("reading {}", dir.display()), e))?;
        let file_name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if !file_name.ends_with(".tar.gz") || !path.is_file() {
            continue;
        }
        let bytes = item.metadata().map(|m| m.len()).unwrap_or(0);
        let (manifest, error) = match read_manifest(&path) {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e)),
        };
        found.push(BackupListing {
            path,
            file_name,
            bytes,
            manifest,
            error,
        });
    }
    found.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(found)
}

/// Reads just the manifest (the first entry) of an archive.
pub(crate) fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let mut entries = archive.entries().map_err(|e| e.to_string())?;
    match entries.next() {
        None => Err("the archive is empty".into()),
        Some(Err(e)) => Err(format!(
            "not a gzip-compressed tar archive, or damaged ({e})"
        )),
        Some(Ok(entry)) => read_manifest_entry(entry),
    }
}
