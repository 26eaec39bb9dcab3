//! A Django-style shop schema in PostgreSQL (users, posts, follows, a transaction log),
//! the views a projector keeps from it, the handler that keeps them, a random workload,
//! and the views recomputed from the tables, to compare.
//!
//! The test server comes from `.ci/postgres` (`VIEWSTORE_PG_URL`, `VIEWSTORE_PG_CTL`).
//! Without it the tests that need it say so and pass, unless `VIEWSTORE_REQUIRE_PG=1`
//! (set by `.ci/run`), which makes its absence a failure.

#![allow(dead_code, reason = "each test binary uses a part of these helpers")]

use pg::{Client, NoTls};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use viewstore::postgres::{Change, Kind, Row, Transaction};
use viewstore::{Batch, BoxError, Event, IndexDef, Store, View, ViewDef};

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The server's URL, or `None` (with a note) when the tests run without one.
pub(crate) fn server_url() -> Res<Option<String>> {
    match std::env::var("VIEWSTORE_PG_URL") {
        Ok(url) => Ok(Some(url)),
        Err(_) if std::env::var("VIEWSTORE_REQUIRE_PG").is_ok_and(|v| v == "1") => {
            Err("VIEWSTORE_REQUIRE_PG=1 but VIEWSTORE_PG_URL is not set: start the server \
                 with `eval \"$(.ci/postgres start)\"`"
                .into())
        }
        Err(_) => {
            eprintln!(
                "skipped: no PostgreSQL server (run `eval \"$(.ci/postgres start)\"` first, as \
                 .ci/run does)"
            );
            Ok(None)
        }
    }
}

/// `url` with its database replaced by `db`.
pub(crate) fn with_db(url: &str, db: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{db}")
}

/// A new, empty database `db` on the server (dropped first if it exists, with any
/// replication slot of it).
pub(crate) fn fresh_db(url: &str, db: &str) -> Res<String> {
    let mut admin = Client::connect(url, NoTls)?;
    for row in admin
        .query("SELECT slot_name::text FROM pg_replication_slots WHERE database = $1", &[&db])?
    {
        let slot: String = row.get(0);
        let _ = admin.execute("SELECT pg_drop_replication_slot($1)", &[&slot]);
    }
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
    Ok(with_db(url, db))
}

/// Waits until no walsender holds `slot` (one whose client went away notices it a
/// moment later).
pub(crate) fn wait_slot_inactive(db: &mut Client, slot: &str) -> Res<()> {
    let started = Instant::now();
    loop {
        let active: Option<bool> = db
            .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot])?
            .map(|r| r.get(0));
        if active != Some(true) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("slot `{slot}` stayed active for 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Restarts the server (immediate mode) through `VIEWSTORE_PG_CTL`.
pub(crate) fn restart_server() -> Res<()> {
    let ctl = std::env::var("VIEWSTORE_PG_CTL").map_err(|_| "VIEWSTORE_PG_CTL is not set")?;
    let status = std::process::Command::new(ctl).arg("restart").status()?;
    if !status.success() {
        return Err(format!("restarting PostgreSQL failed: {status}").into());
    }
    Ok(())
}

/// The shop's tables. Posts and follows have `REPLICA IDENTITY FULL`, so that an update
/// or delete carries the old row and counters can move by it.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE users (id int8 PRIMARY KEY, name text NOT NULL, bio text);
    CREATE TABLE posts (id int8 PRIMARY KEY, user_id int8 NOT NULL, title text NOT NULL);
    ALTER TABLE posts REPLICA IDENTITY FULL;
    CREATE TABLE follows (follower int8, followee int8, PRIMARY KEY (follower, followee));
    ALTER TABLE follows REPLICA IDENTITY FULL;
    CREATE TABLE txlog (id bigserial PRIMARY KEY, note text);
";

pub(crate) const TABLES: [&str; 4] = ["users", "posts", "follows", "txlog"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) name: String,
    pub(crate) bio: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Post {
    pub(crate) user_id: i64,
    pub(crate) title: String,
}

pub(crate) const BY_USER: IndexDef<Post, i64> = IndexDef::multi("by_user", |p| p.user_id);
pub(crate) const USERS: ViewDef<i64, User> = ViewDef::new("users");
pub(crate) const POSTS: ViewDef<i64, Post> = ViewDef::new("posts").with_indexes(&[&BY_USER]);
/// Posts per user, moved by each event's delta: a change applied twice shows.
pub(crate) const POST_COUNTS: ViewDef<i64, i64> = ViewDef::new("post_counts");
/// Followers per user, by delta.
pub(crate) const FOLLOWERS: ViewDef<i64, i64> = ViewDef::new("followers");
/// Rows of `txlog` seen (key 0), by delta.
pub(crate) const TXLOG: ViewDef<u8, i64> = ViewDef::new("txlog");
/// Outbox messages (prefix `outbox`) by their sequence number: the commit LSN they came
/// with, their place among the transaction's changes, and how many times they came.
pub(crate) const OUTBOX: ViewDef<u64, (u64, u32, u32)> = ViewDef::new("outbox");
/// Marker messages (prefix `marker`) by their content.
pub(crate) const MARKERS: ViewDef<String, u64> = ViewDef::new("markers");

/// The views a projector keeps, by name, for `PostgresConfig::with_feeds`.
pub(crate) const FEEDS: [&str; 7] =
    ["users", "posts", "post_counts", "followers", "txlog", "outbox", "markers"];

/// Handles to the views.
#[derive(Clone)]
pub(crate) struct Views {
    pub(crate) users: View<i64, User>,
    pub(crate) posts: View<i64, Post>,
    pub(crate) post_counts: View<i64, i64>,
    pub(crate) followers: View<i64, i64>,
    pub(crate) txlog: View<u8, i64>,
    pub(crate) outbox: View<u64, (u64, u32, u32)>,
    pub(crate) markers: View<String, u64>,
}

impl Views {
    pub(crate) fn open(store: &Store) -> viewstore::Result<Self> {
        Ok(Views {
            users: store.view(&USERS)?,
            posts: store.view(&POSTS)?,
            post_counts: store.view(&POST_COUNTS)?,
            followers: store.view(&FOLLOWERS)?,
            txlog: store.view(&TXLOG)?,
            outbox: store.view(&OUTBOX)?,
            markers: store.view(&MARKERS)?,
        })
    }

    /// Applies one source transaction to `batch`.
    pub(crate) fn project(
        &self,
        event: &Event<Transaction>,
        batch: &mut Batch,
    ) -> Result<(), BoxError> {
        let tx = &event.payload;
        for (index, change) in tx.changes.iter().enumerate() {
            match change {
                Change::Insert { row } => self.row(batch, row, 1)?,
                Change::Update { old, row } => {
                    if let Some(old) = old {
                        self.row(batch, old, -1)?;
                    } else if row.relation.is("posts") || row.relation.is("follows") {
                        return Err("an update of a FULL identity table without its old row".into());
                    }
                    self.row(batch, row, 1)?;
                }
                Change::Delete { old } => self.row(batch, old, -1)?,
                Change::Truncate { .. } => return Err("truncate is not projected".into()),
                Change::Message { prefix, content } => {
                    let text = String::from_utf8(content.clone())?;
                    if prefix == "outbox" {
                        let (lsn, place) = (tx.commit_lsn, u32::try_from(index)?);
                        batch.update_next(&self.outbox, &text.parse::<u64>()?, move |old| {
                            Some((lsn, place, old.map_or(1, |o: &(u64, u32, u32)| o.2 + 1)))
                        })?;
                    } else if prefix == "marker" {
                        let lsn = tx.commit_lsn;
                        batch.update_next(&self.markers, &text, move |_| Some(lsn))?;
                    }
                }
            }
        }
        if let Kind::Snapshot { .. } | Kind::Heartbeat = tx.kind {
            debug_assert!(tx.changes.iter().all(|c| matches!(c, Change::Insert { .. })));
        }
        Ok(())
    }

    /// A row entering (`sign` 1) or leaving (-1) its table.
    fn row(&self, batch: &mut Batch, row: &Row, sign: i64) -> Result<(), BoxError> {
        let table = row.relation.name.as_str();
        match table {
            "users" => {
                let id: i64 = row.get("id")?;
                if sign > 0 {
                    // Read by name: a `bio` column dropped from the table reads as none.
                    let bio = match row.value("bio") {
                        Some(_) => row.get("bio")?,
                        None => None,
                    };
                    let user = User { name: row.get("name")?, bio };
                    batch.update_next(&self.users, &id, move |_| Some(user))?;
                } else {
                    batch.update_next(&self.users, &id, |_| viewstore::Change::Delete)?;
                }
            }
            "posts" => {
                let id: i64 = row.get("id")?;
                let user_id: i64 = row.get("user_id")?;
                if sign > 0 {
                    let post = Post { user_id, title: row.get("title")? };
                    batch.update_next(&self.posts, &id, move |_| Some(post))?;
                } else {
                    batch.update_next(&self.posts, &id, |_| viewstore::Change::Delete)?;
                }
                add(batch, &self.post_counts, &user_id, sign)?;
            }
            "follows" => add(batch, &self.followers, &row.get::<i64>("followee")?, sign)?,
            "txlog" => add(batch, &self.txlog, &0, sign)?,
            other => return Err(format!("a change to unknown table `{other}`").into()),
        }
        Ok(())
    }
}

/// Moves a counter by `delta`, deleting it at zero.
fn add<K: viewstore::ViewKey>(
    batch: &mut Batch,
    view: &View<K, i64>,
    key: &K,
    delta: i64,
) -> Result<(), BoxError> {
    batch.update_next(view, key, move |n| {
        let next = n.copied().unwrap_or(0) + delta;
        if next == 0 { viewstore::Change::Delete } else { viewstore::Change::Put(next) }
    })?;
    Ok(())
}

/// The views' contents recomputed from the tables.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) users: BTreeMap<i64, User>,
    pub(crate) posts: BTreeMap<i64, Post>,
    pub(crate) post_counts: BTreeMap<i64, i64>,
    pub(crate) followers: BTreeMap<i64, i64>,
    pub(crate) txlog: BTreeMap<u8, i64>,
}

impl Expected {
    pub(crate) fn from_tables(db: &mut Client) -> Res<Self> {
        let mut e = Expected {
            users: BTreeMap::new(),
            posts: BTreeMap::new(),
            post_counts: BTreeMap::new(),
            followers: BTreeMap::new(),
            txlog: BTreeMap::new(),
        };
        for r in db.query("SELECT id, name, bio FROM users", &[])? {
            e.users.insert(r.get(0), User { name: r.get(1), bio: r.get(2) });
        }
        for r in db.query("SELECT id, user_id, title FROM posts", &[])? {
            e.posts.insert(r.get(0), Post { user_id: r.get(1), title: r.get(2) });
        }
        for r in db.query("SELECT user_id, count(*) FROM posts GROUP BY 1", &[])? {
            e.post_counts.insert(r.get(0), r.get(1));
        }
        for r in db.query("SELECT followee, count(*) FROM follows GROUP BY 1", &[])? {
            e.followers.insert(r.get(0), r.get(1));
        }
        let n: i64 = db.query_one("SELECT count(*) FROM txlog", &[])?.get(0);
        if n > 0 {
            e.txlog.insert(0, n);
        }
        Ok(e)
    }

    pub(crate) fn from_views(v: &Views) -> Self {
        fn all<K: viewstore::ViewKey + Ord, V: viewstore::ViewValue + Clone>(
            view: &View<K, V>,
        ) -> BTreeMap<K, V>
        where
            viewstore::Bincode: viewstore::Codec<V>,
        {
            view.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect()
        }
        Expected {
            users: all(&v.users),
            posts: all(&v.posts),
            post_counts: all(&v.post_counts),
            followers: all(&v.followers),
            txlog: all(&v.txlog),
        }
    }

    /// The first difference, for a readable failure.
    pub(crate) fn diff(&self, other: &Expected) -> String {
        fn first<K: std::fmt::Debug + Ord, V: std::fmt::Debug + PartialEq>(
            what: &str,
            a: &BTreeMap<K, V>,
            b: &BTreeMap<K, V>,
        ) -> Option<String> {
            for (k, v) in a {
                if b.get(k) != Some(v) {
                    return Some(format!("{what}[{k:?}]: tables {v:?}, views {:?}", b.get(k)));
                }
            }
            b.keys()
                .find(|k| !a.contains_key(k))
                .map(|k| format!("{what}[{k:?}]: not in the tables, in the views {:?}", b[k]))
        }
        first("users", &self.users, &other.users)
            .or_else(|| first("posts", &self.posts, &other.posts))
            .or_else(|| first("post_counts", &self.post_counts, &other.post_counts))
            .or_else(|| first("followers", &self.followers, &other.followers))
            .or_else(|| first("txlog", &self.txlog, &other.txlog))
            .unwrap_or_default()
    }
}

/// A small xorshift generator, seeded, so that failures can be replayed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Rows to start with: `users` users, each with a few posts and follows.
pub(crate) fn seed(db: &mut Client, users: i64) -> Res<()> {
    db.batch_execute(SCHEMA)?;
    db.batch_execute(&format!(
        "INSERT INTO users SELECT i, 'user ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 'bio' END
           FROM generate_series(1, {users}) i;
         INSERT INTO posts SELECT i, 1 + i % {users}, 'post ' || i FROM generate_series(1, {posts}) i;
         INSERT INTO follows SELECT i, 1 + (i * 7) % {users} FROM generate_series(1, {users}) i
           ON CONFLICT DO NOTHING;
         INSERT INTO txlog (note) SELECT 'seed' FROM generate_series(1, 10);",
        posts = users * 3
    ))?;
    Ok(())
}

/// One random transaction: a few changes across the tables, a `txlog` row, sometimes an
/// outbox message (numbered from `outbox`), sometimes many rows; rolled back one time
/// in ten. Returns whether it committed and its outbox message, if any.
pub(crate) fn random_transaction(
    db: &mut Client,
    rng: &mut Rng,
    next_post: &mut i64,
    outbox: &mut u64,
) -> Res<bool> {
    let mut tx = db.transaction()?;
    let users = 200;
    let ops = 1 + rng.below(5);
    for _ in 0..ops {
        let user = 1 + rng.below(users).cast_signed();
        match rng.below(9) {
            0 => {
                tx.execute(
                    "INSERT INTO users VALUES ($1, $2, NULL) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
                    &[&user, &format!("new {}", rng.below(1000))],
                )?;
            }
            1 => {
                let bio = (rng.below(2) == 0).then(|| format!("bio {}", rng.below(100)));
                tx.execute("UPDATE users SET bio = $2 WHERE id = $1", &[&user, &bio])?;
            }
            2 => {
                tx.execute("DELETE FROM users WHERE id = $1", &[&user])?;
            }
            3 | 4 => {
                *next_post += 1;
                tx.execute(
                    "INSERT INTO posts VALUES ($1, $2, $3)",
                    &[&*next_post, &user, &format!("p{}", rng.below(1000))],
                )?;
            }
            5 => {
                tx.execute(
                    "UPDATE posts SET user_id = $1, title = title || '!' WHERE id = (SELECT id FROM posts ORDER BY id OFFSET $2 LIMIT 1)",
                    &[&user, &rng.below(300).cast_signed()],
                )?;
            }
            6 => {
                tx.execute(
                    "DELETE FROM posts WHERE id = (SELECT id FROM posts ORDER BY id OFFSET $1 LIMIT 1)",
                    &[&rng.below(300).cast_signed()],
                )?;
            }
            7 => {
                tx.execute(
                    "INSERT INTO follows VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&user, &(1 + rng.below(users).cast_signed())],
                )?;
            }
            _ => {
                tx.execute("DELETE FROM follows WHERE follower = $1", &[&user])?;
            }
        }
    }
    if rng.below(40) == 0 {
        // A large transaction.
        let n = 200 + rng.below(800).cast_signed();
        let first = *next_post + 1;
        *next_post += n;
        tx.execute(
            "INSERT INTO posts SELECT i, 1 + i % 200, 'bulk' FROM generate_series($1::int8, $2::int8) i",
            &[&first, &*next_post],
        )?;
    }
    tx.execute("INSERT INTO txlog (note) VALUES ('tx')", &[])?;
    let message = rng.below(3) == 0;
    if message {
        *outbox += 1;
        tx.execute(
            "SELECT pg_logical_emit_message(true, 'outbox', $1::text)",
            &[&outbox.to_string()],
        )?;
    }
    if rng.below(10) == 0 {
        tx.rollback()?;
        if message {
            *outbox -= 1;
        }
        return Ok(false);
    }
    tx.commit()?;
    Ok(true)
}

/// The outbox messages that came more than once: none, if nothing was applied twice.
pub(crate) fn repeated_outbox(views: &Views) -> Vec<u64> {
    views.outbox.range(..).into_iter().filter(|(_, v)| v.2 != 1).map(|(k, _)| k).collect()
}

/// Emits marker `name` in a transaction of its own.
pub(crate) fn mark(db: &mut Client, name: &str) -> Res<()> {
    db.execute("SELECT pg_logical_emit_message(true, 'marker', $1::text)", &[&name])?;
    Ok(())
}

/// Waits until the views have seen marker `name`.
pub(crate) fn wait_for_marker(views: &Views, name: &str, limit: Duration) -> Res<()> {
    let started = Instant::now();
    while views.markers.get(&name.to_owned()).is_none() {
        if started.elapsed() > limit {
            return Err(format!("marker `{name}` did not arrive within {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
