//! Profile pages fed by two independent sources, kept exactly by projectors.
//!
//! Two logs, as a service would consume them from Kafka or a database's change stream:
//!
//! - `users`: a user is created, renamed or deleted; each change carries the user's
//!   update counter (its version in the users source);
//! - `posts`: a post is written, edited or deleted; each change carries the post's own
//!   counter, and the author's post summary (count and latest titles) with the author's
//!   summary counter (its version in the posts source).
//!
//! Two projectors turn them into two views that a page needs and nothing else:
//!
//! - `pages`, keyed by user id, drawn from **both** sources: the name from `users`, the
//!   post summary from `posts`. The view declares the two sources, and each keeps its
//!   own version per page, so a late `posts` event is judged against the page's posts
//!   version only, whatever `users` did meanwhile; a deleted user's page stays deleted
//!   when a late post event arrives.
//! - `posts`, keyed by `(user id, post id)`, one version per post.
//!
//! Deliveries are imperfect on purpose: some events are held back behind later ones,
//! some are delivered twice, and a few are garbage that the handler rejects (they go
//! to a dead-letter view). Readers serve pages from memory meanwhile. At the end the
//! views equal the source exactly; the store is closed, reopened, and the projectors
//! resume from the positions stored with the views: nothing is applied twice.
//!
//! Run it with `cargo run --release --example profile_pages`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use viewstore::{
    Batch, BoxError, Change, DEAD_LETTERS, Event, MemoryLog, OnFailure, Projector, Store, View,
    ViewDef,
};

const USERS: u64 = 3_000;
const STEPS: u64 = 120_000;
const PARTITIONS: u32 = 4;
/// Per mille of events held back behind later ones, delivered twice, and garbage.
const LATE_PER_MILLE: u64 = 40;
const TWICE_PER_MILLE: u64 = 30;
const GARBAGE_PER_MILLE: u64 = 2;
const LATEST: usize = 3;
const READERS: usize = 1;

/// A profile page, precomputed: its name from one source, its posts from another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Page {
    /// `None` until the users source has spoken (posts may arrive first).
    name: Option<String>,
    posts: u32,
    /// Newest first.
    latest: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
}

const PAGES: ViewDef<u64, Page> = ViewDef::new("pages").with_sources(&["users", "posts"]);
const POSTS: ViewDef<(u64, u64), Post> = ViewDef::new("posts");

/// A change of the users source.
#[derive(Debug, Clone)]
struct UserEvent {
    user: u64,
    version: u64,
    /// `None`: the user was deleted.
    name: Option<String>,
}

/// A change of the posts source: one post, and its author's summary after it.
#[derive(Debug, Clone)]
struct PostEvent {
    user: u64,
    post: u64,
    version: u64,
    /// `None`: the post was deleted.
    title: Option<String>,
    summary_version: u64,
    count: u32,
    latest: Vec<String>,
}

/// The source of truth the two logs describe.
#[derive(Default)]
struct Truth {
    /// Per user: version, and name unless deleted.
    users: BTreeMap<u64, (u64, Option<String>)>,
    /// Per post: version, and title unless deleted.
    posts: BTreeMap<(u64, u64), (u64, Option<String>)>,
    /// Per author: summary version.
    summaries: HashMap<u64, u64>,
    /// Garbage events sent (each must become a dead letter).
    garbage: u64,
    /// Events held back behind later ones, and events sent twice.
    late: u64,
    twice: u64,
}

impl Truth {
    fn summary(&self, user: u64) -> (u32, Vec<String>) {
        let live =
            self.posts.range((user, 0)..=(user, u64::MAX)).filter_map(|(_, (_, t))| t.clone());
        let titles: Vec<String> = live.collect();
        let latest = titles.iter().rev().take(LATEST).cloned().collect();
        (titles.len() as u32, latest)
    }

    /// The page the source implies for a user, if it has one.
    fn page(&self, user: u64) -> Option<Page> {
        let name = self.users.get(&user)?.1.clone()?;
        let (posts, latest) = self.summary(user);
        Some(Page { name: Some(name), posts, latest })
    }
}

/// xorshift64, so that the demo needs no dependency for randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const SYLLABLES: [&str; 10] = ["ka", "lo", "mi", "ra", "ne", "to", "su", "vi", "ber", "lin"];
const TOPICS: [&str; 8] = [
    "group commit",
    "read models",
    "cache invalidation",
    "cold starts",
    "fsync",
    "versioned writes",
    "exactly once",
    "tombstones",
];

fn name(rng: &mut Rng) -> String {
    (0..2 + rng.below(2)).map(|_| SYLLABLES[rng.below(10) as usize]).collect()
}

fn title(rng: &mut Rng, post: u64) -> String {
    format!("Notes on {} #{post}", TOPICS[rng.below(8) as usize])
}

/// Appends `events` to a log, a few held back behind later ones, some twice.
struct Delivery<T> {
    log: MemoryLog<T>,
    held: Vec<(u32, T, u64)>,
    step: u64,
    late: u64,
    twice: u64,
}

impl<T: Clone + Send + 'static> Delivery<T> {
    fn send(&mut self, rng: &mut Rng, partition: u32, event: T) -> viewstore::Result<()> {
        self.step += 1;
        let ready: Vec<_> = self.held.extract_if(.., |(_, _, due)| *due <= self.step).collect();
        for (p, e, _) in ready {
            self.log.append(p, e)?;
        }
        let roll = rng.below(1000);
        if roll < LATE_PER_MILLE {
            self.late += 1;
            self.held.push((partition, event, self.step + 1 + rng.below(50)));
        } else {
            if roll < LATE_PER_MILLE + TWICE_PER_MILLE {
                self.twice += 1;
                self.log.append(partition, event.clone())?;
            }
            self.log.append(partition, event)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> viewstore::Result<()> {
        for (p, e, _) in self.held.drain(..) {
            self.log.append(p, e)?;
        }
        Ok(())
    }
}

fn partition(user: u64) -> u32 {
    (user % u64::from(PARTITIONS)) as u32
}

/// Runs the source: `STEPS` changes to users and posts, onto the two logs.
fn produce(users: &MemoryLog<UserEvent>, posts: &MemoryLog<PostEvent>) -> viewstore::Result<Truth> {
    let mut rng = Rng(0x5eed_cafe);
    let mut truth = Truth::default();
    let mut to_users =
        Delivery { log: users.clone(), held: Vec::new(), step: 0, late: 0, twice: 0 };
    let mut to_posts =
        Delivery { log: posts.clone(), held: Vec::new(), step: 0, late: 0, twice: 0 };
    let mut next_post = 0u64;
    for _ in 0..STEPS {
        let user = rng.below(USERS);
        let roll = rng.below(100);
        match truth.users.get(&user).cloned() {
            // Deleted users stay deleted.
            Some((_, None)) => {}
            None => {
                let name = name(&mut rng);
                truth.users.insert(user, (1, Some(name.clone())));
                to_users.send(
                    &mut rng,
                    partition(user),
                    UserEvent { user, version: 1, name: Some(name) },
                )?;
            }
            Some((version, Some(_))) if roll < 12 => {
                // A rename, or (rarely) a deletion.
                let deleted = roll == 0 && rng.below(4) == 0;
                let name = (!deleted).then(|| name(&mut rng));
                truth.users.insert(user, (version + 1, name.clone()));
                to_users.send(
                    &mut rng,
                    partition(user),
                    UserEvent { user, version: version + 1, name },
                )?;
            }
            Some(_) => {
                // A new post, or an edit or deletion of one of the user's posts.
                let existing: Vec<u64> = truth
                    .posts
                    .range((user, 0)..=(user, u64::MAX))
                    .filter(|(_, (_, t))| t.is_some())
                    .map(|((_, p), _)| *p)
                    .collect();
                let (post, deleted) = if existing.is_empty() || roll < 60 {
                    next_post += 1;
                    (next_post, false)
                } else {
                    (existing[rng.below(existing.len() as u64) as usize], roll >= 90)
                };
                let version = truth.posts.get(&(user, post)).map_or(1, |p| p.0 + 1);
                let title = (!deleted).then(|| title(&mut rng, post));
                truth.posts.insert((user, post), (version, title.clone()));
                let summary_version = {
                    let v = truth.summaries.entry(user).or_default();
                    *v += 1;
                    *v
                };
                let (count, latest) = truth.summary(user);
                let event =
                    PostEvent { user, post, version, title, summary_version, count, latest };
                to_posts.send(&mut rng, partition(user), event)?;
            }
        }
        if rng.below(1000) < GARBAGE_PER_MILLE {
            // An event for a user id the source never had: the handler rejects it.
            let garbage = UserEvent { user: u64::MAX, version: 1, name: Some(String::new()) };
            let partition = rng.below(u64::from(PARTITIONS)) as u32;
            users.append(partition, garbage)?;
            truth.garbage += 1;
        }
    }
    to_users.flush()?;
    to_posts.flush()?;
    truth.late = to_users.late + to_posts.late;
    truth.twice = to_users.twice + to_posts.twice;
    Ok(truth)
}

/// The users projector's handler: the page's name, or its deletion.
fn on_user(
    pages: View<u64, Page>,
) -> impl FnMut(&Event<UserEvent>, &mut Batch) -> Result<(), BoxError> + Send + 'static {
    move |event, batch| {
        let e = &event.payload;
        if e.user >= USERS {
            return Err(format!("user {} does not exist", e.user).into());
        }
        match e.name.clone() {
            Some(name) => {
                batch.update(&pages, &e.user, e.version, move |page: Option<&Page>| {
                    Change::Put(Page { name: Some(name), ..page.cloned().unwrap_or_default() })
                })?;
            }
            None => {
                batch.delete(&pages, &e.user, e.version)?;
            }
        }
        Ok(())
    }
}

/// The posts projector's handler: the post itself, and the page's post summary.
fn on_post(
    pages: View<u64, Page>,
    posts: View<(u64, u64), Post>,
) -> impl FnMut(&Event<PostEvent>, &mut Batch) -> Result<(), BoxError> + Send + 'static {
    move |event, batch| {
        let e = &event.payload;
        match &e.title {
            Some(title) => {
                batch.put(&posts, &(e.user, e.post), Post { title: title.clone() }, e.version)?
            }
            None => batch.delete(&posts, &(e.user, e.post), e.version)?,
        };
        let (count, latest) = (e.count, e.latest.clone());
        batch.update(&pages, &e.user, e.summary_version, move |page: Option<&Page>| {
            Change::Put(Page { posts: count, latest, ..page.cloned().unwrap_or_default() })
        })?;
        Ok(())
    }
}

/// Checks every page and post against the source.
fn verify(
    truth: &Truth,
    pages: &View<u64, Page>,
    posts: &View<(u64, u64), Post>,
) -> Result<(usize, usize), String> {
    let mut live_pages = 0;
    for user in 0..USERS {
        let want = truth.page(user);
        let got = pages.get(&user).map(|p| (*p).clone());
        if got != want {
            return Err(format!("page {user}: {got:?} stored, {want:?} in the source"));
        }
        live_pages += usize::from(want.is_some());
    }
    let mut live_posts = 0;
    for (&key, (version, title)) in &truth.posts {
        let got = posts.get_versioned(&key).map(|(v, p)| (v, p.title.clone()));
        let want = title.clone().map(|t| (*version, t));
        if got != want {
            return Err(format!("post {key:?}: {got:?} stored, {want:?} in the source"));
        }
        live_posts += usize::from(title.is_some());
    }
    if pages.len() != live_pages || posts.len() != live_posts {
        return Err(format!(
            "{} pages and {} posts stored, {live_pages} and {live_posts} in the source",
            pages.len(),
            posts.len()
        ));
    }
    Ok((live_pages, live_posts))
}

fn render(pages: &View<u64, Page>, user: u64) -> String {
    pages
        .get_with(&user, |page| {
            let mut out =
                format!("  {} ({} posts)\n", page.name.as_deref().unwrap_or("?"), page.posts);
            for title in &page.latest {
                let _ = writeln!(out, "    - {title}");
            }
            out
        })
        .unwrap_or_else(|| "  (no page)\n".into())
}

/// Both projectors, spawned on `store` over the two logs.
fn spawn(
    store: &Store,
    users: &MemoryLog<UserEvent>,
    posts: &MemoryLog<PostEvent>,
) -> viewstore::Result<(viewstore::RunningProjector, viewstore::RunningProjector)> {
    let pages = store.view(&PAGES)?;
    let letters = store.view(&DEAD_LETTERS)?;
    let on_users = Projector::new(store, users.source("users"), on_user(pages.source("users")?))
        .on_failure(OnFailure::DeadLetter(letters.clone()))
        .spawn()?;
    let on_posts = Projector::new(
        store,
        posts.source("posts"),
        on_post(pages.source("posts")?, store.view(&POSTS)?),
    )
    .on_failure(OnFailure::DeadLetter(letters))
    .spawn()?;
    Ok((on_users, on_posts))
}

fn caught_up(s: &viewstore::ProjectorStats) -> bool {
    s.lag() == 0 && s.in_flight == 0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("views.redb");
    let store = Store::open(&path)?;
    let pages = store.view(&PAGES)?;
    let posts = store.view(&POSTS)?;
    let letters = store.view(&DEAD_LETTERS)?;
    println!("viewstore demo: profile pages fed by two sources, exactly once");

    let (users_log, posts_log) = (MemoryLog::new(PARTITIONS), MemoryLog::new(PARTITIONS));
    let started = Instant::now();
    let (on_users, on_posts) = spawn(&store, &users_log, &posts_log)?;
    // Readers serve pages from memory while the projectors write.
    let serving = AtomicBool::new(true);
    let (reads, found) = (AtomicU64::new(0), AtomicU64::new(0));
    let truth = std::thread::scope(|s| -> viewstore::Result<Truth> {
        for r in 0..READERS {
            let (pages, serving, reads, found) = (&pages, &serving, &reads, &found);
            s.spawn(move || {
                let mut rng = Rng(0x1234_5678 + r as u64);
                while serving.load(Ordering::Relaxed) {
                    let user = rng.below(USERS);
                    let hit = pages.get_with(&user, |p| p.posts).is_some();
                    reads.fetch_add(1, Ordering::Relaxed);
                    found.fetch_add(u64::from(hit), Ordering::Relaxed);
                }
            });
        }
        let truth = produce(&users_log, &posts_log);
        let limit = Duration::from_secs(300);
        on_users.wait_until(limit, caught_up);
        on_posts.wait_until(limit, caught_up);
        serving.store(false, Ordering::Relaxed);
        truth
    })?;
    let elapsed = started.elapsed();
    let (u, p) = (on_users.stop()?, on_posts.stop()?);
    let events = u.events + p.events;
    println!(
        "source: {USERS} users, {STEPS} changes; delivered with {} held back behind later ones, \
         {} sent twice, {} garbage",
        truth.late, truth.twice, truth.garbage
    );
    println!(
        "{} events from users and {} from posts applied in {:.2} s ({:.0} events/s), {} dead letters, \
         {} late or repeated deliveries refused by per-source versions",
        u.events,
        p.events,
        elapsed.as_secs_f64(),
        f64::from(u32::try_from(events).unwrap_or(u32::MAX)) / elapsed.as_secs_f64(),
        u.dead_letters + p.dead_letters,
        u.stale + p.stale,
    );
    println!(
        "{} page reads served from memory meanwhile ({} found a page)",
        reads.load(Ordering::Relaxed),
        found.load(Ordering::Relaxed)
    );
    let (live_pages, live_posts) = verify(&truth, &pages, &posts)?;
    if letters.len() as u64 != truth.garbage || u.dead_letters + p.dead_letters != truth.garbage {
        let stored = letters.len();
        return Err(format!("{stored} dead letters for {} garbage events", truth.garbage).into());
    }
    println!(
        "converged: all {live_pages} pages and {live_posts} posts equal the source; the {} dead \
         letters are exactly the garbage events",
        letters.len()
    );

    let star = (0..USERS).max_by_key(|u| pages.get_with(u, |p| p.posts)).unwrap_or(0);
    let before = render(&pages, star);
    println!("\nGET /users/{star}\n{before}");

    store.close()?;
    drop((pages, posts, letters, store));
    let reopening = Instant::now();
    let store = Store::open(&path)?;
    let pages = store.view(&PAGES)?;
    let posts = store.view(&POSTS)?;
    println!(
        "closed and reopened in {} ms: {} pages and {} posts loaded; positions users {:?}, posts {:?}",
        reopening.elapsed().as_millis(),
        pages.len(),
        posts.len(),
        store.positions("users")?,
        store.positions("posts")?,
    );
    if render(&pages, star) != before {
        return Err("the page changed across the reopen".into());
    }

    resume(&store, &pages, (&users_log, &posts_log), &truth, star)?;
    store.close()?;
    Ok(())
}

/// Restarts the projectors over the same logs: they resume where the store is, so only
/// a new event is applied.
fn resume(
    store: &Store,
    pages: &View<u64, Page>,
    (users_log, posts_log): (&MemoryLog<UserEvent>, &MemoryLog<PostEvent>),
    truth: &Truth,
    star: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    // The projectors resume where the store is: nothing is applied twice.
    let (on_users, on_posts) = spawn(store, users_log, posts_log)?;
    let rename =
        UserEvent { user: star, version: truth.users[&star].0 + 1, name: Some("renamed".into()) };
    users_log.append(partition(star), rename)?;
    on_users.wait_until(Duration::from_secs(60), |s| s.events == 1 && caught_up(s));
    on_posts.wait_until(Duration::from_secs(60), caught_up);
    let (u, p) = (on_users.stop()?, on_posts.stop()?);
    println!(
        "restarted: {} events applied again (the one new rename), {} redelivered\n\nGET /users/{star}\n{}",
        u.events + p.events,
        u.redeliveries + p.redeliveries,
        render(pages, star)
    );
    if u.events + p.events != 1 {
        return Err("a restarted projector applied old events again".into());
    }
    Ok(())
}
