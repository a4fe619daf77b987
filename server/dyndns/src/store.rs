//! What hbd last wrote to each record, saved in the data folder (`dyndns.json`) so a
//! restart does not send the same update again.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::wire::RType;

pub const FILE: &str = "dyndns.json";

/// Record name → type (`A`, `AAAA`) → address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub records: BTreeMap<String, BTreeMap<String, IpAddr>>,
}

impl Saved {
    pub fn get(&self, name: &str, rtype: RType) -> Option<IpAddr> {
        self.records.get(name)?.get(rtype.as_str()).copied()
    }

    pub fn set(&mut self, name: &str, rtype: RType, addr: Option<IpAddr>) {
        let e = self.records.entry(name.to_string()).or_default();
        match addr {
            Some(a) => {
                e.insert(rtype.as_str().to_string(), a);
            }
            None => {
                e.remove(rtype.as_str());
            }
        }
        if e.is_empty() {
            self.records.remove(name);
        }
    }
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Loads the saved state; a missing file is an empty state, a broken one too (with the
/// problem returned for the log: the start-up query then finds the truth).
pub fn load(path: &Path) -> (Saved, Option<String>) {
    match std::fs::read(path) {
        Ok(b) => match serde_json::from_slice(&b) {
            Ok(s) => (s, None),
            Err(e) => (
                Saved::default(),
                Some(format!(
                    "{} is not valid ({e}); starting empty",
                    path.display()
                )),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Saved::default(), None),
        Err(e) => (
            Saved::default(),
            Some(format!(
                "cannot read {}: {e}; starting empty",
                path.display()
            )),
        ),
    }
}

/// Writes atomically (temporary file, fsync, rename).
pub fn save(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_broken_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = path(dir.path());
        assert_eq!(load(&p), (Saved::default(), None));
        let mut s = Saved::default();
        s.set(
            "web1.dyn.test.",
            RType::A,
            Some("127.0.0.3".parse().expect("ip")),
        );
        s.set(
            "web1.dyn.test.",
            RType::Aaaa,
            Some("::1".parse().expect("ip")),
        );
        save(&p, &s).expect("save");
        let (back, problem) = load(&p);
        assert_eq!((back.clone(), problem), (s, None));
        assert_eq!(
            back.get("web1.dyn.test.", RType::A),
            Some("127.0.0.3".parse().expect("ip"))
        );
        let mut cleared = back;
        cleared.set("web1.dyn.test.", RType::A, None);
        cleared.set("web1.dyn.test.", RType::Aaaa, None);
        assert!(cleared.records.is_empty());

        std::fs::write(&p, b"{not json").expect("write");
        let (s, problem) = load(&p);
        assert_eq!(s, Saved::default());
        assert!(problem.expect("problem").contains(FILE));
    }
}
