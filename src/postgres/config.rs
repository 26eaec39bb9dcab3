//! What the source connects to and how it behaves: [`PostgresConfig`].

use crate::postgres::error::PostgresError;
use std::time::Duration;

/// Where the server is and who connects, read from a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: Option<String>,
    pub(crate) dbname: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) answer_timeout: Duration,
}

impl Endpoint {
    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How a [`PostgresSource`](crate::postgres::PostgresSource) connects and what it reads.
///
/// # Examples
///
/// ```
/// use viewstore::postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@127.0.0.1:5432/shop", "shop_views")?
///     .with_tables(&["users", "posts", "follows"])
///     .with_feeds(&["profiles", "posts_by_user"]);
/// assert_eq!(config.slot(), "shop_views");
/// # Ok::<(), viewstore::postgres::PostgresError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) slot: String,
    pub(crate) publication: String,
    pub(crate) tables: Vec<String>,
    pub(crate) feeds: Vec<String>,
    pub(crate) snapshot: bool,
    pub(crate) resync: bool,
    pub(crate) snapshot_chunk: usize,
    pub(crate) attempts: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) status_interval: Duration,
    pub(crate) heartbeat_interval: Duration,
}

impl PostgresConfig {
    /// A source reading the database of `connection` (a URL,
    /// `postgres://user:password@host:port/dbname?connect_timeout=10`, or key-value
    /// pairs, `host=127.0.0.1 port=5432 user=app dbname=shop`) through the replication
    /// slot `slot`, which is also the source's name in the store and the default
    /// publication name.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Config`] for a string that cannot be read, an `sslmode` that
    /// requires TLS (not supported: connect over loopback or a private network), or a
    /// slot name PostgreSQL would refuse (1 to 63 lowercase letters, digits and `_`).
    pub fn new(connection: &str, slot: &str) -> Result<Self, PostgresError> {
        check_identifier("slot", slot)?;
        Ok(PostgresConfig {
            endpoint: parse_connection(connection)?,
            slot: slot.to_owned(),
            publication: slot.to_owned(),
            tables: Vec::new(),
            feeds: Vec::new(),
            snapshot: true,
            resync: false,
            snapshot_chunk: 5_000,
            attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            status_interval: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(10),
        })
    }

    /// The publication to read. Default = the slot's name.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Config`] for a name PostgreSQL would refuse.
    pub fn with_publication(mut self, publication: &str) -> Result<Self, PostgresError> {
        check_identifier("publication", publication)?;
        publication.clone_into(&mut self.publication);
        Ok(self)
    }

    /// The tables to read (`name` or `schema.name`): when the publication does not exist
    /// yet, the source creates it `FOR TABLE` these. Default = none: the publication
    /// must exist.
    pub fn with_tables(mut self, tables: &[&str]) -> Self {
        self.tables = tables.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The views this source feeds. When an initial snapshot was interrupted (the
    /// process died while copying), or on a [`resync`](Self::resync), the source clears
    /// them before it copies the tables again, so that no row of the interrupted copy
    /// survives. Without them such a restart fails with
    /// [`PostgresError::SnapshotInterrupted`]. Default = none.
    pub fn with_feeds(mut self, views: &[&str]) -> Self {
        self.feeds = views.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    /// Whether a new store starts with a copy of the tables' rows (the initial
    /// snapshot) before streaming their changes. Default = true.
    pub fn with_snapshot(mut self, snapshot: bool) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// Whether a lost slot (or its lost WAL) starts a new snapshot into the cleared
    /// [`feeds`](Self::with_feeds) instead of failing with
    /// [`PostgresError::SlotGone`] or [`PostgresError::WalGone`]. Default = false.
    pub fn resync(mut self, resync: bool) -> Self {
        self.resync = resync;
        self
    }

    /// Rows per event of the initial snapshot. Default = 5,000.
    pub fn with_snapshot_chunk(mut self, rows: usize) -> Self {
        self.snapshot_chunk = rows.max(1);
        self
    }

    /// How many times a connection is tried before the source fails, and the first
    /// wait between tries (doubling up to `max_backoff`). Default = 10 tries, from
    /// 100 ms up to 5 s (about 25 seconds in all).
    pub fn with_retries(mut self, attempts: u32, backoff: Duration, max_backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self.max_backoff = max_backoff.max(backoff);
        self
    }

    /// How often, when idle, the source records the server's position as its own (an
    /// empty event), so that the slot does not hold WAL back. Default = 10 s.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a command (a query, a fetch of the snapshot, dropping a slot held by
    /// another walsender) may go without any answer before the connection counts as
    /// broken and is made again. Default = 300 s.
    pub fn with_answer_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.answer_timeout = timeout;
        self
    }

    /// How often, while streaming, the source reports its durable position to the
    /// server even when it has not moved, asking for an answer; a stream silent through
    /// three such reports counts as broken and is made again. Default = 10 s.
    pub fn with_status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = interval;
        self
    }

    /// The slot's name (also the source's name in the store).
    pub fn slot(&self) -> &str {
        &self.slot
    }

    /// The publication's name.
    pub fn publication(&self) -> &str {
        &self.publication
    }
}

/// PostgreSQL's rule for slot names, used for publications too (quoted anyway).
fn check_identifier(what: &str, name: &str) -> Result<(), PostgresError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PostgresError::Config {
            reason: format!(
                "the {what} name `{name}` must be 1 to 63 lowercase letters, digits or `_`"
            ),
        })
    }
}

/// Reads a URL or key-value connection string.
pub(crate) fn parse_connection(s: &str) -> Result<Endpoint, PostgresError> {
    let bad = |reason: String| PostgresError::Config { reason };
    let mut endpoint = Endpoint {
        host: "localhost".to_owned(),
        port: 5432,
        user: std::env::var("USER").unwrap_or_else(|_| "postgres".to_owned()),
        password: None,
        dbname: String::new(),
        connect_timeout: Duration::from_secs(10),
        answer_timeout: Duration::from_secs(300),
    };
    let mut options: Vec<(String, String)> = Vec::new();
    let trimmed = s.trim();
    if let Some(rest) =
        trimmed.strip_prefix("postgres://").or_else(|| trimmed.strip_prefix("postgresql://"))
    {
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            options.push(("user".into(), percent_decode(user).map_err(bad)?));
            if let Some(p) = password {
                options.push(("password".into(), percent_decode(p).map_err(bad)?));
            }
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, Some(p)),
            _ => (hostport, None),
        };
        if !host.is_empty() {
            options.push(("host".into(), host.trim_matches(['[', ']']).to_owned()));
        }
        if let Some(port) = port {
            options.push(("port".into(), port.to_owned()));
        }
        if !path.is_empty() {
            options.push(("dbname".into(), percent_decode(path).map_err(bad)?));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            options.push((k.to_owned(), percent_decode(v).map_err(bad)?));
        }
    } else {
        for pair in trimmed.split_whitespace() {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(bad(format!("`{pair}` is not `key=value`")));
            };
            options.push((k.to_owned(), v.trim_matches('\'').to_owned()));
        }
    }
    for (key, value) in options {
        match key.as_str() {
            "host" => endpoint.host = value,
            "port" => {
                endpoint.port =
                    value.parse().map_err(|_| bad(format!("port `{value}` is not a number")))?;
            }
            "user" => endpoint.user = value,
            "password" => endpoint.password = Some(value),
            "dbname" => endpoint.dbname = value,
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| bad(format!("connect_timeout `{value}` is not a number")))?;
                endpoint.connect_timeout = Duration::from_secs(secs.clamp(1, 86_400));
            }
            "sslmode" => {
                if !matches!(value.as_str(), "disable" | "allow" | "prefer") {
                    return Err(bad(format!(
                        "sslmode `{value}` needs TLS, which this source does not speak; \
                         connect over loopback or a private network with sslmode=disable"
                    )));
                }
            }
            "application_name" | "options" => {}
            other => return Err(bad(format!("unknown option `{other}`"))),
        }
    }
    if endpoint.host.starts_with('/') {
        return Err(bad(format!(
            "host `{}` is a Unix socket directory; this source connects over TCP only",
            endpoint.host
        )));
    }
    if endpoint.dbname.is_empty() {
        endpoint.dbname.clone_from(&endpoint.user);
    }
    Ok(endpoint)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("`{s}` ends inside an escape"))?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| format!("`%{hex}` in `{s}`"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_key_values() -> Result<(), PostgresError> {
        let e = parse_connection("postgres://app:p%40ss@db.local:6543/shop?connect_timeout=3")?;
        assert_eq!(
            (e.host.as_str(), e.port, e.user.as_str(), e.password.as_deref(), e.dbname.as_str()),
            ("db.local", 6543, "app", Some("p@ss"), "shop")
        );
        assert_eq!(e.connect_timeout, Duration::from_secs(3));
        let e = parse_connection("host=127.0.0.1 port=5433 user=u dbname=d sslmode=disable")?;
        assert_eq!((e.host.as_str(), e.port, e.dbname.as_str()), ("127.0.0.1", 5433, "d"));
        let e = parse_connection("postgresql://u@h")?;
        assert_eq!((e.port, e.dbname.as_str()), (5432, "u"));
        for bad in [
            "postgres://u@h:x/d",
            "host=h sslmode=require",
            "nonsense",
            "postgres://u@h/d?bogus=1",
            "postgres://u:%zz@h/d",
        ] {
            assert!(matches!(parse_connection(bad), Err(PostgresError::Config { .. })), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn identifiers() {
        assert!(PostgresConfig::new("host=h", "views_1").is_ok());
        for bad in ["", "Views", "a-b", &"x".repeat(64)] {
            assert!(PostgresConfig::new("host=h", bad).is_err(), "{bad}");
        }
    }
}
