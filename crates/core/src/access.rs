//! Who may pull, push and delete in a project's registry: the visibility matrix,
//! GitLab's roles, and the caps token scopes and deploy tokens put on them. Pure rules; the
//! auth service feeds them what it loaded.

use std::fmt;
use std::str::FromStr;

/// A project's visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in user.
    Internal,
    /// Members only.
    Private,
}

/// A project's `container_registry_access_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryAccess {
    /// Follows the project's visibility.
    Enabled,
    /// Reporters and above only, whatever the visibility.
    Private,
    /// Nothing works for anyone, admins included.
    Disabled,
}

/// GitLab's member roles, lowest first (so `>=` compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// 10
    Guest,
    /// 20
    Reporter,
    /// 30
    Developer,
    /// 40
    Maintainer,
    /// 50
    Owner,
}

impl Role {
    /// GitLab's access level number.
    pub fn level(self) -> i32 {
        match self {
            Role::Guest => 10,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }

    /// The role of an access level number.
    pub fn from_level(level: i32) -> Option<Role> {
        [
            Role::Guest,
            Role::Reporter,
            Role::Developer,
            Role::Maintainer,
            Role::Owner,
        ]
        .into_iter()
        .find(|r| r.level() == level)
    }
}

/// Unknown value for an enum kept as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {0:?}")]
pub struct InvalidValue(pub String);

macro_rules! text_enum {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// The stored and API name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl FromStr for $t {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s { $($s => Ok(Self::$v),)+ other => Err(InvalidValue(other.to_owned())) }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Visibility { Public => "public", Internal => "internal", Private => "private" });
text_enum!(RegistryAccess { Enabled => "enabled", Private => "private", Disabled => "disabled" });

/// The project side of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectAccess {
    /// Project visibility.
    pub visibility: Visibility,
    /// Registry access level.
    pub registry: RegistryAccess,
}

/// The person side: anonymous, or a signed-in user with their highest effective role in the
/// project (direct or inherited from its groups), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Principal {
    /// Authenticated at all.
    pub signed_in: bool,
    /// Instance administrator.
    pub admin: bool,
    /// Highest role in the project.
    pub role: Option<Role>,
}

impl Principal {
    /// Nobody signed in.
    pub const ANONYMOUS: Principal = Principal {
        signed_in: false,
        admin: false,
        role: None,
    };

    /// A signed-in user with `role` (None: not a member).
    pub fn user(role: Option<Role>) -> Principal {
        Principal {
            signed_in: true,
            admin: false,
            role,
        }
    }
}

/// Registry actions allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Abilities {
    /// Read manifests and blobs.
    pub pull: bool,
    /// Write them.
    pub push: bool,
    /// Delete them (the registry's `delete` action).
    pub delete: bool,
}

impl Abilities {
    /// Nothing.
    pub const NONE: Abilities = Abilities {
        pull: false,
        push: false,
        delete: false,
    };
    /// Everything.
    pub const ALL: Abilities = Abilities {
        pull: true,
        push: true,
        delete: true,
    };

    /// Both sides allow it.
    pub fn and(self, other: Abilities) -> Abilities {
        Abilities {
            pull: self.pull && other.pull,
            push: self.push && other.push,
            delete: self.delete && other.delete,
        }
    }

    /// Any ability at all.
    pub fn any(self) -> bool {
        self.pull || self.push || self.delete
    }
}

/// What a person may do in a project's registry by role and visibility: the pull matrix
/// below. Pull follows visibility for non-reporters; push needs Developer; the
/// registry `delete` action needs Maintainer; admins may do everything; `disabled` stops
/// everyone.
pub fn user_abilities(project: ProjectAccess, who: Principal) -> Abilities {
    if project.registry == RegistryAccess::Disabled {
        return Abilities::NONE;
    }
    if who.admin {
        return Abilities::ALL;
    }
    let at_least = |r: Role| who.role.is_some_and(|have| have >= r);
    let open_pull = project.registry == RegistryAccess::Enabled
        && match project.visibility {
            Visibility::Public => true,
            Visibility::Internal => who.signed_in,
            Visibility::Private => false,
        };
    Abilities {
        pull: open_pull || at_least(Role::Reporter),
        push: at_least(Role::Developer),
        delete: at_least(Role::Maintainer),
    }
}

/// Scopes of personal, project and group access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Pull.
    ReadRegistry,
    /// Push.
    WriteRegistry,
    /// Full API access, including registry delete.
    Api,
    /// Read-only API access, including pull.
    ReadApi,
}

text_enum!(TokenScope {
    ReadRegistry => "read_registry",
    WriteRegistry => "write_registry",
    Api => "api",
    ReadApi => "read_api",
});

/// The most a token with `scopes` may do, whatever its owner's role (GitLab's
/// `abilities_for_scopes`): `write_registry` alone does not pull, and only `api` deletes.
pub fn scope_cap(scopes: &[TokenScope]) -> Abilities {
    let has = |s: TokenScope| scopes.contains(&s);
    Abilities {
        pull: has(TokenScope::ReadRegistry) || has(TokenScope::ReadApi) || has(TokenScope::Api),
        push: has(TokenScope::WriteRegistry) || has(TokenScope::Api),
        delete: has(TokenScope::Api),
    }
}

/// What a deploy token may do in a project it covers (its project, or any project of its
/// group): its scopes, never delete, and nothing when the registry is disabled.
pub fn deploy_token_abilities(project: ProjectAccess, scopes: &[TokenScope]) -> Abilities {
    if project.registry == RegistryAccess::Disabled {
        return Abilities::NONE;
    }
    Abilities {
        pull: scopes.contains(&TokenScope::ReadRegistry),
        push: scopes.contains(&TokenScope::WriteRegistry),
        delete: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegistryAccess as A;
    use Visibility as V;

    /// The pull matrix, cell by cell (public+enabled: everyone; internal+enabled: signed-in;
    /// otherwise Reporter+; disabled: no one): 3 visibilities × 3 access levels ×
    /// {anonymous, signed-in non-member, Guest, Reporter, Developer}.
    #[test]
    fn pull_matrix() {
        let who = [
            ("anonymous", Principal::ANONYMOUS),
            ("non-member", Principal::user(None)),
            ("guest", Principal::user(Some(Role::Guest))),
            ("reporter", Principal::user(Some(Role::Reporter))),
            ("developer", Principal::user(Some(Role::Developer))),
        ];
        #[rustfmt::skip]
        let table: [(V, A, [bool; 5]); 9] = [
            //                         anon   non-m  guest  rep    dev
            (V::Public,   A::Enabled,  [true,  true,  true,  true,  true]),
            (V::Public,   A::Private,  [false, false, false, true,  true]),
            (V::Public,   A::Disabled, [false, false, false, false, false]),
            (V::Internal, A::Enabled,  [false, true,  true,  true,  true]),
            (V::Internal, A::Private,  [false, false, false, true,  true]),
            (V::Internal, A::Disabled, [false, false, false, false, false]),
            (V::Private,  A::Enabled,  [false, false, false, true,  true]),
            (V::Private,  A::Private,  [false, false, false, true,  true]),
            (V::Private,  A::Disabled, [false, false, false, false, false]),
        ];
        for (visibility, registry, expected) in table {
            for ((label, principal), want) in who.iter().zip(expected) {
                let got = user_abilities(
                    ProjectAccess {
                        visibility,
                        registry,
                    },
                    *principal,
                )
                .pull;
                assert_eq!(got, want, "{visibility}/{registry}/{label}");
            }
        }
    }

    #[test]
    fn push_and_delete_by_role() {
        let p = ProjectAccess {
            visibility: V::Private,
            registry: A::Enabled,
        };
        let by = |r| user_abilities(p, Principal::user(Some(r)));
        assert!(!by(Role::Reporter).push);
        assert!(by(Role::Developer).push && !by(Role::Developer).delete);
        assert!(by(Role::Maintainer).delete && by(Role::Owner).delete);
        let admin = Principal {
            signed_in: true,
            admin: true,
            role: None,
        };
        assert_eq!(user_abilities(p, admin), Abilities::ALL);
        // Disabled stops admins too.
        let off = ProjectAccess {
            visibility: V::Public,
            registry: A::Disabled,
        };
        assert_eq!(user_abilities(off, admin), Abilities::NONE);
        assert_eq!(
            user_abilities(off, Principal::user(Some(Role::Owner))),
            Abilities::NONE
        );
    }

    #[test]
    fn scopes_cap_roles() {
        let p = ProjectAccess {
            visibility: V::Private,
            registry: A::Enabled,
        };
        let maintainer = user_abilities(p, Principal::user(Some(Role::Maintainer)));
        let read = maintainer.and(scope_cap(&[TokenScope::ReadRegistry]));
        assert_eq!(
            read,
            Abilities {
                pull: true,
                push: false,
                delete: false
            }
        );
        let write = maintainer.and(scope_cap(&[
            TokenScope::ReadRegistry,
            TokenScope::WriteRegistry,
        ]));
        assert_eq!(
            write,
            Abilities {
                pull: true,
                push: true,
                delete: false
            }
        );
        assert_eq!(
            maintainer.and(scope_cap(&[TokenScope::Api])),
            Abilities::ALL
        );
        assert!(!scope_cap(&[TokenScope::WriteRegistry]).pull);
        assert!(!scope_cap(&[]).any());
        // The role still caps the scopes.
        let reporter = user_abilities(p, Principal::user(Some(Role::Reporter)));
        assert_eq!(
            reporter.and(scope_cap(&[TokenScope::Api])),
            Abilities {
                pull: true,
                push: false,
                delete: false
            }
        );
    }

    #[test]
    fn deploy_tokens_never_delete() {
        let p = ProjectAccess {
            visibility: V::Private,
            registry: A::Private,
        };
        let both = [TokenScope::ReadRegistry, TokenScope::WriteRegistry];
        assert_eq!(
            deploy_token_abilities(p, &both),
            Abilities {
                pull: true,
                push: true,
                delete: false
            }
        );
        assert!(!deploy_token_abilities(p, &[TokenScope::ReadRegistry]).push);
        let off = ProjectAccess {
            registry: A::Disabled,
            ..p
        };
        assert_eq!(deploy_token_abilities(off, &both), Abilities::NONE);
    }

    #[test]
    fn names_round_trip() {
        for v in ["public", "internal", "private"] {
            assert_eq!(v.parse::<Visibility>().unwrap().as_str(), v);
        }
        for a in ["enabled", "private", "disabled"] {
            assert_eq!(a.parse::<RegistryAccess>().unwrap().as_str(), a);
        }
        assert!("secret".parse::<Visibility>().is_err());
        assert_eq!(Role::from_level(30), Some(Role::Developer));
        assert_eq!(Role::from_level(35), None);
        assert_eq!(
            "read_api".parse::<TokenScope>().unwrap(),
            TokenScope::ReadApi
        );
    }
}
