//! Conversion of each policy dialect's manifest into the common [`crate::policy`] model.
//! Each converter validates what the API server would reject and names the field.

pub mod anp;
pub mod cilium;
pub mod k8s;

use serde::Deserialize;

use crate::error::FieldError;

/// `metadata` as far as policies need it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: Option<crate::selector::Labels>,
}

/// A Kubernetes `IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

/// Checks a port number is 1..=65535.
pub(crate) fn port_number(value: i64, path: &str) -> Result<u16, FieldError> {
    u16::try_from(value)
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| FieldError::new(path, format!("port {value} is outside 1-65535")))
}

/// Checks `port` and an optional `endPort` (inclusive, not below `port`).
pub(crate) fn port_range(port: i64, end_port: Option<i64>) -> Result<(u16, u16), FieldError> {
    let first = port_number(port, "port")?;
    let Some(end) = end_port else {
        return Ok((first, first));
    };
    let last = port_number(end, "endPort")?;
    if last < first {
        return Err(FieldError::new(
            "endPort",
            format!("endPort {last} is below port {first}"),
        ));
    }
    Ok((first, last))
}

/// Validates a selector and prefixes its error path.
pub(crate) fn check_selector(
    sel: &crate::selector::LabelSelector,
    path: &str,
) -> Result<(), FieldError> {
    sel.validate()
        .map_err(|(p, m)| FieldError::new(p, m).under(path))
}
