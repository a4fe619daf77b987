//! The JSON request bodies of hbd's REST API, read and checked as the handlers do:
//! `POST /api/v1/silences` (`NewSilence`, `end_ms`, `Policy::add_silence`) and
//! `POST /api/v1/notify/test` (`TestRequest`). (The other body, `POST /api/v1/heartbeat`,
//! is a datagram: the `heartbeat_decode` target covers it.)

#![no_main]

use hbd::notify::control::{NewSilence, TestRequest};
use hbd::notify::config::PolicySettings;
use hbd::notify::policy::Policy;
use hbd::notify::silence::Silence;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<TestRequest>(data);

    let Ok(body) = serde_json::from_slice::<NewSilence>(data) else {
        return;
    };
    let Ok(until) = body.end_ms(NOW) else {
        return;
    };
    if body.duration.is_some() {
        assert!(until >= NOW, "a duration never ends a silence in the past");
    }
    let mut policy = Policy::new(PolicySettings::default());
    let Ok(s) = policy.add_silence(
        &body.hosts,
        body.from_ms,
        until,
        &body.reason,
        body.by.clone(),
        NOW,
    ) else {
        return;
    };
    assert!(s.until_ms > s.from_ms && s.until_ms > NOW);
    assert!(!s.hosts.is_empty() && s.hosts.len() <= 255);
    assert!(!s.reason.is_empty() && s.reason.len() <= 1000);
    assert!(s.by.as_ref().is_none_or(|b| b.chars().count() <= 100));
    assert_eq!(s.created_ms, NOW);
    // Active exactly from its start until (not including) its end.
    assert!(s.active(s.from_ms) && s.active(s.until_ms - 1) && !s.active(s.until_ms));
    assert!(s.from_ms == 0 || !s.active(s.from_ms - 1));
    // Listed while it is active or planned.
    assert!(policy.silences(NOW).iter().any(|x| x.id == s.id));
    // It is saved and loaded as JSON with the policy's state.
    let json = serde_json::to_string(&s).expect("a silence serialises");
    let back: Silence = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back, s);
});
