//! matchbox's objects in etcd: one key per object below the prefix, named as its file in
//! a data directory, its tag the key's modification revision. Preconditions are checked
//! by etcd in the same transaction as the write, so two servers cannot both win.

use std::io;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use kindling_model::store::{Expect, Mismatch, Remote};
use tokio::runtime::Handle;

use crate::{Error, Store};

/// [`Remote`] on etcd, for [`kindling_model::store::Objects::shared`]. Its methods block
/// (they are called off the async threads, as file writes are).
#[derive(Debug, Clone)]
pub struct EtcdObjects {
    store: Store,
    runtime: Handle,
}

impl EtcdObjects {
    /// `runtime`: where the client's calls run (the server's runtime).
    pub fn new(store: Store, runtime: Handle) -> EtcdObjects {
        EtcdObjects { store, runtime }
    }

    fn block<T>(&self, f: impl std::future::Future<Output = Result<T, Error>>) -> io::Result<T> {
        let run = || self.runtime.block_on(f);
        let r = match Handle::try_current() {
            // On an async worker thread: tell the runtime this thread blocks.
            Ok(_) => tokio::task::block_in_place(run),
            Err(_) => run(),
        };
        r.map_err(io::Error::from)
    }

    /// The compare `expect` makes on `key`, or, for a tag that no revision can have, the
    /// mismatch with the object's current tag.
    fn precondition(
        &self,
        rel: &str,
        key: &str,
        expect: &Expect,
    ) -> io::Result<Result<Option<Compare>, Mismatch>> {
        match compare(key, expect) {
            Ok(c) => Ok(Ok(c)),
            Err(m) => {
                let now = Remote::get(self, rel)?.map(|(_, t)| t);
                Ok(Err(Mismatch(now.or(m.0))))
            }
        }
    }
}

/// The compare a precondition makes (`None`: none), or the mismatch it is already (a
/// tag that no revision can have).
fn compare(key: &str, expect: &Expect) -> Result<Option<Compare>, Mismatch> {
    Ok(match expect {
        Expect::Anything => None,
        Expect::Present => Some(Compare::version(key, CompareOp::Greater, 0)),
        Expect::Absent => Some(Compare::version(key, CompareOp::Equal, 0)),
        Expect::Tag(t) => match t.parse::<i64>() {
            Ok(rev) if rev > 0 => Some(Compare::mod_revision(key, CompareOp::Equal, rev)),
            _ => return Err(Mismatch(None)),
        },
    })
}

/// The key as a transaction's `else` branch (a get) found it.
fn current_kv(resp: &etcd_client::TxnResponse) -> Option<etcd_client::KeyValue> {
    resp.op_responses().into_iter().find_map(|r| match r {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    })
}

/// The tag of the key in a transaction's `else` branch.
fn current_tag(resp: &etcd_client::TxnResponse) -> Option<String> {
    current_kv(resp).map(|kv| kv.mod_revision().to_string())
}

impl Remote for EtcdObjects {
    fn get(&self, rel: &str) -> io::Result<Option<(Vec<u8>, String)>> {
        let key = self.store.key(rel);
        self.block(async {
            let resp = self
                .store
                .call(|mut c| {
                    let key = key.clone();
                    async move { c.get(key, None).await }
                })
                .await?;
            Ok(resp
                .kvs()
                .first()
                .map(|kv| (kv.value().to_vec(), kv.mod_revision().to_string())))
        })
    }

    fn put(
        &self,
        rel: &str,
        bytes: &[u8],
        expect: &Expect,
    ) -> io::Result<Result<(String, bool), Mismatch>> {
        let key = self.store.key(rel);
        let cmp = match self.precondition(rel, &key, expect)? {
            Ok(c) => c,
            Err(m) => return Ok(Err(m)),
        };
        let new = Compare::version(key.as_str(), CompareOp::Equal, 0);
        self.block(async {
            // Two transactions' worth in one: the precondition (if any) decides whether
            // the write happens; whether the key was new comes from a nested compare.
            let write = Txn::new().when([new.clone()]).and_then([TxnOp::put(
                key.as_str(),
                bytes.to_vec(),
                None,
            )]);
            let write = write.or_else([TxnOp::put(key.as_str(), bytes.to_vec(), None)]);
            let txn = match &cmp {
                Some(c) => Txn::new()
                    .when([c.clone()])
                    .and_then([TxnOp::txn(write)])
                    .or_else([TxnOp::get(key.as_str(), None)]),
                None => write,
            };
            let (resp, tries) = self
                .store
                .call_tries(|mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            if cmp.is_some() && !resp.succeeded() {
                // A call tried again after its answer was lost may find its own write:
                // the object holds these bytes already, which is what was asked.
                if tries > 1
                    && let Some(kv) = current_kv(&resp)
                    && kv.value() == bytes
                {
                    return Ok(Ok((kv.mod_revision().to_string(), false)));
                }
                return Ok(Err(Mismatch(current_tag(&resp))));
            }
            self.store.wrote(rev);
            let created = match &cmp {
                None => resp.succeeded(),
                Some(_) => resp.op_responses().into_iter().any(|r| match r {
                    TxnOpResponse::Txn(t) => t.succeeded(),
                    _ => false,
                }),
            };
            Ok(Ok((rev.to_string(), created)))
        })
    }

    fn delete(&self, rel: &str, expect: &Expect) -> io::Result<Result<bool, Mismatch>> {
        let key = self.store.key(rel);
        let cmp = match self.precondition(rel, &key, expect)? {
            Ok(c) => c,
            Err(m) => return Ok(Err(m)),
        };
        self.block(async {
            let mut txn = Txn::new();
            if let Some(c) = &cmp {
                txn = txn.when([c.clone()]);
            }
            let txn = txn
                .and_then([TxnOp::delete(key.as_str(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let (resp, tries) = self
                .store
                .call_tries(|mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            if !resp.succeeded() {
                // Gone although a version was expected: perhaps this very delete, tried
                // again after its answer was lost. Gone is what was asked.
                if tries > 1 && matches!(expect, Expect::Tag(_)) && current_kv(&resp).is_none() {
                    return Ok(Ok(true));
                }
                return Ok(Err(Mismatch(current_tag(&resp))));
            }
            let deleted = resp.op_responses().into_iter().any(|r| match r {
                TxnOpResponse::Delete(d) => d.deleted() > 0,
                _ => false,
            });
            // Only a delete that deleted made a revision (the copy waits for it).
            if let (true, Some(h)) = (deleted, resp.header()) {
                self.store.wrote(h.revision());
            }
            Ok(Ok(deleted))
        })
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let base = self.store.key(&format!("{dir}/"));
        self.block(async {
            let resp = self
                .store
                .call(|mut c| {
                    let base = base.clone();
                    async move {
                        c.get(base, Some(GetOptions::new().with_prefix().with_keys_only()))
                            .await
                    }
                })
                .await?;
            let mut names: Vec<String> = resp
                .kvs()
                .iter()
                .filter_map(|kv| kv.key_str().ok())
                .filter_map(|k| k.strip_prefix(base.as_str()))
                .filter(|n| !n.contains('/'))
                .map(str::to_string)
                .collect();
            names.sort();
            Ok(names)
        })
    }
}
