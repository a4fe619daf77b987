//! Property tests: the short, in-suite versions of hbd's fuzz targets (`fuzz/`,
//! docs/fuzzing.md): `heartbeat_decode` (the registry side), `config`, `journal_reader` and
//! `rest_bodies`. Each runs a few hundred cases in well under a second.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use hb_proto::{decode, encode, Heartbeat, Level, Reading, Value};
use hbd::config::Config;
use hbd::event::{Event, EventKind};
use hbd::journal::format::{self, BadKind};
use hbd::notify::config::PolicySettings;
use hbd::notify::control::NewSilence;
use hbd::notify::policy::Policy;
use hbd::registry::{Registry, Settings, Status};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

const NOW: u64 = 1_700_000_000_000;

fn event() -> impl Strategy<Value = Event> {
    (
        any::<u64>(),
        any::<u64>(),
        "[a-z0-9.-]{1,12}|[é\"\\\\ <>]{0,4}",
        prop::sample::select(vec![
            EventKind::HostNew,
            EventKind::HostUp,
            EventKind::HostDown,
            EventKind::CheckLevel,
            EventKind::System,
            EventKind::DnsUpdateFailed,
        ]),
        proptest::option::of("[a-z.]{0,10}"),
        "[a-z é\"\\\\\u{1}]{0,20}",
    )
        .prop_map(|(id, ts_ms, host, kind, key, message)| Event {
            id,
            ts_ms,
            host,
            kind,
            key,
            from: Some("UP".into()),
            to: None,
            message,
        })
}

/// One heartbeat datagram of a few hosts, with sequence numbers and intervals that jump.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..4,
        0u64..3,
        prop_oneof![0u64..5, Just(u64::MAX - 1), Just(u64::MAX)],
        prop_oneof![Just(100u32), Just(10_000), Just(60_000), any::<u32>()],
        proptest::collection::vec(("[a-c]{1,2}", any::<i64>()), 0..3),
    )
        .prop_map(|(host, instance, seq, interval_ms, readings)| {
            let hb = Heartbeat {
                host: format!("h{host}"),
                instance,
                seq,
                sent_ms: NOW,
                interval_ms,
                level: Level::Ok,
                readings: readings
                    .into_iter()
                    .map(|(key, v)| Reading {
                        key,
                        value: Value::I64(v),
                        unit: String::new(),
                        level: Level::Warning,
                        message: String::new(),
                        threshold: String::new(),
                    })
                    .collect(),
            };
            encode(&hb, None, 1400).expect("encode")[0].clone()
        })
}

proptest! {
    #![proptest_config(config())]

    /// Heartbeats of a few hosts in any order: what is accepted is stored as sent, the host
    /// cap holds, and once every deadline has passed no host is left UP (see the registry's
    /// fuzz regressions).
    #[test]
    fn registry_accepts_consistently_and_everyone_goes_down(
        datagrams in proptest::collection::vec((datagram(), 0u64..200_000), 1..8),
    ) {
        let mut reg = Registry::new(Settings { max_hosts: 3, ..Settings::default() });
        let src = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut now = NOW;
        let mut events = Vec::new();
        for (d, step) in &datagrams {
            now += step;
            let p = decode(d, None).expect("decode");
            if reg.apply(&p, src, now, &mut events).is_ok() {
                let h = reg.get(p.host).expect("host");
                prop_assert_eq!(h.status, Status::Up);
                prop_assert_eq!((h.instance, h.last_seq), (p.instance, p.seq));
                for r in &p.readings {
                    prop_assert!(h.readings.iter().any(|x| x.key() == r.key));
                }
            }
            prop_assert!(reg.count <= 3);
        }
        reg.tick(now + (u64::from(u32::MAX) * 3), &mut events);
        prop_assert!(reg.iter().all(|h| h.status == Status::Down));
        prop_assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    }

    /// Journal records: any events written read back in order; any cut or changed byte
    /// ends the scan at a record boundary, keeping everything before it.
    #[test]
    fn journal_records_read_back_or_stop_at_the_damage(
        events in proptest::collection::vec(event(), 0..5),
        cut in any::<prop::sample::Index>(),
        flip in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let mut data = Vec::new();
        let mut ends = vec![0usize];
        for e in &events {
            format::encode(e, &mut data).expect("encode");
            ends.push(data.len());
        }
        let mut read = Vec::new();
        let s = format::scan(&data, |e| read.push(e));
        prop_assert_eq!(&read, &events);
        prop_assert_eq!((s.good_len, s.bad), (data.len() as u64, None));

        let mut damaged = data.clone();
        if let Some((at, x)) = flip.filter(|_| !data.is_empty()) {
            damaged[at.index(data.len())] ^= x;
        }
        damaged.truncate(cut.index(data.len() + 1));
        let mut read = Vec::new();
        let s = format::scan(&damaged, |e| read.push(e));
        prop_assert!(ends.contains(&(s.good_len as usize)), "{} not a record end", s.good_len);
        prop_assert_eq!(s.bad.is_some(), (s.good_len as usize) < damaged.len());
        prop_assert_eq!(s.records as usize, read.len());
        prop_assert_eq!(&read[..], &events[..read.len()]);
        if let Some(bad) = s.bad {
            prop_assert_eq!(bad.offset, s.good_len);
            if let BadKind::BadLength(n) = bad.kind {
                prop_assert!(n == 0 || n as usize > format::MAX_PAYLOAD);
            }
        }
    }

    /// Arbitrary bytes never panic the journal reader.
    #[test]
    fn any_bytes_scan(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let s = format::scan(&data, |_| {});
        prop_assert!(s.good_len as usize <= data.len());
    }

    /// Silence bodies as a client sends them: accepted ones are well-formed and end when
    /// asked, whatever the numbers (see the `rest_bodies` fuzz regression).
    #[test]
    fn silence_bodies_validate(
        hosts in "[a-z*?]{1,8}|\\PC{0,4}",
        duration in proptest::option::of(prop_oneof!["[0-9]{1,6}(ms|s|m|h)?", "\\PC{0,4}"]),
        until_ms in proptest::option::of(prop_oneof![any::<u64>(), NOW..NOW + 10_000_000]),
        from_ms in proptest::option::of(prop_oneof![any::<u64>(), NOW - 1000..NOW + 1000, Just(u64::MAX - 5)]),
        reason in "[a-z ]{0,12}",
    ) {
        let body = serde_json::json!({
            "hosts": hosts, "duration": duration, "until_ms": until_ms, "from_ms": from_ms,
            "reason": reason,
        });
        let body: NewSilence = serde_json::from_value(body).expect("the body reads");
        let Ok(until) = body.end_ms(NOW) else {
            // Refused: both or neither given, or a duration that is not one.
            prop_assert!(duration.is_some() || until_ms.is_none());
            return Ok(());
        };
        if let (Some(_), None) = (&duration, until_ms) {
            prop_assert!(until >= NOW);
        }
        let mut policy = Policy::new(PolicySettings::default());
        if let Ok(s) = policy.add_silence(&body.hosts, body.from_ms, until, &body.reason, None, NOW) {
            prop_assert!(s.until_ms > s.from_ms && s.until_ms > NOW);
            prop_assert_eq!(s.until_ms, until);
            prop_assert!(!s.reason.is_empty() && !s.hosts.is_empty());
            prop_assert!(s.active(s.from_ms) && !s.active(s.until_ms));
        }
    }

    /// Generated hbd configs: valid values load as written, invalid ones name the key.
    #[test]
    fn generated_configs_load_or_name_the_key(
        grace in prop_oneof![0.0f64..2000.0, Just(1.0), Just(1000.0)],
        journal_keep in 0usize..4,
        ingest_threads in 0usize..20,
        watch in "[a-z0-9.-]{1,10}|[<> ]{1,3}",
        client_key in prop::sample::select(vec!["interval: 5s", "samples: 2", "plugins: {}", "thresholds: {}"]),
    ) {
        let text = format!(
            "grace: {grace}\njournal_keep: {journal_keep}\ningest_threads: {ingest_threads}\n\
             watchhosts: [\"{watch}\"]\n{client_key}\n"
        );
        let ok = (1.0..=1000.0).contains(&grace)
            && journal_keep >= 1
            && (1..=16).contains(&ingest_threads)
            && hb_proto::valid_host_name(&watch);
        match Config::parse(&text, Path::new("props.yaml")) {
            Ok((c, warnings)) => {
                prop_assert!(ok);
                prop_assert_eq!(c.grace, grace);
                prop_assert_eq!(c.journal.journal_keep, journal_keep);
                prop_assert!(c.watchhosts.0.contains_key(&watch));
                prop_assert!(warnings.is_empty(), "{:?}", warnings);
            }
            Err(e) => {
                prop_assert!(!ok, "{}", e);
                let e = e.to_string();
                let named = ["grace", "journal_keep", "ingest_threads", "watchhosts"].iter().any(|k| e.contains(k));
                prop_assert!(named, "{}", e);
            }
        }
    }
}
