//! The Prometheus source: `sum by (le)` of the cumulative `rum_web_vital_bucket` series the
//! bridge exposes at `/metrics/rum` (docs/budgets.md), fetched with an instant query over the
//! HTTP API; the percentile is then computed by [`super::quantile`], the same code as for the
//! file source, so both sources agree on identical data.

use serde::Deserialize;

use super::file::Vital;
use super::quantile::Buckets;
use super::source::Selector;
use super::BudgetError;

/// The histogram family the bridge exposes (see `crate::admin` `/metrics/rum`).
pub const FAMILY: &str = "rum_web_vital";

/// A Prometheus server's HTTP API.
pub struct PrometheusSource {
    base: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    result: Vec<Sample>,
}

#[derive(Deserialize)]
struct Sample {
    metric: std::collections::HashMap<String, String>,
    value: (f64, String),
}

impl PrometheusSource {
    /// A client for `base` (`http://host:9090`; `https` checks the server against the bundled
    /// Mozilla roots).
    pub fn new(base: &str) -> Result<PrometheusSource, BudgetError> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let fail = |message: String| BudgetError::Prometheus {
            url: base.to_owned(),
            message,
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(PrometheusSource {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// The PromQL the budget runs for `vital` over `selector`.
    pub fn query(vital: Vital, selector: &Selector) -> String {
        let mut matchers = vec![format!("vital=\"{}\"", vital.as_str())];
        for (label, value) in [
            ("app", &selector.app),
            ("version", &selector.version),
            ("page", &selector.page),
        ] {
            if let Some(v) = value {
                matchers.push(format!("{label}=\"{}\"", escape(v)));
            }
        }
        format!("sum by (le) ({FAMILY}_bucket{{{}}})", matchers.join(","))
    }

    pub async fn buckets(&self, vital: Vital, selector: &Selector) -> Result<Buckets, BudgetError> {
        let query = Self::query(vital, selector);
        let url = format!("{}/api/v1/query", self.base);
        let fail = |message: String| BudgetError::Prometheus {
            url: self.base.clone(),
            message,
        };
        let url = reqwest::Url::parse_with_params(&url, [("query", &query)])
            .map_err(|e| fail(format!("not a URL: {e}")))?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(format!("unreachable: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| fail(format!("reading the answer: {e}")))?;
        let answer: Answer = serde_json::from_str(&body)
            .map_err(|e| fail(format!("HTTP {status}, not a Prometheus API answer: {e}")))?;
        if answer.status != "success" {
            return Err(fail(format!(
                "query {query} failed: {}",
                answer.error.unwrap_or_default()
            )));
        }
        let mut buckets = Vec::new();
        for s in answer.data.map(|d| d.result).unwrap_or_default() {
            let le = s.metric.get("le").map(String::as_str).unwrap_or("");
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse()
                    .map_err(|_| fail(format!("bucket with le={le:?}")))?
            };
            let count: f64 = s
                .value
                .1
                .parse()
                .map_err(|_| fail(format!("sample value {:?}", s.value.1)))?;
            buckets.push((le, count));
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let buckets = Buckets(buckets);
        if buckets.count() > 0.0 && buckets.0.last().is_some_and(|b| b.0 == f64::INFINITY) {
            Ok(buckets)
        } else {
            Err(BudgetError::NoSamples {
                metric: vital.as_str(),
                selector: selector.describe(),
            })
        }
    }
}

/// A PromQL double-quoted string body.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_selects_by_label_and_escapes() {
        let q = PrometheusSource::query(
            Vital::Lcp,
            &Selector {
                app: Some("shop\"web".into()),
                version: None,
                page: Some("/products/{id}".into()),
            },
        );
        assert_eq!(
            q,
            r#"sum by (le) (rum_web_vital_bucket{vital="lcp",app="shop\"web",page="/products/{id}"})"#
        );
    }
}
