//! The verdicts and their three renderings: a table for people, JSON for scripts, JUnit XML for
//! CI systems that show test reports (each budget a test case, a broken one a failure).

use serde::Serialize;

use super::file::Budget;
use super::Target;

/// Why a budget failed, or that it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Exceeded,
    Regressed,
    ExceededAndRegressed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Exceeded => "exceeded",
            Verdict::Regressed => "regressed",
            Verdict::ExceededAndRegressed => "exceeded+regressed",
        }
    }
}

/// One budget's result.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub budget: String,
    pub metric: &'static str,
    pub percentile: f64,
    pub page: Option<String>,
    pub version: Option<String>,
    pub value: f64,
    pub max: Option<f64>,
    pub baseline_version: Option<String>,
    pub baseline: Option<f64>,
    /// The largest value the regression limit allows (baseline × (1 + max_regression)).
    pub regression_limit: Option<f64>,
    pub verdict: Verdict,
}

impl Outcome {
    pub fn judge(budget: &Budget, target: &Target, value: f64, baseline: Option<f64>) -> Outcome {
        let exceeded = budget.max.is_some_and(|max| value > max);
        let regression_limit = match (baseline, budget.max_regression) {
            (Some(b), Some(r)) => Some(b * (1.0 + r)),
            _ => None,
        };
        let regressed = regression_limit.is_some_and(|limit| value > limit);
        let verdict = match (exceeded, regressed) {
            (false, false) => Verdict::Pass,
            (true, false) => Verdict::Exceeded,
            (false, true) => Verdict::Regressed,
            (true, true) => Verdict::ExceededAndRegressed,
        };
        Outcome {
            budget: budget.name(),
            metric: budget.metric.as_str(),
            percentile: budget.percentile,
            page: budget.page.clone(),
            version: target.version.clone(),
            value,
            max: budget.max,
            baseline_version: target.baseline.clone(),
            baseline,
            regression_limit,
            verdict,
        }
    }

    /// One line saying why the budget failed, for JUnit and messages.
    pub fn failure_message(&self) -> Option<String> {
        let mut why = Vec::new();
        if matches!(
            self.verdict,
            Verdict::Exceeded | Verdict::ExceededAndRegressed
        ) {
            why.push(format!(
                "p{} {} = {} exceeds max {}",
                self.percentile,
                self.metric,
                num(self.value),
                num(self.max.unwrap_or_default())
            ));
        }
        if matches!(
            self.verdict,
            Verdict::Regressed | Verdict::ExceededAndRegressed
        ) {
            why.push(format!(
                "p{} {} = {} regressed past {} (baseline {} = {})",
                self.percentile,
                self.metric,
                num(self.value),
                num(self.regression_limit.unwrap_or_default()),
                self.baseline_version.as_deref().unwrap_or(""),
                num(self.baseline.unwrap_or_default())
            ));
        }
        (!why.is_empty()).then(|| format!("budget {} failed: {}", self.budget, why.join("; ")))
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 10.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.1}")
    }
}

/// The table: metric, page, version, value, budget, baseline, verdict.
pub fn render_text(outcomes: &[Outcome]) -> String {
    let header = [
        "metric", "page", "version", "value", "budget", "baseline", "verdict",
    ];
    let rows: Vec<[String; 7]> = outcomes
        .iter()
        .map(|o| {
            let budget = match (o.max, o.regression_limit) {
                (Some(m), Some(l)) => format!("≤ {} and ≤ {}", num(m), num(l)),
                (Some(m), None) => format!("≤ {}", num(m)),
                (None, Some(l)) => format!("≤ {}", num(l)),
                (None, None) => "-".into(),
            };
            let baseline = match (&o.baseline_version, o.baseline) {
                (Some(v), Some(b)) => format!("{} ({v})", num(b)),
                _ => "-".into(),
            };
            [
                format!("{} p{}", o.metric, o.percentile),
                o.page.clone().unwrap_or_else(|| "(all)".into()),
                o.version.clone().unwrap_or_else(|| "(all)".into()),
                num(o.value),
                budget,
                baseline,
                o.verdict.as_str().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(w - cell.chars().count()));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&header.map(String::from));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

/// The outcomes as a JSON document `{"pass": bool, "budgets": [...]}`.
pub fn render_json(outcomes: &[Outcome]) -> String {
    let pass = outcomes.iter().all(|o| o.verdict == Verdict::Pass);
    serde_json::json!({ "pass": pass, "budgets": outcomes }).to_string()
}

/// A JUnit XML report: one `<testcase>` per budget, a `<failure>` naming the failing budget.
pub fn junit(outcomes: &[Outcome]) -> String {
    let failures = outcomes
        .iter()
        .filter(|o| o.verdict != Verdict::Pass)
        .count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"rum-bridge budget\" tests=\"{n}\" failures=\"{failures}\">\n  <testsuite name=\"performance budgets\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\">\n",
        n = outcomes.len()
    );
    for o in outcomes {
        let name = xml(&format!(
            "{} (version {})",
            o.budget,
            o.version.as_deref().unwrap_or("all")
        ));
        match o.failure_message() {
            None => out.push_str(&format!(
                "    <testcase classname=\"rum-bridge.budget\" name=\"{name}\"/>\n"
            )),
            Some(message) => {
                let message = xml(&message);
                out.push_str(&format!(
                    "    <testcase classname=\"rum-bridge.budget\" name=\"{name}\">\n      <failure message=\"{message}\" type=\"{}\">{message}</failure>\n    </testcase>\n",
                    o.verdict.as_str()
                ));
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Escapes text for XML attribute values and content.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::file::parse;
    use super::*;

    fn target() -> Target {
        Target {
            app: None,
            version: Some("B".into()),
            baseline: Some("A".into()),
        }
    }

    #[test]
    fn verdicts_follow_max_and_regression() {
        let b = &parse(
            "[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 2500\nmax_regression = \"10%\"\n",
        )
        .unwrap()[0];
        assert_eq!(
            Outcome::judge(b, &target(), 2000.0, Some(1900.0)).verdict,
            Verdict::Pass
        );
        assert_eq!(
            Outcome::judge(b, &target(), 2600.0, Some(2500.0)).verdict,
            Verdict::Exceeded
        );
        assert_eq!(
            Outcome::judge(b, &target(), 2400.0, Some(2000.0)).verdict,
            Verdict::Regressed
        );
        assert_eq!(
            Outcome::judge(b, &target(), 3000.0, Some(1000.0)).verdict,
            Verdict::ExceededAndRegressed
        );
    }

    #[test]
    fn junit_names_the_failing_budget_and_escapes() {
        let b =
            &parse("[[budget]]\nmetric = \"lcp\"\npercentile = 75\nmax = 2500\npage = \"/a<b>\"\n")
                .unwrap()[0];
        let o = Outcome::judge(b, &target(), 3000.0, None);
        let xml = junit(std::slice::from_ref(&o));
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(
            xml.contains("name=\"lcp p75 /a&lt;b&gt; (version B)\""),
            "{xml}"
        );
        assert!(
            xml.contains("budget lcp p75 /a&lt;b&gt; failed: p75 lcp = 3000 exceeds max 2500"),
            "{xml}"
        );
        let text = render_text(&[o]);
        assert!(text.starts_with("metric"), "{text}");
        assert!(text.contains("exceeded"), "{text}");
    }
}
