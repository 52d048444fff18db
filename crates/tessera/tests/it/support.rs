//! Running the real `tessera` binary: as a server on port 0 (its address read from the line it
//! prints), and as a CLI client of it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    // Nothing of the machine's own Tessera setup: no server, no token, no credentials file.
    c.env_remove("TESSERA_URL")
        .env_remove("TESSERA_TOKEN")
        .env("TESSERA_CREDENTIALS", "/nonexistent/tessera/credentials")
        // The logs a user gets when they set nothing.
        .env_remove("TESSERA_LOG")
        // Servers of parallel tests do not compete for 5433.
        .env("TESSERA_PG", "127.0.0.1:0")
        .env("TESSERA_FLIGHT", "127.0.0.1:0");
    c
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// What a finished command printed, and whether it succeeded.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with both outputs unless the command succeeded.
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed (exit code 1).
    pub fn failed(self) -> Self {
        assert!(
            !self.success,
            "command succeeded but should not have\nstdout:\n{}",
            self.stdout
        );
        self
    }
}

pub fn run(args: &[&str]) -> Run {
    tessera().args(args).output().expect("run tessera").into()
}

/// A `tessera serve` process on a free port; killed when dropped.
pub struct Server {
    pub url: String,
    /// The admin token a new mesh's first start printed (the demo's admin persona's).
    pub admin_token: String,
    /// Every line the server printed up to the one that says where it listens.
    pub banner: Vec<String>,
    /// The credentials file the server wrote; the CLI commands of [`Server::cli`] read it.
    pub credentials: PathBuf,
    _credentials_dir: tempfile::TempDir,
    child: Child,
}

impl Server {
    /// Starts `tessera serve` (or `tessera demo`) with `args` plus `--http 127.0.0.1:0`, and
    /// waits for the line that says where it listens.
    pub fn start(command: &str, data_dir: &Path, args: &[&str]) -> Server {
        Self::launch(command, data_dir, args, None)
    }

    /// Starts `tessera serve` again on a mesh an earlier start made (and printed
    /// `admin_token` for): a restart prints no token.
    pub fn restart(data_dir: &Path, args: &[&str], admin_token: &str) -> Server {
        Self::launch("serve", data_dir, args, Some(admin_token.to_string()))
    }

    fn launch(command: &str, data_dir: &Path, args: &[&str], known: Option<String>) -> Server {
        let credentials_dir = tempfile::tempdir().unwrap();
        let credentials = credentials_dir.path().join("credentials");
        let mut child = tessera()
            .env("TESSERA_CREDENTIALS", &credentials)
            .arg(command)
            .args(["--http", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tessera");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = Vec::new();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("Tessera listening on ") {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                    seen.push(line);
                }
                _ => panic!(
                    "tessera {command} exited before listening:\n{}",
                    seen.join("\n")
                ),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let admin_token = known
            .or_else(|| token_printed_for(&seen, "admin"))
            .or_else(|| {
                seen.iter()
                    .map(|l| l.trim())
                    .find(|l| l.starts_with("tsr_"))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| {
                panic!(
                    "tessera {command} printed no admin token (is the data directory new?):\n{}",
                    seen.join("\n")
                )
            });
        Server {
            url,
            admin_token,
            banner: seen,
            credentials,
            _credentials_dir: credentials_dir,
            child,
        }
    }

    /// Runs a client command against this server, with the credentials file the server wrote
    /// (the admin's token), as a user on the server's machine does.
    /// Turns every standard governance policy off with the CLI, as the council may: for tests
    /// of everything but governance, whose small fixtures do not document themselves as the
    /// standard library asks.
    pub fn without_standard_policies(&self) {
        let listed = self.cli(&["policy", "list", "--format", "json"]).ok();
        let policies: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
        for p in policies.iter().filter(|p| p["origin"] == "standard") {
            let id = p["id"].as_str().unwrap();
            let done = self.cli(&["policy", "disable", id]).ok();
            assert!(
                done.stdout
                    .contains(&format!("standard policy {id} is off for the whole mesh")),
                "{}",
                done.stdout
            );
        }
    }

    /// Applies `examples/quickstart` and ingests its three orders (`shop.orders.orders`).
    pub fn with_quickstart(&self) {
        let quickstart = repo_root().join("examples/quickstart");
        self.cli(&["apply", quickstart.to_str().unwrap()]).ok();
        let csv = quickstart.join("orders.csv");
        self.cli(&["ingest", "shop.orders.orders", csv.to_str().unwrap()])
            .ok();
    }

    pub fn cli(&self, args: &[&str]) -> Run {
        self.client_run(
            tessera().env("TESSERA_CREDENTIALS", &self.credentials),
            args,
        )
    }

    /// Runs a client command as the admin from the folder `dir`.
    pub fn cli_in(&self, dir: &Path, args: &[&str]) -> Run {
        self.client_run(
            tessera()
                .current_dir(dir)
                .env("TESSERA_CREDENTIALS", &self.credentials),
            args,
        )
    }

    /// Runs a client command with `token` instead of the admin's.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> Run {
        self.client_run(tessera().env("TESSERA_TOKEN", token), args)
    }

    fn client_run(&self, command: &mut Command, args: &[&str]) -> Run {
        command
            .args(args)
            .arg("--server")
            .arg(&self.url)
            .output()
            .expect("run tessera")
            .into()
    }

    /// An HTTP client that sends the admin token.
    pub fn http(&self) -> reqwest::Client {
        self.http_builder().build().unwrap()
    }

    /// An HTTP client builder that sends the admin token, for clients with more settings.
    pub fn http_builder(&self) -> reqwest::ClientBuilder {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.admin_token).parse().unwrap(),
        );
        reqwest::Client::builder().default_headers(headers)
    }
}

/// The token on the line of a persona's listing (`  NAME  ROLE...  tsr_...`) that the demo
/// prints.
pub fn token_printed_for(lines: &[String], persona: &str) -> Option<String> {
    lines.iter().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(persona))
            .then(|| line.split_whitespace().last())
            .flatten()
            .filter(|w| w.starts_with("tsr_"))
            .map(str::to_string)
    })
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and waits for the process to be gone: a crash, with nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM, as a service manager stopping the server does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit; its exit status, or `None` if it still
    /// runs.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// CPU seconds the server process has used so far (user and system, all threads).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// The most memory the server process has held (its peak resident set), in bytes.
    pub fn peak_memory_bytes(&self) -> u64 {
        self.memory_status("VmHWM:")
    }

    /// The memory the server process holds now (its resident set), in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_status("VmRSS:")
    }

    fn memory_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How much more memory than before a server may hold after a thousand connections were
/// opened, used and closed: a connection's session left behind (hundreds of KiB each) would
/// be several times this.
pub const SOAK_GROWTH_BYTES: u64 = 48 << 20;

/// Runs a job of a client script of `tests/it` (`pg_client.py`: psycopg, `flight_client.py`:
/// ADBC) with the test venv's Python against `target` (a conninfo or a URI), and returns the
/// JSON it printed.
pub fn client_job(script: &str, target: &str, job: &serde_json::Value) -> serde_json::Value {
    let python = std::env::var("TESSERA_TEST_PYTHON").expect("run with scripts/test");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it")
        .join(script);
    let dir = tempfile::tempdir().unwrap();
    let job_file = dir.path().join("job.json");
    std::fs::write(&job_file, job.to_string()).unwrap();
    let out: Run = Command::new(python)
        .arg(script)
        .arg(target)
        .arg(&job_file)
        .output()
        .expect("run python")
        .into();
    let out = out.ok();
    serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}
