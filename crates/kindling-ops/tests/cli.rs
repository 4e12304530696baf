//! `kindling machines` from the journal (no server) and from a running server's API.

mod common;

use std::net::Ipv4Addr;

use clap::Parser;
use common::*;
use kindling_api::machines_cli::{MachinesArgs, format_detail, format_list, load, run};
use kindling_dhcp::Firmware;
use kindling_ops::{Ops, OpsConfig};
use kindling_tftp::Outcome;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: MachinesArgs,
}

fn args(v: &[&str]) -> MachinesArgs {
    Cli::try_parse_from(std::iter::once("machines").chain(v.iter().copied()))
        .unwrap()
        .args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_from_journal_and_from_server() {
    let state = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    data_dir(data.path());
    let cfg = OpsConfig {
        neighbour_lookup: false,
        ..OpsConfig::default()
    };
    let ops = Ops::open(&cfg, Some(state.path()));
    let srv = start_server(data.path(), ops).await;
    let a = srv.addr;
    let adm = srv.admin;
    dhcp_discover(&srv.ops, MAC, Firmware::UefiPxe, "");
    dhcp_pxe_request(&srv.ops, MAC, Ipv4Addr::LOCALHOST);
    tftp(
        &srv.ops,
        Ipv4Addr::LOCALHOST,
        "ipxe.efi",
        1_000_000,
        Outcome::Completed,
    );
    for p in [
        "/boot.ipxe",
        "/ipxe?mac=52:54:00:12:34:56",
        "/assets/fcos/live-k",
        "/assets/fcos/live-i.img",
    ] {
        assert_eq!(aget(a, p).await.0, 200);
    }
    // Ignition fails: its file is gone.
    std::fs::remove_file(data.path().join("ignition/node.ign")).unwrap();
    assert_eq!(aget(a, "/ignition?mac=52:54:00:12:34:56").await.0, 404);
    srv.ops.flush();

    // Straight from the journal, no server.
    let store = load(state.path()).unwrap();
    let list = format_list(&store.summaries());
    let mut lines = list.lines();
    assert!(lines.next().unwrap().starts_with("MAC "));
    let row = lines.next().unwrap();
    for want in [
        MAC_STR,
        "127.0.0.1",
        "7 (efi-x64)",
        "uefi_pxe",
        "node1",
        "fcos",
        "initrd",
        "GET /ignition",
    ] {
        assert!(row.contains(want), "{want} missing from {row:?}");
    }
    let detail = format_detail(&store.detail(MAC_STR).unwrap());
    let order = [
        "dhcp",
        "tftp",
        "script",
        "kernel",
        "initrd",
        "FAILED GET /ignition",
    ];
    let mut at = 0;
    for w in order {
        let i = detail[at..]
            .find(w)
            .unwrap_or_else(|| panic!("{w} not after {at} in\n{detail}"));
        at += i + w.len();
    }
    assert!(detail.contains("=> reached initrd; stopped at ignition: GET /ignition: ignition file \"node.ign\" does not exist"), "{detail}");

    // The entry point, both ways (its output goes to stdout).
    let dir = state.path().to_path_buf();
    let url = format!("http://{adm}");
    let codes = tokio::task::spawn_blocking(move || {
        [
            run(&args(&[]), &dir, &[]).unwrap(),
            run(&args(&["show", "52-54-00-12-34-56"]), &dir, &[]).unwrap(),
            run(&args(&["show", "52:54:00:00:00:01"]), &dir, &[]).unwrap(),
            run(&args(&["show", "nonsense"]), &dir, &[]).unwrap(),
            run(&args(&["list", "--json"]), &dir, std::slice::from_ref(&url)).unwrap(),
            run(
                &args(&["show", "5254.0012.3456", "--boots", "1"]),
                &dir,
                std::slice::from_ref(&url),
            )
            .unwrap(),
            run(
                &args(&["show", "52:54:00:00:00:01"]),
                &dir,
                std::slice::from_ref(&url),
            )
            .unwrap(),
        ]
    })
    .await
    .unwrap();
    let codes: Vec<String> = codes.iter().map(|c| format!("{c:?}")).collect();
    let ok = format!("{:?}", std::process::ExitCode::SUCCESS);
    let one = format!("{:?}", std::process::ExitCode::from(1));
    let two = format!("{:?}", std::process::ExitCode::from(2));
    assert_eq!(
        codes,
        vec![
            ok.clone(),
            ok.clone(),
            one.clone(),
            two,
            ok.clone(),
            ok,
            one
        ]
    );

    srv.ops.shutdown();
    srv.cancel.cancel();
    srv.task.await.unwrap().unwrap();
}
