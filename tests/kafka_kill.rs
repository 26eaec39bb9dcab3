//! Scaling out under kills, against a real broker: one input topic of three
//! partitions, two shard processes (shard 0 owns partitions 0 and 1, shard 1 owns
//! partition 2; Immediate and Journal durability), each publishing its change feed to
//! a compacted changelog topic, and one replica process per shard following it
//! (Journal and Immediate). The parent produces keyed events with duplicate and late
//! deliveries, SIGKILLs a random process every cycle and restarts it, and restarts the
//! broker every 20 cycles. At the end, once every process has drained:
//!
//! - each shard equals the model recomputed from what its partitions hold: one
//!   application per message (the `applied` counters prove no double apply and no
//!   loss), and per entity the distinct events, their sum and the latest sequence;
//! - each replica is at its primary's LSN and equal to it byte for byte in a dump;
//! - a new replica bootstraps from the compacted changelog, and a new shard from its
//!   partitions, to the same state.
//!
//! Children are this binary run again (`shard` or `replica`). Cycles: 60, or
//! `VIEWSTORE_KAFKA_KILL_CYCLES`.

#![cfg_attr(not(feature = "kafka"), allow(unused))]

#[cfg(feature = "kafka")]
#[path = "support/kafka.rs"]
mod kafka;

#[cfg(feature = "kafka")]
mod run {
    use super::kafka::{Out, Res, brokers, create_topic, ctl, produce, unique_topic};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};
    use viewstore::kafka::{
        ChangelogConfig, ChangelogFollower, ChangelogPublisher, KafkaConfig, KafkaSource,
        ShardRouter, offset_of, partition_id,
    };
    use viewstore::testing::Rng;
    use viewstore::{
        Batch, Change, Durability, FeedMode, IndexDef, Lsn, Projector, Replicator, Store, ViewDef,
    };

    /// What a shard keeps of an entity: the distinct events, their sum, the latest.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Entity {
        ids: Vec<u64>,
        total: u64,
        latest: u64,
    }

    const BY_TOTAL: IndexDef<Entity, u64> = IndexDef::multi("by_total", |e| e.total % 7);
    const APPLIED: ViewDef<String, u64> = ViewDef::new("applied").with_feed(FeedMode::Values);
    const ENTITIES: ViewDef<String, Entity> =
        ViewDef::new("entities").with_feed(FeedMode::Values).with_indexes(&[&BY_TOTAL]);
    /// The last event of each entity; deleted by an event of amount 9, its tombstones
    /// purged every 50th event: deletes and purges for the replicas to follow.
    const RECENT: ViewDef<String, u64> = ViewDef::new("recent").with_feed(FeedMode::Values);
    const SOURCE: &str = "events";
    const ENTITY_COUNT: u64 = 40;

    fn router() -> Res<ShardRouter> {
        Ok(ShardRouter::new(vec![0, 0, 1])?)
    }

    /// One event: `id,seq,amount`, keyed by its entity.
    fn parse(value: &[u8]) -> Option<(u64, u64, u64)> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split(',').map(str::parse::<u64>);
        Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
    }

    fn apply(entity: &mut Entity, (id, seq, amount): (u64, u64, u64)) -> bool {
        match entity.ids.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                entity.ids.insert(at, id);
                entity.total += amount;
                entity.latest = entity.latest.max(seq);
                true
            }
        }
    }

    struct Args {
        role: String,
        idx: u32,
        dir: PathBuf,
        brokers: String,
        input: String,
        changelog: String,
        durability: Durability,
        store: PathBuf,
    }

    fn args(raw: &[String]) -> Res<Args> {
        let [role, idx, dir, brokers, input, changelog, durability, store] = raw else {
            return Err(format!("child arguments: {raw:?}").into());
        };
        Ok(Args {
            role: role.clone(),
            idx: idx.parse()?,
            dir: dir.into(),
            brokers: brokers.clone(),
            input: input.clone(),
            changelog: changelog.clone(),
            durability: if durability == "journal" {
                Durability::Journal
            } else {
                Durability::Immediate
            },
            store: store.into(),
        })
    }

    /// A shard: a projector from its partitions, and a publisher of its feed. Exits once
    /// the drain file's offsets are applied.
    pub(crate) fn shard(raw: &[String]) -> Res<()> {
        let a = args(raw)?;
        let store = Store::builder(&a.store).durability(a.durability).open()?;
        let (applied, entities) = (store.view(&APPLIED)?, store.view(&ENTITIES)?);
        let recent = store.view(&RECENT)?;
        let config = KafkaConfig::new(&a.brokers, SOURCE)?
            .with_shard(&a.input, &router()?, a.idx)?
            .with_feeds(&["applied", "entities", "recent"]);
        let running = Projector::new(&store, KafkaSource::new(&store, config), {
            let (applied, entities) = (applied.clone(), entities.clone());
            move |event, batch: &mut Batch| {
                let Some(key) = event.payload.key_str().map(str::to_owned) else { return Ok(()) };
                let Some(e) = event.payload.value.as_deref().and_then(parse) else { return Ok(()) };
                batch.update_next(&applied, &key, |n| Some(n.copied().unwrap_or(0) + 1))?;
                batch.update_next(&entities, &key, move |old| {
                    let mut entity = old.cloned().unwrap_or_default();
                    if apply(&mut entity, e) { Change::Put(entity) } else { Change::Keep }
                })?;
                let (id, _, amount) = e;
                batch.update_next(&recent, &key, move |_| {
                    if amount == 9 { Change::Delete } else { Change::Put(id) }
                })?;
                if id % 50 == 0 {
                    batch.purge_tombstones(&recent, u64::MAX)?;
                }
                Ok(())
            }
        })
        .spawn()?;
        let publisher =
            ChangelogPublisher::start(&store, ChangelogConfig::new(&a.brokers, &a.changelog))?;
        let drain = a.dir.join(format!("drain-shard-{}", a.idx));
        loop {
            if running.is_finished() || publisher.is_finished() {
                running.stop()?;
                publisher.stop()?;
                return Err("the projector or the publisher ended".into());
            }
            if let Ok(text) = std::fs::read_to_string(&drain) {
                let done = text.lines().filter_map(|l| l.split_once(' ')).all(|(p, end)| {
                    let (p, end): (i32, i64) = (p.parse().unwrap_or(0), end.parse().unwrap_or(0));
                    let at = store.position(SOURCE, partition_id(0, p)).ok().flatten();
                    end == 0 || at.is_some_and(|at| offset_of(at) + 1 >= end)
                });
                if done {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        running.stop()?;
        publisher.stop()?;
        store.close()?;
        Ok(())
    }

    /// A replica following a shard's changelog. Exits once it reaches the drain file's LSN.
    pub(crate) fn replica(raw: &[String]) -> Res<()> {
        let a = args(raw)?;
        let store = Store::builder(&a.store).durability(a.durability).replica(true).open()?;
        let (applied, entities) = (store.view(&APPLIED)?, store.view(&ENTITIES)?);
        let recent = store.view(&RECENT)?;
        let mut replicator = Replicator::new(&store);
        replicator.view(&applied)?.view(&entities)?.view(&recent)?;
        let follower =
            ChangelogFollower::start(replicator, &ChangelogConfig::new(&a.brokers, &a.changelog))?;
        let drain = a.dir.join(format!("drain-{}-{}", a.role, a.idx));
        loop {
            if follower.is_finished() {
                follower.stop()?;
                return Err("the follower ended".into());
            }
            if let Ok(text) = std::fs::read_to_string(&drain)
                && store.lsn().get() >= text.trim().parse::<u64>().unwrap_or(u64::MAX)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        follower.stop()?;
        store.close()?;
        Ok(())
    }

    /// A child process of the run.
    struct Proc {
        args: Vec<String>,
        child: Child,
    }

    impl Proc {
        fn start(args: Vec<String>) -> Res<Proc> {
            let child = Command::new(std::env::current_exe()?).args(&args).spawn()?;
            Ok(Proc { args, child })
        }

        fn kill_and_restart(&mut self) -> Res<()> {
            self.child.kill()?;
            self.child.wait()?;
            self.child = Command::new(std::env::current_exe()?).args(&self.args).spawn()?;
            Ok(())
        }

        /// Waits for a clean exit after a drain file was written.
        fn finish(&mut self, what: &str) -> Res<()> {
            let deadline = Instant::now() + Duration::from_secs(180);
            loop {
                if let Some(status) = self.child.try_wait()? {
                    if !status.success() {
                        return Err(format!("{what} exited with {status}").into());
                    }
                    return Ok(());
                }
                if Instant::now() > deadline {
                    self.child.kill()?;
                    return Err(format!("{what} did not drain within 180 s").into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Messages (key, value) by partition.
    type Messages = BTreeMap<i32, Vec<(String, Vec<u8>)>>;

    /// Every message of `topic`'s partitions 0..3.
    fn read_topic(brokers: &str, topic: &str) -> Res<Messages> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "viewstore-kill-model")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for p in 0..3 {
            assignment.add_partition_offset(topic, p, Offset::Offset(0))?;
        }
        consumer.assign(&assignment)?;
        let mut out: BTreeMap<i32, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        let mut ended = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while ended.len() < 3 {
            if Instant::now() > deadline {
                return Err("reading the input topic back took over 120 s".into());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    let list = out.entry(m.partition()).or_default();
                    assert_eq!(i64::try_from(list.len())?, m.offset(), "offsets without gaps");
                    list.push((key, m.payload().unwrap_or_default().to_vec()));
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    ended.insert(p);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    type Model = BTreeMap<String, (u64, Entity)>;

    fn model(messages: &[(String, Vec<u8>)], into: &mut Model) {
        for (key, value) in messages {
            let (applied, entity) = into.entry(key.clone()).or_default();
            *applied += 1;
            if let Some(e) = parse(value) {
                apply(entity, e);
            }
        }
    }

    fn contents(path: &Path) -> Res<(Model, Lsn)> {
        let store = Store::open(path)?;
        let (applied, entities) = (store.view(&APPLIED)?, store.view(&ENTITIES)?);
        let mut out = Model::new();
        for k in 0..ENTITY_COUNT {
            let key = format!("e{k}");
            if let Some(n) = applied.get(&key) {
                let entity = entities.get(&key).map(|e| (*e).clone()).unwrap_or_default();
                out.insert(key, (*n, entity));
            }
        }
        assert_eq!(applied.len(), out.len(), "no entity outside e0..e{ENTITY_COUNT}");
        let lsn = store.lsn();
        store.close()?;
        Ok((out, lsn))
    }

    fn dump(path: &Path) -> Res<Vec<String>> {
        let file = viewstore::inspect::StoreFile::open(path)?;
        let mut lines = Vec::new();
        for view in ["applied", "entities", "recent"] {
            file.dump(view, &mut |record| {
                lines.push(format!("{view} {}", record.to_json()));
                Ok(())
            })?;
        }
        Ok(lines)
    }

    /// Events for one cycle: new ones, duplicates of earlier ones, and late ones (a
    /// sequence below the entity's latest).
    fn events(
        rng: &mut Rng,
        next_id: &mut u64,
        sent: &mut Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for _ in 0..(20 + rng.below(40)) {
            if !sent.is_empty() && rng.one_in(8) {
                let again = sent[rng.below(sent.len() as u64) as usize].clone();
                out.push(again);
                continue;
            }
            *next_id += 1;
            let seq = if rng.one_in(6) { next_id.saturating_sub(50) } else { *next_id };
            let key = format!("e{}", rng.below(ENTITY_COUNT));
            let event = (key, format!("{},{seq},{}", *next_id, 1 + rng.below(9)));
            sent.push(event.clone());
            out.push(event);
        }
        out
    }

    fn send(brokers: &str, topic: &str, events: &[(String, String)]) -> Res<()> {
        let out: Vec<Out<'_>> = events
            .iter()
            .map(|(k, v)| Out { key: k.as_bytes(), value: Some(v.as_bytes()), headers: &[] })
            .collect();
        produce(brokers, topic, &out)?;
        Ok(())
    }

    #[expect(clippy::too_many_lines, reason = "one scenario, start to end")]
    pub(crate) fn parent() -> Res<()> {
        let Some(brokers) = brokers()? else { return Ok(()) };
        let started = Instant::now();
        let cycles: u64 = std::env::var("VIEWSTORE_KAFKA_KILL_CYCLES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(60);
        let input = unique_topic("kill-events");
        create_topic(&brokers, &input, 3, &[])?;
        let changelogs = [unique_topic("kill-changelog-0"), unique_topic("kill-changelog-1")];
        for topic in &changelogs {
            create_topic(&brokers, topic, 1, &[("cleanup.policy", "compact")])?;
        }
        let dir = tempfile::tempdir()?;
        let d = dir.path().to_string_lossy().into_owned();
        let child = |role: &str, idx: u32, durability: &str, store: &str| {
            vec![
                role.to_owned(),
                idx.to_string(),
                d.clone(),
                brokers.clone(),
                input.clone(),
                changelogs[idx as usize].clone(),
                durability.to_owned(),
                dir.path().join(store).to_string_lossy().into_owned(),
            ]
        };
        let mut procs = [
            Proc::start(child("shard", 0, "immediate", "shard0.redb"))?,
            Proc::start(child("shard", 1, "journal", "shard1.redb"))?,
            Proc::start(child("replica", 0, "journal", "replica0.redb"))?,
            Proc::start(child("replica", 1, "immediate", "replica1.redb"))?,
        ];
        let mut rng = Rng::new(viewstore::testing::seed_from_time());
        let (mut next_id, mut sent) = (0, Vec::new());
        let (mut kills, mut restarts) = ([0u32; 4], 0);
        for cycle in 0..cycles {
            let events = events(&mut rng, &mut next_id, &mut sent);
            send(&brokers, &input, &events)?;
            std::thread::sleep(Duration::from_millis(rng.below(400)));
            let victim = rng.below(4) as usize;
            procs[victim].kill_and_restart()?;
            kills[victim] += 1;
            if cycle % 20 == 10 && ctl("restart")? {
                restarts += 1;
            }
        }
        // The end: drain the shards to the topic's end, then the replicas to their
        // primary's LSN.
        let topic = read_topic(&brokers, &input)?;
        let router = router()?;
        for shard in 0..2u32 {
            let mut drain = String::new();
            for p in router.partitions_of(shard)? {
                let end = topic.get(&p.cast_signed()).map_or(0, Vec::len);
                writeln!(drain, "{p} {end}")?;
            }
            std::fs::write(dir.path().join(format!("drain-shard-{shard}")), drain)?;
        }
        procs[0].finish("shard 0")?;
        procs[1].finish("shard 1")?;
        let mut report = Vec::new();
        for shard in 0..2u32 {
            let mut want = Model::new();
            for p in router.partitions_of(shard)? {
                model(topic.get(&p.cast_signed()).map_or(&[][..], Vec::as_slice), &mut want);
            }
            let primary = dir.path().join(format!("shard{shard}.redb"));
            let (got, lsn) = contents(&primary)?;
            assert_eq!(got, want, "shard {shard} equals the model of its partitions");
            std::fs::write(
                dir.path().join(format!("drain-replica-{shard}")),
                lsn.get().to_string(),
            )?;
            std::fs::write(dir.path().join(format!("drain-fresh-{shard}")), lsn.get().to_string())?;
            report.push((shard, lsn, got.values().map(|(n, _)| n).sum::<u64>()));
        }
        procs[2].finish("replica 0")?;
        procs[3].finish("replica 1")?;
        // New processes from scratch: a replica of shard 0 from its compacted
        // changelog, and shard 1 again from its partitions.
        let mut fresh_replica = Proc::start(child("fresh", 0, "journal", "fresh-replica0.redb"))?;
        fresh_replica.finish("a new replica of shard 0")?;
        let mut fresh_shard_args = child("shard", 1, "immediate", "fresh-shard1.redb");
        fresh_shard_args[5] = unique_topic("kill-changelog-fresh");
        create_topic(&brokers, &fresh_shard_args[5], 1, &[("cleanup.policy", "compact")])?;
        let mut fresh_shard = Proc::start(fresh_shard_args)?;
        fresh_shard.finish("a new shard 1")?;
        for (shard, want_lsn, _) in &report {
            let primary = dir.path().join(format!("shard{shard}.redb"));
            let replica = dir.path().join(format!("replica{shard}.redb"));
            let (want, want_lsn) = (dump(&primary)?, *want_lsn);
            let replica_lsn = Store::builder(&replica).replica(true).open()?;
            assert_eq!(replica_lsn.lsn(), want_lsn, "replica {shard} is at its primary's lsn");
            replica_lsn.close()?;
            drop(replica_lsn);
            assert_eq!(dump(&replica)?, want, "replica {shard} equals its primary, byte for byte");
        }
        let fresh = dir.path().join("fresh-replica0.redb");
        assert_eq!(dump(&fresh)?, dump(&dir.path().join("shard0.redb"))?, "a new replica");
        let (fresh_shard, _) = contents(&dir.path().join("fresh-shard1.redb"))?;
        let (old_shard, _) = contents(&dir.path().join("shard1.redb"))?;
        assert_eq!(fresh_shard, old_shard, "a new shard from its partitions");
        eprintln!(
            "kafka kill loop: {cycles} cycles, kills shard0/shard1/replica0/replica1 = {kills:?}, \
             {restarts} broker restarts, {next_id} events (+ duplicates), shards at lsn {} and {} \
             with {} and {} messages applied once each, in {:.1} s",
            report[0].1,
            report[1].1,
            report[0].2,
            report[1].2,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    #[cfg(feature = "kafka")]
    {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let result = match argv.first().map(String::as_str) {
            Some("shard") => run::shard(&argv),
            Some("replica" | "fresh") => run::replica(&argv),
            _ => run::parent(),
        };
        if let Err(e) = result {
            eprintln!("kafka_kill: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    std::process::ExitCode::SUCCESS
}
