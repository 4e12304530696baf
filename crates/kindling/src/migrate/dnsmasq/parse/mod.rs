//! dnsmasq configuration text to a model. Sans-I/O: text in, model out; never panics. The
//! reading follows dnsmasq 2.90's `read_file` and `one_opt` (comments, quotes, commas,
//! `tag:`/`net:`/`set:` prefixes) for the DHCP and TFTP options that matter to network boot.

mod conf;
mod lex;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

pub use conf::*;
use lex::{integer_size, lex, match_value, option_by_name, set_prefix, take_conds};
pub use lex::{parse_csa, parse_mac};

/// Parses a configuration text. Never fails: lines it cannot read are listed in
/// `malformed` (and are otherwise ignored, as dnsmasq would refuse to start).
pub fn parse(text: &str) -> Conf {
    let mut c = Conf::default();
    let mut boottype: u32 = 0x8000;
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let lexed = match lex(raw) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                c.lines.push(Line {
                    no,
                    text: raw.trim().to_string(),
                    key: String::new(),
                    has_value: false,
                    args: Vec::new(),
                });
                c.malformed.push((no, e));
                continue;
            }
        };
        let (text, key, has_value, args) = lexed;
        c.lines.push(Line {
            no,
            text,
            key: key.clone(),
            has_value,
            args: args.clone(),
        });
        if let Err(e) = parse_line(&mut c, no, &key, args, &mut boottype) {
            c.malformed.push((no, e));
        }
    }
    c
}

fn need(args: &[String], n: usize, what: &str) -> Result<(), String> {
    if args.len() < n || args.iter().take(n).any(|a| a.is_empty()) {
        return Err(format!("expected {what}"));
    }
    Ok(())
}

fn parse_line(
    c: &mut Conf,
    no: usize,
    key: &str,
    mut args: Vec<String>,
    boottype: &mut u32,
) -> Result<(), String> {
    match key {
        "dhcp-range" => {
            let mut set = None;
            let mut filter = Vec::new();
            while args.len() > 1 {
                let a = &args[0];
                let addressy = a
                    .chars()
                    .all(|ch| ch == ' ' || ch == '.' || ch == ':' || ch.is_ascii_hexdigit());
                if addressy {
                    break;
                }
                if let Some(t) = a.strip_prefix("tag:").or_else(|| a.strip_prefix("net:")) {
                    if !t.is_empty() {
                        filter.push(Cond::parse(t));
                    }
                } else if set.is_some() {
                    return Err("only one set: tag allowed".into());
                } else {
                    set = Some(set_prefix(a).to_string());
                }
                args.remove(0);
            }
            need(&args, 2, "<start>,<end>|proxy|static[,<netmask>...]")?;
            let start: Ipv4Addr = args[0].parse().map_err(|_| {
                format!(
                    "{:?} is not an IPv4 address (IPv6 ranges are not for PXE)",
                    args[0]
                )
            })?;
            let (proxy, end) = match args[1].as_str() {
                "proxy" => (true, None),
                "static" => (false, None),
                a => (
                    false,
                    Some(
                        a.parse::<Ipv4Addr>()
                            .map_err(|_| format!("bad range end {a:?}"))?,
                    ),
                ),
            };
            let netmask = args
                .get(2)
                .filter(|a| a.contains('.'))
                .and_then(|a| a.parse::<Ipv4Addr>().ok());
            c.ranges.push(Range {
                line: no,
                set,
                filter,
                start,
                end,
                proxy,
                netmask,
            });
        }
        "pxe-service" => {
            let conds = take_conds(&mut args);
            need(
                &args,
                2,
                "[tag:..,]<CSA>,<menu text>[,<basename>|<type>][,<server>]",
            )?;
            let csa = parse_csa(&args[0]).ok_or_else(|| format!("unknown CSA {:?}", args[0]))?;
            let menu = args[1].clone();
            let (basename, boot_type) = match args.get(2) {
                None => (None, 0u16),
                Some(a) => match a.parse::<u16>() {
                    Ok(t) => (None, t),
                    Err(_) => {
                        let t = (*boottype).min(0xffff) as u16;
                        *boottype += 1;
                        (Some(a.clone()), t)
                    }
                },
            };
            let (server, server_name) = match args.get(3) {
                None => (None, None),
                Some(a) => match a.parse::<Ipv4Addr>() {
                    Ok(ip) => (Some(ip), None),
                    Err(_) => (None, Some(a.clone())),
                },
            };
            c.pxe_services.push(PxeService {
                line: no,
                conds,
                csa,
                menu,
                basename,
                boot_type,
                server,
                server_name,
            });
            c.enable_pxe = true;
        }
        "pxe-prompt" => {
            let conds = take_conds(&mut args);
            need(&args, 1, "[tag:..,]<prompt>[,<timeout>]")?;
            // dnsmasq splits at the first comma only: the rest is the timeout.
            let timeout = (args.len() > 1).then(|| args[1..].join(","));
            c.pxe_prompts.push(PxePrompt {
                line: no,
                conds,
                text: args[0].clone(),
                timeout,
            });
            c.enable_pxe = true;
        }
        "dhcp-boot" => {
            let conds = take_conds(&mut args);
            need(
                &args,
                1,
                "[tag:..,]<file>[,<servername>[,<server address>]]",
            )?;
            let (server, server_name) = match args.get(2) {
                None => (None, None),
                Some(a) => match a.parse::<Ipv4Addr>() {
                    Ok(ip) => (Some(ip), None),
                    Err(_) => (None, Some(a.clone())),
                },
            };
            c.boots.push(DhcpBoot {
                line: no,
                conds,
                file: args[0].clone(),
                server,
                server_name,
            });
        }
        "dhcp-vendorclass" | "dhcp-userclass" => {
            need(&args, 2, "set:<tag>,<class>")?;
            if args.len() > 2 {
                return Err("enterprise: vendor classes are not supported".into());
            }
            c.classes.push(ClassMatch {
                line: no,
                tag: set_prefix(&args[0]).to_string(),
                kind: if key == "dhcp-vendorclass" {
                    ClassKind::Vendor
                } else {
                    ClassKind::User
                },
                needle: args[1].as_bytes().to_vec(),
            });
        }
        "dhcp-mac" => {
            need(&args, 2, "set:<tag>,<MAC address>")?;
            let pattern =
                parse_mac(&args[1]).ok_or_else(|| format!("bad MAC address {:?}", args[1]))?;
            c.macs.push(MacMatch {
                line: no,
                tag: set_prefix(&args[0]).to_string(),
                pattern,
            });
        }
        "dhcp-match" => {
            need(
                &args,
                2,
                "set:<tag>,<option number>|option:<name>[,<value>]",
            )?;
            let tag = set_prefix(&args[0]).to_string();
            let o = &args[1];
            let (option, size) = if let Some(n) = o.strip_prefix("option:") {
                match n.parse::<u8>() {
                    Ok(v) => (v, integer_size(v)),
                    Err(_) => {
                        option_by_name(n).ok_or_else(|| format!("unknown option name {n:?}"))?
                    }
                }
            } else if o.starts_with("vi-encap:") || o.starts_with("option6:") {
                return Err(format!("{o} matches are not supported"));
            } else {
                let v: u8 = o.parse().map_err(|_| format!("bad option {o:?}"))?;
                (v, integer_size(v))
            };
            let value = match_value(option, size, &args[2..].join(","))?;
            c.matches.push(OptMatch {
                line: no,
                tag,
                option,
                value,
            });
        }
        "tag-if" => {
            let mut t = TagIf {
                line: no,
                sets: Vec::new(),
                conds: Vec::new(),
            };
            for a in &args {
                if let Some(s) = a.strip_prefix("set:") {
                    t.sets.push(s.to_string());
                } else if let Some(s) = a.strip_prefix("tag:") {
                    t.conds.push(Cond::parse(s));
                } else {
                    return Err(format!("bad tag-if part {a:?}"));
                }
            }
            if t.sets.is_empty() {
                return Err("tag-if sets no tag".into());
            }
            c.tag_ifs.push(t);
        }
        "dhcp-host" => {
            let mut h = Host {
                line: no,
                macs: Vec::new(),
                sets: Vec::new(),
                filter: Vec::new(),
                addr: None,
                ignore: false,
                has_client_id: false,
            };
            for a in &args {
                if a.contains(':') {
                    if a.len() >= 3 && a[..3].eq_ignore_ascii_case("id:") {
                        h.has_client_id = true;
                    } else if let Some(t) =
                        a.strip_prefix("net:").or_else(|| a.strip_prefix("set:"))
                    {
                        h.sets.push(t.to_string());
                    } else if let Some(t) = a.strip_prefix("tag:") {
                        h.filter.push(Cond::parse(t));
                    } else if a.starts_with('[') {
                        // IPv6 address: not for PXE.
                    } else {
                        h.macs
                            .push(parse_mac(a).ok_or_else(|| format!("bad MAC address {a:?}"))?);
                    }
                } else if let Ok(ip) = a.parse::<Ipv4Addr>() {
                    h.addr = Some(ip);
                } else if a == "ignore" {
                    h.ignore = true;
                }
            }
            c.hosts.push(h);
        }
        "dhcp-ignore" => {
            let conds = args
                .iter()
                .map(|a| {
                    Cond::parse(
                        a.strip_prefix("tag:")
                            .or_else(|| a.strip_prefix("net:"))
                            .unwrap_or(a),
                    )
                })
                .collect();
            c.ignores.push(Ignore { line: no, conds });
        }
        "dhcp-reply-delay" => {
            let conds = take_conds(&mut args);
            need(&args, 1, "[tag:..,]<seconds>")?;
            let secs = args[0]
                .parse()
                .map_err(|_| format!("bad delay {:?}", args[0]))?;
            c.delays.push(Delay {
                line: no,
                conds,
                secs,
            });
        }
        "dhcp-pxe-vendor" => {
            need(&args, 1, "<vendor>[,...]")?;
            c.pxe_vendors
                .get_or_insert_with(Vec::new)
                .extend(args.iter().filter(|a| !a.is_empty()).cloned());
        }
        _ => {}
    }
    Ok(())
}
