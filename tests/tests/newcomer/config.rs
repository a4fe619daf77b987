//! Every key of docs/configuration.md is parsed by the program(s) it names, with its
//! example, and the other program ignores it silently; the commented sample files parse
//! in both programs without unknown keys.

use std::path::Path;

fn repo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .to_path_buf()
}

fn cell(s: &str) -> &str {
    s.trim().trim_matches('`')
}

/// Parses a config with one program; the warnings, or the error.
type Parse = fn(&str) -> Result<Vec<String>, String>;

fn hbc(yaml: &str) -> Result<Vec<String>, String> {
    hbc::config::Config::parse(yaml, Path::new("t.yaml"))
        .map(|(_, w)| w)
        .map_err(|e| e.to_string())
}

fn hbd(yaml: &str) -> Result<Vec<String>, String> {
    hbd::config::Config::parse(yaml, Path::new("t.yaml"))
        .map(|(_, w)| w)
        .map_err(|e| e.to_string())
}

/// Keys that only make sense together with others (validation says so).
fn companions(key: &str) -> &'static str {
    match key {
        "pushover_token" => "pushover_user: \"u\"\n",
        "pushover_user" => "pushover_token: \"t\"\n",
        "mattermost_api_url" => "mattermost_token: t\nmattermost_channel_id: c\n",
        "mattermost_token" => "mattermost_api_url: https://chat.example.org\nmattermost_channel_id: c\n",
        "mattermost_channel_id" => "mattermost_api_url: https://chat.example.org\nmattermost_token: t\n",
        "smtpserver" => "mailfrom: hbd@example.org\nmailto: ops@example.org\n",
        "dyndnshosts" => "secret: s3cret-s3cret\ndns_server: 127.0.0.1:53\ndns_tsig_name: k\ndns_tsig_secret: c2VjcmV0\n",
        "history_user" | "history_bearer_token" | "history_ca_file" => {
            "history_url: http://127.0.0.1:9090\n"
        }
        "history_password" => "history_url: http://127.0.0.1:9090\nhistory_user: hbd\n",
        "tls_cert" => "tls_key: /etc/hbd/tls/privkey.pem\n",
        "tls_key" => "tls_cert: /etc/hbd/tls/fullchain.pem\n",
        _ => "",
    }
}

#[test]
fn every_documented_key_is_parsed_by_its_program() {
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).expect("reference");
    let mut keys = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split(" | ").collect();
        assert!(cols.len() >= 5, "malformed row: {line}");
        let key = cell(cols[0].trim_start_matches('|'));
        let program = cell(cols[1]);
        let example = cell(cols[3]);
        let yaml = format!("{key}: {example}\n{}", companions(key));
        let (own, other): (Vec<Parse>, Vec<Parse>) = match program {
            "hbc" => (vec![hbc], vec![hbd]),
            "hbd" => (vec![hbd], vec![hbc]),
            "both" => (vec![hbc, hbd], vec![]),
            p => panic!("{key}: unknown program {p:?}"),
        };
        for parse in own {
            let w = parse(&yaml).unwrap_or_else(|e| {
                panic!("{key}: the documented example does not parse: {e}\n{yaml}")
            });
            assert!(w.is_empty(), "{key}: warnings {w:?}");
        }
        for parse in other {
            if let Ok(w) = parse(&yaml) {
                assert!(
                    w.is_empty(),
                    "{key} is not silently ignored by the other program: {w:?}"
                );
            }
        }
        keys += 1;
    }
    assert!(keys > 70, "only {keys} keys found in the reference");
}

#[test]
fn sample_files_parse_in_both_programs_without_unknown_keys() {
    for sample in ["packaging/hbc.yaml", "packaging/hbd.yaml"] {
        let text = std::fs::read_to_string(repo().join(sample)).expect("sample");
        for (name, parse) in [("hbc", hbc as Parse), ("hbd", hbd)] {
            let w =
                parse(&text).unwrap_or_else(|e| panic!("{sample} does not parse in {name}: {e}"));
            assert!(w.is_empty(), "{sample} in {name}: {w:?}");
        }
        // Every commented-out top-level key of the sample is a key the reference documents.
        let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).expect("reference");
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let Some((key, _)) = rest.split_once(':') else {
                continue;
            };
            if key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !key.is_empty()
            {
                assert!(
                    doc.contains(&format!("| `{key}` |")),
                    "{sample}: `{key}` is not in docs/configuration.md"
                );
            }
        }
    }
}
