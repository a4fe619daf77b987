//! Headless Chromium driven over the WebDriver protocol: chromedriver is started on a
//! free loopback port for each browser, and spoken to with plain HTTP + JSON (ureq).
//! Chrome DevTools commands (dark mode, phone size) go through chromedriver's
//! `goog/cdp/execute`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one browser session.
pub struct Browser {
    base: String,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Options for a new browser.
pub struct Options {
    pub width: u32,
    pub height: u32,
    pub javascript: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            width: 1440,
            height: 900,
            javascript: true,
        }
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free TCP port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. Fails (does not skip) when they are
    /// not installed.
    pub fn start(opts: Options) -> Browser {
        for (path, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the dashboard tests need headless Chromium. Install it with \
                 `sudo apt-get install -y chromium chromium-driver` (or run `scripts/deps`); \
                 package {pkg}"
            );
        }
        let port = free_tcp_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            let ready = ureq::get(&format!("{base}/status"))
                .timeout(Duration::from_secs(2))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not become ready within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={},{}", opts.width, opts.height),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !opts.javascript {
            args.push("--blink-settings=scriptEnabled=false".into());
        }
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "timeouts": {"script": 30_000, "pageLoad": 60_000},
            }}
        });
        let mut b = Browser {
            base,
            session: String::new(),
            driver,
            _profile: profile,
        };
        let v = b.call("POST", "/session", caps);
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.base, path);
        let req = ureq::request(method, &url).timeout(Duration::from_secs(90));
        let res = if method == "GET" {
            req.call()
        } else {
            req.send_json(body)
        };
        match res {
            Ok(r) => r.into_json::<Value>().expect("JSON from chromedriver")["value"].clone(),
            Err(ureq::Error::Status(code, r)) => {
                let v: Value = r.into_json().unwrap_or(Value::Null);
                panic!(
                    "WebDriver {method} {path}: HTTP {code}: {} {}",
                    v["value"]["error"], v["value"]["message"]
                )
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
    }

    /// Runs a script (`return ...;`) in the page.
    pub fn exec(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Polls `script` until it returns something truthy; returns that value.
    pub fn wait(&self, limit: Duration, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.exec(script);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The text of the first element matching `css` (WebDriver's own, no page script).
    pub fn text(&self, css: &str) -> String {
        let el = self.session_call(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        let id = el[ELEMENT].as_str().expect("element id").to_string();
        self.session_call("GET", &format!("/element/{id}/text"), Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// How many elements match `css` (WebDriver's own, no page script).
    pub fn count(&self, css: &str) -> usize {
        self.session_call(
            "POST",
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .as_array()
        .map_or(0, Vec::len)
    }

    /// A Chrome DevTools command.
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.session_call(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": cmd, "params": params }),
        )
    }

    pub fn dark(&self, on: bool) {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if on { "dark" } else { "light" }}]}),
        );
    }

    pub fn phone(&self) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        );
    }

    /// Saves a PNG of the viewport (or the whole page) in `target/test-artifacts/`.
    pub fn screenshot(&self, name: &str, full_page: bool) -> PathBuf {
        let b64 = if full_page {
            let metrics = self.cdp("Page.getLayoutMetrics", json!({}));
            let w = metrics["cssContentSize"]["width"]
                .as_f64()
                .unwrap_or(1440.0);
            let h = metrics["cssContentSize"]["height"]
                .as_f64()
                .unwrap_or(900.0)
                .min(6000.0);
            self.cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}),
            )["data"]
                .as_str()
                .expect("screenshot data")
                .to_string()
        } else {
            self.session_call("GET", "/screenshot", Value::Null)
                .as_str()
                .expect("screenshot data")
                .to_string()
        };
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("create target/test-artifacts");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, base64_decode(&b64)).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session))
                .timeout(Duration::from_secs(10))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `target/test-artifacts` (not committed).
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .expect("target dir")
        .join("test-artifacts")
}

fn base64_decode(s: &str) -> Vec<u8> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGJkIGRhc2hib2FyZA=="), b"hbd dashboard");
    assert_eq!(base64_decode("AAEC/w=="), [0, 1, 2, 255]);
}
