//! The member's log, in etcd's formats and to etcd's outputs.
//!
//! - `--logger zap`: one JSON object a line, with zap's fields first (`level`, `ts` in ISO 8601
//!   UTC with milliseconds, `caller` as `package/file:line`, `msg`) and then the event's own
//!   fields, in the order they were given. Durations are written as Go writes them (`1.5ms`).
//! - `--logger capnslog` (etcd 3.4's default): `2006-01-02 15:04:05.000000 I | package: msg`,
//!   with the event's fields after the message as `key=value`.
//!
//! `--log-outputs` takes `stderr`, `stdout`, file paths (appended to) or `default` (stderr),
//! comma-separated; every line goes to each. `--log-level` takes etcd's levels (`debug`,
//! `info`, `warn`, `error`, `panic`, `fatal`) or a tracing filter (`stead_net=debug`). Neither
//! format writes terminal colour codes.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// A duration written as Go's `time.Duration.String()` writes it (`1.5ms`, `2m3s`, `0s`).
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        // The fraction of `value / unit`, trailing zeros dropped.
        let fraction = |value: u128, unit: u128| -> String {
            let digits = unit.ilog10() as usize;
            let rest = format!("{:0digits$}", value % unit);
            let rest = rest.trim_end_matches('0');
            if rest.is_empty() {
                format!("{}", value / unit)
            } else {
                format!("{}.{rest}", value / unit)
            }
        };
        match nanos {
            0 => f.write_str("0s"),
            n if n < 1_000 => write!(f, "{n}ns"),
            n if n < 1_000_000 => write!(f, "{}µs", fraction(n, 1_000)),
            n if n < 1_000_000_000 => write!(f, "{}ms", fraction(n, 1_000_000)),
            n => {
                let (hours, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
                let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
                if hours > 0 {
                    write!(f, "{hours}h{minutes}m")?;
                } else if minutes > 0 {
                    write!(f, "{minutes}m")?;
                }
                write!(f, "{}s", fraction(rest, 1_000_000_000))
            }
        }
    }
}

/// Which of etcd's formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logger {
    /// JSON lines.
    Zap,
    /// Text lines.
    Capnslog,
}

impl Logger {
    /// `--logger`'s value.
    pub fn parse(name: &str) -> Result<Logger, String> {
        match name {
            "zap" => Ok(Logger::Zap),
            "capnslog" => Ok(Logger::Capnslog),
            other => Err(format!("unknown logger option {other:?}")),
        }
    }
}

/// The tracing filter for `--log-level`.
pub fn filter(level: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let directive = match level {
        "debug" | "info" | "warn" | "error" => level,
        "dpanic" | "panic" | "fatal" => "error",
        other => other,
    };
    tracing_subscriber::EnvFilter::try_new(directive)
        .map_err(|_| format!("unknown log level {level:?}"))
}

/// Where lines go: every output of `--log-outputs`.
#[derive(Clone)]
pub struct Outputs {
    sinks: Arc<Mutex<Vec<Box<dyn std::io::Write + Send>>>>,
}

impl Outputs {
    /// Opens `--log-outputs` (files are created if missing and appended to).
    pub fn open(list: &str) -> Result<Outputs, String> {
        let mut sinks: Vec<Box<dyn std::io::Write + Send>> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "default" | "stderr" => sinks.push(Box::new(std::io::stderr())),
                "stdout" => sinks.push(Box::new(std::io::stdout())),
                path => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .map_err(|e| format!("cannot open log output {path}: {e}"))?;
                    sinks.push(Box::new(file));
                }
            }
        }
        if sinks.is_empty() {
            sinks.push(Box::new(std::io::stderr()));
        }
        Ok(Outputs { sinks: Arc::new(Mutex::new(sinks)) })
    }
}

/// One line's writer: the formatter writes a whole line, which goes to every output.
pub struct Line {
    sinks: Arc<Mutex<Vec<Box<dyn std::io::Write + Send>>>>,
}

impl std::io::Write for Line {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut sinks) = self.sinks.lock() {
            for sink in sinks.iter_mut() {
                let _ = sink.write_all(data);
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Ok(mut sinks) = self.sinks.lock() {
            for sink in sinks.iter_mut() {
                let _ = sink.flush();
            }
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Outputs {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line { sinks: self.sinks.clone() }
    }
}

/// Installs the process's logger; `Err` for a bad flag.
pub fn init(logger: Logger, outputs: &str, level: &str) -> Result<(), String> {
    let filter = filter(level)?;
    let outputs = Outputs::open(outputs)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(outputs);
    let installed = match logger {
        Logger::Zap => builder.event_format(Format(Logger::Zap)).try_init(),
        Logger::Capnslog => builder.event_format(Format(Logger::Capnslog)).try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

/// An event's message and fields, in order.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, serde_json::Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, serde_json::Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, serde_json::Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record(field, serde_json::Value::String(value.to_string()));
    }
}

impl Fields {
    fn record(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
        } else {
            self.fields.push((field.name().to_string(), value));
        }
    }
}

/// The event formatter for either logger.
pub struct Format(pub Logger);

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        let now = time::OffsetDateTime::now_utc();
        let line = match self.0 {
            Logger::Zap => zap_line(*metadata.level(), now, &caller(metadata), &fields),
            Logger::Capnslog => capnslog_line(*metadata.level(), now, metadata.target(), &fields),
        };
        writer.write_str(&line)
    }
}

/// `package/file:line` for an event's source, as zap's short caller.
fn caller(metadata: &tracing::Metadata<'_>) -> String {
    let file = metadata.file().unwrap_or("unknown");
    let parts: Vec<&str> =
        file.split(['/', '\\']).filter(|p| *p != "src" && !p.is_empty()).collect();
    let short = parts[parts.len().saturating_sub(2)..].join("/");
    format!("{short}:{}", metadata.line().unwrap_or(0))
}

/// `2006-01-02` and `15:04:05` of `now`.
fn date_and_time(now: time::OffsetDateTime) -> (String, String) {
    let date = format!("{:04}-{:02}-{:02}", now.year(), u8::from(now.month()), now.day());
    let time = format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second());
    (date, time)
}

fn zap_line(level: Level, now: time::OffsetDateTime, caller: &str, fields: &Fields) -> String {
    let level = match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG | Level::TRACE => "debug",
    };
    let (date, time) = date_and_time(now);
    let ts = format!("{date}T{time}.{:03}Z", now.millisecond());
    let text = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let mut line = format!(
        "{{\"level\":{},\"ts\":{},\"caller\":{},\"msg\":{}",
        text(level),
        text(&ts),
        text(caller),
        text(&fields.message)
    );
    for (name, value) in &fields.fields {
        let _ = write!(line, ",{}:{value}", text(name));
    }
    line.push_str("}\n");
    line
}

fn capnslog_line(level: Level, now: time::OffsetDateTime, target: &str, fields: &Fields) -> String {
    let level = match level {
        Level::ERROR => 'E',
        Level::WARN => 'W',
        Level::INFO => 'I',
        Level::DEBUG => 'D',
        Level::TRACE => 'T',
    };
    let package = target.strip_prefix("stead_").unwrap_or(target).replace("::", "/");
    let (date, time) = date_and_time(now);
    let mut line =
        format!("{date} {time}.{:06} {level} | {package}: {}", now.microsecond(), fields.message);
    for (name, value) in &fields.fields {
        match value {
            serde_json::Value::String(text) => {
                let _ = write!(line, " {name}={text}");
            }
            other => {
                let _ = write!(line, " {name}={other}");
            }
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_nanos(1_548_809), "1.548809ms"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(2_500), "2.5s"),
            (Duration::from_secs(62), "1m2s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(7_322), "2h2m2s"),
            (Duration::from_secs(600), "10m0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(GoDuration(duration).to_string(), text, "{duration:?}");
        }
    }

    #[test]
    fn a_zap_line_is_json_with_zaps_fields_first() {
        let fields = Fields {
            message: "slow \"fdatasync\"".into(),
            fields: vec![("took".into(), "1.2s".into()), ("count".into(), 3.into())],
        };
        let now =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_796_692_171_268_000_000).unwrap();
        let line = zap_line(Level::WARN, now, "net/driver.rs:42", &fields);
        assert!(line.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(value["level"], "warn");
        assert_eq!(value["ts"], "2026-12-08T01:09:31.268Z");
        assert_eq!(value["caller"], "net/driver.rs:42");
        assert_eq!(value["msg"], "slow \"fdatasync\"");
        assert_eq!(value["took"], "1.2s");
        assert_eq!(value["count"], 3);
        assert!(line.starts_with("{\"level\":\"warn\",\"ts\":"), "{line}");
    }

    #[test]
    fn a_capnslog_line_names_level_and_package() {
        let fields = Fields { message: "serving".into(), fields: vec![("n".into(), 1.into())] };
        let now =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_796_692_171_268_123_000).unwrap();
        let line = capnslog_line(Level::INFO, now, "stead_net::server", &fields);
        assert_eq!(line, "2026-12-08 01:09:31.268123 I | net/server: serving n=1\n");
    }

    #[test]
    fn levels_and_loggers_take_etcds_names() {
        for level in ["debug", "info", "warn", "error", "panic", "fatal", "stead_net=debug"] {
            assert!(filter(level).is_ok(), "{level}");
        }
        assert!(filter("loud[").is_err());
        assert_eq!(Logger::parse("zap"), Ok(Logger::Zap));
        assert_eq!(Logger::parse("capnslog"), Ok(Logger::Capnslog));
        assert!(Logger::parse("syslog").is_err());
    }
}
