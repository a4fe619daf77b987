//! Prometheus behind its own TLS (a test CA) and HTTP Basic authentication
//! (`--web.config.file`): hbd writes with a `remote_write` entry's
//! `user`/`password`/`ca_file` and charts with `history_user`/`history_password`/
//! `history_ca_file`. The database is first shown to refuse requests without the right
//! password, so the test can tell. SIGHUP applies changed `history_*` read settings at
//! once: a wrong password shows the database's 401 on the page (without the password), a
//! missing CA a certificate error, the right ones the chart again; a changed export
//! setting is reported as needing a restart.

use std::time::Duration;

use crate::export::{eventually, run_hbc};
use crate::security::{basic, https_agent, test_cert};
use crate::tsdb::{Db, Secured};
use crate::util::*;

const HOST: &str = "hist-secured";
const KEY: &str = "memory.used_percent";
const USER: &str = "hb";
const PASSWORD: &str = "hb-history-pass";
/// bcrypt of [`PASSWORD`] (cost 5), as Prometheus' web config wants it; made with
/// libxcrypt: `python3 -c 'import crypt; print(crypt.crypt("hb-history-pass",
/// "$2b$05$abcdefghijklmnopqrstuu"))'`.
const BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuOe3SHO7KFEnwSzyiNJTDKhgMSsj/nIm";

/// The chart page's points and error, as the server rendered them.
fn chart(hbd: &Hbd) -> (u64, Option<String>) {
    let page = hbd.get_text(&format!("/dashboard/history/{HOST}?key={KEY}&range=1h"));
    let points = page
        .split("data-points=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no chart on the page: {page}"));
    let error = page
        .split("id=\"history-error\" role=\"alert\">")
        .nth(1)
        .and_then(|r| r.split("</p>").next())
        .map(str::to_string);
    (points, error)
}

#[test]
fn prometheus_behind_tls_and_basic_auth_is_written_and_read_with_hbds_credentials() {
    let certs = tempfile::tempdir().expect("tmp");
    let cert = test_cert(certs.path());
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &cert.ca_pem).expect("CA file");
    let db = Db::start_secured(&Secured {
        ca_pem: cert.ca_pem.clone(),
        cert_file: cert.cert.clone(),
        key_file: cert.key.clone(),
        user: USER.into(),
        password: PASSWORD.into(),
        bcrypt: BCRYPT.into(),
    });

    // The database itself refuses a request without credentials or with another password.
    let agent = https_agent(&cert.ca_pem);
    let probe = db.url("/api/v1/query?query=up");
    for auth in [None, Some(basic(USER, "not-it"))] {
        let mut req = agent.get(&probe);
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        match req.call() {
            Err(ureq::Error::Status(401, _)) => {}
            other => panic!("Prometheus should refuse {auth:?}: {other:?}"),
        }
    }

    let ca = ca_file.display();
    let yaml = format!(
        "remote_write:\n  - url: {w}\n    user: {USER}\n    password: {PASSWORD}\n    ca_file: {ca}\n\
         history_url: {u}\nhistory_user: {USER}\nhistory_password: {PASSWORD}\nhistory_ca_file: {ca}\n\
         history_flush: 300ms\nhistory_batch: 500\ngrace: 60\n",
        w = db.write_url(),
        u = db.url(""),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(&yaml), dir.path(), 0);
    let h = run_hbc(&hbd, HOST, 3);

    // Written with the entry's credentials and CA: every heartbeat is in Prometheus.
    let received = h["received"].as_u64().expect("received") as usize;
    let up = format!("hb_host_up{{host=\"{HOST}\"}}");
    eventually(
        Duration::from_secs(15),
        "every heartbeat in Prometheus",
        || match db.count(&up) {
            n if n == received => Ok(()),
            n => Err(format!("{n} hb_host_up samples, hbd accepted {received}")),
        },
    );

    // Read with history_user/history_password/history_ca_file.
    let (points, error) = chart(&hbd);
    assert_eq!(error, None);
    assert!(points >= 1, "{points} points");

    // SIGHUP with a wrong password: applied at once, the page shows the database's 401.
    let wrong = yaml.replace(
        &format!("history_password: {PASSWORD}"),
        "history_password: not-it",
    );
    assert_eq!(hbd.reload(config(&wrong)), Vec::<String>::new());
    let (points, error) = chart(&hbd);
    let error = error.expect("an error instead of a chart");
    assert!(points == 0 && error.contains("HTTP 401"), "{error}");
    assert!(
        !error.contains("not-it") && !error.contains(PASSWORD),
        "{error}"
    );

    // Without the CA the database's certificate is not trusted.
    let no_ca = yaml.replace(&format!("history_ca_file: {ca}\n"), "");
    assert_ne!(no_ca, yaml);
    assert_eq!(hbd.reload(config(&no_ca)), Vec::<String>::new());
    let (points, error) = chart(&hbd);
    let error = error.expect("an error instead of a chart");
    assert!(
        points == 0 && error.contains("not reached") && error.contains("certificate"),
        "{error}"
    );

    // The right settings again: the chart is back.
    assert_eq!(hbd.reload(config(&yaml)), Vec::<String>::new());
    let (points, error) = chart(&hbd);
    assert_eq!(error, None);
    assert!(points >= 1, "{points} points");

    // An export setting is not applied by SIGHUP, and the reload says so.
    let problems = hbd.reload(config(
        &yaml.replace("history_batch: 500", "history_batch: 400"),
    ));
    assert!(
        problems.len() == 1
            && problems[0].contains("history_batch")
            && problems[0].contains("restart"),
        "{problems:?}"
    );
    hbd.stop();
}
