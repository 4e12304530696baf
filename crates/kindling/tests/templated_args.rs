//! Templated boot arguments: a profile's `kernel`, `initrd` and `args` may use the
//! group's metadata and the request's labels (`{{.hostname}}`, `{{.request.query.mac}}`),
//! so two machines in one profile boot with different arguments; a missing key is a 404
//! whose reason names the field; fields without `{{` are untouched (iPXE's own `${...}`
//! included). The real binary on loopback.

mod common;

use common::{Scratch, Server, request};

const PROFILE: &str = r#"{
  "id": "fcos",
  "boot": {
    "kernel": "/assets/{{.os}}/kernel",
    "initrd": ["--name main /assets/{{.os}}/initramfs.img"],
    "args": [
      "initrd=main",
      "ip=${ip}",
      "hostname={{.hostname}}",
      "ignition.config.url=http://boot.example/ignition?mac={{.request.query.mac}}",
      "console=ttyS0"
    ]
  }
}"#;

fn group(id: &str, mac: &str, metadata: &str) -> String {
    format!(
        r#"{{"id":"{id}","profile":"fcos","selector":{{"mac":"{mac}"}},"metadata":{metadata}}}"#
    )
}

fn body(r: &common::Response) -> String {
    String::from_utf8_lossy(&r.body).to_string()
}

#[test]
fn two_machines_in_one_profile_get_their_own_arguments() {
    let scratch = Scratch::new("templated-args");
    let data = scratch.root.join("data");
    for d in ["groups", "profiles", "ignition", "assets"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    std::fs::write(data.join("profiles/fcos.json"), PROFILE).unwrap();
    std::fs::write(
        data.join("groups/node1.json"),
        group(
            "node1",
            "52:54:00:00:00:01",
            r#"{"hostname":"node1.lab","os":"fedora-coreos"}"#,
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("groups/node2.json"),
        group(
            "node2",
            "52:54:00:00:00:02",
            r#"{"hostname":"node2.lab","os":"fedora-coreos"}"#,
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("groups/nohost.json"),
        group("nohost", "52:54:00:00:00:03", r#"{"os":"fedora-coreos"}"#),
    )
    .unwrap();
    let server = Server::start(&data, &scratch.root);
    let get = |path: &str| request(server.addr, "GET", path, &[], b"").unwrap();

    let one = get("/ipxe?mac=52:54:00:00:00:01");
    assert_eq!(one.status, 200, "{}", body(&one));
    assert_eq!(
        body(&one),
        "#!ipxe\nkernel /assets/fedora-coreos/kernel initrd=main ip=${ip} hostname=node1.lab \
         ignition.config.url=http://boot.example/ignition?mac=52:54:00:00:00:01 console=ttyS0\n\
         initrd --name main /assets/fedora-coreos/initramfs.img\nboot\n"
    );
    let two = get("/ipxe?mac=52-54-00-00-00-02");
    assert_eq!(two.status, 200, "{}", body(&two));
    assert!(
        body(&two).contains(" hostname=node2.lab "),
        "{}",
        body(&two)
    );
    assert!(
        body(&two).contains("?mac=52:54:00:00:00:02 "),
        "{}",
        body(&two)
    );
    let grub = get("/grub?mac=52:54:00:00:00:02");
    assert_eq!(grub.status, 200);
    assert!(
        body(&grub).contains(
            "linuxefi \"/assets/fedora-coreos/kernel\" initrd=main ip=${ip} hostname=node2.lab"
        ),
        "{}",
        body(&grub)
    );
    // A key the group does not have: 404, and the log says which field.
    let missing = get("/ipxe?mac=52:54:00:00:00:03");
    assert_eq!(missing.status, 404);
    assert!(
        server.log_has("profile boot.args[2]"),
        "{}",
        server.log_text()
    );
    assert!(server.log_has("hostname"), "{}", server.log_text());
}
