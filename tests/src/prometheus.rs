//! A real Prometheus server (Debian's `prometheus`) scraping test targets every second, and
//! its query API.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::object_stores::free_port;

/// A Prometheus process with its own data directory; killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    url: String,
    jobs: usize,
    _dir: tempfile::TempDir,
}

/// One scrape job: its name, `host:port`, and Basic credentials if any.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub name: &'a str,
    pub target: &'a str,
    pub basic_auth: Option<(&'a str, &'a str)>,
}

impl Prometheus {
    /// Starts scraping `jobs` (path `/metrics`, every second) and waits until it is ready.
    pub fn start(jobs: &[Job<'_>]) -> Self {
        crate::require_tool("prometheus");
        let dir = tempfile::tempdir().expect("scratch directory");
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for job in jobs {
            config.push_str(&format!(
                "  - job_name: {}\n    static_configs:\n      - targets: [\"{}\"]\n",
                job.name, job.target
            ));
            if let Some((user, password)) = job.basic_auth {
                config.push_str(&format!(
                    "    basic_auth:\n      username: {user}\n      password: \"{password}\"\n"
                ));
            }
        }
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            jobs: jobs.len(),
            _dir: dir,
        };
        crate::eventually("prometheus is ready", Duration::from_secs(30), || {
            reqwest::blocking::get(format!("{}/-/ready", prometheus.url))
                .is_ok_and(|r| r.status().is_success())
        });
        prometheus
    }

    /// An instant query: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let answer: Value = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{promql}: {answer}"))
            .iter()
            .map(|series| {
                let value = series["value"][1].as_str().expect("a sample value");
                (series["metric"].clone(), value.parse().expect("a number"))
            })
            .collect()
    }

    /// The value of a query that answers one series.
    pub fn value(&self, promql: &str) -> f64 {
        let series = self.query(promql);
        assert_eq!(series.len(), 1, "{promql}: {series:?}");
        series[0].1
    }

    /// Waits until every target has been scraped successfully after this call began: the
    /// figures then include everything done before it.
    pub fn wait_for_fresh_scrapes(&self) {
        let since = self.value("vector(time())");
        crate::eventually(
            "a new scrape of every target",
            Duration::from_secs(30),
            || {
                let fresh = self.query(&format!("timestamp(up == 1) > {since}"));
                fresh.len() == self.jobs
            },
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
