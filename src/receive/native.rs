//! TEMP
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct NativeError;
impl NativeError {
    pub fn reason(&self) -> &'static str {
        "x"
    }
}
pub fn decode(
    _b: &[u8],
    _l: &crate::config::LimitsConfig,
) -> Result<crate::model::RumBatch, NativeError> {
    Err(NativeError)
}
