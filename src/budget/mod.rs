//! `rum-bridge budget`: the performance-budget gate a CI job runs after its end-to-end suite.
//!
//! Why it lives in the bridge: the bridge already owns the web-vital histograms (their bounds,
//! attributes and temporality), so it is the one place that can read them back correctly, from
//! its own OTLP-JSON file output or from Prometheus after a scrape of `/metrics/rum`, and turn
//! "p75 LCP of `/products/{id}` in this release" into an exit status (docs/budgets.md).
//!
//! The parts: `file` (the budget file), `quantile` (Prometheus' `histogram_quantile`),
//! `source` (the OTLP-JSON reader and the series selector), `prometheus` (the HTTP API source),
//! `report` (table, JSON, JUnit).

mod file;
mod prometheus;
mod quantile;
mod report;
mod source;

use std::path::PathBuf;

pub use file::{load as load_budgets, parse as parse_budgets, Budget, Vital};
pub use prometheus::{PrometheusSource, FAMILY as PROMETHEUS_FAMILY};
pub use quantile::{quantile, Buckets};
pub use report::{junit, render_json, render_text, Outcome, Verdict};
pub use source::{FileSource, Selector};

/// A usage or data error: the gate cannot decide (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("budget file {path}: {message}")]
    BudgetFile { path: PathBuf, message: String },
    #[error("{path}:{line}: not OTLP-JSON metrics: {message}")]
    BadData {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no samples of {metric} for {selector}")]
    NoSamples {
        metric: &'static str,
        selector: String,
    },
    #[error("Prometheus at {url}: {message}")]
    Prometheus { url: String, message: String },
}

/// Where the histograms are read from.
pub enum Source {
    File(FileSource),
    Prometheus(PrometheusSource),
}

impl Source {
    async fn buckets(&self, vital: Vital, selector: &Selector) -> Result<Buckets, BudgetError> {
        match self {
            Source::File(f) => f.buckets(vital, selector),
            Source::Prometheus(p) => p.buckets(vital, selector).await,
        }
    }
}

/// What is gated: the app, the version under test and the baseline version.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub app: Option<String>,
    pub version: Option<String>,
    pub baseline: Option<String>,
}

/// Evaluates every budget; the first data error stops the gate.
pub async fn evaluate(
    budgets: &[Budget],
    source: &Source,
    target: &Target,
) -> Result<Vec<Outcome>, BudgetError> {
    let mut outcomes = Vec::with_capacity(budgets.len());
    for budget in budgets {
        let q = budget.percentile / 100.0;
        let selector = |version: &Option<String>| Selector {
            app: target.app.clone(),
            version: version.clone(),
            page: budget.page.clone(),
        };
        let value = percentile(source, budget.metric, &selector(&target.version), q).await?;
        let baseline = match &target.baseline {
            Some(b) => {
                Some(percentile(source, budget.metric, &selector(&Some(b.clone())), q).await?)
            }
            None => None,
        };
        outcomes.push(Outcome::judge(budget, target, value, baseline));
    }
    Ok(outcomes)
}

async fn percentile(
    source: &Source,
    vital: Vital,
    selector: &Selector,
    q: f64,
) -> Result<f64, BudgetError> {
    let buckets = source.buckets(vital, selector).await?;
    buckets.quantile(q).ok_or_else(|| BudgetError::NoSamples {
        metric: vital.as_str(),
        selector: selector.describe(),
    })
}
