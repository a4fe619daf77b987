//! The YAML config loaders of hbc and hbd, validation included. Both read the same
//! `~/.hb.yaml`, so every input goes to both, and their verdicts on unknown keys must agree.

#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let client = hbc::config::Config::parse(text, path);
    let server = hbd::config::Config::parse(text, path);

    if let Ok((c, _)) = &client {
        // What validation promised holds.
        assert!(c.interval >= std::time::Duration::from_millis(100));
        assert!((1200..=65507).contains(&c.max_datagram));
        assert!(c.samples >= 1);
        hbc::thresholds::Thresholds::compile(&c.thresholds, c.samples)
            .expect("validated thresholds compile");
    }
    if let Ok((s, _)) = &server {
        assert!(s.grace >= 1.0 && s.grace <= 1000.0);
        assert!(s.journal_keep >= 1 && s.max_hosts >= 1);
        assert!(s
            .watchhosts
            .0
            .keys()
            .all(|name| hb_proto::valid_host_name(name)));
    }
    // A top-level key that hbc does not know and does not leave to hbd is one hbd does
    // not know either: both warn about it.
    if let (Ok((_, client_warnings)), Ok((_, server_warnings))) = (&client, &server) {
        let server_unknown: BTreeSet<&str> = server_warnings.iter().map(|w| key_of(w)).collect();
        for w in client_warnings {
            let key = key_of(w);
            assert!(
                server_unknown.contains(key),
                "hbc warns about `{key}` but hbd accepts it"
            );
        }
    }
});

/// The top-level key in "config file X: unknown key `a.b` is ignored ...".
fn key_of(warning: &str) -> &str {
    let key = warning
        .split_once('`')
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or("", |(key, _)| key);
    key.split(['.', '[']).next().unwrap_or("")
}
