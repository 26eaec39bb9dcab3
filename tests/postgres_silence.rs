//! A connection that goes silent without closing (the network path to the server died,
//! and only the server noticed): the PostgreSQL source notices the silence through its
//! status updates that ask for an answer, connects again, and streams on.

#![cfg(feature = "postgres")]

#[path = "support/shop.rs"]
mod shop;

use pg::{Client, NoTls};
use shop::{Res, Views};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use viewstore::postgres::{PostgresConfig, PostgresSource};
use viewstore::{Batch, Projector, Store};

/// Copies `from` to `to` while the connection's generation is current; once it is not,
/// closes the server's side and keeps the client's side open and silent.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    server_side: &TcpStream,
    generation: u64,
    current: &AtomicU64,
) {
    let mut buf = [0u8; 8192];
    from.set_read_timeout(Some(Duration::from_millis(20))).ok();
    loop {
        if current.load(Ordering::SeqCst) != generation {
            let _ = server_side.shutdown(Shutdown::Both);
            // The client's socket stays open, and nothing more reaches it.
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A proxy to `server` on a new local port; bumping `current` freezes its connections.
fn proxy(server: String, current: Arc<AtomicU64>) -> Res<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(&server) else { continue };
            let generation = current.load(Ordering::SeqCst);
            let (Ok(c2), Ok(u2), Ok(u3), Ok(u4)) = (
                client.try_clone(),
                upstream.try_clone(),
                upstream.try_clone(),
                upstream.try_clone(),
            ) else {
                continue;
            };
            let cur = current.clone();
            std::thread::spawn(move || pump(client, u2, &u3, generation, &cur));
            let cur = current.clone();
            std::thread::spawn(move || pump(upstream, c2, &u4, generation, &cur));
        }
    });
    Ok(port)
}

#[test]
fn a_silent_connection_is_noticed_and_made_again() -> Res<()> {
    let Some(server) = shop::server_url()? else { return Ok(()) };
    let url = shop::fresh_db(&server, "vs_silence")?;
    let mut db = Client::connect(&url, NoTls)?;
    shop::seed(&mut db, 10)?;
    let address = url.split('@').nth(1).and_then(|h| h.split('/').next()).ok_or("url")?;
    let current = Arc::new(AtomicU64::new(0));
    let port = proxy(address.to_owned(), current.clone())?;
    let through = format!("postgres://postgres@127.0.0.1:{port}/vs_silence");
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("s.redb"))?;
    let views = Views::open(&store)?;
    let config = PostgresConfig::new(&through, "vs_silence")?
        .with_tables(&shop::TABLES)
        .with_feeds(&shop::FEEDS)
        .with_status_interval(Duration::from_millis(200));
    let v = views.clone();
    let running =
        Projector::new(&store, PostgresSource::new(&store, config), move |e, b: &mut Batch| {
            v.project(e, b)
        })
        .spawn()?;
    shop::mark(&mut db, "before")?;
    shop::wait_for_marker(&views, "before", Duration::from_secs(60))?;
    // The path dies: the server's side closes, the source's side goes quiet.
    current.fetch_add(1, Ordering::SeqCst);
    db.batch_execute("INSERT INTO users VALUES (777, 'after the silence', NULL)")?;
    shop::mark(&mut db, "after")?;
    shop::wait_for_marker(&views, "after", Duration::from_secs(60))
        .map_err(|e| format!("{e}: the projector: {:?}", running.stats()))?;
    assert!(views.users.get(&777).is_some());
    running.stop()?;
    Ok(())
}
