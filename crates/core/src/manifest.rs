//! Manifest media types, parsing and validation: which blobs and child manifests a manifest
//! references, its subject (for referrers) and its artifact type.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;

/// Largest manifest body accepted (Distribution's limit after CVE-2017-11468).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// Every manifest media type the registry stores, for `Accept` negotiation.
pub const SUPPORTED_MEDIA_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Over [`MAX_MANIFEST_BYTES`].
    #[error("manifest is larger than the 4 MiB limit")]
    TooLarge,
    /// Not JSON, or not the shape of its media type.
    #[error("invalid manifest: {0}")]
    Invalid(String),
    /// Docker schema 1 or an unknown media type.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: i64,
    /// Artifact type, for artifacts and referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform of an index entry, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// External URLs: a layer with URLs need not be in the registry (foreign layers).
    #[serde(default, skip_serializing)]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// Foreign/non-distributable layers live elsewhere; the registry does not require them.
    pub fn is_foreign(&self) -> bool {
        self.urls.as_ref().is_some_and(|u| !u.is_empty())
            || self.media_type.contains("foreign")
            || self.media_type.contains("nondistributable")
    }
}

/// What a manifest points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An image (or artifact) manifest: a config blob and layer blobs.
    Image {
        /// The config descriptor.
        config: Descriptor,
        /// Layers, in order.
        layers: Vec<Descriptor>,
    },
    /// An index / manifest list: child manifests.
    Index {
        /// Child manifests.
        manifests: Vec<Descriptor>,
    },
}

/// A parsed, validated manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's media type.
    pub media_type: String,
    /// Its references.
    pub content: Content,
    /// The manifest this one refers to (signatures, SBOMs...).
    pub subject: Option<Descriptor>,
    /// The artifact type as the referrers API reports it.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Strip parameters (`; charset=...`) from a Content-Type.
fn bare(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parse and validate `bytes` pushed with `content_type`.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge);
    }
    let raw: Raw =
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
    let header = content_type.map(bare).filter(|c| !c.is_empty());
    let media_type = match (&raw.media_type, header) {
        (Some(body), Some(h)) if body != h && SUPPORTED_MEDIA_TYPES.contains(&h) => {
            return Err(ManifestError::Invalid(format!(
                "mediaType {body:?} does not match Content-Type {h:?}"
            )));
        }
        (Some(body), _) => body.clone(),
        (None, Some(h)) if SUPPORTED_MEDIA_TYPES.contains(&h) => h.to_owned(),
        // OCI allows an image manifest without mediaType; infer from the shape.
        (None, _) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, _) if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, h) => {
            return Err(ManifestError::UnsupportedMediaType(
                h.unwrap_or("").to_owned(),
            ));
        }
    };
    if DOCKER_SCHEMA1.contains(&media_type.as_str()) {
        return Err(ManifestError::UnsupportedMediaType(media_type));
    }
    if raw.schema_version != Some(2) {
        return Err(ManifestError::Invalid("schemaVersion must be 2".into()));
    }
    let content = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw
                .config
                .ok_or_else(|| ManifestError::Invalid("image manifest without config".into()))?;
            let layers = raw.layers.unwrap_or_default();
            if media_type == DOCKER_MANIFEST && layers.is_empty() {
                return Err(ManifestError::Invalid(
                    "docker manifest without layers".into(),
                ));
            }
            Content::Image { config, layers }
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => Content::Index {
            manifests: raw
                .manifests
                .ok_or_else(|| ManifestError::Invalid("index without manifests".into()))?,
        },
        other => return Err(ManifestError::UnsupportedMediaType(other.to_owned())),
    };
    let all: Vec<&Descriptor> = match &content {
        Content::Image { config, layers } => std::iter::once(config).chain(layers).collect(),
        Content::Index { manifests } => manifests.iter().collect(),
    };
    if let Some(bad) = all
        .into_iter()
        .chain(raw.subject.as_ref())
        .find(|d| d.size < 0)
    {
        return Err(ManifestError::Invalid(format!(
            "negative size for {}",
            bad.digest
        )));
    }
    // The referrers API reports artifactType, falling back to the config's media type.
    let artifact_type = raw.artifact_type.clone().or_else(|| match &content {
        Content::Image { config, .. } => Some(config.media_type.clone()),
        Content::Index { .. } => None,
    });
    Ok(Manifest {
        media_type,
        content,
        subject: raw.subject,
        artifact_type,
        annotations: raw.annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desc(mt: &str, data: &[u8]) -> serde_json::Value {
        json!({"mediaType": mt, "digest": Digest::sha256(data).to_string(), "size": data.len()})
    }

    fn image(extra: serde_json::Value) -> Vec<u8> {
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", b"{}"),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", b"l1")],
        });
        if let (Some(m), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        serde_json::to_vec(&m).unwrap()
    }

    #[test]
    fn parses_oci_image_with_subject() {
        let subject = desc(OCI_MANIFEST, b"other");
        let m = parse(
            &image(json!({"artifactType": "application/x-sbom", "subject": subject})),
            Some(OCI_MANIFEST),
        )
        .unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sbom"));
        assert_eq!(m.subject.unwrap().digest, Digest::sha256(b"other"));
        let Content::Image { layers, .. } = m.content else {
            panic!()
        };
        assert_eq!(layers.len(), 1);
    }

    #[test]
    fn artifact_type_defaults_to_config_media_type() {
        let m = parse(&image(json!({})), None).unwrap();
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn parses_indexes_and_docker_types() {
        let idx = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [desc(DOCKER_MANIFEST, b"child")]});
        let m = parse(
            &serde_json::to_vec(&idx).unwrap(),
            Some(DOCKER_MANIFEST_LIST),
        )
        .unwrap();
        assert!(matches!(m.content, Content::Index { ref manifests } if manifests.len() == 1));
        // Media type taken from Content-Type when the body has none.
        let no_mt = json!({"schemaVersion": 2, "manifests": []});
        let m = parse(&serde_json::to_vec(&no_mt).unwrap(), Some(OCI_INDEX)).unwrap();
        assert_eq!(m.media_type, OCI_INDEX);
    }

    #[test]
    fn rejects_invalid_manifests() {
        assert!(matches!(
            parse(b"not json", None),
            Err(ManifestError::Invalid(_))
        ));
        assert_eq!(
            parse(&vec![b' '; MAX_MANIFEST_BYTES + 1], None),
            Err(ManifestError::TooLarge)
        );
        let mismatch = parse(&image(json!({})), Some(DOCKER_MANIFEST));
        assert!(matches!(mismatch, Err(ManifestError::Invalid(_))));
        let v1 = json!({"schemaVersion": 1, "mediaType": DOCKER_SCHEMA1[0]});
        assert!(matches!(
            parse(&serde_json::to_vec(&v1).unwrap(), None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        let bad_digest =
            image(json!({"config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}));
        assert!(matches!(
            parse(&bad_digest, None),
            Err(ManifestError::Invalid(_))
        ));
        let negative = image(json!({"config": {"mediaType": "x",
            "digest": Digest::sha256(b"").to_string(), "size": -1}}));
        assert!(matches!(
            parse(&negative, None),
            Err(ManifestError::Invalid(_))
        ));
        let wrong_version = image(json!({"schemaVersion": 3}));
        assert!(matches!(
            parse(&wrong_version, None),
            Err(ManifestError::Invalid(_))
        ));
    }
}
