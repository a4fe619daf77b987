//! `check-config` of both real binaries: every problem of a file at once, each with key,
//! line and column, unknown keys as errors, the files start would read checked, exit 2.

use std::process::Command;

use super::hbd_bin;

fn run(bin: &std::path::Path, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, text).expect("config");
    let out = Command::new(bin)
        .arg("check-config")
        .arg("-c")
        .arg(&cfg)
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hbd_lists_five_mistakes_at_once() {
    let text = "hb_port: 50003\n\
                grace: 0.5\n\
                startup_grace: later\n\
                hdb_port: 1\n\
                notify_templates_dir: /nonexistent/templates\n\
                secret: a-long-random-secret\n\
                dyndnshosts: [web1]\n\
                dns_server: 127.0.0.1:53\n\
                dns_zone: dyn.example.org\n\
                dns_tsig_name: k\n\
                dns_tsig_keyfile: /nonexistent/k.key\n";
    let (code, err) = run(&hbd_bin(), text);
    assert_eq!(code, 2, "{err}");
    for (line, key) in [
        (2, "grace"),
        (3, "startup_grace"),
        (4, "hdb_port"),
        (5, "notify_templates_dir"),
        (11, "dns_tsig_keyfile"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("line {line}, column")) && l.contains(key)),
            "{key} at line {line} not reported:\n{err}"
        );
    }
    assert!(err.contains("5 problem(s)"), "{err}");
    let (code, err) = run(&hbd_bin(), "hb_port: 50003\ngrace: 3\n");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn hbc_lists_its_mistakes_and_a_bad_server_port() {
    let hbc = hbd_bin().with_file_name("hbc");
    let text = "interval: soon\n\
                servers: [mon.example.org:99999]\n\
                samples: 0\n\
                intervall: 5\n\
                hbd_port: 50004\n";
    let (code, err) = run(&hbc, text);
    assert_eq!(code, 2, "{err}");
    for (line, key) in [
        (1, "interval"),
        (2, "servers"),
        (3, "samples"),
        (4, "intervall"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("line {line}, column")) && l.contains(key)),
            "{key} at line {line} not reported:\n{err}"
        );
    }
    assert!(
        !err.contains("hbd_port"),
        "hbd's keys are not hbc's problem:\n{err}"
    );
}
