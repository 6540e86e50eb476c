//! A headless Chromium driven over WebDriver (W3C) through `chromedriver`, for tests of the
//! kiosk page. Include it with `#[path = "common/browser.rs"] mod browser;`.
//!
//! Each [`Browser`] starts its own chromedriver on a free loopback port and its own Chromium
//! with a private temporary profile. Dropping it (panics included) ends the WebDriver session,
//! kills chromedriver and any Chromium process still using that profile: nothing is left behind.
//!
//! The only waiting is [`Browser::wait_for`], which polls a condition inside the page; tests
//! never sleep to order their steps. `CHROMEDRIVER` and `CHROMIUM` override the binaries
//! (default `/usr/bin/chromedriver`, `/usr/bin/chromium`). Chromium runs as root in CI
//! containers, hence `--no-sandbox`.

#![allow(dead_code)]
// Test support: a failed browser step must stop the test loudly, with what the page showed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long one WebDriver command may take (a navigation included).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How long an in-page script may run (wait_for raises it for longer waits).
const SCRIPT_LIMIT: Duration = Duration::from_secs(120);
/// How long chromedriver and Chromium may take to start.
const START_LIMIT: Duration = Duration::from_secs(30);

const FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--window-size=1080,1920",
];

/// A failed WebDriver command: the W3C error code and message, or a transport problem.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    driver_port: u16,
    driver: Child,
    profile: tempfile::TempDir,
    /// Console messages read so far (chromedriver hands each one out once).
    console: Mutex<Vec<String>>,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (portrait 1080x1920) with `extra_args`
    /// added to the flags.
    pub async fn start(extra_args: &[&str]) -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client for chromedriver");
        let profile = tempfile::Builder::new()
            .prefix("kiosk-chromium-")
            .tempdir()
            .expect("a temporary Chromium profile");
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());

        // A free port can be taken between our probe and chromedriver's bind: try again then.
        let mut attempt = 0;
        let (driver, driver_port) = loop {
            attempt += 1;
            let port = free_port();
            let mut driver = Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!(
                    "--log-path={}",
                    profile.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
            if driver_ready(&http, port, &mut driver).await {
                break (driver, port);
            }
            let _ = driver.kill();
            let _ = driver.wait();
            assert!(attempt < 3, "chromedriver did not start (port {port})");
        };

        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ));
        args.extend(extra_args.iter().map(|s| (*s).to_owned()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": {
                        "script": SCRIPT_LIMIT.as_millis(),
                        "pageLoad": 30_000,
                        "implicit": 0
                    },
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                    "goog:loggingPrefs": {"browser": "ALL"}
                }
            }
        });
        // From here on `browser` owns the processes: a failure below still cleans up in Drop.
        let mut browser = Browser {
            http,
            session: String::new(),
            driver_port,
            driver,
            profile,
            console: Mutex::new(Vec::new()),
        };
        let base = format!("http://127.0.0.1:{driver_port}");
        let answer = send(
            &browser.http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
            START_LIMIT,
        )
        .await
        .unwrap_or_else(|e| panic!("no Chromium session: {e}\n{}", browser.driver_log()));
        let id = answer["sessionId"]
            .as_str()
            .expect("a session id from chromedriver");
        browser.session = format!("{base}/session/{id}");
        // --window-size sizes the window; the page gets less in headless=new. A kiosk screen
        // is all page: make the viewport itself 1080x1920.
        browser.set_viewport_size(1080, 1920).await;
        browser
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The rendered text of the first element matching `css` (as a user sees it).
    pub async fn text(&self, css: &str) -> String {
        let element = self.element(css).await;
        self.element_command(reqwest::Method::GET, &element, "/text", None, css)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// An attribute (or, failing that, the DOM property) of the first element matching `css`.
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.element(css).await;
        let value = self
            .element_command(
                reqwest::Method::GET,
                &element,
                &format!("/attribute/{name}"),
                None,
                css,
            )
            .await;
        match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }

    /// Whether an element matches `css` (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        self.eval(&format!(
            "return document.querySelector({}) !== null",
            json!(css)
        ))
        .await
            == Value::Bool(true)
    }

    /// Whether the first element matching `css` is visible to a user.
    pub async fn displayed(&self, css: &str) -> bool {
        let element = self.element(css).await;
        self.element_command(reqwest::Method::GET, &element, "/displayed", None, css)
            .await
            == Value::Bool(true)
    }

    /// Clicks the first element matching `css` like a user would (it must be visible and
    /// not covered).
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.element_command(
            reqwest::Method::POST,
            &element,
            "/click",
            Some(json!({})),
            css,
        )
        .await;
    }

    /// Chooses the `<option>` whose value is `value` in the `<select>` matching `css`, by
    /// clicking it.
    pub async fn select(&self, css: &str, value: &str) {
        let select = self.element(css).await;
        let options = self
            .element_command(
                reqwest::Method::POST,
                &select,
                "/elements",
                Some(json!({"using": "css selector", "value": "option"})),
                css,
            )
            .await;
        for option in options.as_array().cloned().unwrap_or_default() {
            let id = option[ELEMENT].as_str().unwrap_or_default().to_owned();
            let own = self
                .element_command(reqwest::Method::GET, &id, "/property/value", None, css)
                .await;
            if own.as_str() == Some(value) {
                self.element_command(reqwest::Method::POST, &id, "/click", Some(json!({})), css)
                    .await;
                return;
            }
        }
        panic!("{css} has no option {value:?}\n{}", self.describe().await);
    }

    /// Runs `script` in the page as the body of a function (WebDriver "execute script": use
    /// `return` to hand a JSON value back) and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        match self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": script, "args": []})),
            )
            .await
        {
            Ok(value) => value,
            Err(e) => panic!("script failed: {e}\nscript: {script}"),
        }
    }

    /// Waits until the JavaScript expression `condition` is truthy in the page, checking it
    /// in the page every 50 ms, and returns its value; panics after `timeout` with what the
    /// page shows.
    pub async fn wait_for(&self, condition: &str, timeout: Duration) -> Value {
        match self.try_wait_for(condition, timeout).await {
            Some(value) => value,
            None => panic!(
                "not true after {timeout:?}: {condition}\n{}",
                self.describe().await
            ),
        }
    }

    /// Like [`Browser::wait_for`], but `None` when `condition` stays false.
    pub async fn try_wait_for(&self, condition: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        if timeout + Duration::from_secs(10) > SCRIPT_LIMIT {
            let ms = (timeout + Duration::from_secs(10)).as_millis();
            self.command(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({ "script": ms })),
            )
            .await
            .unwrap_or_else(|e| panic!("cannot set the script timeout: {e}"));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // The condition goes into the script's source, not through eval(): the page's
            // CSP (no 'unsafe-eval') does not apply to the script WebDriver injects.
            let script = format!(
                "const done = arguments[arguments.length - 1];\n\
                 const deadline = Date.now() + {ms};\n\
                 const check = () => {{\n\
                   let value;\n\
                   try {{ value = ({condition}); }} catch (e) {{ value = undefined; }}\n\
                   if (value) done({{met: true, value: value}});\n\
                   else if (Date.now() >= deadline) done({{met: false}});\n\
                   else setTimeout(check, 50);\n\
                 }};\n\
                 check();",
                ms = left.as_millis(),
            );
            let answer = send(
                &self.http,
                reqwest::Method::POST,
                &format!("{}/execute/async", self.session),
                Some(json!({"script": script, "args": []})),
                left + Duration::from_secs(10),
            )
            .await;
            match answer {
                Ok(value) if value["met"] == Value::Bool(true) => {
                    return Some(value["value"].clone())
                }
                Ok(_) => return None,
                // The page navigated while we waited: ask the new page.
                Err(e)
                    if Instant::now() < deadline
                        && (e.message.contains("unloaded") || e.message.contains("context")) =>
                {
                    continue
                }
                Err(e) => panic!("cannot wait for {condition}: {e}"),
            }
        }
    }

    /// Resizes the window so that the page itself gets `width` x `height` CSS pixels (the
    /// kiosk's screen: 1080x1920 portrait, 1920x1080 landscape), whatever the window's frame.
    pub async fn set_viewport_size(&self, width: u32, height: u32) {
        let frame = self
            .eval("return [outerWidth - innerWidth, outerHeight - innerHeight]")
            .await;
        let (dw, dh) = (
            frame[0].as_u64().unwrap_or(0) as u32,
            frame[1].as_u64().unwrap_or(0) as u32,
        );
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width + dw, "height": height + dh})),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot resize to {width}x{height}: {e}"));
        let inner = self.eval("return [innerWidth, innerHeight]").await;
        assert_eq!(inner, json!([width, height]), "the viewport after resizing");
    }

    /// Saves a PNG of the viewport to `path` (folders created as needed).
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await
            .unwrap_or_else(|e| panic!("no screenshot: {e}"));
        let png = base64_decode(encoded.as_str().unwrap_or_default());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path.to_path_buf()
    }

    /// Every console message of the page so far, as `LEVEL message` (CSP violations and
    /// uncaught errors included: Chromium reports them as `SEVERE`).
    pub async fn console_logs(&self) -> Vec<String> {
        if let Ok(entries) = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await
        {
            let mut console = self.console.lock().unwrap();
            for entry in entries.as_array().cloned().unwrap_or_default() {
                console.push(format!(
                    "{} {}",
                    entry["level"].as_str().unwrap_or("?"),
                    entry["message"].as_str().unwrap_or_default()
                ));
            }
        }
        self.console.lock().unwrap().clone()
    }

    /// What the page shows, for failure messages: its address, the kiosk's data attributes,
    /// its text and its console.
    pub async fn describe(&self) -> String {
        let page = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({
                    "script": "const k = document.getElementById('kiosk'); \
                               return {url: location.href, \
                                       data: k ? Object.assign({}, k.dataset) : null, \
                                       text: document.body ? document.body.innerText : ''};",
                    "args": []
                })),
            )
            .await
            .unwrap_or_else(|e| json!({"error": e.to_string()}));
        let console = self.console_logs().await;
        format!(
            "page: {}\nconsole:\n  {}",
            serde_json::to_string_pretty(&page).unwrap_or_default(),
            console.join("\n  ")
        )
    }

    // ---- WebDriver plumbing

    async fn element(&self, css: &str) -> String {
        match self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
        {
            Ok(found) => match found[ELEMENT].as_str() {
                Some(id) => id.to_owned(),
                None => panic!("no element reference for {css}: {found}"),
            },
            Err(e) => panic!("no element {css}: {e}\n{}", self.describe().await),
        }
    }

    async fn element_command(
        &self,
        method: reqwest::Method,
        element: &str,
        path: &str,
        body: Option<Value>,
        css: &str,
    ) -> Value {
        match self
            .command(method, &format!("/element/{element}{path}"), body)
            .await
        {
            Ok(value) => value,
            Err(e) => panic!("{path} on {css} failed: {e}\n{}", self.describe().await),
        }
    }

    /// One WebDriver command on this session (`path` after `/session/ID`), for what the
    /// methods here do not cover (`tests/common/kiosk.rs`: key presses, axe-core).
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        send(
            &self.http,
            method,
            &format!("{}{path}", self.session),
            body,
            COMMAND_LIMIT,
        )
        .await
    }

    fn driver_log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log"))
            .map(|log| {
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            })
            .unwrap_or_default()
    }

    /// Chromium processes started with this browser's profile (found through /proc).
    fn chromium_pids(&self) -> Vec<u32> {
        let marker = format!(
            "--user-data-dir={}",
            self.profile.path().join("profile").display()
        );
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|cmdline| {
                        cmdline
                            .split(|b| *b == 0)
                            .any(|arg| arg == marker.as_bytes())
                    })
                    .unwrap_or(false)
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End the session: chromedriver closes Chromium. Plain blocking HTTP, since Drop
        // may run outside (or while unwinding out of) the async runtime.
        if !self.session.is_empty() {
            let path = self
                .session
                .trim_start_matches(&format!("http://127.0.0.1:{}", self.driver_port))
                .to_owned();
            let _ = blocking_delete(self.driver_port, &path);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Whatever survived (a crashed session, a failed start) is killed by pid.
        for pid in self.chromium_pids() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    limit: Duration,
) -> Result<Value, WebDriverError> {
    let mut request = http.request(method, url).timeout(limit);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let transport = |e: reqwest::Error| WebDriverError {
        error: "transport".into(),
        message: e.to_string(),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(transport)?;
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        // New Session answers {"value": {"sessionId", "capabilities"}}.
        Ok(value)
    } else {
        Err(WebDriverError {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// Waits until chromedriver on `port` says it is ready (or has exited).
async fn driver_ready(http: &reqwest::Client, port: u16, driver: &mut Child) -> bool {
    let deadline = Instant::now() + START_LIMIT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.try_wait() {
            return false; // it exited: most likely the port was taken
        }
        if let Ok(status) = send(
            http,
            reqwest::Method::GET,
            &format!("http://127.0.0.1:{port}/status"),
            None,
            Duration::from_secs(2),
        )
        .await
        {
            if status["ready"] == Value::Bool(true) {
                return true;
            }
        }
        // Waiting for a process to start listening: nothing in a page to poll yet.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn blocking_delete(port: u16, path: &str) -> std::io::Result<()> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once Chromium has quit; it keeps the connection open, so read
    // the headers and Content-Length bytes rather than up to the end of the stream.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        answer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return Ok(());
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let Some(v) = value(c) else { continue }; // padding, line breaks
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}
