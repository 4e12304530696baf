//! Offline end-to-end tests of `kindling fcos` against a local fixture server.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kindling_fcos::cli::{FcosCommand, run};
use kindling_fcos::sync::{PullOptions, PullOutcome, RetryPolicy, pull, rollback, status};
use kindling_fcos::{FcosConfig, FcosError, FcosStatus, track};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SERVER: &str = "http://10.10.254.200:8080";

struct Env {
    fx: Fixture,
    key: TestKey,
    _tmp: tempfile::TempDir,
    data: PathBuf,
    keyring: PathBuf,
}

fn env() -> Env {
    let fx = Fixture::start();
    let key = TestKey::generate("Fedora CoreOS test key <test@kindling.invalid>");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for d in ["profiles", "groups", "assets", "ignition"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let keyring = key.write_keyring(&tmp.path().join("keys"));
    Env {
        fx,
        key,
        _tmp: tmp,
        data,
        keyring,
    }
}

impl Env {
    fn opts(&self) -> PullOptions {
        PullOptions {
            base_url: self.fx.base_url(),
            keyring: Some(self.keyring.clone()),
            server_url: Some(SERVER.into()),
            retry: RetryPolicy {
                attempts: 3,
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
            },
            ..PullOptions::new(&self.data, "stable")
        }
    }

    fn profile_path(&self) -> PathBuf {
        self.data.join("profiles/fedora-coreos-stable.json")
    }

    fn profile(&self) -> Value {
        serde_json::from_slice(&fs::read(self.profile_path()).unwrap()).unwrap()
    }

    fn asset(&self, rel: &Release, name: &str) -> PathBuf {
        self.data
            .join("assets/fedora-coreos/stable")
            .join(&rel.release)
            .join(name)
    }

    fn state(&self) -> Value {
        serde_json::from_slice(
            &fs::read(self.data.join("assets/fedora-coreos/stable/state.json")).unwrap(),
        )
        .unwrap()
    }
}

fn args(p: &Value) -> Vec<String> {
    serde_json::from_value(p["boot"]["args"].clone()).unwrap()
}

fn assert_boots(env: &Env, rel: &Release) {
    let p = env.profile();
    let dir = format!("/assets/fedora-coreos/stable/{}", rel.release);
    assert_eq!(p["id"], "fedora-coreos-stable");
    assert_eq!(p["boot"]["kernel"], format!("{dir}/{}", rel.kernel.0));
    assert_eq!(
        p["boot"]["initrd"][0],
        format!("--name main {dir}/{}", rel.initramfs.0)
    );
    let a = args(&p);
    assert!(a.contains(&"initrd=main".to_string()), "{a:?}");
    assert!(
        a.contains(&format!(
            "coreos.live.rootfs_url={SERVER}{dir}/{}",
            rel.rootfs.0
        )),
        "{a:?}"
    );
    assert!(a.contains(&"ignition.firstboot".to_string()));
    assert!(a.contains(&"ignition.platform.id=metal".to_string()));
    assert!(a.contains(&format!(
        "ignition.config.url={SERVER}/ignition?mac=${{mac:hexhyp}}"
    )));
    // Every asset the profile names is on disk, byte for byte upstream's.
    for (name, data) in rel.parts() {
        assert_eq!(&fs::read(env.asset(rel, name)).unwrap(), data, "{name}");
    }
    // And the server's own loader accepts it.
    let prof = kindling_model::Profile::parse(
        "fedora-coreos-stable",
        &fs::read(env.profile_path()).unwrap(),
    )
    .unwrap();
    assert_eq!(prof.id, "fedora-coreos-stable");
}

fn cli_pull(env: &Env) -> anyhow::Result<ExitCode> {
    run(
        FcosCommand::Pull {
            stream: "stable".into(),
            arch: None,
            profile: Vec::new(),
            keep: Some(2),
            insecure: false,
            base_url: Some(env.fx.base_url()),
            keyring: Some(env.keyring.clone()),
            server_url: Some(SERVER.into()),
            force: false,
        },
        &env.data,
    )
}

/// (1) pull, operator edits, newer release via pull, newer again via the
/// tracker, rollback; the operator's args and fields survive every switch.
#[test]
fn pull_update_track_and_rollback() {
    let env = env();
    let r1 = Release::new("42.20251001.3.0", 20_000);
    publish(&env.fx, &r1, &env.key);

    assert_eq!(cli_pull(&env).unwrap(), ExitCode::SUCCESS);
    assert_boots(&env, &r1);
    assert_eq!(env.state()["current"], r1.release.as_str());
    // The signatures are kept beside the files, and what was verified is recorded.
    assert!(env.asset(&r1, &format!("{}.sig", r1.rootfs.0)).is_file());
    let rec: Value =
        serde_json::from_slice(&fs::read(env.asset(&r1, "release.json")).unwrap()).unwrap();
    assert_eq!(rec["insecure"], false);
    assert_eq!(rec["signed_by"].as_array().unwrap().len(), 3);
    assert!(
        !env.data
            .join("assets/fedora-coreos/stable/.partial")
            .exists()
    );

    // A second pull of the same release changes nothing and downloads nothing.
    let before = fs::read(env.profile_path()).unwrap();
    env.fx.clear_log();
    assert_eq!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::UpToDate {
            release: r1.release.clone()
        }
    );
    assert_eq!(fs::read(env.profile_path()).unwrap(), before);
    assert_eq!(
        env.fx
            .log()
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        vec!["/streams/stable.json"]
    );

    // The operator adds the seed's arguments and an Ignition config.
    let mut p = env.profile();
    p["ignition_id"] = "fedora-core-1.ign".into();
    p["generic_id"] = "g".into();
    p["x-note"] = "kept".into();
    let a = p["boot"]["args"].as_array_mut().unwrap();
    a.insert(2, "selinux=0".into());
    a.push("systemd.unified_cgroup_hierarchy=0".into());
    a.push("console=ttyS0".into());
    fs::write(env.profile_path(), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    let operator_args = [
        "selinux=0",
        "systemd.unified_cgroup_hierarchy=0",
        "console=ttyS0",
    ];
    let check_operator = |env: &Env| {
        let p = env.profile();
        assert_eq!(p["ignition_id"], "fedora-core-1.ign");
        assert_eq!(p["generic_id"], "g");
        assert_eq!(p["x-note"], "kept");
        let a = args(&p);
        for o in operator_args {
            assert_eq!(a.iter().filter(|x| *x == o).count(), 1, "{o} in {a:?}");
        }
        assert_eq!(
            a.iter()
                .filter(|x| x.starts_with("coreos.live.rootfs_url="))
                .count(),
            1
        );
    };

    // Release 2 appears upstream (signed with the signing subkey): pull switches.
    let r2 = Release::new("42.20251015.3.0", 20_000);
    publish_files(&env.fx, &r2, &|d| env.key.sign_subkey(d));
    env.fx
        .put("/streams/stable.json", stream_json(&env.fx, &r2, None));
    match block_on(pull(&env.opts())).unwrap() {
        PullOutcome::Switched { from, to, dropped } => {
            assert_eq!(from.as_deref(), Some(r1.release.as_str()));
            assert_eq!(to, r2.release);
            assert!(dropped.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_boots(&env, &r2);
    check_operator(&env);
    assert!(!args(&env.profile()).iter().any(|a| a.contains(&r1.release)));

    // Release 3 appears: the tracker switches (keep 2: release 1 is deleted).
    let r3 = Release::new("42.20251029.3.0", 20_000);
    publish(&env.fx, &r3, &env.key);
    let status_handle = Arc::new(FcosStatus::new());
    let cfg = FcosConfig {
        streams: vec!["stable".into()],
        base_url: env.fx.base_url(),
        keyring: Some(env.keyring.clone()),
        server_url: Some(SERVER.into()),
        interval_secs: 3600,
        ..FcosConfig::default()
    };
    run_tracker_until(&env, cfg.clone(), status_handle.clone(), |s| {
        s.current.as_deref() == Some(r3.release.as_str())
    });
    let snap = status_handle.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].switches, 1);
    assert_eq!(snap[0].last_error, None);
    assert_boots(&env, &r3);
    check_operator(&env);
    assert!(
        !env.data
            .join("assets/fedora-coreos/stable")
            .join(&r1.release)
            .exists()
    );
    assert_eq!(
        env.state()["releases"],
        serde_json::json!([r3.release, r2.release])
    );

    // Rollback: back to release 2, through the CLI.
    let rb = run(
        FcosCommand::Rollback {
            stream: "stable".into(),
            arch: None,
            server_url: None,
        },
        &env.data,
    )
    .unwrap();
    assert_eq!(rb, ExitCode::SUCCESS);
    assert_boots(&env, &r2);
    check_operator(&env);
    assert_eq!(env.state()["current"], r2.release.as_str());
    // No older release is kept: a second rollback is refused.
    assert!(rollback(&env.data, &stable(), None).is_err());
    assert_boots(&env, &r2);

    // The tracker does not switch back to the release rolled back from...
    let before = fs::read(env.profile_path()).unwrap();
    assert_eq!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Skipped {
            release: r3.release.clone(),
            current: Some(r2.release.clone())
        }
    );
    assert_eq!(fs::read(env.profile_path()).unwrap(), before);
    let st = block_on(status(&env.data, &stable(), &env.fx.base_url(), false)).unwrap();
    assert_eq!(st.current.as_deref(), Some(r2.release.as_str()));
    assert_eq!(st.kept, vec![r3.release.clone(), r2.release.clone()]);
    assert_eq!(st.upstream.as_deref(), Some(r3.release.as_str()));
    assert!(!st.update_available);
    // ...but `status` reports a newer one once it appears, and pull takes it.
    let r4 = Release::new("42.20251112.3.0", 20_000);
    publish(&env.fx, &r4, &env.key);
    let st = block_on(status(&env.data, &stable(), &env.fx.base_url(), false)).unwrap();
    assert!(st.update_available);
    assert_eq!(cli_pull(&env).unwrap(), ExitCode::SUCCESS);
    assert_boots(&env, &r4);
    check_operator(&env);
    // Keep 2 drops the release rolled back from first.
    assert_eq!(
        env.state()["releases"],
        serde_json::json!([r4.release, r2.release])
    );
    assert!(
        !env.data
            .join("assets/fedora-coreos/stable")
            .join(&r3.release)
            .exists()
    );
}

fn run_tracker_until(
    env: &Env,
    cfg: FcosConfig,
    st: Arc<FcosStatus>,
    done: impl Fn(&kindling_fcos::FcosTrack) -> bool,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let h = rt.spawn(track(cfg, env.data.clone(), st.clone(), cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snap = st.snapshot();
        if let Some(s) = snap.first() {
            if done(s) {
                break;
            }
            assert!(s.last_error.is_none(), "tracker failed: {:?}", s.last_error);
        }
        assert!(
            Instant::now() < deadline,
            "tracker did not finish: {snap:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cancel.cancel();
    rt.block_on(h).unwrap();
}

/// Snapshot of everything a refused pull must leave alone.
fn snapshot(env: &Env) -> (Vec<u8>, Vec<u8>, Vec<String>) {
    let profile = fs::read(env.profile_path()).unwrap();
    let state = fs::read(env.data.join("assets/fedora-coreos/stable/state.json")).unwrap();
    let mut dirs: Vec<String> = fs::read_dir(env.data.join("assets/fedora-coreos/stable"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    dirs.sort();
    (profile, state, dirs)
}

/// (2) corrupted artifact, bad signature (other key), forged signature (right
/// key, other data), missing signature, rootfs of another release: each is
/// refused, nothing is switched, the profile stays byte-identical; the
/// tracker records the error and leaves the profile alone too.
#[test]
fn bad_releases_are_refused_and_nothing_switches() {
    let env = env();
    let r1 = Release::new("42.20251001.3.0", 10_000);
    publish(&env.fx, &r1, &env.key);
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    let good = snapshot(&env);
    let other = TestKey::generate("Mallory <m@kindling.invalid>");

    let refused = |label: &str, check: &dyn Fn(&FcosError) -> bool| {
        let err = block_on(pull(&env.opts())).expect_err(label);
        assert!(check(&err), "{label}: unexpected error {err}");
        assert_eq!(snapshot(&env), good, "{label}: something changed");
        assert_boots(&env, &r1);
        eprintln!("{label}: refused: {err}");
    };

    // Corrupted rootfs (the metadata's sha256 is of the real one).
    let r = Release::new("42.20251002.3.0", 10_000);
    publish(&env.fx, &r, &env.key);
    let mut bad = r.rootfs.1.clone();
    bad[5000] ^= 0xff;
    env.fx.put(&r.path(&r.rootfs.0), bad.clone());
    env.fx
        .put(&format!("{}.sig", r.path(&r.rootfs.0)), env.key.sign(&bad));
    refused("corrupted artifact", &|e| {
        matches!(e, FcosError::Checksum { .. })
    });
    // The corrupted data is gone, not left as a .part to resume from.
    let part = env
        .data
        .join("assets/fedora-coreos/stable/.partial")
        .join(&r.release)
        .join(format!("{}.part", r.rootfs.0));
    assert!(!part.exists());
    // --insecure skips signatures, never the sha256.
    let mut o = env.opts();
    o.insecure = true;
    assert!(matches!(
        block_on(pull(&o)),
        Err(FcosError::Checksum { .. })
    ));
    assert_eq!(snapshot(&env), good);

    // Signature by a key not in the keyring.
    let r = Release::new("42.20251003.3.0", 10_000);
    publish(&env.fx, &r, &env.key);
    env.fx.put(
        &format!("{}.sig", r.path(&r.kernel.0)),
        other.sign(&r.kernel.1),
    );
    refused("bad signature (unknown key)", &|e| {
        matches!(e, FcosError::SignatureInvalid { .. })
    });

    // Forged: a real signature by the right key, but over other data.
    let r = Release::new("42.20251004.3.0", 10_000);
    publish(&env.fx, &r, &env.key);
    env.fx.put(
        &format!("{}.sig", r.path(&r.initramfs.0)),
        env.key.sign(b"something else"),
    );
    refused("forged signature", &|e| {
        matches!(e, FcosError::SignatureInvalid { .. })
    });
    // Garbage instead of a signature.
    env.fx.put(
        &format!("{}.sig", r.path(&r.initramfs.0)),
        b"-----BEGIN PGP SIGNATURE-----\nxx\n".to_vec(),
    );
    refused("garbage signature", &|e| {
        matches!(e, FcosError::SignatureInvalid { .. })
    });

    // Missing signature.
    let r = Release::new("42.20251005.3.0", 10_000);
    publish(&env.fx, &r, &env.key);
    env.fx.remove(&format!("{}.sig", r.path(&r.rootfs.0)));
    refused("missing signature", &|e| {
        matches!(e, FcosError::SignatureMissing { .. })
    });

    // Release mismatch: the rootfs location is another (real, signed) release's.
    let r = Release::new("42.20251006.3.0", 10_000);
    publish_files(&env.fx, &r, &|d| env.key.sign(d));
    env.fx
        .put("/streams/stable.json", stream_json(&env.fx, &r, Some(&r1)));
    env.fx.clear_log();
    refused("rootfs of another release", &|e| {
        matches!(
            e,
            FcosError::ReleaseMismatch {
                artifact: "rootfs",
                ..
            }
        )
    });
    // Refused before downloading anything.
    assert!(
        env.fx
            .log()
            .iter()
            .all(|q| q.path == "/streams/stable.json"),
        "{:?}",
        env.fx.log()
    );

    // The tracker meets the same bad release: it records the error, switches nothing.
    let st = Arc::new(FcosStatus::new());
    let cfg = FcosConfig {
        streams: vec!["stable".into()],
        base_url: env.fx.base_url(),
        keyring: Some(env.keyring.clone()),
        server_url: Some(SERVER.into()),
        ..FcosConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let h = rt.spawn(track(cfg, env.data.clone(), st.clone(), cancel.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while st.snapshot().first().is_none_or(|s| s.last_error.is_none()) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    cancel.cancel();
    rt.block_on(h).unwrap();
    let s = &st.snapshot()[0];
    assert_eq!(s.current.as_deref(), Some(r1.release.as_str()));
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .contains("release mismatch"),
        "{s:?}"
    );
    assert_eq!(s.failures, 1);
    assert_eq!(snapshot(&env), good);

    // Then a good release goes through.
    let r = Release::new("42.20251007.3.0", 10_000);
    publish(&env.fx, &r, &env.key);
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(&env, &r);
}

/// Without a signature and with --insecure the release is accepted (the
/// sha256 still checked), and release.json says so.
#[test]
fn insecure_is_explicit() {
    let env = env();
    let r1 = Release::new("42.20251001.3.0", 10_000);
    publish(&env.fx, &r1, &env.key);
    env.fx.remove(&format!("{}.sig", r1.path(&r1.kernel.0)));
    assert!(matches!(
        block_on(pull(&env.opts())),
        Err(FcosError::SignatureMissing { .. })
    ));
    assert!(!env.profile_path().exists());
    let mut o = env.opts();
    o.insecure = true;
    o.keyring = Some(PathBuf::from("/nonexistent"));
    assert!(matches!(
        block_on(pull(&o)).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(&env, &r1);
    let rec: Value =
        serde_json::from_slice(&fs::read(env.asset(&r1, "release.json")).unwrap()).unwrap();
    assert_eq!(rec["insecure"], true);
    // A later pull with signatures does not trust the unsigned release: it
    // downloads it again and refuses it while the signature is missing.
    assert!(matches!(
        block_on(pull(&env.opts())),
        Err(FcosError::SignatureMissing { .. })
    ));
    assert_boots(&env, &r1);
    env.fx.put(
        &format!("{}.sig", r1.path(&r1.kernel.0)),
        env.key.sign(&r1.kernel.1),
    );
    assert_eq!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::UpToDate {
            release: r1.release.clone()
        }
    );
    let rec: Value =
        serde_json::from_slice(&fs::read(env.asset(&r1, "release.json")).unwrap()).unwrap();
    assert_eq!(rec["insecure"], false);
    // Without --insecure, a missing keyring is an error, not a silent skip.
    let mut o = env.opts();
    o.keyring = Some(PathBuf::from("/nonexistent"));
    assert!(block_on(pull(&o)).is_err());
    // A server URL is required when there is no profile to take it from.
    let env2 = self::env();
    publish(&env2.fx, &r1, &env2.key);
    let mut o = env2.opts();
    o.server_url = None;
    assert!(matches!(block_on(pull(&o)), Err(FcosError::NoServerUrl)));
}

fn range_requests(fx: &Fixture, path: &str) -> Vec<Option<u64>> {
    fx.log()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| r.range_start)
        .collect()
}

/// (3) a download cut off halfway resumes from where it stopped: within one
/// pull (retry) and across pulls (the .part file survives a failed run).
#[test]
fn interrupted_download_resumes_with_range() {
    let env = env();
    let r1 = Release::new("42.20251001.3.0", 300_000);
    publish(&env.fx, &r1, &env.key);
    let rootfs = r1.path(&r1.rootfs.0);
    let cut = 150_000usize;

    // Within one pull: the retry asks for the rest.
    env.fx.cut_once(&rootfs, cut);
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(&env, &r1);
    assert_eq!(
        range_requests(&env.fx, &rootfs),
        vec![None, Some(cut as u64)]
    );

    // Across runs: one attempt only, so the first pull fails and switches nothing.
    let r2 = Release::new("42.20251015.3.0", 300_000);
    publish(&env.fx, &r2, &env.key);
    let rootfs2 = r2.path(&r2.rootfs.0);
    let cut2 = 120_000usize;
    env.fx.cut_once(&rootfs2, cut2);
    let mut o = env.opts();
    o.retry.attempts = 1;
    let before = fs::read(env.profile_path()).unwrap();
    let err = block_on(pull(&o)).expect_err("cut download");
    assert!(err.is_transient(), "{err}");
    assert_eq!(fs::read(env.profile_path()).unwrap(), before);
    let part = env
        .data
        .join("assets/fedora-coreos/stable/.partial")
        .join(&r2.release)
        .join(format!("{}.part", r2.rootfs.0));
    assert_eq!(fs::metadata(&part).unwrap().len(), cut2 as u64);
    assert!(
        !env.data
            .join("assets/fedora-coreos/stable")
            .join(&r2.release)
            .exists()
    );
    // The next pull resumes at the cut and completes.
    assert!(matches!(
        block_on(pull(&o)).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(&env, &r2);
    assert_eq!(
        range_requests(&env.fx, &rootfs2),
        vec![None, Some(cut2 as u64)]
    );
    // Kernel and initramfs were verified in the first run and not fetched again.
    assert_eq!(range_requests(&env.fx, &r2.path(&r2.kernel.0)), vec![None]);
    assert!(!part.exists());

    // A server without Range support: the retry gets the whole file again
    // (200) and the download starts over instead of appending.
    let r3 = Release::new("42.20251029.3.0", 300_000);
    publish(&env.fx, &r3, &env.key);
    let rootfs3 = r3.path(&r3.rootfs.0);
    env.fx.state.lock().unwrap().ignore_range = true;
    env.fx.cut_once(&rootfs3, 100_000);
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(&env, &r3);
    assert_eq!(range_requests(&env.fx, &rootfs3), vec![None, Some(100_000)]);
}

#[test]
fn concurrent_pull_is_refused_by_the_lock() {
    let env = env();
    let r1 = Release::new("42.20251001.3.0", 1000);
    publish(&env.fx, &r1, &env.key);
    let dir = env.data.join("assets/fedora-coreos/stable");
    fs::create_dir_all(&dir).unwrap();
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))
        .unwrap();
    f.lock().unwrap();
    assert!(matches!(
        block_on(pull(&env.opts())),
        Err(FcosError::Locked(_))
    ));
    drop(f);
    assert!(block_on(pull(&env.opts())).is_ok());
    let _ = Path::new("");
}

/// Pulls a first release (it boots), then publishes a second whose rootfs
/// download is cut in a one-attempt pull: its kernel and initramfs are left
/// verified under their final names in `.partial/<release>/`, returned.
fn stage_kernel_and_initramfs(env: &Env) -> (Release, Release, PathBuf) {
    let r1 = Release::new("42.20251001.3.0", 20_000);
    publish(&env.fx, &r1, &env.key);
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(env, &r1);
    let r2 = Release::new("42.20251015.3.0", 300_000);
    publish(&env.fx, &r2, &env.key);
    env.fx.cut_once(&r2.path(&r2.rootfs.0), 100_000);
    let mut once = env.opts();
    once.retry.attempts = 1;
    block_on(pull(&once)).expect_err("cut download");
    let staging = env
        .data
        .join("assets/fedora-coreos/stable/.partial")
        .join(&r2.release);
    for (name, data) in [&r2.kernel, &r2.initramfs] {
        assert_eq!(&fs::read(staging.join(name)).unwrap(), data, "{name}");
    }
    (r1, r2, staging)
}

/// A pull switches to `rel`, fetching its kernel once more (from the start).
fn resumed_pull_fetches_kernel_and_boots(env: &Env, rel: &Release) {
    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    assert_boots(env, rel);
    assert_eq!(
        range_requests(&env.fx, &rel.path(&rel.kernel.0)),
        vec![None]
    );
}

/// Issue 15 item 3: files a failed pull left verified under their final
/// names in `.partial/` are not trusted by the next pull. A truncated kernel
/// and a corrupted initramfs planted there are hashed again, deleted and
/// fetched again; when the fresh copy is bad too the pull fails naming the
/// file and both digests, and the previous release stays in force.
#[test]
fn resumed_pull_rehashes_staged_files() {
    let env = env();
    let (r1, r2, staging) = stage_kernel_and_initramfs(&env);
    let kernel = staging.join(&r2.kernel.0);
    let initramfs = staging.join(&r2.initramfs.0);

    // Damage them in place: a truncated kernel, an initramfs with one byte flipped.
    let truncated = r2.kernel.1[..1000].to_vec();
    fs::write(&kernel, &truncated).unwrap();
    let mut corrupted = r2.initramfs.1.clone();
    corrupted[4000] ^= 0xff;
    fs::write(&initramfs, &corrupted).unwrap();
    let profile_before = fs::read(env.profile_path()).unwrap();
    let state_before = env.state();

    // Upstream now serves the same truncated kernel: fetched again once, it
    // fails its sha256, and the error names the file and both digests.
    env.fx.put(&r2.path(&r2.kernel.0), truncated.clone());
    env.fx.clear_log();
    let err = block_on(pull(&env.opts())).expect_err("bad kernel upstream");
    match &err {
        FcosError::Checksum {
            file,
            expected,
            actual,
        } => {
            assert_eq!(file, &r2.kernel.0);
            assert_eq!(expected, &sha256_hex(&r2.kernel.1));
            assert_eq!(actual, &sha256_hex(&truncated));
        }
        e => panic!("expected a checksum error, got {e}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&r2.kernel.0), "{msg}");
    assert!(msg.contains(&sha256_hex(&r2.kernel.1)), "{msg}");
    assert_eq!(range_requests(&env.fx, &r2.path(&r2.kernel.0)), vec![None]);
    // Nothing switched: r1 is still served, byte for byte.
    assert_eq!(fs::read(env.profile_path()).unwrap(), profile_before);
    assert_eq!(env.state(), state_before);
    assert_eq!(env.state()["current"], r1.release.as_str());
    assert!(
        !env.data
            .join("assets/fedora-coreos/stable")
            .join(&r2.release)
            .exists()
    );
    assert_boots(&env, &r1);
    assert!(!kernel.exists(), "the bad kernel is not left staged");
    assert_eq!(fs::read(&initramfs).unwrap(), corrupted);

    // With upstream good again the resumed pull fetches both damaged files
    // anew, resumes the rootfs, and what it switches to hashes correctly.
    env.fx.put(&r2.path(&r2.kernel.0), r2.kernel.1.clone());
    env.fx.clear_log();
    resumed_pull_fetches_kernel_and_boots(&env, &r2);
    assert_eq!(
        range_requests(&env.fx, &r2.path(&r2.initramfs.0)),
        vec![None]
    );
    assert_eq!(
        range_requests(&env.fx, &r2.path(&r2.rootfs.0)),
        vec![Some(100_000)]
    );
    for (name, data) in r2.parts() {
        assert_eq!(
            sha256_hex(&fs::read(env.asset(&r2, name)).unwrap()),
            sha256_hex(data),
            "{name}"
        );
    }
    // The record names the signer of all three files, the re-checked ones too.
    let record: Value =
        serde_json::from_slice(&fs::read(env.asset(&r2, "release.json")).unwrap()).unwrap();
    assert_eq!(record["signed_by"].as_array().unwrap().len(), 3);
    assert!(!staging.exists());
}

/// A staged file whose bytes are right but whose kept signature is not by a
/// key of the keyring is not promoted either: it is fetched again, with its
/// signature, and verified like a fresh download.
#[test]
fn resumed_pull_reverifies_staged_signatures() {
    let env = env();
    let (_, r2, staging) = stage_kernel_and_initramfs(&env);
    let sig = staging.join(format!("{}.sig", r2.kernel.0));
    let stranger = TestKey::generate("Someone else <x@kindling.invalid>");
    fs::write(&sig, stranger.sign(&r2.kernel.1)).unwrap();
    env.fx.clear_log();
    resumed_pull_fetches_kernel_and_boots(&env, &r2);
    // The initramfs was fine: hashed and verified again, not fetched.
    assert!(range_requests(&env.fx, &r2.path(&r2.initramfs.0)).is_empty());
    // The stranger's signature is gone; upstream's is kept beside the kernel.
    let upstream_sig =
        env.fx.state.lock().unwrap().files[&format!("{}.sig", r2.path(&r2.kernel.0))].clone();
    assert_eq!(
        fs::read(env.asset(&r2, &format!("{}.sig", r2.kernel.0))).unwrap(),
        upstream_sig
    );
    let record: Value =
        serde_json::from_slice(&fs::read(env.asset(&r2, "release.json")).unwrap()).unwrap();
    let signers = record["signed_by"].as_array().unwrap();
    assert_eq!(signers.len(), 3);
    assert!(signers.iter().all(|s| *s == signers[0]), "{signers:?}");
}

#[test]
fn truncated_profile_fails_the_pull_before_any_download_naming_the_file() {
    let e = env();
    let rel = Release::new("43.20251101.3.0", 200_000);
    publish(&e.fx, &rel, &e.key);
    // A profile cut off mid-write (as a full disk or a crash leaves it).
    let broken = b"{\n  \"id\": \"fedora-coreos-stable\",\n  \"boot\": {\n    \"kernel\": \"/assets/fedora-coreos/stable/4";
    fs::write(e.profile_path(), broken).unwrap();
    // No --server-url: before the fix the pull asked for one instead.
    let opts = PullOptions {
        server_url: None,
        ..e.opts()
    };
    let err = block_on(pull(&opts)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, FcosError::Profile { .. }), "{text}");
    assert!(
        text.contains(&e.profile_path().display().to_string()),
        "{text}"
    );
    assert!(text.contains("line 4 column"), "{text}");
    assert_eq!(
        text,
        format!(
            "profile {}: not valid JSON: EOF while parsing a string at line 4 column 45; repair it or delete it (the next pull writes a new one)",
            e.profile_path().display()
        )
    );
    assert!(text.contains("repair it or delete it"), "{text}");
    assert!(!text.contains("server URL"), "{text}");
    // Nothing was asked of upstream, nothing staged, nothing changed.
    assert_eq!(e.fx.log(), Vec::<Req>::new());
    assert!(!e.data.join("assets/fedora-coreos/stable").exists());
    assert_eq!(fs::read(e.profile_path()).unwrap(), broken);

    // With --server-url too: the same refusal, still before any request.
    let err = block_on(pull(&e.opts())).unwrap_err();
    assert!(matches!(err, FcosError::Profile { .. }), "{err}");
    assert_eq!(e.fx.log(), Vec::<Req>::new());

    // Deleted, the next pull writes a new one.
    fs::remove_file(e.profile_path()).unwrap();
    block_on(pull(&e.opts())).unwrap();
    assert_eq!(e.profile()["id"], "fedora-coreos-stable");
}

#[test]
fn keep_zero_is_refused_not_read_as_one() {
    let e = env();
    let rel = Release::new("43.20251101.3.0", 200_000);
    publish(&e.fx, &rel, &e.key);
    let opts = PullOptions {
        keep: 0,
        ..e.opts()
    };
    let err = block_on(pull(&opts)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, FcosError::Invalid { what: "keep", .. }),
        "{text}"
    );
    assert!(text.contains("current release"), "{text}");
    assert_eq!(e.fx.log(), Vec::<Req>::new());

    // `[fcos] keep = 0` is refused by the config check, naming the key.
    let cfg = FcosConfig {
        keep: 0,
        ..FcosConfig::default()
    };
    let text = cfg.validate().unwrap_err().to_string();
    assert!(text.contains("fcos.keep"), "{text}");
    assert!(FcosConfig::default().validate().is_ok());

    // `--keep 0` is refused by the command line; `--keep 1` is accepted.
    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: FcosCommand,
    }
    use clap::Parser;
    let err = Cli::try_parse_from(["fcos", "pull", "--keep", "0"]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--keep"), "{text}");
    assert!(text.contains("current release"), "{text}");
    let ok = Cli::try_parse_from(["fcos", "pull", "--keep", "1"]).unwrap();
    assert!(matches!(ok.cmd, FcosCommand::Pull { keep: Some(1), .. }));

    // keep 1: the current release stays, no older one.
    let opts = PullOptions {
        keep: 1,
        ..e.opts()
    };
    block_on(pull(&opts)).unwrap();
    let rel2 = Release::new("43.20251115.3.0", 200_000);
    publish(&e.fx, &rel2, &e.key);
    let out = block_on(pull(&opts)).unwrap();
    assert_eq!(
        out,
        PullOutcome::Switched {
            from: Some(rel.release.clone()),
            to: rel2.release.clone(),
            dropped: vec![rel.release.clone()],
        }
    );
    assert!(!e.asset(&rel, "").exists());
    assert!(e.asset(&rel2, &rel2.parts()[0].0).is_file());
}

fn stable() -> kindling_fcos::state::Track {
    kindling_fcos::state::Track::new("stable", "x86_64").unwrap()
}

/// The seed's profile, as the blog post has it (no rootfs: 2020's live PXE).
const SEED_PROFILE: &str = include_str!("data/seed-fedora-core-1.json");

/// `text` with what a release owns blanked out: every JSON string naming a
/// live kernel, initramfs or rootfs, and the `coreos.live.rootfs_url`
/// argument with the separator before it. What is left must never change.
fn without_release_owned(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut end = 0;
        let b = after.as_bytes();
        while end < b.len() && b[end] != b'"' {
            end += if b[end] == b'\\' { 2 } else { 1 };
        }
        let s = &after[..end];
        if s.starts_with("coreos.live.rootfs_url=") {
            // Drop the `,<spacing>` that was added before it.
            let trimmed = out.trim_end().trim_end_matches(',').len();
            out.truncate(trimmed);
        } else if s.contains("-live-kernel") || s.contains("-live-initramfs") {
            out.push_str("\"<release-owned>\"");
        } else {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        rest = &after[(end + 1).min(after.len())..];
    }
    out.push_str(rest);
    out
}

/// (Issue 15, must-show 2) The seed's own `fedora-core-1` profile kept
/// current: by `pull --profile`, then by the tracker (remembered), then by
/// a rollback. Only the release-owned strings change; the rest of the file
/// is the operator's, byte for byte.
#[test]
fn operator_profile_kept_current_byte_for_byte() {
    let env = env();
    let seed_path = env.data.join("profiles/fedora-core-1.json");
    fs::write(&seed_path, SEED_PROFILE).unwrap();
    let r1 = Release::new("42.20251001.3.0", 20_000);
    publish(&env.fx, &r1, &env.key);

    let cmd = |profile: Vec<String>| FcosCommand::Pull {
        stream: "stable".into(),
        arch: None,
        profile,
        keep: Some(2),
        insecure: false,
        base_url: Some(env.fx.base_url()),
        keyring: Some(env.keyring.clone()),
        server_url: None,
        force: false,
    };
    // No profile and no --server-url: the server URL comes from the seed's
    // ignition.config.url.
    assert_eq!(
        run(cmd(vec!["fedora-core-1".into()]), &env.data).unwrap(),
        ExitCode::SUCCESS
    );
    let check = |rel: &Release| {
        let text = fs::read_to_string(&seed_path).unwrap();
        assert_eq!(
            without_release_owned(&text),
            without_release_owned(SEED_PROFILE),
            "only release-owned strings may change:\n{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let dir = format!("/assets/fedora-coreos/stable/{}", rel.release);
        assert_eq!(v["boot"]["kernel"], format!("{dir}/{}", rel.kernel.0));
        assert_eq!(
            v["boot"]["initrd"],
            serde_json::json!([format!("{dir}/{}", rel.initramfs.0)])
        );
        let a = args(&v);
        assert_eq!(
            a.last().unwrap(),
            &format!("coreos.live.rootfs_url={SERVER}{dir}/{}", rel.rootfs.0)
        );
        assert_eq!(v["ignition_id"], "fedora-core-1.ign");
        // The server's own loader accepts it.
        kindling_model::Profile::parse("fedora-core-1", text.as_bytes()).unwrap();
        // And every file it names is there.
        for (name, data) in rel.parts() {
            assert_eq!(&fs::read(env.asset(rel, name)).unwrap(), data, "{name}");
        }
    };
    check(&r1);
    assert_boots(&env, &r1);
    assert_eq!(
        env.state()["profiles"],
        serde_json::json!(["fedora-core-1"])
    );

    // A newer release through the tracker, which was told nothing about the
    // profile: the state remembers it.
    let r2 = Release::new("42.20251015.3.0", 20_000);
    publish(&env.fx, &r2, &env.key);
    let st = Arc::new(FcosStatus::new());
    let cfg = FcosConfig {
        streams: vec!["stable".into()],
        base_url: env.fx.base_url(),
        keyring: Some(env.keyring.clone()),
        interval_secs: 3600,
        ..FcosConfig::default()
    };
    run_tracker_until(&env, cfg, st, |s| {
        s.current.as_deref() == Some(r2.release.as_str())
    });
    check(&r2);

    // Rollback takes it back too.
    rollback(&env.data, &stable(), None).unwrap();
    check(&r1);

    // A profile of another architecture is refused before any download.
    let arm = env.data.join("profiles/arm-1.json");
    fs::write(
        &arm,
        SEED_PROFILE.replace("live-kernel-x86_64", "live-kernel-aarch64"),
    )
    .unwrap();
    env.fx.clear_log();
    let e = run(cmd(vec!["arm-1".into()]), &env.data).unwrap_err();
    assert!(format!("{e:#}").contains("it boots aarch64"), "{e:#}");
    assert!(env.fx.log().is_empty(), "{:?}", env.fx.log());
    // A missing one too, naming the file.
    let e = run(cmd(vec!["nope".into()]), &env.data).unwrap_err();
    assert!(format!("{e:#}").contains("nope.json"), "{e:#}");

    // Re-pointed at something else by the operator: no longer kept current.
    fs::write(
        &seed_path,
        SEED_PROFILE.replace(
            "/assets/fedora-coreos-31.20200407.3.0-live-kernel-x86_64",
            "/assets/debian/vmlinuz",
        ),
    )
    .unwrap();
    let before = fs::read(&seed_path).unwrap();
    block_on(pull(&PullOptions {
        force: true,
        ..env.opts()
    }))
    .unwrap();
    assert_eq!(fs::read(&seed_path).unwrap(), before);
    assert_eq!(env.state()["profiles"], serde_json::json!([]));
}

/// (Issue 15, must-show 1, files side) x86_64 and aarch64 of one stream
/// pulled one after the other: two profiles, two asset directories, two
/// states, each agreeing with its release records; the second pull leaves
/// the first architecture's profile untouched.
#[test]
fn architectures_are_tracked_apart() {
    let env = env();
    let x = Release::for_arch("43.20261101.3.0", "x86_64", 10_000);
    let a = Release::for_arch("43.20261101.3.0", "aarch64", 12_000);
    for r in [&x, &a] {
        publish_files(&env.fx, r, &|d| env.key.sign(d));
    }
    env.fx.put(
        "/streams/stable.json",
        stream_json_arches(&env.fx, &[&x, &a]),
    );

    assert!(matches!(
        block_on(pull(&env.opts())).unwrap(),
        PullOutcome::Switched { .. }
    ));
    let x_profile = fs::read(env.profile_path()).unwrap();
    assert!(matches!(
        block_on(pull(&PullOptions {
            arch: "aarch64".into(),
            ..env.opts()
        }))
        .unwrap(),
        PullOutcome::Switched { .. }
    ));
    // The aarch64 pull did not touch the x86_64 profile.
    assert_eq!(fs::read(env.profile_path()).unwrap(), x_profile);
    assert_boots(&env, &x);

    for (rel, dir, id) in [
        (&x, "stable", "fedora-coreos-stable"),
        (&a, "stable-aarch64", "fedora-coreos-stable-aarch64"),
    ] {
        let sdir = env.data.join("assets/fedora-coreos").join(dir);
        let state: Value =
            serde_json::from_slice(&fs::read(sdir.join("state.json")).unwrap()).unwrap();
        let record: Value = serde_json::from_slice(
            &fs::read(sdir.join(&rel.release).join("release.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(state["arch"], rel.arch.as_str());
        assert_eq!(record["arch"], rel.arch.as_str());
        assert_eq!(state["current"], rel.release.as_str());
        assert_eq!(record["release"], rel.release.as_str());
        let p: Value = serde_json::from_slice(
            &fs::read(env.data.join("profiles").join(format!("{id}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(p["id"], id);
        let kdir = format!("/assets/fedora-coreos/{dir}/{}", rel.release);
        assert_eq!(p["boot"]["kernel"], format!("{kdir}/{}", rel.kernel.0));
        assert!(
            args(&p).contains(&format!(
                "coreos.live.rootfs_url={SERVER}{kdir}/{}",
                rel.rootfs.0
            )),
            "{p}"
        );
        for (name, data) in rel.parts() {
            assert_eq!(&fs::read(sdir.join(&rel.release).join(name)).unwrap(), data);
        }
        kindling_model::Profile::parse(id, &serde_json::to_vec(&p).unwrap()).unwrap();
    }

    // `status` with no stream named reports both tracks found on disk.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "status_child", "--nocapture"])
        .env("KINDLING_TEST_STATUS_DATA", &env.data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stream:   stable (x86_64)"), "{text}");
    assert!(text.contains("stream:   stable (aarch64)"), "{text}");

    // An x86_64 directory an older Kindling filled with aarch64 is refused.
    let sdir = env.data.join("assets/fedora-coreos/stable");
    let st = fs::read_to_string(sdir.join("state.json")).unwrap();
    fs::write(
        sdir.join("state.json"),
        st.replace("\"x86_64\"", "\"aarch64\""),
    )
    .unwrap();
    let e = block_on(pull(&env.opts())).unwrap_err();
    assert!(e.to_string().contains("holds aarch64 releases"), "{e}");
}

/// Runs `kindling fcos status --offline` on the data directory a parent
/// test names (a child process: the CLI prints to stdout).
#[test]
fn status_child() {
    let Ok(data) = std::env::var("KINDLING_TEST_STATUS_DATA") else {
        return;
    };
    let code = run(
        FcosCommand::Status {
            stream: Vec::new(),
            arch: None,
            offline: true,
            json: false,
            base_url: None,
        },
        Path::new(&data),
    )
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
}
