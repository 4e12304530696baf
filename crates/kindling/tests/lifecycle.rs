//! Machine lifecycle: install once, then local boot until re-armed (by the Ignition
//! fetch, the completion URL or the operator), state that survives SIGKILL and restarts;
//! discovered machines recorded (bounded) and answered with a discovery profile. The real
//! binary on loopback, with its CLI.

mod common;

use std::path::Path;

use common::{Response, Scratch, Server, request};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

fn profile(id: &str, install_once: &str) -> String {
    format!(
        r#"{{"id":"{id}","ignition_id":"{id}.ign","boot":{{"kernel":"/assets/{id}/vmlinuz","initrd":["/assets/{id}/initrd.img"],"args":["install.mac={{{{.request.query.mac}}}}"]}}{install_once}}}"#
    )
}

fn write_data(data: &Path) {
    for d in ["groups", "profiles", "ignition", "assets"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let files = [
        ("profiles/by-ignition.json", profile("by-ignition", r#","install_once":{"done":"ignition"}"#)),
        ("profiles/by-callback.json", profile("by-callback", r#","install_once":{"done":"callback"}"#)),
        (
            "profiles/by-operator.json",
            profile("by-operator", r#","install_once":{"done":"operator","local_boot":"sanboot"}"#),
        ),
        ("profiles/live.json", profile("live", "")),
        (
            "profiles/inventory.json",
            r#"{"id":"inventory","boot":{"kernel":"/assets/inventory/vmlinuz","args":["inventory.mac={{.request.query.mac}}","inventory.uuid={{.request.query.uuid}}"]}}"#.to_string(),
        ),
        ("groups/n1.json", r#"{"id":"n1","profile":"by-ignition","selector":{"mac":"52:54:00:00:00:01"}}"#.into()),
        ("groups/n2.json", r#"{"id":"n2","profile":"by-callback","selector":{"mac":"52:54:00:00:00:02"}}"#.into()),
        ("groups/n3.json", r#"{"id":"n3","profile":"by-operator","selector":{"mac":"52:54:00:00:00:03"}}"#.into()),
        // The group says install once although its profile does not.
        (
            "groups/n4.json",
            r#"{"id":"n4","profile":"live","selector":{"mac":"52:54:00:00:00:04"},"install_once":{"done":"ignition"}}"#.into(),
        ),
        ("groups/n5.json", r#"{"id":"n5","profile":"live","selector":{"mac":"52:54:00:00:00:05"}}"#.into()),
        // Any machine that says os=foo installs once, completed by its callback.
        ("groups/os-foo.json", r#"{"id":"os-foo","profile":"by-callback","selector":{"os":"foo"}}"#.into()),
    ];
    for (name, body) in files {
        std::fs::write(data.join(name), body).unwrap();
    }
    for id in ["by-ignition", "by-callback", "by-operator", "live"] {
        std::fs::write(
            data.join(format!("ignition/{id}.ign")),
            r#"{"ignition":{"version":"3.4.0"}}"#,
        )
        .unwrap();
    }
}

fn start(scratch: &Scratch, extra: &str) -> Server {
    let data = scratch.root.join("data");
    let token = scratch.root.join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let config = format!("[admin]\ntoken_file = \"{}\"\n{extra}", token.display());
    Server::start_with(&data, &scratch.root, &config, &[], |_| {})
}

fn kindling(args: &[&str]) -> (bool, String, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kindling"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KINDLING_") {
            c.env_remove(k);
        }
    }
    let o = c.args(args).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// `kindling machines --server ADMIN --token-file TOKEN ARGS...`.
fn machines_cli(admin: &str, token: &Path, args: &[&str]) -> (bool, String, String) {
    let mut a = vec![
        "machines",
        "--server",
        admin,
        "--token-file",
        token.to_str().unwrap(),
    ];
    a.extend_from_slice(args);
    kindling(&a)
}

/// GET `path` on the admin listener with the bearer token.
fn admin_get(server: &Server, path: &str) -> Response {
    let auth = [("Authorization".into(), format!("Bearer {TOKEN}"))];
    request(server.admin, "GET", path, &auth, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn get(server: &Server, path: &str) -> Response {
    request(server.addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn is_install(r: &Response, id: &str) -> bool {
    r.status == 200 && text(r).contains(&format!("kernel /assets/{id}/vmlinuz"))
}

fn is_local(r: &Response) -> bool {
    r.status == 200 && text(r).starts_with("#!ipxe\necho Kindling: ") && !text(r).contains("kernel")
}

#[test]
fn install_once_then_local_boot_until_rearmed_and_across_restarts() {
    let scratch = Scratch::new("lifecycle");
    write_data(&scratch.root.join("data"));
    let state = scratch.root.join("state");
    let token = scratch.root.join("admin.token");
    let mut server = start(&scratch, "");
    let admin = format!("http://{}", server.admin);
    let cli = |args: &[&str]| machines_cli(&admin, &token, args);

    // done = ignition: the Ignition fetch is the end of the install.
    let m1 = "/ipxe?mac=52:54:00:00:00:01";
    assert!(
        is_install(&get(&server, m1), "by-ignition"),
        "{}",
        text(&get(&server, m1))
    );
    assert!(
        is_install(&get(&server, m1), "by-ignition"),
        "boots again until installed"
    );
    let ign = get(&server, "/ignition?mac=52-54-00-00-00-01");
    assert_eq!(ign.status, 200, "{}", text(&ign));
    let local = get(&server, m1);
    assert!(is_local(&local), "{}", text(&local));
    assert!(text(&local).ends_with("\nexit\n"), "{}", text(&local));
    assert!(
        server.log_has("local boot (exit)"),
        "the request log says why"
    );
    // Ignition is still served to an installed machine (an installer may fetch it twice).
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:01").status, 200);
    // GRUB gets its own local boot.
    let grub = get(&server, "/grub?mac=52:54:00:00:00:01");
    assert!(
        grub.status == 200 && text(&grub).contains("exit"),
        "{}",
        text(&grub)
    );

    // done = callback: the Ignition fetch does not count, /install/done does.
    let m2 = "/ipxe?mac=52:54:00:00:00:02";
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:02").status, 200);
    assert!(is_install(&get(&server, m2), "by-callback"));
    let done = get(&server, "/install/done?mac=52-54-00-00-00-02");
    assert_eq!((done.status, text(&done).as_str()), (200, "installed\n"));
    let again = get(&server, "/install/done?mac=52:54:00:00:00:02");
    assert_eq!(
        (again.status, text(&again).as_str()),
        (200, "already installed\n")
    );
    assert!(is_local(&get(&server, m2)));
    // No install_once, no group, no MAC: refused with reasons.
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:05").status,
        404
    );
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:99").status,
        404
    );
    assert_eq!(get(&server, "/install/done").status, 400);

    // Only GET and POST complete an install; HEAD /ignition does not either.
    let head = request(
        server.addr,
        "HEAD",
        "/install/done?mac=52:54:00:00:00:02",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 405);
    let m1b = "/ipxe?mac=52:54:00:00:00:0b";
    std::fs::write(
        scratch.root.join("data/groups/n1b.json"),
        r#"{"id":"n1b","profile":"by-ignition","selector":{"mac":"52:54:00:00:00:0b"}}"#,
    )
    .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !is_install(&get(&server, m1b), "by-ignition") {
        assert!(std::time::Instant::now() < deadline, "n1b was not loaded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let head = request(
        server.addr,
        "HEAD",
        "/ignition?mac=52:54:00:00:00:0b",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert!(
        is_install(&get(&server, m1b), "by-ignition"),
        "HEAD marked it installed"
    );

    // done = operator: the machine cannot mark itself; the operator can.
    let m3 = "/ipxe?mac=52:54:00:00:00:03";
    assert!(is_install(&get(&server, m3), "by-operator"));
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:03").status,
        403
    );
    // Other labels cannot pick another group's rules for the completion.
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:03&os=foo").status,
        403
    );
    // Nor complete an install that was never served (and no file is written for it).
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:77&os=foo").status,
        404
    );
    assert!(!state.join("machines/52-54-00-00-00-77.json").exists());
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:03").status, 200);
    assert!(is_install(&get(&server, m3), "by-operator"));
    let (ok, out, err) = cli(&["mark-installed", "52-54-00-00-00-03"]);
    assert!(ok && out.contains("marked installed"), "{out}{err}");
    let san = get(&server, m3);
    assert!(
        is_local(&san) && text(&san).contains("sanboot --no-describe --drive 0x80"),
        "{}",
        text(&san)
    );

    // The group's install_once wins over a profile without one; a plain group is untouched.
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:04").status, 200);
    assert!(is_local(&get(&server, "/ipxe?mac=52:54:00:00:00:04")));
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:05").status, 200);
    assert!(is_install(
        &get(&server, "/ipxe?mac=52:54:00:00:00:05"),
        "live"
    ));

    // The writes need credentials: without the token the admin listener says 401.
    let anon = request(
        server.admin,
        "POST",
        "/api/v1/lifecycle/52:54:00:00:00:01/reinstall",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(anon.status, 401, "{}", text(&anon));
    let (ok, out, err) = cli(&["--installed"]);
    assert!(ok, "{err}");
    for mac in [
        "52:54:00:00:00:01",
        "52:54:00:00:00:02",
        "52:54:00:00:00:03",
        "52:54:00:00:00:04",
    ] {
        assert!(out.contains(mac), "{mac} missing from:\n{out}");
    }
    assert!(
        out.contains("callback") && out.contains("operator") && out.contains("by-ignition"),
        "{out}"
    );
    let (ok, out, err) = cli(&["show", "52:54:00:00:00:02"]);
    assert!(
        ok && out.contains("installed ") && out.contains("via callback"),
        "{out}{err}"
    );
    let ui = admin_get(&server, "/ui/");
    assert!(
        text(&ui).contains("<span class=\"lifecycle\">installed</span>"),
        "the dashboard shows it"
    );
    let metrics = admin_get(&server, "/metrics");
    assert!(
        text(&metrics).contains("\nkindling_machines_installed 4\n"),
        "{}",
        text(&metrics)
    );
    // A running server owns the state: a direct write is refused, pointing at --server.
    let (ok, _, err) = kindling(&[
        "machines",
        "--state-dir",
        state.to_str().unwrap(),
        "reinstall",
        "52:54:00:00:00:01",
    ]);
    assert!(!ok && err.contains("--server"), "{err}");

    // SIGKILL: every acknowledged install is still there after a restart.
    drop(server);
    server = start(&scratch, "");
    for m in [m1, m2, m3] {
        assert!(
            is_local(&get(&server, m)),
            "{m} after a restart: {}",
            text(&get(&server, m))
        );
    }
    // A record that no longer loads makes that machine's state unknown: a 503, not a
    // reinstall.
    drop(server);
    let file = state.join("machines/52-54-00-00-00-03.json");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("\"operator\"", "\"from-the-future\"")).unwrap();
    server = start(&scratch, "");
    let r = get(&server, m3);
    assert_eq!(r.status, 503, "{}", text(&r));
    assert!(server.log_has("the install state of 52:54:00:00:00:03 is unknown"));
    assert!(
        is_local(&get(&server, m2)),
        "other machines are not affected"
    );
    drop(server);
    std::fs::write(&file, good).unwrap();
    server = start(&scratch, "");
    let admin = format!("http://{}", server.admin);
    let cli = |args: &[&str]| machines_cli(&admin, &token, args);
    assert!(is_local(&get(&server, m3)));
    // Re-armed: it installs again, and the next Ignition fetch ends that install too.
    let (ok, out, err) = cli(&["reinstall", "52:54:00:00:00:01"]);
    assert!(ok && out.contains("re-armed"), "{out}{err}");
    assert!(is_install(&get(&server, m1), "by-ignition"));
    let (ok, out, _) = cli(&["reinstall", "52:54:00:00:00:01"]);
    assert!(ok && out.contains("nothing to re-arm"), "{out}");
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:01").status, 200);
    assert!(is_local(&get(&server, m1)));

    // With the server stopped, the CLI changes the state directly; the next start sees it.
    drop(server);
    let (ok, out, err) = kindling(&[
        "machines",
        "--state-dir",
        state.to_str().unwrap(),
        "reinstall",
        "52:54:00:00:00:02",
    ]);
    assert!(ok && out.contains("re-armed"), "{out}{err}");
    let server = start(&scratch, "");
    assert!(is_install(&get(&server, m2), "by-callback"));
    assert!(is_local(&get(&server, m3)));
}

#[test]
fn discovered_machines_are_recorded_bounded_and_get_the_discovery_profile() {
    let scratch = Scratch::new("discovery");
    let data = scratch.root.join("data");
    write_data(&data);
    let token = scratch.root.join("admin.token");
    let server = start(
        &scratch,
        "[machines]\ndiscovery_profile = \"inventory\"\nmax_discovered = 2\n",
    );
    let admin = format!("http://{}", server.admin);
    let cli = |args: &[&str]| machines_cli(&admin, &token, args);

    let r = get(
        &server,
        "/ipxe?mac=52-54-00-aa-00-01&uuid=U-1&serial=S-1&arch=x86_64&hostname=%1b%5b31mevil",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert!(
        text(&r).contains(
            "kernel /assets/inventory/vmlinuz inventory.mac=52:54:00:aa:00:01 inventory.uuid=U-1"
        ),
        "{}",
        text(&r)
    );
    assert!(
        server.log_has("discovery profile"),
        "the request log says why"
    );
    // No MAC: the inventory template needs one (missingkey=error); nothing recorded.
    assert_eq!(
        get(&server, "/ipxe?uuid=x").status,
        404,
        "a template with a missing key is a 404"
    );
    assert_eq!(
        get(&server, "/ipxe?mac=52:54:00:aa:00:02&uuid=U-2").status,
        200
    );
    // The table is full: answered, counted, not recorded.
    assert_eq!(
        get(&server, "/ipxe?mac=52:54:00:aa:00:03&uuid=U-3").status,
        200
    );
    let (ok, out, err) = cli(&["--discovered"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("52:54:00:aa:00:01") && out.contains("U-1") && out.contains("S-1"),
        "{out}"
    );
    assert!(
        out.contains("52:54:00:aa:00:02") && !out.contains("52:54:00:aa:00:03"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "client text is escaped: {out:?}");
    let api = admin_get(&server, "/api/v1/lifecycle");
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(v["discovered_dropped"], 1, "{v}");
    let metrics = admin_get(&server, "/metrics");
    for line in [
        "\nkindling_machines_discovered 2\n",
        "\nkindling_machines_discovered_dropped_total 1\n",
    ] {
        assert!(
            text(&metrics).contains(line),
            "{line:?} in {}",
            text(&metrics)
        );
    }
    assert_eq!(v["machines"][0]["discovered"]["ip"], "127.0.0.1", "{v}");

    // A group for it: it is no longer discovered, and boots its profile.
    std::fs::write(
        data.join("groups/found.json"),
        r#"{"id":"found","profile":"live","selector":{"mac":"52:54:00:aa:00:01"}}"#,
    )
    .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !is_install(&get(&server, "/ipxe?mac=52:54:00:aa:00:01"), "live") {
        assert!(
            std::time::Instant::now() < deadline,
            "the new group was not loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, out, _) = cli(&["--discovered", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let macs: Vec<&str> = v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mac"].as_str().unwrap())
        .collect();
    assert_eq!(macs, ["52:54:00:aa:00:02"], "{out}");
}

#[test]
fn without_a_discovery_profile_an_unknown_machine_is_a_404_as_in_matchbox_but_recorded() {
    let scratch = Scratch::new("discovery-404");
    write_data(&scratch.root.join("data"));
    let state = scratch.root.join("state");
    let server = start(&scratch, "");
    let r = get(&server, "/ipxe?mac=52:54:00:bb:00:01&arch=arm64");
    assert_eq!(r.status, 404);
    // Written off the request's thread: wait for the file, then read it without a server.
    let file = state.join("machines/52-54-00-bb-00-01.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "no record written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(server);
    let (ok, out, err) = kindling(&[
        "machines",
        "--state-dir",
        state.to_str().unwrap(),
        "--discovered",
    ]);
    assert!(
        ok && out.contains("52:54:00:bb:00:01") && out.contains("arm64"),
        "{out}{err}"
    );
}

#[test]
fn an_unusable_state_directory_gives_install_once_machines_a_503_not_a_reinstall() {
    let scratch = Scratch::new("lifecycle-unusable");
    write_data(&scratch.root.join("data"));
    // The state directory is a regular file: no journal, no lifecycle state.
    std::fs::write(scratch.root.join("state"), "not a directory").unwrap();
    let server = start(&scratch, "");
    let r = get(&server, "/ipxe?mac=52:54:00:00:00:01");
    assert_eq!(r.status, 503, "{}", text(&r));
    assert!(server.log_has("could not be read"));
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:02").status,
        503
    );
    // Machines without install_once boot as ever.
    assert!(is_install(
        &get(&server, "/ipxe?mac=52:54:00:00:00:05"),
        "live"
    ));
}

#[test]
fn lifecycle_writes_need_credentials_and_tracking_can_be_off() {
    let scratch = Scratch::new("lifecycle-creds");
    let data = scratch.root.join("data");
    write_data(&data);
    // No token: the admin listener is loopback-only, the lifecycle API refuses writes.
    let server = Server::start(&data, &scratch.root);
    let r = request(
        server.admin,
        "POST",
        "/api/v1/lifecycle/52:54:00:00:00:01/installed",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", text(&r));
    assert!(text(&r).contains("needs credentials"), "{}", text(&r));
    assert_eq!(
        request(server.admin, "GET", "/api/v1/lifecycle", &[], b"")
            .unwrap()
            .status,
        200
    );
    let put = request(server.admin, "PUT", "/api/v1/lifecycle", &[], b"").unwrap();
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow").unwrap(), Some("GET, HEAD"));
    drop(server);

    // [machines] track = false: matchbox's answers, every time.
    let server = Server::start_with(
        &data,
        &scratch.root,
        "[machines]\ntrack = false\n",
        &[],
        |_| {},
    );
    assert_eq!(get(&server, "/ignition?mac=52:54:00:00:00:01").status, 200);
    assert!(is_install(
        &get(&server, "/ipxe?mac=52:54:00:00:00:01"),
        "by-ignition"
    ));
    assert_eq!(
        get(&server, "/install/done?mac=52:54:00:00:00:02").status,
        404
    );
    let off = request(server.admin, "GET", "/api/v1/lifecycle", &[], b"").unwrap();
    assert_eq!(off.status, 404);
    assert!(text(&off).contains("track = false"), "{}", text(&off));
}
