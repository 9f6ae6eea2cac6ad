//! What the aggregator reports: metric names, descriptions and units, the attribute keys of
//! each metric's series (in the order a series key encodes them) and the histograms' bucket
//! bounds. Kept apart from the aggregation code so the reported shape reads in one place; it is
//! the code side of docs/otlp-mapping.md, sections "Web-vital histograms" and "Web-vital
//! thresholds".
//!
//! The vital bounds contain each Google threshold exactly; OTLP buckets are upper-bound
//! inclusive, like web-vitals' rating rule, so the good / needs-improvement / poor shares can
//! be read off the buckets.

use crate::model::semconv::{
    DEVICE_CLASS, ERROR_TYPE, EXCEPTION_FINGERPRINT, EXCEPTION_TYPE, HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE, SERVER_ADDRESS, URL_TEMPLATE, USER_AGENT_NAME,
};
use crate::model::VitalName;

// Attribute names (the semconv ones come from `model::semconv`).
pub(super) const APP_NAME: &str = "rum.app.name";
pub(super) const APP_VERSION: &str = "rum.app.version";
pub(super) const APP_ENVIRONMENT: &str = "rum.app.environment";
pub(super) const BROWSER_NAME: &str = USER_AGENT_NAME;
pub(super) const RATING: &str = "browser.web_vital.rating";
pub(super) const HTTP_METHOD: &str = HTTP_REQUEST_METHOD;
pub(super) const HTTP_STATUS: &str = HTTP_RESPONSE_STATUS_CODE;
pub(super) const OVERFLOW: &str = "otel.metric.overflow";
pub(super) const COUNTRY: &str = crate::process::geo::COUNTRY;

// Attribute schemas: the order in which `record_batch` encodes values into a series key. Every
// schema starts with the app's three attributes; page schemas continue with the page's four.
const PAGE_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
];
const VITAL_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
    RATING,
];
const ERROR_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    URL_TEMPLATE,
    DEVICE_CLASS,
    BROWSER_NAME,
    COUNTRY,
    EXCEPTION_TYPE,
];
const ERROR_GROUP_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    EXCEPTION_TYPE,
    EXCEPTION_FINGERPRINT,
];
const HTTP_ATTRS: &[&str] = &[
    APP_NAME,
    APP_VERSION,
    APP_ENVIRONMENT,
    HTTP_METHOD,
    HTTP_STATUS,
    ERROR_TYPE,
    URL_TEMPLATE,
    SERVER_ADDRESS,
];

/// LCP, FCP and TTFB bounds (ms): contain 800, 1800, 2500, 3000 and 4000.
pub(super) const TIMING_BOUNDS_MS: &[f64] = &[
    100.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0, 1500.0, 1800.0, 2000.0, 2500.0, 3000.0,
    3500.0, 4000.0, 5000.0, 6000.0, 8000.0, 10000.0, 15000.0, 20000.0,
];
/// INP bounds (ms): contain 200 and 500.
pub(super) const INP_BOUNDS_MS: &[f64] = &[
    25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1500.0,
    2000.0, 5000.0,
];
/// CLS bounds (unitless score): contain 0.1 and 0.25.
pub(super) const CLS_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0,
];
/// Semconv advisory buckets of `http.client.request.duration` (s).
pub(super) const HTTP_DURATION_BOUNDS_S: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// What a metric is called and which attributes its series keys hold.
pub(super) struct Descriptor {
    pub(super) name: &'static str,
    pub(super) description: &'static str,
    pub(super) unit: &'static str,
    pub(super) attributes: &'static [&'static str],
}

/// The descriptor of a web-vital histogram.
const fn vital(name: &'static str, description: &'static str, unit: &'static str) -> Descriptor {
    Descriptor {
        name,
        description,
        unit,
        attributes: VITAL_ATTRS,
    }
}

static LCP: Descriptor = vital(
    "browser.web_vital.lcp",
    "Largest Contentful Paint reported by browsers.",
    "ms",
);
static INP: Descriptor = vital(
    "browser.web_vital.inp",
    "Interaction to Next Paint reported by browsers.",
    "ms",
);
static CLS: Descriptor = vital(
    "browser.web_vital.cls",
    "Cumulative Layout Shift score reported by browsers.",
    "1",
);
static FCP: Descriptor = vital(
    "browser.web_vital.fcp",
    "First Contentful Paint reported by browsers.",
    "ms",
);
static TTFB: Descriptor = vital(
    "browser.web_vital.ttfb",
    "Time to First Byte of the document reported by browsers.",
    "ms",
);
pub(super) static HTTP_DURATION: Descriptor = Descriptor {
    name: "http.client.request.duration",
    description: "Duration of fetch/XHR calls made by browser pages.",
    unit: "s",
    attributes: HTTP_ATTRS,
};
pub(super) static PAGE_VIEWS: Descriptor = Descriptor {
    name: "rum.page_views",
    description: "Page loads reported by browsers.",
    unit: "{page_view}",
    attributes: PAGE_ATTRS,
};
pub(super) static ERRORS: Descriptor = Descriptor {
    name: "rum.errors",
    description: "JavaScript errors and unhandled rejections reported by browsers.",
    unit: "{error}",
    attributes: ERROR_ATTRS,
};
pub(super) static ERROR_GROUPS: Descriptor = Descriptor {
    name: "rum.error.groups",
    description: "Exceptions exported by the bridge, by app, type and fingerprint (one bug, one \
                  series, whatever the release or the minified columns).",
    unit: "{error}",
    attributes: ERROR_GROUP_ATTRS,
};

/// The descriptor and bucket bounds of a vital's histogram.
pub(super) fn vital_instrument_spec(name: VitalName) -> (&'static Descriptor, &'static [f64]) {
    match name {
        VitalName::Lcp => (&LCP, TIMING_BOUNDS_MS),
        VitalName::Inp => (&INP, INP_BOUNDS_MS),
        VitalName::Cls => (&CLS, CLS_BOUNDS),
        VitalName::Fcp => (&FCP, TIMING_BOUNDS_MS),
        VitalName::Ttfb => (&TTFB, TIMING_BOUNDS_MS),
    }
}

/// Index of a vital's instrument in `MetricsAggregator::vitals` (the order of `VitalName::ALL`).
pub(super) fn vital_slot(name: VitalName) -> usize {
    match name {
        VitalName::Lcp => 0,
        VitalName::Inp => 1,
        VitalName::Cls => 2,
        VitalName::Fcp => 3,
        VitalName::Ttfb => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_contain_each_google_threshold_exactly() {
        for name in VitalName::ALL {
            let (_, bounds) = vital_instrument_spec(name);
            let (good, poor) = name.thresholds();
            assert!(bounds.contains(&good), "{name:?} lacks {good}");
            assert!(bounds.contains(&poor), "{name:?} lacks {poor}");
        }
        for threshold in [2500.0, 4000.0, 1800.0, 3000.0, 800.0] {
            assert!(TIMING_BOUNDS_MS.contains(&threshold));
        }
        assert!(INP_BOUNDS_MS.contains(&200.0) && INP_BOUNDS_MS.contains(&500.0));
        assert!(CLS_BOUNDS.contains(&0.1) && CLS_BOUNDS.contains(&0.25));
        for bounds in [
            TIMING_BOUNDS_MS,
            INP_BOUNDS_MS,
            CLS_BOUNDS,
            HTTP_DURATION_BOUNDS_S,
        ] {
            assert!(
                bounds.windows(2).all(|w| w[0] < w[1]),
                "not increasing: {bounds:?}"
            );
        }
    }
}
