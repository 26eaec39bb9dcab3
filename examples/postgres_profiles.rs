//! Profile pages kept from PostgreSQL: a Django-style schema of users, posts and
//! follows, and the views a service reads instead of joining: one profile page per user
//! (name, bio, post, follower and following counts) and the posts by user (a view of
//! posts with an index by author). A [`PostgresSource`] copies the tables, then applies
//! every committed transaction as one batch, exactly once.
//!
//! ```text
//! eval "$(.ci/postgres start)"     # a throwaway PostgreSQL 15 (or use your own server)
//! cargo run --release --features postgres --example postgres_profiles -- "$VIEWSTORE_PG_URL"
//! ```
//!
//! The connection string names a server with `wal_level = logical` and a user with the
//! `REPLICATION` attribute (a superuser will do); the example creates and drops its own
//! database, `viewstore_profiles`.

use pg::{Client, NoTls};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use viewstore::postgres::{Change, PostgresConfig, PostgresSource, Row, STREAM};
use viewstore::{Batch, BoxError, Event, IndexDef, Projector, Store, View, ViewDef};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// What a profile page shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ProfilePage {
    name: String,
    bio: Option<String>,
    posts: i64,
    followers: i64,
    following: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Post {
    author: i64,
    title: String,
}

const PROFILES: ViewDef<i64, ProfilePage> = ViewDef::new("profile_pages");
const BY_AUTHOR: IndexDef<Post, i64> = IndexDef::multi("by_author", |p| p.author);
const POSTS: ViewDef<i64, Post> = ViewDef::new("posts").with_indexes(&[&BY_AUTHOR]);
/// Outbox events (prefix `notify`), by their text, with the commit LSN they came in.
const NOTIFICATIONS: ViewDef<String, u64> = ViewDef::new("notifications");

const SCHEMA: &str = "
    CREATE TABLE users (id int8 PRIMARY KEY, name text NOT NULL, bio text);
    CREATE TABLE posts (id int8 PRIMARY KEY, author int8 NOT NULL, title text NOT NULL);
    CREATE TABLE follows (follower int8, followee int8, PRIMARY KEY (follower, followee));
    -- Updates and deletes carry the whole old row, so counters can move by it.
    ALTER TABLE posts REPLICA IDENTITY FULL;
    ALTER TABLE follows REPLICA IDENTITY FULL;
    INSERT INTO users SELECT i, 'user ' || i, NULL FROM generate_series(1, 1000) i;
    INSERT INTO posts SELECT i, 1 + i % 1000, 'post ' || i FROM generate_series(1, 5000) i;
    INSERT INTO follows SELECT i, 1 + (i * 7) % 1000 FROM generate_series(1, 1000) i;
";

#[derive(Clone)]
struct Views {
    profiles: View<i64, ProfilePage>,
    posts: View<i64, Post>,
    notifications: View<String, u64>,
}

impl Views {
    /// One source transaction into one batch.
    fn project(
        &self,
        event: &Event<viewstore::postgres::Transaction>,
        batch: &mut Batch,
    ) -> Result<(), BoxError> {
        for change in &event.payload.changes {
            match change {
                Change::Insert { row } => self.row(batch, row, 1)?,
                Change::Update { old, row } => {
                    if let Some(old) = old {
                        self.row(batch, old, -1)?;
                    }
                    self.row(batch, row, 1)?;
                }
                Change::Delete { old } => self.row(batch, old, -1)?,
                Change::Message { prefix, content } if prefix == "notify" => {
                    let lsn = event.payload.end_lsn;
                    let text = String::from_utf8_lossy(content).into_owned();
                    batch.update_next(&self.notifications, &text, move |_| Some(lsn))?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A row entering (`sign` 1) or leaving (-1) its table.
    fn row(&self, batch: &mut Batch, row: &Row, sign: i64) -> Result<(), BoxError> {
        match row.relation.name.as_str() {
            "users" => {
                let id: i64 = row.get("id")?;
                if sign < 0 {
                    // A user's key only (the default replica identity): the page goes.
                    batch.update_next(&self.profiles, &id, |_| viewstore::Change::Delete)?;
                    return Ok(());
                }
                let (name, bio): (String, Option<String>) = (row.get("name")?, row.get("bio")?);
                batch.update_next(&self.profiles, &id, move |page: Option<&ProfilePage>| {
                    Some(ProfilePage { name, bio, ..page.cloned().unwrap_or_default() })
                })?;
            }
            "posts" => {
                let (id, author): (i64, i64) = (row.get("id")?, row.get("author")?);
                if sign > 0 {
                    let post = Post { author, title: row.get("title")? };
                    batch.update_next(&self.posts, &id, move |_| Some(post))?;
                } else {
                    batch.update_next(&self.posts, &id, |_| viewstore::Change::Delete)?;
                }
                count(batch, &self.profiles, author, move |p| p.posts += sign)?;
            }
            "follows" => {
                let (from, to): (i64, i64) = (row.get("follower")?, row.get("followee")?);
                count(batch, &self.profiles, to, move |p| p.followers += sign)?;
                count(batch, &self.profiles, from, move |p| p.following += sign)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Changes a counter of a page (a page without a user row yet starts empty).
fn count(
    batch: &mut Batch,
    profiles: &View<i64, ProfilePage>,
    id: i64,
    f: impl FnOnce(&mut ProfilePage) + Send + 'static,
) -> Result<(), BoxError> {
    batch.update_next(profiles, &id, move |page: Option<&ProfilePage>| {
        let mut page = page.cloned().unwrap_or_default();
        f(&mut page);
        Some(page)
    })?;
    Ok(())
}

/// The pages as the tables say they should be, for the check at the end.
fn expected(db: &mut Client) -> Res<BTreeMap<i64, ProfilePage>> {
    let rows = db.query(
        "SELECT u.id, u.name, u.bio,
                (SELECT count(*) FROM posts p WHERE p.author = u.id),
                (SELECT count(*) FROM follows f WHERE f.followee = u.id),
                (SELECT count(*) FROM follows f WHERE f.follower = u.id)
           FROM users u",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let page = ProfilePage {
                name: r.get(1),
                bio: r.get(2),
                posts: r.get(3),
                followers: r.get(4),
                following: r.get(5),
            };
            (r.get(0), page)
        })
        .collect())
}

fn main() -> Res<()> {
    let server = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("VIEWSTORE_PG_URL").ok())
        .ok_or("give a connection string (or set VIEWSTORE_PG_URL): see the top of this file")?;
    let mut admin = Client::connect(&server, NoTls)?;
    let _ = admin.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'profiles'",
        &[],
    );
    admin.batch_execute("DROP DATABASE IF EXISTS viewstore_profiles WITH (FORCE)")?;
    admin.batch_execute("CREATE DATABASE viewstore_profiles")?;
    let url =
        format!("{}/viewstore_profiles", server.rsplit_once('/').map_or(&*server, |(b, _)| b));
    let mut db = Client::connect(&url, NoTls)?;
    db.batch_execute(SCHEMA)?;

    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("profiles.redb"))?;
    let views = Views {
        profiles: store.view(&PROFILES)?,
        posts: store.view(&POSTS)?,
        notifications: store.view(&NOTIFICATIONS)?,
    };
    let config = PostgresConfig::new(&url, "profiles")?
        .with_tables(&["users", "posts", "follows"])
        .with_feeds(&["profile_pages", "posts", "notifications"]);
    let started = Instant::now();
    let source = PostgresSource::new(&store, config).on_snapshot_progress(|p| {
        if p.done {
            println!("snapshot: {} rows of {} tables copied", p.rows, p.tables);
        }
    });
    let v = views.clone();
    let running =
        Projector::new(&store, source, move |e, b: &mut Batch| v.project(e, b)).spawn()?;

    // The application goes on writing, in its own transactions; one of them also emits
    // an outbox event, which arrives with its rows or not at all.
    db.batch_execute(
        "BEGIN;
         INSERT INTO users VALUES (1001, 'ada', 'writes programs');
         INSERT INTO posts VALUES (9001, 1001, 'Notes on the engine');
         INSERT INTO follows VALUES (1, 1001), (2, 1001);
         SELECT pg_logical_emit_message(true, 'notify', 'ada joined');
         COMMIT;
         UPDATE users SET bio = 'tea and code' WHERE id = 7;
         UPDATE posts SET author = 1001 WHERE id = 10;
         DELETE FROM follows WHERE follower = 3;
         DELETE FROM posts WHERE id BETWEEN 100 AND 199;
         SELECT pg_logical_emit_message(true, 'notify', 'done');",
    )?;
    while views.notifications.get(&"done".to_owned()).is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the views did not catch up: {:?}", running.stop()).into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("caught up in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);

    let ada = views.profiles.get(&1001).ok_or("no profile page for ada")?;
    println!("profile 1001: {ada:?}");
    let titles: Vec<String> = views
        .posts
        .index_get_all(&BY_AUTHOR, &1001)
        .into_iter()
        .map(|(_, p)| p.title.clone())
        .collect();
    println!("posts by 1001: {titles:?}");
    let pages: BTreeMap<i64, ProfilePage> =
        views.profiles.range(..).into_iter().map(|(k, v)| (k, (*v).clone())).collect();
    let want = expected(&mut db)?;
    let same = pages == want;
    println!("{} profile pages; equal to the tables recomputed: {same}", pages.len());
    let stats = running.stop()?;
    if let Some(stream) = stats.partitions.iter().find(|p| p.partition == STREAM) {
        println!(
            "{} source events; lag {} bytes of WAL, {:?} behind the newest commit",
            stats.events,
            stream.lag.unwrap_or(0),
            stream.behind.unwrap_or_default()
        );
    }
    drop(db);
    // The slot goes with the demo (a slot keeps WAL for as long as it exists).
    for _ in 0..300 {
        let dropped = admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = 'profiles' AND NOT active",
            &[],
        )?;
        if dropped == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    admin.batch_execute("DROP DATABASE viewstore_profiles WITH (FORCE)")?;
    if !same {
        return Err("the profile pages differ from the tables".into());
    }
    Ok(())
}
