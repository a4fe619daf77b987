//! The journal under damage at the server level: a torn last record is cut and reported,
//! the records before it restore the registry; a full data folder degrades health but
//! the server keeps running and catches up when space returns.

use std::net::UdpSocket;
use std::time::Duration;

use crate::util::*;

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("journal"))
        .expect("journal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn torn_last_record_is_cut_and_the_rest_restored() {
    let dir = tempfile::tempdir().expect("tmp");
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for n in ["t1", "t2", "t3"] {
        sock.send_to(&datagram(n, 1, 1, None, 1), hbd.udp)
            .expect("send");
    }
    hbd.wait_for(Duration::from_secs(3), "hosts", |h| {
        h.get("/api/v1/hosts").1["total"] == 3
    });
    hbd.stop();
    std::fs::remove_file(dir.path().join(hbd::snapshot::FILE)).expect("snapshot");
    let last = segments(dir.path()).pop().expect("a segment");
    let len = std::fs::metadata(&last).expect("meta").len();
    // Power loss in the middle of the last record.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    f.set_len(len - 7).expect("truncate");
    drop(f);
    let hbd = Hbd::start(config(""), dir.path(), 0);
    let (_, list) = hbd.get("/api/v1/hosts");
    assert_eq!(
        list["total"], 3,
        "records before the torn one restore all hosts: {list}"
    );
    assert!(
        std::fs::metadata(&last).expect("meta").len() < len - 7,
        "torn record cut off"
    );
    // New events append cleanly after the cut.
    sock.send_to(&datagram("t4", 1, 1, None, 1), hbd.udp)
        .expect("send");
    hbd.wait_for(Duration::from_secs(3), "t4", |h| h.status("t4").is_some());
    let ev = events(&hbd, "host=t4");
    let kinds: Vec<&str> = ev.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["host_new", "host_up", "host_level"]);
}

#[test]
fn full_data_folder_is_reported_and_survived() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test mounts a small tmpfs and must run as root (CI does)"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mnt = dir.path().join("data");
    std::fs::create_dir(&mnt).expect("mkdir");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount");
    assert!(status.success(), "mount tmpfs failed");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mnt.clone());

    let hbd = Hbd::start(config("journal_fsync: always\n"), &mnt, 0);
    // Fill the folder.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for i in 0..200 {
        sock.send_to(&datagram(&format!("full-{i}"), 1, 1, None, 1), hbd.udp)
            .expect("send");
    }
    hbd.wait_for(
        Duration::from_secs(5),
        "health reports the journal failure",
        |h| h.get("/healthz").0 == 503,
    );
    let (_, health) = hbd.get("/healthz");
    assert!(
        health["journal"]
            .as_str()
            .expect("journal")
            .contains("No space left"),
        "{health}"
    );
    hbd.wait_for(
        Duration::from_secs(10),
        "ingest goes on with a full disk",
        |h| h.get("/api/v1/hosts?limit=1").1["total"] == 200,
    );

    std::fs::remove_file(&filler).expect("free space");
    hbd.wait_for(Duration::from_secs(5), "journal recovers", |h| {
        h.get("/healthz").0 == 200
    });
    let all = events(&hbd, "kind=host_new&limit=1000");
    assert_eq!(all.len(), 200, "no event lost while the disk was full");
    // The failure and its end are events of hbd itself (and so notifications).
    hbd.wait_for(Duration::from_secs(5), "journal system events", |h| {
        let sys = events(h, "kind=system");
        let to = |t: &str| sys.iter().any(|e| e["key"] == "journal" && e["to"] == t);
        to("FAILING") && to("OK")
    });
}
