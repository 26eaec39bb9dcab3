//! Profile pages as denormalized views.
//!
//! A source system emits events (users join and rename themselves, publish, edit and
//! delete posts, follow and unfollow each other). Every event carries the changed rows
//! with their update counters, as change data capture would. Projector threads turn
//! them into two views that a page needs and nothing else:
//!
//! - `profiles`, keyed by user id: name, post, follower and following counts, and the
//!   latest post titles;
//! - `posts`, keyed by `(user id, post id)`, so that a user's posts are one `prefix`
//!   scan.
//!
//! Deliveries are deliberately imperfect: some are delayed behind later ones, some
//! arrive twice. Versioned writes make that harmless (an older delivery comes back as
//! `Outcome::Stale`), and at the end every view equals the source. Reader threads serve
//! pages from memory meanwhile. Then the store is closed and reopened, and a page is
//! rendered again from what was reloaded.
//!
//! Run it with `cargo run --release --example profile_pages`.

use crossbeam_channel::{Receiver, Sender};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use viewstore::{Batch, Outcome, Snapshot, Store, Version, View, ViewDef};

const USERS: u64 = 2_000;
const EVENTS: u64 = 60_000;
const PROJECTORS: usize = 3;
const READERS: usize = 2;
/// Batches a projector keeps in flight before it waits for the oldest acknowledgement.
const WINDOW: usize = 256;
/// Per mille of deliveries held back behind later ones, and of deliveries sent twice.
const DELAYED_PER_MILLE: u64 = 40;
const DUPLICATED_PER_MILLE: u64 = 30;
const LATEST_TITLES: usize = 3;

/// What a profile page shows at the top, precomputed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    posts: u32,
    followers: u32,
    following: u32,
    /// Newest first.
    latest: Vec<String>,
}

/// One post as a page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    words: u32,
}

const PROFILES: ViewDef<u64, Profile> = ViewDef::new("profiles");
const POSTS: ViewDef<(u64, u64), Post> = ViewDef::new("posts");

/// A row change as the source publishes it: the row's new state and update counter.
#[derive(Debug, Clone)]
enum Change {
    Profile {
        user: u64,
        version: Version,
        profile: Profile,
    },
    Post {
        user: u64,
        post: u64,
        version: Version,
        /// `None`: the post was deleted.
        value: Option<Post>,
    },
}

/// The changes one event made to one user's rows, written as one atomic batch.
#[derive(Debug, Clone)]
struct Message {
    user: u64,
    changes: Vec<Change>,
}

/// xorshift64, so that the demo needs no dependency for randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SYLLABLES: [&str; 12] =
    ["ka", "lo", "mi", "ra", "ne", "to", "su", "vi", "da", "ber", "lin", "or"];
const TOPICS: [&str; 12] = [
    "group commit",
    "denormalized views",
    "cache invalidation",
    "thundering herds",
    "cold starts",
    "B+trees",
    "fsync",
    "versioned writes",
    "read models",
    "backpressure",
    "tombstones",
    "snapshots",
];

fn name(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..2 + rng.below(2) {
        s.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
    }
    s
}

fn title(rng: &mut Rng) -> String {
    let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
    match rng.below(6) {
        0 => format!("Notes on {topic}"),
        1 => format!("Thinking about {topic}"),
        2 => format!("In practice: {topic}"),
        3 => format!("A week of {topic}"),
        4 => format!("Lessons from {topic}"),
        _ => format!("Revisiting {topic}, part {}", 2 + rng.below(9)),
    }
}

struct SourceUser {
    name: String,
    version: Version,
    /// Live post ids, oldest first.
    posts: Vec<u64>,
    followers: BTreeSet<u64>,
    following: BTreeSet<u64>,
}

struct SourcePost {
    user: u64,
    version: Version,
    value: Post,
}

/// The system of record the views are projected from.
struct Source {
    rng: Rng,
    users: Vec<SourceUser>,
    posts: HashMap<u64, SourcePost>,
    deleted: u64,
    next_post: u64,
}

impl Source {
    fn new() -> Source {
        Source {
            rng: Rng::new(42),
            users: Vec::new(),
            posts: HashMap::new(),
            deleted: 0,
            next_post: 1,
        }
    }

    fn profile(&self, user: u64) -> Profile {
        let u = &self.users[user as usize];
        Profile {
            name: u.name.clone(),
            posts: u.posts.len() as u32,
            followers: u.followers.len() as u32,
            following: u.following.len() as u32,
            latest: u
                .posts
                .iter()
                .rev()
                .take(LATEST_TITLES)
                .map(|p| self.posts[p].value.title.clone())
                .collect(),
        }
    }

    /// Bumps the user's update counter and returns the profile row change.
    fn touch(&mut self, user: u64) -> Change {
        self.users[user as usize].version += 1;
        Change::Profile {
            user,
            version: self.users[user as usize].version,
            profile: self.profile(user),
        }
    }

    fn post_change(&self, post: u64) -> Change {
        let p = &self.posts[&post];
        Change::Post { user: p.user, post, version: p.version, value: Some(p.value.clone()) }
    }

    fn random_post(&mut self, user: u64) -> Option<u64> {
        let posts = &self.users[user as usize].posts;
        if posts.is_empty() {
            return None;
        }
        Some(posts[self.rng.below(posts.len() as u64) as usize])
    }

    /// One source event and the messages it produces.
    fn event(&mut self) -> Vec<Message> {
        if (self.users.len() as u64) < USERS {
            let name = name(&mut self.rng);
            self.users.push(SourceUser {
                name,
                version: 0,
                posts: Vec::new(),
                followers: BTreeSet::new(),
                following: BTreeSet::new(),
            });
            let user = self.users.len() as u64 - 1;
            return vec![Message { user, changes: vec![self.touch(user)] }];
        }
        let user = self.rng.below(USERS);
        match self.rng.below(100) {
            0..45 => self.publish(user),
            45..55 => self.edit(user),
            55..60 => self.delete(user),
            60..65 => {
                self.users[user as usize].name = name(&mut self.rng);
                vec![Message { user, changes: vec![self.touch(user)] }]
            }
            _ => {
                let other = self.rng.below(USERS);
                self.follow_or_unfollow(user, other)
            }
        }
    }

    fn publish(&mut self, user: u64) -> Vec<Message> {
        let post = self.next_post;
        self.next_post += 1;
        let value = Post { title: title(&mut self.rng), words: 50 + self.rng.below(2_000) as u32 };
        self.posts.insert(post, SourcePost { user, version: 1, value });
        self.users[user as usize].posts.push(post);
        let changes = vec![self.post_change(post), self.touch(user)];
        vec![Message { user, changes }]
    }

    fn edit(&mut self, user: u64) -> Vec<Message> {
        let Some(post) = self.random_post(user) else {
            return Vec::new();
        };
        let title = title(&mut self.rng);
        let p = self.posts.get_mut(&post).expect("live post");
        p.version += 1;
        p.value.title = title;
        let mut changes = vec![self.post_change(post)];
        let shown =
            self.users[user as usize].posts.iter().rev().take(LATEST_TITLES).any(|&p| p == post);
        if shown {
            changes.push(self.touch(user));
        }
        vec![Message { user, changes }]
    }

    fn delete(&mut self, user: u64) -> Vec<Message> {
        let Some(post) = self.random_post(user) else {
            return Vec::new();
        };
        self.users[user as usize].posts.retain(|&p| p != post);
        let version = self.posts.remove(&post).expect("live post").version + 1;
        self.deleted += 1;
        let changes = vec![Change::Post { user, post, version, value: None }, self.touch(user)];
        vec![Message { user, changes }]
    }

    fn follow_or_unfollow(&mut self, user: u64, other: u64) -> Vec<Message> {
        if other == user {
            return Vec::new();
        }
        let u = user as usize;
        if self.users[u].following.remove(&other) {
            self.users[other as usize].followers.remove(&user);
        } else {
            self.users[u].following.insert(other);
            self.users[other as usize].followers.insert(user);
        }
        vec![
            Message { user, changes: vec![self.touch(user)] },
            Message { user: other, changes: vec![self.touch(other)] },
        ]
    }
}

/// An unreliable delivery channel to one projector: holds some messages back behind
/// later ones and sends some twice, as at-least-once log consumers see after retries
/// and rebalances.
struct Delivery {
    tx: Sender<Message>,
    held: Vec<(u64, Message)>,
    sent: u64,
}

#[derive(Default)]
struct DeliveryStats {
    delivered: u64,
    delayed: u64,
    duplicated: u64,
}

impl Delivery {
    fn deliver(&mut self, msg: Message, rng: &mut Rng, stats: &mut DeliveryStats) {
        if rng.below(1_000) < DUPLICATED_PER_MILLE {
            stats.duplicated += 1;
            self.held.push((self.sent + rng.below(8), msg.clone()));
        }
        if rng.below(1_000) < DELAYED_PER_MILLE {
            stats.delayed += 1;
            self.held.push((self.sent + 1 + rng.below(30), msg));
        } else {
            self.send(msg, stats);
        }
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].0 <= self.sent {
                let (_, msg) = self.held.swap_remove(i);
                self.send(msg, stats);
            } else {
                i += 1;
            }
        }
    }

    fn send(&mut self, msg: Message, stats: &mut DeliveryStats) {
        self.sent += 1;
        stats.delivered += 1;
        // A projector that stopped has failed; its error is reported when it is joined.
        let _ = self.tx.send(msg);
    }

    fn flush(&mut self, stats: &mut DeliveryStats) {
        for (_, msg) in std::mem::take(&mut self.held) {
            self.send(msg, stats);
        }
    }
}

/// Produces every event and routes its messages by user, like a partitioned log.
fn generate(partitions: Vec<Sender<Message>>) -> (Source, DeliveryStats) {
    let mut source = Source::new();
    let mut rng = Rng::new(7);
    let mut stats = DeliveryStats::default();
    let mut deliveries: Vec<Delivery> =
        partitions.into_iter().map(|tx| Delivery { tx, held: Vec::new(), sent: 0 }).collect();
    for _ in 0..USERS + EVENTS {
        for msg in source.event() {
            let p = (msg.user % deliveries.len() as u64) as usize;
            deliveries[p].deliver(msg, &mut rng, &mut stats);
        }
    }
    for d in &mut deliveries {
        d.flush(&mut stats);
    }
    (source, stats)
}

#[derive(Default)]
struct Tally {
    writes: u64,
    applied: u64,
    stale: u64,
}

impl Tally {
    fn add(&mut self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            match outcome {
                Outcome::Stale { .. } => self.stale += 1,
                o if o.is_applied() => self.applied += 1,
                _ => {}
            }
        }
    }
}

/// Writes each message as one batch of versioned writes, keeping up to `WINDOW`
/// batches in flight so that the writer can group them.
fn project(
    store: &Store,
    profiles: &View<u64, Profile>,
    posts: &View<(u64, u64), Post>,
    rx: &Receiver<Message>,
) -> viewstore::Result<Tally> {
    let mut tally = Tally::default();
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for msg in rx {
        let mut batch = Batch::new();
        for change in msg.changes {
            match change {
                Change::Profile { user, version, profile } => {
                    batch.put(profiles, &user, profile, version)?
                }
                Change::Post { user, post, version, value: Some(value) } => {
                    batch.put(posts, &(user, post), value, version)?
                }
                Change::Post { user, post, version, value: None } => {
                    batch.delete(posts, &(user, post), version)?
                }
            };
        }
        tally.writes += batch.len() as u64;
        in_flight.push_back(store.submit(batch)?);
        if in_flight.len() >= WINDOW
            && let Some(ticket) = in_flight.pop_front()
        {
            tally.add(&ticket.wait()?.outcomes);
        }
    }
    for ticket in in_flight {
        tally.add(&ticket.wait()?.outcomes);
    }
    Ok(tally)
}

/// A profile page, rendered from one snapshot: the profile and the user's newest posts.
fn render(
    snap: &Snapshot,
    profiles: &View<u64, Profile>,
    posts: &View<(u64, u64), Post>,
    user: u64,
) -> Option<(String, u64)> {
    let profiles = snap.view(profiles).ok()?;
    let posts = snap.view(posts).ok()?;
    let (version, p) = profiles.get_versioned(&user)?;
    let mut page = String::new();
    let _ = writeln!(
        page,
        "  +-- @{} (user {user}, profile version {version}, {})",
        p.name,
        snap.lsn()
    );
    let _ = writeln!(
        page,
        "  |   {} posts, {} followers, following {}",
        p.posts, p.followers, p.following
    );
    let _ = writeln!(page, "  |   latest titles (in the profile record): {}", p.latest.join(" / "));
    let mut records = 1;
    let _ = writeln!(page, "  |   posts, newest first (prefix scan of `posts`):");
    for ((_, id), post) in posts.prefix(&user).rev().take(5) {
        records += 1;
        let _ = writeln!(page, "  |     #{id:<6} {:<40} {:>5} words", post.title, post.words);
    }
    page.push_str("  +--");
    Some((page, records))
}

/// Serves random pages until `done`; returns (pages, records read).
fn serve(
    store: &Store,
    profiles: &View<u64, Profile>,
    posts: &View<(u64, u64), Post>,
    done: &AtomicBool,
    seed: u64,
) -> (u64, u64) {
    let mut rng = Rng::new(seed);
    let (mut pages, mut records) = (0, 0);
    while !done.load(Ordering::Relaxed) {
        let snap = store.snapshot();
        if let Some((page, n)) = render(&snap, profiles, posts, rng.below(USERS)) {
            std::hint::black_box(page);
            pages += 1;
            records += n;
        }
    }
    (pages, records)
}

/// Thousands separators, for the printout.
fn n(x: u64) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_sec(x: u64, d: Duration) -> String {
    let ms = d.as_millis().max(1);
    n((u128::from(x) * 1_000 / ms) as u64)
}

/// Checks every profile and post against the source; returns (profiles, posts).
fn verify(
    source: &Source,
    profiles: &View<u64, Profile>,
    posts: &View<(u64, u64), Post>,
) -> Result<(usize, usize), String> {
    for user in 0..USERS {
        let want = source.profile(user);
        if profiles.get(&user).as_deref() != Some(&want) {
            return Err(format!("profile {user} differs from the source"));
        }
    }
    for (id, p) in &source.posts {
        if posts.get(&(p.user, *id)).as_deref() != Some(&p.value) {
            return Err(format!("post {id} differs from the source"));
        }
    }
    if posts.len() != source.posts.len() {
        return Err("a deleted post is still visible".into());
    }
    Ok((profiles.len(), posts.len()))
}

/// What happened while the views were being projected.
struct Run {
    source: Source,
    delivery: DeliveryStats,
    tally: Tally,
    /// Pages served and records read.
    reads: (u64, u64),
    elapsed: Duration,
}

/// Generates every event, projects it with `PROJECTORS` threads and serves pages with
/// `READERS` threads until the projectors are done.
fn run(
    store: &Store,
    profiles: &View<u64, Profile>,
    posts: &View<(u64, u64), Post>,
) -> viewstore::Result<Run> {
    let (txs, rxs): (Vec<_>, Vec<_>) =
        (0..PROJECTORS).map(|_| crossbeam_channel::bounded::<Message>(4_096)).unzip();
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|i| {
                let done = &done;
                s.spawn(move || serve(store, profiles, posts, done, 100 + i as u64))
            })
            .collect();
        let projectors: Vec<_> =
            rxs.iter().map(|rx| s.spawn(move || project(store, profiles, posts, rx))).collect();
        let (source, delivery) = generate(txs);
        let mut tally = Tally::default();
        let mut failure = None;
        for p in projectors {
            match p.join().expect("projector thread") {
                Ok(t) => {
                    tally.writes += t.writes;
                    tally.applied += t.applied;
                    tally.stale += t.stale;
                }
                Err(e) => failure = Some(e),
            }
        }
        let elapsed = started.elapsed();
        done.store(true, Ordering::Relaxed);
        let reads = readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        match failure {
            Some(e) => Err(e),
            None => Ok(Run { source, delivery, tally, reads, elapsed }),
        }
    })
}

fn report(run: &Run, groups: u64) {
    let Run { source, delivery, tally, reads, elapsed } = run;
    println!(
        "source: {} users, {} events ({} posts published, {} deleted)",
        n(USERS),
        n(USERS + EVENTS),
        n(source.next_post - 1),
        n(source.deleted)
    );
    println!(
        "delivered {} messages to {PROJECTORS} projectors: {} held back behind later ones, {} sent twice",
        n(delivery.delivered),
        n(delivery.delayed),
        n(delivery.duplicated)
    );
    println!(
        "projected in {:.2} s: {} versioned writes, {} writes/s, {} group commits (Durability::Immediate)",
        elapsed.as_secs_f64(),
        n(tally.writes),
        per_sec(tally.writes, *elapsed),
        n(groups)
    );
    println!(
        "outcomes: {} applied, {} stale rejections (late or repeated deliveries, Outcome::Stale)",
        n(tally.applied),
        n(tally.stale)
    );
    println!(
        "readers: {READERS} threads served {} pages meanwhile: {} pages/s, {} record reads/s",
        n(reads.0),
        per_sec(reads.0, *elapsed),
        per_sec(reads.1, *elapsed)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    let store = Store::open(&path)?;
    let profiles = store.view(&PROFILES)?;
    let posts = store.view(&POSTS)?;
    println!("viewstore demo: profile pages kept as denormalized views");

    let lsn_before = store.lsn();
    let run = run(&store, &profiles, &posts)?;
    report(&run, store.lsn().get() - lsn_before.get());
    let (np, nposts) = verify(&run.source, &profiles, &posts)?;
    println!(
        "converged: all {} profiles and {} posts equal the source",
        n(np as u64),
        n(nposts as u64)
    );

    // The user with the most followers makes the best page.
    let star = (0..USERS).max_by_key(|u| profiles.get_with(u, |p| p.followers)).unwrap_or(0);
    let (before, _) = render(&store.snapshot(), &profiles, &posts, star).ok_or("no page")?;
    println!("\nGET /users/{star}\n{before}");

    let lsn = store.lsn();
    store.close()?;
    drop((profiles, posts, store));
    let reopening = Instant::now();
    let store = Store::open(&path)?;
    let profiles = store.view(&PROFILES)?;
    let posts = store.view(&POSTS)?;
    println!(
        "\nclosed and reopened in {} ms: {lsn} -> {}, {} profiles and {} posts loaded into memory",
        reopening.elapsed().as_millis(),
        store.lsn(),
        n(profiles.len() as u64),
        n(posts.len() as u64)
    );
    let (after, _) =
        render(&store.snapshot(), &profiles, &posts, star).ok_or("no page after reopen")?;
    if after != before {
        return Err(format!("the page changed across the reopen:\n{after}").into());
    }
    verify(&run.source, &profiles, &posts)?;
    println!("GET /users/{star} after reopen: the same page; every view still equals the source");
    store.close()?;
    Ok(())
}
