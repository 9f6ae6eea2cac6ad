//! A real browser for whole-daemon tests: headless Chromium (Debian's `chromium`) driven over
//! WebDriver by `chromedriver` and the fantoccini client, plus a tiny static server for test
//! pages and the prebuilt browser bundles of the npm packages in `tests/browser/`.
//!
//! Everything listens on and talks to 127.0.0.1 only. Chromium runs with the flags this machine
//! needs (root, no GPU, closed network) and a fresh profile; chromedriver and the browsers it
//! started are one process group, killed together when the [`Browser`] is dropped.
//!
//! `scripts/install-test-deps.sh` installs Chromium, ChromeDriver and the npm packages.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::{free_port, poll, repo_root, WAIT};

/// Chromium's command line: headless as root on a machine with no GPU and no outside network.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // A fixed viewport: the same layout (LCP element, layout shifts) on every run.
    "--window-size=1280,800",
];

/// `$CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium_binary() -> PathBuf {
    installed("CHROMIUM", "/usr/bin/chromium", "chromium")
}

/// `$CHROMEDRIVER`, else Debian's `/usr/bin/chromedriver`.
pub fn chromedriver_binary() -> PathBuf {
    installed("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver")
}

fn installed(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found: browser tests need Debian's `{package}` package \
         (run scripts/install-test-deps.sh, or set {var})",
        path.display()
    );
    path
}

/// A process started as the leader of its own process group; dropping it kills the group
/// (chromedriver and every Chromium process it started), by that group's id only.
struct ProcessGroup(Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// Headless Chromium behind a chromedriver, with a fresh profile.
pub struct Browser {
    pub client: Client,
    _driver: ProcessGroup,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let chromium = chromium_binary();
        let chromedriver = chromedriver_binary();
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let driver = ProcessGroup(child);

        let driver_url = format!("http://127.0.0.1:{port}");
        let http = super::http_client();
        let status_url = format!("{driver_url}/status");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let ready = match http.get(&status_url).send().await {
                Ok(r) => r.bytes().await.is_ok_and(|body| {
                    serde_json::from_slice::<Value>(&body)
                        .is_ok_and(|v| v["value"]["ready"] == true)
                }),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|e| panic!("start Chromium through chromedriver: {e}"));
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Navigates and waits for the page's `load` event (WebDriver's normal page-load strategy).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Runs `script` (a function body: use `return` for a value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls the JavaScript expression `expr` until it is truthy, and returns its value.
    pub async fn wait_for(&self, what: &str, expr: &str) -> Value {
        let script = format!("return ({expr}) || null;");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let v = self.eval(&script).await;
            if !v.is_null() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting in the page for {what} ({expr})"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Clicks the element matching `css` with real (trusted) input events, as a user would.
    pub async fn click(&self, css: &str) {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"));
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Leaves the page for `about:blank`, which makes it hidden (`visibilitychange`) and fires
    /// `pagehide`: the moment RUM agents send what they still hold.
    pub async fn leave_page(&self) {
        self.goto("about:blank").await;
    }

    /// Ends the WebDriver session (Chromium exits), then stops chromedriver.
    pub async fn close(self) {
        let Browser { client, .. } = self;
        let _ = client.close().await;
    }
}

/// Serves `router` on a free 127.0.0.1 port until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A file of an npm package installed under `tests/browser/node_modules`.
pub fn npm_file(path: &str) -> String {
    let full = repo_root().join("tests/browser/node_modules").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/install-test-deps.sh (npm ci in tests/browser)",
            full.display()
        )
    })
}

/// A JavaScript response.
pub fn javascript(body: String) -> axum::response::Response {
    axum::response::IntoResponse::into_response((
        [(http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        body,
    ))
}

/// Polls until `addr` accepts TCP connections.
pub async fn wait_listening(what: &str, addr: SocketAddr) {
    poll(what, WAIT, || std::net::TcpStream::connect(addr).ok()).await;
}
