//! The small shapes shared by the context and the events: attributes, string lists, user-agent
//! brands, the browser and SDK objects and span ids.

use super::*;

/// `attrs`: string, number and boolean values; other values and empty or overlong keys are
/// ignored. Keys beyond [`MAX_ATTRIBUTES`] are skipped unread and counted: the count becomes
/// the item's `dropped_attributes_count` (and `rum_bridge_attributes_dropped_total`), as the
/// pipeline's attribute cap records what it cuts.
pub(super) struct Attrs<'a> {
    pub(super) ctx: &'a Ctx,
}

/// The attributes kept, and how many were left out beyond [`MAX_ATTRIBUTES`].
#[derive(Default)]
pub(super) struct ReadAttrs {
    pub(super) kept: Attributes,
    pub(super) dropped: u32,
}

impl<'de> Expect<'de> for Attrs<'_> {
    type Out = ReadAttrs;
    const EXPECTED: &'static str = "an object of attributes";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<ReadAttrs>, A::Error> {
        let value = AttrVal { ctx: self.ctx };
        let mut out = ReadAttrs::default();
        while let Some(key) = map.next_key_seed(Any(Text))? {
            match key {
                Lenient::Value(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => {
                    if out.kept.len() >= MAX_ATTRIBUTES {
                        map.next_value::<IgnoredAny>()?;
                        out.dropped = out.dropped.saturating_add(1);
                    } else if let Lenient::Value(v) = map.next_value_seed(Any(value))? {
                        out.kept.push((key.into_owned(), v));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(out))
    }
}

#[derive(Clone, Copy)]
pub(super) struct AttrVal<'a> {
    pub(super) ctx: &'a Ctx,
}

impl<'de> Expect<'de> for AttrVal<'_> {
    type Out = AttrValue;
    const EXPECTED: &'static str = "a string, number or boolean";

    fn boolean(self, v: bool) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Bool(v))
    }
    fn int(self, v: i64) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Int(v))
    }
    fn float(self, v: f64) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Float(v))
    }
    fn text(self, v: Cow<'de, str>) -> Lenient<AttrValue> {
        Lenient::Value(AttrValue::Str(self.ctx.s(v)))
    }
}

/// An array of `E` values, capped at [`MAX_LIST_ITEMS`]; wrong items are skipped.
pub(super) fn list<E>(item: E) -> List<E> {
    List {
        item,
        max: MAX_LIST_ITEMS,
    }
}

/// A string list item, truncated.
#[derive(Clone, Copy)]
pub(super) struct TextItem<'a> {
    pub(super) ctx: &'a Ctx,
}

impl<'de> Expect<'de> for TextItem<'_> {
    type Out = String;
    const EXPECTED: &'static str = "a string";

    fn text(self, v: Cow<'de, str>) -> Lenient<String> {
        Lenient::Value(self.ctx.s(v))
    }
}

/// A UA Client Hints brand: `"Chromium 156"`, or `{"brand": "Chromium", "version": "156"}`
/// as `navigator.userAgentData.brands` holds it.
#[derive(Clone, Copy)]
pub(super) struct Brand<'a> {
    pub(super) ctx: &'a Ctx,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum BrandKey {
    Brand,
    Version,
    #[serde(other)]
    Other,
}

impl<'de> Expect<'de> for Brand<'_> {
    type Out = String;
    const EXPECTED: &'static str = "a brand";

    fn text(self, v: Cow<'de, str>) -> Lenient<String> {
        Lenient::Value(self.ctx.s(v))
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<String>, A::Error> {
        let mut ignored = None;
        let (mut brand, mut version) = (None, None);
        while let Some(key) = map.next_key::<BrandKey>()? {
            match key {
                BrandKey::Brand => brand = take(&mut map, Text, "brand", &mut ignored)?,
                BrandKey::Version => version = take(&mut map, Text, "version", &mut ignored)?,
                BrandKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match (brand, version) {
            (Some(b), Some(v)) => Lenient::Value(self.ctx.s(Cow::Owned(format!("{b} {v}")))),
            (Some(b), None) => Lenient::Value(self.ctx.s(b)),
            (None, _) => Lenient::Bad(Found::Object),
        })
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum BrowserKey {
    Brands,
    Platform,
    Mobile,
    Lang,
    #[serde(other)]
    Other,
}

/// `br`: browser facts.
pub(super) struct BrowserObj<'a> {
    pub(super) ctx: &'a Ctx,
}

impl<'de> Expect<'de> for BrowserObj<'_> {
    type Out = BrowserInfo;
    const EXPECTED: &'static str = "a browser object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<BrowserInfo>, A::Error> {
        let ctx = self.ctx;
        let mut ignored = None;
        let mut b = BrowserInfo::default();
        while let Some(key) = map.next_key::<BrowserKey>()? {
            match key {
                BrowserKey::Brands => {
                    b.brands = take(&mut map, list(Brand { ctx }), "brands", &mut ignored)?
                        .unwrap_or_default()
                }
                BrowserKey::Platform => {
                    b.platform = ctx.opt(take(&mut map, Text, "platform", &mut ignored)?)
                }
                BrowserKey::Mobile => b.mobile = take(&mut map, Flag, "mobile", &mut ignored)?,
                BrowserKey::Lang => {
                    b.language = ctx.opt(take(&mut map, Text, "lang", &mut ignored)?)
                }
                BrowserKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(b))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum SdkKey {
    Name,
    Version,
    #[serde(other)]
    Other,
}

/// `sdk`: the client library's name and version.
pub(super) struct SdkObj<'a> {
    pub(super) ctx: &'a Ctx,
}

impl<'de> Expect<'de> for SdkObj<'_> {
    type Out = (Option<String>, Option<String>);
    const EXPECTED: &'static str = "an sdk object";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut ignored = None;
        let (mut name, mut version) = (None, None);
        while let Some(key) = map.next_key::<SdkKey>()? {
            match key {
                SdkKey::Name => name = self.ctx.opt(take(&mut map, Text, "name", &mut ignored)?),
                SdkKey::Version => {
                    version = self.ctx.opt(take(&mut map, Text, "version", &mut ignored)?)
                }
                SdkKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value((name, version)))
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
pub(super) enum SpanKey {
    Trace,
    Span,
    #[serde(other)]
    Other,
}

/// `load`: `{trace, span}` of the page-load span; `None` unless both ids are valid.
pub(super) struct SpanIds;

impl<'de> Expect<'de> for SpanIds {
    type Out = Option<SpanRef>;
    const EXPECTED: &'static str = "an object with `trace` and `span`";

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<Self::Out>, A::Error> {
        let mut ignored = None;
        let (mut trace, mut span) = (None, None);
        while let Some(key) = map.next_key::<SpanKey>()? {
            match key {
                SpanKey::Trace => trace = take(&mut map, Text, "trace", &mut ignored)?,
                SpanKey::Span => span = take(&mut map, Text, "span", &mut ignored)?,
                SpanKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Lenient::Value(span_ref(trace.as_deref(), span.as_deref())))
    }
}
