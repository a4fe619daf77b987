//! The overview's sparkline data (`/dashboard/history.json`): the recent summary history
//! of every host, rounded to what a 60×16 sparkline can show, fetched once by the page's
//! script and then extended from the WebSocket.

use serde::Serialize;

use super::views;
use crate::registry::Registry;

/// Recent summary history of every host for the overview's sparklines:
/// `{"hosts": {"name": {"cpu": [..], "mem": [..], "fs": [..], "load": [..]}}}`.
pub fn history_json(reg: &Registry) -> String {
    #[derive(Serialize)]
    struct Series {
        cpu: Vec<Option<f32>>,
        mem: Vec<Option<f32>>,
        fs: Vec<Option<f32>>,
        load: Vec<Option<f32>>,
    }
    fn round(v: f32, scale: f32) -> Option<f32> {
        v.is_finite().then(|| (v * scale).round() / scale)
    }
    let mut hosts = serde_json::Map::new();
    for h in reg.iter() {
        let skip = h.history.len().saturating_sub(views::SPARK_SAMPLES);
        let mut s = Series {
            cpu: Vec::new(),
            mem: Vec::new(),
            fs: Vec::new(),
            load: Vec::new(),
        };
        for x in h.history.iter().skip(skip) {
            s.cpu.push(round(x.cpu, 10.0));
            s.mem.push(round(x.mem, 10.0));
            s.fs.push(round(x.fs, 10.0));
            s.load.push(round(x.load, 100.0));
        }
        if let Ok(v) = serde_json::to_value(&s) {
            hosts.insert(h.name.to_string(), v);
        }
    }
    serde_json::json!({ "hosts": hosts }).to_string()
}
