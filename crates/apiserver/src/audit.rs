//! The audit log (kube-apiserver's `--audit-log-path` backend at the `Metadata` level): one
//! `audit.k8s.io/v1` `Event` per request as a JSON line — who (user, impersonated user, source
//! IPs, user agent), what (verb, URI, object reference), the answer's code and the
//! authorization decision, with timestamps — including requests answered 401 or 403.
//!
//! Requests hand their event to a writer task over a bounded queue, so a slow disk delays
//! requests only when the queue is full (then by at most [`ENQUEUE_TIMEOUT`], after which the
//! event is dropped and counted). The file is rotated by size as kube's lumberjack backend does:
//! the full file is renamed `<name>-<UTC timestamp>.<ext>` and the oldest backups beyond the
//! limit are removed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::auth::{Attributes, UserInfo};
use crate::meta::{SharedClock, SystemClock};

/// Events waiting for the writer before requests start to wait.
pub const QUEUE_CAPACITY: usize = 16 * 1024;
/// How long a request waits for room in a full queue before its event is dropped.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where and how to write the audit log.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The file, or `-` for standard output (`--audit-log-path`).
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes; 0 never rotates
    /// (`--audit-log-maxsize`, given in megabytes).
    pub max_size_bytes: u64,
    /// Rotated files kept; 0 keeps all (`--audit-log-maxbackup`).
    pub max_backups: usize,
}

/// A running audit log.
#[derive(Debug)]
pub struct AuditLog {
    queue: mpsc::Sender<Vec<u8>>,
    dropped: AtomicU64,
}

impl AuditLog {
    /// Opens (creating with mode 0600) the log file and starts its writer task. Must be called
    /// inside a tokio runtime.
    pub fn start(config: AuditConfig) -> std::io::Result<Arc<AuditLog>> {
        let sink = Sink::open(config)?;
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        // The writer does blocking file I/O: on its own thread, not a runtime worker.
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || write_loop(sink, rx))?;
        Ok(Arc::new(AuditLog {
            queue,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Queues one event (one line of JSON).
    pub async fn record(&self, event: &Value) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(line)) => {
                if tokio::time::timeout(ENQUEUE_TIMEOUT, self.queue.send(line))
                    .await
                    .is_err()
                {
                    let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::error!(dropped = n, "audit log queue full: event dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(dropped = n, "audit log writer stopped: event dropped");
            }
        }
    }

    /// Events dropped so far because the writer could not keep up or failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(mut sink: Sink, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = rx.blocking_recv() {
        if let Err(e) = sink.write(&line) {
            tracing::error!(error = %e, "writing the audit log failed");
        }
        // Flush once the queue is drained: batches under load, promptly when idle.
        if rx.is_empty()
            && let Err(e) = sink.flush()
        {
            tracing::error!(error = %e, "flushing the audit log failed");
        }
    }
    let _ = sink.flush();
}

/// The file (or standard output) the writer appends to.
struct Sink {
    config: AuditConfig,
    out: std::io::BufWriter<Box<dyn Write + Send>>,
    size: u64,
    clock: SharedClock,
    /// The stamp of the newest backup: every later backup gets a later one, so that backup
    /// names keep sorting by age even when the clock stands still or steps back (many
    /// rotations within one millisecond, or a clock set back between two runs).
    newest_backup: Option<jiff::Timestamp>,
}

impl Sink {
    fn open(config: AuditConfig) -> std::io::Result<Sink> {
        Sink::open_with_clock(config, Arc::new(SystemClock))
    }

    fn open_with_clock(config: AuditConfig, clock: SharedClock) -> std::io::Result<Sink> {
        let (out, size): (Box<dyn Write + Send>, u64) = if config.path.as_os_str() == "-" {
            (Box::new(std::io::stdout()), 0)
        } else {
            let f = open_append(&config.path)?;
            let size = f.metadata()?.len();
            (Box::new(f), size)
        };
        let newest_backup = if config.path.as_os_str() == "-" {
            None
        } else {
            backups(&config.path)?
                .iter()
                .filter_map(|b| backup_stamp(&config.path, b))
                .max()
        };
        Ok(Sink {
            config,
            out: std::io::BufWriter::with_capacity(64 * 1024, out),
            size,
            clock,
            newest_backup,
        })
    }

    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        if self.config.max_size_bytes > 0
            && self.size > 0
            && self.size + len > self.config.max_size_bytes
            && self.config.path.as_os_str() != "-"
        {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += len;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let path = &self.config.path;
        // A rotation no later than the newest backup (two within a millisecond, or a clock
        // set back) takes the millisecond after it. Reusing a free earlier name instead would
        // sort the newest backup first, and pruning would then delete it.
        let mut stamp = self.clock.now();
        if let Some(newest) = self.newest_backup
            && stamp <= newest
        {
            stamp = newest
                .checked_add(jiff::SignedDuration::from_millis(1))
                .map_err(std::io::Error::other)?;
        }
        let mut backup = backup_name(path, stamp);
        // A name taken by a file this run did not count (e.g. written by another process).
        while backup.exists() {
            stamp = stamp
                .checked_add(jiff::SignedDuration::from_millis(1))
                .map_err(std::io::Error::other)?;
            backup = backup_name(path, stamp);
        }
        std::fs::rename(path, backup)?;
        self.newest_backup = Some(stamp);
        self.out = std::io::BufWriter::with_capacity(64 * 1024, Box::new(open_append(path)?));
        self.size = 0;
        if self.config.max_backups > 0 {
            let mut backups = backups(path)?;
            backups.sort();
            let excess = backups.len().saturating_sub(self.config.max_backups);
            for old in &backups[..excess] {
                std::fs::remove_file(old)?;
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// `dir/audit.log` → `dir/audit-2026-12-07T17-30-00.123.log` (lumberjack's backup names, which
/// sort by time).
fn backup_name(path: &Path, now: jiff::Timestamp) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let stamp = now.strftime("%Y-%m-%dT%H-%M-%S%.3f").to_string();
    path.with_file_name(format!("{stem}-{stamp}{ext}"))
}

/// The time in a backup's name (see [`backup_name`]), if it has one.
fn backup_stamp(path: &Path, backup: &Path) -> Option<jiff::Timestamp> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let name = backup.file_name()?.to_str()?;
    let rest = name.strip_prefix(stem)?.strip_prefix('-')?;
    let stamp = if ext.is_empty() {
        rest
    } else {
        rest.strip_suffix(ext)?.strip_suffix('.')?
    };
    let civil = jiff::civil::DateTime::strptime("%Y-%m-%dT%H-%M-%S%.f", stamp).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The rotated files of `path`.
pub fn backups(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{stem}-");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(rest) = name.strip_prefix(&prefix)
            && rest.ends_with(&ext)
            && rest.len() == "2006-01-02T15-04-05.000".len() + ext.len()
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// One request's audit event, filled in as the request is served.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) audit_id: String,
    received: jiff::Timestamp,
    method: http::Method,
    uri: String,
    user_agent: Option<String>,
    source_ip: Option<std::net::IpAddr>,
    /// Who asked (after authentication), and whom they act as.
    pub(crate) user: Option<UserInfo>,
    pub(crate) impersonated: Option<UserInfo>,
    /// What the request is (after authentication).
    pub(crate) attributes: Option<Attributes>,
    /// The authorizer's decision and reason.
    pub(crate) decision: Option<(&'static str, String)>,
}

impl Entry {
    /// Starts the event of `request`.
    pub(crate) fn begin(request: &http::Request<axum::body::Body>) -> Entry {
        Entry {
            audit_id: uuid::Uuid::new_v4().to_string(),
            received: jiff::Timestamp::now(),
            method: request.method().clone(),
            uri: request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| request.uri().path().to_owned()),
            user_agent: request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            source_ip: request
                .extensions()
                .get::<Arc<crate::tls::ConnectionInfo>>()
                .and_then(|c| c.remote_addr)
                .map(|a| a.ip()),
            user: None,
            impersonated: None,
            attributes: None,
            decision: None,
        }
    }

    /// The finished event for an answer with `code`; `streaming` answers (watches) are logged
    /// when the response starts.
    pub(crate) fn finish(self, code: u16, streaming: bool) -> Value {
        let attributes = self.attributes.unwrap_or_else(|| {
            // Unauthenticated requests: what they asked for, as kube logs it.
            let (path, query) = self.uri.split_once('?').unwrap_or((&self.uri, ""));
            let query = crate::request::Query::parse(Some(query));
            match crate::request::parse_path(path) {
                Some(crate::request::Target::Resource(r)) => {
                    Attributes::for_resource(UserInfo::default(), &self.method, &r, &query, path)
                }
                _ => Attributes::for_path(UserInfo::default(), &self.method, path),
            }
        });
        let mut event = Map::new();
        event.insert("kind".into(), "Event".into());
        event.insert("apiVersion".into(), "audit.k8s.io/v1".into());
        event.insert("level".into(), "Metadata".into());
        event.insert("auditID".into(), self.audit_id.into());
        event.insert(
            "stage".into(),
            if streaming {
                "ResponseStarted"
            } else {
                "ResponseComplete"
            }
            .into(),
        );
        event.insert("requestURI".into(), self.uri.into());
        event.insert("verb".into(), attributes.verb.clone().into());
        event.insert("user".into(), user_json(self.user.as_ref()));
        if let Some(impersonated) = &self.impersonated {
            event.insert("impersonatedUser".into(), user_json(Some(impersonated)));
        }
        event.insert(
            "sourceIPs".into(),
            json!(
                self.source_ip
                    .map(|ip| ip.to_string())
                    .into_iter()
                    .collect::<Vec<_>>()
            ),
        );
        if let Some(ua) = self.user_agent {
            event.insert("userAgent".into(), ua.into());
        }
        if attributes.resource_request {
            let mut object = Map::new();
            object.insert("resource".into(), attributes.resource.into());
            for (key, value) in [
                ("namespace", attributes.namespace),
                ("name", attributes.name),
                ("apiGroup", attributes.api_group),
                ("apiVersion", attributes.api_version),
                ("subresource", attributes.subresource),
            ] {
                if !value.is_empty() {
                    object.insert(key.into(), value.into());
                }
            }
            event.insert("objectRef".into(), Value::Object(object));
        }
        event.insert("responseStatus".into(), json!({"metadata": {}, "code": code}));
        event.insert(
            "requestReceivedTimestamp".into(),
            micro_time(self.received).into(),
        );
        event.insert("stageTimestamp".into(), micro_time(jiff::Timestamp::now()).into());
        if let Some((decision, reason)) = self.decision {
            event.insert(
                "annotations".into(),
                json!({
                    "authorization.k8s.io/decision": decision,
                    "authorization.k8s.io/reason": reason,
                }),
            );
        }
        Value::Object(event)
    }
}

/// kube's `MicroTime`: RFC 3339 in UTC with microseconds.
fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn user_json(user: Option<&UserInfo>) -> Value {
    let mut out = Map::new();
    if let Some(user) = user {
        if !user.name.is_empty() {
            out.insert("username".into(), user.name.clone().into());
        }
        if !user.uid.is_empty() {
            out.insert("uid".into(), user.uid.clone().into());
        }
        if !user.groups.is_empty() {
            out.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            out.insert("extra".into(), json!(user.extra));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use ironnet_apimachinery::clock::ManualClock;

    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let early: jiff::Timestamp = "2026-01-02T03:04:05.006Z".parse().unwrap();
        let later: jiff::Timestamp = "2026-01-02T03:04:05.106Z".parse().unwrap();
        let a = backup_name(&path, early);
        let b = backup_name(&path, later);
        assert_eq!(a.file_name().unwrap(), "audit-2026-01-02T03-04-05.006.log");
        assert!(a < b);
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        std::fs::write(dir.path().join("audit-other.log"), "").unwrap();
        std::fs::write(&path, "").unwrap();
        let mut found = backups(&path).unwrap();
        found.sort();
        assert_eq!(found, vec![a.clone(), b]);
        assert_eq!(backup_stamp(&path, &a), Some(early));
    }

    fn line(i: usize) -> Vec<u8> {
        format!("{{\"n\":{i:04}}}\n").into_bytes()
    }

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Many rotations within one millisecond (the writer drains a burst of queued events): the
    /// backups that are kept are the newest ones, in name order. With a stopped clock the
    /// third rotation used to reuse the name freed by pruning, sorting the newest backup
    /// first, so the next pruning deleted it.
    #[test]
    fn rotations_within_one_millisecond_keep_the_newest_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let frozen: jiff::Timestamp = "2026-12-07T20:00:00.000Z".parse().unwrap();
        let config = AuditConfig {
            path: path.clone(),
            max_size_bytes: 3 * line(0).len() as u64,
            max_backups: 2,
        };
        let mut sink = Sink::open_with_clock(config, Arc::new(ManualClock::new(frozen))).unwrap();
        for i in 0..40 {
            sink.write(&line(i)).unwrap();
        }
        sink.flush().unwrap();
        let mut files = backups(&path).unwrap();
        files.sort();
        assert_eq!(files.len(), 2);
        files.push(path.clone());
        let kept: Vec<String> = files.iter().flat_map(|f| lines_of(f)).collect();
        let expected: Vec<String> = (33..40)
            .map(|i| String::from_utf8(line(i)).unwrap().trim_end().to_owned())
            .collect();
        assert_eq!(kept, expected);
    }

    /// A clock set back between two runs: the new run's backups still sort after the old ones.
    #[test]
    fn a_clock_set_back_still_names_backups_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let later: jiff::Timestamp = "2026-12-07T20:00:00.000Z".parse().unwrap();
        let earlier: jiff::Timestamp = "2026-12-07T19:00:00.000Z".parse().unwrap();
        let config = AuditConfig {
            path: path.clone(),
            max_size_bytes: line(0).len() as u64,
            max_backups: 0,
        };
        let mut first = Sink::open_with_clock(config.clone(), Arc::new(ManualClock::new(later))).unwrap();
        first.write(&line(0)).unwrap();
        first.write(&line(1)).unwrap();
        first.flush().unwrap();
        drop(first);
        let mut second = Sink::open_with_clock(config, Arc::new(ManualClock::new(earlier))).unwrap();
        second.write(&line(2)).unwrap();
        second.flush().unwrap();
        let mut files = backups(&path).unwrap();
        files.sort();
        assert_eq!(files.len(), 2);
        assert_eq!(lines_of(&files[0]), vec![r#"{"n":0000}"#]);
        assert_eq!(lines_of(&files[1]), vec![r#"{"n":0001}"#]);
        assert_eq!(lines_of(&path), vec![r#"{"n":0002}"#]);
    }
}
