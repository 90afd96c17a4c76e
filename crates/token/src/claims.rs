//! The registry token claim set (Docker token spec plus GitLab's `meta` extension).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// GitLab-style per-repository metadata carried inside an access entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AccessMeta {
    /// Full path of the project owning the repository (e.g. `group/project`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_path: Option<String>,
    /// Numeric id of the project owning the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    /// Numeric id of the top-level namespace (used for usage accounting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace_id: Option<i64>,
    /// Tag patterns (regular expressions) that may not be overwritten or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_immutable_patterns: Option<Vec<String>>,
}

/// One granted resource: `type:name:actions` in the Docker token scope grammar.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Access {
    /// Resource type, e.g. `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name, e.g. `group/project/image` or `catalog`.
    pub name: String,
    /// Granted actions, e.g. `pull`, `push`, `delete`, or `*` for all.
    pub actions: Vec<String>,
    /// Optional GitLab metadata for repository resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AccessMeta>,
}

impl Access {
    /// A `repository` access entry for `name` granting `actions`, without metadata.
    pub fn repository(name: impl Into<String>, actions: &[&str]) -> Self {
        Self {
            kind: "repository".to_owned(),
            name: name.into(),
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            meta: None,
        }
    }

    /// Whether this entry grants `action` on the resource `kind:name`.
    ///
    /// A `*` action grants every action; names must match exactly (no wildcards), because
    /// the issuer is expected to expand scopes to concrete repositories.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.kind == kind
            && self.name == name
            && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// The `aud` claim: one or more audiences.
///
/// RFC 7519 allows either a string or an array of strings, so both are accepted; a single
/// audience serializes as a plain string because older Docker clients and registries only
/// understand that form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// An audience consisting of exactly one value.
    pub fn single(aud: impl Into<String>) -> Self {
        Self(vec![aud.into()])
    }

    /// Whether `aud` is one of the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        self.0.iter().any(|a| a == aud)
    }

    /// All audience values.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl From<String> for Audience {
    fn from(aud: String) -> Self {
        Self::single(aud)
    }
}

impl From<&str> for Audience {
    fn from(aud: &str) -> Self {
        Self::single(aud)
    }
}

impl From<Vec<String>> for Audience {
    fn from(auds: Vec<String>) -> Self {
        Self(auds)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(s) => Self(vec![s]),
            OneOrMany::Many(v) => Self(v),
        })
    }
}

/// The claim set of a registry token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Issuer; must equal the verifier's configured issuer.
    pub iss: String,
    /// Subject (user name); absent for anonymous tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience; must contain the verifier's configured audience.
    pub aud: Audience,
    /// Issued-at, seconds since the Unix epoch.
    pub iat: i64,
    /// Not-before, seconds since the Unix epoch.
    pub nbf: i64,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// How the subject authenticated (GitLab: `gitlab_or_ldap`, `deploy_token`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<String>,
    /// Granted resources; empty for a token that only proves identity.
    #[serde(default)]
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether any access entry grants `action` on `kind:name`.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| a.allows(kind, name, action))
    }

    /// The metadata of the first `repository` access entry for `name` that carries any.
    pub fn meta_for(&self, name: &str) -> Option<&AccessMeta> {
        self.access
            .iter()
            .filter(|a| a.kind == "repository" && a.name == name)
            .find_map(|a| a.meta.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(aud: Audience) -> Claims {
        Claims {
            iss: "auth".into(),
            sub: None,
            aud,
            iat: 1,
            nbf: 1,
            exp: 2,
            jti: "j".into(),
            auth_type: None,
            access: vec![],
        }
    }

    #[test]
    fn audience_single_serializes_as_string() {
        let v = serde_json::to_value(claims("registry".into())).unwrap();
        assert_eq!(v["aud"], json!("registry"));
        assert!(v.get("sub").is_none());
        assert!(v.get("auth_type").is_none());
    }

    #[test]
    fn audience_many_serializes_as_array_and_round_trips() {
        let aud = Audience(vec!["a".into(), "b".into()]);
        let v = serde_json::to_value(claims(aud.clone())).unwrap();
        assert_eq!(v["aud"], json!(["a", "b"]));
        let back: Claims = serde_json::from_value(v).unwrap();
        assert_eq!(back.aud, aud);
    }

    #[test]
    fn accepts_string_or_array_audience_and_missing_access() {
        let base = json!({"iss":"i","iat":1,"nbf":1,"exp":2,"jti":"j"});
        let mut a = base.clone();
        a["aud"] = json!("reg");
        let mut b = base;
        b["aud"] = json!(["x", "reg"]);
        for v in [a, b] {
            let c: Claims = serde_json::from_value(v).unwrap();
            assert!(c.aud.contains("reg"));
            assert!(c.access.is_empty());
        }
    }

    #[test]
    fn access_allows_and_wildcard() {
        let a = Access::repository("g/p", &["pull"]);
        assert!(a.allows("repository", "g/p", "pull"));
        assert!(!a.allows("repository", "g/p", "push"));
        assert!(!a.allows("repository", "g/q", "pull"));
        assert!(!a.allows("registry", "g/p", "pull"));
        let star = Access::repository("g/p", &["*"]);
        assert!(star.allows("repository", "g/p", "delete"));
    }

    #[test]
    fn access_serializes_type_and_meta() {
        let mut a = Access::repository("g/p", &["pull", "push"]);
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"type":"repository","name":"g/p","actions":["pull","push"]})
        );
        a.meta = Some(AccessMeta {
            project_path: Some("g/p".into()),
            ..AccessMeta::default()
        });
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["meta"], json!({"project_path":"g/p"}));
        let back: Access = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn claims_allows_and_meta_for() {
        let mut c = claims("r".into());
        let mut with_meta = Access::repository("g/p", &["push"]);
        with_meta.meta = Some(AccessMeta {
            project_id: Some(7),
            ..AccessMeta::default()
        });
        c.access = vec![Access::repository("g/p", &["pull"]), with_meta];
        assert!(c.allows("repository", "g/p", "pull"));
        assert!(c.allows("repository", "g/p", "push"));
        assert!(!c.allows("repository", "g/p", "delete"));
        assert_eq!(c.meta_for("g/p").and_then(|m| m.project_id), Some(7));
        assert!(c.meta_for("other").is_none());
    }
}
