//! serde shapes of nbformat 4, reduced to what nb2pipe reads. Unknown fields (outputs,
//! attachments, widget state) are skipped by serde without being stored.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct RawNotebook {
    pub(super) nbformat: u32,
    #[serde(default)]
    pub(super) nbformat_minor: u32,
    #[serde(default)]
    pub(super) metadata: Option<RawNotebookMeta>,
    #[serde(default)]
    pub(super) cells: Option<Vec<RawCell>>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawNotebookMeta {
    #[serde(default)]
    pub(super) kernelspec: Option<KernelSpec>,
    #[serde(default)]
    pub(super) language_info: Option<LanguageInfo>,
    #[serde(default)]
    pub(super) nb2pipe: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub(super) struct KernelSpec {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) language: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct LanguageInfo {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) version: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawCell {
    pub(super) cell_type: String,
    #[serde(default)]
    pub(super) source: Source,
    #[serde(default)]
    pub(super) metadata: RawCellMeta,
    // Read leniently: a wrong type here must not make the notebook unreadable.
    #[serde(default)]
    pub(super) execution_count: Option<serde_json::Value>,
    #[serde(default)]
    pub(super) id: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
pub(super) struct RawCellMeta {
    #[serde(default, deserialize_with = "tags")]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) nb2pipe: Option<serde_json::Value>,
}

/// `source` is a string or a list of strings (nbformat's "multiline string").
#[derive(Default)]
pub(super) struct Source(String);

impl Source {
    pub(super) fn into_string(self) -> String {
        if self.0.contains('\r') {
            self.0.replace("\r\n", "\n").replace('\r', "\n")
        } else {
            self.0
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Source;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Source, E> {
                Ok(Source(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Source, E> {
                Ok(Source(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Source, A::Error> {
                let mut s = String::new();
                while let Some(part) = seq.next_element::<String>()? {
                    s.push_str(&part);
                }
                Ok(Source(s))
            }
        }
        d.deserialize_any(V)
    }
}

/// Tags are a list of strings; anything else in that slot is ignored rather than fatal.
fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    })
}
