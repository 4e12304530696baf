//! Singletons of a fleet: work that only one server may do at a time (tracking the Fedora
//! CoreOS streams), given to the holder of an etcd election. Each candidate holds a lease
//! (kept alive every third of its TTL) and campaigns with it; the winner runs the work until
//! it loses the lease (etcd unreachable for a TTL, or the server stops and resigns), then
//! the work is stopped and the next candidate takes over. While it waits, a server says
//! who leads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Store;

/// Seconds a leader's lease lives without a keep-alive: how long a crashed leader's work
/// stays undone before another server takes it.
pub const TTL_SECS: i64 = 10;

/// What this server knows of one election.
#[derive(Debug, Default)]
pub struct Leadership {
    leading: AtomicBool,
    /// The leader's name as last seen (this server's own when it leads).
    leader: Mutex<String>,
}

impl Leadership {
    pub fn leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    pub fn leader(&self) -> String {
        self.leader.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn set(&self, leading: bool, leader: &str) {
        self.leading.store(leading, Ordering::Relaxed);
        if let Ok(mut l) = self.leader.lock() {
            *l = leader.to_string();
        }
    }

    /// `kindling_store_leader{election=NAME}`: 1 on the server that leads.
    pub fn register(&self, election: &str, r: &mut prometheus_client::registry::Registry) {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        let f = Family::<Vec<(String, String)>, Gauge>::default();
        f.get_or_create(&vec![("election".into(), election.into())])
            .set(i64::from(self.leading()));
        r.register(
            "kindling_store_leader",
            "1 when this server holds the election (does the fleet's singleton work)",
            f,
        );
    }
}

/// Runs `work` while this server holds the election `name` (key
/// `<prefix>elections/<name>`), as candidate `me`, until `cancel`. `work` gets a token
/// that is cancelled when leadership is lost; it is started again when it is won again.
pub async fn lead<F, Fut>(
    store: Store,
    name: &str,
    me: String,
    status: Arc<Leadership>,
    cancel: CancellationToken,
    work: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let key = store.key(&format!("elections/{name}"));
    let mut logged_wait = false;
    while !cancel.is_cancelled() {
        let term = tokio::select! {
            _ = cancel.cancelled() => return,
            t = campaign(&store, &key, &me, &status, &mut logged_wait) => t,
        };
        let (lease, leader_key) = match term {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(election = name, error = %e, "etcd election: cannot campaign; trying again");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        status.set(true, &me);
        logged_wait = false;
        tracing::info!(
            election = name,
            "etcd election won: this server does the fleet's {name} work"
        );
        let term_cancel = cancel.child_token();
        let running = tokio::spawn(work(term_cancel.clone()));
        let why = keep_alive(&store, lease, &key, &leader_key, &cancel).await;
        term_cancel.cancel();
        let _ = running.await;
        status.set(false, "");
        match why {
            None => {
                // Stopping: hand over now rather than after the TTL.
                let mut c = store.client();
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    c.resign(Some(
                        etcd_client::ResignOptions::new().with_leader(leader_key),
                    )),
                )
                .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), c.lease_revoke(lease)).await;
                return;
            }
            Some(e) => tracing::warn!(
                election = name, error = %e,
                "etcd election lost (lease not kept alive): the {name} work stopped here; another server takes over"
            ),
        }
    }
}

/// Grants a lease and campaigns with it until this server leads: (lease, leader key).
async fn campaign(
    store: &Store,
    key: &str,
    me: &str,
    status: &Leadership,
    logged_wait: &mut bool,
) -> Result<(i64, etcd_client::LeaderKey), String> {
    let lease = store
        .call(|mut c| async move { c.lease_grant(TTL_SECS, None).await })
        .await
        .map_err(|e| e.to_string())?
        .id();
    follow(store, key, status, logged_wait).await;
    // The lease is kept alive while waiting (the campaign blocks until we lead).
    let (mut keeper, mut answers) = store
        .client()
        .lease_keep_alive(lease)
        .await
        .map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(Duration::from_secs((TTL_SECS / 3) as u64));
    loop {
        // Every call is bounded by the client's timeout: a campaign that times out is made
        // again with the same lease (etcd keeps the candidate's key and place).
        // No per-call timeout: a campaign waits as long as the leader leads (etcd resigns
        // a campaign whose call is cancelled, so it must not be cut short and made again).
        let mut c = store.long_client();
        let won = c.campaign(key, me, lease);
        tokio::pin!(won);
        let answer = loop {
            tokio::select! {
                r = &mut won => break r,
                _ = tick.tick() => {
                    follow(store, key, status, logged_wait).await;
                    keeper.keep_alive().await.map_err(|e| e.to_string())?;
                    match answers.message().await {
                        Ok(Some(a)) if a.ttl() > 0 => {}
                        Ok(_) => return Err("lease expired while campaigning".into()),
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
        };
        match answer {
            Ok(r) => {
                return r
                    .leader()
                    .cloned()
                    .map(|k| (lease, k))
                    .ok_or_else(|| "no leader key".into());
            }
            Err(etcd_client::Error::GRpcStatus(st))
                if matches!(
                    st.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Notes who leads now (for the status, and the log once per wait).
async fn follow(store: &Store, key: &str, status: &Leadership, logged: &mut bool) {
    let Ok(Ok(l)) = tokio::time::timeout(Duration::from_secs(5), store.client().leader(key)).await
    else {
        return;
    };
    let Some(kv) = l.kv() else { return };
    let leader = String::from_utf8_lossy(kv.value()).to_string();
    if !*logged {
        tracing::info!(election = %key, leader = %leader, "etcd election: following");
        *logged = true;
    }
    status.set(false, &leader);
}

/// Keeps the leader's lease alive until `cancel` (`None`) or until leadership cannot be
/// vouched for (`Some(why)`). The lease lives TTL from its last refresh on the server,
/// which came after the keep-alive was sent: leadership ends here at (last confirmed
/// send + TTL - 2 s), before any other server can win, whether or not this task gets
/// to run on time. Each turn also checks that the election's leader is still this key
/// (someone deleting it would otherwise let a second leader in).
async fn keep_alive(
    store: &Store,
    lease: i64,
    election: &str,
    ours: &etcd_client::LeaderKey,
    cancel: &CancellationToken,
) -> Option<String> {
    let ttl = Duration::from_secs(TTL_SECS as u64);
    let margin = Duration::from_secs(2);
    let mut deadline = tokio::time::Instant::now() + ttl - margin;
    let mut tick = tokio::time::interval(ttl / 5);
    let mut session: Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep_until(deadline) => {
                return Some(format!("no keep-alive confirmed within {} s", (ttl - margin).as_secs()));
            }
            _ = tick.tick() => {}
        }
        let within = Duration::from_secs(1);
        if let Ok(Ok(l)) = tokio::time::timeout(within, store.client().leader(election)).await {
            match l.kv() {
                Some(kv) if kv.key() == ours.key() => {}
                _ => return Some("this server's key no longer leads the election".into()),
            }
        }
        if session.is_none() {
            session = tokio::time::timeout(within, store.client().lease_keep_alive(lease))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some((keeper, answers)) = session.as_mut() else {
            continue;
        };
        let sent = tokio::time::Instant::now();
        let ok = tokio::time::timeout(within, async {
            keeper.keep_alive().await.ok()?;
            answers.message().await.ok().flatten()
        })
        .await;
        match ok {
            Ok(Some(a)) if a.ttl() > 0 => deadline = sent + ttl - margin,
            Ok(Some(_)) => return Some("the lease expired".into()),
            // No answer: a new keep-alive stream next time (perhaps to another member).
            _ => session = None,
        }
    }
}
