//! Log output: ztunnel-style `key=value` lines, or JSON.
//!
//! A text line reads `<RFC 3339 time, µs, Z> <level> <target> <message>
//! key=value…`: string values quoted, numbers and `%`-displayed values bare,
//! as in ztunnel's access log. Records of the `log` crate (aya-log's kernel
//! messages among them) arrive through the same subscriber.

pub mod batched;

use std::fmt::{self, Write as _};
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// ztunnel-style `key=value` lines.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = LoggingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(LoggingError::UnknownFormat(other.to_string())),
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `--log-format` named no known format.
    #[error("unknown log format {0:?} (expected \"text\" or \"json\")")]
    UnknownFormat(String),
    /// The filter does not parse as an EnvFilter directive list.
    #[error("invalid log filter {filter:?}: {source}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// Another global subscriber (or `log` logger) is already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the global tracing subscriber writing to stderr in batches
/// ([`batched`]): RUST_LOG-style `filter` (default `info` when empty), text
/// or JSON lines; also bridges the `log` crate (aya-log records) into
/// tracing. Returns the writer, to flush before exiting.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<batched::Batched<std::io::Stderr>> {
    let writer = batched::Batched::new(std::io::stderr());
    init_with_writer(format, filter, writer.clone())?;
    Ok(writer)
}

/// [`init`] with lines going to `writer` (tests capture them this way).
pub fn init_with_writer<W>(format: LogFormat, filter: &str, writer: W) -> anyhow::Result<()>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // try_init also installs the `log` -> tracing bridge (LogTracer).
    subscriber(format, filter, writer)?
        .try_init()
        .map_err(LoggingError::AlreadyInstalled)?;
    Ok(())
}

/// A subscriber in `format` writing to `writer`, not installed: for scoped
/// use (`tracing::subscriber::with_default`).
pub fn subscriber<W>(
    format: LogFormat,
    filter: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, LoggingError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = if filter.trim().is_empty() {
        "info"
    } else {
        filter
    };
    let env_filter = EnvFilter::builder()
        .parse(filter)
        .map_err(|source| LoggingError::Filter {
            filter: filter.to_string(),
            source,
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(writer)
        .with_ansi(false);
    Ok(match format {
        LogFormat::Text => Box::new(
            builder
                .fmt_fields(TextFields)
                .event_format(TextFormat)
                .finish(),
        ),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    })
}

/// Now, as the log lines print it (RFC 3339, UTC, microseconds).
pub fn now_rfc3339() -> String {
    let mut text = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut text));
    text
}

/// The text line format (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct TextFormat;

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        let mut fields = KeyValues::new();
        event.record(&mut fields);
        let meta = event.metadata();
        // Bridged `log` records carry their real target as a field.
        let target = fields.log_target.as_deref().unwrap_or(meta.target());
        write!(writer, " {} {}", level_name(meta.level()), target)?;
        if let Some(message) = &fields.message {
            write!(writer, " {message}")?;
        }
        if !fields.pairs.is_empty() {
            write!(writer, " {}", fields.pairs)?;
        }
        // Fields of enclosing spans follow, outermost first.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(span_fields) = extensions.get::<FormattedFields<N>>() {
                    if !span_fields.is_empty() {
                        write!(writer, " {}", span_fields.fields)?;
                    }
                }
            }
        }
        writeln!(writer)
    }
}

/// Span fields in the same `key=value` style as event fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut kv = KeyValues::new();
        fields.record(&mut kv);
        let mut sep = "";
        if let Some(message) = &kv.message {
            write!(writer, "message={message:?}")?;
            sep = " ";
        }
        if !kv.pairs.is_empty() {
            write!(writer, "{sep}{}", kv.pairs)?;
        }
        Ok(())
    }
}

/// Collects an event's fields: the message apart, `log.*` bridge metadata
/// apart, everything else as `key=value` pairs in recording order.
struct KeyValues {
    message: Option<String>,
    log_target: Option<String>,
    pairs: String,
}

/// Room for a whole access-log line's pairs, so recording them never grows
/// the buffer (growing it was a visible share of a request's CPU).
const PAIRS_CAPACITY: usize = 768;

impl KeyValues {
    fn new() -> Self {
        KeyValues {
            message: None,
            log_target: None,
            pairs: String::with_capacity(PAIRS_CAPACITY),
        }
    }

    fn push(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        let _ = self.pairs.write_fmt(value);
    }

    /// `key="value"`, escaped exactly as `{value:?}` escapes it.
    fn push_quoted(&mut self, field: &Field, value: &str) {
        self.key(field);
        if needs_no_escape(value) {
            self.pairs.push('"');
            self.pairs.push_str(value);
            self.pairs.push('"');
        } else {
            let _ = write!(self.pairs, "{value:?}");
        }
    }

    fn key(&mut self, field: &Field) {
        if !self.pairs.is_empty() {
            self.pairs.push(' ');
        }
        self.pairs.push_str(field.name());
        self.pairs.push('=');
    }
}

/// Whether `{value:?}` would print `value` unchanged between its quotes:
/// printable ASCII other than `"` and `\` (what Debug escapes besides
/// control and non-ASCII characters, which take the slow path).
fn needs_no_escape(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for KeyValues {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_string()),
            "log.target" => self.log_target = Some(value.to_string()),
            name if name.starts_with("log.") => {}
            // Strings are quoted (and escaped) so values with spaces parse.
            _ => self.push_quoted(field, value),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.record_str(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            name if name.starts_with("log.") => {}
            // Numbers, bools and `%value`s (Display) print bare.
            _ => self.push(field, format_args!("{value:?}")),
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::testing::log::Capture;

    fn capture(format: LogFormat, filter: &str, f: impl FnOnce()) -> String {
        let out = Capture::default();
        let sub = subscriber(format, filter, out.clone()).unwrap();
        tracing::subscriber::with_default(sub, f);
        out.text()
    }

    #[test]
    fn quoted_values_print_exactly_as_debug_does() {
        let values = [
            "",
            "/get?x=1",
            "curl/8.5.0",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "caf\u{e9}",
            "line\nbreak",
        ];
        for value in values {
            let out = capture(LogFormat::Text, "", || {
                tracing::info!(target: "t", v = value, "m");
            });
            let printed = out.split(" v=").nth(1).unwrap().trim_end();
            assert_eq!(printed, format!("{value:?}"), "{value:?}");
        }
    }

    #[test]
    fn text_line_has_the_walkthrough_shape() {
        let src: std::net::SocketAddr = "10.0.74.45:58668".parse().unwrap();
        let out = capture(LogFormat::Text, "", || {
            tracing::event!(
                target: "http access",
                Level::INFO,
                src.addr = %src,
                src.workload = "productpage-v1-7654b4b6d5-7c4l5",
                src.identity = "spiffe://cluster1/ns/bookinfo/sa/bookinfo-productpage",
                direction = "outbound",
                method = %http::Method::GET,
                path = "/get",
                protocol = %"HTTP1",
                response_code = 200u16,
                bytes_sent = 82u64,
                duration = "13ms",
                "request complete"
            );
        });
        let re = regex::Regex::new(
            r#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z info http access request complete src\.addr=10\.0\.74\.45:58668 src\.workload="productpage-v1-7654b4b6d5-7c4l5" src\.identity="spiffe://cluster1/ns/bookinfo/sa/bookinfo-productpage" direction="outbound" method=GET path="/get" protocol=HTTP1 response_code=200 bytes_sent=82 duration="13ms"\n$"#,
        )
        .unwrap();
        assert!(re.is_match(&out), "unexpected line: {out:?}");
    }

    #[test]
    fn strings_are_escaped_and_span_fields_follow() {
        let out = capture(LogFormat::Text, "info", || {
            let span = tracing::info_span!("conn", workload = "a b");
            let _entered = span.enter();
            let err = io::Error::other("boom \"x\"");
            tracing::warn!(target: "egret::proxy", error = &err as &dyn std::error::Error, ok = true, "upstream failed");
        });
        assert!(
            out.ends_with(" warn egret::proxy upstream failed error=\"boom \\\"x\\\"\" ok=true workload=\"a b\"\n"),
            "{out:?}"
        );
    }

    #[test]
    fn filter_applies_and_defaults_to_info() {
        let out = capture(LogFormat::Text, "", || {
            tracing::debug!("hidden");
            tracing::info!("shown");
        });
        assert!(!out.contains("hidden") && out.contains(" info "), "{out:?}");
        let out = capture(LogFormat::Text, "warn,egret::dns=debug", || {
            tracing::debug!(target: "egret::dns", "dns detail");
            tracing::info!(target: "egret::proxy", "proxy info");
        });
        assert!(
            out.contains("dns detail") && !out.contains("proxy info"),
            "{out:?}"
        );
        assert!(matches!(
            subscriber(LogFormat::Text, "egret=loud", io::sink),
            Err(LoggingError::Filter { .. })
        ));
    }

    #[test]
    fn json_lines_carry_fields_at_top_level() {
        let out = capture(LogFormat::Json, "info", || {
            tracing::info!(target: "access", bytes_sent = 82u64, direction = "outbound", "connection complete");
        });
        let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(value["message"], "connection complete");
        assert_eq!(value["bytes_sent"], 82);
        assert_eq!(value["direction"], "outbound");
        assert_eq!(value["target"], "access");
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
