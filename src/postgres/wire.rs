//! One blocking connection speaking PostgreSQL's frontend/backend protocol (version
//! 3) over TCP: startup and authentication (trust, password, MD5, SCRAM-SHA-256), the
//! simple query protocol with text results, and the copy-both mode of replication.
//!
//! Messages are framed and read here; `postgres-protocol` encodes the frontend
//! messages and computes the SCRAM and MD5 answers.

use crate::postgres::config::Endpoint;
use crate::postgres::error::PostgresError;
use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest message accepted from the server (a row or a WAL message).
const MAX_MESSAGE: usize = 1 << 30;

/// A result set of the simple query protocol: column names and type OIDs, and rows of
/// text values (`None` for SQL NULL).
#[derive(Debug, Default, Clone)]
pub(crate) struct Rows {
    pub(crate) columns: Vec<(String, u32)>,
    pub(crate) rows: Vec<Vec<Option<String>>>,
}

/// One message from the server: its tag and body.
struct Raw {
    tag: u8,
    body: Vec<u8>,
}

/// A connection, in the simple-query state or streaming in copy-both mode.
pub(crate) struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet taken as messages.
    incoming: Vec<u8>,
    user: String,
    /// How long a command may go without any answer before the connection counts as
    /// broken (a server gone without closing it).
    answer_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("user", &self.user).finish_non_exhaustive()
    }
}

fn io_error(during: &str, e: &std::io::Error) -> PostgresError {
    PostgresError::Connection { during: during.to_owned(), reason: e.to_string() }
}

impl Connection {
    /// One attempt to connect and authenticate; `replication` asks for a walsender
    /// that speaks the replication commands beside SQL (`replication=database`).
    pub(crate) fn connect(endpoint: &Endpoint, replication: bool) -> Result<Self, PostgresError> {
        let address = endpoint.address();
        let unreachable = |reason: String| PostgresError::Unreachable {
            address: address.clone(),
            attempts: 1,
            reason,
        };
        let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve the host: {e}")))?
            .collect();
        let mut last = String::from("the host resolves to no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, endpoint.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let stream = stream.ok_or_else(|| unreachable(last))?;
        stream.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
        // A peer that stops reading cannot block a write for ever.
        stream
            .set_write_timeout(Some(endpoint.answer_timeout))
            .map_err(|e| unreachable(e.to_string()))?;
        let mut conn = Connection {
            stream,
            incoming: Vec::new(),
            user: endpoint.user.clone(),
            answer_timeout: endpoint.answer_timeout,
        };
        conn.startup(endpoint, replication)?;
        Ok(conn)
    }

    fn startup(&mut self, endpoint: &Endpoint, replication: bool) -> Result<(), PostgresError> {
        let mut params = vec![
            ("user", endpoint.user.as_str()),
            ("database", endpoint.dbname.as_str()),
            ("client_encoding", "UTF8"),
            ("application_name", "viewstore"),
            // Text dates and times in ISO form whatever the server's default.
            ("DateStyle", "ISO"),
        ];
        if replication {
            params.push(("replication", "database"));
        }
        let mut buf = BytesMut::new();
        frontend::startup_message(params, &mut buf)
            .map_err(|e| PostgresError::protocol(e.to_string()))?;
        self.send(&buf, "starting up")?;
        let deadline = deadline_after(endpoint.connect_timeout);
        let mut scram: Option<ScramSha256> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(msg) =
                self.read(Some(remaining.max(Duration::from_millis(1))), "starting up")?
            else {
                return Err(PostgresError::Unreachable {
                    address: endpoint.address(),
                    attempts: 1,
                    reason: "the server did not finish the startup in time".into(),
                });
            };
            match msg.tag {
                b'R' => {
                    let code = be_i32(&msg.body, 0)?;
                    let data = &msg.body[4..];
                    self.authenticate(endpoint, code, data, &mut scram)?;
                }
                b'E' => return Err(startup_error(endpoint, &msg.body)),
                b'Z' => return Ok(()),
                // Parameter status, backend key data, notices.
                _ => {}
            }
        }
    }

    fn authenticate(
        &mut self,
        endpoint: &Endpoint,
        code: i32,
        data: &[u8],
        scram: &mut Option<ScramSha256>,
    ) -> Result<(), PostgresError> {
        let password = || {
            endpoint.password.as_deref().ok_or_else(|| PostgresError::Authentication {
                user: endpoint.user.clone(),
                reason: "the server asks for a password and the connection string has none".into(),
            })
        };
        let mut buf = BytesMut::new();
        let encode = |e: std::io::Error| PostgresError::protocol(e.to_string());
        match code {
            0 => return Ok(()),
            3 => frontend::password_message(password()?.as_bytes(), &mut buf).map_err(encode)?,
            5 => {
                let salt: [u8; 4] = data
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| PostgresError::protocol("an MD5 request without its salt"))?;
                let hash = md5_hash(endpoint.user.as_bytes(), password()?.as_bytes(), salt);
                frontend::password_message(hash.as_bytes(), &mut buf).map_err(encode)?;
            }
            10 => {
                let offered: Vec<&[u8]> =
                    data.split(|&b| b == 0).filter(|m| !m.is_empty()).collect();
                if !offered.contains(&SCRAM_SHA_256.as_bytes()) {
                    return Err(PostgresError::Authentication {
                        user: endpoint.user.clone(),
                        reason: "the server offers no SASL mechanism this source speaks \
                                 (SCRAM-SHA-256 without channel binding)"
                            .into(),
                    });
                }
                let state = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, state.message(), &mut buf)
                    .map_err(encode)?;
                *scram = Some(state);
            }
            11 => {
                let state =
                    scram.as_mut().ok_or_else(|| PostgresError::protocol("SASL out of order"))?;
                state.update(data).map_err(|e| PostgresError::Authentication {
                    user: endpoint.user.clone(),
                    reason: e.to_string(),
                })?;
                frontend::sasl_response(state.message(), &mut buf).map_err(encode)?;
            }
            12 => {
                let state =
                    scram.as_mut().ok_or_else(|| PostgresError::protocol("SASL out of order"))?;
                state.finish(data).map_err(|e| PostgresError::Authentication {
                    user: endpoint.user.clone(),
                    reason: format!("the server's SCRAM proof is wrong: {e}"),
                })?;
                return Ok(());
            }
            other => {
                return Err(PostgresError::Authentication {
                    user: endpoint.user.clone(),
                    reason: format!(
                        "the server asks for an authentication this source does not speak \
                         (request {other}: Kerberos, GSSAPI or SSPI)"
                    ),
                });
            }
        }
        self.send(&buf, "authenticating")
    }

    fn send(&mut self, bytes: &[u8], during: &str) -> Result<(), PostgresError> {
        self.stream.write_all(bytes).map_err(|e| io_error(during, &e))
    }

    /// The next message, waiting at most `timeout` (`None`: for ever; zero: only what
    /// has arrived already); `None` when none came whole in time (what did come is kept
    /// for the next call).
    fn read(
        &mut self,
        timeout: Option<Duration>,
        during: &str,
    ) -> Result<Option<Raw>, PostgresError> {
        let deadline = timeout.map(deadline_after);
        loop {
            if let Some(raw) = self.take()? {
                return Ok(Some(raw));
            }
            let wait = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        // One read of what the socket holds, without waiting for more.
                        self.stream.set_nonblocking(true).map_err(|e| io_error(during, &e))?;
                        let read = self.fill(during);
                        self.stream.set_nonblocking(false).map_err(|e| io_error(during, &e))?;
                        read?;
                        return self.take();
                    }
                    Some(left)
                }
            };
            self.stream.set_read_timeout(wait).map_err(|e| io_error(during, &e))?;
            self.fill(during)?;
        }
    }

    /// One read from the socket into `incoming`; nothing read when it timed out or
    /// would block.
    fn fill(&mut self, during: &str) -> Result<(), PostgresError> {
        let start = self.incoming.len();
        self.incoming.resize(start + 64 * 1024, 0);
        let read = self.stream.read(&mut self.incoming[start..]);
        self.incoming.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => Err(PostgresError::Connection {
                during: during.to_owned(),
                reason: "the server closed the connection".into(),
            }),
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(io_error(during, &e)),
        }
    }

    /// A whole message from the bytes read, if there is one.
    fn take(&mut self) -> Result<Option<Raw>, PostgresError> {
        if self.incoming.len() < 5 {
            return Ok(None);
        }
        let tag = self.incoming[0];
        let len = be_i32(&self.incoming, 1)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| (4..=MAX_MESSAGE).contains(&l))
            .ok_or_else(|| PostgresError::protocol(format!("a message length of {len}")))?;
        if self.incoming.len() < 1 + len {
            self.incoming.reserve(1 + len - self.incoming.len());
            return Ok(None);
        }
        let body = self.incoming[5..=len].to_vec();
        self.incoming.drain(..=len);
        Ok(Some(Raw { tag, body }))
    }

    /// Sends `sql` as a simple query.
    fn send_query(&mut self, sql: &str, during: &str) -> Result<(), PostgresError> {
        let mut buf = BytesMut::new();
        frontend::query(sql, &mut buf).map_err(|e| PostgresError::protocol(e.to_string()))?;
        self.send(&buf, during)
    }

    /// The next message of a command's answer; none within the answer timeout is a
    /// broken connection.
    fn answer(&mut self, during: &str) -> Result<Raw, PostgresError> {
        self.read(Some(self.answer_timeout), during)?.ok_or_else(|| PostgresError::Connection {
            during: during.to_owned(),
            reason: format!("no answer within {:?}", self.answer_timeout),
        })
    }

    /// Runs `sql` by the simple query protocol and returns each statement's rows.
    pub(crate) fn query(&mut self, sql: &str, during: &str) -> Result<Vec<Rows>, PostgresError> {
        self.send_query(sql, during)?;
        let mut results = Vec::new();
        let mut current = Rows::default();
        let mut failure = None;
        loop {
            let msg = self.answer(during)?;
            match msg.tag {
                b'T' => current.columns = row_description(&msg.body)?,
                b'D' => current.rows.push(data_row(&msg.body)?),
                b'C' | b'I' => results.push(std::mem::take(&mut current)),
                b'E' => failure = Some(server_error(during, &msg.body)),
                b'Z' => {
                    return match failure {
                        Some(e) => Err(e),
                        None => Ok(results),
                    };
                }
                b'W' | b'G' | b'H' => {
                    return Err(PostgresError::protocol(format!(
                        "`{sql}` started a copy, which a query does not expect"
                    )));
                }
                _ => {}
            }
        }
    }

    /// Runs a command that enters copy-both mode (`START_REPLICATION`).
    pub(crate) fn start_copy_both(&mut self, sql: &str, during: &str) -> Result<(), PostgresError> {
        self.send_query(sql, during)?;
        let mut failure = None;
        loop {
            let msg = self.answer(during)?;
            match msg.tag {
                b'W' => return Ok(()),
                b'E' => failure = Some(server_error(during, &msg.body)),
                b'Z' => {
                    return Err(failure.unwrap_or_else(|| {
                        PostgresError::protocol(format!("`{sql}` did not start streaming"))
                    }));
                }
                _ => {}
            }
        }
    }

    /// The next copy-data payload of the stream, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// The server ended the stream or reported an error, or the connection failed.
    pub(crate) fn copy_recv(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, PostgresError> {
        let during = "streaming changes";
        loop {
            let Some(msg) = self.read(Some(timeout), during)? else { return Ok(None) };
            match msg.tag {
                b'd' => return Ok(Some(msg.body)),
                b'E' => return Err(server_error(during, &msg.body)),
                b'c' => {
                    return Err(PostgresError::Connection {
                        during: during.to_owned(),
                        reason: "the server ended the replication stream".into(),
                    });
                }
                // Notices and parameter changes.
                _ => {}
            }
        }
    }

    /// Sends one copy-data message to the server (a standby status update).
    pub(crate) fn copy_send(&mut self, payload: &[u8]) -> Result<(), PostgresError> {
        let len = i32::try_from(payload.len() + 4)
            .map_err(|_| PostgresError::protocol("a copy-data message too large"))?;
        let mut out = Vec::with_capacity(payload.len() + 5);
        out.push(b'd');
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        self.send(&out, "reporting progress")
    }
}

impl Connection {
    /// Ends copy-both mode cleanly: everything sent so far (the last status update) is
    /// processed by the server before it answers; waits at most `timeout` for that.
    pub(crate) fn end_copy(&mut self, timeout: Duration) {
        let mut buf = BytesMut::new();
        frontend::copy_done(&mut buf);
        frontend::terminate(&mut buf);
        if self.send(&buf, "closing").is_err() {
            return;
        }
        let deadline = deadline_after(timeout);
        while let Ok(Some(msg)) =
            self.read(Some(deadline.saturating_duration_since(Instant::now())), "closing")
        {
            if msg.tag == b'Z' || msg.tag == b'E' {
                return;
            }
        }
    }
}

/// Now plus `timeout`, or a day from now when that cannot be represented.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86_400))
}

pub(crate) fn be_i32(buf: &[u8], at: usize) -> Result<i32, PostgresError> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(|| PostgresError::protocol("a message shorter than its fields"))
}

fn be_i16(buf: &[u8], at: usize) -> Result<i16, PostgresError> {
    buf.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(i16::from_be_bytes)
        .ok_or_else(|| PostgresError::protocol("a message shorter than its fields"))
}

/// A NUL-terminated string at `at`, and the offset after it.
pub(crate) fn cstr(buf: &[u8], at: usize) -> Result<(String, usize), PostgresError> {
    let rest = buf.get(at..).ok_or_else(|| PostgresError::protocol("a string past the end"))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| PostgresError::protocol("a string without its terminator"))?;
    let s = String::from_utf8_lossy(&rest[..end]).into_owned();
    Ok((s, at + end + 1))
}

fn row_description(body: &[u8]) -> Result<Vec<(String, u32)>, PostgresError> {
    let count = be_i16(body, 0)?;
    let mut at = 2;
    let mut columns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let (name, next) = cstr(body, at)?;
        // Table OID (4), column number (2), type OID (4), size (2), modifier (4), format (2).
        let oid = be_i32(body, next + 6)?;
        columns.push((name, oid.cast_unsigned()));
        at = next + 18;
    }
    Ok(columns)
}

fn data_row(body: &[u8]) -> Result<Vec<Option<String>>, PostgresError> {
    let count = be_i16(body, 0)?;
    let mut at = 2;
    let mut values = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let len = be_i32(body, at)?;
        at += 4;
        if len < 0 {
            values.push(None);
        } else {
            let len = len.cast_unsigned() as usize;
            let bytes = body
                .get(at..at + len)
                .ok_or_else(|| PostgresError::protocol("a value past the end of its row"))?;
            values.push(Some(String::from_utf8_lossy(bytes).into_owned()));
            at += len;
        }
    }
    Ok(values)
}

/// The fields of an error or notice: SQLSTATE code and message (with detail and hint).
fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message, mut detail, mut hint) =
        (String::new(), String::new(), String::new(), String::new());
    let mut at = 0;
    while let Some(&kind) = body.get(at) {
        if kind == 0 {
            break;
        }
        let Ok((value, next)) = cstr(body, at + 1) else { break };
        match kind {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = value,
            b'H' => hint = value,
            _ => {}
        }
        at = next;
    }
    for extra in [detail, hint] {
        if !extra.is_empty() {
            message = format!("{message} ({extra})");
        }
    }
    (code, message)
}

pub(crate) fn server_error(during: &str, body: &[u8]) -> PostgresError {
    let (code, message) = error_fields(body);
    PostgresError::Server { during: during.to_owned(), code, message }
}

fn startup_error(endpoint: &Endpoint, body: &[u8]) -> PostgresError {
    let (code, message) = error_fields(body);
    // 28000 invalid authorization, 28P01 invalid password.
    if code.starts_with("28") {
        PostgresError::Authentication { user: endpoint.user.clone(), reason: message }
    } else {
        PostgresError::Server { during: "connecting".into(), code, message }
    }
}

/// `sql` quoted as a literal.
pub(crate) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `name` quoted as an identifier.
pub(crate) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An LSN in PostgreSQL's `X/Y` form.
pub(crate) fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// An LSN read from PostgreSQL's `X/Y` form.
pub(crate) fn parse_lsn(s: &str) -> Result<u64, PostgresError> {
    let bad = || PostgresError::protocol(format!("`{s}` is not an LSN"));
    let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
    if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok(hi << 32 | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip() -> Result<(), PostgresError> {
        for lsn in [0, 1, 0x16B_3748, 0x1_0000_0000, u64::MAX] {
            assert_eq!(parse_lsn(&format_lsn(lsn))?, lsn);
        }
        assert_eq!(parse_lsn("0/16B3748")?, 0x16B_3748);
        assert!(parse_lsn("16B3748").is_err());
        assert!(parse_lsn("1/G").is_err());
        Ok(())
    }

    #[test]
    fn quoting() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn error_fields_carry_code_and_detail() {
        let mut body = Vec::new();
        for (k, v) in [(b'S', "ERROR"), (b'C', "42704"), (b'M', "no slot"), (b'D', "gone")] {
            body.push(k);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        assert_eq!(error_fields(&body), ("42704".into(), "no slot (gone)".into()));
    }
}
