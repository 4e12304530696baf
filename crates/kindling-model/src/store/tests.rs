use std::fs;
use std::path::{Path, PathBuf};

use super::confined::*;
use super::loader::*;
use super::*;
use crate::labels::Labels;

/// A fresh directory of its own, removed when dropped (even when the test fails).
fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kindling-model-")
        .tempdir()
        .unwrap()
}

#[test]
fn clean_within_rules() {
    assert_eq!(
        clean_within("a/b.ign", "ignition"),
        Some(vec!["a".into(), "b.ign".into()])
    );
    assert_eq!(
        clean_within("/x.ign", "ignition"),
        Some(vec!["x.ign".into()])
    );
    assert_eq!(
        clean_within("../ignition/x.ign", "ignition"),
        Some(vec!["x.ign".into()])
    );
    assert_eq!(clean_within("../profiles/x.json", "ignition"), None);
    assert_eq!(clean_within("../../etc/passwd", "ignition"), None);
    assert_eq!(clean_within("a/../../x", "ignition"), None);
}

/// A data directory with one group, `groups/a.json`: (its root, the group's file, a
/// loader of it); the root is removed when dropped.
fn one_group() -> (tempfile::TempDir, PathBuf, Loader) {
    let root = tmp();
    let dd = DataDir::new(root.path());
    dd.ensure_layout().unwrap();
    let gp = root.path().join("groups/a.json");
    fs::write(&gp, r#"{"id":"a","profile":"p","selector":{"os":"x"}}"#).unwrap();
    (root, gp, Loader::new(dd))
}

#[test]
fn reload_builds_a_snapshot_only_for_a_change() {
    let (_root, gp, mut loader) = one_group();
    let first = loader.load();
    assert_eq!((first.index.groups().len(), first.generation), (1, 1));
    // Nothing changed: the snapshot in force holds, none is built.
    assert!(loader.reload(false).is_none());
    // An explicit reload always answers one (the operator asked).
    let s = loader.reload(true).expect("SIGHUP answers a snapshot");
    assert_eq!((s.changed_files, s.generation), (0, 2));
    // A changed file: a new snapshot with the change, the next generation.
    fs::write(&gp, r#"{"id":"a","profile":"q","selector":{"os":"y"}}"#).unwrap();
    loader.forget(Area::Groups, "a");
    let s = loader.reload(false).expect("a change answers a snapshot");
    assert_eq!((s.changed_files, s.generation), (1, 3));
    assert_eq!(s.index.groups()[0].profile, "q");
    assert!(loader.reload(false).is_none());
}

#[test]
fn last_good_version_kept() {
    let (_root, gp, mut loader) = one_group();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 1);
    assert!(s.problems.is_empty());
    // Break it: same number of groups, previous kept, problem reported.
    fs::write(&gp, r#"{"id":"a","profile":"p","selector":{"os":"x"}"#).unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 1);
    assert_eq!(s.problems.len(), 1);
    assert!(s.problems[0].kept_previous);
    assert!(
        s.problems[0].message.contains("line 1"),
        "{}",
        s.problems[0].message
    );
    // Remove it: gone.
    fs::remove_file(&gp).unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 0);
}

#[test]
fn confined_reads_refuse_symlinks_out() {
    let root = tmp();
    let dd = DataDir::new(root.path().join("data"));
    dd.ensure_layout().unwrap();
    fs::write(root.path().join("secret"), "s").unwrap();
    std::os::unix::fs::symlink(
        root.path().join("secret"),
        root.path().join("data/ignition/link.ign"),
    )
    .unwrap();
    fs::write(root.path().join("data/ignition/ok.ign"), "{}").unwrap();
    assert!(dd.read(Area::Ignition, "ok.ign").is_ok());
    assert!(matches!(
        dd.read(Area::Ignition, "link.ign"),
        Err(ReadError::Escapes(..))
    ));
    assert!(matches!(
        dd.read(Area::Ignition, "../../secret"),
        Err(ReadError::Escapes(..))
    ));
    assert!(matches!(
        dd.read(Area::Ignition, ""),
        Err(ReadError::NotAFile(..))
    ));
}
#[test]
fn confined_open_follows_symlinks_inside_only() {
    let root = tmp();
    let dd = DataDir::new(root.path().join("data"));
    dd.ensure_layout().unwrap();
    let assets = root.path().join("data/assets");
    fs::create_dir_all(assets.join("sub")).unwrap();
    fs::write(assets.join("a.txt"), "inside").unwrap();
    fs::write(root.path().join("secret"), "outside").unwrap();
    std::os::unix::fs::symlink("../a.txt", assets.join("sub/rel")).unwrap();
    std::os::unix::fs::symlink(assets.join("a.txt"), assets.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../secret", assets.join("out")).unwrap();
    std::os::unix::fs::symlink(root.path().join("secret"), assets.join("abs-out")).unwrap();
    std::os::unix::fs::symlink(root.path(), assets.join("dir-out")).unwrap();
    let read = |n: &str| dd.open(Area::Assets, n).and_then(|o| o.read_limited(100));
    assert_eq!(read("sub/rel").unwrap(), b"inside");
    assert_eq!(read("abs").unwrap(), b"inside");
    for n in ["out", "abs-out", "dir-out/secret", "../../secret"] {
        assert!(matches!(read(n), Err(ReadError::Escapes(..))), "{n}");
    }
    assert!(matches!(read("missing"), Err(ReadError::NotFound(_))));
    // The area itself and sub-directories open as directories.
    assert!(dd.open(Area::Assets, "").unwrap().meta.is_dir());
    let sub = dd.open(Area::Assets, "sub/").unwrap();
    assert!(sub.meta.is_dir());
    let names: Vec<_> = sub
        .into_dir()
        .entries()
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("rel")]);
}

#[test]
fn fifo_is_refused_without_blocking() {
    let root = tmp();
    let dd = DataDir::new(root.path());
    dd.ensure_layout().unwrap();
    let fifo = root.path().join("ignition/pipe.ign");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        dd.read(Area::Ignition, "pipe.ign"),
        Err(ReadError::NotAFile(_))
    ));
    let c = std::ffi::CString::new(
        root.path()
            .join("groups/pipe.json")
            .as_os_str()
            .as_encoded_bytes(),
    )
    .unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let s = Loader::new(dd).load();
    assert_eq!(s.index.groups().len(), 0);
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let root = tmp();
    let dd = DataDir::new(root.path());
    dd.ensure_layout().unwrap();
    // A template over the per-request limit.
    let big = fs::File::create(root.path().join("generic/big")).unwrap();
    big.set_len(MAX_TEMPLATE_BYTES + 1).unwrap();
    let e = dd.read(Area::Generic, "big").unwrap_err();
    assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("generic/big"), "{e}");
    assert!(e.to_string().contains("8 MiB"), "{e}");
    // A group that grows over the limit keeps its last good version.
    let gp = root.path().join("groups/g.json");
    fs::write(&gp, r#"{"id":"g","profile":"p","selector":{"os":"x"}}"#).unwrap();
    fs::write(
        root.path().join("groups/other.json"),
        r#"{"id":"o","profile":"p","selector":{"os":"y"}}"#,
    )
    .unwrap();
    let mut loader = Loader::new(dd);
    assert_eq!(loader.load().index.groups().len(), 2);
    let f = fs::OpenOptions::new().append(true).open(&gp).unwrap();
    f.set_len(MAX_DATA_FILE_BYTES + 10).unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 2);
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    let p = &s.problems[0];
    assert_eq!(p.file, "groups/g.json");
    assert!(p.kept_previous);
    assert!(p.message.contains("1 MiB"), "{p}");
    // Reported again on the next load, without being re-read.
    let s = loader.load();
    assert_eq!((s.problems.len(), s.changed_files), (1, 0));
}

#[test]
fn group_symlinks_stay_inside() {
    let root = tmp();
    let dd = DataDir::new(root.path().join("data"));
    dd.ensure_layout().unwrap();
    let g = r#"{"id":"g","profile":"p","selector":{"os":"x"}}"#;
    fs::write(root.path().join("outside.json"), g).unwrap();
    fs::write(root.path().join("data/groups/real.txt"), g).unwrap();
    std::os::unix::fs::symlink("real.txt", root.path().join("data/groups/in.json")).unwrap();
    std::os::unix::fs::symlink(
        root.path().join("outside.json"),
        root.path().join("data/groups/out.json"),
    )
    .unwrap();
    let mut loader = Loader::new(dd);
    let s = loader.load();
    let ids: Vec<_> = s
        .index
        .groups()
        .iter()
        .map(|g| g.file_id.to_string())
        .collect();
    assert_eq!(ids, vec!["in".to_string()]);
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert_eq!(s.problems[0].file, "groups/out.json");
    assert!(
        s.problems[0].message.contains("leaves groups/"),
        "{}",
        s.problems[0]
    );
    let s = loader.load();
    assert_eq!((s.problems.len(), s.changed_files), (1, 0));
}

fn seed(root: &Path) -> DataDir {
    let dd = DataDir::new(root);
    dd.ensure_layout().unwrap();
    fs::write(
        root.join("groups/a.json"),
        r#"{"id":"a","profile":"p","selector":{"mac":"52:54:00:00:00:01"}}"#,
    )
    .unwrap();
    fs::write(
        root.join("groups/b.json"),
        r#"{"id":"b","profile":"p","selector":{"mac":"52:54:00:00:00:02"}}"#,
    )
    .unwrap();
    fs::write(
        root.join("profiles/p.json"),
        r#"{"id":"p","boot":{"kernel":"/assets/k"}}"#,
    )
    .unwrap();
    dd
}

fn profile_of(s: &Snapshot, mac: &str) -> Option<String> {
    let labels: Labels = [("mac".to_string(), mac.to_string())].into();
    let g = s.select(&labels)?;
    Some(g.profile.to_string())
}

fn dir_problem(s: &Snapshot) -> &Problem {
    let p = s.problems.iter().find(|p| p.directory);
    p.unwrap_or_else(|| panic!("no directory problem in {:?}", s.problems))
}

#[test]
fn a_vanished_groups_dir_keeps_its_groups_until_it_is_back() {
    let root = tmp();
    let dd = seed(root.path());
    let mut loader = Loader::new(dd);
    let s = loader.load();
    assert_eq!((s.index.groups().len(), s.problems.len()), (2, 0));
    let groups = root.path().join("groups");

    // Renamed away: both groups stay, the problem names the path, once a change.
    fs::rename(&groups, root.path().join("groups.old")).unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 2);
    assert_eq!(
        s.changed_files, 1,
        "a vanished directory rebuilds the snapshot"
    );
    let p = dir_problem(&s);
    assert_eq!(p.file, "groups/");
    assert!(p.kept_previous);
    let missing = format!("{} is missing", groups.display());
    assert!(p.message.contains(&missing), "{p}");
    assert!(p.message.contains("the 2 groups"), "{p}");
    // Still gone: the same problem, nothing changed (logged once).
    let s = loader.load();
    assert_eq!((s.index.groups().len(), s.changed_files), (2, 0));
    assert_eq!(s.problems.len(), 1);

    // Replaced by a file: gone another way, a change (its warning comes out once).
    fs::write(&groups, "not a directory").unwrap();
    let s = loader.load();
    assert_eq!((s.index.groups().len(), s.changed_files), (2, 1));
    assert_eq!(loader.load().changed_files, 0);
    let p = dir_problem(&s);
    assert!(p.message.contains("is not a directory"), "{p}");
    assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("p"));

    // Restored with changed content: the change is served, the problem is gone.
    fs::remove_file(&groups).unwrap();
    fs::create_dir(&groups).unwrap();
    fs::write(
        groups.join("a.json"),
        r#"{"id":"a","profile":"q","selector":{"mac":"52:54:00:00:00:01"}}"#,
    )
    .unwrap();
    let s = loader.load();
    assert!(s.changed_files > 0);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.index.groups().len(),
        1,
        "b.json is not in the restored groups/"
    );
    assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("q"));

    // Renamed back as it was: everything is read again from it.
    fs::remove_dir_all(&groups).unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 1, "the last loaded content stays");
    fs::rename(root.path().join("groups.old"), &groups).unwrap();
    let s = loader.load();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.index.groups().len(), 2);
    assert_eq!(profile_of(&s, "52:54:00:00:00:01").as_deref(), Some("p"));
}

#[test]
fn a_vanished_profiles_dir_keeps_its_profiles() {
    let root = tmp();
    let dd = seed(root.path());
    let mut loader = Loader::new(dd);
    loader.load();
    fs::remove_dir_all(root.path().join("profiles")).unwrap();
    let s = loader.load();
    assert!(s.profiles.contains_key("p"));
    let g = s.index.groups().first().cloned().unwrap();
    assert!(s.profile_for(&g).is_ok());
    let p = dir_problem(&s);
    assert_eq!(p.file, "profiles/");
    assert!(p.message.contains("the 1 profile loaded"), "{p}");
    // The loader never recreates what vanished (the data directory may be read-only).
    assert!(!root.path().join("profiles").exists());
}

#[test]
fn an_explicit_reload_accepts_a_vanished_dir() {
    let root = tmp();
    let dd = seed(root.path());
    let mut loader = Loader::new(dd);
    loader.load();
    fs::remove_dir_all(root.path().join("groups")).unwrap();
    assert_eq!(loader.load().index.groups().len(), 2);
    // SIGHUP: matchbox would serve nothing from a missing groups/; so does Kindling.
    let s = loader
        .reload(true)
        .expect("an explicit reload answers a snapshot");
    assert_eq!(s.index.groups().len(), 0);
    assert!(s.changed_files > 0);
    let p = dir_problem(&s);
    assert!(!p.kept_previous);
    assert!(p.message.contains("explicit reload"), "{p}");
    assert!(p.message.contains("2 groups dropped"), "{p}");
    // From then on, a missing groups/ is an empty area, as at start-up.
    let s = loader.load();
    assert_eq!((s.index.groups().len(), s.changed_files), (0, 0));
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(!root.path().join("groups").exists(), "never recreated");
    // Profiles, still there, are untouched by the explicit reload.
    assert!(s.profiles.contains_key("p"));
    // Brought back: loaded again.
    fs::create_dir(root.path().join("groups")).unwrap();
    fs::write(
        root.path().join("groups/c.json"),
        r#"{"id":"c","profile":"p","selector":{"os":"x"}}"#,
    )
    .unwrap();
    let s = loader.load();
    assert_eq!(s.index.groups().len(), 1);
    // An explicit reload with everything in place changes nothing.
    let s = loader
        .reload(true)
        .expect("an explicit reload answers a snapshot");
    assert_eq!((s.index.groups().len(), s.changed_files), (1, 0));
}

#[test]
fn at_first_load_a_missing_dir_is_empty_and_a_file_is_a_problem() {
    let root = tmp();
    fs::create_dir_all(root.path().join("profiles")).unwrap();
    let s = Loader::new(DataDir::new(root.path())).load();
    assert_eq!(s.index.groups().len(), 0);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(!root.path().join("groups").exists());
    fs::write(root.path().join("groups"), "x").unwrap();
    let s = Loader::new(DataDir::new(root.path())).load();
    let p = dir_problem(&s);
    assert!(!p.kept_previous);
    assert!(p.message.contains("is not a directory"), "{p}");
}

#[test]
fn a_directory_handle_knows_when_its_path_moved_on() {
    let root = tmp();
    let groups = root.path().join("groups");
    fs::create_dir_all(&groups).unwrap();
    let open = || cap_std::fs::Dir::open_ambient_dir(&groups, cap_std::ambient_authority());
    let d = open().unwrap();
    assert!(still_at(&d, &groups));
    fs::rename(&groups, root.path().join("old")).unwrap();
    assert!(!still_at(&d, &groups), "renamed away");
    fs::create_dir(&groups).unwrap();
    assert!(!still_at(&d, &groups), "another directory");
    assert!(still_at(&open().unwrap(), &groups));
    fs::remove_dir(&groups).unwrap();
    fs::write(&groups, "x").unwrap();
    assert!(!still_at(&d, &groups), "a file");
    assert_eq!(probe_gone(&groups), Unavailable::NotADirectory);
    fs::remove_file(&groups).unwrap();
    assert_eq!(probe_gone(&groups), Unavailable::Missing);
}

/// The keys of the profiles a snapshot serves, sorted.
fn profile_keys(s: &Snapshot) -> Vec<String> {
    let mut keys: Vec<String> = s.profiles.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn profiles_in_sub_directories_load_by_their_paths_and_go_one_by_one() {
    let root = tmp();
    let dd = DataDir::new(root.path());
    dd.ensure_layout().unwrap();
    let profiles = root.path().join("profiles");
    // Siblings at every level, so that a path built for one file cannot leak into the
    // next one's, whatever order the directory lists them in.
    let eight_deep = "d1/d2/d3/d4/d5/d6/d7/d8";
    for dir in [
        "fcos/next",
        "fcos/testing",
        eight_deep,
        &format!("{eight_deep}/d9"),
    ] {
        fs::create_dir_all(profiles.join(dir)).unwrap();
    }
    let write = |rel: &str| {
        let id = rel.trim_end_matches(".json");
        fs::write(profiles.join(rel), format!(r#"{{"id":"{id}"}}"#)).unwrap();
    };
    for rel in [
        "top.json",
        "fcos/stable.json",
        "fcos/next/a.json",
        "fcos/next/b.json",
        "fcos/testing/c.json",
        &format!("{eight_deep}/deep.json"),
        // Below the eighth sub-directory: not read.
        &format!("{eight_deep}/d9/too-deep.json"),
    ] {
        write(rel);
    }
    fs::write(profiles.join("fcos/readme.txt"), "not a profile").unwrap();
    // Groups are read from groups/ itself only.
    fs::create_dir(root.path().join("groups/sub")).unwrap();
    fs::write(
        root.path().join("groups/sub/g.json"),
        r#"{"id":"g","profile":"top"}"#,
    )
    .unwrap();

    let mut loader = Loader::new(dd);
    let s = loader.load();
    let deep = format!("{eight_deep}/deep");
    let mut want = vec![
        "fcos/next/a",
        "fcos/next/b",
        "fcos/stable",
        "fcos/testing/c",
        "top",
        deep.as_str(),
    ];
    want.sort();
    assert_eq!(profile_keys(&s), want);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!((s.changed_files, s.index.groups().len()), (6, 0));

    // One file removed deep down: only it goes, the rest is not read again.
    fs::remove_file(profiles.join("fcos/next/a.json")).unwrap();
    let s = loader.reload(false).expect("a removal is a change");
    assert_eq!(s.changed_files, 1);
    want.retain(|k| *k != "fcos/next/a");
    assert_eq!(profile_keys(&s), want);

    // A whole sub-directory removed: its files go, nothing else changes.
    fs::remove_dir_all(profiles.join("fcos")).unwrap();
    let s = loader.reload(false).expect("a removal is a change");
    assert_eq!(s.changed_files, 3);
    assert_eq!(profile_keys(&s), [deep.as_str(), "top"]);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(loader.reload(false).is_none());
}

#[test]
fn profile_keys_of_ids() {
    // A plain name is its own key (its one component is `{id}.json`, never `.` or `..`);
    // a path is cleaned within `profiles/`, and refused when it leaves it.
    for (id, want) in [
        ("fcos", Some("fcos")),
        (".", Some(".")),
        ("..", Some("..")),
        ("a.json", Some("a.json")),
        ("", None),
        ("/", None),
        ("a/b", Some("a/b")),
        ("a//b/./c", Some("a/b/c")),
        ("a/../b", Some("b")),
        ("/abs", Some("abs")),
        ("../x", None),
        ("a/../../x", None),
    ] {
        assert_eq!(profile_key(id).as_deref(), want, "{id:?}");
    }
}
