//! The OTLP resource of the aggregated metrics: the bridge itself, one per replica (see
//! docs/otlp-mapping.md, "Metric resource"). The app a point describes is a point attribute
//! instead, set by the aggregator.

use crate::model::semconv;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// The OTLP resource of bridge-aggregated metrics: the bridge itself, one per replica.
/// `operator` are the operator's `[resource_attributes]` (e.g. `k8s.cluster.name`), added
/// beside the bridge's `service.name`, `service.version` and `service.instance.id`, which they
/// cannot replace.
pub fn bridge_resource<'a>(
    instance_id: &str,
    operator: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Resource {
    let mut attributes = vec![
        string_attribute(semconv::SERVICE_NAME, "rum-bridge"),
        string_attribute("service.instance.id", instance_id),
        string_attribute(semconv::SERVICE_VERSION, env!("CARGO_PKG_VERSION")),
    ];
    for (key, value) in operator {
        match key {
            semconv::SERVICE_NAME | semconv::SERVICE_VERSION | "service.instance.id" => {}
            _ => attributes.push(string_attribute(key, value)),
        }
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_attributes_join_the_bridge_resource_without_replacing_its_identity() {
        let r = bridge_resource(
            "random-id",
            [
                ("k8s.pod.name", "rum-bridge-7d9f"),
                ("service.instance.id", "app-replica"),
                ("service.name", "not-the-bridge"),
            ],
        );
        let get = |key: &str| {
            r.attributes
                .iter()
                .filter(|kv| kv.key == key)
                .map(|kv| format!("{:?}", kv.value))
                .collect::<Vec<_>>()
        };
        assert_eq!(get("service.instance.id").len(), 1);
        assert!(get("service.instance.id")[0].contains("random-id"));
        assert!(get("service.name")[0].contains("\"rum-bridge\""));
        assert_eq!(get("service.name").len(), 1);
        assert!(get("k8s.pod.name")[0].contains("rum-bridge-7d9f"));
        let plain = bridge_resource("random-id", []);
        assert_eq!(plain.attributes.len(), 3);
    }
}
