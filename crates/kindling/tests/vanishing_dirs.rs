//! Directories that vanish (issue 14, "Operate"): `groups/` deleted, renamed or replaced
//! by a file keeps the last good groups in force, with a warning naming the path, until
//! it is back (then what is in it is served) or an explicit reload (SIGHUP) accepts that
//! it is gone. With file watching on, a recreated or renamed-back `groups/` is watched
//! again. The server never recreates the directory.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Scratch, Server, request};

/// A `kindling serve` with this configuration text (and `[reload] watch = true` when
/// `watch`), killed (by its PID) on drop.
struct Kindling(Server);

impl Kindling {
    fn start(data: &Path, work: &Path, config: &str, watch: bool) -> Kindling {
        let config = if watch {
            format!("{config}watch = true\n")
        } else {
            config.to_string()
        };
        Kindling(Server::start_with(data, work, &config, &[], |_| {}))
    }

    fn log_text(&self) -> String {
        self.0.log_text()
    }

    /// Waits (bounded) until `needle` is in the log `n` times or more.
    fn wait_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log_text().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {n} time(s); log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/ipxe` of the test machine: status and body.
    fn ipxe(&self) -> (u16, String) {
        match request(self.0.addr, "GET", "/ipxe?mac=52-54-00-00-00-01", &[], b"") {
            Ok(r) => (r.status, String::from_utf8_lossy(&r.body).into_owned()),
            Err(e) => (0, e),
        }
    }

    /// Asserts that the test machine gets the script with `kernel` now, ten times.
    fn assert_served(&self, kernel: &str) {
        for _ in 0..10 {
            let (status, body) = self.ipxe();
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(kernel), "{body}");
        }
    }

    /// Polls (bounded) until the test machine gets the script with `kernel`.
    fn wait_served(&self, kernel: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, body) = self.ipxe();
            if status == 200 && body.contains(kernel) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{kernel} never served (last: {status} {body}); log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.0.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -HUP failed");
    }
}

fn group(profile: &str) -> String {
    format!(r#"{{"id":"m1","profile":"{profile}","selector":{{"mac":"52:54:00:00:00:01"}}}}"#)
}

/// `groups/m1.json` (the test machine, profile p1) and profiles p1, p2, p3 (kernels
/// k1, k2, k3).
fn data_dir(root: &Path) -> PathBuf {
    let data = root.join("data");
    for d in [
        "groups", "profiles", "ignition", "generic", "cloud", "assets",
    ] {
        fs::create_dir_all(data.join(d)).expect("mkdir");
    }
    fs::write(data.join("groups/m1.json"), group("p1")).expect("group");
    for p in 1..=3 {
        fs::write(
            data.join(format!("profiles/p{p}.json")),
            format!(
                r#"{{"id":"p{p}","boot":{{"kernel":"/assets/k{p}","args":["console=ttyS0"]}}}}"#
            ),
        )
        .expect("profile");
    }
    data
}

/// Writes `groups/` anew (a new directory, then a rename, as a deployment would).
fn restore_groups(data: &Path, profile: &str) {
    let tmp = data.join(".groups.new");
    fs::create_dir_all(&tmp).expect("mkdir");
    fs::write(tmp.join("m1.json"), group(profile)).expect("group");
    fs::rename(&tmp, data.join("groups")).expect("rename");
}

/// Periodic re-checks only (no file watching): deleted, replaced by a file, restored.
#[test]
fn a_vanished_groups_dir_keeps_its_groups_until_it_is_back() {
    let scratch = Scratch::new("vanishing-groups");
    let data = data_dir(&scratch.root);
    let groups = data.join("groups");
    let k = Kindling::start(&data, &scratch.root, "[reload]\ninterval_secs = 1\n", false);
    k.assert_served("/assets/k1");

    // Deleted: still served, the warning names the path.
    fs::remove_dir_all(&groups).expect("delete groups/");
    k.wait_log(&format!("{} is missing", groups.display()), 1);
    k.assert_served("/assets/k1");
    assert!(k.log_text().contains(" WARN "), "a warning");
    assert!(!groups.exists(), "never recreated by the server");

    // Replaced by a file: still served, said once more.
    fs::write(&groups, "not a directory").expect("write a file");
    k.wait_log(&format!("{} is not a directory", groups.display()), 1);
    k.assert_served("/assets/k1");

    // Restored with changed content: the change is served.
    fs::remove_file(&groups).expect("remove the file");
    restore_groups(&data, "p2");
    k.wait_served("/assets/k2");
    k.wait_log("directory readable again", 1);
    k.assert_served("/assets/k2");
}

/// With file watching and no periodic re-check: a `groups/` renamed away and back, and
/// one recreated, are watched again (an edit inside is seen).
#[test]
fn watches_follow_a_groups_dir_renamed_back_or_recreated() {
    let scratch = Scratch::new("vanishing-watch");
    let data = data_dir(&scratch.root);
    let groups = data.join("groups");
    let k = Kindling::start(&data, &scratch.root, "[reload]\ninterval_secs = 0\n", true);
    k.assert_served("/assets/k1");
    let missing = format!("{} is missing", groups.display());

    // Renamed away: kept; renamed back: read again and watched again.
    fs::rename(&groups, data.join("groups.old")).expect("rename away");
    k.wait_log(&missing, 1);
    k.assert_served("/assets/k1");
    fs::rename(data.join("groups.old"), &groups).expect("rename back");
    k.wait_log("directory readable again", 1);
    // An edit inside the renamed-back directory: only a watch on it can see it.
    let tmp = data.join("m1.json.tmp");
    fs::write(&tmp, group("p2")).expect("write");
    fs::rename(&tmp, groups.join("m1.json")).expect("rename into groups/");
    k.wait_served("/assets/k2");

    // Deleted and recreated: the new directory is watched too.
    fs::remove_dir_all(&groups).expect("delete");
    k.wait_log(&missing, 2);
    k.assert_served("/assets/k2");
    fs::create_dir(&groups).expect("recreate");
    k.wait_log("directory readable again", 2);
    fs::write(groups.join("m1.json"), group("p3")).expect("write");
    k.wait_served("/assets/k3");
}

/// SIGHUP is an explicit reload: a missing `groups/` is taken as gone (nothing served
/// from it, as matchbox would do) until it is back.
#[test]
fn sighup_accepts_a_missing_groups_dir() {
    let scratch = Scratch::new("vanishing-sighup");
    let data = data_dir(&scratch.root);
    let groups = data.join("groups");
    let k = Kindling::start(&data, &scratch.root, "[reload]\ninterval_secs = 0\n", false);
    k.assert_served("/assets/k1");
    fs::remove_dir_all(&groups).expect("delete groups/");
    k.sighup();
    k.wait_log(
        "explicit reload: nothing is served from it (1 group dropped)",
        1,
    );
    let (status, body) = k.ipxe();
    assert_eq!(status, 404, "{body}");
    assert!(!groups.exists(), "never recreated by the server");
    restore_groups(&data, "p3");
    k.sighup();
    k.wait_served("/assets/k3");
}
