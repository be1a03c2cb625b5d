//! Logging set-up: human-readable or JSON lines, level from config or `RUST_LOG`, and
//! the request id on every line written while a request is handled.
//!
//! The request id travels as a task-local, set around each poll of the request's
//! handling ([`in_request`]), rather than as a tracing span: the subscriber builds,
//! formats and tears down a span eagerly for every request, which cost a tenth of a
//! session check, while a task-local costs nothing until a line is actually written.

use std::fmt;
use std::io::IsTerminal;

use axum::http::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Config, LogFormat};

tokio::task_local! {
    /// The id of the request the current task is handling.
    static REQUEST_ID: HeaderValue;
}

/// Runs `f` (one poll of a request's handling, say) as part of request `id`: every
/// line it logs names the id. Ids are checked by the HTTP frame (letters, digits,
/// `-_.:`), so they need no quoting in text lines.
pub fn in_request<R>(id: HeaderValue, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// The id of the request the current task is handling, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// Installs the global subscriber (idempotent: a second call is ignored).
pub fn init(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn", level = cfg.log_level)));
    // Colours only for a terminal: escape codes in a log file are noise.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match cfg.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .event_format(WithRequestId::json())
            .try_init(),
        LogFormat::Pretty => builder
            .compact()
            .event_format(WithRequestId::text(ansi))
            .try_init(),
    };
}

/// An event formatter that adds the current request id to what `inner` writes: a
/// `request_id` member of a JSON line, or ` request_id=...` at the end of a text line.
pub struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl WithRequestId<format::Format<format::Json>> {
    pub fn json() -> Self {
        WithRequestId {
            inner: format().json().flatten_event(true),
            json: true,
        }
    }
}

impl WithRequestId<format::Format<format::Compact>> {
    /// The line is formatted into a buffer first, so the colours are the format's
    /// own setting rather than the output writer's.
    pub fn text(ansi: bool) -> Self {
        WithRequestId {
            inner: format().compact().with_ansi(ansi),
            json: false,
        }
    }
}

fn format() -> format::Format {
    tracing_subscriber::fmt::format()
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line.as_str(), ""),
        };
        match body.strip_suffix('}') {
            Some(open) if self.json => {
                let comma = if open.ends_with('{') { "" } else { "," };
                let quoted = serde_json::to_string(&id).map_err(|_| fmt::Error)?;
                write!(writer, "{open}{comma}\"request_id\":{quoted}}}{newline}")
            }
            _ => write!(writer, "{body} request_id={id}{newline}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer collecting every line in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Logs one line outside and one inside a request, under `subscriber`.
    fn log_both(subscriber: impl Subscriber + Send + Sync + 'static) {
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(answer = 42, "outside");
            in_request(HeaderValue::from_static("req-1"), || {
                tracing::warn!(answer = 43, "inside");
                assert_eq!(request_id().as_deref(), Some("req-1"));
            });
            assert_eq!(request_id(), None);
        });
    }

    #[test]
    fn json_lines_carry_the_request_id() {
        let out = Lines::default();
        let w = out.clone();
        log_both(
            tracing_subscriber::fmt()
                .with_writer(move || w.clone())
                .json()
                .flatten_event(true)
                .event_format(WithRequestId::json())
                .finish(),
        );
        let lines: Vec<serde_json::Value> = out
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "outside");
        assert!(lines[0].get("request_id").is_none());
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["answer"], 43);
        assert_eq!(lines[1]["request_id"], "req-1");
    }

    #[test]
    fn text_lines_end_with_the_request_id() {
        let out = Lines::default();
        let w = out.clone();
        log_both(
            tracing_subscriber::fmt()
                .with_writer(move || w.clone())
                .compact()
                .event_format(WithRequestId::text(false))
                .finish(),
        );
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("outside") && !lines[0].contains("request_id"));
        assert!(lines[1].contains("inside answer=43"), "{}", lines[1]);
        assert!(lines[1].ends_with(" request_id=req-1"), "{}", lines[1]);
        assert!(!text.contains('\u{1b}'), "no colours when ansi is off");
    }
}
