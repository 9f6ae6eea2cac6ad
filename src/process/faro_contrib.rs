//! The privacy rules on the Faro fields kept for `[faro] compat = "faro-contrib"`.
//!
//! In that mode the Faro decoder keeps, next to the model, the raw item fields contrib's record
//! layout needs ([`FaroRecords`]). They leave the bridge in log bodies, so they get exactly the
//! rules their model counterparts get in [`Processor::process_batch`]: no field reaches a body
//! without them.

use super::{KeyClass, Processor};
use crate::model::faro_contrib::FaroRecords;

impl Processor {
    /// Applies the privacy rules to every string of `records` (see the module table in
    /// [`super`]).
    pub fn process_faro_records(&self, records: &mut FaroRecords) {
        for record in &mut records.records {
            for (_, text) in &mut record.text {
                self.pii.redact_string(text);
            }
            for frame in &mut record.frames {
                self.pii.redact_string(&mut frame.function);
                self.pii.redact_string(&mut frame.module);
                // As in a model stack: the URL keeps its path, loses query values and fragment.
                self.scrub_stack(&mut frame.filename);
            }
            let url_key = record.url_key;
            record.context.retain_mut(|(key, value)| {
                if url_key == Some(key.as_str()) {
                    self.scrub_url_full(value);
                    true
                } else {
                    self.scrub_text(KeyClass::of(key), value)
                }
            });
            for (_, text) in &mut record.action {
                self.pii.redact_string(text);
            }
        }
        let meta = &mut records.meta;
        for (name, version) in &mut meta.sdk_integrations {
            self.pii.redact_string(name);
            self.pii.redact_string(version);
        }
        for attributes in [&mut meta.session_attributes, &mut meta.page_attributes] {
            attributes.retain_mut(|(key, value)| self.scrub_text(KeyClass::of(key), value));
        }
        for text in [
            &mut meta.page_id,
            &mut meta.viewport_width,
            &mut meta.viewport_height,
            &mut meta.view_name,
        ] {
            self.redact_opt(text);
        }
        // Browser name, version, OS and brands are left as they are: they describe software,
        // like the user agent, and versions look like IP addresses (`120.0.0.0`).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Metrics;
    use crate::config::Config;
    use crate::model::faro_contrib::{Frame, Kind, Meta, Record};

    fn processor() -> Processor {
        let mut config = Config::default();
        config.privacy.user_id_key = Some("0123456789abcdef0123".into());
        Processor::new(&config, &Metrics::new()).unwrap()
    }

    #[test]
    fn every_kept_field_gets_the_model_rules() {
        let mut event = Record::new(Kind::Event, 0.0, None, None);
        event.text = vec![
            ("event_name", "faro.performance.resource".into()),
            ("event_domain", "browser".into()),
        ];
        event.url_key = Some("name");
        event.context = vec![
            (
                "name".into(),
                "https://shop.example.com/users/12345/avatar.png?token=abc#frag".into(),
            ),
            ("note".into(), "mail alice@example.com".into()),
            ("url.fragment".into(), "#secret".into()),
            ("user.id".into(), "u-42".into()),
        ];
        event.action = vec![("action_name", "ask bob@example.com".into())];
        let mut exception = Record::new(Kind::Exception, 0.0, None, None);
        exception.text = vec![
            ("type", "Error".into()),
            ("value", "card 4111 1111 1111 1111 refused".into()),
        ];
        exception.frames = vec![Frame {
            function: "pay".into(),
            filename: "http://203.0.113.7/app.js?session=abc#x".into(),
            lineno: 1,
            colno: 2,
            ..Default::default()
        }];
        let mut records = FaroRecords {
            records: vec![event, exception],
            meta: Meta {
                page_id: Some("carol@example.com".into()),
                session_attributes: vec![("previous".into(), "dave@example.com".into())],
                page_attributes: vec![("referrerUrl".into(), "https://x.example/?q=1".into())],
                browser_version: Some("120.0.0.0".into()),
                sdk_integrations: vec![("a@b.example".into(), "1".into())],
                ..Default::default()
            },
        };
        processor().process_faro_records(&mut records);
        let [event, exception] = &records.records[..] else {
            panic!()
        };
        assert_eq!(
            event.context,
            vec![
                (
                    "name".into(),
                    "https://shop.example.com/users/{id}/avatar.png?token=REDACTED".into()
                ),
                ("note".into(), "mail [email]".into()),
                ("user.id".into(), event.context[2].1.clone()),
            ]
        );
        assert_eq!(event.context[2].1.len(), 32, "user ids are hashed");
        assert_eq!(event.action[0].1, "ask [email]");
        assert_eq!(exception.text[1].1, "card [card] refused");
        assert_eq!(
            exception.frames[0].filename,
            "http://[ip]/app.js?session=REDACTED"
        );
        let meta = &records.meta;
        assert_eq!(meta.page_id.as_deref(), Some("[email]"));
        assert_eq!(meta.session_attributes[0].1, "[email]");
        assert_eq!(meta.page_attributes[0].1, "https://x.example/?q=REDACTED");
        assert_eq!(meta.browser_version.as_deref(), Some("120.0.0.0"));
        assert_eq!(meta.sdk_integrations[0].0, "[email]");
    }
}
