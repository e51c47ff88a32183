//! The keyword table (`vrrp-agent/src/config/keywords.tsv`) against keepalived 2.2.7's man
//! page and against the parser: every keyword of keepalived.conf(5) is in the table, and each
//! row's policy is what the configuration checker actually does with the keyword.

use std::{collections::BTreeSet, path::Path, process::Command};

use vrrp_agent::config::{
    self,
    keywords::{self, Policy},
};

const MAN_PAGE: &str = "/usr/share/man/man5/keepalived.conf.5.gz";

/// Man page sections that only show syntax examples, not keywords of their own.
const EXAMPLE_SECTIONS: [&str; 6] = [
    "TOP HIERACHY",
    "GLOBAL CONFIGURATION",
    "Conditional configuration and configuration id",
    "Parameter substitution",
    "Sequence blocks",
    "List blocks",
];

/// The block a man page section's keywords are written in (its opening keyword is `top`).
fn section_block(section: &str) -> Option<&'static str> {
    Some(match section {
        "Global definitions" => "global_defs",
        "Linkbeat interfaces" => "linkbeat_interfaces",
        "Interface up/down status change debouncing" => "interface_up_down_delays",
        "Static track groups" => "track_group",
        "Static routes/addresses/rules" => "top",
        "Track files" => "track_file",
        "VRRP track processes" => "vrrp_track_process",
        "BFD CONFIGURATION" => "bfd_instance",
        "VRRP script(s)" => "vrrp_script",
        "VRRP synchronization group(s)" => "vrrp_sync_group",
        "VRRP gratuitous ARP and unsolicited neighbour advert delay group(s)" => "garp_group",
        "VRRP instance(s)" => "vrrp_instance",
        "Virtual server group(s)" => "virtual_server_group",
        "Virtual server(s)" => "virtual_server",
        _ => return None,
    })
}

/// (block, keyword) for every keyword the man page shows in bold at the start of a line of
/// its configuration examples (`.nf` ... `.fi`), or in plain text opening a block
/// (`interface_up_down_delays {`; all-capital words there are placeholders).
fn man_page_keywords(roff: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let (mut section, mut example) = (String::new(), false);
    // The daemon-wide keywords the man page lists before `global_defs {` stand outside it.
    let mut before_global_defs = false;
    for line in roff.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            section = title.trim().trim_matches('"').to_string();
            before_global_defs = section == "Global definitions";
        }
        match line {
            l if l.starts_with(".nf") => example = true,
            l if l.starts_with(".fi") => example = false,
            _ => {}
        }
        if !example || EXAMPLE_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let trimmed = line.trim();
        let word = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let keyword = match trimmed.strip_prefix("\\fB") {
            Some(bold) => word(bold),
            None => {
                let plain = word(trimmed);
                let opens = trimmed[plain.len()..].trim_start().starts_with('{');
                if plain.is_empty() || !opens || !plain.chars().any(|c| c.is_ascii_lowercase()) {
                    continue;
                }
                plain
            }
        };
        let Some(block) = section_block(&section) else {
            panic!("man page section `{section}` has no block mapping: extend section_block");
        };
        if keyword == "global_defs" {
            before_global_defs = false;
        }
        let opener = keyword == block
            || (section == "Global definitions" && keyword == "global_defs")
            || before_global_defs;
        let block = if opener { "top" } else { block };
        if keyword
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            out.insert((block.to_string(), keyword));
        }
    }
    out
}

#[test]
fn every_keyword_of_the_man_page_is_in_the_table() {
    let table: BTreeSet<(String, String)> = keywords::all()
        .iter()
        .map(|k| (k.block.to_string(), k.keyword.to_string()))
        .collect();
    assert!(table.len() > 300, "the table lost rows: {}", table.len());
    let Ok(out) = Command::new("zcat").arg(MAN_PAGE).output() else {
        eprintln!("zcat is missing: the man page comparison is skipped");
        return;
    };
    if !out.status.success() {
        // Minimal Debian images drop man pages; the table stays what it was checked against.
        eprintln!("{MAN_PAGE} is not installed here: the man page comparison is skipped");
        return;
    }
    let man = man_page_keywords(&String::from_utf8_lossy(&out.stdout));
    let missing: Vec<_> = man.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "man page keywords missing from keywords.tsv: {missing:?}"
    );
    let extra: Vec<_> = table
        .iter()
        .filter(|k| !man.contains(*k))
        // Our extensions are named vrrp_agent_*; v3_checksum_as_v2 is keepalived's but
        // missing from its man page.
        .filter(|(_, kw)| kw != "v3_checksum_as_v2" && !kw.starts_with("vrrp_agent_"))
        .collect();
    assert!(
        extra.is_empty(),
        "keywords.tsv rows not in the man page: {extra:?}"
    );
}

/// A minimal valid configuration with `line` added where `block` says.
fn config_with(block: &str, line: &str) -> Option<String> {
    let instance = |extra: &str| {
        format!(
            "vrrp_instance VI_1 {{\n    interface eth0\n    virtual_router_id 51\n    priority 100\n{extra}    virtual_ipaddress {{\n        10.0.0.100/24\n    }}\n}}\n"
        )
    };
    Some(match block {
        "top" => format!("{}{line} {{\n}}\n", instance("")),
        "global_defs" => format!("global_defs {{\n{line}\n}}\n{}", instance("")),
        "vrrp_instance" => instance(&format!("{line}\n")),
        "vrrp_sync_group" => format!(
            "{}vrrp_sync_group G {{\n    group {{\n        VI_1\n    }}\n{line}\n}}\n",
            instance("")
        ),
        "vrrp_script" => format!(
            "{}vrrp_script chk {{\n    script /bin/true\n{line}\n}}\n",
            instance("")
        ),
        "track_file" => format!(
            "{}track_file tf {{\n    file /tmp/weight\n{line}\n}}\n",
            instance("")
        ),
        "vrrp_track_process" => format!(
            "{}vrrp_track_process p {{\n    process nginx\n{line}\n}}\n",
            instance("")
        ),
        "virtual_server_group" => format!(
            "{}virtual_server_group g {{\n    10.0.0.100 80\n{line}\n}}\n",
            instance("")
        ),
        // Inside blocks that are refused (or warned about) as a whole.
        _ => return None,
    })
}

#[test]
fn each_rows_policy_is_what_the_checker_does() {
    let mut checked = 0;
    for k in keywords::all() {
        // The man page lists `authentication`'s keywords among vrrp_instance's.
        let line = match k.keyword {
            "auth_type" | "auth_pass" => {
                format!("    authentication {{\n        {} 1\n    }}", k.keyword)
            }
            _ => format!("    {} 1", k.keyword),
        };
        if k.block == "virtual_server" {
            check_virtual_server_row(k.keyword, k.policy);
            checked += 1;
            continue;
        }
        let Some(text) = config_with(k.block, &line) else {
            // Reached only through their block, whose own row decides.
            let parent = keywords::lookup("top", k.block).map(|p| p.policy);
            assert!(
                matches!(parent, Some(Policy::Refuse(_) | Policy::Warn(_))),
                "{} {}: its block is not refused or warned about as a whole",
                k.block,
                k.keyword
            );
            continue;
        };
        let result = config::parse(Path::new("k.conf"), &text);
        let (errors, warnings) = match &result {
            Ok(c) => (Vec::new(), c.warnings.clone()),
            Err(d) => (d.0.clone(), Vec::new()),
        };
        let mentions = |list: &[config::Diagnostic], what: &str| {
            list.iter()
                .any(|d| d.message.contains(&format!("`{}` {what}", k.keyword)))
        };
        match k.policy {
            Policy::Refuse(why) => {
                assert!(!why.is_empty(), "{} {}: no reason", k.block, k.keyword);
                assert!(
                    mentions(&errors, "is not supported"),
                    "{} {} should be refused: {errors:?}",
                    k.block,
                    k.keyword
                );
            }
            Policy::Warn(_) => {
                assert!(
                    result.is_ok() && mentions(&warnings, "has no effect"),
                    "{} {} should be warned about and run: {result:?}",
                    k.block,
                    k.keyword
                );
            }
            Policy::Implemented => assert!(
                !mentions(&errors, "in ")
                    && !errors.iter().any(|d| d.message.contains("not supported")),
                "{} {} is marked implemented but the checker does not know it: {errors:?}",
                k.block,
                k.keyword
            ),
        }
        checked += 1;
    }
    assert!(checked > 200, "only {checked} rows were checked");
}

/// virtual_server's keywords live at several levels (virtual server, real server, checker,
/// url): a row holds if its policy shows where keepalived takes the keyword.
fn check_virtual_server_row(keyword: &str, policy: Policy) {
    // The man page's `flag-1`, `sh-port`, `mh-port` families are filed by their stem.
    let keyword = match keyword {
        "flag" => "flag-1",
        "sh" => "sh-port",
        "mh" => "mh-port",
        k => k,
    };
    let line = match keyword {
        "real_server" => "real_server 10.0.0.6 80 {\n}".to_string(),
        "url" => "url {\n    path /\n}".to_string(),
        k if k.ends_with("_GET") => format!("{k} {{\n    url {{\n        path /\n    }}\n}}"),
        "MISC_CHECK" => "MISC_CHECK {\n    misc_path /bin/true\n}".to_string(),
        k if k.ends_with("_CHECK") => format!("{k} {{\n}}"),
        k => format!("{k} 1"),
    };
    let places = [
        format!(
            "virtual_server 10.0.0.100 80 {{\n{line}\n    real_server 10.0.0.5 80 {{\n    }}\n}}\n"
        ),
        format!(
            "virtual_server 10.0.0.100 80 {{\n    real_server 10.0.0.5 80 {{\n{line}\n    }}\n}}\n"
        ),
        format!(
            "virtual_server 10.0.0.100 80 {{\n    real_server 10.0.0.5 80 {{\n        TCP_CHECK {{\n{line}\n        }}\n    }}\n}}\n"
        ),
        format!(
            "virtual_server 10.0.0.100 80 {{\n    real_server 10.0.0.5 80 {{\n        HTTP_GET {{\n            url {{\n{line}\n            }}\n        }}\n    }}\n}}\n"
        ),
        format!(
            "virtual_server 10.0.0.100 80 {{\n    real_server 10.0.0.5 80 {{\n        SSL_GET {{\n            url {{\n                path /\n            }}\n{line}\n        }}\n    }}\n}}\n"
        ),
        {
            let checker = checker_for(keyword);
            let misc = if checker == "MISC" {
                "            misc_path /bin/true\n"
            } else {
                ""
            };
            format!(
                "virtual_server 10.0.0.100 80 {{\n    real_server 10.0.0.5 80 {{\n        {checker}_CHECK {{\n{misc}{line}\n        }}\n    }}\n}}\n"
            )
        },
    ];
    let outcomes: Vec<(Vec<config::Diagnostic>, Vec<config::Diagnostic>)> = places
        .iter()
        .map(|text| match config::parse(Path::new("k.conf"), text) {
            Ok(c) => (Vec::new(), c.warnings),
            Err(d) => (d.0, Vec::new()),
        })
        .collect();
    let said = |list: &[config::Diagnostic], what: &str| {
        list.iter()
            .any(|d| d.message.contains(&format!("`{keyword}` {what}")))
    };
    let holds = outcomes.iter().any(|(errors, warnings)| match policy {
        Policy::Refuse(_) => said(errors, "is not supported"),
        Policy::Warn(_) => errors.is_empty() && said(warnings, "has no effect"),
        Policy::Implemented => !errors.iter().any(|d| {
            d.message.contains("unknown or unsupported") || d.message.contains("not supported")
        }),
    });
    assert!(
        holds,
        "virtual_server {keyword}: no placement shows {policy:?}: {outcomes:?}"
    );
}

/// The checker type whose block takes `keyword`.
fn checker_for(keyword: &str) -> &'static str {
    match keyword {
        "helo_name" => "SMTP",
        "type" | "name" => "DNS",
        "payload" | "require_reply" => "UDP",
        _ => "MISC",
    }
}

#[test]
fn refused_keywords_stop_the_daemon_and_warned_ones_let_it_run() {
    let dir = std::env::temp_dir().join(format!("vrrp-keyword-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new(vrrp_lab::agent::agent_binary())
            .args(["-t", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(
        "refuse.conf",
        config_with("vrrp_instance", "    track_bfd {\n        bfd1\n    }").unwrap(),
    );
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("refuse.conf:5:5:") && stderr.contains("track_bfd"),
        "{stderr}"
    );
    let (code, stderr) = run(
        "warn.conf",
        config_with("global_defs", "    enable_snmp_vrrp").unwrap(),
    );
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("warn.conf:2:5:") && stderr.contains("SNMP"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
