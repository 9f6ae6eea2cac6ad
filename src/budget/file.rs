//! The budget file: `[[budget]]` tables, typed and checked before any data is read, so a typo
//! fails the CI job with the offending key instead of silently gating nothing.

use std::path::Path;

use serde::Deserialize;

use super::BudgetError;

/// A web vital a budget can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vital {
    Lcp,
    Inp,
    Cls,
    Fcp,
    Ttfb,
}

impl Vital {
    /// The short name used in budget files, tables and the Prometheus `vital` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Vital::Lcp => "lcp",
            Vital::Inp => "inp",
            Vital::Cls => "cls",
            Vital::Fcp => "fcp",
            Vital::Ttfb => "ttfb",
        }
    }

    /// The OTLP histogram the bridge's aggregator writes for this vital.
    pub fn otlp_name(self) -> &'static str {
        match self {
            Vital::Lcp => "browser.web_vital.lcp",
            Vital::Inp => "browser.web_vital.inp",
            Vital::Cls => "browser.web_vital.cls",
            Vital::Fcp => "browser.web_vital.fcp",
            Vital::Ttfb => "browser.web_vital.ttfb",
        }
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    budget: Vec<RawBudget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    metric: Vital,
    percentile: f64,
    max: Option<f64>,
    max_regression: Option<String>,
    page: Option<String>,
}

/// One checked budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub metric: Vital,
    /// 0 < percentile < 100.
    pub percentile: f64,
    /// The largest allowed value (ms; CLS unitless).
    pub max: Option<f64>,
    /// The largest allowed growth over the baseline, as a fraction (`"10%"` → 0.1).
    pub max_regression: Option<f64>,
    /// A `url.template`; all pages when absent.
    pub page: Option<String>,
}

impl Budget {
    /// A stable name for reports and JUnit test cases: `lcp p75 /products/{id}`.
    pub fn name(&self) -> String {
        format!(
            "{} p{} {}",
            self.metric.as_str(),
            self.percentile,
            self.page.as_deref().unwrap_or("(all pages)")
        )
    }
}

/// Reads and checks a budget file.
pub fn load(path: &Path) -> Result<Vec<Budget>, BudgetError> {
    let text = std::fs::read_to_string(path).map_err(|source| BudgetError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|message| BudgetError::BudgetFile {
        path: path.to_owned(),
        message,
    })
}

/// Parses budget-file text; the error message names the key and the budget.
pub fn parse(text: &str) -> Result<Vec<Budget>, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| e.to_string())?;
    if raw.budget.is_empty() {
        return Err("no [[budget]] tables".into());
    }
    raw.budget
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let at = |key: &str, what: String| format!("budget[{i}].{key}: {what}");
            if !(b.percentile > 0.0 && b.percentile < 100.0) {
                return Err(at(
                    "percentile",
                    format!("{} is not between 0 and 100 (exclusive)", b.percentile),
                ));
            }
            if let Some(max) = b.max {
                if !max.is_finite() || max < 0.0 {
                    return Err(at("max", format!("{max} is not a finite number ≥ 0")));
                }
            }
            let max_regression = b
                .max_regression
                .as_deref()
                .map(|s| {
                    parse_percent(s).ok_or_else(|| {
                        at(
                            "max_regression",
                            format!("{s:?} is not a percentage such as \"10%\""),
                        )
                    })
                })
                .transpose()?;
            if b.max.is_none() && max_regression.is_none() {
                return Err(at(
                    "max",
                    "a budget needs `max`, `max_regression` or both".into(),
                ));
            }
            if let Some(page) = &b.page {
                if !page.starts_with('/') {
                    return Err(at(
                        "page",
                        format!("{page:?} is not a url.template (it starts with /)"),
                    ));
                }
            }
            Ok(Budget {
                metric: b.metric,
                percentile: b.percentile,
                max: b.max,
                max_regression,
                page: b.page,
            })
        })
        .collect()
}

/// `"10%"` → 0.1.
fn parse_percent(s: &str) -> Option<f64> {
    let n: f64 = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_budget() {
        let b = parse(
            "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 2500\nmax_regression = \"10%\"\npage = \"/products/{id}\"\n",
        )
        .unwrap();
        assert_eq!(
            b,
            vec![Budget {
                metric: Vital::Lcp,
                percentile: 75.0,
                max: Some(2500.0),
                max_regression: Some(0.1),
                page: Some("/products/{id}".into()),
            }]
        );
        assert_eq!(b[0].name(), "lcp p75 /products/{id}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmaximum = 1\n").unwrap_err();
        assert!(e.contains("maximum"), "{e}");
        let e = parse("[[budget]]\nmetric = \"tti\"\npercentile = 75\nmax = 1\n").unwrap_err();
        assert!(e.contains("tti"), "{e}");
        let e = parse("[[budget]]\nmetric = \"cls\"\npercentile = 75\nmax_regression = \"ten\"\n")
            .unwrap_err();
        assert!(e.starts_with("budget[0].max_regression"), "{e}");
        let e = parse("[[budget]]\nmetric = \"cls\"\npercentile = 100\nmax = 0.1\n").unwrap_err();
        assert!(e.starts_with("budget[0].percentile"), "{e}");
        let e = parse("[[budget]]\nmetric = \"cls\"\npercentile = 75\n").unwrap_err();
        assert!(e.contains("max"), "{e}");
    }
}
