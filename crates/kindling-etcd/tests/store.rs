//! The etcd store against a real etcd (Debian's etcd-server) on loopback: objects written
//! with compare-and-swap on the modification revision, and the mirror surviving a
//! compaction that passed its watch's revision.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use kindling_etcd::mirror::Mirror;
use kindling_etcd::{EtcdObjects, Settings, Store};
use kindling_model::store::{DataDir, Expect, Kind, ObjectError, Objects};
use kindling_testkit::etcd::EtcdCluster;
use tokio_util::sync::CancellationToken;

fn settings(cluster: &EtcdCluster, prefix: &str) -> Settings {
    Settings {
        endpoints: cluster.endpoints(),
        prefix: prefix.into(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        timeout: Duration::from_secs(5),
    }
}

const GROUP: &str = r#"{"id":"web","profile":"p","selector":{"mac":"52:54:00:00:00:01"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_compare_and_swap_on_the_revision() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let store = Store::connect(&settings(&cluster, "/t1")).await.unwrap();
    let remote = EtcdObjects::new(store, tokio::runtime::Handle::current());
    let objects = Objects::shared(DataDir::new("/nonexistent"), Arc::new(remote));

    let (tag, created) = objects
        .put_expecting(Kind::Group, "web", GROUP.as_bytes(), &Expect::Absent)
        .unwrap();
    assert!(created);
    // The tag is the key's modification revision.
    let stored = cluster.etcdctl(&["get", "/t1/groups/web.json", "-w", "json"]);
    assert!(
        stored.contains(&format!("\"mod_revision\":{tag}")),
        "{stored}"
    );
    assert_eq!(
        cluster.get("/t1/groups/web.json").unwrap(),
        GROUP.as_bytes()
    );

    // Create-only again: refused, with the current tag.
    match objects.put_expecting(Kind::Group, "web", GROUP.as_bytes(), &Expect::Absent) {
        Err(ObjectError::Changed { current, .. }) => assert_eq!(current.as_deref(), Some(&*tag)),
        other => panic!("{other:?}"),
    }
    // Someone else writes behind our back: our tag is stale.
    cluster.put("/t1/groups/web.json", GROUP.as_bytes());
    let stale = Expect::Tag(tag.clone());
    assert!(matches!(
        objects.put_expecting(Kind::Group, "web", GROUP.as_bytes(), &stale),
        Err(ObjectError::Changed { .. })
    ));
    assert!(matches!(
        objects.delete_expecting(Kind::Group, "web", &stale),
        Err(ObjectError::Changed { .. })
    ));
    // With the current tag: written, not created.
    let now = objects.current_tag(Kind::Group, "web").unwrap().unwrap();
    let (next, created) = objects
        .put_expecting(Kind::Group, "web", GROUP.as_bytes(), &Expect::Tag(now))
        .unwrap();
    assert!(!created);
    assert!(next.parse::<i64>().unwrap() > tag.parse::<i64>().unwrap());
    // A tag that is no revision never matches.
    assert!(matches!(
        objects.put_expecting(
            Kind::Group,
            "web",
            GROUP.as_bytes(),
            &Expect::Tag("abc".into())
        ),
        Err(ObjectError::Changed { .. })
    ));
    // Invalid groups are refused before etcd sees them.
    assert!(matches!(
        objects.put(Kind::Group, "bad", b"{"),
        Err(ObjectError::Invalid { .. })
    ));
    objects.put(Kind::Ignition, "a.ign", b"{}").unwrap();
    assert_eq!(objects.list(Kind::Group).unwrap(), vec!["web".to_string()]);
    assert_eq!(
        objects.list(Kind::Ignition).unwrap(),
        vec!["a.ign".to_string()]
    );
    assert_eq!(objects.get(Kind::Ignition, "a.ign").unwrap(), b"{}");
    assert!(objects.delete(Kind::Group, "web").unwrap());
    assert!(!objects.delete(Kind::Group, "web").unwrap());
    assert!(matches!(
        objects.get(Kind::Group, "web"),
        Err(ObjectError::NotFound { .. })
    ));
}

/// Waits for a published set of objects that satisfies `ok`.
fn wait_for(
    rx: &mpsc::Receiver<kindling_etcd::mirror::Update>,
    ok: impl Fn(&kindling_etcd::mirror::Update) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(u) if ok(&u) => return,
            Ok(_) => {}
            Err(e) => panic!("no such publication within 60 s: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_survives_a_compaction_past_its_watch() {
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    cluster.put("/t2/groups/a.json", GROUP.as_bytes());
    // Machine records are kept apart; keys outside the layout or the prefix are ignored.
    cluster.put("/t2/machines/x.json", b"{}");
    cluster.put("/t2/other/y", b"{}");
    cluster.put("/t2x/groups/b.json", GROUP.as_bytes());
    let store = Store::connect(&settings(&cluster, "/t2/")).await.unwrap();
    let (mirror, first) = Mirror::load(store, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        first.objects.keys().collect::<Vec<_>>(),
        vec!["groups/a.json"]
    );
    assert_eq!(first.machines.keys().collect::<Vec<_>>(), vec!["x.json"]);

    // While nobody watches, the store moves on and is compacted past the mirror's
    // revision: the watch cannot resume there, the mirror must read again.
    cluster.put("/t2/groups/c.json", GROUP.as_bytes());
    cluster.etcdctl(&["del", "/t2/groups/a.json"]);
    cluster.etcdctl(&["del", "/t2/machines/x.json"]);
    let rev = cluster.revision();
    cluster.compact(rev);

    let (tx, rx) = mpsc::channel();
    let cancel = CancellationToken::new();
    mirror.follow(
        Box::new(move |u: kindling_etcd::mirror::Update| {
            let _ = tx.send(u);
        }),
        cancel.clone(),
    );
    wait_for(&rx, |u| {
        u.objects.keys().collect::<Vec<_>>() == vec!["groups/c.json"]
            && u.machines == vec![("x.json".to_string(), None)]
    });
    assert!(
        mirror.health().reloads() >= 1,
        "the mirror read the store again"
    );
    // The revision is noted right after the publication (a write's wait ends then).
    let health = mirror.health();
    until("the copy is at the compacted revision", || {
        health.revision() >= rev
    })
    .await;

    // Then it follows the watch: a change shows up, and settle sees it.
    cluster.put("/t2/profiles/p.json", br#"{"id":"p"}"#);
    wait_for(&rx, |u| {
        u.objects_changed && u.objects.contains_key("profiles/p.json")
    });
    cluster.put("/t2/machines/z.json", b"{}");
    wait_for(&rx, |u| !u.objects_changed && u.machines.len() == 1);
    assert!(mirror.settle(Duration::from_secs(30)).await);
    cancel.cancel();
}

/// Waits until `ok` holds (60 s at most).
async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_at_a_time_does_the_singleton_work() {
    use kindling_etcd::election::{Leadership, lead};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some(cluster) = EtcdCluster::start(1) else {
        return;
    };
    let working = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut servers = Vec::new();
    for me in ["a", "b"] {
        let store = Store::connect(&settings(&cluster, "/t3/")).await.unwrap();
        let status = Arc::new(Leadership::default());
        let cancel = CancellationToken::new();
        let (w, m) = (working.clone(), most.clone());
        let task = tokio::spawn(lead(
            store,
            "fcos",
            me.to_string(),
            status.clone(),
            cancel.clone(),
            move |stop: CancellationToken| {
                let (w, m) = (w.clone(), m.clone());
                async move {
                    let n = w.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(n, Ordering::SeqCst);
                    stop.cancelled().await;
                    w.fetch_sub(1, Ordering::SeqCst);
                }
            },
        ));
        servers.push((status, cancel, task));
    }
    until("someone leads", || servers.iter().any(|s| s.0.leading())).await;
    let first = servers.iter().position(|s| s.0.leading()).unwrap();
    let other = 1 - first;
    until("the other follows the leader", || {
        servers[other].0.leader() == ["a", "b"][first]
    })
    .await;
    assert!(!servers[other].0.leading());
    // The leader stops (resigns): the other takes over, never both at once.
    servers[first].1.cancel();
    until("the other leads", || servers[other].0.leading()).await;
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
    servers[other].1.cancel();
    for (_, _, t) in servers {
        t.await.unwrap();
    }
    assert_eq!(working.load(Ordering::SeqCst), 0);
}
