use super::{glob::wildcard_match, *};

fn opts(id: &str) -> Options {
    Options {
        config_id: id.into(),
        includes_within: None,
    }
}

/// The texts of the expanded lines of `text` (as if read from /etc/keepalived/k.conf).
fn lines(text: &str, id: &str) -> Vec<String> {
    let (out, errors) = expand_text(Path::new("/etc/keepalived/k.conf"), text, &opts(id));
    assert!(errors.is_empty(), "{errors:?}");
    out.into_iter().map(|l| l.text.trim().to_string()).collect()
}

#[test]
fn comments_go_but_not_inside_quotes() {
    assert_eq!(
        lines("a b # c\n! whole\nd \"e # f\" 'g ! h' ! i\n", "x"),
        ["a b", "d \"e # f\" 'g ! h'"]
    );
}

#[test]
fn conditional_lines_match_the_config_id() {
    let text = "@main router_id main_router\n@backup router_id backup_router\n@^main peer 1.2.3.4\n@^backup peer 1.2.3.5\n";
    assert_eq!(
        lines(text, "main"),
        ["router_id main_router", "peer 1.2.3.5"]
    );
    assert_eq!(lines(text, "other"), ["peer 1.2.3.4", "peer 1.2.3.5"]);
}

#[test]
fn parameters_substitute_at_use_time_recursively() {
    // The man page's example, word for word.
    let text = "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n";
    assert_eq!(lines(text, "x"), ["10.2.0.100/32", "10.2.10.100/32"]);
    // $NAME needs whitespace (or the end) after it; undefined ones stay as written.
    assert_eq!(
        lines("$P=240\npriority $P\nx $Pz ${UNDEF} $\n", "x"),
        ["priority 240", "x $Pz ${UNDEF} $"]
    );
    // A parameter may hold a conditional.
    assert_eq!(
        lines("$IF_MAIN=@main\n$IF_MAIN priority 240\n", "main"),
        ["priority 240"]
    );
    assert!(lines("$IF_MAIN=@main\n$IF_MAIN priority 240\n", "backup").is_empty());
    assert_eq!(
        lines(
            "@main $PRIORITY=240\n@backup $PRIORITY=200\npriority $PRIORITY\n",
            "backup"
        ),
        ["priority 200"]
    );
}

#[test]
fn multi_line_definitions_expand_to_lines_and_nest() {
    let text = "$INSTANCE= \\\nvrrp_instance VI_${NUM} { \\\n  @high priority 130 \\\n  @low priority 120 \\\n}\n$NUM=0\n$INSTANCE\n$NUM=1\n$INSTANCE\n";
    assert_eq!(
        lines(text, "low"),
        [
            "vrrp_instance VI_0 {",
            "priority 120",
            "}",
            "vrrp_instance VI_1 {",
            "priority 120",
            "}"
        ]
    );
    let nested = "$RS= \\\nreal_server 10.0.${RS_NUM}.1 80\n$VS= \\\nvirtual_server { \\\n$RS_NUM=1 \\\n$RS \\\n$RS_NUM=2 \\\n$RS \\\n}\n$VS\n";
    assert_eq!(
        lines(nested, "x"),
        [
            "virtual_server {",
            "real_server 10.0.1.1 80",
            "real_server 10.0.2.1 80",
            "}"
        ]
    );
}

#[test]
fn builtins() {
    let out = lines(
        "${_PWD}/x\n${_INSTANCE}\na${_HASH}b${_BANG}c\n${_RANDOM 5 5}\n",
        "node1",
    );
    assert_eq!(out[0], "/etc/keepalived/x");
    assert_eq!(out[1], "node1");
    assert_eq!(out[2], format!("a{HASH}b{BANG}c"));
    assert_eq!(out[3], "5");
    let r: u32 = lines("${_RANDOM 10 20}\n", "x")[0].parse().unwrap();
    assert!((10..=20).contains(&r));
}

#[test]
fn seq_and_lst_generators() {
    assert_eq!(
        lines("~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1\n", "x"),
        [
            "ip_address 10.0.0.1",
            "ip_address 10.0.1.1",
            "ip_address 10.0.2.1",
            "ip_address 10.0.3.1"
        ]
    );
    assert_eq!(
        lines(
            "~SEQx(SUBNET, 0x90, 0x10, 0xc0) fe80::20:${SUBNET}:1\n",
            "x"
        ),
        [
            "fe80::20:90:1",
            "fe80::20:a0:1",
            "fe80::20:b0:1",
            "fe80::20:c0:1"
        ]
    );
    assert_eq!(lines("~SEQ(N, 3) n${N}\n", "x"), ["n1", "n2", "n3"]);
    assert_eq!(lines("~SEQ(N, 3, 1) n${N}\n", "x"), ["n3", "n2", "n1"]);
    assert_eq!(
        lines(
            "~LST({IP, IP1}, {10,1},{20,4}) ~SEQ(IP2,168,2,170) ${IP2}.${IP}.${IP1}\n",
            "x"
        ),
        ["168.10.1", "170.10.1", "168.20.4", "170.20.4"]
    );
    assert_eq!(
        lines("~LST(IP, 1, 2) ~LST(IP1, 5,6) ${IP}.${IP1}\n", "x"),
        ["1.5", "1.6", "2.5", "2.6"]
    );
}

#[test]
fn generator_and_loop_errors_are_located() {
    let (_, errors) = expand_text(Path::new("k.conf"), "a\n  ~SEQ(N, 1, 0, 5) x\n", &opts("x"));
    assert_eq!((errors[0].location.line, errors[0].location.col), (2, 3));
    let (_, errors) = expand_text(Path::new("k.conf"), "$A=${A}x\n$A\n", &opts("x"));
    assert!(errors[0].message.contains("does not end"), "{errors:?}");
}

#[test]
fn includes_glob_with_braces_relative_to_the_including_file() {
    let dir = std::env::temp_dir().join(format!("vrrp-include-{}", std::process::id()));
    let conf_d = dir.join("conf.d");
    std::fs::create_dir_all(&conf_d).unwrap();
    std::fs::write(conf_d.join("b.conf"), "from_b\ninclude ../leaf.conf\n").unwrap();
    std::fs::write(conf_d.join("a.conf"), "from_a ${_PWD}\n").unwrap();
    std::fs::write(conf_d.join(".hidden.conf"), "hidden\n").unwrap();
    std::fs::write(dir.join("leaf.conf"), "leaf\n").unwrap();
    let main = dir.join("keepalived.conf");
    let text = "top\ninclude conf.d/*.conf\nincluder none/*.conf\ninclude {conf.d/a,leaf}.conf\n";
    let (out, errors) = expand_text(&main, text, &opts("x"));
    assert!(errors.is_empty(), "{errors:?}");
    let texts: Vec<String> = out.iter().map(|l| l.text.clone()).collect();
    let a = format!("from_a {}", conf_d.display());
    assert_eq!(texts, ["top", &a, "from_b", "leaf", &a, "leaf"]);
    // Lines keep their own file and line.
    assert_eq!(out[3].file.as_path(), dir.join("conf.d/../leaf.conf"));
    assert_eq!(out[2].line, 1);

    let (_, errors) = expand_text(&main, "includem nothing/*.conf\n", &opts("x"));
    assert!(errors[0].message.contains("matches no file"), "{errors:?}");
    let (_, errors) = expand_text(&main, "includea {conf.d/a,missing}.conf\n", &opts("x"));
    assert!(
        errors.iter().any(|e| e.message.contains("missing.conf")),
        "{errors:?}"
    );
    std::fs::write(dir.join("self.conf"), "include self.conf\n").unwrap();
    let (_, errors) = expand_text(&main, "include self.conf\n", &opts("x"));
    assert!(errors[0].message.contains("nest too deeply"), "{errors:?}");
    // Found by the config fuzz target: a file including itself twice per level doubles at
    // every level; the expansion stops at a bound instead of running for ever.
    std::fs::write(
        dir.join("twice.conf"),
        "x\ninclude twice.conf\ninclude twice.conf\n",
    )
    .unwrap();
    let (_, errors) = expand_text(&main, "include twice.conf\n", &opts("x"));
    assert!(
        errors.iter().any(|e| e.message.contains("files included")),
        "{errors:?}"
    );
    // Only regular files match (a device or FIFO would block or never end).
    let (out, errors) = expand_text(&main, "include /dev/zero\n", &opts("x"));
    assert!(out.is_empty() && errors.is_empty(), "{errors:?}");
    let confined = Options {
        includes_within: Some(std::fs::canonicalize(&conf_d).unwrap()),
        ..opts("x")
    };
    let (_, errors) = expand_text(&main, "include leaf.conf\n", &confined);
    assert!(errors[0].message.contains("is outside"), "{errors:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn braces_and_wildcards() {
    assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
    assert_eq!(
        expand_braces("{foo/{,cat,dog},bar}"),
        ["foo/", "foo/cat", "foo/dog", "bar"]
    );
    assert!(wildcard_match(b"*.conf", b"x.conf"));
    assert!(wildcard_match(b"[a-c]?.c*", b"b1.conf"));
    assert!(!wildcard_match(b"[!a-c]*", b"b"));
}
